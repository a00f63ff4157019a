//! A real node for tests: Docker's engine, the kubelet (dockershim), kube-proxy, CNI's bridge, a cluster DNS and a
//! dynamic hostPath volume provisioner, all inside a network namespace of their own, so real containers run with the
//! platform's real specs while nothing of the host's network is touched.
//!
//! Layout: the network namespace `sp-node-<pid>` is joined to the host by one veth pair (host end [`HOST_ADDRESS`],
//! node end [`NODE_ADDRESS`], a /30). The control plane runs inside it too and listens on the node address, which
//! the host (tests, services under test) reaches through the veth and pods reach directly. Pods live on the bridge
//! `cni0` ([`POD_GATEWAY`], [`POD_CIDR`]); the namespace has no default route, so nothing inside can reach anything
//! but the node and the host end of the veth.
//!
//! Everything the node creates lives in its directory or is removed by [`Node::stop`]: containers, docker's data,
//! kubelet's mounts, the pods' cgroups, the network namespace (with its interfaces, routes and iptables rules).

use std::{
    collections::BTreeMap,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::{
    api::{
        core::v1::{
            Endpoints, HostPathVolumeSource, Node as KubeNode, ObjectReference, PersistentVolume,
            PersistentVolumeClaim, PersistentVolumeSpec, Service,
        },
        storage::v1::StorageClass,
    },
    apimachinery::pkg::api::resource::Quantity,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};

use crate::{
    assets::Assets,
    control_plane::{ControlPlaneError, Process, SERVICE_CIDR, log_tail},
};

/// The host's end of the veth pair.
pub const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 213, 7, 1);
/// The node's address (its end of the veth), where the API server and the kubelet listen.
pub const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 213, 7, 2);
/// The pods' bridge: its address is the pods' gateway and cluster DNS server.
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 214, 7, 1);
pub const POD_CIDR: &str = "10.214.7.0/24";
/// The node's name in Kubernetes.
pub const NODE_NAME: &str = "node";
/// The default StorageClass, served by the node's hostPath provisioner.
pub const STORAGE_CLASS: &str = "standard";
const PROVISIONER: &str = "store-platform.test/hostpath";
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Image names on the node, imported from `scripts/node-images.sh`'s root filesystems.
pub const PAUSE_IMAGE: &str = "store-platform-test/pause:1";
pub const MARIADB_IMAGE: &str = "store-platform-test/mariadb:1";
pub const WORDPRESS_IMAGE: &str = "store-platform-test/wordpress:1";
/// Uses memory until its container's limit stops it.
pub const MEMORY_HOG_IMAGE: &str = "store-platform-test/memory-hog:1";
/// A Medusa store's images: PostgreSQL and Redis with the official images' contract, and the backend and
/// storefront as their Dockerfiles lay them out.
pub const POSTGRES_IMAGE: &str = "store-platform-test/postgres:1";
pub const REDIS_IMAGE: &str = "store-platform-test/redis:1";
pub const MEDUSA_IMAGE: &str = "store-platform-test/medusa:1";
pub const MEDUSA_STOREFRONT_IMAGE: &str = "store-platform-test/medusa-storefront:1";
/// Debian's restic, for backup and restore Jobs (`--backup-image`).
pub const RESTIC_IMAGE: &str = "store-platform-test/restic:1";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("failed to prepare {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Process(#[from] ControlPlaneError),
    #[error("{what} not ready after {secs}s; last lines of {log}:\n{tail}")]
    Timeout {
        what: &'static str,
        secs: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

/// Runs `program args…`, failing with its output.
fn run(program: &str, args: &[&str]) -> Result<String, NodeError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NodeError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: "not started".into(),
            output: source.to_string(),
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NodeError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// The network namespace and its veth pair. Dropping it removes both (and every interface, route and iptables rule
/// inside).
#[derive(Debug)]
pub struct Network {
    netns: String,
}

impl Network {
    /// Creates `sp-node-<pid>`, after removing the namespaces of earlier runs whose process is gone.
    pub fn create() -> Result<Self, NodeError> {
        remove_stale_namespaces();
        let pid = std::process::id();
        let netns = format!("sp-node-{pid}");
        // Interface names are at most 15 bytes.
        let (host_end, node_end) = (format!("sph{pid}"), format!("spn{pid}"));
        run("ip", &["netns", "add", &netns])?;
        let network = Self { netns };
        let ns = network.netns.as_str();
        let host_cidr = format!("{HOST_ADDRESS}/30");
        let node_cidr = format!("{NODE_ADDRESS}/30");
        let gateway_cidr = format!("{POD_GATEWAY}/24");
        run(
            "ip",
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", &node_end, "netns", ns,
            ],
        )?;
        run("ip", &["addr", "add", &host_cidr, "dev", &host_end])?;
        run("ip", &["link", "set", &host_end, "up"])?;
        run(
            "ip",
            &["-n", ns, "addr", "add", &node_cidr, "dev", &node_end],
        )?;
        run("ip", &["-n", ns, "link", "set", &node_end, "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        // The pods' bridge exists before the first pod, so the DNS server can listen on it from the start.
        run("ip", &["-n", ns, "link", "add", "cni0", "type", "bridge"])?;
        run(
            "ip",
            &["-n", ns, "addr", "add", &gateway_cidr, "dev", "cni0"],
        )?;
        run("ip", &["-n", ns, "link", "set", "cni0", "up"])?;
        // The node's own processes (and tests in its namespace) reach ClusterIPs too: their packets need a route
        // before kube-proxy's rules rewrite the destination to a pod on the bridge.
        run(
            "ip",
            &["-n", ns, "route", "add", SERVICE_CIDR, "dev", "cni0"],
        )?;
        for setting in [
            "net.ipv4.ip_forward=1",
            // kube-proxy's rules must see traffic between two pods on the bridge (a Service's backend on the node).
            "net.bridge.bridge-nf-call-iptables=1",
        ] {
            run(
                "nsenter",
                &[
                    &format!("--net=/run/netns/{ns}"),
                    "sysctl",
                    "-q",
                    "-w",
                    setting,
                ],
            )?;
        }
        Ok(network)
    }

    pub fn name(&self) -> &str {
        &self.netns
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.netns]);
    }
}

fn remove_stale_namespaces() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if let Some(pid) = name.strip_prefix("sp-node-")
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// The network namespace of the run's real node (`sp-node-<pid>`; one node runs at a time), for commands that must
/// run beside its pods (`nsenter --net=/run/netns/<name>`).
pub fn running_netns() -> String {
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|name| name.starts_with("sp-node-"))
        .expect("the real node's network namespace")
        .to_owned()
}

/// The node's processes and the tasks that stand in for cluster add-ons (DNS records, volume provisioning).
#[derive(Debug)]
pub struct Node {
    dir: PathBuf,
    netns: String,
    cgroup_root: String,
    docker_socket: PathBuf,
    dockerd: Process,
    dnsmasq: Process,
    kubelet: Process,
    kube_proxy: Process,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Starts the node in `netns` against the API server of `kubeconfig`, imports the images in `images` (the
    /// output of `scripts/node-images.sh`), and waits until the node is Ready and untainted.
    pub async fn start(
        assets: &Assets,
        dir: &Path,
        netns: &str,
        kubeconfig: &Path,
        images: &Path,
        client: Client,
    ) -> Result<Self, NodeError> {
        let prepare = |path: &Path| {
            let path = path.to_owned();
            move |source| NodeError::Prepare { path, source }
        };
        let node_dir = dir.join("node");
        for sub in [
            "docker",
            "docker-exec",
            "kubelet",
            "cni",
            "cni-cache",
            "dns",
            "volumes",
        ] {
            let path = node_dir.join(sub);
            fs::create_dir_all(&path).map_err(prepare(&path))?;
        }
        let path = |sub: &str| node_dir.join(sub).display().to_string();
        let docker_socket = node_dir.join("docker.sock");
        let cgroup_root = format!("sp-node-{}", std::process::id());
        create_cgroup_root(&cgroup_root).map_err(prepare(Path::new("/sys/fs/cgroup")))?;

        let cni_config = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": POD_CIDR, "gateway": POD_GATEWAY.to_string() }]],
                        // Pods reach the node (the API server, services under test there) and ClusterIPs through
                        // the bridge; there is no default route, so nothing further.
                        "routes": [
                            { "dst": format!("{NODE_ADDRESS}/32") },
                            { "dst": SERVICE_CIDR },
                        ],
                        "dataDir": path("cni-cache"),
                    },
                },
                { "type": "portmap", "capabilities": { "portMappings": true } },
            ],
        });
        let cni_file = node_dir.join("cni/10-pods.conflist");
        fs::write(&cni_file, cni_config.to_string()).map_err(prepare(&cni_file))?;
        let resolv = node_dir.join("resolv.conf");
        // Pods get the cluster DNS; the node itself has no upstream resolver (nothing to reach).
        fs::write(&resolv, format!("nameserver {POD_GATEWAY}\n")).map_err(prepare(&resolv))?;
        let hosts = node_dir.join("dns/hosts");
        fs::write(&hosts, "").map_err(prepare(&hosts))?;

        let netns_owned = Some(netns.to_owned());
        let mut dockerd = Process::new(
            "dockerd",
            "dockerd".into(),
            vec![
                format!("--host=unix://{}", docker_socket.display()),
                format!("--data-root={}", path("docker")),
                format!("--exec-root={}", path("docker-exec")),
                format!("--pidfile={}", path("docker.pid")),
                "--bridge=none".into(),
                "--iptables=false".into(),
                "--ip-masq=false".into(),
                "--ip-forward=false".into(),
                "--storage-driver=overlay2".into(),
                "--exec-opt=native.cgroupdriver=cgroupfs".into(),
                format!("--cgroup-parent=/{cgroup_root}/docker"),
                "--log-level=warn".into(),
            ],
            node_dir.join("dockerd.log"),
            netns_owned.clone(),
        );
        dockerd.start()?;
        let docker_host = format!("unix://{}", docker_socket.display());
        wait_until(
            "dockerd",
            &node_dir.join("dockerd.log"),
            &mut dockerd,
            || run("docker", &["--host", &docker_host, "info"]).is_ok(),
        )
        .await?;
        for (name, image) in [
            ("pause", PAUSE_IMAGE),
            ("mariadb", MARIADB_IMAGE),
            ("wordpress", WORDPRESS_IMAGE),
            ("memory-hog", MEMORY_HOG_IMAGE),
            ("postgres", POSTGRES_IMAGE),
            ("redis", REDIS_IMAGE),
            ("medusa", MEDUSA_IMAGE),
            ("medusa-storefront", MEDUSA_STOREFRONT_IMAGE),
            ("restic", RESTIC_IMAGE),
        ] {
            import_image(&docker_host, images, name, image)?;
        }

        let mut dnsmasq = Process::new(
            "dnsmasq",
            "dnsmasq".into(),
            vec![
                "--keep-in-foreground".into(),
                "--no-resolv".into(),
                "--no-hosts".into(),
                format!("--addn-hosts={}", hosts.display()),
                format!("--listen-address={POD_GATEWAY}"),
                "--bind-interfaces".into(),
                // Names under the cluster domain that are not in the hosts file do not exist.
                "--local=/cluster.local/".into(),
                format!("--pid-file={}", path("dnsmasq.pid")),
                "--user=root".into(),
                "--log-facility=-".into(),
            ],
            node_dir.join("dnsmasq.log"),
            netns_owned.clone(),
        );
        dnsmasq.start()?;

        let mut kubelet = Process::new(
            "kubelet",
            assets.kubelet(),
            vec![
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-ip={NODE_ADDRESS}"),
                format!("--address={NODE_ADDRESS}"),
                "--read-only-port=0".into(),
                "--healthz-port=0".into(),
                format!("--root-dir={}", path("kubelet")),
                format!("--cert-dir={}", path("kubelet/pki")),
                "--container-runtime=docker".into(),
                format!("--docker-endpoint={docker_host}"),
                format!(
                    "--experimental-dockershim-root-directory={}",
                    path("dockershim")
                ),
                format!("--pod-infra-container-image={PAUSE_IMAGE}"),
                "--network-plugin=cni".into(),
                "--cni-bin-dir=/usr/lib/cni".into(),
                format!("--cni-conf-dir={}", path("cni")),
                format!("--cni-cache-dir={}", path("cni-cache")),
                "--cgroup-driver=cgroupfs".into(),
                format!("--cgroup-root=/{cgroup_root}"),
                "--fail-swap-on=false".into(),
                "--oom-score-adj=0".into(),
                format!("--cluster-dns={POD_GATEWAY}"),
                "--cluster-domain=cluster.local".into(),
                format!("--resolv-conf={}", resolv.display()),
                // A test machine's disk is not the node's to guard: never evict for it, never collect images.
                // A disk threshold at all (even 1 %: 2.5 GB of a shared 252 GB disk) lets the kubelet delete every
                // image no running container uses when the machine's disk runs low, and the node's images are
                // imported, never pulled: the stores after that fail with ErrImageNeverPull. 0 % is no threshold.
                "--eviction-hard=memory.available<1Mi,nodefs.available<0%,imagefs.available<0%"
                    .into(),
                "--image-gc-high-threshold=100".into(),
                "--image-gc-low-threshold=99".into(),
                "--serialize-image-pulls=false".into(),
                "--v=1".into(),
            ],
            node_dir.join("kubelet.log"),
            netns_owned.clone(),
        );
        kubelet.start()?;
        let mut kube_proxy = Process::new(
            "kube-proxy",
            assets.kube_proxy(),
            vec![
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--hostname-override={NODE_NAME}"),
                "--proxy-mode=iptables".into(),
                format!("--cluster-cidr={POD_CIDR}"),
                "--oom-score-adj=0".into(),
                // conntrack's limits are the machine's, not this namespace's: leave them.
                "--conntrack-max-per-core=0".into(),
                "--conntrack-tcp-timeout-established=0".into(),
                "--conntrack-tcp-timeout-close-wait=0".into(),
                "--metrics-bind-address=127.0.0.1:10249".into(),
                "--healthz-bind-address=127.0.0.1:10256".into(),
                "--v=1".into(),
            ],
            node_dir.join("kube-proxy.log"),
            netns_owned,
        );
        kube_proxy.start()?;

        let mut node = Self {
            dir: node_dir.clone(),
            netns: netns.to_owned(),
            cgroup_root,
            docker_socket,
            dockerd,
            dnsmasq,
            kubelet,
            kube_proxy,
            tasks: Vec::new(),
        };
        node.tasks.push(tokio::spawn(serve_dns(
            client.clone(),
            hosts,
            node_dir.join("dnsmasq.pid"),
        )));
        ensure_storage_class(&client).await?;
        node.tasks.push(tokio::spawn(provision_volumes(
            client.clone(),
            node_dir.join("volumes"),
        )));
        node.wait_ready(&client).await?;
        Ok(node)
    }

    async fn wait_ready(&mut self, client: &Client) -> Result<(), NodeError> {
        let nodes: Api<KubeNode> = Api::all(client.clone());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.kubelet.check_alive()?;
            self.kube_proxy.check_alive()?;
            self.dockerd.check_alive()?;
            self.dnsmasq.check_alive()?;
            if let Ok(Some(node)) = nodes.get_opt(NODE_NAME).await {
                let ready = node
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                let tainted = node
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| !t.is_empty());
                if ready && !tainted {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let log = self.dir.join("kubelet.log");
                return Err(NodeError::Timeout {
                    what: "the node (Ready, without taints)",
                    secs: START_TIMEOUT.as_secs(),
                    tail: log_tail(&log, 4000),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The node's docker socket (`docker --host unix://…`).
    pub fn docker_socket(&self) -> &Path {
        &self.docker_socket
    }

    /// The network namespace, for `nsenter --net=/run/netns/<name>`.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Stops the node and removes what it made outside its directory: containers, mounts, cgroups.
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.kubelet.stop();
        self.kube_proxy.stop();
        let host = format!("unix://{}", self.docker_socket.display());
        if let Ok(ids) = run("docker", &["--host", &host, "ps", "--all", "--quiet"]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["--host", &host, "rm", "--force", "--volumes"];
                args.extend(ids);
                let _ = run("docker", &args);
            }
        }
        self.dockerd.stop();
        self.dnsmasq.stop();
        unmount_below(&self.dir);
        remove_cgroup_root(&self.cgroup_root);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_until(
    what: &'static str,
    log: &Path,
    process: &mut Process,
    mut ready: impl FnMut() -> bool,
) -> Result<(), NodeError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        process.check_alive()?;
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NodeError::Timeout {
                what,
                secs: START_TIMEOUT.as_secs(),
                log: log.to_owned(),
                tail: log_tail(log, 4000),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `docker import`s `<images>/<name>.tar` as `image`, with the Dockerfile instructions of `<name>.changes`.
fn import_image(
    docker_host: &str,
    images: &Path,
    name: &str,
    image: &str,
) -> Result<(), NodeError> {
    let changes_file = images.join(format!("{name}.changes"));
    let changes = fs::read_to_string(&changes_file).map_err(|source| NodeError::Prepare {
        path: changes_file.clone(),
        source,
    })?;
    let tar = images.join(format!("{name}.tar")).display().to_string();
    let mut args = vec!["--host", docker_host, "import"];
    for change in changes.lines().filter(|l| !l.trim().is_empty()) {
        args.push("--change");
        args.push(change);
    }
    args.push(&tar);
    args.push(image);
    run("docker", &args).map(|_| ())
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup v1 hierarchies the kubelet uses, each with a directory `root` for the node's pods.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    all_hierarchies()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "unified"))
        .collect()
}

/// Every cgroup hierarchy mounted under /sys/fs/cgroup, the cgroup v2 one (`unified`, where runc also files each
/// container on a hybrid machine like this one) included.
fn all_hierarchies() -> Vec<PathBuf> {
    fs::read_dir(CGROUP_ROOT)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

fn create_cgroup_root(root: &str) -> std::io::Result<()> {
    for hierarchy in cgroup_hierarchies() {
        let dir = hierarchy.join(root);
        fs::create_dir_all(&dir)?;
        // A cpuset cgroup takes no task until it has CPUs and memory nodes: give it its parent's.
        if hierarchy.ends_with("cpuset") {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let parent = fs::read_to_string(hierarchy.join(file))?;
                fs::write(dir.join(file), parent.trim())?;
            }
        }
    }
    Ok(())
}

/// Removes `root` and every cgroup below it, deepest first (a cgroup directory goes only once it has no children and
/// no tasks).
fn remove_cgroup_root(root: &str) {
    fn remove(dir: &Path) {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove(&entry.path());
                }
            }
        }
        let _ = fs::remove_dir(dir);
    }
    for hierarchy in all_hierarchies() {
        remove(&hierarchy.join(root));
    }
}

/// Unmounts everything mounted below `dir` (kubelet's volumes, docker's layers), deepest first.
fn unmount_below(dir: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(|point| point.replace("\\040", " "))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for point in points {
        let _ = run("umount", &["--lazy", &point]);
    }
}

/// Keeps dnsmasq's hosts file equal to the cluster's Services: `<service>.<namespace>.svc.cluster.local` → the
/// ClusterIP, or for a headless Service each ready endpoint, also as `<hostname>.<service>.<namespace>.svc…` (a
/// StatefulSet's pods).
async fn serve_dns(client: Client, hosts: PathBuf, pid_file: PathBuf) {
    let services: Api<Service> = Api::all(client.clone());
    let endpoints: Api<Endpoints> = Api::all(client);
    let (service_store, service_writer) = kube::runtime::reflector::store();
    let (endpoint_store, endpoint_writer) = kube::runtime::reflector::store();
    let service_events = watcher(services, watcher::Config::default())
        .default_backoff()
        .reflect(service_writer)
        .map(|_| ());
    let endpoint_events = watcher(endpoints, watcher::Config::default())
        .default_backoff()
        .reflect(endpoint_writer)
        .map(|_| ());
    let mut events = std::pin::pin!(futures::stream::select(service_events, endpoint_events));
    let mut written = String::new();
    while events.next().await.is_some() {
        let mut records: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for service in service_store.state() {
            let (Some(name), Some(namespace)) =
                (&service.metadata.name, &service.metadata.namespace)
            else {
                continue;
            };
            let fqdn = format!("{name}.{namespace}.svc.cluster.local");
            let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.clone());
            match cluster_ip.as_deref() {
                Some("None") | None => {
                    let key = kube::runtime::reflector::ObjectRef::<Endpoints>::new(name)
                        .within(namespace);
                    let Some(endpoint) = endpoint_store.get(&key) else {
                        continue;
                    };
                    for subset in endpoint.subsets.iter().flatten() {
                        for address in subset.addresses.iter().flatten() {
                            records
                                .entry(address.ip.clone())
                                .or_default()
                                .push(fqdn.clone());
                            if let Some(hostname) = &address.hostname {
                                records
                                    .entry(address.ip.clone())
                                    .or_default()
                                    .push(format!("{hostname}.{fqdn}"));
                            }
                        }
                    }
                }
                Some(ip) => records.entry(ip.to_owned()).or_default().push(fqdn),
            }
        }
        let contents: String = records
            .iter()
            .map(|(ip, names)| format!("{ip} {}\n", names.join(" ")))
            .collect();
        if contents != written && fs::write(&hosts, &contents).is_ok() {
            written = contents;
            // dnsmasq re-reads its hosts files on SIGHUP.
            if let Ok(pid) = fs::read_to_string(&pid_file)
                && let Ok(pid) = pid.trim().parse::<libc::pid_t>()
            {
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGHUP);
                }
            }
        }
    }
}

async fn ensure_storage_class(client: &Client) -> Result<(), NodeError> {
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.to_owned()),
            annotations: Some(
                [(
                    "storageclass.kubernetes.io/is-default-class".to_owned(),
                    "true".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        provisioner: PROVISIONER.to_owned(),
        reclaim_policy: Some("Delete".to_owned()),
        volume_binding_mode: Some("Immediate".to_owned()),
        ..StorageClass::default()
    };
    match Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// A dynamic provisioner for the default StorageClass: each pending claim gets a hostPath PersistentVolume (a new
/// directory under `root`, mode 0777 and owned by root, as kind's local-path provisioner makes them), bound to it at
/// once; a released volume is deleted with its directory.
async fn provision_volumes(client: Client, root: PathBuf) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claim_events = watcher(claims, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .filter_map(|claim| async move { claim.ok().map(|c| Either::Claim(Box::new(c))) });
    let volume_events = watcher(volumes.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .filter_map(|volume| async move { volume.ok().map(|v| Either::Volume(Box::new(v))) });
    let mut events = std::pin::pin!(futures::stream::select(claim_events, volume_events));
    while let Some(event) = events.next().await {
        match event {
            Either::Claim(claim) => {
                if let Err(error) = provision(&volumes, &root, &claim).await {
                    tracing::warn!(%error, "provisioning a volume failed");
                }
            }
            Either::Volume(volume) => {
                let released =
                    volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
                let ours = volume
                    .spec
                    .as_ref()
                    .and_then(|s| s.storage_class_name.as_deref())
                    == Some(STORAGE_CLASS);
                if released && ours {
                    if let Some(path) = volume
                        .spec
                        .as_ref()
                        .and_then(|s| s.host_path.as_ref())
                        .map(|h| PathBuf::from(&h.path))
                        && path.starts_with(&root)
                    {
                        let _ = fs::remove_dir_all(&path);
                    }
                    let name = volume.metadata.name.clone().unwrap_or_default();
                    let _ = volumes.delete(&name, &DeleteParams::default()).await;
                }
            }
        }
    }
}

enum Either {
    Claim(Box<PersistentVolumeClaim>),
    Volume(Box<PersistentVolume>),
}

async fn provision(
    volumes: &Api<PersistentVolume>,
    root: &Path,
    claim: &PersistentVolumeClaim,
) -> Result<(), NodeError> {
    let spec = claim.spec.clone().unwrap_or_default();
    let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
    if !pending
        || spec.volume_name.as_deref().is_some_and(|v| !v.is_empty())
        || spec.storage_class_name.as_deref() != Some(STORAGE_CLASS)
    {
        return Ok(());
    }
    let (Some(name), Some(namespace), Some(uid)) = (
        claim.metadata.name.clone(),
        claim.metadata.namespace.clone(),
        claim.metadata.uid.clone(),
    ) else {
        return Ok(());
    };
    let volume_name = format!("pvc-{uid}");
    let path = root.join(&volume_name);
    fs::create_dir_all(&path).map_err(|source| NodeError::Prepare {
        path: path.clone(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).map_err(|source| {
            NodeError::Prepare {
                path: path.clone(),
                source,
            }
        })?;
    }
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned())
        .unwrap_or_else(|| Quantity("1Gi".to_owned()));
    let volume = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name),
            annotations: Some(
                [(
                    "pv.kubernetes.io/provisioned-by".to_owned(),
                    PROVISIONER.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some([("storage".to_owned(), size)].into()),
            access_modes: spec.access_modes.clone(),
            storage_class_name: Some(STORAGE_CLASS.to_owned()),
            persistent_volume_reclaim_policy: Some("Delete".to_owned()),
            host_path: Some(HostPathVolumeSource {
                path: path.display().to_string(),
                type_: Some("Directory".to_owned()),
            }),
            claim_ref: Some(ObjectReference {
                kind: Some("PersistentVolumeClaim".to_owned()),
                name: Some(name),
                namespace: Some(namespace),
                uid: Some(uid),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        ..PersistentVolume::default()
    };
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
