//! WatchStores at scale: many concurrent streams on the release `status` binary while stores change.
//!
//!     make bench-status                                        # 1,000 streams, 200 updates
//!     make bench-status BENCH_STATUS_ARGS="--streams 200 --updates 50"
//!
//! On a control plane of its own: `--stores` store records (namespaces) of one tenant; the release `status` binary
//! as its own process; `--streams` WatchStores streams for that tenant, `--per-connection` of them on each HTTP/2
//! connection (the gateway multiplexes its callers the same way). Then `--updates` changes to the records, one every
//! `--interval-ms`, round robin over the stores. Each change carries its sequence number; each stream stamps every
//! change it receives.
//!
//! It prints the delivery latency (from just before the PATCH is sent to the API server to receipt by a stream)
//! over every stream and every change, the PATCH round trip alone, the status process's memory before the streams,
//! with every stream open and idle, and after the changes, and its CPU time while delivering the changes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use store_platform_proto::v1::{
    WatchStoresRequest, WatchStoresResponse, status_service_client::StatusServiceClient,
    watch_stores_response::Event,
};
use store_platform_runtime::record::{self, StoreRecord, StoreSpec, StoreStatus};
use store_platform_test_support::{
    Assets, ControlPlane, TestEnv,
    measure::{arg, process_usage, release_bin_dir, summary},
    process::{ServiceProcess, free_port, http_get},
};
use tonic::{Streaming, transport::Channel};

const TENANT: &str = "bench";

/// Writes store `id`'s record, carrying `sequence` in its message, as the provisioner writes records.
async fn write(client: &Client, id: &str, sequence: usize) -> anyhow::Result<()> {
    let mut status = StoreStatus::pending(&["namespace", "database"], jiff::Timestamp::now());
    status.phase = record::Phase::Provisioning;
    status.failure_reason = format!("update {sequence}");
    let record = StoreRecord {
        id: id.into(),
        tenant: TENANT.into(),
        spec: StoreSpec {
            display_name: format!("Bench {id}"),
            engine: record::Engine::Woocommerce,
            admin_email: "bench@example.com".into(),
            source: None,
        },
        status,
        create_time: None,
        terminating: false,
        damage: None,
    };
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(
            &record::namespace_name(id),
            &PatchParams::apply("status-bench").force(),
            &Patch::Apply(&record.to_namespace()?),
        )
        .await?;
    Ok(())
}

fn sequence_of(message: &WatchStoresResponse) -> Option<usize> {
    match &message.event {
        Some(Event::Change(change)) => change
            .store
            .as_ref()?
            .failure_reason
            .strip_prefix("update ")?
            .parse()
            .ok(),
        _ => None,
    }
}

/// What one stream saw: the moment it received each change, and how many snapshots replaced missed changes.
#[derive(Debug, Default)]
struct Seen {
    received: Vec<(usize, Instant)>,
    snapshots: usize,
}

async fn follow(mut stream: Streaming<WatchStoresResponse>, last: usize) -> Seen {
    let mut seen = Seen::default();
    while let Ok(Some(message)) = stream.message().await {
        if let Some(sequence) = sequence_of(&message) {
            seen.received.push((sequence, Instant::now()));
            if sequence == last {
                break;
            }
        } else if let Some(Event::Snapshot(snapshot)) = &message.event {
            // Sent instead of the changes this stream fell behind on.
            seen.snapshots += 1;
            let latest = format!("update {last}");
            if snapshot.stores.iter().any(|s| s.failure_reason == latest) {
                break;
            }
        }
    }
    seen
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn open_streams(
    caller: &TestEnv,
    addr: std::net::SocketAddr,
    streams: usize,
    per_connection: usize,
) -> anyhow::Result<Vec<Streaming<WatchStoresResponse>>> {
    let mut opened = Vec::with_capacity(streams);
    let mut channel: Option<Channel> = None;
    for i in 0..streams {
        if i % per_connection == 0 {
            channel = Some(
                Channel::from_shared(format!("http://{addr}"))?
                    .connect()
                    .await?,
            );
        }
        let channel = channel.clone().expect("a connection is open");
        let mut stream = StatusServiceClient::new(channel)
            .watch_stores(caller.as_tenant(TENANT, WatchStoresRequest::default()))
            .await?
            .into_inner();
        // The snapshot comes first; once it is here the subscription is live.
        let first = stream.message().await?;
        anyhow::ensure!(
            matches!(
                first.and_then(|m| m.event),
                Some(Event::Snapshot(snapshot)) if !snapshot.stores.is_empty()
            ),
            "stream {i} did not start with a snapshot of the stores"
        );
        opened.push(stream);
    }
    Ok(opened)
}

fn main() -> anyhow::Result<()> {
    let (streams, updates, stores) = (
        arg("--streams", 1000),
        arg("--updates", 200),
        arg("--stores", 10),
    );
    let per_connection = arg("--per-connection", 100).max(1);
    let interval = Duration::from_millis(arg("--interval-ms", 50) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let assets = Assets::locate()?;
        let bin_dir = release_bin_dir();
        println!(
            "WatchStores benchmark: {streams} streams ({per_connection} per connection), {stores} stores, \
             {updates} updates every {interval:?}; Kubernetes v1.20.2 on loopback"
        );
        let dir = std::env::temp_dir().join(format!(
            "store-platform-bench-status-{}",
            std::process::id()
        ));
        let plane = ControlPlane::start(&assets, dir).await?;
        let caller = TestEnv::in_dir(plane.dir());
        let client = plane.client().await?;
        let ids: Vec<String> = (0..stores).map(|i| format!("shop-{i}")).collect();
        for id in &ids {
            write(&client, id, 0).await?;
        }

        let logs = tempfile::tempdir()?;
        let (grpc_port, metrics_port) = (free_port(), free_port());
        let mut status = ServiceProcess::start_from(
            &bin_dir,
            "status",
            &[
                ("KUBECONFIG", plane.kubeconfig_path().display().to_string()),
                ("GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
                ("METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
                ("LOG_FILTER", "warn".to_owned()),
            ],
            logs.path(),
        );
        status.channel(grpc_port).await;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], grpc_port));
        // Wait for the first sync (the API answers Unavailable until then).
        let started = Instant::now();
        let opened = loop {
            match open_streams(&caller, addr, 1, 1).await {
                Ok(one) => break one,
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        };
        drop(opened);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = process_usage(status.pid());

        let opening = Instant::now();
        let opened = open_streams(&caller, addr, streams, per_connection).await?;
        let opening = opening.elapsed();
        // Let allocations settle before reading the idle footprint.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = process_usage(status.pid());
        println!(
            "opened {streams} streams in {opening:.2?}; status RSS {:.1} MiB before, {:.1} MiB with them idle: \
             {:.1} KiB per idle stream",
            mib(before.rss_kib),
            mib(idle.rss_kib),
            idle.rss_kib.saturating_sub(before.rss_kib) as f64 / streams as f64
        );

        let followers: Vec<_> = opened
            .into_iter()
            .map(|stream| tokio::spawn(follow(stream, updates)))
            .collect();
        let sent: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
        let mut round_trips = Vec::with_capacity(updates);
        let mut ticker = tokio::time::interval(interval);
        for sequence in 1..=updates {
            ticker.tick().await;
            let id = &ids[sequence % stores];
            let start = Instant::now();
            sent.lock().expect("lock").insert(sequence, start);
            write(&client, id, sequence).await?;
            round_trips.push(start.elapsed());
        }
        let mut latencies = Vec::with_capacity(streams * updates);
        let (mut missing, mut snapshots) = (0, 0);
        let sent = sent.lock().expect("lock").clone();
        for follower in followers {
            let seen = tokio::time::timeout(Duration::from_secs(60), follower).await??;
            missing += updates - seen.received.len();
            snapshots += seen.snapshots;
            latencies.extend(
                seen.received
                    .iter()
                    .filter_map(|(sequence, at)| Some(at.saturating_duration_since(*sent.get(sequence)?))),
            );
        }
        let busy = process_usage(status.pid());

        println!("{}", summary("delivery latency (PATCH sent -> stream)", latencies));
        println!("{}", summary("PATCH round trip alone", round_trips));
        println!(
            "changes missed: {missing}; snapshots resent instead: {snapshots}\n\
             status CPU while delivering: {:.2} s for {} messages; RSS after {:.1} MiB, peak {:.1} MiB",
            busy.cpu_seconds - idle.cpu_seconds,
            streams * updates,
            mib(busy.rss_kib),
            mib(busy.peak_kib),
        );
        let metrics = http_get(([127, 0, 0, 1], metrics_port).into(), "/metrics").await?;
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("store_platform_status_"))
        {
            println!("  {line}");
        }
        drop(status);
        drop(plane);
        anyhow::Ok(())
    })
}
