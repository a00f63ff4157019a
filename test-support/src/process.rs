//! Service binaries run as real processes by system tests: started with their environment, logged to a file,
//! stopped with SIGTERM or killed with SIGKILL.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Where the workspace's binaries are: `$STORE_PLATFORM_BIN_DIR`, else `target/debug` (`make test` builds them).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STORE_PLATFORM_BIN_DIR") {
        return dir.into();
    }
    target_dir().join("debug")
}

/// The workspace's target directory (`$CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A loopback port nobody listens on right now, for a service started next.
///
/// It is taken below the kernel's ephemeral range (read from `/proc/sys/net/ipv4/ip_local_port_range`), so an
/// outgoing connection made in the meantime (to the API server, say) cannot take it before the service binds it, as
/// it could a port the kernel handed out by binding port 0. Ports already handed out by this process are skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_start.max(10_001));
    let span = u32::from(high - low);
    // A start that differs between test processes, then a walk that never repeats within one.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let step = u32::from(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = low + u16::try_from((seed + step) % span).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A running service binary; killed if dropped while running.
#[derive(Debug)]
pub struct ServiceProcess {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl ServiceProcess {
    /// Starts binary `name` with `env` (plus `LOG_FORMAT=json`), logging to `<logs>/<name>.log` (appended).
    ///
    /// Unless `env` sets them, the services authenticate callers by the caller policy of the cluster of `env`'s
    /// `KUBECONFIG` (or the shared one), and the gateway calls the backends as the tests' caller
    /// ([`crate::TestEnv::caller_token`]).
    pub fn start(name: &str, env: &[(&str, String)], logs: &Path) -> Self {
        Self::start_from(&bin_dir(), name, env, logs)
    }

    /// As [`ServiceProcess::start`], with the binary from `dir` (e.g. a release build).
    pub fn start_from(dir: &Path, name: &str, env: &[(&str, String)], logs: &Path) -> Self {
        Self::launch(dir, name, None, env, logs)
    }

    /// As [`ServiceProcess::start`], inside the network namespace `netns` (a real node's: pods reach it there).
    pub fn start_in_netns(netns: &str, name: &str, env: &[(&str, String)], logs: &Path) -> Self {
        Self::launch(&bin_dir(), name, Some(netns), env, logs)
    }

    fn launch(
        dir: &Path,
        name: &str,
        netns: Option<&str>,
        env: &[(&str, String)],
        logs: &Path,
    ) -> Self {
        let binary = dir.join(name);
        assert!(
            binary.is_file(),
            "{} is missing: build the services first (`cargo build --bins`, or `make test`)",
            binary.display()
        );
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut command = match netns {
            // `ip netns exec` enters the namespace and then runs the binary in its own place (same pid).
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        let cluster = env
            .iter()
            .find(|(key, _)| *key == "KUBECONFIG")
            .and_then(|(_, kubeconfig)| Path::new(kubeconfig).parent().map(Path::to_path_buf))
            .filter(|dir| dir.join(crate::caller::POLICY_FILE).is_file())
            .unwrap_or_else(|| crate::TestEnv::shared().dir().to_path_buf());
        for (key, file) in [
            ("CALLER_POLICY", crate::caller::POLICY_FILE),
            ("BACKEND_TOKEN_FILE", crate::caller::TOKEN_FILE),
        ] {
            if !env.iter().any(|(k, _)| *k == key) {
                command.env(key, cluster.join(file));
            }
        }
        command
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        // A test killed before it drops its services (Ctrl-C, a timeout) must not leave a provisioner behind that
        // goes on reconciling other tests' stores.
        crate::control_plane::die_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exited already? Returns the status if so.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.child.id());
    }

    /// SIGTERM, then waits up to `deadline`; true if the process exited successfully in time.
    pub fn terminate(mut self, deadline: Duration) -> bool {
        self.signal("-TERM");
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Some(status) = self.exited() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGKILL: the process gets no chance to clean up, as in a node failure.
    pub fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A gRPC channel to `port`, once the process listens there.
    pub async fn channel(&mut self, port: u16) -> tonic::transport::Channel {
        self.channel_at(&format!("127.0.0.1:{port}")).await
    }

    /// As [`ServiceProcess::channel`], for a service listening on `address` (`host:port`).
    pub async fn channel_at(&mut self, address: &str) -> tonic::transport::Channel {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.exited() {
                panic!("{} exited ({status}):\n{}", self.name, self.logs());
            }
            let endpoint =
                tonic::transport::Channel::from_shared(format!("http://{address}")).expect("uri");
            match endpoint.connect().await {
                Ok(channel) => return channel,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(error) => panic!(
                    "{} not listening on {address}: {error}\n{}",
                    self.name,
                    self.logs()
                ),
            }
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole response (status line, headers, body) to `GET path` on `addr`, over plain HTTP/1.1.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// Writes a gateway tokens file in `dir` holding `token` for `tenant` (only its SHA-256, as in production) and
/// returns its path.
pub fn tokens_file(dir: &Path, name: &str, tenant: &str, token: &str, admin: bool) -> PathBuf {
    use sha2::Digest as _;
    let hash: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join("tokens");
    let admin = if admin { " admin" } else { "" };
    std::fs::write(&path, format!("{name} {tenant} {hash}{admin}\n"))
        .expect("write the tokens file");
    path
}

/// `message` as a call for `tenant` from the tests' caller of the shared control plane: its ServiceAccount token and
/// the tenant, the way an internal caller of the provisioner or the status service makes it.
pub fn as_tenant<T>(tenant: &str, message: T) -> tonic::Request<T> {
    crate::TestEnv::shared().as_tenant(tenant, message)
}

/// `message` naming `tenant`, with no credentials.
pub fn naming_tenant<T>(tenant: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        store_platform_proto::TENANT_METADATA_KEY,
        tenant.parse().expect("a tenant is an ASCII header value"),
    );
    request
}
