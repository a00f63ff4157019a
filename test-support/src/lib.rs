//! A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager on loopback, plus a
//! simulated kubelet that marks pods ready so the real controllers report workloads ready.
//!
//! Tests share one control plane per run: [`TestEnv::shared`] attaches to the one `test-cluster` started (its
//! directory in `$STORE_PLATFORM_TEST_CLUSTER`, as `make test` does), or starts one for this test process. Tests
//! isolate themselves by namespace ([`TestEnv::namespace`]) and clean up after themselves.

pub mod assets;
pub mod backup_job;
pub mod buf;
pub mod caller;
pub mod control_plane;
pub mod daemon;
pub mod kubeconfig;
pub mod kubelet;
pub mod measure;
pub mod node;
pub mod object_store;
pub mod oidc;
pub mod pki;
pub mod process;

use std::{
    path::{Path, PathBuf},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
    runtime::wait::{await_condition, conditions},
};

pub use crate::{
    assets::Assets,
    control_plane::{ControlPlane, ControlPlaneError},
    kubelet::{Behaviour, Fate},
};

/// Environment variable naming the directory of a running `test-cluster`.
pub const CLUSTER_DIR_ENV: &str = "STORE_PLATFORM_TEST_CLUSTER";

/// Environment variable naming the directory of a running `test-cluster --real-node` (`scripts/real-node.sh`).
pub const REAL_NODE_DIR_ENV: &str = "STORE_PLATFORM_TEST_REAL_NODE";

/// A control plane that tests can use: its kubeconfig, and the credentials to act as anyone.
#[derive(Debug, Clone)]
pub struct TestEnv {
    dir: PathBuf,
}

static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();

impl TestEnv {
    /// The run's shared control plane: the `test-cluster` named by `$STORE_PLATFORM_TEST_CLUSTER`, or one started
    /// for this process on first use (with its simulated kubelet) and killed when the process exits.
    ///
    /// Panics if no control plane can be had: this is for tests.
    pub fn shared() -> &'static TestEnv {
        let env = SHARED.get_or_init(|| {
            if let Some(dir) = std::env::var_os(CLUSTER_DIR_ENV).filter(|d| !d.is_empty()) {
                return Ok(TestEnv { dir: dir.into() });
            }
            start_for_this_process().map_err(|error| format!("{error:#}"))
        });
        match env {
            Ok(env) => env,
            Err(error) => panic!("no Kubernetes control plane for tests: {error}"),
        }
    }

    /// The run's cluster with a real node (real containers), named by `$STORE_PLATFORM_TEST_REAL_NODE`, as
    /// `make test` starts it with `scripts/real-node.sh`.
    ///
    /// Panics if there is none: it needs root and packages a test process cannot start by itself.
    pub fn real_node() -> TestEnv {
        match std::env::var_os(REAL_NODE_DIR_ENV).filter(|d| !d.is_empty()) {
            Some(dir) => TestEnv { dir: dir.into() },
            None => panic!(
                "no real node: start one with `scripts/real-node.sh DIR` (as root) and set \
                 {REAL_NODE_DIR_ENV}=DIR, as `make test` does"
            ),
        }
    }

    /// Attaches to the control plane whose files are in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory of certificates, kubeconfigs and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The administrator's kubeconfig, for child processes (`KUBECONFIG=`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The caller policy for the platform's services: it allows the tests' caller ([`TestEnv::caller_token`])
    /// every tenant and the all-tenants scope.
    pub fn caller_policy_path(&self) -> PathBuf {
        self.dir.join(caller::POLICY_FILE)
    }

    /// The tests' caller's ServiceAccount token (audience `store-platform`), for `authorization: Bearer`.
    pub fn caller_token(&self) -> String {
        let path = self.dir.join(caller::TOKEN_FILE);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| {
                panic!("read the tests' caller token {}: {error}", path.display())
            })
            .trim()
            .to_owned()
    }

    /// `message` as a call of the tests' caller for `tenant`: its token, and the tenant in the metadata.
    pub fn as_tenant<T>(&self, tenant: &str, message: T) -> tonic::Request<T> {
        let mut request = process::naming_tenant(tenant, message);
        let bearer = format!("Bearer {}", self.caller_token());
        request.metadata_mut().insert(
            "authorization",
            bearer.parse().expect("a token is an ASCII header value"),
        );
        request
    }

    /// A new administrator client, bound to the calling test's runtime.
    pub async fn client(&self) -> Client {
        kubeconfig::client_from_file(&self.kubeconfig_path())
            .await
            .expect("client for the test cluster")
    }

    /// Kubeconfig YAML that impersonates the service account `namespace/name`: everything it does is authorized
    /// by RBAC exactly as for that service account.
    pub fn kubeconfig_as(&self, namespace: &str, name: &str) -> String {
        let admin_cert = self.dir.join("admin.crt");
        let admin_key = self.dir.join("admin.key");
        let yaml = std::fs::read_to_string(self.kubeconfig_path())
            .expect("read the test cluster's kubeconfig");
        let parsed = kube::config::Kubeconfig::from_yaml(&yaml)
            .expect("parse the test cluster's kubeconfig");
        let server = parsed
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .expect("the kubeconfig names a server");
        kubeconfig::render(
            &server,
            &self.dir.join("ca.crt"),
            &kubeconfig::Identity {
                client_cert: &admin_cert,
                client_key: &admin_key,
                impersonate: Some(kubeconfig::service_account_identity(namespace, name)),
            },
        )
    }

    /// A client acting as the service account `namespace/name`.
    pub async fn client_as(&self, namespace: &str, name: &str) -> Client {
        kubeconfig::client_from_yaml(&self.kubeconfig_as(namespace, name))
            .await
            .expect("impersonating client")
    }

    /// Sets what the simulated kubelet does with the pods of `namespace`. Set it before creating the pods.
    pub async fn set_kubelet_behaviour(&self, namespace: &str, behaviour: &Behaviour) {
        kubelet::configure(&self.client().await, namespace, behaviour)
            .await
            .expect("configure the simulated kubelet");
    }

    /// Creates namespace `name` unless it exists (e.g. `store-platform`, where the provisioner keeps its Lease).
    pub async fn ensure_namespace(&self, name: &str) {
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        match Api::<Namespace>::all(self.client().await)
            .create(&kube::api::PostParams::default(), &namespace)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("create namespace {name}: {error}"),
        }
    }

    /// Creates a namespace with a unique name starting with `prefix` and waits until it can hold pods (its
    /// `default` service account has a token).
    pub async fn namespace(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let client = self.client().await;
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                },
            )
            .await
            .expect("create test namespace");
        let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
        let has_token = |account: Option<&ServiceAccount>| {
            account.is_some_and(|a| a.secrets.as_ref().is_some_and(|s| !s.is_empty()))
        };
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(accounts, "default", has_token),
        )
        .await
        .expect("default service account in time")
        .expect("watch the default service account");
        name
    }

    /// Deletes `namespace` and waits until Kubernetes has removed it and everything in it.
    pub async fn delete_namespace(&self, namespace: &str) {
        let api: Api<Namespace> = Api::all(self.client().await);
        let uid = match api.get_opt(namespace).await.expect("get namespace") {
            Some(ns) => ns.metadata.uid.unwrap_or_default(),
            None => return,
        };
        api.delete(namespace, &DeleteParams::default())
            .await
            .expect("delete namespace");
        // The namespace controller empties the namespace first; that takes 10 s to a minute here.
        tokio::time::timeout(
            Duration::from_secs(180),
            await_condition(api, namespace, conditions::is_deleted(&uid)),
        )
        .await
        .expect("namespace removed in time")
        .expect("watch namespace deletion");
    }
}

const PER_PROCESS_PREFIX: &str = "store-platform-test-";

/// A test process's control plane lives until the process exits, so nothing removes its directory; the next test
/// process removes those of processes that no longer run.
fn remove_leftovers_of_dead_processes() {
    let roots = [std::env::temp_dir(), PathBuf::from("/dev/shm")];
    for root in roots {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.rsplit_once(PER_PROCESS_PREFIX).map(|(_, pid)| pid) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Starts a control plane and a simulated kubelet on a thread of their own that lives as long as the process, so
/// they outlive any single test's runtime. The processes die with that thread (`PR_SET_PDEATHSIG`), i.e. when the
/// test binary exits.
fn start_for_this_process() -> anyhow::Result<TestEnv> {
    remove_leftovers_of_dead_processes();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-control-plane".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = tx.send(Err(anyhow::Error::from(error)));
                    return;
                }
            };
            runtime.block_on(async move {
                let started = async {
                    let assets = Assets::locate()?;
                    let dir = std::env::temp_dir()
                        .join(format!("store-platform-test-{}", std::process::id()));
                    let plane = ControlPlane::start(&assets, dir).await?;
                    let client = plane.client().await?;
                    tokio::spawn(kubelet::run(client, Box::pin(std::future::pending())));
                    anyhow::Ok(plane)
                }
                .await;
                match started {
                    Ok(plane) => {
                        let _ = tx.send(Ok(TestEnv {
                            dir: plane.dir().to_owned(),
                        }));
                        // Never returns: the control plane lives until the process ends.
                        std::future::pending::<()>().await;
                        drop(plane);
                    }
                    Err(error) => {
                        let _ = tx.send(Err(error));
                    }
                }
            });
        })?;
    rx.recv()?
}
