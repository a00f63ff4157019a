//! The gateway: one HTTP port for the browser (the dashboard's files and gRPC-web) and for gRPC clients, in front
//! of the provisioner and the status service.

mod args;
pub mod auth;
pub mod forward;
pub mod limit;
pub mod methods;
pub mod metrics;
mod routes;
pub mod signin;

use std::{collections::HashMap, sync::Arc};

use anyhow::Context as _;
pub use args::{Args, OidcArgs};
pub use routes::{AppState, app};
use store_platform_runtime::{Shutdown, grpc as server, telemetry};
use tonic::transport::{Channel, Endpoint};

/// Runs the gateway until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(&args.telemetry)?;
    let shutdown = Shutdown::on_signals().context("failed to install signal handlers")?;
    let running = start(args, shutdown).await?;
    running.task.await??;
    tracing::info!("stopped");
    Ok(())
}

/// A gateway serving on `addr` until its shutdown fires.
#[derive(Debug)]
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub metrics_addr: std::net::SocketAddr,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn backend_channel(url: &str, connect_timeout: std::time::Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url} is not a URL"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// The OpenID provider the flags describe, if any.
pub fn oidc_config(args: &OidcArgs) -> anyhow::Result<Option<auth::oidc::Config>> {
    if args.oidc_issuer.is_empty() {
        return Ok(None);
    }
    anyhow::ensure!(
        !args.oidc_client_id.is_empty(),
        "--oidc-client-id is required with --oidc-issuer"
    );
    let set = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    let list = |values: &[String]| -> Vec<String> {
        values
            .iter()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let mapping = auth::oidc::mapping::Mapping {
        tenant_claim: set(&args.oidc_tenant_claim),
        groups_claim: args.oidc_groups_claim.clone(),
        tenant_group_prefix: set(&args.oidc_tenant_group_prefix),
        admin_groups: list(&args.oidc_admin_groups),
        owner_groups: list(&args.oidc_owner_groups),
        viewer_groups: list(&args.oidc_viewer_groups),
        default_role: match args.oidc_default_role.as_str() {
            "none" | "" => None,
            "admin" => anyhow::bail!("--oidc-default-role cannot be admin: name the admin groups"),
            other => Some(auth::Role::parse(other).with_context(|| {
                format!("--oidc-default-role {other:?}: expected viewer, owner or none")
            })?),
        },
        admin_tenant: args.oidc_admin_tenant.clone(),
        email_claim: args.oidc_email_claim.clone(),
    };
    anyhow::ensure!(
        mapping.tenant_claim.is_some() || mapping.tenant_group_prefix.is_some(),
        "with --oidc-issuer, set --oidc-tenant-claim or --oidc-tenant-group-prefix (how a person's tenant is found)"
    );
    anyhow::ensure!(
        store_platform_runtime::tenant::is_valid(&mapping.admin_tenant),
        "--oidc-admin-tenant {:?} is not a valid tenant name",
        mapping.admin_tenant
    );
    let audiences = match list(&args.oidc_audiences) {
        audiences if audiences.is_empty() => vec![args.oidc_client_id.clone()],
        audiences => audiences,
    };
    Ok(Some(auth::oidc::Config {
        issuer: args.oidc_issuer.clone(),
        client_id: args.oidc_client_id.clone(),
        audiences,
        mapping,
        skew: args.oidc_clock_skew,
        jwks_min_refresh: args.oidc_keys_min_refresh,
        jwks_max_age: std::time::Duration::from_secs(60 * 60),
    }))
}

/// People's sign-in, when the dashboard's address and the sessions' namespace are set.
async fn sign_in(
    args: &OidcArgs,
    provider: Arc<auth::oidc::Provider>,
    shutdown: &Shutdown,
    watches: Arc<store_platform_runtime::watch::Watches>,
) -> anyhow::Result<Option<Arc<signin::SignInConfig>>> {
    if args.public_url.is_empty() {
        tracing::info!("no --public-url: the dashboard has no sign-in; bearer JWTs are accepted");
        return Ok(None);
    }
    anyhow::ensure!(
        args.public_url.starts_with("https://") || args.public_url.starts_with("http://"),
        "--public-url {:?} is not an http(s) URL",
        args.public_url
    );
    anyhow::ensure!(
        !args.session_namespace.is_empty(),
        "--session-namespace is required with --public-url and --oidc-issuer"
    );
    let client = store_platform_runtime::kubernetes::client().await?;
    let sessions =
        auth::sessions::Sessions::start(client, &args.session_namespace, shutdown.clone(), watches);
    let (cookie, _) = signin::SignInConfig::cookie_names(&args.public_url);
    let session_auth = Arc::new(auth::SessionAuth::new(
        sessions,
        provider,
        args.oidc_client_secret_file.clone(),
        cookie,
    ));
    Ok(Some(Arc::new(signin::SignInConfig {
        auth: session_auth,
        public_url: args.public_url.trim_end_matches('/').to_owned(),
        scopes: args
            .oidc_scopes
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        provider_name: args.oidc_provider_name.clone(),
        session_max_age: args.session_max_age,
        starts: limit::RateLimiter::new(
            args.signin_starts_per_minute,
            args.signin_starts_per_minute / 4,
        ),
    })))
}

/// Loads the tokens and starts serving.
pub async fn start(args: Args, shutdown: Shutdown) -> anyhow::Result<Running> {
    let mut auth = auth::Authenticator::watch_file(
        args.tokens_file.clone(),
        args.tokens_reload_interval,
        shutdown.clone(),
    )
    .await
    .context("failed to load the API tokens")?;
    let mut signin = None;
    let watches = store_platform_runtime::watch::Watches::new();
    if let Some(config) = oidc_config(&args.oidc)? {
        let http = auth::oidc::http::Http::new(
            args.oidc.oidc_ca_file.as_deref(),
            std::time::Duration::from_secs(10),
        )?;
        tracing::info!(issuer = %config.issuer, "signing in with OpenID Connect");
        let provider = auth::oidc::Provider::new(config, http);
        provider.spawn_refresh(shutdown.clone());
        auth = auth.with_provider(provider.clone());
        signin = sign_in(&args.oidc, provider, &shutdown, watches.clone()).await?;
        if let Some(signin) = &signin {
            auth = auth.with_sessions(signin.auth.clone());
        }
    }
    let backend_token = auth::BackendToken::watch_file(
        args.backend_token_file.clone(),
        args.tokens_reload_interval,
        shutdown.clone(),
    )
    .await
    .context("failed to load the gateway's token for the backends")?;
    let provisioner = forward::Backend {
        name: "provisioner",
        channel: backend_channel(&args.provisioner_url, args.backend_connect_timeout)?,
    };
    let status = forward::Backend {
        name: "status",
        channel: backend_channel(&args.status_url, args.backend_connect_timeout)?,
    };
    let backends = HashMap::from([
        (
            store_platform_proto::SERVICE_NAMES[0].to_owned(),
            provisioner,
        ),
        (store_platform_proto::SERVICE_NAMES[1].to_owned(), status),
    ]);
    let metrics = Arc::new(metrics::Metrics::default());
    let mut registry = prometheus_client::registry::Registry::with_prefix("store_platform");
    metrics.register(&mut registry);
    watches.register(&mut registry);
    let metrics_addr = store_platform_runtime::metrics::serve(
        args.metrics_addr,
        Arc::new(registry),
        Some(Arc::new(move || watches.refresh())),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("failed to listen on {}", args.metrics_addr))?;

    let forwarder = forward::Forwarder::new(forward::Config {
        backends,
        auth,
        backend_token,
        limiter: limit::RateLimiter::new(args.mutations_per_minute, args.mutation_burst),
        metrics,
        unary_timeout: args.unary_timeout,
        max_request_bytes: args.max_request_bytes,
    });
    let cors_origins = args
        .cors_origins
        .iter()
        .filter(|o| !o.is_empty())
        .map(|o| o.parse().with_context(|| format!("CORS origin {o:?}")))
        .collect::<anyhow::Result<_>>()?;
    let (grpc, _health) = server::standard_routes().await?;
    let router = app(AppState {
        web_root: args.web_root.clone(),
        grpc,
        forwarder,
        cors_origins,
        signin,
    });
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("failed to listen on {}", args.http_addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, web_root = %args.web_root.display(), "serving HTTP, gRPC-web and gRPC");

    let grace = args.shutdown_grace;
    let task = tokio::spawn(async move {
        // gRPC writes headers, messages and trailers as separate small frames: never hold them back (Nagle).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let serve = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().wait());
        tokio::select! {
            result = serve => result.context("the HTTP server failed")?,
            () = async {
                shutdown.wait().await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("requests still open after the shutdown grace period; closing"),
        }
        anyhow::Ok(())
    });
    Ok(Running {
        addr,
        metrics_addr,
        task,
    })
}
