//! Helpers shared by the provisioner's integration tests.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use clap::Parser as _;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    runtime::wait::{await_condition, conditions},
};
use store_platform_proto::v1::{CreateStoreRequest, Engine};
use store_platform_runtime::{
    Shutdown,
    record::{self, StepState, StoreStatus},
};
use store_platform_test_support::TestEnv;
pub use store_platform_test_support::process::as_tenant;
use tonic::Request;

/// What a real Medusa bootstrap leaves in its termination message (`deploy/medusa/bin/bootstrap.mjs`, run for real
/// by medusa_real.rs): the store's publishable key and a newline.
pub const PUBLISHABLE_KEY: &str =
    "pk_4f0c2a9e8b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a\n";

/// The simulated kubelet's behaviour for a Medusa store: pods take `delay`, and the bootstrap's pods end as a real
/// one does, with the publishable key.
pub fn medusa_behaviour(delay: Duration) -> store_platform_test_support::Behaviour {
    store_platform_test_support::Behaviour::with_delay(delay).pod(
        "medusa-bootstrap",
        store_platform_test_support::Fate::SucceedSaying {
            message: PUBLISHABLE_KEY.into(),
        },
    )
}

/// A request from an administrator of `tenant`: the all-tenants scope the gateway sets for admin tokens.
pub fn as_admin<T>(tenant: &str, message: T) -> Request<T> {
    let mut request = as_tenant(tenant, message);
    request.metadata_mut().insert(
        store_platform_proto::SCOPE_METADATA_KEY,
        store_platform_proto::ALL_TENANTS.parse().expect("ascii"),
    );
    request
}

pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn create_request(id: &str) -> CreateStoreRequest {
    create_request_for(id, Engine::Woocommerce)
}

/// A request for store `id` of `engine`, named after its id, for owner@example.com.
/// CreateStore for store `id` of `engine` made from backup `backup` of store `source` (a clone, or a deleted store
/// brought back under its own id).
pub fn clone_request_for(
    id: &str,
    engine: Engine,
    (source, backup): (&str, &str),
) -> CreateStoreRequest {
    CreateStoreRequest {
        source: Some(store_platform_proto::v1::CloneSource {
            store_id: source.to_owned(),
            backup_id: backup.to_owned(),
        }),
        ..create_request_for(id, engine)
    }
}

pub fn create_request_for(id: &str, engine: Engine) -> CreateStoreRequest {
    CreateStoreRequest {
        store_id: id.to_owned(),
        display_name: format!("Store {id}"),
        engine: engine as i32,
        admin_email: "owner@example.com".to_owned(),
        source: None,
    }
}

/// Starts a provisioner against `env`'s cluster on a thread and a runtime of its own, so that it outlives each
/// test's runtime: listening on loopback ports of its own, trusting `env`'s caller policy, with `flags` besides,
/// and a Kubernetes client timed into its metrics as the binary makes it. Returns its gRPC and metrics addresses
/// once it serves.
pub fn spawn_provisioner(env: TestEnv, flags: Vec<String>) -> (SocketAddr, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            env.ensure_namespace("store-platform").await;
            let mut argv = vec![
                "provisioner".to_owned(),
                "--grpc-addr=127.0.0.1:0".to_owned(),
                format!("--caller-policy={}", env.caller_policy_path().display()),
                "--metrics-addr=127.0.0.1:0".to_owned(),
            ];
            argv.extend(flags);
            let args = store_platform_provisioner::Args::parse_from(argv);
            let (metrics, registry) = store_platform_provisioner::metrics::Metrics::new();
            let kubeconfig =
                kube::config::Kubeconfig::read_from(env.kubeconfig_path()).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .expect("config");
            let client = store_platform_runtime::metrics::client_with_metrics(
                config,
                metrics.kube_requests.clone(),
            )
            .expect("client");
            let running =
                store_platform_provisioner::start(args, client, Shutdown::new(), metrics, registry)
                    .await
                    .expect("start the provisioner");
            tx.send((running.addr, running.metrics_addr))
                .expect("send address");
            let _ = running.task.await;
        });
    });
    rx.recv().expect("provisioner address")
}

/// Waits, through a watch on the store's namespace, until its phase label is `phase`.
pub async fn wait_for_phase(id: &str, phase: &str, within: Duration) {
    let namespaces: Api<Namespace> = Api::all(TestEnv::shared().client().await);
    let phase_is = |ns: Option<&Namespace>| {
        ns.and_then(|ns| ns.metadata.labels.as_ref())
            .and_then(|labels| labels.get(record::PHASE_LABEL))
            .is_some_and(|p| p == phase)
    };
    if tokio::time::timeout(
        within,
        await_condition(namespaces.clone(), &record::namespace_name(id), phase_is),
    )
    .await
    .is_err()
    {
        let ns = namespaces
            .get_opt(&record::namespace_name(id))
            .await
            .ok()
            .flatten();
        let status = ns
            .and_then(|ns| ns.metadata.annotations)
            .and_then(|a| a.get(record::STATUS_ANNOTATION).cloned());
        panic!("store {id} not {phase} within {within:?}; status: {status:?}");
    }
}

pub async fn wait_until_gone(id: &str) {
    let namespaces: Api<Namespace> = Api::all(TestEnv::shared().client().await);
    let name = record::namespace_name(id);
    let Some(uid) = namespaces
        .get_opt(&name)
        .await
        .expect("get")
        .and_then(|ns| ns.metadata.uid)
    else {
        return;
    };
    tokio::time::timeout(
        Duration::from_secs(180),
        await_condition(namespaces, &name, conditions::is_deleted(&uid)),
    )
    .await
    .expect("namespace removed in time")
    .expect("watch");
}

/// The store's status as its namespace holds it, once `accept` says so (through a watch).
pub async fn wait_for_status(
    id: &str,
    within: Duration,
    accept: impl Fn(&StoreStatus) -> bool,
) -> StoreStatus {
    let namespaces: Api<Namespace> = Api::all(TestEnv::shared().client().await);
    let status_of = |ns: Option<&Namespace>| -> Option<StoreStatus> {
        let json = ns?
            .metadata
            .annotations
            .as_ref()?
            .get(record::STATUS_ANNOTATION)?;
        serde_json::from_str(json).ok()
    };
    let found = tokio::time::timeout(
        within,
        await_condition(
            namespaces,
            &record::namespace_name(id),
            move |ns: Option<&Namespace>| status_of(ns).is_some_and(|s| accept(&s)),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("store {id}: status not reached within {within:?}"))
    .expect("watch");
    status_of(found.as_ref()).expect("status")
}

/// Whether `step` has started (running or beyond).
pub fn started(status: &StoreStatus, step: &str) -> bool {
    status
        .steps
        .iter()
        .any(|s| s.name == step && s.state != StepState::Pending)
}

/// The store's `StepSucceeded` events once there are `expected` of them. They are published right after the status
/// write that records each transition, so they can trail the phase by a moment.
pub async fn step_succeeded_events(
    namespace: &str,
    expected: usize,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    use k8s_openapi::api::events::v1::Event;
    let events: Api<Event> = Api::namespaced(TestEnv::shared().client().await, namespace);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<Event> = events
            .list(&kube::api::ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("StepSucceeded"))
            .collect();
        if found.len() >= expected || std::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The store `id` as `tenant` sees it through GetStore.
pub async fn get_store(
    api: &mut store_platform_proto::v1::provisioner_service_client::ProvisionerServiceClient<
        tonic::transport::Channel,
    >,
    tenant: &str,
    id: &str,
) -> store_platform_proto::v1::Store {
    let request = store_platform_proto::v1::GetStoreRequest {
        store_id: id.to_owned(),
    };
    api.get_store(as_tenant(tenant, request))
        .await
        .expect("get")
        .into_inner()
        .store
        .expect("store")
}

/// moto's S3 server with bucket `bucket`, listening on `host`, started through `launcher` (see
/// [`ObjectStore::start`](store_platform_test_support::object_store::ObjectStore::start)); it lives as long as the
/// test binary. Returns its endpoint.
pub fn start_object_store(launcher: &[String], host: std::net::Ipv4Addr, bucket: &str) -> String {
    let launcher = launcher.to_vec();
    let bucket = bucket.to_owned();
    let dir = std::env::temp_dir().join(format!("moto-{}-{host}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // Started from a thread that lives as long as the binary: the daemon ends with the thread that started it.
    let (started, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let store = store_platform_test_support::object_store::ObjectStore::start(
            &launcher, host, &bucket, &dir,
        );
        started.send(store.endpoint.clone()).expect("started");
        loop {
            std::thread::park();
        }
    });
    wait.recv().expect("moto's S3 server started")
}
