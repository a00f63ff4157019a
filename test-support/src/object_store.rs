//! moto's S3 server (from PyPI, installed in tools/.venv by scripts/tools.sh), the object store the backup tests
//! write to: a real S3 endpoint on an address of the test's own, with one bucket made.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::daemon::Daemon;

fn moto_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/.venv/bin/moto_server")
}

/// A running moto server with one bucket; it stops when dropped (or when the thread that started it ends).
#[derive(Debug)]
pub struct ObjectStore {
    _daemon: Daemon,
    pub endpoint: String,
}

impl ObjectStore {
    /// Starts it listening on `host`, through `launcher` (empty, or e.g. `nsenter --net=… --` to run it in the real
    /// node's network namespace), logging into `dir`, and makes `bucket`.
    pub fn start(launcher: &[String], host: Ipv4Addr, bucket: &str, dir: &Path) -> Self {
        let server = moto_server();
        assert!(
            server.exists(),
            "{} (scripts/tools.sh installs it)",
            server.display()
        );
        let port = crate::process::free_port();
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&server);
                command
            }
            None => Command::new(&server),
        };
        command.args(["-H", &host.to_string(), "-p", &port.to_string()]);
        let mut daemon =
            Daemon::spawn("moto", command, &dir.join("moto.log")).expect("start moto's S3 server");
        daemon.wait_for((host, port).into(), Duration::from_secs(60));
        let endpoint = format!("http://{host}:{port}");
        let made = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{endpoint}/{bucket}")])
            .output()
            .expect("curl");
        assert!(
            made.status.success(),
            "create the bucket: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        Self {
            _daemon: daemon,
            endpoint,
        }
    }
}
