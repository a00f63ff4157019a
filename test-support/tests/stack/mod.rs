//! The platform's three services as processes on the local control plane, for the browser tests (dashboard.rs,
//! signin.rs): each started the way the chart starts it, with the settings a test adds.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use store_platform_test_support::{TestEnv, process::ServiceProcess};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds test-support")
        .to_owned()
}

/// What a browser test needs on the machine: the built dashboard, playwright-core and Chromium; returns Chromium's
/// path.
pub fn browser_prerequisites(web_root: &Path) -> String {
    assert!(
        web_root.join("index.html").is_file(),
        "{} is missing: build the dashboard (make test does: cd web && npm ci && npm run build)",
        web_root.display()
    );
    assert!(
        workspace()
            .join("web/node_modules/playwright-core")
            .is_dir(),
        "web/node_modules is missing: cd web && npm ci (make test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: apt-get install chromium (make test does)"
    );
    chromium
}

pub fn start_status(env: &TestEnv, port: u16, logs: &Path) -> ServiceProcess {
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

/// The provisioner, reconciling only the stores `selector` picks, with `extra` settings (each flag's environment
/// variable).
pub fn start_provisioner(
    env: &TestEnv,
    port: u16,
    (lease, selector): (&str, &str),
    extra: &[(&'static str, String)],
    logs: &Path,
) -> ServiceProcess {
    let mut settings = vec![
        ("KUBECONFIG", env.kubeconfig_path().display().to_string()),
        ("GRPC_ADDR", format!("127.0.0.1:{port}")),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LEASE_NAME", lease.to_owned()),
        ("RECONCILE_SELECTOR", selector.to_owned()),
    ];
    settings.extend(extra.iter().cloned());
    ServiceProcess::start("provisioner", &settings, logs)
}

/// The gateway on `port` in front of the provisioner and the status service on `backends`, serving `web_root`,
/// with `extra` settings.
pub fn start_gateway(
    port: u16,
    backends: (u16, u16),
    web_root: &Path,
    tokens: &Path,
    extra: &[(&'static str, String)],
    logs: &Path,
) -> ServiceProcess {
    let mut settings = vec![
        ("HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("WEB_ROOT", web_root.display().to_string()),
        ("TOKENS_FILE", tokens.display().to_string()),
        (
            "PROVISIONER_URL",
            format!("http://127.0.0.1:{}", backends.0),
        ),
        ("STATUS_URL", format!("http://127.0.0.1:{}", backends.1)),
    ];
    settings.extend(extra.iter().cloned());
    ServiceProcess::start("gateway", &settings, logs)
}
