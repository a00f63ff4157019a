//! Provisioning benchmark: N stores created at once, on a fresh local control plane with the simulated kubelet.
//!
//!     make bench                      # 100 stores
//!     make bench BENCH_ARGS="--stores 20"
//!     make bench BENCH_ARGS="--stores 1000 --workers 64"   # the provisioner's --reconcile-workers
//!     make bench BENCH_ARGS="--stores 1000 --rounds 2"     # baseline, platform, platform, baseline
//!
//! Two runs (per round), each on a control plane of its own so neither inherits the other's leftovers:
//! 1. baseline — the same objects the platform creates, applied directly (no platform), timed until every
//!    StatefulSet is ready, every Deployment available and every Job complete: the physical limit of this
//!    control plane;
//! 2. platform — the release provisioner binary; N CreateStore calls at once, timed until each store is READY.
//!
//! It prints time-to-READY per store, the delay from each bootstrap Job completing to its store being READY, API
//! requests and writes per store (from the provisioner's /metrics), and the provisioner's peak RSS and CPU time.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::Namespace,
};
use kube::{
    Api, Client, ResourceExt as _,
    api::{ObjectMeta, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use store_platform_proto::v1::{
    CreateStoreRequest, Engine, provisioner_service_client::ProvisionerServiceClient,
};
use store_platform_provisioner::{
    kube_ops::Kube,
    settings::Settings,
    woocommerce::{bootstrap, cron, ingress, mariadb, policy, secret, wordpress},
};
use store_platform_runtime::record::{self, StoreSpec};
use store_platform_test_support::{
    Assets, ControlPlane, TestEnv, kubelet,
    measure::{arg, process_usage, release_bin_dir, summary},
    process::{ServiceProcess, free_port, http_get},
};

type Stamps = Arc<Mutex<HashMap<String, Instant>>>;

async fn start_plane(assets: &Assets, name: &str) -> anyhow::Result<(ControlPlane, Client)> {
    let dir = std::env::temp_dir().join(format!(
        "store-platform-bench-{name}-{}",
        std::process::id()
    ));
    let plane = ControlPlane::start(assets, dir).await?;
    let client = plane.client().await?;
    tokio::spawn(kubelet::run(
        client.clone(),
        Box::pin(std::future::pending()),
    ));
    Ok((plane, client))
}

/// CPU seconds used so far by each process of `plane` and by this one (the simulated kubelet, the clients and
/// watches of the benchmark).
fn cpu_seconds(plane: &ControlPlane, others: &[(&'static str, u32)]) -> Vec<(&'static str, f64)> {
    plane
        .processes()
        .into_iter()
        .chain([("benchmark (simulated kubelet, clients)", std::process::id())])
        .chain(others.iter().copied())
        .map(|(name, pid)| (name, process_usage(pid).cpu_seconds))
        .collect()
}

/// Prints the CPU each process used since `before`, and what that is per second of `wall` (busy cores).
fn print_cpu_since(
    before: &[(&'static str, f64)],
    plane: &ControlPlane,
    others: &[(&'static str, u32)],
    wall: Duration,
) {
    let wall = wall.as_secs_f64();
    let mut total = 0.0;
    println!("  CPU used meanwhile, by process:");
    for ((name, start), (_, now)) in before.iter().zip(cpu_seconds(plane, others)) {
        let used = now - start;
        total += used;
        println!("    {name:<40} {used:>7.2} s  ({:.2} cores)", used / wall);
    }
    println!(
        "    {:<40} {total:>7.2} s  ({:.2} cores)",
        "total",
        total / wall
    );
}

/// What the API server has served so far: requests by verb (watches apart), and watch events sent (their count
/// and bytes), from its own metrics.
async fn api_server_load(client: &Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut load = sum_by(&text, "apiserver_request_total{", &["verb"]);
    load.remove("WATCH");
    let sum = |metric: &str| sum_by(&text, metric, &[]).values().sum::<f64>();
    load.insert(
        "watch events sent".into(),
        sum("apiserver_watch_events_total{"),
    );
    for (kind, events) in sum_by(&text, "apiserver_watch_events_total{", &["kind"]) {
        load.insert(format!("watch events sent, {kind}"), events);
    }
    load.insert(
        "watch event KiB sent".into(),
        sum("apiserver_watch_events_sizes_sum{") / 1024.0,
    );
    Ok(load)
}

/// Prints, per store, what the API server served between `before` and `after`.
fn print_api_server_load(
    before: &BTreeMap<String, f64>,
    after: BTreeMap<String, f64>,
    stores: usize,
) {
    println!("  the API server's work meanwhile, per store (every client's):");
    let mut requests = 0.0;
    for (key, now) in after {
        let per_store = (now - before.get(&key).copied().unwrap_or(0.0)) / stores as f64;
        if key.starts_with("watch events sent, ") {
            // Kinds that changed a few times per store at least.
            if per_store >= 0.5 {
                println!(
                    "      {:<32} {per_store:>7.1}",
                    key.trim_start_matches("watch events sent, ")
                );
            }
        } else if key.starts_with("watch") {
            println!("    {key:<34} {per_store:>7.1}");
        } else {
            requests += per_store;
            println!("    requests, {key:<24} {per_store:>7.1}");
        }
    }
    println!("    requests, {:<24} {requests:>7.1}", "all but watches");
}

/// Records, per store namespace, the first moment `done` holds for an object of kind `K` there.
fn watch_first<K>(client: &Client, stamps: Stamps, done: fn(&K) -> bool)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let config = watcher::Config::default().labels(&record::managed_selector());
    let stream = watcher(Api::<K>::all(client.clone()), config)
        .default_backoff()
        .applied_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        // A watch error (the watcher backs off and resumes) must not end the recording.
        while let Some(item) = stream.next().await {
            let Ok(object) = item else { continue };
            if done(&object) {
                let key = object.namespace().unwrap_or_else(|| object.name_any());
                stamps
                    .lock()
                    .expect("lock")
                    .entry(key)
                    .or_insert_with(Instant::now);
            }
        }
    });
}

async fn wait_for(stamps: &Stamps, count: usize, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while stamps.lock().expect("lock").len() < count {
        anyhow::ensure!(
            start.elapsed() < limit,
            "only {} of {count} done after {limit:?}",
            stamps.lock().expect("lock").len()
        );
        // The benchmark's own clock, sampling its watch results: not part of what is measured.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn sts_ready(s: &StatefulSet) -> bool {
    s.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= 1
}
fn deploy_available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
        >= 1
}
fn job_complete(j: &Job) -> bool {
    j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) >= 1
}

/// Applies every object of store `id` directly, as the platform would, with none of its waiting.
async fn apply_directly(client: Client, id: String, settings: Arc<Settings>) -> anyhow::Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(record::namespace_name(&id)),
            labels: Some(
                [(
                    record::MANAGED_BY_LABEL.to_owned(),
                    record::MANAGED_BY.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let kube = Kube::new(client, record::namespace_name(&id));
    let spec = StoreSpec {
        display_name: id.clone(),
        engine: record::Engine::Woocommerce,
        admin_email: "bench@example.com".into(),
        source: None,
    };
    kube.apply(&policy::resource_quota(&id)).await?;
    kube.apply(&policy::limit_range(&id)).await?;
    for network_policy in policy::network_policies(&id, &settings) {
        kube.apply(&network_policy).await?;
    }
    kube.create_once(&secret::credentials(&id)).await?;
    kube.apply(&mariadb::service(&id)).await?;
    kube.apply(&mariadb::stateful_set(&id, &settings)).await?;
    kube.apply(&wordpress::files_config_map(&id)).await?;
    kube.apply(&wordpress::volume_claim(&id, &settings)).await?;
    kube.apply(&wordpress::service(&id)).await?;
    kube.apply(&wordpress::deployment(&id, &settings)).await?;
    kube.apply(&ingress::ingress(&id, &settings)).await?;
    kube.apply(&bootstrap::script_config_map(&id)).await?;
    kube.apply(&bootstrap::job(&id, &spec, &settings)).await?;
    let batch_v1 = kube.serves_batch_v1_cron_jobs().await?;
    kube.apply_cron_job(&cron::cron_job(&id, &settings), batch_v1)
        .await?;
    Ok(())
}

async fn baseline(assets: &Assets, stores: usize) -> anyhow::Result<Duration> {
    let (plane, client) = start_plane(assets, "baseline").await?;
    let (sts, deploys, jobs): (Stamps, Stamps, Stamps) = Default::default();
    watch_first::<StatefulSet>(&client, sts.clone(), sts_ready);
    watch_first::<Deployment>(&client, deploys.clone(), deploy_available);
    watch_first::<Job>(&client, jobs.clone(), job_complete);
    let settings = Arc::new(Settings::local());
    let cpu_before = cpu_seconds(&plane, &[]);
    let load_before = api_server_load(&client).await?;
    let start = Instant::now();
    let applies =
        (0..stores).map(|i| apply_directly(client.clone(), format!("base-{i}"), settings.clone()));
    for result in futures::future::join_all(applies).await {
        result?;
    }
    let limit = Duration::from_secs(600);
    wait_for(&sts, stores, limit).await?;
    wait_for(&deploys, stores, limit).await?;
    wait_for(&jobs, stores, limit).await?;
    println!("baseline, {stores} stores' objects applied directly:");
    let load_after = api_server_load(&client).await?;
    print_cpu_since(&cpu_before, &plane, &[], start.elapsed());
    print_api_server_load(&load_before, load_after, stores);
    let last = [&sts, &deploys, &jobs]
        .iter()
        .flat_map(|s| {
            s.lock()
                .expect("lock")
                .values()
                .copied()
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(start);
    Ok(last - start)
}

/// Sums the samples of `metric` by the values of `label_keys`.
fn sum_by(text: &str, metric: &str, label_keys: &[&str]) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(metric)) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let labels = name_labels
            .split_once('{')
            .map(|(_, l)| l.trim_end_matches('}'))
            .unwrap_or("");
        let key: Vec<String> = label_keys
            .iter()
            .filter_map(|k| {
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(&format!("{k}=")))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .collect();
        *sums.entry(key.join(" ")).or_insert(0.0) += value;
    }
    sums
}

async fn platform(
    assets: &Assets,
    stores: usize,
    workers: usize,
    bin_dir: PathBuf,
) -> anyhow::Result<Duration> {
    let (plane, client) = start_plane(assets, "platform").await?;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("store-platform".into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await?;
    let (ready, jobs): (Stamps, Stamps) = Default::default();
    watch_first::<Namespace>(&client, ready.clone(), |ns| {
        ns.labels()
            .get(record::PHASE_LABEL)
            .is_some_and(|p| p == "ready")
    });
    watch_first::<Job>(&client, jobs.clone(), job_complete);

    let logs = tempfile::tempdir()?;
    let (grpc_port, metrics_port) = (free_port(), free_port());
    let mut provisioner = ServiceProcess::start_from(
        &bin_dir,
        "provisioner",
        &[
            ("KUBECONFIG", plane.kubeconfig_path().display().to_string()),
            ("GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
            ("METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
            ("MAX_STORES_PER_TENANT", (stores + 1).to_string()),
            ("LOG_FILTER", "warn".to_owned()),
            ("RECONCILE_WORKERS", workers.to_string()),
        ],
        logs.path(),
    );
    let channel = provisioner.channel(grpc_port).await;
    let api = ProvisionerServiceClient::new(channel);
    let caller = TestEnv::in_dir(plane.dir());
    let mut created = HashMap::new();
    let measured = [("provisioner", provisioner.pid())];
    let cpu_before = cpu_seconds(&plane, &measured);
    let load_before = api_server_load(&client).await?;
    let start = Instant::now();
    let calls = (0..stores).map(|i| {
        let (mut api, caller) = (api.clone(), caller.clone());
        async move {
            let id = format!("shop-{i}");
            let request = caller.as_tenant(
                "bench",
                CreateStoreRequest {
                    store_id: id.clone(),
                    display_name: format!("Shop {i}"),
                    engine: Engine::Woocommerce as i32,
                    admin_email: "bench@example.com".into(),
                    source: None,
                },
            );
            let sent = Instant::now();
            api.create_store(request)
                .await
                .map(|_| (record::namespace_name(&id), sent))
        }
    });
    for result in futures::future::join_all(calls).await {
        let (namespace, sent) = result?;
        created.insert(namespace, sent);
    }
    let answered = start.elapsed();
    if let Err(error) = wait_for(&ready, stores, Duration::from_secs(600)).await {
        // Which stores, and why: their records, and what the provisioner logged.
        let namespaces = Api::<Namespace>::all(client.clone())
            .list(&kube::api::ListParams::default().labels(&record::managed_selector()))
            .await?;
        for namespace in namespaces.items {
            if namespace
                .labels()
                .get(record::PHASE_LABEL)
                .map(String::as_str)
                != Some("ready")
            {
                println!(
                    "not ready: {} {:?}",
                    namespace.name_any(),
                    namespace.annotations().get(record::STATUS_ANNOTATION)
                );
            }
        }
        println!("provisioner log (last 40 lines):");
        let log = provisioner.logs();
        for line in log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            println!("  {line}");
        }
        return Err(error);
    }
    let cpu_wall = start.elapsed();
    let load_after = api_server_load(&client).await?;
    let ready_at = ready.lock().expect("lock").clone();
    let jobs_at = jobs.lock().expect("lock").clone();
    let total = ready_at.values().max().copied().unwrap_or(start) - start;

    println!("\nplatform, {stores} stores created at once:");
    println!(
        "  every CreateStore answered after {answered:.2?} (one tenant: its creates go in batches under its lock)"
    );
    println!(
        "{}",
        summary(
            "  time to READY per store",
            created
                .iter()
                .filter_map(|(ns, sent)| Some(*ready_at.get(ns)? - *sent))
                .collect(),
        )
    );
    println!(
        "{}",
        summary(
            "  bootstrap Job complete -> READY",
            ready_at
                .iter()
                .filter_map(|(ns, ready)| Some(ready.saturating_duration_since(*jobs_at.get(ns)?)))
                .collect(),
        )
    );

    let metrics = http_get(([127, 0, 0, 1], metrics_port).into(), "/metrics").await?;
    let per_store = |v: f64| v / stores as f64;
    println!("  API requests per store (non-watch), by method and resource:");
    let requests = sum_by(
        &metrics,
        "store_platform_kubernetes_request_duration_seconds_count",
        &["method", "resource"],
    );
    let mut total_requests = 0.0;
    for (key, count) in &requests {
        total_requests += count;
        println!("    {key:<34} {:>6.2}", per_store(*count));
    }
    println!("    {:<34} {:>6.2}", "total", per_store(total_requests));
    println!("  writes per store by kind:");
    for (kind, count) in sum_by(
        &metrics,
        "store_platform_provisioner_writes_total",
        &["kind"],
    ) {
        println!("    {kind:<34} {:>6.2}", per_store(count));
    }
    print_cpu_since(&cpu_before, &plane, &measured, cpu_wall);
    print_api_server_load(&load_before, load_after, stores);
    let usage = process_usage(provisioner.pid());
    println!(
        "  provisioner peak RSS {:.1} MiB, CPU {:.2} s",
        usage.peak_kib as f64 / 1024.0,
        usage.cpu_seconds
    );
    let last_ready = ready_at.values().max().copied().unwrap_or(start);
    let (events, last) = events_published(([127, 0, 0, 1], metrics_port).into()).await?;
    println!(
        "  step events: {:.2} per store in all, all out by {:.1?} after the last store was READY",
        per_store(events),
        last.saturating_duration_since(last_ready)
    );
    drop(provisioner);
    Ok(total)
}

/// The provisioner's step events trail a burst (one publisher): how many it published in all, and when the last went
/// out, waiting until none has gone out for 5 s (10 minutes at most).
async fn events_published(metrics: std::net::SocketAddr) -> anyhow::Result<(f64, Instant)> {
    let (mut count, mut last) = (-1.0, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(600);
    while last.elapsed() < Duration::from_secs(5) && Instant::now() < deadline {
        let text = http_get(metrics, "/metrics").await?;
        let now = sum_by(&text, "store_platform_provisioner_writes_total", &["kind"])
            .get("event")
            .copied()
            .unwrap_or(0.0);
        if now > count {
            (count, last) = (now, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((count.max(0.0), last))
}

fn main() -> anyhow::Result<()> {
    let stores = arg("--stores", 100);
    // The provisioner's reconcile workers (`--reconcile-workers`); its default when not given.
    let workers = arg("--workers", 1024);
    let rounds = arg("--rounds", 1).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let assets = Assets::locate()?;
        let bin_dir = release_bin_dir();
        println!(
            "provisioning benchmark: {stores} stores, {workers} reconcile workers, Kubernetes v1.20.2 on loopback, \
             simulated kubelet"
        );
        // The machine's speed drifts over minutes (its neighbours), by as much as the difference measured: rounds
        // alternate the order (baseline first, then platform first, …) so a drift weighs on both phases alike.
        let (mut bases, mut totals) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            if rounds > 1 {
                println!("\n== round {round} of {rounds}");
            }
            let platform_first = round % 2 == 0;
            if platform_first {
                totals.push(platform(&assets, stores, workers, bin_dir.clone()).await?);
            }
            let base = baseline(&assets, stores).await?;
            println!("baseline: objects applied directly, all workloads ready after {base:.2?}");
            bases.push(base);
            if !platform_first {
                totals.push(platform(&assets, stores, workers, bin_dir.clone()).await?);
            }
            let total = totals[totals.len() - 1];
            println!(
                "\nall {stores} stores READY after {total:.2?}: {:.2}x the baseline ({base:.2?})",
                total.as_secs_f64() / base.as_secs_f64()
            );
        }
        if rounds > 1 {
            let sum = |times: &[Duration]| times.iter().map(Duration::as_secs_f64).sum::<f64>();
            let ratios: Vec<String> = totals
                .iter()
                .zip(&bases)
                .map(|(t, b)| format!("{:.2}", t.as_secs_f64() / b.as_secs_f64()))
                .collect();
            println!(
                "\n{rounds} rounds, {stores} stores: {:.2}x the baseline in all (platform {:.1} s, baseline {:.1} s); \
                 by round {}",
                sum(&totals) / sum(&bases),
                sum(&totals),
                sum(&bases),
                ratios.join(", ")
            );
        }
        anyhow::Ok(())
    })
}
