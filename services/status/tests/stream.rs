//! The status service on the real local control plane: the stream through a store's whole life (with the
//! provisioner running), tenant scoping, heartbeats, and convergence across an API-server restart.

use std::{net::SocketAddr, time::Duration};

use clap::Parser as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use store_platform_proto::v1::{
    ChangeType, CreateStoreRequest, DeleteStoreRequest, Engine, GetStoreStatusRequest, Phase,
    StepState, WatchStoresRequest, WatchStoresResponse,
    provisioner_service_client::ProvisionerServiceClient,
    status_service_client::StatusServiceClient, watch_stores_response::Event,
};
use store_platform_runtime::{
    Shutdown,
    record::{self, Engine as EngineKind, StoreRecord, StoreSpec, StoreStatus},
};
use store_platform_status::Args;
use store_platform_test_support::{
    Assets, Behaviour, ControlPlane, TestEnv, kubelet,
    process::{ServiceProcess, as_tenant, free_port, http_get},
};
use tonic::{Request, Streaming, transport::Channel};

async fn start_status(client: Client, heartbeat: &str) -> (SocketAddr, Shutdown) {
    start_status_in(TestEnv::shared(), client, heartbeat).await
}

/// A status service on the cluster of `env` (whose tests' caller it lets in).
async fn start_status_in(env: &TestEnv, client: Client, heartbeat: &str) -> (SocketAddr, Shutdown) {
    let (addr, _, shutdown) =
        start_status_with(env, client, &[&format!("--heartbeat={heartbeat}")]).await;
    (addr, shutdown)
}

async fn start_status_with_metrics(
    client: Client,
    heartbeat: &str,
) -> (SocketAddr, SocketAddr, Shutdown) {
    start_status_with(
        TestEnv::shared(),
        client,
        &[&format!("--heartbeat={heartbeat}")],
    )
    .await
}

async fn start_status_with(
    env: &TestEnv,
    client: Client,
    flags: &[&str],
) -> (SocketAddr, SocketAddr, Shutdown) {
    let policy = format!("--caller-policy={}", env.caller_policy_path().display());
    let args = Args::parse_from(
        [
            "status",
            "--grpc-addr=127.0.0.1:0",
            "--metrics-addr=127.0.0.1:0",
            &policy,
        ]
        .into_iter()
        .chain(flags.iter().copied()),
    );
    let shutdown = Shutdown::new();
    let running = store_platform_status::start(args, client, shutdown.clone())
        .await
        .expect("start");
    running.hub.synced().await;
    (running.addr, running.metrics_addr, shutdown)
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

async fn watch(addr: SocketAddr, tenant: &str, store_id: &str) -> Streaming<WatchStoresResponse> {
    watch_as(TestEnv::shared(), addr, tenant, store_id).await
}

/// As [`watch`], as the tests' caller of the cluster of `env`.
async fn watch_as(
    env: &TestEnv,
    addr: SocketAddr,
    tenant: &str,
    store_id: &str,
) -> Streaming<WatchStoresResponse> {
    StatusServiceClient::new(channel(addr).await)
        .watch_stores(env.as_tenant(
            tenant,
            WatchStoresRequest {
                store_id: store_id.to_owned(),
            },
        ))
        .await
        .expect("watch")
        .into_inner()
}

/// The next message that is not a heartbeat.
async fn next_event(stream: &mut Streaming<WatchStoresResponse>) -> Event {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(90), stream.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("message");
        match message.event.expect("event") {
            Event::Heartbeat(_) => continue,
            event => return event,
        }
    }
}

/// Writes a store record the way the provisioner does.
async fn write_record(client: &Client, id: &str, tenant: &str, phase: record::Phase) {
    write_record_with_reason(client, id, tenant, phase, String::new()).await;
}

async fn write_record_with_reason(
    client: &Client,
    id: &str,
    tenant: &str,
    phase: record::Phase,
    failure_reason: String,
) {
    try_write_record(client, id, tenant, phase, failure_reason)
        .await
        .expect("write record");
}

async fn try_write_record(
    client: &Client,
    id: &str,
    tenant: &str,
    phase: record::Phase,
    failure_reason: String,
) -> Result<(), kube::Error> {
    let mut status = StoreStatus::pending(&["namespace"], jiff::Timestamp::now());
    status.phase = phase;
    status.failure_reason = failure_reason;
    let record = StoreRecord {
        id: id.into(),
        tenant: tenant.into(),
        spec: StoreSpec {
            display_name: id.into(),
            engine: EngineKind::Woocommerce,
            admin_email: "a@example.com".into(),
            source: None,
        },
        status,
        create_time: None,
        terminating: false,
        damage: None,
    };
    let namespace = record.to_namespace().expect("record");
    Api::<Namespace>::all(client.clone())
        .patch(
            &record::namespace_name(id),
            &PatchParams::apply("status-test").force(),
            &Patch::Apply(&namespace),
        )
        .await
        .map(drop)
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test]
async fn a_stream_follows_a_store_through_its_whole_life_with_the_provisioner() {
    let env = TestEnv::shared();
    let client = env.client().await;
    env.ensure_namespace("store-platform").await;
    let (status_addr, _stop) = start_status(client.clone(), "15s").await;
    let logs = tempfile::tempdir().expect("logs");
    let port = free_port();
    let mut provisioner = ServiceProcess::start(
        "provisioner",
        &[
            ("KUBECONFIG", env.kubeconfig_path().display().to_string()),
            ("GRPC_ADDR", format!("127.0.0.1:{port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("LEASE_NAME", unique("status-lease")),
            (
                "RECONCILE_SELECTOR",
                format!("{}=stream", record::TENANT_LABEL),
            ),
        ],
        logs.path(),
    );
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    let id = unique("life");
    env.set_kubelet_behaviour(
        &record::namespace_name(&id),
        &Behaviour::with_delay(Duration::from_millis(200)),
    )
    .await;

    let mut stream = watch(status_addr, "stream", &id).await;
    match next_event(&mut stream).await {
        Event::Snapshot(snapshot) => assert!(snapshot.stores.is_empty(), "{snapshot:?}"),
        other => panic!("expected a snapshot first, got {other:?}"),
    }
    api.create_store(as_tenant(
        "stream",
        CreateStoreRequest {
            store_id: id.clone(),
            display_name: "Life".into(),
            engine: Engine::Woocommerce as i32,
            admin_email: "owner@example.com".into(),
            source: None,
        },
    ))
    .await
    .expect("create");

    let mut kinds = Vec::new();
    let mut succeeded_before = 0;
    loop {
        let Event::Change(change) = next_event(&mut stream).await else {
            panic!("only changes after the snapshot");
        };
        let store = change.store.expect("store");
        assert_eq!(store.id, id);
        let succeeded = store
            .steps
            .iter()
            .filter(|s| s.state == StepState::Succeeded as i32)
            .count();
        assert!(succeeded >= succeeded_before, "steps only move forward");
        // Steps succeed in order: no step succeeded after one that has not.
        let states: Vec<i32> = store.steps.iter().map(|s| s.state).collect();
        assert!(
            states
                .iter()
                .take(succeeded)
                .all(|s| *s == StepState::Succeeded as i32),
            "{states:?}"
        );
        succeeded_before = succeeded;
        kinds.push((change.r#type, store.phase));
        if store.phase == Phase::Ready as i32 {
            break;
        }
    }
    assert_eq!(
        kinds.first(),
        Some(&(ChangeType::Added as i32, Phase::Pending as i32))
    );
    assert_eq!(succeeded_before, 9);

    api.delete_store(as_tenant(
        "stream",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
    let mut after = Vec::new();
    loop {
        let Event::Change(change) = next_event(&mut stream).await else {
            panic!("only changes");
        };
        after.push(change.r#type);
        if change.r#type == ChangeType::Deleted as i32 {
            assert_eq!(
                change.store.map(|s| s.phase),
                Some(Phase::Deleting as i32),
                "the last state goes out"
            );
            break;
        }
    }
    assert!(after.contains(&(ChangeType::Deleting as i32)), "{after:?}");
    assert!(provisioner.terminate(Duration::from_secs(20)));
}

#[tokio::test]
async fn tenants_see_only_their_stores_and_idle_streams_get_heartbeats() {
    let env = TestEnv::shared();
    let client = env.client().await;
    let (status_addr, metrics_addr, _stop) = start_status_with_metrics(client.clone(), "1s").await;
    let (mine, theirs) = (unique("mine"), unique("theirs"));
    write_record(&client, &mine, "tenant-a", record::Phase::Ready).await;
    write_record(&client, &theirs, "tenant-b", record::Phase::Ready).await;

    let mut status = StatusServiceClient::new(channel(status_addr).await);
    let found = async {
        loop {
            match status
                .get_store_status(as_tenant(
                    "tenant-a",
                    GetStoreStatusRequest {
                        store_id: mine.clone(),
                    },
                ))
                .await
            {
                Ok(response) => return response.into_inner().store.expect("store"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    let store = tokio::time::timeout(Duration::from_secs(10), found)
        .await
        .expect("indexed in time");
    assert_eq!(store.phase, Phase::Ready as i32);
    let error = status
        .get_store_status(as_tenant(
            "tenant-a",
            GetStoreStatusRequest {
                store_id: theirs.clone(),
            },
        ))
        .await
        .expect_err("another tenant's store");
    assert_eq!(error.code(), tonic::Code::NotFound);
    let error = status
        .get_store_status(Request::new(GetStoreStatusRequest {
            store_id: mine.clone(),
        }))
        .await
        .expect_err("no tenant");
    assert_eq!(error.code(), tonic::Code::Unauthenticated);

    let mut stream = watch(status_addr, "tenant-a", "").await;
    let first = stream
        .next()
        .await
        .expect("open")
        .expect("message")
        .event
        .expect("event");
    let Event::Snapshot(snapshot) = first else {
        panic!("snapshot first")
    };
    assert!(snapshot.stores.iter().any(|s| s.id == mine));
    assert!(
        !snapshot.stores.iter().any(|s| s.id == theirs),
        "another tenant's store leaked"
    );
    // Idle: a heartbeat arrives within the interval (1s here).
    let next = tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .expect("a heartbeat in time")
        .expect("open")
        .expect("message");
    assert!(matches!(next.event, Some(Event::Heartbeat(_))), "{next:?}");
    let metrics = http_get(metrics_addr, "/metrics")
        .await
        .expect("scrape /metrics");
    for expected in [
        "store_platform_status_subscribers 1",
        "store_platform_status_messages_sent_total{kind=\"snapshot\"} 1",
        "store_platform_status_messages_sent_total{kind=\"heartbeat\"}",
        "store_platform_status_watch_restarts_total 0",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
    // The index's watch has heard from the API server lately (its listing, at the least).
    let age = watch_age(&metrics, "store-namespaces");
    assert!(
        age < store_platform_runtime::watch::SILENCE.as_secs_f64(),
        "{age}"
    );

    let namespaces: Api<Namespace> = Api::all(client);
    for id in [&mine, &theirs] {
        namespaces
            .delete(&record::namespace_name(id), &DeleteParams::default())
            .await
            .expect("delete");
    }
}

/// A control plane of the test's own (for tests that stop its API server), with a simulated kubelet: the plane, an
/// admin client, and the caller files of that plane.
async fn own_plane(name: &str) -> (ControlPlane, Client, TestEnv) {
    let assets = Assets::locate().expect("assets");
    let dir = std::env::temp_dir().join(format!(
        "store-platform-status-{name}-{}",
        std::process::id()
    ));
    let plane = ControlPlane::start(&assets, dir)
        .await
        .expect("control plane");
    let client = plane.client().await.expect("client");
    tokio::spawn(kubelet::run(
        client.clone(),
        Box::pin(std::future::pending()),
    ));
    let caller = TestEnv::in_dir(plane.dir());
    (plane, client, caller)
}

#[tokio::test]
async fn after_an_api_server_restart_the_stream_converges_on_every_final_state() {
    // A control plane of its own: this test stops its API server.
    let (mut plane, client, caller) = own_plane("restart").await;
    let (status_addr, _stop) = start_status_in(&caller, client.clone(), "15s").await;
    write_record(&client, "finishing", "acme", record::Phase::Provisioning).await;
    write_record(&client, "leaving", "acme", record::Phase::Ready).await;

    let mut stream = watch_as(&caller, status_addr, "acme", "").await;
    let mut seen = std::collections::HashMap::new();
    while seen.len() < 2 {
        match next_event(&mut stream).await {
            Event::Snapshot(snapshot) => {
                for store in snapshot.stores {
                    seen.insert(store.id.clone(), store.phase);
                }
            }
            Event::Change(change) => {
                let store = change.store.expect("store");
                seen.insert(store.id.clone(), store.phase);
            }
            Event::Heartbeat(_) => {}
        }
    }

    plane.restart_apiserver().await.expect("restart");
    // Right after the restart, while the status service's watch reconnects: one store finishes, one goes away.
    let client = plane.client().await.expect("client");
    write_record(&client, "finishing", "acme", record::Phase::Ready).await;
    Api::<Namespace>::all(client)
        .delete("store-leaving", &DeleteParams::default())
        .await
        .expect("delete");

    let (mut ready, mut gone) = (false, false);
    while !(ready && gone) {
        match next_event(&mut stream).await {
            Event::Change(change) => {
                let store = change.store.expect("store");
                ready |= store.id == "finishing" && store.phase == Phase::Ready as i32;
                gone |= store.id == "leaving" && change.r#type == ChangeType::Deleted as i32;
            }
            Event::Snapshot(snapshot) => {
                ready |= snapshot
                    .stores
                    .iter()
                    .any(|s| s.id == "finishing" && s.phase == Phase::Ready as i32);
                gone |= !snapshot.stores.iter().any(|s| s.id == "leaving");
            }
            Event::Heartbeat(_) => {}
        }
    }
}

#[tokio::test]
async fn a_stuck_subscriber_never_delays_the_others_and_gets_a_fresh_snapshot() {
    let env = TestEnv::shared();
    let client = env.client().await;
    let (status_addr, metrics_addr, _stop) =
        start_status_with(env, client.clone(), &["--subscriber-buffer=16"]).await;
    let tenant = unique("stuck");
    let id = unique("busy");
    write_record(&client, &id, &tenant, record::Phase::Provisioning).await;
    // The record is in the index before anyone subscribes, so its arrival is in their snapshots, never a change
    // the live subscriber mistakes for the first update.
    let mut lookup = StatusServiceClient::new(channel(status_addr).await);
    let indexed = async {
        while lookup
            .get_store_status(as_tenant(
                &tenant,
                GetStoreStatusRequest {
                    store_id: id.clone(),
                },
            ))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), indexed)
        .await
        .expect("the record reaches the index");

    // The stuck client has a connection of its own with a 64 KiB flow-control window, and never reads: once the
    // window is full, the server cannot send it anything more.
    let endpoint = Channel::from_shared(format!("http://{status_addr}")).expect("uri");
    let stuck_channel = endpoint
        .http2_adaptive_window(false)
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    let mut stuck = StatusServiceClient::new(stuck_channel)
        .watch_stores(as_tenant(&tenant, WatchStoresRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    assert!(matches!(next_event(&mut stuck).await, Event::Snapshot(_)));
    let mut live = watch(status_addr, &tenant, "").await;
    assert!(matches!(next_event(&mut live).await, Event::Snapshot(_)));

    // 200 changes of about 1 KiB: three times the stuck client's window, and far more than its 16 buffered
    // changes. The live subscriber gets each one before the next is written.
    let updates = 200;
    let reason = |n: usize| format!("update {n:04} {}", "x".repeat(1000));
    for n in 1..=updates {
        write_record_with_reason(
            &client,
            &id,
            &tenant,
            record::Phase::Provisioning,
            reason(n),
        )
        .await;
        let Event::Change(change) = next_event(&mut live).await else {
            panic!("the live subscriber got something other than update {n}");
        };
        assert_eq!(change.store.expect("store").failure_reason, reason(n));
    }

    // Unstuck, it reads what was already on its way, then a snapshot with the latest state, instead of every
    // missed change.
    let mut changes = 0;
    loop {
        match next_event(&mut stuck).await {
            Event::Change(change) => {
                changes += 1;
                assert!(
                    change.store.expect("store").failure_reason < reason(updates),
                    "the last update arrived as a change: nothing was skipped"
                );
            }
            Event::Snapshot(snapshot) => {
                let store = snapshot.stores.iter().find(|s| s.id == id).expect("store");
                assert_eq!(store.failure_reason, reason(updates));
                break;
            }
            Event::Heartbeat(_) => {}
        }
    }
    assert!(changes < updates, "{changes} changes: nothing was skipped");
    let metrics = http_get(metrics_addr, "/metrics").await.expect("scrape");
    assert!(
        metrics.contains("store_platform_status_snapshots_resent_total 1"),
        "{metrics}"
    );
    Api::<Namespace>::all(client)
        .delete(&record::namespace_name(&id), &DeleteParams::default())
        .await
        .expect("delete");
}

/// `store_platform_watch_age_seconds` of watch `watch` in a scrape.
fn watch_age(metrics: &str, watch: &str) -> f64 {
    let prefix = format!("store_platform_watch_age_seconds{{watch=\"{watch}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no age of watch {watch} in:\n{metrics}"))
}

/// How many times the stress test crashes the API server: a few in `make test`; dozens by hand, with
/// `STORE_PLATFORM_STATUS_CRASHES` (docs/testing.md).
fn crashes() -> usize {
    std::env::var("STORE_PLATFORM_STATUS_CRASHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

/// What a stream has told its subscriber: every store it knows, by id, with its phase.
type View = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, i32>>>;

/// Follows `stream` into `view` until the stream ends.
fn follow(mut stream: Streaming<WatchStoresResponse>, view: View) {
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let mut stores = view.lock().expect("view");
            match message.event {
                Some(Event::Snapshot(snapshot)) => {
                    stores.clear();
                    stores.extend(snapshot.stores.into_iter().map(|s| (s.id, s.phase)));
                }
                Some(Event::Change(change)) => {
                    let store = change.store.expect("store");
                    if change.r#type == ChangeType::Deleted as i32 {
                        stores.remove(&store.id);
                    } else {
                        stores.insert(store.id, store.phase);
                    }
                }
                _ => {}
            }
        }
        // A stream that ends can never converge again: the test then says so.
        view.lock()
            .expect("view")
            .insert("(stream ended)".into(), -1);
    });
}

/// The true state of tenant `tenant`'s stores, once no namespace of theirs is still being deleted.
async fn truth(client: &Client, tenant: &str) -> std::collections::BTreeMap<String, i32> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let listed = namespaces
            .list(&kube::api::ListParams::default().labels(&record::managed_selector()))
            .await;
        if let Ok(listed) = listed
            && listed
                .items
                .iter()
                .all(|n| n.metadata.deletion_timestamp.is_none())
        {
            return listed
                .items
                .iter()
                .filter_map(|n| StoreRecord::from_namespace(n).ok())
                .filter(|r| r.tenant == tenant)
                .map(|r| {
                    let store = r.to_proto();
                    (store.id, store.phase)
                })
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespaces still terminating after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The API server is killed (SIGKILL) and started again, over and over, while 20 streams are open and stores are
/// created, change phase and are deleted. The kills come at varied moments after the previous restart: while the
/// watch is still re-listing, just after, and once it is settled. After each one the changes stop and every stream
/// must show the true state within `CONVERGED` of that state settling (the API server answering again, and
/// deleted namespaces gone); how long each took is printed.
#[tokio::test]
async fn every_stream_converges_after_each_api_server_crash() {
    const STREAMS: usize = 20;
    const CONVERGED: Duration = Duration::from_secs(5);
    const OFFSETS_MS: [u64; 7] = [0, 100, 300, 700, 1500, 3000, 6000];
    let (mut plane, client, caller) = own_plane("crashes").await;
    let (status_addr, metrics_addr, _stop) =
        start_status_with(&caller, client.clone(), &["--heartbeat=15s"]).await;
    let views: Vec<View> = (0..STREAMS).map(|_| View::default()).collect();
    for view in &views {
        follow(
            watch_as(&caller, status_addr, "acme", "").await,
            view.clone(),
        );
    }

    // The writer: ten stores, each created, moved through its phases, deleted and created again, one change every
    // 25 ms; a change the API server does not take (it is down) is simply lost, as a provisioner would retry it.
    let writing = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    let paused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (client, writing, paused) = (client.clone(), writing.clone(), paused.clone());
        tokio::spawn(async move {
            let phases = [
                record::Phase::Provisioning,
                record::Phase::Ready,
                record::Phase::Failed,
                record::Phase::Ready,
            ];
            let namespaces: Api<Namespace> = Api::all(client.clone());
            for step in 0usize.. {
                tokio::time::sleep(Duration::from_millis(25)).await;
                if paused.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let _writing = writing.lock().await;
                let id = format!("crash-{}", step % 10);
                let _ = if step % 7 == 6 {
                    namespaces
                        .delete(&record::namespace_name(&id), &DeleteParams::default())
                        .await
                        .map(drop)
                } else {
                    let phase = phases[(step / 10) % phases.len()];
                    try_write_record(&client, &id, "acme", phase, String::new()).await
                };
            }
        });
    }

    let (mut took, mut stalls) = (Vec::new(), Vec::new());
    for crash in 0..crashes() {
        paused.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(OFFSETS_MS[crash % OFFSETS_MS.len()])).await;
        plane.crash_apiserver().await.expect("restart");
        let answering = tokio::time::Instant::now();
        // Changes go on while the watches reconnect, then stop, and the last one in flight ends.
        tokio::time::sleep(Duration::from_millis(500)).await;
        paused.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(writing.lock().await);
        // Deleted namespaces go once kube-controller-manager, reconnecting too, has emptied them: the truth settles
        // then, and the streams are timed from there.
        let want = truth(&client, "acme").await;
        let settled = tokio::time::Instant::now();
        let limit = settled + Duration::from_secs(300);
        let converged = loop {
            if views.iter().all(|v| *v.lock().expect("view") == want) {
                break Some(settled.elapsed());
            }
            if tokio::time::Instant::now() > limit {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let lagging = views
            .iter()
            .filter(|v| *v.lock().expect("view") != want)
            .count();
        println!(
            "crash {crash} (offset {} ms): the truth settled {:.2} s after the API server answered; {}",
            OFFSETS_MS[crash % OFFSETS_MS.len()],
            (settled - answering).as_secs_f64(),
            converged.map_or_else(
                || format!("{lagging} of {STREAMS} streams not converged 300 s later"),
                |t| format!("every stream converged {:.2} s later", t.as_secs_f64())
            )
        );
        match converged {
            Some(t) if t <= CONVERGED => took.push(t),
            other => stalls.push((crash, other)),
        }
    }
    took.sort();
    println!(
        "{} crashes: {} converged within {CONVERGED:?} (median {:?}, max {:?}); stalls: {stalls:?}",
        crashes(),
        took.len(),
        took.get(took.len() / 2),
        took.last()
    );
    assert!(
        stalls.is_empty(),
        "streams stalled after crashes (crash, time to converge): {stalls:?}"
    );
    // Each crash broke the watch (refused connections while the server was down, "410 Gone" from the restarted
    // one): counted, and the watch heard from since.
    let metrics = http_get(metrics_addr, "/metrics")
        .await
        .expect("scrape /metrics");
    assert!(
        metrics.contains("store_platform_watch_restarts_total{watch=\"store-namespaces\",reason="),
        "{metrics}"
    );
    assert!(
        watch_age(&metrics, "store-namespaces")
            < store_platform_runtime::watch::SILENCE.as_secs_f64()
    );
}

/// A TCP relay to the API server that can turn into a black hole: connections stay open and nothing passes, as
/// on a dead network path or with a hung server. `freeze` holds every connection open now, for ever; `hold_new`
/// makes new connections hang too until it is cleared.
struct Relay {
    addr: SocketAddr,
    frozen_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    hold_new: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let relay = Self {
            addr: listener.local_addr().expect("addr"),
            frozen_below: Default::default(),
            next: Default::default(),
            hold_new: Default::default(),
        };
        let (frozen_below, next, hold_new) = (
            relay.frozen_below.clone(),
            relay.next.clone(),
            relay.hold_new.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = next.fetch_add(1, SeqCst);
                let (frozen_below, hold_new, upstream) =
                    (frozen_below.clone(), hold_new.clone(), upstream.clone());
                tokio::spawn(async move {
                    while hold_new.load(SeqCst) {
                        // Accepted, and never answered while held: a TLS handshake that does not end.
                        if frozen_below.load(SeqCst) > id {
                            return std::future::pending::<()>().await;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let server = tokio::net::TcpStream::connect(&upstream)
                        .await
                        .expect("the API server");
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let pass =
                        |mut from: tokio::net::tcp::OwnedReadHalf,
                         mut to: tokio::net::tcp::OwnedWriteHalf| {
                            let frozen_below = frozen_below.clone();
                            async move {
                                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                                let mut buffer = vec![0u8; 64 * 1024];
                                loop {
                                    let n = from.read(&mut buffer).await.unwrap_or(0);
                                    if frozen_below.load(SeqCst) > id {
                                        // The black hole: the bytes go nowhere and the connection stays open.
                                        std::future::pending::<()>().await;
                                    }
                                    if n == 0 || to.write_all(&buffer[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        };
                    tokio::join!(
                        pass(client_read, server_write),
                        pass(server_read, client_write)
                    );
                });
            }
        });
        relay
    }

    /// Every connection open now passes nothing more, and stays open.
    fn freeze(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.frozen_below.store(self.next.load(SeqCst), SeqCst);
    }
}

/// A watch whose connection turns into a black hole (open, silent: no error, no end) is abandoned after its silence
/// deadline and begun again; a listing or watch start that hangs likewise after its request deadline; and what
/// changed meanwhile arrives. kube's own watcher would wait 295 s for the stream, and for ever for the start.
#[tokio::test]
async fn a_watch_on_a_black_holed_connection_is_begun_again_within_its_deadlines() {
    use store_platform_runtime::watch::{Deadlines, Watches, watch_with};
    let env = TestEnv::shared();
    let direct = env.client().await;
    let namespace = env.namespace("black-hole").await;
    let kubeconfig = std::fs::read_to_string(env.kubeconfig_path()).expect("kubeconfig");
    let upstream = kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix("server: https://"))
        .expect("server")
        .to_owned();
    let relay = Relay::start(upstream.clone()).await;
    let relayed = store_platform_test_support::kubeconfig::client_from_yaml(
        &kubeconfig.replace(&upstream, &relay.addr.to_string()),
    )
    .await
    .expect("a client through the relay");
    let label = format!("black-hole={}", std::process::id());
    let deadlines = Deadlines {
        server_timeout: Duration::from_secs(60),
        silence: Duration::from_secs(3),
        request: Duration::from_secs(2),
    };
    let watches = Watches::new();
    let events = watch_with(
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(relayed, &namespace),
        "config-maps",
        &label,
        watches.clone(),
        deadlines,
    );
    // Driven all the time, as a reflector drives it: the names of the objects it applies, and "(listed)" after each
    // listing.
    let (applied, mut names) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use kube::runtime::watcher::Event as W;
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let name = match event {
                Ok(W::Apply(object) | W::InitApply(object)) => object.metadata.name.expect("name"),
                Ok(W::InitDone) => "(listed)".to_owned(),
                _ => continue,
            };
            if applied.send(name).is_err() {
                return;
            }
        }
    });
    let mut next_name = async move |within: Duration| {
        tokio::time::timeout(within, names.recv())
            .await
            .expect("an event in time")
            .expect("the watch never ends")
    };
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(direct, &namespace);
    let create = |name: &str| {
        let config_maps = config_maps.clone();
        let object = k8s_openapi::api::core::v1::ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(
                    [("black-hole".to_owned(), std::process::id().to_string())]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        async move {
            config_maps
                .create(&Default::default(), &object)
                .await
                .expect("create");
        }
    };

    assert_eq!(next_name(Duration::from_secs(10)).await, "(listed)");
    create("before").await;
    assert_eq!(next_name(Duration::from_secs(10)).await, "before");

    // The watch's connection goes silent, and new connections hang too: the watch is abandoned after 3 s, and each
    // new start after 2 s, until connections pass again.
    relay.freeze();
    relay
        .hold_new
        .store(true, std::sync::atomic::Ordering::SeqCst);
    create("meanwhile").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    relay.freeze();
    relay
        .hold_new
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    assert_eq!(next_name(Duration::from_secs(10)).await, "meanwhile");
    println!(
        "the change made in the black hole arrived {:.1} s after connections passed again",
        started.elapsed().as_secs_f64()
    );
    assert!(watches.restarts("config-maps", "silent") >= 2);
    assert!(watches.age("config-maps").expect("heard") < deadlines.silence);
}
