//! Stores' backups and restores with the real tools, outside Kubernetes (the harness is backup_support). A Medusa
//! store: Debian's PostgreSQL holding a store's orders,
//! the store's uploaded files, moto's S3 server (from PyPI) as the object store, and restic (Debian's). The backup
//! Job's two containers run exactly as the provisioner writes them: the `dump` container's command and environment
//! (PostgreSQL's own pg_dump), then `scripts/backup.sh` with the restic container's environment and the store's
//! backup Secret, both as the pod's uid (1000) with the uploads volume mounted read-only where the pod mounts it.
//! What differs from a pod: the Services' names point at loopback ports, the dump directory is one of the test's
//! (BACKUP_DIR), and the repository tool is Debian's restic 0.14 rather than the restic image's.
//!
//! Then it does what an operator does without the platform: restores the snapshot with restic alone, checks the
//! manifest's checksum, loads the dump into a fresh database and compares it with the store's.

mod backup_support;
mod mariadb_support;
mod medusa_support;

use std::{os::unix::fs::chown, path::Path, process::Command, sync::Arc, time::Duration};

use backup_support::*;
use medusa_support::*;
use store_platform_provisioner::{
    backup::{Kind, repository},
    engine::Engine as _,
    medusa::{
        self, backend,
        meta::{NODE_UID, UPLOADS_PATH},
    },
    settings::Settings,
    woocommerce::{self, meta::WWW_DATA},
};
use store_platform_runtime::record::Engine as EngineKind;
use store_platform_test_support::{daemon::require_programs, process::free_port};

#[tokio::test(flavor = "multi_thread")]
async fn a_medusa_store_is_backed_up_with_pg_dump_and_restic_and_comes_back_with_restic_alone() {
    require_programs(&[RESTIC, CURL, PSQL]);
    let dir = tempfile::tempdir().expect("tmp");
    let objects = object_store(dir.path());
    let mut settings = Settings::local();
    settings.backup = Some(backup_settings(&objects.endpoint, dir.path()));
    let backup = settings.backup.clone().expect("backups on");
    let secret = values(&medusa::secret::credentials(STORE, OWNER));
    let databases = Databases::start(&settings, &secret);
    let target = medusa_target(&databases, &settings, &secret);

    // A store with a thousand orders and an uploaded image.
    databases.sql(
        "medusa",
        "CREATE TABLE store_order (id serial PRIMARY KEY, email text NOT NULL, total numeric(12, 2) NOT NULL, \
         items jsonb NOT NULL); \
         INSERT INTO store_order (email, total, items) \
         SELECT 'customer' || n || '@example.com', n * 1.5, jsonb_build_array(jsonb_build_object('sku', 'SKU-' || n)) \
         FROM generate_series(1, 1000) AS n",
    );
    let image = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/medusa/product-image.png"),
    )
    .expect("the fixture image");
    let uploaded = databases.uploads.join("1733390000000-product-image.png");
    std::fs::write(&uploaded, &image).expect("an upload");
    let node = u32::try_from(NODE_UID).expect("uid");
    chown(&uploaded, Some(node), Some(node)).expect("chown");
    let before = databases.sql(
        "medusa",
        "SELECT count(*), sum(total), md5(string_agg(email || items::text, ',' ORDER BY id)) FROM store_order",
    );

    // The store's backup Secret, as `backups` writes it, with a key made as the platform makes one.
    let key = new_key(&backup);
    assert_eq!(
        repository::location(&backup, TENANT, STORE),
        format!(
            "s3:{}/{BUCKET}/store-platform/{TENANT}/{STORE}",
            objects.endpoint
        )
    );
    let repository_secret = repository_secret(&backup, &key);

    let work = dir.path().join("job");
    scratch(&work);
    let first = target.backup(&settings, &repository_secret, &work);
    assert!(first.ok, "the first backup:\n{}", first.output);
    let snapshot = field(&first.termination, "snapshot").to_owned();
    let bytes: u64 = field(&first.termination, "bytes").parse().expect("bytes");
    assert!(bytes > image.len() as u64, "{}", first.termination);
    assert!(
        !first.output.contains(&key) && !first.output.contains("platform-secret-key"),
        "no secret in the Job's output"
    );

    // The provisioner's own listing (restic, as ListBackups runs it) sees it.
    let listed = repository::snapshots(&backup, TENANT, STORE, &key)
        .await
        .expect("list the repository");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].id.starts_with(&snapshot), "{listed:?}");
    assert_eq!(listed[0].kind, Some(Kind::OnDemand));
    assert_eq!(listed[0].engine, "medusa");
    assert_eq!(listed[0].version, settings.medusa.image);
    assert_eq!(listed[0].bytes, bytes);

    // A second, unchanged backup adds almost nothing: the repository deduplicates.
    let second = target.backup(&settings, &repository_secret, &work);
    assert!(second.ok, "the second backup:\n{}", second.output);
    let added: u64 = field(&second.termination, "added").parse().expect("added");
    assert!(
        added * 10 < bytes,
        "an unchanged store's second backup added {added} of {bytes} bytes"
    );
    let listed = repository::snapshots(&backup, TENANT, STORE, &key)
        .await
        .expect("list the repository");
    assert_eq!(listed.len(), 2, "both kept: {listed:?}");
    assert!(listed[0].time >= listed[1].time, "newest first");

    // Without the platform: the repository is intact, and restic alone brings the data back.
    restic(&backup, &repository_secret, &["check", "--read-data"]);
    let restored = dir.path().join("restored");
    restic(
        &backup,
        &repository_secret,
        &[
            "restore",
            &snapshot,
            "--target",
            &restored.display().to_string(),
        ],
    );
    let root = restored.join(work.join("backup").strip_prefix("/").expect("absolute"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).expect("the manifest"))
            .expect("the manifest is JSON");
    assert_eq!(manifest["engine"], "medusa");
    assert_eq!(manifest["store"], STORE);
    assert_eq!(manifest["tenant"], TENANT);
    assert_eq!(manifest["spec"]["adminEmail"], OWNER);
    let dump = std::fs::read(root.join("database.sql")).expect("the dump");
    let sha = Command::new("sha256sum")
        .arg(root.join("database.sql"))
        .output()
        .expect("sha256sum");
    assert_eq!(
        String::from_utf8_lossy(&sha.stdout)
            .split_whitespace()
            .next(),
        manifest["database"]["sha256"].as_str(),
        "the dump is what the manifest says"
    );
    assert!(
        String::from_utf8_lossy(&dump).contains("PostgreSQL database dump"),
        "pg_dump's own output"
    );
    assert_eq!(
        std::fs::read(root.join("files/1733390000000-product-image.png")).expect("the upload"),
        image,
        "the uploaded image, byte for byte"
    );

    // The dump loads into a fresh database and holds exactly the store's orders.
    databases.sql("postgres", "CREATE DATABASE restored");
    let loaded = Command::new(PSQL)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &databases.postgres_port.to_string(),
            "-U",
            &databases.user,
            "-d",
            "restored",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-f",
        ])
        .arg(root.join("database.sql"))
        .env("PGPASSWORD", &databases.password)
        .output()
        .expect("psql");
    assert!(loaded.status.success(), "load the dump: {}", text(&loaded));
    let after = databases.sql(
        "restored",
        "SELECT count(*), sum(total), md5(string_agg(email || items::text, ',' ORDER BY id)) FROM store_order",
    );
    assert_eq!(after, before, "the restored orders are the store's");
    assert!(before.starts_with("1000|"), "{before}");

    // The owner's day goes on after the backup: orders refunded and removed, the image replaced, queued work in
    // Redis. Restoring the backup in place brings back exactly the store as it was.
    databases.sql("medusa", "DELETE FROM store_order WHERE id <= 10");
    std::fs::remove_file(&uploaded).expect("remove the upload");
    let later = databases.uploads.join("1733400000000-new-image.png");
    std::fs::write(&later, b"a newer image").expect("a later upload");
    chown(&later, Some(node), Some(node)).expect("chown");
    redis(
        &databases,
        &[
            "SET",
            "bull:queue:stale",
            "an event about the replaced data",
        ],
    );
    let transcript = target
        .restore(&settings, &repository_secret, &work, &listed[1].id)
        .unwrap_or_else(|transcript| panic!("the restore failed:\n{transcript}"));
    assert!(transcript.contains("fetched snapshot"), "{transcript}");
    let restored_orders = databases.sql(
        "medusa",
        "SELECT count(*), sum(total), md5(string_agg(email || items::text, ',' ORDER BY id)) FROM store_order",
    );
    assert_eq!(restored_orders, before, "the orders are the backup's again");
    assert_eq!(
        std::fs::read(&uploaded).expect("the upload is back"),
        image,
        "the image, byte for byte"
    );
    assert!(!later.exists(), "a file uploaded after the backup is gone");
    assert_eq!(redis(&databases, &["DBSIZE"]), "0", "the cache is empty");
    let owner = std::fs::metadata(&uploaded).expect("metadata");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&owner),
        node,
        "the restored files are the pods' user's"
    );

    // A tampered repository is refused before the store is touched: a byte flipped in each of its pack files, in
    // the bucket, with boto3 (moto's own dependency).
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/.venv/bin/python");
    let spoil = Command::new(python)
        .arg("-c")
        .arg(
            r#"import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="x")
listed = s3.list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3])
keys = [o["Key"] for o in listed.get("Contents", [])]
assert keys, listed
for key in keys:
    body = bytearray(s3.get_object(Bucket=sys.argv[2], Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xff
    s3.put_object(Bucket=sys.argv[2], Key=key, Body=bytes(body))
"#,
        )
        .args([
            objects.endpoint.as_str(),
            BUCKET,
            &format!("store-platform/{TENANT}/{STORE}/data/"),
        ])
        .output()
        .expect("python");
    assert!(spoil.status.success(), "{}", text(&spoil));
    databases.sql("medusa", "DELETE FROM store_order WHERE id <= 5");
    let refused = target
        .restore(&settings, &repository_secret, &work, &listed[1].id)
        .expect_err("a tampered backup is refused");
    assert!(
        refused.contains("--- fetch") && !refused.contains("--- load"),
        "refused while fetching, before the database was touched:\n{refused}"
    );
    assert!(
        databases
            .sql("medusa", "SELECT count(*) FROM store_order")
            .starts_with("995"),
        "the store is as it was before the refused restore"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_to_a_missing_bucket_fails_in_the_object_stores_words_and_lists_nothing() {
    require_programs(&[RESTIC, CURL, PSQL]);
    let dir = tempfile::tempdir().expect("tmp");
    let objects = object_store(dir.path());
    let mut settings = Settings::local();
    let mut backup = backup_settings(&objects.endpoint, dir.path());
    backup.bucket = "no-such-bucket".to_owned();
    settings.backup = Some(backup.clone());
    let secret = values(&medusa::secret::credentials(STORE, OWNER));
    let databases = Databases::start(&settings, &secret);
    let target = medusa_target(&databases, &settings, &secret);
    let key = "a-repository-key".to_owned();
    let repository_secret = repository_secret(&backup, &key);
    let work = dir.path().join("job");
    scratch(&work);
    let failed = target.backup(&settings, &repository_secret, &work);
    assert!(!failed.ok, "{}", failed.output);
    assert!(
        failed.termination.contains("bucket does not exist"),
        "the object store's words reach the termination message: {}",
        failed.termination
    );
    let error = repository::snapshots(&backup, TENANT, STORE, &key)
        .await
        .expect_err("a missing bucket is an error, not an empty list");
    assert!(
        error.to_string().contains("bucket does not exist"),
        "{error}"
    );
    assert_eq!(tonic::Status::from(error).code(), tonic::Code::Unavailable);
}

/// The orders of the WordPress database: count, total and a digest of every row.
fn woo_orders(db: &mariadb_support::MariaDb) -> String {
    db.sql(
        "SELECT COUNT(*), SUM(total_amount), MD5(GROUP_CONCAT(CONCAT_WS('|', id, billing_email, total_amount, \
         HEX(note)) ORDER BY id SEPARATOR ',')) FROM wordpress.wp_wc_orders",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_woocommerce_store_is_backed_up_with_mariadb_dump_and_restored_in_place() {
    require_programs(&[
        RESTIC,
        CURL,
        mariadb_support::MARIADBD,
        "/usr/bin/mariadb-dump",
    ]);
    let dir = tempfile::tempdir().expect("tmp");
    let objects = object_store(dir.path());
    let mut settings = Settings::local();
    settings.backup = Some(backup_settings(&objects.endpoint, dir.path()));
    let secret = values(&woocommerce::secret::credentials(STORE));
    let db = mariadb_support::start(&dir.path().join("db"));
    // The official image's root has the Secret's password; Debian's gets it here, for TCP from loopback.
    db.root_password(&secret[woocommerce::secret::MARIADB_ROOT_PASSWORD]);

    // A shop: a thousand orders with binary notes, an option holding a PHP-serialized value with the store's
    // address, a trigger; and its wp-content with an uploaded image and a plugin, owned by www-data as WordPress
    // leaves them.
    db.sql(
        "USE wordpress; \
         CREATE TABLE wp_options (option_id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
           option_name VARCHAR(191) NOT NULL UNIQUE, option_value LONGTEXT NOT NULL) \
           ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci; \
         CREATE TABLE wp_wc_orders (id BIGINT UNSIGNED PRIMARY KEY, billing_email VARCHAR(320) NOT NULL, \
           total_amount DECIMAL(26, 8) NOT NULL, note VARBINARY(64) NOT NULL) \
           ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci; \
         CREATE TABLE wp_order_count (n BIGINT NOT NULL) ENGINE=InnoDB; \
         INSERT INTO wp_order_count VALUES (0); \
         CREATE TRIGGER count_orders AFTER INSERT ON wp_wc_orders FOR EACH ROW \
           UPDATE wp_order_count SET n = n + 1; \
         INSERT INTO wp_options (option_name, option_value) VALUES \
           ('siteurl', 'http://shop.localhost'), \
           ('widget_text', 'a:1:{s:4:\"home\";s:21:\"http://shop.localhost\";}'); \
         INSERT INTO wp_wc_orders SELECT seq, CONCAT('customer', seq, '@example.com'), seq * 1.5, \
           UNHEX(SHA2(seq, 256)) FROM seq_1_to_1000;",
    );
    let wp_content = dir.path().join("wp-content");
    let image = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/medusa/product-image.png"),
    )
    .expect("the fixture image");
    let uploaded = wp_content.join("uploads/2026/12/product.png");
    std::fs::create_dir_all(uploaded.parent().expect("dir")).expect("uploads");
    std::fs::write(&uploaded, &image).expect("an upload");
    std::fs::create_dir_all(wp_content.join("plugins/shop-extras")).expect("plugins");
    std::fs::write(
        wp_content.join("plugins/shop-extras/shop-extras.php"),
        "<?php\n/* Plugin Name: Shop extras */\n",
    )
    .expect("a plugin");
    let www = u32::try_from(WWW_DATA).expect("uid");
    let chowned = Command::new("chown")
        .args(["-R", &format!("{www}:{www}")])
        .arg(&wp_content)
        .status()
        .expect("chown");
    assert!(chowned.success());
    let before = woo_orders(&db);
    let options = db.sql("SELECT option_value FROM wordpress.wp_options ORDER BY option_id");

    let backup = settings.backup.clone().expect("backups on");
    let key = new_key(&backup);
    let repository_secret = repository_secret(&backup, &key);
    let target = Target {
        store: store(EngineKind::Woocommerce),
        source: woocommerce::WooCommerce::new(Arc::new(settings.clone()))
            .backup_source(&store(EngineKind::Woocommerce)),
        secret: &secret,
        files: &wp_content,
        database_port: db.port,
        cache_port: None,
        uid: www,
        path: "/usr/bin:/bin".to_owned(),
    };
    let work = dir.path().join("job");
    scratch(&work);
    let first = target.backup(&settings, &repository_secret, &work);
    assert!(first.ok, "the backup:\n{}", first.output);
    let bytes: u64 = field(&first.termination, "bytes").parse().expect("bytes");
    let second = target.backup(&settings, &repository_secret, &work);
    assert!(second.ok, "the second backup:\n{}", second.output);
    let added: u64 = field(&second.termination, "added").parse().expect("added");
    assert!(
        added * 10 < bytes,
        "an unchanged store's second backup added {added} of {bytes} bytes"
    );
    let listed = repository::snapshots(&backup, TENANT, STORE, &key)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].engine, "woocommerce");

    // Then the shop changes, and the backup is restored in place.
    db.sql(
        "DELETE FROM wordpress.wp_wc_orders WHERE id <= 10; \
         UPDATE wordpress.wp_options SET option_value = 'changed' WHERE option_name = 'widget_text'; \
         CREATE TABLE wordpress.wp_added_later (id INT);",
    );
    std::fs::remove_file(&uploaded).expect("remove the upload");
    let later = wp_content.join("uploads/2026/12/later.png");
    std::fs::write(&later, b"later").expect("a later upload");
    let transcript = target
        .restore(&settings, &repository_secret, &work, &listed[1].id)
        .unwrap_or_else(|transcript| panic!("the restore failed:\n{transcript}"));
    assert!(
        transcript.contains("--- load") && transcript.contains("--- files"),
        "{transcript}"
    );
    assert_eq!(woo_orders(&db), before, "the orders are the backup's");
    assert!(before.starts_with("1000\t"), "{before}");
    assert_eq!(
        db.sql("SELECT option_value FROM wordpress.wp_options ORDER BY option_id"),
        options,
        "the serialized option, byte for byte"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'wordpress' AND table_name = 'wp_added_later'"),
        "0",
        "the database is the backup's, not the backup's added to today's"
    );
    assert_eq!(
        db.sql(
            "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = 'wordpress'"
        ),
        "1",
        "the trigger came back"
    );
    assert_eq!(std::fs::read(&uploaded).expect("the upload is back"), image);
    assert!(!later.exists(), "a file uploaded after the backup is gone");
    assert!(
        wp_content
            .join("plugins/shop-extras/shop-extras.php")
            .exists()
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&uploaded).expect("metadata")),
        www,
        "the restored files are www-data's"
    );
}

/// The store's pod `container` at the public address `public` (the stand-in Ingress's port is part of a store's
/// address here), as `MEDUSA_FILE_URL` builds uploaded files' URLs on it.
fn at_address(
    mut container: k8s_openapi::api::core::v1::Container,
    public: &str,
) -> k8s_openapi::api::core::v1::Container {
    for var in container.env.iter_mut().flatten() {
        if var.name == "MEDUSA_FILE_URL" {
            var.value = Some(format!("{public}{UPLOADS_PATH}"));
        }
    }
    container
}

/// The store's server and worker, as their Deployments' pods run, at the public address `public`.
fn backends_at(
    app: &Path,
    databases: &Databases,
    secret: &std::collections::BTreeMap<String, String>,
    settings: &Settings,
    public: &str,
) -> (Backend, Backend) {
    let server = Backend::start(
        app,
        databases,
        secret,
        &at_address(container_of(backend::server(STORE, settings)), public),
        "server",
    );
    let worker = Backend::start(
        app,
        databases,
        secret,
        &at_address(container_of(backend::worker(STORE, settings)), public),
        "worker",
    );
    (server, worker)
}

/// The publishable key a bootstrap left in `file`.
fn key_in(file: &Path) -> String {
    let message = std::fs::read_to_string(file).expect("the termination log");
    medusa::parse_publishable_key(&message)
        .unwrap_or_else(|| panic!("no publishable key in {message:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_medusa_store_cloned_from_its_backup_is_a_store_of_its_own_with_the_orders_and_images() {
    require_programs(&[RESTIC, CURL, PSQL]);
    let app = medusa_app();
    let dir = tempfile::tempdir().expect("tmp");
    let objects = object_store(dir.path());
    let mut settings = Settings::local();
    settings.backup = Some(backup_settings(&objects.endpoint, dir.path()));
    let backup = settings.backup.clone().expect("backups on");

    // The store the clone is made from, as a customer and its owner left it: real Medusa, an order, the owner's
    // product with its uploaded image.
    let secret = values(&medusa::secret::credentials(STORE, OWNER));
    let databases = Databases::start(&settings, &secret);
    let key_file = databases.dir.path().join("termination-log");
    let booted = run(
        bootstrap_command(&app, &databases, &secret, &key_file),
        Duration::from_secs(900),
    );
    assert!(booted.status.success(), "bootstrap:\n{}", text(&booted));
    let key = key_in(&key_file);
    let source_public = format!("http://{STORE}.localhost:{}", free_port());
    let (server, _worker) = backends_at(&app, &databases, &secret, &settings, &source_public);
    let password = &secret[medusa::secret::ADMIN_PASSWORD];
    let token = admin_token_via(&[], &server.url, OWNER, password);
    let image_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/medusa/product-image.png");
    let product = owner_adds_a_product_via(&[], &server.url, &token, &settings, &image_file);
    assert!(
        product
            .image_url
            .starts_with(&format!("{source_public}{UPLOADS_PATH}/")),
        "{}",
        product.image_url
    );
    let order = place_order(&server, &key, &settings, "first-customer@example.com");

    // Its backup, as its Job makes it.
    let repository_key = new_key(&backup);
    let repository_secret = repository_secret(&backup, &repository_key);
    let work = dir.path().join("job");
    scratch(&work);
    let made =
        medusa_target(&databases, &settings, &secret).backup(&settings, &repository_secret, &work);
    assert!(made.ok, "the backup:\n{}", made.output);
    let snapshot = field(&made.termination, "snapshot").to_owned();

    // The clone: a new store (its own database, Redis, uploads volume, address and Secret), its restore Job
    // reading the source's repository as the clone's `clone-source` Secret names it, then its bootstrap as the
    // provisioner writes a clone's.
    let clone_secret = values(&medusa::secret::credentials(STORE, OWNER));
    let clone_password = &clone_secret[medusa::secret::ADMIN_PASSWORD];
    assert_ne!(clone_password, password, "a clone has passwords of its own");
    let clone = Databases::start(&settings, &clone_secret);
    // A new volume's own directory is root's, writable by all (as the node's volume provisioner makes it): the
    // restore fills it without touching the directory itself.
    chown(&clone.uploads, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(
        &clone.uploads,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let clone_work = dir.path().join("clone-job");
    scratch(&clone_work);
    let restored = medusa_target(&clone, &settings, &clone_secret)
        .restore(&settings, &repository_secret, &clone_work, &snapshot)
        .unwrap_or_else(|transcript| panic!("the clone's restore failed:\n{transcript}"));
    assert!(restored.contains("fetched snapshot"), "{restored}");
    let clone_public = format!("http://{STORE}.localhost:{}", free_port());
    let job = medusa::bootstrap::job(STORE, &settings, Some("the-original"));
    let written: Vec<(String, String)> = pod_spec(job.spec.clone().map(|s| s.template)).containers
        [0]
    .env
    .iter()
    .flatten()
    .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
    .collect();
    assert_eq!(
        env_value(&written, "CLONED_FROM_FILE_URL"),
        format!("{}{UPLOADS_PATH}", settings.origin("the-original"))
    );
    assert_eq!(env_value(&written, "ADMIN_PASSWORD_RESET"), "true");
    let clone_key_file = clone.dir.path().join("termination-log");
    let mut command = bootstrap_command_of(&app, &clone, &clone_secret, &clone_key_file, job);
    // Here the two stores' addresses are the stand-in Ingress's: the source's and the clone's ports.
    command
        .env(
            "CLONED_FROM_FILE_URL",
            format!("{source_public}{UPLOADS_PATH}"),
        )
        .env("MEDUSA_FILE_URL", format!("{clone_public}{UPLOADS_PATH}"));
    let cloned = run(command, Duration::from_secs(900));
    let cloned_output = text(&cloned);
    assert!(
        cloned.status.success(),
        "the clone's bootstrap:\n{cloned_output}"
    );
    assert!(
        cloned_output.contains("uploaded file URL(s) from") && !cloned_output.contains("moved 0 "),
        "{cloned_output}"
    );
    assert!(!cloned_output.contains(clone_password.as_str()));
    let old_urls = clone.sql(
        "medusa",
        &format!("SELECT count(*) FROM image WHERE url LIKE '{source_public}%'"),
    );
    assert_eq!(old_urls, "0", "no image names the old store's address");
    let image_url = clone.sql(
        "medusa",
        &format!(
            "SELECT url FROM image WHERE url LIKE '{clone_public}%' ORDER BY created_at DESC LIMIT 1"
        ),
    );
    assert_eq!(
        image_url,
        product.image_url.replace(&source_public, &clone_public),
        "the owner's image, at the clone's address"
    );

    // The clone runs as a store of its own: the owner signs in with the clone's password (not the source's), sees
    // the order and the image, and a customer orders again.
    let (clone_server, _clone_worker) =
        backends_at(&app, &clone, &clone_secret, &settings, &clone_public);
    let refused = http(
        "POST",
        &clone_server.url("/auth/user/emailpass"),
        &[],
        Some(&serde_json::json!({"email": OWNER, "password": password})),
    );
    assert_eq!(
        refused.status, 401,
        "the source's password: {}",
        refused.body
    );
    let clone_token = admin_token_via(&[], &clone_server.url, OWNER, clone_password);
    let orders = admin_orders_via(&[], &clone_server.url, &clone_token);
    assert!(
        lists_order(&orders, &order),
        "the source's order is in the clone: {orders}"
    );
    let path = &image_url[image_url.find("/static/").expect("a /static URL")..];
    assert_eq!(
        bytes_via(&[], &clone_server.url(path), &[]),
        std::fs::read(&image_file).expect("the image"),
        "the clone serves the owner's image"
    );
    let clone_key = key_in(&clone_key_file);
    let second = place_order(
        &clone_server,
        &clone_key,
        &settings,
        "second-customer@example.com",
    );
    assert_ne!(second, order);
    // And the store it was made from is as it was: one order, its own image address.
    assert_eq!(
        databases.sql("medusa", "SELECT count(*) FROM \"order\""),
        "1"
    );
}

/// Serves the maintenance page of `source` as its Deployment's pod would (its command, with the page's files where
/// the ConfigMap is mounted and loopback for every address), on the ports the pod listens on; returns each port's
/// answer to `GET /any/path`: (status line, headers, body).
fn maintenance_answers(
    source: &store_platform_provisioner::backup::Source,
    path: &str,
    dir: &Path,
) -> Vec<String> {
    use std::os::unix::process::CommandExt as _;
    use store_platform_provisioner::backup::maintenance;
    let maintenance = source.maintenance.clone().expect("a maintenance page");
    let mut record = store(EngineKind::Woocommerce);
    record.spec.display_name = "Ada's <Shoes> & Socks".to_owned();
    let files = dir.join("maintenance");
    std::fs::create_dir_all(&files).expect("mkdir");
    for (name, text) in maintenance::config_map(&record, maintenance::Why::Restoring)
        .data
        .expect("data")
    {
        std::fs::write(files.join(name), text).expect("a page file");
    }
    let pod = maintenance::deployment(&record, &maintenance, &Settings::local());
    let container = pod_spec(pod.spec.map(|s| s.template)).containers[0].clone();
    let ports: Vec<(i32, u16)> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.container_port, free_port()))
        .collect();
    let local = |text: &str| {
        let mut text = text.replace(maintenance::DIR, &files.display().to_string());
        for (pod_port, port) in &ports {
            text = text.replace(&format!("0.0.0.0:{pod_port}"), &format!("127.0.0.1:{port}"));
            text = text.replace(&pod_port.to_string(), &port.to_string());
        }
        text
    };
    let command: Vec<String> = container
        .command
        .expect("command")
        .iter()
        .map(|a| local(a))
        .collect();
    let mut process = Command::new(&command[0]);
    process
        .args(&command[1..])
        .env_clear()
        .env("PATH", path)
        .uid(u32::try_from(maintenance.uid).expect("uid"))
        .gid(u32::try_from(maintenance.uid).expect("gid"));
    for var in container.env.iter().flatten() {
        process.env(&var.name, local(var.value.as_deref().unwrap_or_default()));
    }
    let mut daemon = store_platform_test_support::daemon::Daemon::spawn(
        "maintenance",
        process,
        &dir.join("maintenance.log"),
    )
    .expect("start the page's server");
    ports
        .iter()
        .map(|(_, port)| {
            daemon.wait_for(([127, 0, 0, 1], *port).into(), Duration::from_secs(30));
            let answer = Command::new(CURL)
                .args(["-sS", "-i", "--max-time", "10"])
                .arg(format!("http://127.0.0.1:{port}/shop/cart?x=1"))
                .output()
                .expect("curl");
            assert!(answer.status.success(), "{}", text(&answer));
            String::from_utf8_lossy(&answer.stdout).into_owned()
        })
        .collect()
}

#[test]
fn the_maintenance_page_answers_every_request_with_503_in_php_and_in_node_as_the_pods_run_it() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let settings = Arc::new(Settings::local());
    let woocommerce = woocommerce::WooCommerce::new(settings.clone())
        .backup_source(&store(EngineKind::Woocommerce));
    let app = medusa_app();
    let medusa = medusa::Medusa::new(settings).backup_source(&store(EngineKind::Medusa));
    for (source, path, ports) in [
        (&woocommerce, "/usr/bin:/bin".to_owned(), 1),
        (&medusa, medusa_support::path(&app), 2),
    ] {
        let engine_dir = dir.path().join(format!("{}", ports));
        std::fs::create_dir_all(&engine_dir).expect("mkdir");
        std::fs::set_permissions(
            &engine_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let answers = maintenance_answers(source, &path, &engine_dir);
        assert_eq!(
            answers.len(),
            ports,
            "one answer per port the Services target"
        );
        for answer in answers {
            let lower = answer.to_ascii_lowercase();
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(lower.contains("retry-after: 60"), "{answer}");
            assert!(lower.contains("content-type: text/html"), "{answer}");
            assert!(
                answer.contains("Ada&#39;s &lt;Shoes&gt; &amp; Socks is being restored"),
                "the store's name, escaped: {answer}"
            );
        }
    }
}
