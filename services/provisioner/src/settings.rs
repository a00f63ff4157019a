//! What every store is built with: domain, ingress, images, sizes, deadlines, cron and mail. Filled from the flags.

use std::{borrow::Cow, cmp::Ordering, collections::BTreeMap, path::PathBuf, time::Duration};

use store_platform_runtime::record::{Engine, StoreRecord, Version};

/// The component of a version's images that runs WordPress (server, cron and bootstrap Jobs).
pub const WORDPRESS: &str = "wordpress";
/// The components of a Medusa version: the backend (server, worker, bootstrap Job) and the storefront.
pub const MEDUSA: &str = "medusa";
pub const STOREFRONT: &str = "storefront";

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
    /// The versions of each engine the platform offers.
    pub woocommerce_versions: Versions,
    pub medusa_versions: Versions,
}

/// The versions of one engine the platform offers, oldest first, and the one new stores get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    offered: Vec<Version>,
    default: usize,
}

impl Versions {
    /// `offered` (in any order, names unique) with `default` among them.
    pub fn new(mut offered: Vec<Version>, default: &str) -> Result<Self, String> {
        offered.sort_by(|a, b| compare_versions(&a.name, &b.name));
        if let Some(twice) = offered.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(format!("version {} is offered twice", twice[0].name));
        }
        let default = offered
            .iter()
            .position(|version| version.name == default)
            .ok_or_else(|| format!("the default version {default} is not offered"))?;
        Ok(Self { offered, default })
    }

    /// Oldest first.
    pub fn offered(&self) -> &[Version] {
        &self.offered
    }

    /// The version new stores get.
    pub fn default_version(&self) -> &Version {
        &self.offered[self.default]
    }

    pub fn find(&self, name: &str) -> Option<&Version> {
        self.offered.iter().find(|version| version.name == name)
    }
}

/// A version with `images`, by component.
pub fn version(name: &str, images: &[(&str, &str)]) -> Version {
    Version {
        name: name.to_owned(),
        images: images
            .iter()
            .map(|(component, image)| ((*component).to_owned(), (*image).to_owned()))
            .collect(),
    }
}

/// Orders version names as people read them: runs of digits compare as numbers, everything else as text, and a
/// name that continues another is the later one (`2.9` < `2.10`, `2.21.2` < `2.21.2-r2` < `2.21.3`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn runs(name: &str) -> Vec<(bool, &str)> {
        let mut runs = Vec::new();
        let mut start = 0;
        let bytes = name.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                runs.push((bytes[start].is_ascii_digit(), &name[start..i]));
                start = i;
            }
        }
        runs
    }
    let (a_runs, b_runs) = (runs(a), runs(b));
    for ((a_digits, a_run), (b_digits, b_run)) in a_runs.iter().zip(&b_runs) {
        let order = if *a_digits && *b_digits {
            let (a_num, b_num) = (a_run.trim_start_matches('0'), b_run.trim_start_matches('0'));
            a_num.len().cmp(&b_num.len()).then_with(|| a_num.cmp(b_num))
        } else {
            a_run.cmp(b_run)
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a_runs.len().cmp(&b_runs.len())
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

#[derive(Clone, Debug, PartialEq, Eq)]
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
            woocommerce_versions: Versions::new(
                vec![version(
                    "6.8-wc9.9",
                    &[(WORDPRESS, "store-platform/wordpress:6.8-wc9.9")],
                )],
                "6.8-wc9.9",
            )
            .expect("one version"),
            medusa_versions: Versions::new(
                vec![version(
                    "2.21.2",
                    &[
                        (MEDUSA, "store-platform/medusa:2.21.2"),
                        (STOREFRONT, "store-platform/medusa-storefront:2.21.2"),
                    ],
                )],
                "2.21.2",
            )
            .expect("one version"),
        }
    }

    pub fn versions(&self, engine: Engine) -> &Versions {
        match engine {
            Engine::Woocommerce => &self.woocommerce_versions,
            Engine::Medusa => &self.medusa_versions,
        }
    }

    /// These settings with `version`'s images: what a store of that version is built with.
    pub fn with_version(&self, version: &Version) -> Cow<'_, Settings> {
        let image = |component: &str, current: &String| {
            version
                .images
                .get(component)
                .filter(|image| *image != current)
                .cloned()
        };
        let (wordpress, medusa, storefront) = (
            image(WORDPRESS, &self.wordpress_image),
            image(MEDUSA, &self.medusa.image),
            image(STOREFRONT, &self.medusa.storefront_image),
        );
        if wordpress.is_none() && medusa.is_none() && storefront.is_none() {
            return Cow::Borrowed(self);
        }
        let mut settings = self.clone();
        if let Some(image) = wordpress {
            settings.wordpress_image = image;
        }
        if let Some(image) = medusa {
            settings.medusa.image = image;
        }
        if let Some(image) = storefront {
            settings.medusa.storefront_image = image;
        }
        Cow::Owned(settings)
    }

    /// What `store` is built with: these settings with its version's images (a store that recorded none: the
    /// platform's default version's, the images of every store made before versions were recorded).
    pub fn for_store(&self, store: &StoreRecord) -> Cow<'_, Settings> {
        match &store.status.version {
            Some(version) => self.with_version(version),
            None => Cow::Borrowed(self),
        }
    }

    /// The offered version of `engine` whose main image (WordPress's; Medusa's backend) is `image`, as a backup
    /// records it.
    pub fn version_of_image(&self, engine: Engine, image: &str) -> Option<&Version> {
        let component = match engine {
            Engine::Woocommerce => WORDPRESS,
            Engine::Medusa => MEDUSA,
        };
        self.versions(engine)
            .offered()
            .iter()
            .find(|version| version.images.get(component).is_some_and(|i| i == image))
    }

    /// The version `store` is to run: the one the platform offers under its version's name (an operator may have
    /// given that version new images, e.g. a rebuild with security fixes), or its own when the platform offers no
    /// such version; None for a store that recorded none.
    pub fn current_version(&self, store: &StoreRecord) -> Option<Version> {
        let own = store.status.version.as_ref()?;
        Some(
            self.versions(store.spec.engine)
                .find(&own.name)
                .filter(|_| !own.name.is_empty())
                .unwrap_or(own)
                .clone(),
        )
    }

    /// The settings generation of a store of `engine` on `version`: a digest of everything in these settings that
    /// shapes such a store's objects, and of the provisioner's release (whose builders shape them too). Deadlines,
    /// the other engine's settings and the versions the store does not run are left out, so changing them changes
    /// no store. Stores whose recorded generation differs are brought to this one (see `fleet::settings`).
    pub fn generation(&self, engine: Engine, version: Option<&Version>) -> String {
        use sha2::Digest as _;
        let built = match version {
            Some(version) => self.with_version(version),
            None => Cow::Borrowed(self),
        };
        let s = built.as_ref();
        let common = format!(
            "release={} domain={} scheme={} class={:?} tls={:?} ingress={:?} pull={} storage-class={:?} backup={:?}",
            env!("CARGO_PKG_VERSION"),
            s.base_domain,
            s.scheme,
            s.ingress_class,
            s.tls,
            s.ingress_namespace_labels,
            s.image_pull_policy,
            s.storage_class,
            s.backup,
        );
        let own = match engine {
            Engine::Woocommerce => format!(
                "wordpress={} mariadb={} sizes={}/{} cron={} mail={:?}",
                s.wordpress_image,
                s.mariadb_image,
                s.mariadb_storage,
                s.wordpress_storage,
                s.cron_schedule,
                s.mail,
            ),
            Engine::Medusa => format!("medusa={:?}", s.medusa),
        };
        let digest = sha2::Sha256::digest(format!("{common}\n{own}").as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_ordered_as_people_read_them() {
        let mut names = vec![
            "2.21.10",
            "2.21.2-r2",
            "6.8-wc9.10",
            "2.21.2",
            "2.9",
            "6.8-wc9.9",
            "2.21.3",
        ];
        names.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            names,
            [
                "2.9",
                "2.21.2",
                "2.21.2-r2",
                "2.21.3",
                "2.21.10",
                "6.8-wc9.9",
                "6.8-wc9.10"
            ]
        );
        assert_eq!(compare_versions("2.021", "2.21"), Ordering::Equal);
    }

    #[test]
    fn a_store_is_built_with_its_own_versions_images() {
        let settings = Settings::local();
        let old = version(
            "2.21.1",
            &[(MEDUSA, "medusa:old"), (STOREFRONT, "storefront:old")],
        );
        let mut store = crate::backup::example::store("shoes", Engine::Medusa);
        assert!(matches!(settings.for_store(&store), Cow::Borrowed(_)));
        store.status.version = Some(old);
        let built = settings.for_store(&store);
        assert_eq!(built.medusa.image, "medusa:old");
        assert_eq!(built.medusa.storefront_image, "storefront:old");
        assert_eq!(built.wordpress_image, settings.wordpress_image);
        let default = settings.medusa_versions.default_version().clone();
        store.status.version = Some(default);
        assert!(
            matches!(settings.for_store(&store), Cow::Borrowed(_)),
            "the default's images are the settings' own"
        );
    }

    #[test]
    fn the_settings_generation_changes_with_what_shapes_a_stores_objects_and_nothing_else() {
        let settings = Settings::local();
        let woo = |s: &Settings| s.generation(Engine::Woocommerce, None);
        let medusa = |s: &Settings| s.generation(Engine::Medusa, None);
        assert_eq!(
            woo(&settings),
            woo(&settings.clone()),
            "a digest of the settings"
        );
        assert_eq!(woo(&settings).len(), 12);
        assert_ne!(woo(&settings), medusa(&settings));

        let mut relay = settings.clone();
        relay.mail = Some(Mail {
            host: "relay.example".to_owned(),
            port: 587,
            security: MailSecurity::Starttls,
            username: None,
            password_file: None,
            from: "shop@example.com".to_owned(),
            egress_cidrs: vec!["203.0.113.7/32".to_owned()],
        });
        assert_ne!(woo(&relay), woo(&settings), "WooCommerce sends mail");
        assert_eq!(medusa(&relay), medusa(&settings), "Medusa sends none");

        let mut slower = settings.clone();
        slower.step_deadline = Duration::from_secs(900);
        assert_eq!(woo(&slower), woo(&settings), "deadlines shape no object");

        let mut bigger = settings.clone();
        bigger.medusa.postgres_storage = "20Gi".to_owned();
        assert_ne!(medusa(&bigger), medusa(&settings));
        assert_eq!(woo(&bigger), woo(&settings));

        let rebuilt = version(
            "6.8-wc9.9",
            &[(WORDPRESS, "registry.example/wordpress:6.8-wc9.9-r2")],
        );
        assert_ne!(
            settings.generation(Engine::Woocommerce, Some(&rebuilt)),
            woo(&settings),
            "a version's images are part of it"
        );
    }

    #[test]
    fn a_store_is_to_run_its_versions_images_as_the_platform_offers_them_now() {
        let mut settings = Settings::local();
        let mut store = crate::backup::example::store("shoes", Engine::Woocommerce);
        assert_eq!(settings.current_version(&store), None);
        let old = version("6.8-wc9.9", &[(WORDPRESS, "wordpress:old-build")]);
        store.status.version = Some(old.clone());
        let offered = settings.woocommerce_versions.default_version().clone();
        assert_eq!(settings.current_version(&store), Some(offered));
        settings.woocommerce_versions = Versions::new(
            vec![version("6.9-wc10.0", &[(WORDPRESS, "wordpress:6.9")])],
            "6.9-wc10.0",
        )
        .expect("versions");
        assert_eq!(
            settings.current_version(&store),
            Some(old),
            "a version no longer offered keeps its images"
        );
    }
}
