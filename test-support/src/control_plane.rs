//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager as child processes,
//! on free ports, with their own CA, killed when the [`ControlPlane`] is dropped (or, via `PR_SET_PDEATHSIG`, when
//! the thread that started them ends).

use std::{
    fs::{self, File},
    io::{Read as _, Seek as _, SeekFrom},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

use crate::{
    assets::Assets,
    kubeconfig::{self, Identity},
    pki::Pki,
};

/// How long the API server and controllers may take to come up before start-up is declared failed.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The Services' ClusterIP range.
pub const SERVICE_CIDR: &str = "10.0.0.0/16";

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("failed to prepare {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to generate certificates")]
    GenerateCertificates(#[from] rcgen::Error),
    #[error("failed to start {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{process} exited during start-up ({status}); last lines of {log}:\n{tail}")]
    Exited {
        process: &'static str,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("{what} not ready after {secs}s; see the logs in {dir}")]
    Timeout {
        what: &'static str,
        secs: u64,
        dir: PathBuf,
    },
    #[error("failed to build a Kubernetes client")]
    Client(#[from] kubeconfig::ClientError),
    #[error("failed to set up the tests' caller of the platform: {0}")]
    Caller(String),
}

/// A process of the control plane, with the arguments to start it again.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) name: &'static str,
    pub(crate) binary: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) log: PathBuf,
    pub(crate) child: Option<Child>,
    /// The network namespace (under /run/netns) to run in, if not the caller's.
    pub(crate) netns: Option<String>,
}

impl Process {
    pub(crate) fn new(
        name: &'static str,
        binary: PathBuf,
        args: Vec<String>,
        log: PathBuf,
        netns: Option<String>,
    ) -> Self {
        Self {
            name,
            binary,
            args,
            log,
            child: None,
            netns,
        }
    }

    pub(crate) fn start(&mut self) -> Result<(), ControlPlaneError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| ControlPlaneError::Prepare {
                path: self.log.clone(),
                source,
            })?;
        let log_err = log
            .try_clone()
            .map_err(|source| ControlPlaneError::Prepare {
                path: self.log.clone(),
                source,
            })?;
        // nsenter enters only the network namespace and then execs the binary, so the process keeps the host's
        // mounts and cgroups and still dies with its parent.
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net=/run/netns/{netns}"))
                    .arg("--")
                    .arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| ControlPlaneError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Fails if the process has exited, quoting the end of its log.
    pub(crate) fn check_alive(&mut self) -> Result<(), ControlPlaneError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(Some(status)) => Err(ControlPlaneError::Exited {
                process: self.name,
                status,
                log: self.log.clone(),
                tail: log_tail(&self.log, 4000),
            }),
            _ => Ok(()),
        }
    }

    /// Kills the process at once (SIGKILL): no graceful close of its connections, as a crash or the OOM killer.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first so etcd and the API server close cleanly; SIGKILL if they linger.
            terminate(&child);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

#[allow(unsafe_code)]
pub(crate) fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: `prctl` is async-signal-safe and touches no memory of the parent; this runs in the forked child
    // before exec. It makes the kernel kill the child when the thread that spawned it ends, so a test binary that
    // exits without dropping its control plane leaves no etcd or API server behind.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

pub(crate) fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // A plain signal to our own child: no memory is shared.
        #[allow(unsafe_code)]
        // SAFETY: sending a signal has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

pub(crate) fn log_tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut tail = String::new();
    let _ = file.read_to_string(&mut tail);
    tail
}

/// etcd's data directory: on `/dev/shm` when the machine has it, else inside `dir`.
fn etcd_data_dir(dir: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let tag = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        shm.join(format!("store-platform-etcd-{tag}"))
    } else {
        dir.join("etcd-data")
    }
}

/// A running control plane. Dropping it stops every process and removes its files.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    remove_dir_on_drop: bool,
    server: String,
    etcd: Process,
    apiserver: Process,
    controller_manager: Process,
    /// Only with a real node: the simulated kubelet binds pods itself.
    scheduler: Option<Process>,
}

/// How to start a [`ControlPlane`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the API server listens and what it advertises (the `kubernetes` Service's endpoint).
    pub address: Ipv4Addr,
    /// For a real node: the scheduler, and the node-lifecycle controller.
    pub real_node: bool,
    /// The network namespace every process runs in (the real node's), if not the caller's.
    pub netns: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            address: Ipv4Addr::LOCALHOST,
            real_node: false,
            netns: None,
        }
    }
}

impl ControlPlane {
    /// Starts etcd, the API server and the controller manager in `dir` and waits until namespaces get their
    /// `default` service account (which proves the controllers are running).
    pub async fn start(assets: &Assets, dir: PathBuf) -> Result<Self, ControlPlaneError> {
        Self::start_with(assets, dir, &Options::default()).await
    }

    /// Like [`ControlPlane::start`], as `options` say.
    pub async fn start_with(
        assets: &Assets,
        dir: PathBuf,
        options: &Options,
    ) -> Result<Self, ControlPlaneError> {
        let prepare = |path: &Path| {
            let path = path.to_owned();
            move |source| ControlPlaneError::Prepare { path, source }
        };
        fs::create_dir_all(&dir).map_err(prepare(&dir))?;
        let pki = Pki::generate_for(options.address)?;
        pki.write_to(&dir).map_err(prepare(&dir))?;
        let pem = |name: &str, contents: &str| -> Result<PathBuf, ControlPlaneError> {
            let path = dir.join(name);
            fs::write(&path, contents).map_err(prepare(&path))?;
            Ok(path)
        };
        let admin_cert = pem("admin.crt", &pki.admin.cert_pem)?;
        let admin_key = pem("admin.key", &pki.admin.key_pem)?;
        let kcm_cert = pem("controller-manager.crt", &pki.controller_manager.cert_pem)?;
        let kcm_key = pem("controller-manager.key", &pki.controller_manager.key_pem)?;

        let (etcd_port, peer_port, api_port) = (
            crate::process::free_port(),
            crate::process::free_port(),
            crate::process::free_port(),
        );
        let server = format!("https://{}:{api_port}", options.address);
        let ca = dir.join("ca.crt");
        pem(
            "kubeconfig",
            &kubeconfig::render(
                &server,
                &ca,
                &Identity {
                    client_cert: &admin_cert,
                    client_key: &admin_key,
                    impersonate: None,
                },
            ),
        )?;
        let kcm_kubeconfig = pem(
            "controller-manager.kubeconfig",
            &kubeconfig::render(
                &server,
                &ca,
                &Identity {
                    client_cert: &kcm_cert,
                    client_key: &kcm_key,
                    impersonate: None,
                },
            ),
        )?;

        let path = |name: &str| dir.join(name).display().to_string();
        // etcd fsyncs every write; on tmpfs that costs nothing, which is what a throwaway test cluster wants.
        let etcd_data = etcd_data_dir(&dir);
        // A new control plane starts empty: data left by an earlier one under the same name (its keys are gone) would
        // bring back its objects.
        let _ = fs::remove_dir_all(&etcd_data);
        let etcd = Process {
            name: "etcd",
            binary: assets.etcd(),
            args: vec![
                format!("--data-dir={}", etcd_data.display()),
                "--name=default".into(),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"),
                "--log-level=warn".into(),
            ],
            log: dir.join("etcd.log"),
            child: None,
            netns: options.netns.clone(),
        };
        let apiserver = Process {
            name: "kube-apiserver",
            binary: assets.kube_apiserver(),
            args: vec![
                format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                format!("--bind-address={}", options.address),
                format!("--advertise-address={}", options.address),
                format!("--secure-port={api_port}"),
                "--insecure-port=0".into(),
                format!("--tls-cert-file={}", path("apiserver.crt")),
                format!("--tls-private-key-file={}", path("apiserver.key")),
                format!("--client-ca-file={}", path("ca.crt")),
                "--authorization-mode=RBAC".into(),
                if options.real_node {
                    "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota".into()
                } else {
                    "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota".into()
                },
                format!("--service-account-key-file={}", path("service-account.pub")),
                format!(
                    "--service-account-signing-key-file={}",
                    path("service-account.key")
                ),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
                format!("--cert-dir={}", path("apiserver-certs")),
                // For exec, logs and port-forward on a real node's kubelet.
                format!("--kubelet-client-certificate={}", admin_cert.display()),
                format!("--kubelet-client-key={}", admin_key.display()),
                "--v=1".into(),
            ],
            log: dir.join("kube-apiserver.log"),
            child: None,
            netns: options.netns.clone(),
        };
        let controller_manager = Process {
            name: "kube-controller-manager",
            binary: assets.kube_controller_manager(),
            args: vec![
                format!("--kubeconfig={}", kcm_kubeconfig.display()),
                format!("--authentication-kubeconfig={}", kcm_kubeconfig.display()),
                format!("--authorization-kubeconfig={}", kcm_kubeconfig.display()),
                // A real node needs the node-lifecycle controller: it lifts the not-ready taint a kubelet
                // registers with.
                if options.real_node {
                    "--controllers=*,-nodeipam,-cloud-node-lifecycle,-route,-service".into()
                } else {
                    "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service"
                        .into()
                },
                format!(
                    "--service-account-private-key-file={}",
                    path("service-account.key")
                ),
                format!("--root-ca-file={}", path("ca.crt")),
                format!("--cluster-signing-cert-file={}", path("ca.crt")),
                format!("--cluster-signing-key-file={}", path("ca.key")),
                "--use-service-account-credentials=false".into(),
                "--leader-elect=false".into(),
                "--port=0".into(),
                "--secure-port=0".into(),
                // With the default client throttle, a hundred stores' workloads take 35 s here instead of 14 s.
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
                "--concurrent-deployment-syncs=20".into(),
                "--concurrent-replicaset-syncs=20".into(),
                "--concurrent-statefulset-syncs=20".into(),
                "--concurrent-gc-syncs=40".into(),
                "--concurrent-namespace-syncs=20".into(),
                "--v=1".into(),
            ],
            log: dir.join("kube-controller-manager.log"),
            child: None,
            netns: options.netns.clone(),
        };

        let scheduler = options.real_node.then(|| Process {
            name: "kube-scheduler",
            binary: assets.kube_scheduler(),
            args: vec![
                format!("--kubeconfig={}", kcm_kubeconfig.display()),
                format!("--authentication-kubeconfig={}", kcm_kubeconfig.display()),
                format!("--authorization-kubeconfig={}", kcm_kubeconfig.display()),
                "--leader-elect=false".into(),
                "--port=0".into(),
                format!("--secure-port={}", crate::process::free_port()),
                format!("--bind-address={}", Ipv4Addr::LOCALHOST),
                "--v=1".into(),
            ],
            log: dir.join("kube-scheduler.log"),
            child: None,
            netns: options.netns.clone(),
        });

        let mut plane = Self {
            dir,
            remove_dir_on_drop: true,
            server,
            etcd,
            apiserver,
            controller_manager,
            scheduler,
        };
        plane.etcd.start()?;
        plane.apiserver.start()?;
        plane.wait_for_apiserver().await?;
        plane.controller_manager.start()?;
        if let Some(scheduler) = plane.scheduler.as_mut() {
            scheduler.start()?;
        }
        plane.wait_for_controllers().await?;
        crate::caller::write_test_caller(&plane.client().await?, &plane.dir)
            .await
            .map_err(|error| ControlPlaneError::Caller(format!("{error:#}")))?;
        Ok(plane)
    }

    /// The directory holding certificates, kubeconfigs and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The administrator's kubeconfig file.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The running processes (etcd, the API server, the controller manager, the scheduler if any) by name, with
    /// their process ids: for measuring what each costs.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        [
            Some(&self.etcd),
            Some(&self.apiserver),
            Some(&self.controller_manager),
            self.scheduler.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|process| Some((process.name, process.child.as_ref()?.id())))
        .collect()
    }

    /// Keeps the directory (certificates, logs) after the control plane stops.
    pub fn keep_dir(&mut self) {
        self.remove_dir_on_drop = false;
    }

    /// An administrator client (group `system:masters`).
    pub async fn client(&self) -> Result<kube::Client, kubeconfig::ClientError> {
        kubeconfig::client_from_file(&self.kubeconfig_path()).await
    }

    /// Stops and starts the API server on the same port, as an outage would; etcd keeps the data.
    pub async fn restart_apiserver(&mut self) -> Result<(), ControlPlaneError> {
        self.apiserver.stop();
        self.apiserver.start()?;
        self.wait_for_apiserver().await
    }

    /// Kills the API server (SIGKILL) and starts it again on the same port, as a crash would; etcd keeps the data.
    pub async fn crash_apiserver(&mut self) -> Result<(), ControlPlaneError> {
        self.apiserver.kill();
        self.apiserver.start()?;
        self.wait_for_apiserver().await
    }

    /// Stops only the API server (clients see connection refused) until [`ControlPlane::start_apiserver`].
    pub fn stop_apiserver(&mut self) {
        self.apiserver.stop();
    }

    pub async fn start_apiserver(&mut self) -> Result<(), ControlPlaneError> {
        self.apiserver.start()?;
        self.wait_for_apiserver().await
    }

    async fn wait_for_apiserver(&mut self) -> Result<(), ControlPlaneError> {
        let client = self.client().await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.etcd.check_alive()?;
            self.apiserver.check_alive()?;
            let request = http_get("/readyz");
            if let Ok(body) = client.request_text(request).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.timeout("kube-apiserver /readyz"));
            }
            // Waiting for a process we just started to open its port: there is nothing to watch yet.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for_controllers(&mut self) -> Result<(), ControlPlaneError> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client().await?, "default");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.controller_manager.check_alive()?;
            if let Ok(Some(account)) = accounts.get_opt("default").await
                && !account.secrets.unwrap_or_default().is_empty()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.timeout("the default service account (kube-controller-manager)"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn timeout(&self, what: &'static str) -> ControlPlaneError {
        ControlPlaneError::Timeout {
            what,
            secs: START_TIMEOUT.as_secs(),
            dir: self.dir.clone(),
        }
    }

    /// Stops every process, controllers first.
    pub fn stop(&mut self) {
        if let Some(scheduler) = self.scheduler.as_mut() {
            scheduler.stop();
        }
        self.controller_manager.stop();
        self.apiserver.stop();
        self.etcd.stop();
    }
}

fn http_get(path: &'static str) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = http::Uri::from_static(path);
    request
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        if self.remove_dir_on_drop {
            let _ = fs::remove_dir_all(etcd_data_dir(&self.dir));
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
