//! Command-line flags; every one can also be set from the environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use store_platform_runtime::TelemetryArgs;

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "store-platform gateway: the dashboard, and gRPC-web and gRPC for the platform's services"
)]
pub struct Args {
    /// Address for HTTP/1.1 (dashboard, gRPC-web) and HTTP/2 cleartext (gRPC), on one port.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of the Prometheus `/metrics` endpoint (an admin port, apart from the public one).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// Directory of the built dashboard (`web/dist`).
    #[arg(long, env = "WEB_ROOT", default_value = "web/dist")]
    pub web_root: PathBuf,

    /// The provisioner's gRPC address.
    #[arg(
        long,
        env = "PROVISIONER_URL",
        default_value = "http://provisioner:50051"
    )]
    pub provisioner_url: String,

    /// The status service's gRPC address.
    #[arg(long, env = "STATUS_URL", default_value = "http://status:50052")]
    pub status_url: String,

    /// How long a connection attempt to a backend may take before the call fails with UNAVAILABLE.
    #[arg(long, env = "BACKEND_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backend_connect_timeout: Duration,

    /// The API tokens: one per line, `<name> <tenant> <sha256 of the token, hex> [admin]`. Re-read when it changes.
    #[arg(
        long,
        env = "TOKENS_FILE",
        default_value = "/etc/store-platform/tokens"
    )]
    pub tokens_file: PathBuf,

    /// The gateway's own ServiceAccount token for the backends (a projected token for the platform's audience,
    /// refreshed in place by the kubelet). Re-read when it changes.
    #[arg(
        long,
        env = "BACKEND_TOKEN_FILE",
        default_value = "/var/run/secrets/store-platform/token"
    )]
    pub backend_token_file: PathBuf,

    /// How often the tokens file and the backend token are checked for changes.
    #[arg(long, env = "TOKENS_RELOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub tokens_reload_interval: Duration,

    /// CreateStore and DeleteStore calls a tenant may make per minute, on average.
    #[arg(long, env = "MUTATIONS_PER_MINUTE", default_value_t = 30)]
    pub mutations_per_minute: u32,

    /// How many of those calls a tenant may make at once, in a burst.
    #[arg(long, env = "MUTATION_BURST", default_value_t = 10)]
    pub mutation_burst: u32,

    /// The longest a unary call may take (streams have no limit).
    #[arg(long, env = "UNARY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub unary_timeout: Duration,

    /// The largest request message accepted, in bytes.
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = 64 * 1024)]
    pub max_request_bytes: usize,

    /// Origins allowed to call gRPC-web from another site (CORS), comma-separated. Empty: same origin only, which
    /// is all the dashboard served by the gateway needs.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_origins: Vec<String>,

    /// How long in-flight requests may finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub oidc: OidcArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// Sign-in with an OpenID Connect provider (docs/gateway.md, "Signing in"). Off while `--oidc-issuer` is empty.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct OidcArgs {
    /// The provider's issuer URL, exactly as its tokens name it; its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`. Empty: no OpenID Connect, API tokens only.
    #[arg(long, env = "OIDC_ISSUER", default_value = "")]
    pub oidc_issuer: String,

    /// The platform's client id at the provider (the audience of its ID tokens).
    #[arg(long, env = "OIDC_CLIENT_ID", default_value = "")]
    pub oidc_client_id: String,

    /// A file holding the client's secret (mounted from a Kubernetes Secret). Re-read when it changes.
    #[arg(long, env = "OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,

    /// The audiences a bearer JWT (a machine's access token) may be for, comma-separated. Empty: the client id.
    #[arg(
        long,
        env = "OIDC_AUDIENCES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub oidc_audiences: Vec<String>,

    /// A claim holding the tenant's name.
    #[arg(long, env = "OIDC_TENANT_CLAIM", default_value = "")]
    pub oidc_tenant_claim: String,

    /// The claim listing a person's groups.
    #[arg(long, env = "OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,

    /// Groups named `<prefix><tenant>` give a person their tenant (when the tenant claim is unset or absent).
    #[arg(long, env = "OIDC_TENANT_GROUP_PREFIX", default_value = "")]
    pub oidc_tenant_group_prefix: String,

    /// Groups whose members administer the platform (every tenant), comma-separated.
    #[arg(
        long,
        env = "OIDC_ADMIN_GROUPS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub oidc_admin_groups: Vec<String>,

    /// Groups whose members own their tenant's stores, comma-separated.
    #[arg(
        long,
        env = "OIDC_OWNER_GROUPS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub oidc_owner_groups: Vec<String>,

    /// Groups whose members see their tenant's stores and change nothing, comma-separated.
    #[arg(
        long,
        env = "OIDC_VIEWER_GROUPS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub oidc_viewer_groups: Vec<String>,

    /// The role of someone in none of those groups: viewer, owner, or none (refused).
    #[arg(long, env = "OIDC_DEFAULT_ROLE", default_value = "none")]
    pub oidc_default_role: String,

    /// The tenant an administrator's own stores go to when their groups name none.
    #[arg(long, env = "OIDC_ADMIN_TENANT", default_value = "platform")]
    pub oidc_admin_tenant: String,

    /// The claim with a person's e-mail address (written to the audit log).
    #[arg(long, env = "OIDC_EMAIL_CLAIM", default_value = "email")]
    pub oidc_email_claim: String,

    /// Clock difference allowed with the provider when checking a token's expiry.
    #[arg(long, env = "OIDC_CLOCK_SKEW", default_value = "60s", value_parser = humantime::parse_duration)]
    pub oidc_clock_skew: Duration,

    /// The least time between two fetches of the provider's keys caused by tokens naming an unknown key.
    #[arg(long, env = "OIDC_KEYS_MIN_REFRESH", default_value = "10s", value_parser = humantime::parse_duration)]
    pub oidc_keys_min_refresh: Duration,

    /// The dashboard's address as browsers reach it (`https://dashboard.example.com`): people signing in return to
    /// `<it>/auth/callback`, which must be registered at the provider. Empty: no sign-in in the dashboard (bearer
    /// JWTs are still accepted).
    #[arg(long, env = "PUBLIC_URL", default_value = "")]
    pub public_url: String,

    /// The provider's name on the dashboard's sign-in button.
    #[arg(
        long,
        env = "OIDC_PROVIDER_NAME",
        default_value = "your identity provider"
    )]
    pub oidc_provider_name: String,

    /// The scopes a sign-in asks for, comma-separated (add `offline_access` for refresh tokens where the provider
    /// needs it, and the scope that brings the groups claim).
    #[arg(
        long,
        env = "OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "openid,profile,email,groups"
    )]
    pub oidc_scopes: Vec<String>,

    /// The namespace people's sessions are kept in, as Secrets (the gateway's only Kubernetes access).
    #[arg(long, env = "SESSION_NAMESPACE", default_value = "")]
    pub session_namespace: String,

    /// The longest a session lasts, renewals with the provider's refresh token included.
    #[arg(long, env = "SESSION_MAX_AGE", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_max_age: Duration,

    /// Sign-ins that may start per minute on each replica, everyone's together (each keeps a Secret for up to ten
    /// minutes); a burst of a quarter of it is allowed.
    #[arg(long, env = "SIGNIN_STARTS_PER_MINUTE", default_value_t = 120)]
    pub signin_starts_per_minute: u32,

    /// PEM certificates of a private CA the provider's TLS certificate chains to (besides the system's).
    #[arg(long, env = "OIDC_CA_FILE")]
    pub oidc_ca_file: Option<PathBuf>,
}
