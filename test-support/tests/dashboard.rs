//! The dashboard in a real browser against the whole stack: the provisioner, the status service and the gateway
//! (serving the built `web/dist`) as processes, on the local control plane with the simulated kubelet. The browser
//! steps are in `web/e2e/dashboard.mjs` (Debian's Chromium driven by playwright-core); this test starts the stack,
//! runs the script, and restarts the status service when the script asks, to prove the live stream reconnects.
//!
//! Screenshots land in `test-output/dashboard/`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use store_platform_test_support::{
    Behaviour, TestEnv,
    process::{ServiceProcess, free_port, tokens_file},
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds test-support")
        .to_owned()
}

fn start_status(env: &TestEnv, port: u16, logs: &Path) -> ServiceProcess {
    ServiceProcess::start(
        "status",
        &[
            ("KUBECONFIG", env.kubeconfig_path().display().to_string()),
            ("GRPC_ADDR", format!("127.0.0.1:{port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("HEARTBEAT_INTERVAL", "5s".to_owned()),
        ],
        logs,
    )
}

#[tokio::test]
async fn the_dashboard_creates_watches_reveals_and_deletes_a_store_in_chromium() {
    let root = workspace();
    let web_root = root.join("web/dist");
    let script = root.join("web/e2e/dashboard.mjs");
    assert!(
        web_root.join("index.html").is_file(),
        "{} is missing: build the dashboard (make test does: cd web && npm ci && npm run build)",
        web_root.display()
    );
    assert!(
        root.join("web/node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: cd web && npm ci (make test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: apt-get install chromium (make test does)"
    );

    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let store_id = format!("browser{}", std::process::id());
    // Slow pods a little, so the steps visibly progress one by one.
    env.set_kubelet_behaviour(
        &format!("store-{store_id}"),
        &Behaviour::with_delay(Duration::from_millis(500)),
    )
    .await;

    let scratch = tempfile::tempdir().expect("scratch");
    let logs = scratch.path();
    let (provisioner_port, status_port, gateway_port) = (free_port(), free_port(), free_port());
    let _provisioner = ServiceProcess::start(
        "provisioner",
        &[
            ("KUBECONFIG", env.kubeconfig_path().display().to_string()),
            ("GRPC_ADDR", format!("127.0.0.1:{provisioner_port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            (
                "LEASE_NAME",
                format!("dashboard-test-{}", std::process::id()),
            ),
            (
                "RECONCILE_SELECTOR",
                "store-platform.io/tenant=browser".to_owned(),
            ),
        ],
        logs,
    );
    let mut status = Some(start_status(env, status_port, logs));
    let token = format!("browser-token-{}", std::process::id());
    let tokens = tokens_file(logs, "browser-test", "browser", &token, false);
    let mut gateway = ServiceProcess::start(
        "gateway",
        &[
            ("HTTP_ADDR", format!("127.0.0.1:{gateway_port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("WEB_ROOT", web_root.display().to_string()),
            ("TOKENS_FILE", tokens.display().to_string()),
            (
                "PROVISIONER_URL",
                format!("http://127.0.0.1:{provisioner_port}"),
            ),
            ("STATUS_URL", format!("http://127.0.0.1:{status_port}")),
        ],
        logs,
    );
    gateway.channel(gateway_port).await;

    let screenshots = root.join("test-output/dashboard");
    let restart_request = scratch.path().join("restart-status");
    let mut browser = Command::new("node")
        .arg(&script)
        .current_dir(root.join("web"))
        .env("GATEWAY_URL", format!("http://localhost:{gateway_port}"))
        .env("DASHBOARD_TOKEN", &token)
        .env("STORE_ID", &store_id)
        .env("SCREENSHOTS", &screenshots)
        .env("RESTART_REQUEST", &restart_request)
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
        if restart_request.exists() {
            // The script watches its connection badge while the status service goes away and comes back.
            if let Some(old) = status.take() {
                assert!(
                    old.terminate(Duration::from_secs(15)),
                    "status did not stop"
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut fresh = start_status(env, status_port, logs);
            fresh.channel(status_port).await;
            status = Some(fresh);
            std::fs::remove_file(&restart_request).expect("clear the restart request");
        }
        if Instant::now() > deadline {
            let _ = browser.kill();
            panic!("the browser script ran past 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        outcome.success(),
        "the browser script failed ({outcome}); screenshots in {}\ngateway log:\n{}\nstatus log:\n{}",
        screenshots.display(),
        gateway.logs(),
        status
            .as_ref()
            .map(ServiceProcess::logs)
            .unwrap_or_default()
    );
}
