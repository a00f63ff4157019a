//! The dashboard in a real browser against the whole stack: the provisioner, the status service and the gateway
//! (serving the built `web/dist`) as processes, on the local control plane with the simulated kubelet, and backups
//! on, to moto's S3 server (from PyPI) on loopback. The browser steps are in `web/e2e/dashboard.mjs` (Debian's
//! Chromium driven by playwright-core); this test starts the stack, runs the script, and answers what the script
//! asks for: restarting the status service, then the gateway, to prove the live stream reconnects by itself; healing
//! a failing store; the work of a backup Job's restic container, which the simulated kubelet does not run (the
//! platform's backup script, with Debian's restic, writes a real snapshot into the store's repository); and, at the
//! end, a provisioner without an object store. Afterwards the gateway's audit log must name every mutating call, and
//! no log may hold the API token, the store password the browser was shown, the object store's secret key or a
//! store's repository key.
//!
//! Screenshots land in `test-output/dashboard/`.

mod stack;

use stack::{start_status, workspace};
use std::{
    net::Ipv4Addr,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use store_platform_test_support::{
    Behaviour, Fate, TestEnv, backup_job,
    daemon::require_programs,
    object_store::ObjectStore,
    process::{ServiceProcess, free_port, tokens_file},
};

/// The tenant of the test's API token, and the only one its provisioner reconciles.
const TENANT: &str = "browser";
const BUCKET: &str = "dashboard-backups";
/// The version the platform offers from the harness's "newer-version" on, as its default; stores made before run
/// the one before it.
const NEWER_VERSION: &str = "6.8-wc9.10";
const ACCESS_KEY: &str = "dashboard-access-key";
const SECRET_KEY: &str = "dashboard-secret-key-never-logged";

/// The provisioner, reconciling only the test's tenant; `backups`: the object store's settings, if any.
fn start_provisioner(
    env: &TestEnv,
    port: u16,
    backups: Option<&[(&'static str, String)]>,
    logs: &Path,
) -> ServiceProcess {
    stack::start_provisioner(
        env,
        port,
        (
            &format!("dashboard-test-{}", std::process::id()),
            &format!("store-platform.io/tenant={TENANT}"),
        ),
        backups.unwrap_or_default(),
        logs,
    )
}

fn start_gateway(
    port: u16,
    backends: (u16, u16),
    web_root: &Path,
    tokens: &Path,
    logs: &Path,
) -> ServiceProcess {
    stack::start_gateway(port, backends, web_root, tokens, &[], logs)
}

/// The platform's backup settings (each flag's environment variable): moto at `endpoint`, the object store's keys
/// in files, a schedule that does not fire during a test (1 January, 02:30), and egress to loopback only.
fn backup_settings(endpoint: &str, dir: &Path) -> Vec<(&'static str, String)> {
    let (access, secret) = (dir.join("s3-access-key"), dir.join("s3-secret-key"));
    std::fs::write(&access, format!("{ACCESS_KEY}\n")).expect("the access key file");
    std::fs::write(&secret, format!("{SECRET_KEY}\n")).expect("the secret key file");
    vec![
        ("BACKUP_S3_ENDPOINT", endpoint.to_owned()),
        ("BACKUP_S3_BUCKET", BUCKET.to_owned()),
        ("BACKUP_S3_ACCESS_KEY_FILE", access.display().to_string()),
        ("BACKUP_S3_SECRET_KEY_FILE", secret.display().to_string()),
        ("BACKUP_SCHEDULE", "30 2 1 1 *".to_owned()),
        ("BACKUP_EGRESS_CIDRS", "127.0.0.1/32".to_owned()),
    ]
}

#[tokio::test]
async fn the_dashboard_creates_watches_backs_up_restores_clones_and_deletes_stores_in_chromium() {
    let root = workspace();
    let web_root = root.join("web/dist");
    let script = root.join("web/e2e/dashboard.mjs");
    let chromium = stack::browser_prerequisites(&web_root);
    require_programs(&["/usr/bin/restic", "/usr/bin/curl"]);

    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let store_id = format!("browser{}", std::process::id());
    let broken_id = format!("broken{}", std::process::id());
    let clone_id = format!("copy{}", std::process::id());
    // Slow pods a little, so the steps (and a restore's) visibly progress one by one.
    env.set_kubelet_behaviour(
        &format!("store-{store_id}"),
        &Behaviour::with_delay(Duration::from_millis(500)),
    )
    .await;

    // The second store's bootstrap fails until the script asks the harness to heal it.
    let broken_namespace = format!("store-{broken_id}");
    env.set_kubelet_behaviour(
        &broken_namespace,
        &Behaviour::default().pod(
            "woocommerce-bootstrap",
            Fate::Fail {
                reason: "Error".into(),
                message: "bootstrap: FAILED: database unreachable".into(),
            },
        ),
    )
    .await;

    // A Medusa store: its bootstrap reports a publishable key, as the real one does (medusa_real.rs).
    let medusa_id = format!("medusa{}", std::process::id());
    env.set_kubelet_behaviour(
        &format!("store-{medusa_id}"),
        &Behaviour::with_delay(Duration::from_millis(300)).pod(
            "medusa-bootstrap",
            Fate::SucceedSaying {
                message: "pk_0d3a5c7e9b1f2a4c6e8d0b2f4a6c8e0d1b3f5a7c9e1d3b5f7a9c1e3d5b7f9a1c\n"
                    .into(),
            },
        ),
    )
    .await;

    let scratch = tempfile::tempdir().expect("scratch");
    let logs = scratch.path();
    // The object store: a real S3 endpoint on loopback, which stops with the test.
    let object_store = ObjectStore::start(&[], Ipv4Addr::LOCALHOST, BUCKET, logs);
    let backups = backup_settings(&object_store.endpoint, logs);
    let (provisioner_port, status_port, gateway_port) = (free_port(), free_port(), free_port());
    let mut provisioner = Some(start_provisioner(
        env,
        provisioner_port,
        Some(&backups),
        logs,
    ));
    let mut status = Some(start_status(env, status_port, logs));
    let token = format!("browser-token-{}", std::process::id());
    let tokens = tokens_file(logs, "browser-test", TENANT, &token, false);
    let backends = (provisioner_port, status_port);
    let mut gateway = Some(start_gateway(
        gateway_port,
        backends,
        &web_root,
        &tokens,
        logs,
    ));
    if let Some(gateway) = gateway.as_mut() {
        gateway.channel(gateway_port).await;
    }

    let screenshots = root.join("test-output/dashboard");
    let restart_request = scratch.path().join("restart-request");
    let harness_reply = scratch.path().join("harness-reply");
    let password_file = scratch.path().join("password-shown");
    let mut browser = Command::new("node")
        .arg(&script)
        .current_dir(root.join("web"))
        .env("GATEWAY_URL", format!("http://localhost:{gateway_port}"))
        .env("DASHBOARD_TOKEN", &token)
        .env("STORE_ID", &store_id)
        .env("BROKEN_STORE_ID", &broken_id)
        .env("MEDUSA_STORE_ID", &medusa_id)
        .env("CLONE_STORE_ID", &clone_id)
        .env("SCREENSHOTS", &screenshots)
        .env("RESTART_REQUEST", &restart_request)
        .env("HARNESS_REPLY", &harness_reply)
        .env("PASSWORD_FILE", &password_file)
        .env("NEWER_VERSION", NEWER_VERSION)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node web/e2e/dashboard.mjs");

    let deadline = Instant::now() + Duration::from_secs(600);
    let outcome = loop {
        if let Some(outcome) = browser.try_wait().expect("poll the browser script") {
            break outcome;
        }
        if let Ok(request) = std::fs::read_to_string(&restart_request) {
            let request = request.trim();
            match request.split_once(' ') {
                Some(("snapshot", id)) => {
                    let written = backup_job::run_the_restic_container(
                        &env.client().await,
                        id,
                        &workspace().join("services/provisioner/scripts/backup.sh"),
                    )
                    .await;
                    // As the script reads it: `id=<snapshot> bytes=<size tag> time=<ms since the epoch>`.
                    let reply = format!(
                        "id={} bytes={} time={}",
                        written.id,
                        written.bytes,
                        written.time.as_millisecond()
                    );
                    std::fs::write(&harness_reply, reply).expect("answer");
                }
                _ if request == "heal" => {
                    env.set_kubelet_behaviour(&broken_namespace, &Behaviour::default())
                        .await;
                }
                // The operator offers a newer WooCommerce version as the default: the provisioner restarts with it
                // (and the one before, which the stores run, still offered).
                _ if request == "newer-version" => {
                    let old = provisioner.take().expect("the provisioner");
                    assert!(
                        old.terminate(Duration::from_secs(15)),
                        "the provisioner did not stop"
                    );
                    let mut settings = backups.clone();
                    settings.extend([
                        (
                            "WORDPRESS_IMAGE",
                            format!("store-platform/wordpress:{NEWER_VERSION}"),
                        ),
                        ("WOOCOMMERCE_VERSION", NEWER_VERSION.to_owned()),
                        (
                            "WOOCOMMERCE_VERSIONS",
                            "6.8-wc9.9=store-platform/wordpress:6.8-wc9.9".to_owned(),
                        ),
                    ]);
                    let mut fresh = start_provisioner(env, provisioner_port, Some(&settings), logs);
                    fresh.channel(provisioner_port).await;
                    provisioner = Some(fresh);
                }
                _ if request == "provisioner-without-backups" => {
                    let old = provisioner.take().expect("the provisioner");
                    assert!(
                        old.terminate(Duration::from_secs(15)),
                        "the provisioner did not stop"
                    );
                    let mut fresh = start_provisioner(env, provisioner_port, None, logs);
                    fresh.channel(provisioner_port).await;
                    provisioner = Some(fresh);
                }
                // The script watches its connection badge while the service goes away and comes back.
                _ if request == "status" || request == "gateway" => {
                    let old = if request == "gateway" {
                        gateway.take()
                    } else {
                        status.take()
                    };
                    if let Some(old) = old {
                        assert!(
                            old.terminate(Duration::from_secs(15)),
                            "{request} did not stop"
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if request == "gateway" {
                        let mut fresh =
                            start_gateway(gateway_port, backends, &web_root, &tokens, logs);
                        fresh.channel(gateway_port).await;
                        gateway = Some(fresh);
                    } else {
                        let mut fresh = start_status(env, status_port, logs);
                        fresh.channel(status_port).await;
                        status = Some(fresh);
                    }
                }
                _ => {
                    let _ = browser.kill();
                    panic!(
                        "the browser script asked for {request:?}, which the harness does not know"
                    );
                }
            }
            std::fs::remove_file(&restart_request).expect("clear the request");
        }
        if Instant::now() > deadline {
            let _ = browser.kill();
            panic!("the browser script ran past 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The repository keys of the stores, read before they are removed: the deleted stores' backups would be kept for
    // 30 days, which a test must not leave behind.
    let keys = Api::<Secret>::namespaced(env.client().await, "store-platform");
    let mut repository_keys = Vec::new();
    for id in [&store_id, &clone_id, &broken_id, &medusa_id] {
        let selector = format!(
            "app.kubernetes.io/name=backup-key,store-platform.io/store-id={id},store-platform.io/tenant={TENANT}"
        );
        for key in keys
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("list the repository keys")
            .items
        {
            let value = key
                .data
                .as_ref()
                .and_then(|data| data.get("RESTIC_PASSWORD"))
                .expect("the repository key");
            repository_keys.push(String::from_utf8(value.0.clone()).expect("utf-8"));
            keys.delete(
                key.metadata.name.as_deref().expect("named"),
                &DeleteParams::default(),
            )
            .await
            .expect("remove the repository key");
        }
    }

    let gateway_log = gateway
        .as_ref()
        .map(ServiceProcess::logs)
        .unwrap_or_default();
    let status_log = status
        .as_ref()
        .map(ServiceProcess::logs)
        .unwrap_or_default();
    assert!(
        outcome.success(),
        "the browser script failed ({outcome}); screenshots in {}\ngateway log:\n{gateway_log}\nstatus log:\n{status_log}",
        screenshots.display(),
    );
    assert!(
        repository_keys.len() >= 2,
        "the backed-up store and its clone have repository keys"
    );

    // One audit line per mutating call, naming the caller, the store and the result.
    let audit: Vec<&str> = gateway_log
        .lines()
        .filter(|line| line.contains(r#""target":"audit""#))
        .collect();
    let audited = |method: &str, store: &str, result: &str| {
        audit
            .iter()
            .filter(|line| {
                line.contains(&format!(r#""method":"{method}""#))
                    && line.contains(&format!(r#""store":"{store}""#))
                    && line.contains(&format!(r#""result":"{result}""#))
                    && line.contains(r#""who":"browser-test""#)
            })
            .count()
    };
    for (method, store, result, times) in [
        ("CreateStore", "Bad_Id", "INVALID_ARGUMENT", 1),
        // Created, then brought back under its own id after its deletion.
        ("CreateStore", store_id.as_str(), "OK", 2),
        ("GetStoreCredentials", store_id.as_str(), "OK", 1),
        ("BackupStore", store_id.as_str(), "OK", 1),
        ("RestoreStore", store_id.as_str(), "OK", 1),
        ("CreateStore", clone_id.as_str(), "OK", 1),
        ("DeleteStore", store_id.as_str(), "OK", 2),
        ("DeleteStore", clone_id.as_str(), "OK", 1),
        ("RetryStore", broken_id.as_str(), "OK", 1),
        ("DeleteStore", broken_id.as_str(), "OK", 1),
        ("CreateStore", medusa_id.as_str(), "OK", 1),
        ("DeleteStore", medusa_id.as_str(), "OK", 1),
    ] {
        assert_eq!(
            audited(method, store, result),
            times,
            "audit lines for {method} {store} {result}:\n{}",
            audit.join("\n")
        );
    }
    // Secrets stay out of every log.
    let password =
        std::fs::read_to_string(&password_file).expect("the password the browser was shown");
    let moto_log = std::fs::read_to_string(logs.join("moto.log")).unwrap_or_default();
    let provisioner_log = provisioner
        .as_ref()
        .map(ServiceProcess::logs)
        .unwrap_or_default();
    for (name, log) in [
        ("gateway", &gateway_log),
        ("status", &status_log),
        ("provisioner", &provisioner_log),
        ("object store", &moto_log),
    ] {
        assert!(!log.contains(&token), "the API token is in the {name} log");
        assert!(
            !log.contains(password.trim()),
            "the store password is in the {name} log"
        );
        assert!(
            !log.contains(SECRET_KEY),
            "the object store's secret key is in the {name} log"
        );
        for key in &repository_keys {
            assert!(
                !log.contains(key.as_str()),
                "a repository key is in the {name} log"
            );
        }
    }
}
