//! Backups on the local control plane: a provisioner with an object store (moto's S3 server, from PyPI, on
//! loopback) and restic (Debian's), and stores whose pods the simulated kubelet runs. What is checked here is what
//! the provisioner writes and answers: the repository key outside the store's namespace, the store's backup Secret,
//! script, NetworkPolicy and CronJob, BackupStore's one-at-a-time rule, ListBackups' view of the repository (a real
//! snapshot, written by the real backup script) and of running and failed Jobs, tenant scoping, and a deleted
//! store's backups. The backup itself runs for real in backup_real.rs.

mod support;

use std::{net::SocketAddr, path::Path, process::Command, sync::OnceLock, time::Duration};

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::{Job, JobTemplateSpec},
    core::v1::{ConfigMap, Secret},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, ListParams},
};
use store_platform_proto::v1::{
    BackupKind, BackupState, BackupStoreRequest, DeleteStoreRequest, Engine, GetStoreRequest,
    ListBackupsRequest, ListVersionsRequest, OperationState, Phase, RestoreStoreRequest,
    ResumeStoreRequest, RetryStoreRequest, SuspendStoreRequest, UpgradeStoreRequest,
    provisioner_service_client::ProvisionerServiceClient,
};
use store_platform_runtime::record;
use store_platform_test_support::{
    Behaviour, Fate, TestEnv,
    daemon::require_programs,
    process::{ServiceProcess, free_port},
};
use support::{as_tenant, create_request_for, unique_id, wait_for_phase, wait_until_gone};
use tonic::{Code, transport::Channel};

const BUCKET: &str = "platform-backups";
const ACCESS_KEY: &str = "backup-access-key";
const SECRET_KEY: &str = "backup-secret-key-never-shown";
/// The tenant whose stores only the provisioner process of the kill test reconciles.
const CRASH_TENANT: &str = "crash-vault";
/// The tenants whose stores only the provisioner processes of the fleet upgrade and settings tests reconcile.
const FLEET_TENANT: &str = "fleet-ops";
const SETTINGS_TENANT: &str = "settings-ops";

/// moto's S3 server with the platform's bucket, on loopback, once for the binary.
fn object_store() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        require_programs(&["/usr/bin/restic", "/usr/bin/curl"]);
        support::start_object_store(&[], std::net::Ipv4Addr::LOCALHOST, BUCKET)
    })
}

fn provisioner() -> SocketAddr {
    provisioner_addrs().0
}

/// The provisioner's gRPC and metrics addresses.
fn provisioner_addrs() -> (SocketAddr, SocketAddr) {
    static ADDR: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let mut flags = vec![
            format!("--lease-name=provisioner-backups-{}", std::process::id()),
            "--step-deadline=30s".to_owned(),
            // The processes' stores are their own (see the kill, fleet and settings tests).
            format!(
                "--reconcile-selector={} notin ({CRASH_TENANT},{FLEET_TENANT},{SETTINGS_TENANT})",
                record::TENANT_LABEL
            ),
        ];
        flags.extend(backup_flags());
        flags.extend(version_flags());
        support::spawn_provisioner(TestEnv::shared().clone(), flags)
    })
}

/// The platform's backup settings here: the object store, its key files, a schedule and the egress rule.
fn backup_flags() -> Vec<String> {
    let endpoint = object_store();
    let dir = std::env::temp_dir().join(format!("backups-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("access"), format!("{ACCESS_KEY}\n")).expect("key file");
    std::fs::write(dir.join("secret"), format!("{SECRET_KEY}\n")).expect("key file");
    vec![
        format!("--backup-s3-endpoint={endpoint}"),
        format!("--backup-s3-bucket={BUCKET}"),
        format!(
            "--backup-s3-access-key-file={}",
            dir.join("access").display()
        ),
        format!(
            "--backup-s3-secret-key-file={}",
            dir.join("secret").display()
        ),
        "--backup-schedule=30 2 * * *".to_owned(),
        "--backup-egress-cidrs=127.0.0.1/32".to_owned(),
    ]
}

/// The WooCommerce version stores are made with here, and a later one they can be upgraded to.
const WOO_OLD: &str = "6.8-wc9.9";
const WOO_NEW: &str = "6.8-wc9.10";
const WOO_NEW_IMAGE: &str = "store-platform/wordpress:6.8-wc9.10";

/// The platform offers a second WooCommerce version besides its default.
fn version_flags() -> Vec<String> {
    vec![
        format!("--woocommerce-version={WOO_OLD}"),
        format!("--woocommerce-versions={WOO_NEW}={WOO_NEW_IMAGE}"),
    ]
}

/// The same settings as the provisioner's, for calling the sweep directly.
fn backup_settings() -> store_platform_provisioner::settings::Backup {
    use clap::Parser as _;
    let mut argv = vec![
        "provisioner".to_owned(),
        "--caller-policy=/dev/null".to_owned(),
    ];
    argv.extend(backup_flags());
    store_platform_provisioner::Args::parse_from(argv)
        .settings()
        .expect("settings")
        .backup
        .expect("backups on")
}

/// The provisioner's metrics, as Prometheus scrapes them.
async fn metrics() -> String {
    store_platform_test_support::process::http_get(provisioner_addrs().1, "/metrics")
        .await
        .expect("scrape the metrics")
}

/// The reasons of the events on the store's namespace.
async fn event_reasons(id: &str) -> Vec<String> {
    let client = TestEnv::shared().client().await;
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(client, &record::namespace_name(id))
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|event| event.reason)
        .collect()
}

async fn api() -> ProvisionerServiceClient<Channel> {
    ProvisionerServiceClient::connect(format!("http://{}", provisioner()))
        .await
        .expect("connect")
}

async fn ready_store(prefix: &str, tenant: &str, engine: Engine) -> String {
    let id = unique_id(prefix);
    if engine == Engine::Medusa {
        TestEnv::shared()
            .set_kubelet_behaviour(
                &record::namespace_name(&id),
                &support::medusa_behaviour(Duration::ZERO),
            )
            .await;
    }
    api()
        .await
        .create_store(as_tenant(tenant, create_request_for(&id, engine)))
        .await
        .expect("create");
    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;
    id
}

fn secret_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("utf-8")
}

/// From now on, the store's pods whose names start with `prefix` take `delay`, then fail: a container exits 1 with
/// `message` as its last words.
async fn pods_fail(id: &str, delay: Duration, prefix: &str, message: &str) {
    TestEnv::shared()
        .set_kubelet_behaviour(
            &record::namespace_name(id),
            &Behaviour::with_delay(delay).pod(
                prefix,
                Fate::Fail {
                    reason: "Error".into(),
                    message: message.into(),
                },
            ),
        )
        .await;
}

/// The store's backup Jobs.
async fn backup_jobs(id: &str) -> Vec<Job> {
    let client = TestEnv::shared().client().await;
    Api::<Job>::namespaced(client, &record::namespace_name(id))
        .list(&ListParams::default().labels("app.kubernetes.io/name=backup"))
        .await
        .expect("list Jobs")
        .items
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ready_store_is_prepared_for_backups_with_its_key_outside_its_namespace() {
    let id = ready_store("prepared", "vault", Engine::Woocommerce).await;
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(&id);

    // The repository key: in the platform's namespace, labelled with its store and tenant.
    let keys = Api::<Secret>::namespaced(client.clone(), "store-platform")
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/name=backup-key,{}={id}",
            record::STORE_ID_LABEL
        )))
        .await
        .expect("list keys")
        .items;
    assert_eq!(keys.len(), 1, "one key per store");
    let key = secret_text(&keys[0], "RESTIC_PASSWORD");
    assert!(key.len() >= 64, "a long generated key");
    assert_eq!(
        keys[0].metadata.labels.as_ref().expect("labels")[record::TENANT_LABEL],
        "vault"
    );

    // The store's copy, which only backup Jobs read: where its repository is, the key, the object store's keys.
    let store_secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get("store-backup")
        .await
        .expect("the store's backup Secret");
    assert_eq!(
        secret_text(&store_secret, "RESTIC_REPOSITORY"),
        format!("s3:{}/{BUCKET}/store-platform/vault/{id}", object_store())
    );
    assert_eq!(secret_text(&store_secret, "RESTIC_PASSWORD"), key);
    assert_eq!(
        secret_text(&store_secret, "AWS_SECRET_ACCESS_KEY"),
        SECRET_KEY
    );

    // The script, the egress rule and the schedule.
    let script = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get("backup-script")
        .await
        .expect("the backup script");
    assert!(script.data.expect("data")["backup.sh"].contains("repository backup --json"));
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace)
        .get("backup-egress")
        .await
        .expect("the backup pods' egress");
    let egress = policy.spec.expect("spec").egress.expect("egress");
    assert_eq!(
        egress[1].to.as_ref().expect("to")[0]
            .ip_block
            .as_ref()
            .expect("the object store's addresses")
            .cidr,
        "127.0.0.1/32"
    );
    let resource = ApiResource {
        group: "batch".into(),
        version: "v1beta1".into(),
        api_version: "batch/v1beta1".into(),
        kind: "CronJob".into(),
        plural: "cronjobs".into(),
    };
    let cron_job = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource)
        .get("backup")
        .await
        .expect("the backup CronJob");
    assert_eq!(cron_job.data["spec"]["schedule"], "30 2 * * *");
    let template: JobTemplateSpec =
        serde_json::from_value(cron_job.data["spec"]["jobTemplate"].clone()).expect("template");
    let pod = template
        .spec
        .expect("job spec")
        .template
        .spec
        .expect("pod spec");
    assert_eq!(
        pod.init_containers.expect("dump")[0].image.as_deref(),
        Some("mariadb:11.4"),
        "the dump runs in the store's own database image"
    );
    assert!(
        template.metadata.expect("metadata").labels.expect("labels")["store-platform.io/backup-kind"]
            == "scheduled"
    );

    // Nothing of it reaches the API's answers.
    let store = api()
        .await
        .get_store(as_tenant(
            "vault",
            GetStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    let shown = format!("{store:?}");
    assert!(!shown.contains(&key) && !shown.contains(SECRET_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_store_starts_one_backup_at_a_time_and_list_backups_shows_it_running_then_failed() {
    let id = ready_store("ondemand", "vault", Engine::Woocommerce).await;
    // From here on, the store's backup pods run for a while, then fail as restic does at a refusing object store.
    pods_fail(
        &id,
        Duration::from_secs(4),
        "backup-",
        "Fatal: unable to open config file: Stat: Access Denied.",
    )
    .await;

    // Two requests at once: one backup.
    let request = || {
        as_tenant(
            "vault",
            BackupStoreRequest {
                store_id: id.clone(),
            },
        )
    };
    let (mut first_api, mut second_api) = (api().await, api().await);
    let (first, second) = tokio::join!(
        first_api.backup_store(request()),
        second_api.backup_store(request())
    );
    let first = first.expect("backup").into_inner().backup.expect("backup");
    let second = second.expect("backup").into_inner().backup.expect("backup");
    assert_eq!(
        first.id, second.id,
        "the second request gets the first's backup"
    );
    assert_eq!(first.state, BackupState::Running as i32);
    assert_eq!(first.kind, BackupKind::OnDemand as i32);
    assert_eq!(first.engine, Engine::Woocommerce as i32);
    assert_eq!(backup_jobs(&id).await.len(), 1);

    let listed = api()
        .await
        .list_backups(as_tenant(
            "vault",
            ListBackupsRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .backups;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, first.id);
    assert_eq!(listed[0].state, BackupState::Running as i32);

    // Another tenant sees no such store.
    for status in [
        api()
            .await
            .backup_store(as_tenant(
                "other",
                BackupStoreRequest {
                    store_id: id.clone(),
                },
            ))
            .await
            .expect_err("another tenant's store"),
        api()
            .await
            .list_backups(as_tenant(
                "other",
                ListBackupsRequest {
                    store_id: id.clone(),
                },
            ))
            .await
            .expect_err("another tenant's store"),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    // It fails: the list says so in the tool's own words, and the store stays ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let listed = api()
            .await
            .list_backups(as_tenant(
                "vault",
                ListBackupsRequest {
                    store_id: id.clone(),
                },
            ))
            .await
            .expect("list")
            .into_inner()
            .backups;
        if listed[0].state == BackupState::Failed as i32 {
            break listed[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        failed.message.contains("Access Denied"),
        "the failure in restic's words: {}",
        failed.message
    );
    assert!(failed.finish_time.is_some());
    // An operator sees it: a metric per store, and an event on the store's namespace.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let scraped = metrics().await;
        let reasons = event_reasons(&id).await;
        if scraped.contains(&format!(
            "store_platform_backup_failures_total{{store=\"{id}\",tenant=\"vault\"}} 1"
        )) && reasons.iter().any(|r| r == "BackupFailed")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{reasons:?}\n{scraped}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let store = api()
        .await
        .get_store(as_tenant(
            "vault",
            GetStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(
        store.phase,
        store_platform_proto::v1::Phase::Ready as i32,
        "a failed backup leaves the store serving"
    );

    // A new request starts a new backup.
    let next = api()
        .await
        .backup_store(request())
        .await
        .expect("backup")
        .into_inner()
        .backup
        .expect("backup");
    assert_ne!(next.id, first.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_is_not_ready_cannot_be_backed_up() {
    let env = TestEnv::shared();
    let id = unique_id("unready");
    env.set_kubelet_behaviour(
        &record::namespace_name(&id),
        &Behaviour::default().pod(
            "mariadb",
            Fate::NeverReady {
                reason: "ImagePullBackOff".into(),
                message: "no such image".into(),
            },
        ),
    )
    .await;
    api()
        .await
        .create_store(as_tenant(
            "vault",
            create_request_for(&id, Engine::Woocommerce),
        ))
        .await
        .expect("create");
    let status = api()
        .await
        .backup_store(as_tenant(
            "vault",
            BackupStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("not ready");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("only a ready or suspended store"),
        "{status:?}"
    );
    let status = api()
        .await
        .backup_store(as_tenant(
            "vault",
            BackupStoreRequest {
                store_id: "Bad_Id".into(),
            },
        ))
        .await
        .expect_err("a bad id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("store_id"), "{status:?}");
    api()
        .await
        .delete_store(as_tenant(
            "vault",
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete");
}

/// Runs the platform's backup script, as a backup Job's restic container would, against the store's repository
/// with the store's backup Secret: a real snapshot of a tiny store.
fn write_a_snapshot(store_secret: &Secret, id: &str, engine: &str) {
    write_a_snapshot_of(store_secret, ("vault", id), engine);
}

fn write_a_snapshot_of(store_secret: &Secret, (tenant, id): (&str, &str), engine: &str) {
    write_a_snapshot_on(
        store_secret,
        (tenant, id),
        (engine, "store-platform/wordpress:6.8-wc9.9"),
    );
}

/// As [`write_a_snapshot_of`], of a store running `image` (the version a backup records).
fn write_a_snapshot_on(
    store_secret: &Secret,
    (tenant, id): (&str, &str),
    (engine, image): (&str, &str),
) {
    let dir = tempfile::tempdir().expect("tmp");
    let backup_dir = dir.path().join("backup");
    std::fs::create_dir_all(backup_dir.join("files")).expect("mkdir");
    std::fs::write(backup_dir.join("database.sql"), "-- a dump\n").expect("dump");
    std::fs::write(backup_dir.join("files/upload.png"), b"not really a png").expect("file");
    let script = dir.path().join("backup.sh");
    std::fs::write(&script, store_platform_provisioner::backup::job::SCRIPT).expect("script");
    let secrets = store_secret.data.clone().expect("data");
    let output = Command::new("sh")
        .arg(&script)
        .env_clear()
        .envs(
            secrets
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())),
        )
        .envs([
            ("PATH", "/usr/bin:/bin".to_owned()),
            ("BACKUP_DIR", backup_dir.display().to_string()),
            ("TMPDIR", dir.path().display().to_string()),
            ("HOME", dir.path().display().to_string()),
            (
                "RESTIC_CACHE_DIR",
                dir.path().join("cache").display().to_string(),
            ),
            (
                "TERMINATION_LOG",
                dir.path().join("termination").display().to_string(),
            ),
            ("S3_BUCKET_LOOKUP", "path".to_owned()),
            ("S3_REGION", "us-east-1".to_owned()),
            ("STORE_ID", id.to_owned()),
            ("STORE_TENANT", tenant.to_owned()),
            ("STORE_ENGINE", engine.to_owned()),
            ("ENGINE_VERSION", image.to_owned()),
            ("DATABASE_IMAGE", "mariadb:11.4".to_owned()),
            ("STORE_SPEC", "{}".to_owned()),
            ("BACKUP_KIND", "scheduled".to_owned()),
            ("KEEP_DAILY", "7".to_owned()),
            ("KEEP_WEEKLY", "4".to_owned()),
            ("KEEP_MONTHLY", "3".to_owned()),
            ("KEEP_ON_DEMAND", "10".to_owned()),
        ])
        .output()
        .expect("sh");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_stores_backups_are_listed_for_its_tenant_only() {
    let id = ready_store("deleted", "vault", Engine::Woocommerce).await;
    // A store deleted before its first backup: it has a key, and nothing to bring back.
    let never = ready_store("unsaved", "vault", Engine::Woocommerce).await;
    let client = TestEnv::shared().client().await;
    let store_secret = Api::<Secret>::namespaced(client.clone(), &record::namespace_name(&id))
        .get("store-backup")
        .await
        .expect("the store's backup Secret");
    write_a_snapshot(&store_secret, &id, "woocommerce");

    let list = |tenant: &'static str, id: String| async move {
        api()
            .await
            .list_backups(as_tenant(tenant, ListBackupsRequest { store_id: id }))
            .await
    };
    let listed = list("vault", id.clone())
        .await
        .expect("list")
        .into_inner()
        .backups;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, BackupState::Succeeded as i32);
    assert_eq!(listed[0].kind, BackupKind::Scheduled as i32);
    assert_eq!(listed[0].engine, Engine::Woocommerce as i32);
    assert_eq!(
        listed[0].engine_version,
        "store-platform/wordpress:6.8-wc9.9"
    );
    assert!(listed[0].size_bytes > 0);
    assert_eq!(listed[0].id.len(), 64, "restic's snapshot id");

    let deleted = api()
        .await
        .delete_store(as_tenant(
            "vault",
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete")
        .into_inner();
    let kept_until = deleted
        .backups_kept_until
        .expect("how long its backups remain");
    let days = (kept_until.seconds - jiff::Timestamp::now().as_second()) as f64 / 86_400.0;
    assert!((29.9..=30.0).contains(&days), "kept {days} days");
    wait_until_gone(&id).await;
    api()
        .await
        .delete_store(as_tenant(
            "vault",
            DeleteStoreRequest {
                store_id: never.clone(),
            },
        ))
        .await
        .expect("delete");
    wait_until_gone(&never).await;
    let gone: Vec<String> = api()
        .await
        .list_deleted_stores(as_tenant(
            "vault",
            store_platform_proto::v1::ListDeletedStoresRequest {},
        ))
        .await
        .expect("ListDeletedStores")
        .into_inner()
        .stores
        .into_iter()
        .map(|s| s.store_id)
        .collect();
    assert!(gone.contains(&id), "{gone:?}");
    assert!(
        !gone.contains(&never),
        "a store with no backup has nothing to bring back: {gone:?}"
    );
    let after = list("vault", id.clone())
        .await
        .expect("list")
        .into_inner()
        .backups;
    assert_eq!(
        after.iter().map(|b| &b.id).collect::<Vec<_>>(),
        listed.iter().map(|b| &b.id).collect::<Vec<_>>(),
        "the deleted store's backups outlive it"
    );
    let status = list("other", id.clone()).await.expect_err("another tenant");
    assert_eq!(status.code(), Code::NotFound);
    let status = list("vault", unique_id("never"))
        .await
        .expect_err("no such store");
    assert_eq!(status.code(), Code::NotFound);

    // At the end of the window they are removed: the snapshots forgotten and pruned, the key deleted.
    let settings = backup_settings();
    let tomorrow = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    let kept = store_platform_provisioner::backup::sweep::once(&client, &settings, tomorrow)
        .await
        .expect("sweep");
    assert!(
        !kept.contains(&format!("vault/{id}")),
        "still in its window: {kept:?}"
    );
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(31 * 24);
    let removed = store_platform_provisioner::backup::sweep::once(&client, &settings, later)
        .await
        .expect("sweep");
    assert!(removed.contains(&format!("vault/{id}")), "{removed:?}");
    let status = list("vault", id.clone()).await.expect_err("gone for good");
    assert_eq!(status.code(), Code::NotFound);
}

/// The store's backup Secret, and a real snapshot of `engine` written into its repository; returns the snapshot id.
async fn a_backup_of(id: &str, engine: &str) -> String {
    let client = TestEnv::shared().client().await;
    let store_secret = Api::<Secret>::namespaced(client, &record::namespace_name(id))
        .get("store-backup")
        .await
        .expect("the store's backup Secret");
    write_a_snapshot(&store_secret, id, engine);
    let listed = api()
        .await
        .list_backups(as_tenant(
            "vault",
            ListBackupsRequest {
                store_id: id.to_owned(),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .backups;
    listed
        .iter()
        .find(|b| b.state == BackupState::Succeeded as i32)
        .expect("a snapshot")
        .id
        .clone()
}

fn restore(id: &str, backup: &str) -> tonic::Request<RestoreStoreRequest> {
    as_tenant(
        "vault",
        RestoreStoreRequest {
            store_id: id.to_owned(),
            backup_id: backup.to_owned(),
        },
    )
}

async fn store_now(id: &str) -> store_platform_proto::v1::Store {
    store_as("vault", id).await
}

/// Waits until the store's operation has ended (succeeded, rolled back or failed).
async fn operation_ended(id: &str) -> record::StoreStatus {
    support::wait_for_status(id, Duration::from_secs(180), |status| {
        status
            .operation
            .as_ref()
            .is_some_and(|op| op.state != record::OperationState::Running)
    })
    .await
}

async fn cron_suspended(id: &str, name: &str) -> bool {
    let client = TestEnv::shared().client().await;
    let resource = ApiResource {
        group: "batch".into(),
        version: "v1beta1".into(),
        api_version: "batch/v1beta1".into(),
        kind: "CronJob".into(),
        plural: "cronjobs".into(),
    };
    let cron_job =
        Api::<DynamicObject>::namespaced_with(client, &record::namespace_name(id), &resource)
            .get(name)
            .await
            .expect("the CronJob");
    cron_job.data["spec"]["suspend"].as_bool().unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_runs_its_steps_in_order_and_the_store_is_ready_on_the_backups_data() {
    let id = ready_store("restored", "vault", Engine::Woocommerce).await;
    let snapshot = a_backup_of(&id, "woocommerce").await;

    // Bad requests change nothing.
    for (backup, code) in [
        ("xyz", Code::InvalidArgument),
        ("deadbeefdeadbeef", Code::NotFound),
    ] {
        let status = api()
            .await
            .restore_store(restore(&id, backup))
            .await
            .expect_err(backup);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains("backup_id"), "{status:?}");
    }
    let status = api()
        .await
        .restore_store(as_tenant(
            "other",
            RestoreStoreRequest {
                store_id: id.clone(),
                backup_id: snapshot.clone(),
            },
        ))
        .await
        .expect_err("another tenant's store");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(store_now(&id).await.phase, Phase::Ready as i32);

    // Pods take a while from here, so the restore can be watched half-way.
    TestEnv::shared()
        .set_kubelet_behaviour(
            &record::namespace_name(&id),
            &Behaviour::with_delay(Duration::from_millis(1500)),
        )
        .await;
    let started = api()
        .await
        .restore_store(restore(&id, &snapshot[..8]))
        .await
        .expect("restore")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(started.phase, Phase::Restoring as i32);
    let operation = started.operation.expect("the operation");
    assert_eq!(operation.backup_id, snapshot, "the full id is recorded");
    let names: Vec<&str> = operation.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "safety-backup",
            "stop-writers",
            "restore-data",
            "start-writers",
            "verify"
        ]
    );

    // While it runs, nothing else may start.
    let again = api()
        .await
        .restore_store(restore(&id, &snapshot))
        .await
        .expect_err("one restore at a time");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("restore of backup"), "{again:?}");
    let backup = api()
        .await
        .backup_store(as_tenant(
            "vault",
            BackupStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("no backup during a restore");
    assert_eq!(backup.code(), Code::FailedPrecondition);

    // While its data is replaced, customers get the maintenance page: the storefront's Service selects its pod.
    support::wait_for_status(&id, Duration::from_secs(120), |s| {
        operation_started(s, "restore-data")
    })
    .await;
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(&id);
    let selector_of = |name: &'static str| {
        let services =
            Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &namespace);
        async move {
            services
                .get(name)
                .await
                .expect("the Service")
                .spec
                .expect("spec")
                .selector
        }
    };
    assert_eq!(
        selector_of("wordpress").await,
        Some(
            [(
                "app.kubernetes.io/name".to_owned(),
                "maintenance".to_owned()
            )]
            .into()
        )
    );
    let page = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get("maintenance")
        .await
        .expect("the page");
    assert!(
        page.data.expect("data")["index.html"].contains(&format!("Store {id} is being restored"))
    );
    Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get("maintenance")
        .await
        .expect("the page's server");

    let ended = operation_ended(&id).await;
    let operation = ended.operation.expect("operation");
    assert_eq!(
        operation.state,
        record::OperationState::Succeeded,
        "{:?}",
        operation
    );
    // Then the shop again, and no page.
    assert_eq!(
        selector_of("wordpress").await,
        Some([("app.kubernetes.io/name".to_owned(), "wordpress".to_owned())].into())
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .get_opt("maintenance")
            .await
            .expect("get")
            .is_none(),
        "the page is gone"
    );
    assert_eq!(ended.phase, record::Phase::Ready);
    assert!(
        operation
            .steps
            .iter()
            .all(|s| s.state == record::StepState::Succeeded && s.finish_time.is_some())
    );

    // What it did: a backup of the store as it was, the restore of the named snapshot, the writers back, the
    // schedules running again, and the bootstrap's verification run afresh.
    let jobs = backup_jobs(&id).await;
    let safety = jobs
        .iter()
        .find(|j| {
            j.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-pre-restore"))
        })
        .expect("the backup taken first");
    assert_eq!(
        safety.metadata.labels.as_ref().expect("labels")["store-platform.io/backup-kind"],
        "pre-restore"
    );
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(&id);
    let restores = Api::<Job>::namespaced(client.clone(), &namespace)
        .list(
            &ListParams::default()
                .labels(&format!("store-platform.io/restores={}", &snapshot[..16])),
        )
        .await
        .expect("list")
        .items;
    assert_eq!(restores.len(), 1);
    let wordpress = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get("wordpress")
        .await
        .expect("wordpress");
    assert_eq!(wordpress.spec.expect("spec").replicas, Some(1));
    assert!(!cron_suspended(&id, "wp-cron").await);
    assert!(!cron_suspended(&id, "backup").await);
    let bootstrap = Api::<Job>::namespaced(client.clone(), &namespace)
        .get("woocommerce-bootstrap")
        .await
        .expect("the bootstrap Job");
    assert!(
        bootstrap.metadata.creation_timestamp.expect("created").0 >= operation.start_time,
        "the verification ran again after the restore"
    );
    let shown = store_now(&id).await;
    assert_eq!(
        shown.operation.expect("operation").state,
        OperationState::Succeeded as i32
    );
    // The backup the restore took is the store's newest successful one; the restore's steps are events.
    let scraped = metrics().await;
    assert!(
        scraped.contains(&format!(
            "store_platform_backup_last_success_timestamp_seconds{{store=\"{id}\",tenant=\"vault\"}}"
        )),
        "{scraped}"
    );
    assert!(
        scraped.contains("store_platform_restore_duration_seconds_count"),
        "{scraped}"
    );
    let reasons = event_reasons(&id).await;
    assert!(
        reasons.iter().any(|r| r == "BackupSucceeded"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_whose_first_backup_fails_leaves_the_store_ready_and_untouched() {
    let id = ready_store("unsafe", "vault", Engine::Woocommerce).await;
    let snapshot = a_backup_of(&id, "woocommerce").await;
    pods_fail(
        &id,
        Duration::ZERO,
        "backup-",
        "Fatal: unable to save snapshot: connection refused",
    )
    .await;
    api()
        .await
        .restore_store(restore(&id, &snapshot))
        .await
        .expect("restore");
    let ended = operation_ended(&id).await;
    assert_eq!(ended.phase, record::Phase::Ready, "nothing was replaced");
    let operation = ended.operation.expect("operation");
    assert_eq!(operation.state, record::OperationState::Failed);
    assert!(
        operation.message.contains("connection refused"),
        "{}",
        operation.message
    );
    assert!(
        !cron_suspended(&id, "wp-cron").await,
        "the shop's cron runs on"
    );
    let client = TestEnv::shared().client().await;
    let wordpress = Api::<Deployment>::namespaced(client, &record::namespace_name(&id))
        .get("wordpress")
        .await
        .expect("wordpress");
    assert_eq!(wordpress.spec.expect("spec").replicas, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_that_fails_after_stopping_the_store_is_failed_and_retry_finishes_it() {
    let env = TestEnv::shared();
    let id = ready_store("retried", "vault", Engine::Woocommerce).await;
    let snapshot = a_backup_of(&id, "woocommerce").await;
    let namespace = record::namespace_name(&id);
    pods_fail(
        &id,
        Duration::ZERO,
        "restore-",
        "ERROR 2013 (HY000): Lost connection to server during query",
    )
    .await;
    api()
        .await
        .restore_store(restore(&id, &snapshot))
        .await
        .expect("restore");
    let ended = operation_ended(&id).await;
    assert_eq!(ended.phase, record::Phase::Failed);
    assert!(
        ended.failure_reason.contains("Lost connection")
            && ended.failure_reason.contains("pre-restore"),
        "the reason, and where the store as it was is kept: {}",
        ended.failure_reason
    );

    env.set_kubelet_behaviour(&namespace, &Behaviour::default())
        .await;
    let retried = api()
        .await
        .retry_store(as_tenant(
            "vault",
            RetryStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("retry")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(retried.phase, Phase::Restoring as i32);
    let ended = operation_ended(&id).await;
    assert_eq!(ended.phase, record::Phase::Ready, "{ended:?}");
    assert_eq!(
        ended.operation.expect("operation").state,
        record::OperationState::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_of_the_other_engine_is_refused_by_name() {
    let id = ready_store("mismatch", "vault", Engine::Woocommerce).await;
    let medusa = a_backup_of(&id, "medusa").await;
    let status = api()
        .await
        .restore_store(restore(&id, &medusa))
        .await
        .expect_err("another engine's backup");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("medusa") && status.message().contains("woocommerce"),
        "{status:?}"
    );
    assert_eq!(store_now(&id).await.phase, Phase::Ready as i32);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clone_runs_the_version_its_backup_was_made_on() {
    let source = ready_store("newer", "vault", Engine::Woocommerce).await;
    let client = TestEnv::shared().client().await;
    let secret = Api::<Secret>::namespaced(client, &record::namespace_name(&source))
        .get("store-backup")
        .await
        .expect("the store's backup Secret");
    // A backup of the store as it was on the newer version (the platform's default is the older one).
    write_a_snapshot_on(&secret, ("vault", &source), ("woocommerce", WOO_NEW_IMAGE));
    let snapshot = api()
        .await
        .list_backups(as_tenant(
            "vault",
            ListBackupsRequest {
                store_id: source.clone(),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .backups
        .into_iter()
        .find(|b| b.state == BackupState::Succeeded as i32)
        .expect("the snapshot")
        .id;
    let copy = unique_id("newer-copy");
    let created = api()
        .await
        .create_store(clone_request(
            "vault",
            &copy,
            Engine::Woocommerce,
            (&source, &snapshot),
        ))
        .await
        .expect("clone")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(
        created.version, WOO_NEW,
        "not the default, which is older than its data"
    );
    wait_for_phase(&copy, "ready", Duration::from_secs(120)).await;
    assert_eq!(
        image_of(&copy, "Deployment", "wordpress").await,
        WOO_NEW_IMAGE
    );
}

/// CreateStore of `id` (a WooCommerce store, for tenant `tenant`) as a clone of `store`'s backup `backup`.
fn clone_request(
    tenant: &str,
    id: &str,
    engine: Engine,
    (store, backup): (&str, &str),
) -> tonic::Request<store_platform_proto::v1::CreateStoreRequest> {
    as_tenant(
        tenant,
        support::clone_request_for(id, engine, (store, backup)),
    )
}

async fn namespace_exists(id: &str) -> bool {
    let client = TestEnv::shared().client().await;
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .get_opt(&record::namespace_name(id))
        .await
        .expect("namespace lookup")
        .is_some()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clone_is_made_from_a_backup_before_its_bootstrap_and_a_deleted_store_comes_back_as_one()
{
    let source = ready_store("original", "vault", Engine::Woocommerce).await;
    let snapshot = a_backup_of(&source, "woocommerce").await;

    // Bad requests make nothing, and say which field is wrong.
    let copy = unique_id("copy");
    for (request, code, field) in [
        (
            clone_request("other", &copy, Engine::Woocommerce, (&source, &snapshot)),
            Code::NotFound,
            "source.store_id",
        ),
        (
            clone_request(
                "vault",
                &copy,
                Engine::Woocommerce,
                ("no-such-store", &snapshot),
            ),
            Code::NotFound,
            "source.store_id",
        ),
        (
            clone_request(
                "vault",
                &copy,
                Engine::Woocommerce,
                (&source, "deadbeefdeadbeef"),
            ),
            Code::NotFound,
            "source.backup_id",
        ),
        (
            clone_request("vault", &copy, Engine::Woocommerce, (&source, "not-an-id")),
            Code::InvalidArgument,
            "source.backup_id",
        ),
        (
            clone_request("vault", &copy, Engine::Woocommerce, ("Bad_Id", &snapshot)),
            Code::InvalidArgument,
            "source.store_id",
        ),
        (
            clone_request("vault", &copy, Engine::Medusa, (&source, &snapshot)),
            Code::InvalidArgument,
            "engine",
        ),
    ] {
        let status = api()
            .await
            .create_store(request)
            .await
            .expect_err("a bad clone");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(field), "{field}: {status:?}");
        assert!(
            !namespace_exists(&copy).await,
            "a refused clone left its namespace"
        );
    }

    // A clone, from the start of the backup's id.
    let created = api()
        .await
        .create_store(clone_request(
            "vault",
            &copy,
            Engine::Woocommerce,
            (&source, &snapshot[..8]),
        ))
        .await
        .expect("clone")
        .into_inner()
        .store
        .expect("store");
    let recorded = created.source.clone().expect("the source");
    assert_eq!(
        (recorded.store_id.as_str(), recorded.backup_id.as_str()),
        (source.as_str(), snapshot.as_str()),
        "the backup's full id is recorded"
    );
    let names: Vec<&str> = created.steps.iter().map(|s| s.name.as_str()).collect();
    let restore_at = names
        .iter()
        .position(|n| *n == "restore-backup")
        .expect("a restore step");
    assert_eq!(names[restore_at + 1], "bootstrap", "{names:?}");
    // Asked again, the same clone is the answer.
    let again = api()
        .await
        .create_store(clone_request(
            "vault",
            &copy,
            Engine::Woocommerce,
            (&source, &snapshot),
        ))
        .await
        .expect("the same clone again")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(again.source, created.source);
    wait_for_phase_with_reason(&copy).await;

    // What it made: the source's repository named in a Secret of its own, read by a restore Job of the backup,
    // and a bootstrap told whose database it finds.
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(&copy);
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get("clone-source")
        .await
        .expect("the clone's source Secret");
    assert!(
        secret_text(&secret, "RESTIC_REPOSITORY").ends_with(&format!("/vault/{source}")),
        "{:?}",
        secret_text(&secret, "RESTIC_REPOSITORY")
    );
    let job = Api::<Job>::namespaced(client.clone(), &namespace)
        .get("restore-clone")
        .await
        .expect("the restore Job");
    let pod = job.spec.expect("spec").template.spec.expect("pod");
    let fetch = &pod.init_containers.as_ref().expect("init")[0];
    assert_eq!(
        fetch.env_from.as_ref().expect("env from")[0]
            .secret_ref
            .as_ref()
            .expect("secret")
            .name,
        "clone-source"
    );
    assert!(
        fetch
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "SNAPSHOT" && e.value.as_deref() == Some(snapshot.as_str()))
    );
    let bootstrap = Api::<Job>::namespaced(client.clone(), &namespace)
        .get("woocommerce-bootstrap")
        .await
        .expect("bootstrap");
    let container = &bootstrap
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    assert!(
        container
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "CLONED_FROM" && e.value.as_deref() == Some(source.as_str()))
    );
    // The store it was made from is untouched.
    assert_eq!(store_now(&source).await.phase, Phase::Ready as i32);
    let restores_there = Api::<Job>::namespaced(client.clone(), &record::namespace_name(&source))
        .list(&ListParams::default().labels("store-platform.io/restores"))
        .await
        .expect("list")
        .items;
    assert!(restores_there.is_empty());

    // A deleted store comes back as a clone of its backup, within its window.
    api()
        .await
        .delete_store(as_tenant(
            "vault",
            DeleteStoreRequest {
                store_id: source.clone(),
            },
        ))
        .await
        .expect("delete");
    wait_until_gone(&source).await;
    let deleted = |tenant: &'static str| async move {
        api()
            .await
            .list_deleted_stores(as_tenant(
                tenant,
                store_platform_proto::v1::ListDeletedStoresRequest {},
            ))
            .await
            .expect("list deleted stores")
            .into_inner()
            .stores
    };
    let listed = deleted("vault").await;
    let gone = listed
        .iter()
        .find(|s| s.store_id == source)
        .expect("the deleted store is listed");
    assert_eq!(gone.engine, Engine::Woocommerce as i32);
    assert_eq!(gone.display_name, format!("Store {source}"));
    assert!(
        gone.backups_kept_until.expect("kept until").seconds
            > gone.delete_time.expect("deleted").seconds
    );
    assert!(
        deleted("other").await.iter().all(|s| s.store_id != source),
        "another tenant's deleted stores are not listed"
    );
    // Brought back under its own id: its backups are its own again.
    api()
        .await
        .create_store(clone_request(
            "vault",
            &source,
            Engine::Woocommerce,
            (&source, &snapshot),
        ))
        .await
        .expect("a deleted store's backup, cloned");
    wait_for_phase_with_reason(&source).await;
    assert!(
        deleted("vault").await.iter().all(|s| s.store_id != source),
        "a store brought back is not deleted any more"
    );
    let backups = api()
        .await
        .list_backups(as_tenant(
            "vault",
            ListBackupsRequest {
                store_id: source.clone(),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .backups;
    assert!(
        backups.iter().any(|b| b.id == snapshot),
        "its backups came back with it"
    );
}

/// Waits until store `id` is ready, failing with its reason if it fails.
async fn wait_for_phase_with_reason(id: &str) {
    let status = support::wait_for_status(id, Duration::from_secs(180), |status| {
        matches!(status.phase, record::Phase::Ready | record::Phase::Failed)
    })
    .await;
    assert_eq!(
        status.phase,
        record::Phase::Ready,
        "{}",
        status.failure_reason
    );
}

/// A provisioner process that reconciles only [`CRASH_TENANT`]'s stores, with the platform's backup settings in its
/// environment (each flag's `env =`), as the chart gives them.
/// Kills `provisioner` as each of `steps` of store `id`'s operation runs, and starts it again each time; the one
/// running at the end.
async fn killed_at_each(
    id: &str,
    steps: &[&str],
    mut provisioner: ServiceProcess,
    (port, lease, logs): (u16, &str, &Path),
) -> ServiceProcess {
    for step in steps {
        support::wait_for_status(id, Duration::from_secs(120), |s| operation_started(s, step))
            .await;
        provisioner.kill();
        provisioner = crash_provisioner(port, lease, logs);
    }
    provisioner
}

fn crash_provisioner(port: u16, lease: &str, logs: &Path) -> ServiceProcess {
    provisioner_process(
        CRASH_TENANT,
        (port, lease, logs),
        &[("STEP_DEADLINE", "120s")],
    )
}

/// A provisioner process that reconciles only `tenant`'s stores, serving on `port` and leading through `lease`,
/// with the platform's backup and version settings in its environment (each flag's `env =`), as the chart gives
/// them, and `extra` besides.
fn provisioner_process(
    tenant: &str,
    (port, lease, logs): (u16, &str, &Path),
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let env = TestEnv::shared();
    let mut vars: Vec<(String, String)> = vec![
        (
            "KUBECONFIG".into(),
            env.kubeconfig_path().display().to_string(),
        ),
        ("GRPC_ADDR".into(), format!("127.0.0.1:{port}")),
        ("METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ("LEASE_NAME".into(), lease.to_owned()),
        ("POD_NAME".into(), format!("{tenant}-replica")),
        (
            "RECONCILE_SELECTOR".into(),
            format!("{}={tenant}", record::TENANT_LABEL),
        ),
    ];
    for flag in backup_flags().into_iter().chain(version_flags()) {
        let (name, value) = flag
            .trim_start_matches("--")
            .split_once('=')
            .expect("--name=value");
        vars.push((
            name.to_ascii_uppercase().replace('-', "_"),
            value.to_owned(),
        ));
    }
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let vars: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    ServiceProcess::start("provisioner", &vars, logs)
}

/// Whether the store's operation has started step `step`.
fn operation_started(status: &record::StoreStatus, step: &str) -> bool {
    status.operation.as_ref().is_some_and(|op| {
        op.steps
            .iter()
            .any(|s| s.name == step && s.state != record::StepState::Pending)
    })
}

async fn count_jobs(id: &str, labels: &str) -> usize {
    let client = TestEnv::shared().client().await;
    Api::<Job>::namespaced(client, &record::namespace_name(id))
        .list(&ListParams::default().labels(labels))
        .await
        .expect("list Jobs")
        .items
        .len()
}

async fn count_pods(id: &str, labels: &str) -> usize {
    let client = TestEnv::shared().client().await;
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client, &record::namespace_name(id))
        .list(&ListParams::default().labels(labels))
        .await
        .expect("list pods")
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provisioner_killed_at_each_step_of_every_operation_and_of_a_clone_converges_with_nothing_duplicated()
 {
    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let logs = tempfile::tempdir().expect("logs");
    let lease = unique_id("crash-backups");
    let port = free_port();
    let mut provisioner = crash_provisioner(port, &lease, logs.path());
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    let id = unique_id("kill");
    api.create_store(as_tenant(
        CRASH_TENANT,
        create_request_for(&id, Engine::Woocommerce),
    ))
    .await
    .expect("create");
    wait_for_phase(&id, "ready", Duration::from_secs(180)).await;
    let secret = Api::<Secret>::namespaced(env.client().await, &record::namespace_name(&id))
        .get("store-backup")
        .await
        .expect("the store's backup Secret");
    write_a_snapshot_of(&secret, (CRASH_TENANT, &id), "woocommerce");
    let snapshot = api
        .list_backups(as_tenant(
            CRASH_TENANT,
            ListBackupsRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .backups
        .into_iter()
        .find(|b| b.state == BackupState::Succeeded as i32)
        .expect("the snapshot")
        .id;

    // Every pod takes a while, so each kill lands while its step runs.
    for store in [id.clone(), format!("{id}-copy")] {
        env.set_kubelet_behaviour(
            &record::namespace_name(&store),
            &Behaviour::with_delay(Duration::from_millis(1500)),
        )
        .await;
    }
    api.restore_store(as_tenant(
        CRASH_TENANT,
        RestoreStoreRequest {
            store_id: id.clone(),
            backup_id: snapshot.clone(),
        },
    ))
    .await
    .expect("restore");
    provisioner = killed_at_each(
        &id,
        &[
            "safety-backup",
            "stop-writers",
            "restore-data",
            "start-writers",
            "verify",
        ],
        provisioner,
        (port, &lease, logs.path()),
    )
    .await;
    let ended = operation_ended(&id).await;
    let operation = ended.operation.expect("the operation");
    assert_eq!(
        (operation.state, ended.phase),
        (record::OperationState::Succeeded, record::Phase::Ready),
        "{}",
        operation.message
    );
    // One of each: the backup taken first, the restore, the verification; each Job's pod once.
    assert_eq!(
        count_jobs(&id, "store-platform.io/backup-kind=pre-restore").await,
        1
    );
    let restores = format!("store-platform.io/restores={}", &snapshot[..16]);
    assert_eq!(count_jobs(&id, &restores).await, 1);
    assert_eq!(
        count_pods(
            &id,
            &format!("job-name=restore-{}", {
                operation.start_time.strftime("%Y%m%d-%H%M%S")
            })
        )
        .await,
        1,
        "the restore ran once"
    );
    assert_eq!(
        count_jobs(&id, "app.kubernetes.io/name=woocommerce-bootstrap").await,
        1
    );

    // An upgrade, killed as each of its steps runs: its migrations ran once, and the store is on its new version.
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    api.upgrade_store(as_tenant(
        CRASH_TENANT,
        UpgradeStoreRequest {
            store_id: id.clone(),
            version: WOO_NEW.to_owned(),
        },
    ))
    .await
    .expect("upgrade");
    provisioner = killed_at_each(
        &id,
        store_platform_provisioner::operation::upgrade::STEPS,
        provisioner,
        (port, &lease, logs.path()),
    )
    .await;
    let ended = operation_ended(&id).await;
    let operation = ended.operation.clone().expect("the upgrade");
    assert_eq!(
        (operation.state, ended.phase),
        (record::OperationState::Succeeded, record::Phase::Ready),
        "{}",
        operation.message
    );
    assert_eq!(ended.version.map(|v| v.name), Some(WOO_NEW.to_owned()));
    let (_, migration, _) =
        store_platform_provisioner::operation::upgrade::job_names(operation.start_time);
    assert_eq!(
        count_jobs(&id, "store-platform.io/backup-kind=pre-upgrade").await,
        1
    );
    assert_eq!(
        count_pods(&id, &format!("job-name={migration}")).await,
        1,
        "the migrations ran once"
    );

    // A pause and a resume, each killed as each of its steps runs.
    for (call, steps) in [
        (
            "suspend",
            store_platform_provisioner::operation::suspend::SUSPEND_STEPS,
        ),
        (
            "resume",
            store_platform_provisioner::operation::suspend::RESUME_STEPS,
        ),
    ] {
        let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
        if call == "suspend" {
            api.suspend_store(suspend(CRASH_TENANT, &id))
                .await
                .expect("suspend");
        } else {
            api.resume_store(resume(CRASH_TENANT, &id))
                .await
                .expect("resume");
        }
        provisioner = killed_at_each(&id, steps, provisioner, (port, &lease, logs.path())).await;
        let ended = operation_ended(&id).await;
        let operation = ended.operation.expect("the operation");
        assert_eq!(
            operation.state,
            record::OperationState::Succeeded,
            "{call}: {}",
            operation.message
        );
        let expected = if call == "suspend" {
            record::Phase::Suspended
        } else {
            record::Phase::Ready
        };
        assert_eq!(ended.phase, expected, "{call}");
    }

    // A clone, killed as it restores and as it bootstraps.
    let copy = format!("{id}-copy");
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    api.create_store(as_tenant(
        CRASH_TENANT,
        store_platform_proto::v1::CreateStoreRequest {
            source: Some(store_platform_proto::v1::CloneSource {
                store_id: id.clone(),
                backup_id: snapshot.clone(),
            }),
            ..create_request_for(&copy, Engine::Woocommerce)
        },
    ))
    .await
    .expect("clone");
    for step in ["restore-backup", "bootstrap"] {
        support::wait_for_status(&copy, Duration::from_secs(120), |s| {
            support::started(s, step)
        })
        .await;
        provisioner.kill();
        provisioner = crash_provisioner(port, &lease, logs.path());
    }
    wait_for_phase_with_reason(&copy).await;
    assert_eq!(
        count_pods(&copy, "job-name=restore-clone").await,
        1,
        "the clone's restore ran once"
    );
    assert_eq!(
        count_pods(&copy, "job-name=woocommerce-bootstrap").await,
        1,
        "its bootstrap ran once"
    );
    assert!(provisioner.terminate(Duration::from_secs(20)), "clean exit");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clone_whose_restore_fails_is_failed_in_the_tools_words_and_retry_finishes_it() {
    let source = ready_store("unlucky", "vault", Engine::Woocommerce).await;
    let snapshot = a_backup_of(&source, "woocommerce").await;
    let copy = unique_id("unlucky-copy");
    pods_fail(
        &copy,
        Duration::ZERO,
        "restore-clone",
        "Fatal: unable to open repository: connection refused",
    )
    .await;
    api()
        .await
        .create_store(clone_request(
            "vault",
            &copy,
            Engine::Woocommerce,
            (&source, &snapshot),
        ))
        .await
        .expect("clone");
    let failed = support::wait_for_status(&copy, Duration::from_secs(120), |status| {
        matches!(status.phase, record::Phase::Ready | record::Phase::Failed)
    })
    .await;
    assert_eq!(failed.phase, record::Phase::Failed);
    assert!(
        failed.failure_reason.contains("unable to open repository"),
        "{}",
        failed.failure_reason
    );
    let bootstrap = failed
        .steps
        .iter()
        .find(|s| s.name == "bootstrap")
        .expect("bootstrap");
    assert_eq!(
        bootstrap.state,
        record::StepState::Pending,
        "the bootstrap never ran on a store without its data"
    );

    TestEnv::shared()
        .set_kubelet_behaviour(&record::namespace_name(&copy), &Behaviour::default())
        .await;
    api()
        .await
        .retry_store(as_tenant(
            "vault",
            RetryStoreRequest {
                store_id: copy.clone(),
            },
        ))
        .await
        .expect("retry");
    wait_for_phase_with_reason(&copy).await;
}

/// The tenant of the upgrade and pause tests, which have a store limit of their own.
const OPS: &str = "ops";

async fn store_as(tenant: &str, id: &str) -> store_platform_proto::v1::Store {
    api()
        .await
        .get_store(as_tenant(
            tenant,
            GetStoreRequest {
                store_id: id.to_owned(),
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .store
        .expect("store")
}

fn upgrade(id: &str, version: &str) -> tonic::Request<UpgradeStoreRequest> {
    as_tenant(
        OPS,
        UpgradeStoreRequest {
            store_id: id.to_owned(),
            version: version.to_owned(),
        },
    )
}

/// The image of the first container of Deployment `name`, of CronJob `wp-cron` and of Job `name`.
async fn image_of(id: &str, kind: &str, name: &str) -> String {
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(id);
    let spec = match kind {
        "Deployment" => {
            Api::<Deployment>::namespaced(client, &namespace)
                .get(name)
                .await
                .expect("the Deployment")
                .spec
                .expect("spec")
                .template
                .spec
        }
        _ => {
            Api::<Job>::namespaced(client, &namespace)
                .get(name)
                .await
                .expect("the Job")
                .spec
                .expect("spec")
                .template
                .spec
        }
    };
    spec.expect("pod").containers[0]
        .image
        .clone()
        .expect("an image")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_backs_up_migrates_rolls_and_verifies_and_the_store_records_its_new_version() {
    let id = ready_store("upgraded", OPS, Engine::Woocommerce).await;
    let versions = api()
        .await
        .list_versions(as_tenant(OPS, ListVersionsRequest {}))
        .await
        .expect("versions")
        .into_inner();
    let woo = versions
        .engines
        .iter()
        .find(|e| e.engine == Engine::Woocommerce as i32)
        .expect("WooCommerce's versions");
    assert_eq!(woo.versions, [WOO_OLD, WOO_NEW], "oldest first");
    assert_eq!(woo.default_version, WOO_OLD);
    let before = store_as(OPS, &id).await;
    assert_eq!(
        before.version, WOO_OLD,
        "a new store runs the default version"
    );
    let old_image = image_of(&id, "Deployment", "wordpress").await;

    // Bad requests change nothing.
    for (store, version, code, field) in [
        (id.as_str(), "9.9", Code::InvalidArgument, "version"),
        (
            id.as_str(),
            WOO_OLD,
            Code::FailedPrecondition,
            "already runs",
        ),
        ("no-such-store", WOO_NEW, Code::NotFound, "no-such-store"),
    ] {
        let status = api()
            .await
            .upgrade_store(upgrade(store, version))
            .await
            .expect_err(version);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
    }
    let status = api()
        .await
        .upgrade_store(as_tenant(
            "other",
            UpgradeStoreRequest {
                store_id: id.clone(),
                version: WOO_NEW.to_owned(),
            },
        ))
        .await
        .expect_err("another tenant's store");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(store_as(OPS, &id).await.phase, Phase::Ready as i32);

    TestEnv::shared()
        .set_kubelet_behaviour(
            &record::namespace_name(&id),
            &Behaviour::with_delay(Duration::from_millis(1500)),
        )
        .await;
    let started = api()
        .await
        .upgrade_store(upgrade(&id, WOO_NEW))
        .await
        .expect("upgrade")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(started.phase, Phase::Upgrading as i32);
    let operation = started.operation.expect("the operation");
    assert_eq!(
        (
            operation.from_version.as_str(),
            operation.to_version.as_str()
        ),
        (WOO_OLD, WOO_NEW)
    );
    let names: Vec<&str> = operation.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "safety-backup",
            "stop-writers",
            "migrate",
            "start-writers",
            "verify"
        ]
    );
    // While it runs, nothing else may start.
    for status in [
        api()
            .await
            .upgrade_store(upgrade(&id, WOO_NEW))
            .await
            .expect_err("one upgrade at a time"),
        api()
            .await
            .restore_store(as_tenant(
                OPS,
                RestoreStoreRequest {
                    store_id: id.clone(),
                    backup_id: "deadbeef".to_owned(),
                },
            ))
            .await
            .expect_err("no restore during an upgrade"),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status
                .message()
                .contains(&format!("an upgrade to version {WOO_NEW}")),
            "{status:?}"
        );
    }
    // Customers see the page while the migrations run.
    support::wait_for_status(&id, Duration::from_secs(120), |s| {
        operation_started(s, "migrate")
    })
    .await;
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(&id);
    let page = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get("maintenance")
        .await
        .expect("the page");
    assert!(page.data.expect("data")["index.html"].contains("is being upgraded"));

    let ended = operation_ended(&id).await;
    let operation = ended.operation.clone().expect("operation");
    assert_eq!(
        operation.state,
        record::OperationState::Succeeded,
        "{operation:?}"
    );
    assert_eq!(ended.phase, record::Phase::Ready);
    assert_eq!(
        ended.version.as_ref().map(|v| v.name.as_str()),
        Some(WOO_NEW)
    );
    assert_eq!(store_as(OPS, &id).await.version, WOO_NEW);
    // Its new images were applied with the settings of now: no reconfigure follows the upgrade (the leader looks
    // every 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = records(std::slice::from_ref(&id)).await.remove(0);
    assert_eq!(
        after.status.operation.as_ref().map(|op| op.kind),
        Some(record::OperationKind::Upgrade),
        "{after:?}"
    );

    // What it did: a backup first, the migrations in the new image, WordPress and its cron on the new image, and
    // the verification run afresh in it.
    let (safety, migration, _) =
        store_platform_provisioner::operation::upgrade::job_names(operation.start_time);
    let jobs = backup_jobs(&id).await;
    let taken = jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some(safety.as_str()))
        .expect("the backup taken first");
    assert_eq!(
        taken.metadata.labels.as_ref().expect("labels")["store-platform.io/backup-kind"],
        "pre-upgrade"
    );
    assert_ne!(old_image, WOO_NEW_IMAGE);
    assert_eq!(image_of(&id, "Job", &migration).await, WOO_NEW_IMAGE);
    assert_eq!(
        image_of(&id, "Deployment", "wordpress").await,
        WOO_NEW_IMAGE
    );
    assert_eq!(
        image_of(&id, "Job", "woocommerce-bootstrap").await,
        WOO_NEW_IMAGE
    );
    let bootstrap = Api::<Job>::namespaced(client.clone(), &namespace)
        .get("woocommerce-bootstrap")
        .await
        .expect("the bootstrap Job");
    assert!(bootstrap.metadata.creation_timestamp.expect("created").0 >= operation.start_time);
    assert!(!cron_suspended(&id, "wp-cron").await);
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .get_opt("maintenance")
            .await
            .expect("get")
            .is_none(),
        "the page is gone"
    );

    // Back is not a way an upgrade goes.
    let status = api()
        .await
        .upgrade_store(upgrade(&id, WOO_OLD))
        .await
        .expect_err("a downgrade");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("version") && status.message().contains("older"),
        "{status:?}"
    );
    let scraped = metrics().await;
    assert!(
        scraped.contains("store_platform_upgrades_total{outcome=\"succeeded\"}"),
        "{scraped}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_migration_rolls_back_to_the_backup_taken_first_and_the_old_version() {
    let id = ready_store("rolled", OPS, Engine::Woocommerce).await;
    let old_image = image_of(&id, "Deployment", "wordpress").await;
    let snapshot = "5f3a9c1e2b7d4a6f8e0c1b2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a";
    TestEnv::shared()
        .set_kubelet_behaviour(
            &record::namespace_name(&id),
            &Behaviour::default()
                .pod(
                    "backup-",
                    Fate::SucceedSaying {
                        message: format!("snapshot={snapshot} bytes=2048 added=2048"),
                    },
                )
                .pod(
                    "upgrade-",
                    Fate::Fail {
                        reason: "Error".into(),
                        message: "upgrade: FAILED: wp core update-db failed".into(),
                    },
                ),
        )
        .await;
    api()
        .await
        .upgrade_store(upgrade(&id, WOO_NEW))
        .await
        .expect("upgrade");
    let ended = operation_ended(&id).await;
    let operation = ended.operation.clone().expect("operation");
    assert_eq!(
        operation.state,
        record::OperationState::RolledBack,
        "{operation:?}"
    );
    assert_eq!(ended.phase, record::Phase::Ready, "READY, not stuck");
    assert_eq!(
        ended.version.as_ref().map(|v| v.name.as_str()),
        Some(WOO_OLD)
    );
    assert!(
        operation.message.contains("update-db failed") && operation.message.contains("rolled back"),
        "{}",
        operation.message
    );
    let names: Vec<(&str, record::StepState)> = operation
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.state))
        .collect();
    use record::StepState::{Failed, Pending, Succeeded};
    assert_eq!(
        names,
        [
            ("safety-backup", Succeeded),
            ("stop-writers", Succeeded),
            ("migrate", Failed),
            ("start-writers", Pending),
            ("verify", Pending),
            ("rollback-stop-writers", Succeeded),
            ("rollback-restore", Succeeded),
            ("rollback-start-writers", Succeeded),
            ("rollback-verify", Succeeded),
        ]
    );
    // The database and files came back from the backup the upgrade took, and the store runs its old images.
    let (_, _, rollback) =
        store_platform_provisioner::operation::upgrade::job_names(operation.start_time);
    let client = TestEnv::shared().client().await;
    let restore_job = Api::<Job>::namespaced(client, &record::namespace_name(&id))
        .get(&rollback)
        .await
        .expect("the rollback's restore Job");
    assert_eq!(
        restore_job.metadata.labels.expect("labels")["store-platform.io/restores"],
        &snapshot[..16]
    );
    assert_eq!(image_of(&id, "Deployment", "wordpress").await, old_image);
    assert_eq!(
        image_of(&id, "Job", "woocommerce-bootstrap").await,
        old_image
    );
    assert_eq!(store_as(OPS, &id).await.version, WOO_OLD);
    let scraped = metrics().await;
    assert!(
        scraped.contains("store_platform_upgrades_total{outcome=\"rolled_back\"}"),
        "{scraped}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_whose_first_backup_fails_leaves_the_store_ready_on_its_version() {
    let id = ready_store("unbacked", OPS, Engine::Woocommerce).await;
    pods_fail(
        &id,
        Duration::ZERO,
        "backup-",
        "Fatal: unable to save snapshot: connection refused",
    )
    .await;
    api()
        .await
        .upgrade_store(upgrade(&id, ""))
        .await
        .expect_err("the default is the version it runs");
    api()
        .await
        .upgrade_store(upgrade(&id, WOO_NEW))
        .await
        .expect("upgrade");
    let ended = operation_ended(&id).await;
    assert_eq!(ended.phase, record::Phase::Ready, "nothing was changed");
    let operation = ended.operation.expect("operation");
    assert_eq!(operation.state, record::OperationState::Failed);
    assert!(
        operation.message.contains("connection refused"),
        "{}",
        operation.message
    );
    assert_eq!(ended.version.map(|v| v.name), Some(WOO_OLD.to_owned()));
    assert!(
        !cron_suspended(&id, "wp-cron").await,
        "the shop's cron runs on"
    );
}

/// The replicas of the store's Deployment or StatefulSet `name`.
async fn replicas(id: &str, kind: &str, name: &str) -> i32 {
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(id);
    let replicas = if kind == "Deployment" {
        Api::<Deployment>::namespaced(client, &namespace)
            .get(name)
            .await
            .expect("the Deployment")
            .spec
            .and_then(|s| s.replicas)
    } else {
        Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client, &namespace)
            .get(name)
            .await
            .expect("the StatefulSet")
            .spec
            .and_then(|s| s.replicas)
    };
    replicas.unwrap_or(1)
}

async fn wait_for_replicas(id: &str, kind: &str, name: &str, wanted: i32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while replicas(id, kind, name).await != wanted {
        assert!(
            std::time::Instant::now() < deadline,
            "{kind} {name} of {id} never had {wanted} replicas"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn suspend(tenant: &str, id: &str) -> tonic::Request<SuspendStoreRequest> {
    as_tenant(
        tenant,
        SuspendStoreRequest {
            store_id: id.to_owned(),
        },
    )
}

fn resume(tenant: &str, id: &str) -> tonic::Request<ResumeStoreRequest> {
    as_tenant(
        tenant,
        ResumeStoreRequest {
            store_id: id.to_owned(),
        },
    )
}

/// Pauses or resumes store `id` of tenant OPS: the call answers with the store in its operation's phase, and the
/// operation succeeds; the store's status then (its operation's start, in `operation`).
async fn pause_or_resume(id: &str, kind: record::OperationKind) -> record::StoreStatus {
    let answered = if kind == record::OperationKind::Suspend {
        api()
            .await
            .suspend_store(suspend(OPS, id))
            .await
            .map(|r| r.into_inner().store)
    } else {
        api()
            .await
            .resume_store(resume(OPS, id))
            .await
            .map(|r| r.into_inner().store)
    }
    .expect("the call")
    .expect("the store");
    let phase = if kind == record::OperationKind::Suspend {
        Phase::Suspended
    } else {
        Phase::Resuming
    };
    assert_eq!(answered.phase, phase as i32);
    let ended = operation_ended(id).await;
    let operation = ended.operation.clone().expect("operation");
    assert_eq!(operation.kind, kind);
    assert_eq!(
        operation.state,
        record::OperationState::Succeeded,
        "{operation:?}"
    );
    // A step waiting on what no watch reports (the pods stopping: the simulated kubelet takes a second, as a real
    // one does, after the Deployment already says they are gone) is looked at again, not left to the wake at its
    // deadline (30 s here), which would still have ended it.
    for step in &operation.steps {
        let took = step
            .finish_time
            .zip(step.start_time)
            .map(|(end, start)| end.duration_since(start).as_secs_f64())
            .unwrap_or_default();
        assert!(
            took < 15.0,
            "step {} took {took:.1} s, as if woken only by its deadline: {operation:?}",
            step.name
        );
    }
    ended
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_store_stops_its_pods_shows_a_paused_page_keeps_its_backups_and_resumes_to_ready()
{
    let id = ready_store("paused", OPS, Engine::Medusa).await;
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(&id);

    // Bad requests change nothing.
    let status = api()
        .await
        .suspend_store(suspend("other", &id))
        .await
        .expect_err("another tenant's store");
    assert_eq!(status.code(), Code::NotFound);
    let status = api()
        .await
        .resume_store(resume(OPS, "no-such-store"))
        .await
        .expect_err("no such store");
    assert_eq!(status.code(), Code::NotFound);
    let ready = api()
        .await
        .resume_store(resume(OPS, &id))
        .await
        .expect("resuming a ready store is harmless")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(ready.phase, Phase::Ready as i32);

    let ended = pause_or_resume(&id, record::OperationKind::Suspend).await;
    assert_eq!(ended.phase, record::Phase::Suspended);
    for (kind, name) in [
        ("Deployment", "medusa-server"),
        ("Deployment", "medusa-worker"),
        ("Deployment", "storefront"),
        ("StatefulSet", "postgres"),
        ("StatefulSet", "redis"),
    ] {
        assert_eq!(
            replicas(&id, kind, name).await,
            0,
            "{kind} {name} is stopped"
        );
    }
    // Its address answers with the paused page: the public Services select the page's pod.
    for service in ["storefront", "medusa-server"] {
        let selector =
            Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &namespace)
                .get(service)
                .await
                .expect("the Service")
                .spec
                .expect("spec")
                .selector
                .expect("selector");
        assert_eq!(
            selector["app.kubernetes.io/name"], "maintenance",
            "{service}"
        );
    }
    let page = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get("maintenance")
        .await
        .expect("the page");
    assert!(page.data.expect("data")["index.html"].contains("is paused"));
    assert!(!cron_suspended(&id, "backup").await, "backups go on");
    // Suspending again is harmless; what needs a running store is refused, saying why.
    let again = api()
        .await
        .suspend_store(suspend(OPS, &id))
        .await
        .expect("again")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(again.phase, Phase::Suspended as i32);
    let status = api()
        .await
        .upgrade_store(as_tenant(
            OPS,
            UpgradeStoreRequest {
                store_id: id.clone(),
                version: String::new(),
            },
        ))
        .await
        .expect_err("no upgrade of a paused store");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("suspended"), "{status:?}");

    // A backup of the paused store: its databases run while the backup does, and stop again after.
    TestEnv::shared()
        .set_kubelet_behaviour(
            &namespace,
            &support::medusa_behaviour(Duration::from_secs(3)),
        )
        .await;
    api()
        .await
        .backup_store(as_tenant(
            OPS,
            BackupStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("a paused store is backed up");
    wait_for_replicas(&id, "StatefulSet", "postgres", 1).await;
    assert_eq!(
        replicas(&id, "Deployment", "medusa-server").await,
        0,
        "the shop stays paused"
    );
    wait_for_replicas(&id, "StatefulSet", "postgres", 0).await;
    assert!(
        backup_jobs(&id)
            .await
            .iter()
            .all(|job| job.status.as_ref().and_then(|s| s.succeeded) == Some(1)),
        "the backup finished"
    );
    TestEnv::shared()
        .set_kubelet_behaviour(&namespace, &support::medusa_behaviour(Duration::ZERO))
        .await;

    let ended = pause_or_resume(&id, record::OperationKind::Resume).await;
    assert_eq!(ended.phase, record::Phase::Ready);
    for (kind, name) in [
        ("Deployment", "medusa-server"),
        ("Deployment", "storefront"),
        ("StatefulSet", "postgres"),
        ("StatefulSet", "redis"),
    ] {
        assert_eq!(
            replicas(&id, kind, name).await,
            1,
            "{kind} {name} runs again"
        );
    }
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .get_opt("maintenance")
            .await
            .expect("get")
            .is_none(),
        "the page is gone"
    );
    let bootstrap = Api::<Job>::namespaced(client.clone(), &namespace)
        .get("medusa-bootstrap")
        .await
        .expect("the bootstrap Job");
    assert!(
        bootstrap.metadata.creation_timestamp.expect("created").0
            >= ended.operation.expect("the resume").start_time,
        "the order check ran again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_is_provisioning_cannot_be_paused() {
    let id = unique_id("early");
    TestEnv::shared()
        .set_kubelet_behaviour(
            &record::namespace_name(&id),
            &Behaviour::with_delay(Duration::from_secs(30)),
        )
        .await;
    api()
        .await
        .create_store(as_tenant(OPS, create_request_for(&id, Engine::Woocommerce)))
        .await
        .expect("create");
    let status = api()
        .await
        .suspend_store(suspend(OPS, &id))
        .await
        .expect_err("provisioning");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("only a ready store"),
        "{status:?}"
    );
    let status = api()
        .await
        .resume_store(resume(OPS, &id))
        .await
        .expect_err("not suspended");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let shown = store_as(OPS, &id).await;
    assert!(shown.operation.is_none(), "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_from_before_versions_were_recorded_keeps_the_images_it_runs_through_a_pause() {
    let id = ready_store("unversioned", OPS, Engine::Woocommerce).await;
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(&id);
    // A store made before versions were recorded: no version in its record, and an image the platform no longer
    // offers in its Deployment.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut status = support::wait_for_status(&id, Duration::from_secs(10), |_| true).await;
    status.version = None;
    namespaces
        .patch(
            &namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                record::STATUS_ANNOTATION: serde_json::to_string(&status).expect("json"),
            }}})),
        )
        .await
        .expect("the record as it was written before");
    let old_image = "store-platform/wordpress:6.7-wc9.8";
    Api::<Deployment>::namespaced(client.clone(), &namespace)
        .patch(
            "wordpress",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(serde_json::json!({"spec": {"template": {"spec": {
                "containers": [{"name": "wordpress", "image": old_image}],
            }}}})),
        )
        .await
        .expect("the image it was made with");
    assert_eq!(store_as(OPS, &id).await.version, "", "no version recorded");

    api()
        .await
        .suspend_store(suspend(OPS, &id))
        .await
        .expect("suspend");
    let paused = operation_ended(&id).await;
    let version = paused.version.expect("recorded before the pause began");
    assert_eq!(version.name, "", "an image no version offered has no name");
    assert_eq!(version.images["wordpress"], old_image);
    api()
        .await
        .resume_store(resume(OPS, &id))
        .await
        .expect("resume");
    let resumed = operation_ended(&id).await;
    assert_eq!(resumed.phase, record::Phase::Ready);
    assert_eq!(
        image_of(&id, "Deployment", "wordpress").await,
        old_image,
        "it started again on the image it ran, not on the platform's default"
    );
}

/// The records of stores `ids`, as the API server holds them now.
async fn records(ids: &[String]) -> Vec<record::StoreRecord> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(TestEnv::shared().client().await);
    let mut records = Vec::new();
    for id in ids {
        let namespace = namespaces
            .get(&record::namespace_name(id))
            .await
            .expect("the store's namespace");
        records.push(record::StoreRecord::from_namespace(&namespace).expect("a store record"));
    }
    records
}

/// Removes every store of `tenant` an earlier run on this control plane left, and waits until they are gone: a test
/// whose provisioner acts on all its tenant's stores starts from none.
async fn remove_stores_of(tenant: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(TestEnv::shared().client().await);
    let left = namespaces
        .list(&ListParams::default().labels(&format!("{}={tenant}", record::TENANT_LABEL)))
        .await
        .expect("list the tenant's stores")
        .items;
    for namespace in &left {
        let name = namespace.metadata.name.clone().expect("a name");
        let _ = namespaces.delete(&name, &Default::default()).await;
    }
    for namespace in left {
        let id = namespace.metadata.name.expect("a name");
        wait_until_gone(id.trim_start_matches("store-")).await;
    }
}

/// `count` READY WooCommerce stores of `tenant`, made through `api`, sorted by id.
async fn ready_stores_through(
    api: &mut ProvisionerServiceClient<Channel>,
    (tenant, prefix): (&str, &str),
    count: usize,
) -> Vec<String> {
    let mut ids: Vec<String> = (0..count).map(|_| unique_id(prefix)).collect();
    ids.sort();
    for id in &ids {
        TestEnv::shared()
            .set_kubelet_behaviour(
                &record::namespace_name(id),
                &Behaviour::with_delay(Duration::from_millis(1500)),
            )
            .await;
        api.create_store(as_tenant(
            tenant,
            create_request_for(id, Engine::Woocommerce),
        ))
        .await
        .expect("create");
    }
    for id in &ids {
        wait_for_phase(id, "ready", Duration::from_secs(180)).await;
    }
    ids
}

/// A fleet upgrade of the WooCommerce stores on `from` to `to`.
fn start_fleet_upgrade(
    from: &str,
    to: &str,
    max_parallel: i32,
) -> tonic::Request<store_platform_proto::v1::StartFleetUpgradeRequest> {
    support::as_admin(
        FLEET_TENANT,
        store_platform_proto::v1::StartFleetUpgradeRequest {
            engine: Engine::Woocommerce as i32,
            from_version: from.to_owned(),
            to_version: to.to_owned(),
            max_parallel,
        },
    )
}

/// Follows fleet upgrade `id` until it ends, polling it and its stores' phases; the run as it ended, and the most
/// stores seen upgrading at once before and after the canary was upgraded. Kills `provisioner` and starts it again
/// (with `restart`) the first time two stores upgrade at once.
async fn follow_fleet_upgrade(
    (id, port): (&str, u16),
    mut provisioner: ServiceProcess,
    restart: impl Fn() -> ServiceProcess,
) -> (
    store_platform_proto::v1::FleetUpgrade,
    (usize, usize),
    ServiceProcess,
) {
    use store_platform_proto::v1::{FleetUpgradeState, GetFleetUpgradeRequest};
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let (mut before_canary, mut after_canary, mut restarted) = (0, 0, false);
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the fleet upgrade did not end"
        );
        let run = match api
            .get_fleet_upgrade(support::as_admin(
                FLEET_TENANT,
                GetFleetUpgradeRequest {
                    fleet_upgrade_id: id.to_owned(),
                },
            ))
            .await
        {
            Ok(response) => response.into_inner().fleet_upgrade.expect("the run"),
            // The provisioner is starting.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                api = ProvisionerServiceClient::new(provisioner.channel(port).await);
                continue;
            }
        };
        // The stores as one list reads them (one moment of the API server's), the canary's end among them.
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
            Api::all(TestEnv::shared().client().await);
        let stores: Vec<record::StoreRecord> = namespaces
            .list(
                &ListParams::default().labels(&format!("{}={FLEET_TENANT}", record::TENANT_LABEL)),
            )
            .await
            .expect("list the stores")
            .items
            .iter()
            .filter_map(|ns| record::StoreRecord::from_namespace(ns).ok())
            .filter(|s| run.stores.iter().any(|r| r.store_id == s.id))
            .collect();
        let upgrading = stores
            .iter()
            .filter(|s| s.status.phase == record::Phase::Upgrading)
            .count();
        let canary_upgraded = stores.iter().any(|s| {
            s.id == run.stores[0].store_id
                && s.status.version.as_ref().map(|v| v.name.as_str()) == Some(WOO_NEW)
        });
        if canary_upgraded {
            after_canary = after_canary.max(upgrading);
        } else {
            before_canary = before_canary.max(upgrading);
        }
        if run.state != FleetUpgradeState::Running as i32 {
            return (run, (before_canary, after_canary), provisioner);
        }
        if upgrading >= 2 && !restarted {
            // Killed in the middle of the run: the next one goes on from its record.
            provisioner.kill();
            provisioner = restart();
            restarted = true;
            api = ProvisionerServiceClient::new(provisioner.channel(port).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_upgrade_goes_canary_first_then_at_most_its_limit_survives_a_restart_and_stops_at_a_failure()
 {
    use store_platform_proto::v1::{
        FleetStoreState, FleetUpgradeState, GetFleetUpgradeRequest, ListFleetUpgradesRequest,
        StopFleetUpgradeRequest,
    };
    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let logs = tempfile::tempdir().expect("logs");
    let lease = unique_id("fleet");
    let port = free_port();
    remove_stores_of(FLEET_TENANT).await;
    let start = || provisioner_process(FLEET_TENANT, (port, &lease, logs.path()), &[]);
    let mut provisioner = start();
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    let ids = ready_stores_through(&mut api, (FLEET_TENANT, "fleet"), 4).await;

    // Bad requests: a tenant's caller, an unknown or older version, no version to upgrade from, a run that is not.
    let status = api
        .start_fleet_upgrade(as_tenant(
            FLEET_TENANT,
            start_fleet_upgrade(WOO_OLD, WOO_NEW, 2).into_inner(),
        ))
        .await
        .expect_err("a tenant's caller");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    for (from, to, max_parallel, field) in [
        (WOO_OLD, "9.9", 2, "to_version"),
        ("", WOO_NEW, 2, "from_version"),
        (WOO_NEW, WOO_OLD, 2, "to_version"),
        (WOO_OLD, WOO_NEW, 51, "max_parallel"),
        (WOO_OLD, WOO_NEW, -1, "max_parallel"),
    ] {
        let status = api
            .start_fleet_upgrade(start_fleet_upgrade(from, to, max_parallel))
            .await
            .expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
    }
    let status = api
        .get_fleet_upgrade(support::as_admin(
            FLEET_TENANT,
            GetFleetUpgradeRequest {
                fleet_upgrade_id: "woocommerce-20260101-000000-beef".to_owned(),
            },
        ))
        .await
        .expect_err("no such run");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let run = api
        .start_fleet_upgrade(start_fleet_upgrade(WOO_OLD, WOO_NEW, 2))
        .await
        .expect("start")
        .into_inner()
        .fleet_upgrade
        .expect("the run");
    assert_eq!(run.state, FleetUpgradeState::Running as i32);
    assert_eq!(run.to_version, WOO_NEW);
    let taken: Vec<&str> = run.stores.iter().map(|s| s.store_id.as_str()).collect();
    assert_eq!(taken, ids, "every store on the version, in order of id");
    let status = api
        .start_fleet_upgrade(start_fleet_upgrade(WOO_OLD, WOO_NEW, 2))
        .await
        .expect_err("one run per engine at a time");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(&run.id), "{status:?}");

    let (ended, (before_canary, after_canary), mut provisioner) =
        follow_fleet_upgrade((&run.id, port), provisioner, start).await;
    assert_eq!(
        ended.state,
        FleetUpgradeState::Succeeded as i32,
        "{ended:?}"
    );
    assert!(
        ended
            .stores
            .iter()
            .all(|s| s.state == FleetStoreState::Upgraded as i32),
        "{ended:?}"
    );
    println!(
        "stores upgrading at once: {before_canary} before the canary was upgraded, {after_canary} after"
    );
    assert_eq!(before_canary, 1, "the canary upgrades alone");
    assert_eq!(after_canary, 2, "then at most two at once");
    for store in records(&ids).await {
        assert_eq!(store.status.version.expect("version").name, WOO_NEW);
        assert_eq!(store.status.phase, record::Phase::Ready);
    }

    // A run whose canary's migration fails stops there: the canary rolls back, no other store is touched.
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    let more = ready_stores_through(&mut api, (FLEET_TENANT, "fleet-more"), 3).await;
    // Its backup ends as a real one does (naming its snapshot, which the rollback restores); its migration fails.
    TestEnv::shared()
        .set_kubelet_behaviour(
            &record::namespace_name(&more[0]),
            &Behaviour::with_delay(Duration::from_millis(500))
                .pod(
                    "backup-",
                    Fate::SucceedSaying {
                        message: "snapshot=5f3a9c1e2b7d4a6f8e0c1b2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a \
                                  bytes=2048 added=2048"
                            .into(),
                    },
                )
                .pod(
                    "upgrade-",
                    Fate::Fail {
                        reason: "Error".into(),
                        message: "upgrade: FAILED: wp core update-db failed".into(),
                    },
                ),
        )
        .await;
    let failing = api
        .start_fleet_upgrade(start_fleet_upgrade(WOO_OLD, WOO_NEW, 3))
        .await
        .expect("start")
        .into_inner()
        .fleet_upgrade
        .expect("the run");
    let taken: Vec<&str> = failing.stores.iter().map(|s| s.store_id.as_str()).collect();
    assert_eq!(taken, more, "the stores still on the old version");
    let ended = loop {
        let run = api
            .get_fleet_upgrade(support::as_admin(
                FLEET_TENANT,
                GetFleetUpgradeRequest {
                    fleet_upgrade_id: failing.id.clone(),
                },
            ))
            .await
            .expect("get")
            .into_inner()
            .fleet_upgrade
            .expect("the run");
        if run.state != FleetUpgradeState::Running as i32 {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(ended.state, FleetUpgradeState::Failed as i32, "{ended:?}");
    assert_eq!(ended.stores[0].state, FleetStoreState::Failed as i32);
    assert!(ended.stores[0].message.contains("update-db"), "{ended:?}");
    assert!(ended.message.contains(&more[0]), "{}", ended.message);
    assert!(
        ended.stores[1..]
            .iter()
            .all(|s| s.state == FleetStoreState::Pending as i32),
        "{ended:?}"
    );
    for store in records(&more).await {
        assert_eq!(store.status.phase, record::Phase::Ready, "{}", store.id);
        assert_eq!(store.status.version.expect("version").name, WOO_OLD);
    }

    // An operator stops a run: nothing further starts, and it ends STOPPED once what runs has ended.
    TestEnv::shared()
        .set_kubelet_behaviour(
            &record::namespace_name(&more[0]),
            &Behaviour::with_delay(Duration::from_millis(1500)),
        )
        .await;
    let stopping = api
        .start_fleet_upgrade(start_fleet_upgrade(WOO_OLD, WOO_NEW, 3))
        .await
        .expect("start")
        .into_inner()
        .fleet_upgrade
        .expect("the run");
    let stop = |tenant_scope: bool, id: &str| {
        let request = StopFleetUpgradeRequest {
            fleet_upgrade_id: id.to_owned(),
        };
        if tenant_scope {
            as_tenant(FLEET_TENANT, request)
        } else {
            support::as_admin(FLEET_TENANT, request)
        }
    };
    let status = api
        .stop_fleet_upgrade(stop(true, &stopping.id))
        .await
        .expect_err("a tenant's caller");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = api
        .stop_fleet_upgrade(stop(false, "woocommerce-20260101-000000-beef"))
        .await
        .expect_err("no such run");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    api.stop_fleet_upgrade(stop(false, &stopping.id))
        .await
        .expect("stop");
    let stopped = loop {
        let now = api
            .stop_fleet_upgrade(stop(false, &stopping.id))
            .await
            .expect("stopping again changes nothing")
            .into_inner()
            .fleet_upgrade
            .expect("the run");
        if now.state != FleetUpgradeState::Running as i32 {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        stopped.state,
        FleetUpgradeState::Stopped as i32,
        "{stopped:?}"
    );
    assert_eq!(stopped.stopped_by, FLEET_TENANT);
    assert!(
        stopped.stores[1..]
            .iter()
            .all(|s| s.state == FleetStoreState::Pending as i32),
        "{stopped:?}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    for store in records(&more[1..]).await {
        assert_eq!(store.status.version.expect("version").name, WOO_OLD);
        assert_eq!(store.status.phase, record::Phase::Ready);
    }

    let listed = api
        .list_fleet_upgrades(support::as_admin(FLEET_TENANT, ListFleetUpgradesRequest {}))
        .await
        .expect("list")
        .into_inner()
        .fleet_upgrades;
    let listed: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        listed,
        [stopping.id.as_str(), failing.id.as_str(), run.id.as_str()],
        "newest first"
    );
}

/// The value of `name` in the environment of the first container of store `id`'s Deployment `deployment`.
async fn env_of(id: &str, deployment: &str, name: &str) -> Option<String> {
    let client = TestEnv::shared().client().await;
    let deployment = Api::<Deployment>::namespaced(client, &record::namespace_name(id))
        .get(deployment)
        .await
        .expect("the Deployment");
    deployment.spec?.template.spec?.containers[0]
        .env
        .clone()?
        .into_iter()
        .find(|var| var.name == name)?
        .value
}

/// The generation of store `id`'s `kind` (Deployment or StatefulSet) `name`: it counts changes to its spec.
async fn generation_of(id: &str, kind: &str, name: &str) -> i64 {
    let client = TestEnv::shared().client().await;
    let namespace = record::namespace_name(id);
    let meta = match kind {
        "Deployment" => {
            Api::<Deployment>::namespaced(client, &namespace)
                .get(name)
                .await
                .expect("the Deployment")
                .metadata
        }
        _ => {
            Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client, &namespace)
                .get(name)
                .await
                .expect("the StatefulSet")
                .metadata
        }
    };
    meta.generation.expect("a generation")
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_settings_reach_existing_stores_one_at_a_time_and_restart_only_what_they_change() {
    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let logs = tempfile::tempdir().expect("logs");
    let lease = unique_id("settings");
    let port = free_port();
    let relay = |host: &'static str| {
        vec![
            ("SMTP_HOST", host),
            ("SMTP_FROM", "shop@example.com"),
            ("SMTP_SECURITY", "none"),
            ("SMTP_PORT", "25"),
        ]
    };
    remove_stores_of(SETTINGS_TENANT).await;
    let start = |extra: &[(&str, &str)]| {
        provisioner_process(SETTINGS_TENANT, (port, &lease, logs.path()), extra)
    };
    let mut provisioner = start(&relay("relay-one.example"));
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    let ids = ready_stores_through(&mut api, (SETTINGS_TENANT, "settings"), 2).await;
    let first = records(&ids).await;
    let generation = first[0].status.settings_generation.clone();
    assert_eq!(
        generation.len(),
        12,
        "a new store records its settings generation"
    );
    assert_eq!(first[1].status.settings_generation, generation);
    assert_eq!(
        store_as(SETTINGS_TENANT, &ids[0]).await.settings_generation,
        generation,
        "the API shows it"
    );
    assert_eq!(
        env_of(&ids[0], "wordpress", "STORE_SMTP_HOST")
            .await
            .as_deref(),
        Some("relay-one.example")
    );
    let mut databases = Vec::new();
    for id in &ids {
        databases.push(generation_of(id, "StatefulSet", "mariadb").await);
    }

    // The relay moves: the next provisioner brings both stores to the new generation, one at a time.
    provisioner.kill();
    let provisioner = start(&relay("relay-two.example"));
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut most_at_once = 0;
    let changed = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the new settings did not reach the stores"
        );
        let now = records(&ids).await;
        let reconfiguring = now
            .iter()
            .filter(|s| {
                s.status.operation.as_ref().is_some_and(|op| {
                    op.kind == record::OperationKind::Reconfigure
                        && op.state == record::OperationState::Running
                })
            })
            .count();
        most_at_once = most_at_once.max(reconfiguring);
        if now.iter().all(|s| {
            s.status.settings_generation != generation
                && s.status.operation.as_ref().is_some_and(|op| {
                    op.kind == record::OperationKind::Reconfigure
                        && op.state != record::OperationState::Running
                })
        }) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(most_at_once, 1, "one store at a time");
    let new_generation = changed[0].status.settings_generation.clone();
    for (store, database) in changed.iter().zip(&databases) {
        let operation = store.status.operation.as_ref().expect("the reconfigure");
        assert_eq!(
            operation.state,
            record::OperationState::Succeeded,
            "{operation:?}"
        );
        assert_eq!(operation.settings_generation, new_generation);
        assert_eq!(store.status.settings_generation, new_generation);
        assert_eq!(store.status.phase, record::Phase::Ready);
        assert_eq!(
            env_of(&store.id, "wordpress", "STORE_SMTP_HOST")
                .await
                .as_deref(),
            Some("relay-two.example"),
            "the new relay reached WordPress"
        );
        assert_eq!(
            generation_of(&store.id, "StatefulSet", "mariadb").await,
            *database,
            "the database's spec did not change, so it did not restart"
        );
    }
    let wordpress: Vec<i64> = {
        let mut generations = Vec::new();
        for id in &ids {
            generations.push(generation_of(id, "Deployment", "wordpress").await);
        }
        generations
    };

    // A setting that shapes no WooCommerce object (Medusa's database volume) changes nothing of these stores.
    drop(provisioner);
    let mut provisioner = start(
        &[
            relay("relay-two.example").as_slice(),
            &[("POSTGRES_STORAGE", "5Gi")],
        ]
        .concat(),
    );
    // Once the new provisioner leads (a store it makes gets ready), its rollout has had time to decide.
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    let later = ready_stores_through(&mut api, (SETTINGS_TENANT, "settings-later"), 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = records(&ids).await;
    for ((store, before), id) in after.iter().zip(&changed).zip(&ids) {
        assert_eq!(store.status.settings_generation, new_generation);
        assert_eq!(
            store.status.operation, before.status.operation,
            "no new reconfigure"
        );
        assert_eq!(
            generation_of(id, "Deployment", "wordpress").await,
            wordpress[ids.iter().position(|i| i == id).expect("index")]
        );
    }
    let later = &records(&later).await[0];
    assert_eq!(
        later.status.settings_generation, new_generation,
        "the same generation for a new store"
    );
    assert_eq!(
        later.status.operation, None,
        "made with the settings of now"
    );
}
