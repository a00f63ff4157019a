//! What every store is built with: domain, ingress, images, sizes, deadlines, cron and mail. Filled from the flags.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

/// How stores are exposed and built.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Stores live at `<id>.<base_domain>`.
    pub base_domain: String,
    /// `http` or `https`, for the URLs the platform hands out.
    pub scheme: &'static str,
    /// `spec.ingressClassName` of store Ingresses; none leaves the cluster default.
    pub ingress_class: Option<String>,
    /// TLS for store Ingresses.
    pub tls: Option<Tls>,
    /// Labels of the namespace the ingress controller runs in (allowed through the store's NetworkPolicy).
    pub ingress_namespace_labels: BTreeMap<String, String>,
    pub wordpress_image: String,
    pub mariadb_image: String,
    pub image_pull_policy: String,
    /// `storageClassName` of store volumes; none uses the cluster default.
    pub storage_class: Option<String>,
    pub mariadb_storage: String,
    pub wordpress_storage: String,
    /// How long each step may take before the store fails.
    pub step_deadline: Duration,
    /// How long the bootstrap Job may take (it installs WordPress and WooCommerce).
    pub bootstrap_deadline: Duration,
    /// When each store's WP-Cron CronJob runs (cron syntax, in the controller manager's time zone).
    pub cron_schedule: String,
    /// The SMTP relay stores send mail through; none: mail is off in every store.
    pub mail: Option<Mail>,
    /// How Medusa stores are built.
    pub medusa: Medusa,
    /// Where and when stores are backed up; none: backups are off.
    pub backup: Option<Backup>,
}

/// The platform's object store, the repository tool's image, the schedule and the retention of store backups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The S3-compatible endpoint, e.g. `https://s3.eu-central-1.amazonaws.com` or `http://minio.backup:9000`.
    pub endpoint: String,
    pub bucket: String,
    /// Every store's repository lives under this prefix of the bucket (empty: at the top).
    pub prefix: String,
    pub region: String,
    /// Address the bucket in the path (`endpoint/bucket`), as most self-hosted stores need, or as a subdomain.
    pub path_style: bool,
    /// Files holding the object store's access key id and secret (a mounted Secret); read at each use, never logged.
    pub access_key_file: PathBuf,
    pub secret_key_file: PathBuf,
    /// The repository tool's image (restic), which runs the backup and restore Jobs.
    pub image: String,
    /// When each store's scheduled backup runs (cron syntax).
    pub schedule: String,
    /// How many scheduled backups are kept: the newest of each of this many days, weeks and months.
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    /// How many on-demand backups are kept, newest first.
    pub keep_on_demand: u32,
    /// How long a deleted store's backups are kept.
    pub deleted_retention: Duration,
    /// The platform's namespace, where each store's repository key is kept: it outlives the store.
    pub key_namespace: String,
    /// Where backup Jobs may open connections to the object store: CIDRs and port for their NetworkPolicy.
    pub egress_cidrs: Vec<String>,
    pub egress_port: u16,
}

/// Images, volumes and the selling region of Medusa stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Medusa {
    /// The backend (server, worker and bootstrap Job): `deploy/medusa`, built.
    pub image: String,
    /// The storefront: `deploy/medusa-storefront`, built.
    pub storefront_image: String,
    pub postgres_image: String,
    pub redis_image: String,
    pub postgres_storage: String,
    pub redis_storage: String,
    /// The volume of uploaded files: product images, CSV imports and exports.
    pub uploads_storage: String,
    /// The region the seed creates: its currency (ISO 4217, lower case) and countries (ISO 3166-1 alpha-2).
    pub currency: String,
    pub countries: Vec<String>,
    /// The default tax rate of each of the region's countries, in percent as written (`19`, `7.5`; `0`: untaxed).
    pub tax_rates: BTreeMap<String, String>,
    /// Prices are entered and shown with tax included (as EU shops must show them), or tax is added at checkout.
    pub prices_include_tax: bool,
}

impl Medusa {
    pub fn local() -> Self {
        Self {
            image: "store-platform/medusa:2.21.2".to_owned(),
            storefront_image: "store-platform/medusa-storefront:2.21.2".to_owned(),
            postgres_image: "postgres:17.6-bookworm".to_owned(),
            redis_image: "redis:7.4-bookworm".to_owned(),
            postgres_storage: "2Gi".to_owned(),
            redis_storage: "1Gi".to_owned(),
            uploads_storage: "1Gi".to_owned(),
            currency: "eur".to_owned(),
            countries: DEFAULT_TAX_RATES
                .iter()
                .map(|(country, _)| (*country).to_owned())
                .collect(),
            tax_rates: DEFAULT_TAX_RATES
                .iter()
                .map(|(country, rate)| ((*country).to_owned(), (*rate).to_owned()))
                .collect(),
            prices_include_tax: true,
        }
    }

    /// The region's rates as the seed reads them: `de=19,fr=20` (STORE_TAX_RATES).
    pub fn tax_rates_env(&self) -> String {
        self.countries
            .iter()
            .map(|country| {
                let rate = self.tax_rates.get(country).map_or("0", String::as_str);
                format!("{country}={rate}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The default region's countries and their standard VAT rates (percent), as in force in 2026.
pub const DEFAULT_TAX_RATES: &[(&str, &str)] = &[
    ("de", "19"),
    ("fr", "20"),
    ("it", "22"),
    ("es", "21"),
    ("nl", "21"),
    ("be", "21"),
    ("at", "20"),
    ("dk", "25"),
    ("se", "25"),
];

/// The platform's SMTP relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub host: String,
    pub port: u16,
    pub security: MailSecurity,
    /// None: the relay takes mail without authentication.
    pub username: Option<String>,
    /// A file holding the relay's password (a mounted Secret); read whenever a store is provisioned, never logged.
    pub password_file: Option<PathBuf>,
    /// The sender address of every store's mail; replies go to the store's own address.
    pub from: String,
    /// Where stores may open connections to the relay: CIDRs for the egress NetworkPolicy.
    pub egress_cidrs: Vec<String>,
}

/// How the connection to the relay is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MailSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (a relay inside the cluster).
    None,
}

impl MailSecurity {
    /// The value of STORE_SMTP_SECURITY, which the store's mail plugin reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starttls => "starttls",
            Self::Tls => "tls",
            Self::None => "none",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tls {
    /// cert-manager ClusterIssuer to annotate the Ingress with (one certificate per store).
    pub cluster_issuer: Option<String>,
    /// An existing Secret to use (e.g. a wildcard certificate copied into each store namespace).
    pub secret_name: Option<String>,
}

impl Settings {
    /// Settings for tests and local development: `*.localhost`, no TLS.
    pub fn local() -> Self {
        Self {
            base_domain: "localhost".to_owned(),
            scheme: "http",
            ingress_class: Some("nginx".to_owned()),
            tls: None,
            ingress_namespace_labels: [(
                "kubernetes.io/metadata.name".to_owned(),
                "ingress-nginx".to_owned(),
            )]
            .into(),
            wordpress_image: "store-platform/wordpress:6.8-wc9.9".to_owned(),
            mariadb_image: "mariadb:11.4".to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            storage_class: None,
            mariadb_storage: "2Gi".to_owned(),
            wordpress_storage: "2Gi".to_owned(),
            step_deadline: Duration::from_secs(300),
            bootstrap_deadline: Duration::from_secs(600),
            cron_schedule: "*/5 * * * *".to_owned(),
            mail: None,
            medusa: Medusa::local(),
            backup: None,
        }
    }

    /// The store's host name.
    pub fn host(&self, id: &str) -> String {
        format!("{id}.{}", self.base_domain)
    }

    /// The storefront URL, with a trailing slash.
    pub fn storefront_url(&self, id: &str) -> String {
        format!("{}://{}/", self.scheme, self.host(id))
    }

    /// The store's origin, e.g. `http://shoes.localhost` (CORS and cookies speak in origins).
    pub fn origin(&self, id: &str) -> String {
        format!("{}://{}", self.scheme, self.host(id))
    }

    pub fn admin_url(&self, id: &str) -> String {
        format!("{}wp-admin/", self.storefront_url(id))
    }
}
