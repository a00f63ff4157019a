//! The dashboard in a real browser against the whole stack: the provisioner, the status service and the gateway
//! (serving the built `web/dist`) as processes, on the local control plane with the simulated kubelet. The browser
//! steps are in `web/e2e/dashboard.mjs` (Debian's Chromium driven by playwright-core); this test starts the stack,
//! runs the script, and restarts the status service, then the gateway, when the script asks, to prove the live
//! stream reconnects by itself. Afterwards the gateway's audit log must name every mutating call, and no log may
//! hold the API token or the store password the browser was shown.
//!
//! Screenshots land in `test-output/dashboard/`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use store_platform_test_support::{
    Behaviour, Fate, TestEnv,
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

fn start_gateway(
    port: u16,
    backends: (u16, u16),
    web_root: &Path,
    tokens: &Path,
    logs: &Path,
) -> ServiceProcess {
    ServiceProcess::start(
        "gateway",
        &[
            ("HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("WEB_ROOT", web_root.display().to_string()),
            ("TOKENS_FILE", tokens.display().to_string()),
            (
                "PROVISIONER_URL",
                format!("http://127.0.0.1:{}", backends.0),
            ),
            ("STATUS_URL", format!("http://127.0.0.1:{}", backends.1)),
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
    let broken_id = format!("broken{}", std::process::id());
    // Slow pods a little, so the steps visibly progress one by one.
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
    let (provisioner_port, status_port, gateway_port) = (free_port(), free_port(), free_port());
    let provisioner = ServiceProcess::start(
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
    let password_file = scratch.path().join("password-shown");
    let mut browser = Command::new("node")
        .arg(&script)
        .current_dir(root.join("web"))
        .env("GATEWAY_URL", format!("http://localhost:{gateway_port}"))
        .env("DASHBOARD_TOKEN", &token)
        .env("STORE_ID", &store_id)
        .env("BROKEN_STORE_ID", &broken_id)
        .env("MEDUSA_STORE_ID", &medusa_id)
        .env("SCREENSHOTS", &screenshots)
        .env("RESTART_REQUEST", &restart_request)
        .env("PASSWORD_FILE", &password_file)
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
        if let Ok(which) = std::fs::read_to_string(&restart_request) {
            // The script watches its connection badge while the service goes away and comes back.
            let which = which.trim();
            if which == "heal" {
                env.set_kubelet_behaviour(&broken_namespace, &Behaviour::default())
                    .await;
                std::fs::remove_file(&restart_request).expect("clear the request");
                continue;
            }
            let old = if which == "gateway" {
                gateway.take()
            } else {
                status.take()
            };
            if let Some(old) = old {
                assert!(
                    old.terminate(Duration::from_secs(15)),
                    "{which} did not stop"
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            if which == "gateway" {
                let mut fresh = start_gateway(gateway_port, backends, &web_root, &tokens, logs);
                fresh.channel(gateway_port).await;
                gateway = Some(fresh);
            } else {
                let mut fresh = start_status(env, status_port, logs);
                fresh.channel(status_port).await;
                status = Some(fresh);
            }
            std::fs::remove_file(&restart_request).expect("clear the restart request");
        }
        if Instant::now() > deadline {
            let _ = browser.kill();
            panic!("the browser script ran past 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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

    // One audit line per mutating call, naming the caller, the store and the result.
    let audit: Vec<&str> = gateway_log
        .lines()
        .filter(|line| line.contains(r#""target":"audit""#))
        .collect();
    for (method, store, result) in [
        ("CreateStore", "Bad_Id", "INVALID_ARGUMENT"),
        ("CreateStore", store_id.as_str(), "OK"),
        ("GetStoreCredentials", store_id.as_str(), "OK"),
        ("DeleteStore", store_id.as_str(), "OK"),
        ("RetryStore", broken_id.as_str(), "OK"),
        ("DeleteStore", broken_id.as_str(), "OK"),
        ("CreateStore", medusa_id.as_str(), "OK"),
        ("DeleteStore", medusa_id.as_str(), "OK"),
    ] {
        assert!(
            audit.iter().any(|line| line.contains(method)
                && line.contains(&format!(r#""store":"{store}""#))
                && line.contains(&format!(r#""result":"{result}""#))
                && line.contains(r#""who":"browser-test""#)),
            "no audit line for {method} {store} {result}:\n{}",
            audit.join("\n")
        );
    }
    // Secrets stay out of every log.
    let password =
        std::fs::read_to_string(&password_file).expect("the password the browser was shown");
    for (name, log) in [
        ("gateway", &gateway_log),
        ("status", &status_log),
        ("provisioner", &provisioner.logs()),
    ] {
        assert!(!log.contains(&token), "the API token is in the {name} log");
        assert!(
            !log.contains(password.trim()),
            "the store password is in the {name} log"
        );
    }
}
