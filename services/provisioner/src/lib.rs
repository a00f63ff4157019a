//! The provisioner: the write side of the platform. It serves the ProvisionerService API on every replica and, on
//! the replica holding the Lease, runs the reconcile loop that drives each store to READY.

mod args;
pub mod backup;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod grpc;
pub mod kube_ops;
pub mod leader;
pub mod medusa;
pub mod metrics;
pub mod operation;
pub mod reconcile;
pub mod selector;
pub mod settings;
pub mod shared;
pub mod tenant_lock;
pub mod validation;
pub mod woocommerce;
pub mod work_queue;

use std::sync::Arc;

use anyhow::Context as _;
pub use args::Args;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt as _,
    runtime::{WatchStreamExt as _, reflector, watcher::Event},
};
use rand::{Rng as _, distr::Alphanumeric};
use store_platform_proto::v1::provisioner_service_server::ProvisionerServiceServer;
use store_platform_runtime::{
    Shutdown, auth::Authenticator, grpc as server, kubernetes, record, telemetry, watch::watch,
};
use tonic_health::ServingStatus;

/// Record changes the reconciler may fall behind by before it looks at every store instead.
const RECORD_CHANGES: usize = 1024;

/// Requests larger than this are refused before decoding; a CreateStore request is a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Runs the provisioner until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(&args.telemetry)?;
    let shutdown = Shutdown::on_signals().context("failed to install signal handlers")?;
    let (metrics, registry) = metrics::Metrics::new();
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration found")?;
    let client = store_platform_runtime::metrics::client_with_metrics(
        config,
        metrics.kube_requests.clone(),
    )?;
    let running = start(args, client, shutdown, metrics, registry).await?;
    running.task.await??;
    tracing::info!("stopped");
    Ok(())
}

/// A provisioner serving on `addr` until its shutdown fires; `task` ends when it has stopped.
#[derive(Debug)]
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub metrics_addr: std::net::SocketAddr,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the API, the store watch, the metrics endpoint and (when elected) the reconcile loop with `client`.
pub async fn start(
    args: Args,
    client: kube::Client,
    shutdown: Shutdown,
    metrics: Arc<metrics::Metrics>,
    mut registry: prometheus_client::registry::Registry,
) -> anyhow::Result<Running> {
    let settings = Arc::new(args.settings().map_err(anyhow::Error::msg)?);
    let only = selector::parse(&args.reconcile_selector)
        .map_err(|error| anyhow::anyhow!("--reconcile-selector: {error}"))?;
    let engines = engine::Engines::new(
        Arc::new(woocommerce::WooCommerce::new(settings.clone())),
        Arc::new(medusa::Medusa::new(settings.clone())),
    );

    // Every store namespace, for ListStores, the per-tenant limit and, while leading, the reconciler: one watch, so
    // each write of a record reaches this process once. Read whole (labels, annotations, resource version) but for
    // their managed fields.
    let (stores, writer) = reflector::store();
    let (changed, _) = tokio::sync::broadcast::channel(RECORD_CHANGES);
    let records = reconcile::Records {
        cache: stores.clone(),
        changed: changed.clone(),
    };
    let watch = watch(
        Api::<Namespace>::all(client.clone()),
        "store-namespaces",
        &record::managed_selector(),
        metrics.watches.clone(),
    )
    .modify(|namespace: &mut Namespace| namespace.metadata.managed_fields = None)
    .reflect(writer)
    .for_each(move |event| {
        // Nobody listening (not leading) is not an error.
        let _ = match event {
            Ok(Event::Apply(namespace) | Event::InitApply(namespace)) => {
                changed.send(Some(namespace.name_any()))
            }
            // A listing is in the cache only now: every store, as the cache has it.
            Ok(Event::InitDone) => changed.send(None),
            _ => Ok(0),
        };
        futures::future::ready(())
    });
    let stop_watch = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = watch => {}
            () = stop_watch.wait() => {}
        }
    });

    let auth = Authenticator::from_args(&args.auth, client.clone(), shutdown.clone()).await?;
    auth.register(&mut registry);
    let metrics_addr = store_platform_runtime::metrics::serve(
        args.metrics_addr,
        Arc::new(registry),
        Some(metrics.refresh_from(stores.clone())),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("failed to listen on {}", args.metrics_addr))?;

    let fleet = Arc::new(fleet::Fleet {
        client: client.clone(),
        engines: engines.clone(),
        settings: settings.clone(),
        namespace: args.lease_namespace.clone(),
        owner: args.lease_name.clone(),
        selector: match args.reconcile_selector.trim() {
            "" => record::managed_selector(),
            extra => format!("{},{extra}", record::managed_selector()),
        },
        max_parallel: args.rollout_max_parallel as usize,
        cached: Some(stores.clone()),
    });

    let (routes, health) = server::standard_routes().await?;
    let api = grpc::Provisioner::new(
        fleet.clone(),
        stores.clone(),
        auth,
        args.max_stores_per_tenant,
        tenant_lock::TenantLocks::new(client.clone(), &args.lease_namespace),
    );
    let routes = routes.add_service(
        ProvisionerServiceServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES),
    );
    let incoming = server::bind(args.grpc_addr)?;
    let addr = incoming.local_addr().context("listening address")?;
    tracing::info!(%addr, "serving gRPC");

    let service = store_platform_proto::SERVICE_NAMES[0];
    health
        .set_service_status(service, ServingStatus::NotServing)
        .await;
    let (ready_client, ready_shutdown) = (client.clone(), shutdown.clone());
    tokio::spawn(async move {
        if stores.wait_until_ready().await.is_ok() {
            kubernetes::report_when_reachable(ready_client, health, service, ready_shutdown).await;
        }
    });

    let identity = args.identity.clone().unwrap_or_else(|| {
        let suffix: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(6)
            .map(char::from)
            .collect();
        format!(
            "provisioner-{}-{}",
            std::process::id(),
            suffix.to_lowercase()
        )
    });
    let ctx = Arc::new(reconcile::Context::new(
        client.clone(),
        engines,
        Some(identity.clone()),
        metrics,
    ));
    let election = leader::Election::new(client, &args.lease_namespace, &args.lease_name, identity);
    let workers = usize::from(args.reconcile_workers);
    let leading = tokio::spawn(election.lead(shutdown.clone(), move |term| {
        // While leading, this replica also rolls settings out and runs fleet upgrades.
        tokio::spawn(fleet::run(fleet.clone(), term.clone()));
        reconcile::run(ctx.clone(), records.clone(), only.clone(), workers, term)
    }));

    let task = tokio::spawn(async move {
        server::serve(
            routes,
            incoming,
            shutdown,
            args.shutdown_grace,
            MAX_REQUEST_BYTES,
        )
        .await?;
        let _ = leading.await;
        anyhow::Ok(())
    });
    Ok(Running {
        addr,
        metrics_addr,
        task,
    })
}
