//! Runs a local control plane and the simulated kubelet until SIGTERM or Ctrl-C.
//!
//! Writes the cluster's files (kubeconfig, certificates, logs) to `--dir` and prints that directory once the
//! cluster is ready, so `make test` can start one cluster for the whole run (exported as
//! `STORE_PLATFORM_TEST_CLUSTER`) and `make dev` can point the services at it (`KUBECONFIG=<dir>/kubeconfig`).

use std::path::PathBuf;

use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use store_platform_test_support::{Assets, ControlPlane, control_plane, kubelet, node};

#[derive(Debug, Parser)]
#[command(
    name = "test-cluster",
    about = "A local Kubernetes control plane with a simulated kubelet"
)]
struct Args {
    /// Where to keep certificates, kubeconfigs and logs.
    #[arg(long, env = "TEST_CLUSTER_DIR")]
    dir: PathBuf,

    /// Remove the directory on exit.
    #[arg(long, env = "TEST_CLUSTER_CLEAN", default_value_t = false)]
    clean: bool,

    /// Namespaces to create once the cluster is up (the platform's own, as its Helm chart would).
    #[arg(
        long = "namespace",
        env = "TEST_CLUSTER_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,

    /// Written (with the directory) once the cluster is ready; for scripts that wait on it.
    #[arg(long, env = "TEST_CLUSTER_READY_FILE")]
    ready_file: Option<PathBuf>,

    /// Run real containers: the control plane and a real node (Docker's engine, kubelet, kube-proxy, CNI, DNS, a
    /// volume provisioner) in a network namespace of their own, instead of the simulated kubelet. Needs root.
    #[arg(long, env = "TEST_CLUSTER_REAL_NODE", default_value_t = false)]
    real_node: bool,

    /// With --real-node: the images' root filesystems (the output of scripts/node-images.sh).
    #[arg(long, env = "TEST_CLUSTER_IMAGES", required_if_eq("real_node", "true"))]
    images: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_FILTER")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let assets = Assets::locate()?;
    let network = if args.real_node {
        Some(node::Network::create()?)
    } else {
        None
    };
    let options = match &network {
        Some(network) => control_plane::Options {
            address: node::NODE_ADDRESS,
            real_node: true,
            netns: Some(network.name().to_owned()),
        },
        None => control_plane::Options::default(),
    };
    let mut plane = ControlPlane::start_with(&assets, args.dir.clone(), &options).await?;
    if !args.clean {
        plane.keep_dir();
    }
    let client = plane.client().await?;
    for name in &args.namespaces {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error.into()),
        }
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut real_node = None;
    let kubelet = match (&network, &args.images) {
        (Some(network), Some(images)) => {
            let started = std::time::Instant::now();
            real_node = Some(
                node::Node::start(
                    &assets,
                    &args.dir,
                    network.name(),
                    &plane.kubeconfig_path(),
                    images,
                    client,
                )
                .await?,
            );
            tracing::info!(seconds = started.elapsed().as_secs_f64(), "node ready");
            None
        }
        _ => Some(tokio::spawn(kubelet::run(
            client,
            Box::pin(async move {
                let _ = stopped.await;
            }),
        ))),
    };
    println!("{}", args.dir.display());
    if let Some(ready_file) = &args.ready_file {
        std::fs::write(ready_file, args.dir.display().to_string())?;
    }
    tracing::info!(dir = %args.dir.display(), server = plane.server(), "control plane ready");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    let _ = stop.send(());
    if let Some(kubelet) = kubelet {
        let _ = kubelet.await;
    }
    if let Some(mut node) = real_node {
        node.stop();
    }
    plane.stop();
    drop(network);
    tracing::info!("control plane stopped");
    Ok(())
}
