//! Command-line flags; every one can also be set from the environment.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use store_platform_runtime::{TelemetryArgs, auth::AuthArgs};

use crate::settings::{
    Backup, MEDUSA, Mail, MailSecurity, Medusa, STOREFRONT, Settings, Tls, Versions, WORDPRESS,
    version,
};

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "provisioner",
    version,
    about = "store-platform provisioner: drives each store's Kubernetes resources"
)]
pub struct Args {
    /// Address of the gRPC server (ProvisionerService, health, reflection).
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// How long in-flight calls may finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Stores are served at `<id>.<base-domain>`.
    #[arg(long, env = "BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,

    /// Serve stores over https (TLS at the ingress controller).
    #[arg(long, env = "STORE_TLS", default_value_t = false)]
    pub tls: bool,

    /// cert-manager ClusterIssuer for store certificates (with --tls).
    #[arg(long, env = "TLS_CLUSTER_ISSUER")]
    pub tls_cluster_issuer: Option<String>,

    /// Existing TLS Secret name for every store Ingress, e.g. a wildcard certificate (with --tls).
    #[arg(long, env = "TLS_SECRET")]
    pub tls_secret: Option<String>,

    /// IngressClass of store Ingresses; empty for the cluster default.
    #[arg(long, env = "INGRESS_CLASS", default_value = "nginx")]
    pub ingress_class: String,

    /// Label (key=value) of the ingress controller's namespace, allowed to reach WordPress.
    #[arg(
        long,
        env = "INGRESS_NAMESPACE_LABEL",
        default_value = "kubernetes.io/metadata.name=ingress-nginx"
    )]
    pub ingress_namespace_label: String,

    /// The Woo-ready WordPress image (WooCommerce and WP-CLI baked in; Apache on 8080 as uid 33).
    #[arg(
        long,
        env = "WORDPRESS_IMAGE",
        default_value = "store-platform/wordpress:6.8-wc9.9"
    )]
    pub wordpress_image: String,

    /// The name of the WooCommerce version that --wordpress-image is: new stores get it.
    #[arg(long, env = "WOOCOMMERCE_VERSION", default_value = "6.8-wc9.9")]
    pub woocommerce_version: String,

    /// Other WooCommerce versions stores may be upgraded to (or stay on), comma-separated: `NAME=WORDPRESS_IMAGE`.
    /// Versions are ordered by name, numbers compared as numbers (6.8-wc9.9 < 6.8-wc9.10 < 6.9-wc9.10).
    #[arg(
        long,
        env = "WOOCOMMERCE_VERSIONS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub woocommerce_versions: Vec<String>,

    #[arg(long, env = "MARIADB_IMAGE", default_value = "mariadb:11.4")]
    pub mariadb_image: String,

    #[arg(long, env = "IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    pub image_pull_policy: String,

    /// StorageClass of store volumes; empty for the cluster default.
    #[arg(long, env = "STORAGE_CLASS", default_value = "")]
    pub storage_class: String,

    #[arg(long, env = "MARIADB_STORAGE", default_value = "2Gi")]
    pub mariadb_storage: String,

    #[arg(long, env = "WORDPRESS_STORAGE", default_value = "2Gi")]
    pub wordpress_storage: String,

    /// How long a step may take before the store fails.
    #[arg(long, env = "STEP_DEADLINE", default_value = "300s", value_parser = humantime::parse_duration)]
    pub step_deadline: Duration,

    /// How long the bootstrap Job (WordPress and WooCommerce install) may take.
    #[arg(long, env = "BOOTSTRAP_DEADLINE", default_value = "600s", value_parser = humantime::parse_duration)]
    pub bootstrap_deadline: Duration,

    /// When each store's WP-Cron CronJob calls wp-cron.php (cron syntax).
    #[arg(long, env = "CRON_SCHEDULE", default_value = "*/5 * * * *")]
    pub cron_schedule: String,

    /// The SMTP relay every store sends mail through (host name or address). Empty: mail is off in every store.
    #[arg(long, env = "SMTP_HOST", default_value = "")]
    pub smtp_host: String,

    #[arg(long, env = "SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,

    /// How the connection to the relay is secured.
    #[arg(long, env = "SMTP_SECURITY", value_enum, default_value = "starttls")]
    pub smtp_security: MailSecurity,

    /// The relay's user name; empty for a relay without authentication.
    #[arg(long, env = "SMTP_USERNAME", default_value = "")]
    pub smtp_username: String,

    /// A file holding the relay's password (mount it from a Secret); required with --smtp-username.
    #[arg(long, env = "SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<std::path::PathBuf>,

    /// The sender address of every store's mail (required with --smtp-host); replies go to the store's address.
    #[arg(long, env = "SMTP_FROM", default_value = "")]
    pub smtp_from: String,

    /// Addresses (CIDRs, comma-separated) stores may reach the relay at, for their egress NetworkPolicy.
    #[arg(
        long,
        env = "SMTP_EGRESS_CIDRS",
        value_delimiter = ',',
        default_value = "0.0.0.0/0"
    )]
    pub smtp_egress_cidrs: Vec<String>,

    /// The Medusa backend image (`deploy/medusa`): server, worker and bootstrap Job.
    #[arg(
        long,
        env = "MEDUSA_IMAGE",
        default_value = "store-platform/medusa:2.21.2"
    )]
    pub medusa_image: String,

    /// The Medusa storefront image (`deploy/medusa-storefront`).
    #[arg(
        long,
        env = "MEDUSA_STOREFRONT_IMAGE",
        default_value = "store-platform/medusa-storefront:2.21.2"
    )]
    pub medusa_storefront_image: String,

    /// The name of the Medusa version that --medusa-image and --medusa-storefront-image are: new stores get it.
    #[arg(long, env = "MEDUSA_VERSION", default_value = "2.21.2")]
    pub medusa_version: String,

    /// Other Medusa versions stores may be upgraded to (or stay on), comma-separated:
    /// `NAME=BACKEND_IMAGE+STOREFRONT_IMAGE`. Ordered by name like --woocommerce-versions.
    #[arg(
        long,
        env = "MEDUSA_VERSIONS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub medusa_versions: Vec<String>,

    #[arg(long, env = "POSTGRES_IMAGE", default_value = "postgres:17.6-bookworm")]
    pub postgres_image: String,

    #[arg(long, env = "REDIS_IMAGE", default_value = "redis:7.4-bookworm")]
    pub redis_image: String,

    #[arg(long, env = "POSTGRES_STORAGE", default_value = "2Gi")]
    pub postgres_storage: String,

    #[arg(long, env = "REDIS_STORAGE", default_value = "1Gi")]
    pub redis_storage: String,

    /// The volume of a Medusa store's uploaded files (product images, CSV imports and exports).
    #[arg(long, env = "MEDUSA_UPLOADS_STORAGE", default_value = "1Gi")]
    pub medusa_uploads_storage: String,

    /// The currency of the region a Medusa store sells in (ISO 4217).
    #[arg(long, env = "MEDUSA_CURRENCY", default_value = "eur")]
    pub medusa_currency: String,

    /// The region's countries (ISO 3166-1 alpha-2, comma-separated).
    #[arg(
        long,
        env = "MEDUSA_COUNTRIES",
        value_delimiter = ',',
        default_value = "de,fr,it,es,nl,be,at,dk,se"
    )]
    pub medusa_countries: Vec<String>,

    /// The default tax rate of each of the region's countries, in percent (`country=rate`, comma-separated; every
    /// country needs one, `0` leaves it untaxed). The defaults are the standard VAT rates of the default countries.
    #[arg(
        long,
        env = "MEDUSA_TAX_RATES",
        value_delimiter = ',',
        default_value = "de=19,fr=20,it=22,es=21,nl=21,be=21,at=20,dk=25,se=25"
    )]
    pub medusa_tax_rates: Vec<String>,

    /// Prices include tax (entered and shown with it, as EU shops must show consumers); false: tax is added at
    /// checkout.
    #[arg(long, env = "MEDUSA_PRICES_INCLUDE_TAX", default_value_t = true, action = clap::ArgAction::Set)]
    pub medusa_prices_include_tax: bool,

    /// The S3-compatible object store backups go to, e.g. `https://s3.eu-central-1.amazonaws.com`. Empty: backups
    /// are off, and the backup calls say so.
    #[arg(long, env = "BACKUP_S3_ENDPOINT", default_value = "")]
    pub backup_s3_endpoint: String,

    /// The bucket of every store's backup repository (required with --backup-s3-endpoint).
    #[arg(long, env = "BACKUP_S3_BUCKET", default_value = "")]
    pub backup_s3_bucket: String,

    /// A prefix in the bucket under which the repositories live (`<prefix>/<tenant>/<store>`).
    #[arg(long, env = "BACKUP_S3_PREFIX", default_value = "store-platform")]
    pub backup_s3_prefix: String,

    #[arg(long, env = "BACKUP_S3_REGION", default_value = "us-east-1")]
    pub backup_s3_region: String,

    /// Address the bucket in the path (MinIO, Garage, Ceph and most self-hosted stores) rather than as a subdomain.
    #[arg(long, env = "BACKUP_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub backup_s3_path_style: bool,

    /// A file holding the object store's access key id (mount it from a Secret).
    #[arg(long, env = "BACKUP_S3_ACCESS_KEY_FILE")]
    pub backup_s3_access_key_file: Option<std::path::PathBuf>,

    /// A file holding the object store's secret access key (mount it from a Secret).
    #[arg(long, env = "BACKUP_S3_SECRET_KEY_FILE")]
    pub backup_s3_secret_key_file: Option<std::path::PathBuf>,

    /// The restic image backup and restore Jobs run.
    #[arg(long, env = "BACKUP_IMAGE", default_value = "restic/restic:0.17.3")]
    pub backup_image: String,

    /// When every store's scheduled backup runs (cron syntax, in the controller manager's time zone).
    #[arg(long, env = "BACKUP_SCHEDULE", default_value = "17 3 * * *")]
    pub backup_schedule: String,

    /// Scheduled backups kept: the newest of each of this many days...
    #[arg(long, env = "BACKUP_KEEP_DAILY", default_value_t = 7)]
    pub backup_keep_daily: u32,

    /// ...weeks...
    #[arg(long, env = "BACKUP_KEEP_WEEKLY", default_value_t = 4)]
    pub backup_keep_weekly: u32,

    /// ...and months.
    #[arg(long, env = "BACKUP_KEEP_MONTHLY", default_value_t = 3)]
    pub backup_keep_monthly: u32,

    /// On-demand backups kept, newest first.
    #[arg(long, env = "BACKUP_KEEP_ON_DEMAND", default_value_t = 10)]
    pub backup_keep_on_demand: u32,

    /// How long a deleted store's backups are kept.
    #[arg(long, env = "BACKUP_DELETED_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub backup_deleted_retention: Duration,

    /// Addresses (CIDRs, comma-separated) backup Jobs may reach the object store at, for their NetworkPolicy.
    #[arg(
        long,
        env = "BACKUP_EGRESS_CIDRS",
        value_delimiter = ',',
        default_value = "0.0.0.0/0"
    )]
    pub backup_egress_cidrs: Vec<String>,

    /// The object store's port, for the same NetworkPolicy (0: the endpoint's own, or 443 / 80 by its scheme).
    #[arg(long, env = "BACKUP_EGRESS_PORT", default_value_t = 0)]
    pub backup_egress_port: u16,

    /// The most stores one tenant may have.
    #[arg(long, env = "MAX_STORES_PER_TENANT", default_value_t = 20)]
    pub max_stores_per_tenant: usize,

    /// Reconcile only stores whose namespace also matches this label selector (e.g.
    /// `store-platform.io/tenant=acme`), to split stores between provisioner deployments, each with its own Lease.
    /// Empty: every store. The API serves every store either way.
    #[arg(long, env = "RECONCILE_SELECTOR", default_value = "")]
    pub reconcile_selector: String,

    /// Reconcile passes that run at once, at most. Stores wait for a pass first come first served. A pass mostly
    /// waits for the API server, so a limit below the stores changing at once makes them wait in this queue instead
    /// of the API server's (at 1,000 stores and 64 workers, a store waited up to 40 s for the pass that made it
    /// READY; docs/benchmarks.md). Lower it only to spare an API server shared with others.
    #[arg(long, env = "RECONCILE_WORKERS", default_value_t = 1024, value_parser = clap::value_parser!(u16).range(1..))]
    pub reconcile_workers: u16,

    /// At most this many stores change at once when the platform's settings change (each existing store is
    /// reconfigured, one first), and in a fleet upgrade that names no limit of its own.
    #[arg(long, env = "ROLLOUT_MAX_PARALLEL", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rollout_max_parallel: u32,

    /// Namespace of the Lease that elects the one replica that reconciles, and of the per-tenant create locks.
    #[arg(long, env = "LEASE_NAMESPACE", default_value = "store-platform")]
    pub lease_namespace: String,

    #[arg(long, env = "LEASE_NAME", default_value = "store-platform-provisioner")]
    pub lease_name: String,

    /// This replica's name in the Lease (the pod name in Kubernetes).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Args {
    pub fn settings(&self) -> Result<Settings, String> {
        let (key, value) = self
            .ingress_namespace_label
            .split_once('=')
            .ok_or_else(|| {
                format!(
                    "--ingress-namespace-label {:?} is not key=value",
                    self.ingress_namespace_label
                )
            })?;
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let mail = self.mail()?;
        Ok(Settings {
            base_domain: self.base_domain.clone(),
            scheme: if self.tls { "https" } else { "http" },
            ingress_class: non_empty(&self.ingress_class),
            tls: self.tls.then(|| Tls {
                cluster_issuer: self.tls_cluster_issuer.clone(),
                secret_name: self.tls_secret.clone(),
            }),
            ingress_namespace_labels: BTreeMap::from([(key.to_owned(), value.to_owned())]),
            wordpress_image: self.wordpress_image.clone(),
            mariadb_image: self.mariadb_image.clone(),
            image_pull_policy: self.image_pull_policy.clone(),
            storage_class: non_empty(&self.storage_class),
            mariadb_storage: self.mariadb_storage.clone(),
            wordpress_storage: self.wordpress_storage.clone(),
            step_deadline: self.step_deadline,
            bootstrap_deadline: self.bootstrap_deadline,
            cron_schedule: self.cron_schedule.clone(),
            mail,
            medusa: self.medusa()?,
            backup: self.backup()?,
            woocommerce_versions: versions(
                "--woocommerce-versions",
                &self.woocommerce_version,
                &[(WORDPRESS, &self.wordpress_image)],
                &self.woocommerce_versions,
            )?,
            medusa_versions: versions(
                "--medusa-versions",
                &self.medusa_version,
                &[
                    (MEDUSA, &self.medusa_image),
                    (STOREFRONT, &self.medusa_storefront_image),
                ],
                &self.medusa_versions,
            )?,
        })
    }

    /// Medusa's settings, checked: the region's codes are what Medusa accepts.
    fn medusa(&self) -> Result<Medusa, String> {
        let letters =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_alphabetic());
        if !letters(&self.medusa_currency, 3) {
            return Err(format!(
                "--medusa-currency {:?} is not an ISO 4217 code such as eur",
                self.medusa_currency
            ));
        }
        let countries: Vec<String> = self
            .medusa_countries
            .iter()
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        if countries.is_empty() || countries.iter().any(|c| !letters(c, 2)) {
            return Err(format!(
                "--medusa-countries {:?}: each entry must be an ISO 3166-1 alpha-2 code such as de",
                self.medusa_countries
            ));
        }
        let mut tax_rates = BTreeMap::new();
        for entry in self
            .medusa_tax_rates
            .iter()
            .filter(|e| !e.trim().is_empty())
        {
            let parsed = entry.split_once('=').and_then(|(country, rate)| {
                let (country, rate) = (country.trim().to_ascii_lowercase(), rate.trim());
                let percent: f64 = rate.parse().ok()?;
                let plain = rate.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                (letters(&country, 2) && plain && (0.0..100.0).contains(&percent))
                    .then(|| (country, rate.to_owned()))
            });
            let Some((country, rate)) = parsed else {
                return Err(format!(
                    "--medusa-tax-rates: {entry:?} is not country=percent, such as de=19"
                ));
            };
            tax_rates.insert(country, rate);
        }
        let untaxed: Vec<&str> = countries
            .iter()
            .filter(|c| !tax_rates.contains_key(*c))
            .map(String::as_str)
            .collect();
        if !untaxed.is_empty() {
            return Err(format!(
                "--medusa-tax-rates has no rate for {} (a country of --medusa-countries; give 0 for one that is not \
                 taxed)",
                untaxed.join(", ")
            ));
        }
        Ok(Medusa {
            image: self.medusa_image.clone(),
            storefront_image: self.medusa_storefront_image.clone(),
            postgres_image: self.postgres_image.clone(),
            redis_image: self.redis_image.clone(),
            postgres_storage: self.postgres_storage.clone(),
            redis_storage: self.redis_storage.clone(),
            uploads_storage: self.medusa_uploads_storage.clone(),
            currency: self.medusa_currency.to_ascii_lowercase(),
            countries,
            tax_rates,
            prices_include_tax: self.medusa_prices_include_tax,
        })
    }

    /// The object store, checked: an endpoint needs a bucket and both key files, and names a port.
    fn backup(&self) -> Result<Option<Backup>, String> {
        let endpoint = self.backup_s3_endpoint.trim().trim_end_matches('/');
        if endpoint.is_empty() {
            return Ok(None);
        }
        let Some((scheme, rest)) = endpoint.split_once("://") else {
            return Err(format!(
                "--backup-s3-endpoint {endpoint:?} is not a URL such as https://s3.example.com"
            ));
        };
        if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "--backup-s3-endpoint {endpoint:?} must be http:// or https:// and a host, without a path"
            ));
        }
        let bucket = self.backup_s3_bucket.trim();
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!(
                "--backup-s3-bucket {bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, dots, dashes)"
            ));
        }
        let (Some(access_key_file), Some(secret_key_file)) = (
            self.backup_s3_access_key_file.clone(),
            self.backup_s3_secret_key_file.clone(),
        ) else {
            return Err(
                "--backup-s3-endpoint needs --backup-s3-access-key-file and --backup-s3-secret-key-file".to_owned(),
            );
        };
        for field in [&self.backup_schedule, &self.backup_image] {
            if field.trim().is_empty() {
                return Err("--backup-schedule and --backup-image must not be empty".to_owned());
            }
        }
        let port_in_endpoint = rest
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok());
        let egress_port = match self.backup_egress_port {
            0 => port_in_endpoint.unwrap_or(if scheme == "https" { 443 } else { 80 }),
            port => port,
        };
        Ok(Some(Backup {
            endpoint: endpoint.to_owned(),
            bucket: bucket.to_owned(),
            prefix: self.backup_s3_prefix.trim_matches('/').to_owned(),
            region: self.backup_s3_region.clone(),
            path_style: self.backup_s3_path_style,
            access_key_file,
            secret_key_file,
            image: self.backup_image.clone(),
            schedule: self.backup_schedule.clone(),
            keep_daily: self.backup_keep_daily,
            keep_weekly: self.backup_keep_weekly,
            keep_monthly: self.backup_keep_monthly,
            keep_on_demand: self.backup_keep_on_demand.max(1),
            deleted_retention: self.backup_deleted_retention,
            key_namespace: self.lease_namespace.clone(),
            egress_cidrs: self.backup_egress_cidrs.clone(),
            egress_port,
        }))
    }

    /// The relay, checked: a sender is required, and a user name needs a readable password file.
    fn mail(&self) -> Result<Option<Mail>, String> {
        let host = self.smtp_host.trim();
        if host.is_empty() {
            return Ok(None);
        }
        if !self.smtp_from.contains('@') {
            return Err(format!(
                "--smtp-from {:?} is not an address; stores need one to send as",
                self.smtp_from
            ));
        }
        let username = (!self.smtp_username.is_empty()).then(|| self.smtp_username.clone());
        match (&username, &self.smtp_password_file) {
            (Some(_), None) => {
                return Err("--smtp-username needs --smtp-password-file".to_owned());
            }
            (_, Some(file)) => {
                std::fs::metadata(file)
                    .map_err(|error| format!("--smtp-password-file {}: {error}", file.display()))?;
            }
            (None, None) => {}
        }
        if self.smtp_egress_cidrs.iter().any(|c| !c.contains('/')) {
            return Err(format!(
                "--smtp-egress-cidrs {:?}: each entry must be a CIDR such as 203.0.113.7/32",
                self.smtp_egress_cidrs
            ));
        }
        Ok(Some(Mail {
            host: host.to_owned(),
            port: self.smtp_port,
            security: self.smtp_security,
            username,
            password_file: self.smtp_password_file.clone(),
            from: self.smtp_from.clone(),
            egress_cidrs: self.smtp_egress_cidrs.clone(),
        }))
    }
}

/// An engine's versions: the default (`default`, whose images are the engine's image flags) and the others `flag`
/// lists as `NAME=IMAGE+IMAGE...`, with the components in the order of `components`.
fn versions(
    flag: &str,
    default: &str,
    components: &[(&str, &String)],
    others: &[String],
) -> Result<Versions, String> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !valid_name(default) {
        return Err(format!(
            "version name {default:?} must be 1 to 63 letters, digits, dots, dashes or underscores"
        ));
    }
    let mut offered = vec![version(
        default,
        &components
            .iter()
            .map(|(component, image)| (*component, image.as_str()))
            .collect::<Vec<_>>(),
    )];
    for entry in others.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let names: Vec<&str> = components.iter().map(|(c, _)| *c).collect();
        let usage = || {
            format!(
                "{flag}: {entry:?} is not NAME={}",
                names
                    .iter()
                    .map(|c| format!("{}_IMAGE", c.to_ascii_uppercase()))
                    .collect::<Vec<_>>()
                    .join("+")
            )
        };
        let (name, images) = entry.split_once('=').ok_or_else(usage)?;
        let images: Vec<&str> = images.split('+').map(str::trim).collect();
        if !valid_name(name.trim())
            || images.len() != names.len()
            || images
                .iter()
                .any(|image| image.is_empty() || image.contains(char::is_whitespace))
        {
            return Err(usage());
        }
        offered.push(version(
            name.trim(),
            &names.iter().copied().zip(images).collect::<Vec<_>>(),
        ));
    }
    Versions::new(offered, default).map_err(|error| format!("{flag}: {error}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(flags: &[&str]) -> Result<Settings, String> {
        let program = [
            "provisioner",
            "--caller-policy=/etc/store-platform/callers/callers.json",
        ];
        Args::parse_from(program.into_iter().chain(flags.iter().copied())).settings()
    }

    #[test]
    fn every_country_of_the_region_needs_a_tax_rate() {
        let medusa = parse(&[]).expect("settings").medusa;
        assert_eq!(medusa.tax_rates["de"], "19");
        assert!(medusa.prices_include_tax);
        let error = parse(&["--medusa-countries=de,ch"]).expect_err("no rate for ch");
        assert!(error.contains("no rate for ch"), "{error}");
        for bad in ["de", "de=", "de=abc", "de=-1", "de=100", "de=1e1", "deu=19"] {
            let error = parse(&[
                "--medusa-countries=de",
                &format!("--medusa-tax-rates={bad}"),
            ])
            .expect_err(bad);
            assert!(error.contains("--medusa-tax-rates"), "{bad}: {error}");
        }
        let medusa = parse(&[
            "--medusa-countries=US",
            "--medusa-currency=usd",
            "--medusa-tax-rates=us=0,ch=8.1",
            "--medusa-prices-include-tax=false",
        ])
        .expect("settings")
        .medusa;
        assert_eq!(medusa.tax_rates_env(), "us=0");
        assert!(!medusa.prices_include_tax);
    }

    #[test]
    fn reconcile_workers_are_at_least_one() {
        let program = [
            "provisioner",
            "--caller-policy=/etc/store-platform/callers/callers.json",
        ];
        let workers = |flag: &str| {
            Args::try_parse_from(program.into_iter().chain([flag]))
                .map(|args| args.reconcile_workers)
                .map_err(|error| error.to_string())
        };
        assert_eq!(workers("--reconcile-workers=64"), Ok(64));
        for bad in ["0", "-1", "65536", "many"] {
            let error = workers(&format!("--reconcile-workers={bad}")).expect_err(bad);
            assert!(error.contains("--reconcile-workers"), "{bad}: {error}");
        }
    }

    #[test]
    fn versions_are_the_default_and_those_listed_oldest_first() {
        let settings = parse(&[
            "--medusa-version=2.21.2",
            "--medusa-versions=2.21.10=m:10+s:10, 2.21.2-r2=m:r2+s:r2",
        ])
        .expect("settings");
        let medusa = &settings.medusa_versions;
        let names: Vec<&str> = medusa.offered().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["2.21.2", "2.21.2-r2", "2.21.10"]);
        assert_eq!(medusa.default_version().name, "2.21.2");
        assert_eq!(
            medusa.default_version().images[MEDUSA],
            "store-platform/medusa:2.21.2"
        );
        assert_eq!(
            medusa.find("2.21.10").expect("offered").images[STOREFRONT],
            "s:10"
        );
        assert_eq!(settings.woocommerce_versions.offered().len(), 1);
        for bad in [
            "2.22",
            "2.22=m",
            "2.22=m+s+x",
            "=m+s",
            "a b=m+s",
            "2.21.2=m+s",
        ] {
            let error = parse(&[&format!("--medusa-versions={bad}")]).expect_err(bad);
            assert!(error.contains("--medusa-versions"), "{bad}: {error}");
        }
    }

    #[test]
    fn without_a_relay_mail_is_off() {
        assert_eq!(parse(&[]).expect("settings").mail, None);
    }

    #[test]
    fn a_relay_needs_a_sender_and_a_password_file_for_its_user() {
        let error = parse(&["--smtp-host=smtp.example.net"]).expect_err("no sender");
        assert!(error.contains("--smtp-from"), "{error}");
        let error = parse(&[
            "--smtp-host=smtp.example.net",
            "--smtp-from=shops@example.com",
            "--smtp-username=relay",
        ])
        .expect_err("no password");
        assert!(error.contains("--smtp-password-file"), "{error}");
        let error = parse(&[
            "--smtp-host=smtp.example.net",
            "--smtp-from=shops@example.com",
            "--smtp-password-file=/nonexistent/password",
        ])
        .expect_err("unreadable");
        assert!(error.contains("/nonexistent/password"), "{error}");
        let error = parse(&[
            "--smtp-host=smtp.example.net",
            "--smtp-from=shops@example.com",
            "--smtp-egress-cidrs=smtp.example.net",
        ])
        .expect_err("not a CIDR");
        assert!(error.contains("CIDR"), "{error}");
    }

    #[test]
    fn a_relay_is_taken_with_its_settings() {
        let password = tempfile::NamedTempFile::new().expect("file");
        let settings = parse(&[
            "--smtp-host=smtp.example.net",
            "--smtp-port=465",
            "--smtp-security=tls",
            "--smtp-username=relay",
            &format!("--smtp-password-file={}", password.path().display()),
            "--smtp-from=shops@example.com",
            "--smtp-egress-cidrs=203.0.113.7/32,198.51.100.0/24",
        ])
        .expect("settings");
        let mail = settings.mail.expect("mail");
        assert_eq!(mail.port, 465);
        assert_eq!(mail.security, MailSecurity::Tls);
        assert_eq!(mail.username.as_deref(), Some("relay"));
        assert_eq!(mail.egress_cidrs, ["203.0.113.7/32", "198.51.100.0/24"]);
        assert_eq!(settings.cron_schedule, "*/5 * * * *");
    }
}
