//! In-process backends for the gateway's tests: a provisioner and a status service that report what reached them
//! (the tenant and scope metadata the gateway set), and a gateway in front of them on a real port.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::Stream;
use store_platform_gateway::{
    AppState, app,
    auth::{Authenticator, BackendToken, Tokens, hash_hex},
    forward::{Backend, Config, Forwarder},
    limit::RateLimiter,
    metrics::Metrics,
};
use store_platform_proto::{
    SCOPE_METADATA_KEY, TENANT_METADATA_KEY,
    v1::{
        CreateStoreRequest, CreateStoreResponse, DeleteStoreRequest, DeleteStoreResponse,
        GetStoreCredentialsRequest, GetStoreCredentialsResponse, GetStoreRequest, GetStoreResponse,
        GetStoreStatusRequest, GetStoreStatusResponse, ListStoresRequest, ListStoresResponse,
        RetryStoreRequest, RetryStoreResponse, Store, WatchStoresRequest, WatchStoresResponse,
        provisioner_service_server::{ProvisionerService, ProvisionerServiceServer},
        status_service_server::{StatusService, StatusServiceServer},
    },
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, transport::Endpoint};

pub const ALICE: &str = "alice-token";
pub const OPS: &str = "ops-token";
/// The gateway's own ServiceAccount token, which it sends to the backends.
pub const GATEWAY_SA_TOKEN: &str = "gateway-serviceaccount-token";

/// Alice of tenant acme, and ops, an administrator of tenant platform.
pub fn tokens() -> Tokens {
    Tokens::parse(&format!(
        "alice acme {}\nops platform {} admin\n",
        hash_hex(ALICE),
        hash_hex(OPS)
    ))
    .expect("tokens")
}

/// What a backend call saw: the store it named, the tenant and the scope.
fn seen<T>(request: &Request<T>, store_id: &str) -> Store {
    let metadata = request.metadata();
    let text = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    Store {
        id: store_id.to_owned(),
        tenant: text(TENANT_METADATA_KEY),
        // The scope, and the credentials that reached the backend.
        display_name: format!(
            "scope={};authorization={}",
            text(SCOPE_METADATA_KEY),
            text("authorization")
        ),
        ..Store::default()
    }
}

/// A provisioner that answers with what reached it and counts its calls.
#[derive(Clone, Debug, Default)]
pub struct Provisioner {
    pub calls: Arc<AtomicUsize>,
    /// How long GetStore takes.
    pub get_delay: Arc<Mutex<Duration>>,
}

#[tonic::async_trait]
impl ProvisionerService for Provisioner {
    async fn create_store(
        &self,
        request: Request<CreateStoreRequest>,
    ) -> Result<Response<CreateStoreResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let store = seen(&request, &request.get_ref().store_id);
        Ok(Response::new(CreateStoreResponse { store: Some(store) }))
    }

    async fn get_store(
        &self,
        request: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.get_delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        if request.get_ref().store_id == "missing" {
            return Err(Status::not_found("store \"missing\" not found"));
        }
        let store = seen(&request, &request.get_ref().store_id);
        Ok(Response::new(GetStoreResponse { store: Some(store) }))
    }

    async fn list_stores(
        &self,
        _: Request<ListStoresRequest>,
    ) -> Result<Response<ListStoresResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn delete_store(
        &self,
        _: Request<DeleteStoreRequest>,
    ) -> Result<Response<DeleteStoreResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(DeleteStoreResponse::default()))
    }

    async fn retry_store(
        &self,
        _: Request<RetryStoreRequest>,
    ) -> Result<Response<RetryStoreResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_store_credentials(
        &self,
        _: Request<GetStoreCredentialsRequest>,
    ) -> Result<Response<GetStoreCredentialsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn backup_store(
        &self,
        _: Request<store_platform_proto::v1::BackupStoreRequest>,
    ) -> Result<Response<store_platform_proto::v1::BackupStoreResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_backups(
        &self,
        _: Request<store_platform_proto::v1::ListBackupsRequest>,
    ) -> Result<Response<store_platform_proto::v1::ListBackupsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn restore_store(
        &self,
        _: Request<store_platform_proto::v1::RestoreStoreRequest>,
    ) -> Result<Response<store_platform_proto::v1::RestoreStoreResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_deleted_stores(
        &self,
        _: Request<store_platform_proto::v1::ListDeletedStoresRequest>,
    ) -> Result<Response<store_platform_proto::v1::ListDeletedStoresResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_versions(
        &self,
        _: Request<store_platform_proto::v1::ListVersionsRequest>,
    ) -> Result<Response<store_platform_proto::v1::ListVersionsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn upgrade_store(
        &self,
        _: Request<store_platform_proto::v1::UpgradeStoreRequest>,
    ) -> Result<Response<store_platform_proto::v1::UpgradeStoreResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn suspend_store(
        &self,
        _: Request<store_platform_proto::v1::SuspendStoreRequest>,
    ) -> Result<Response<store_platform_proto::v1::SuspendStoreResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn resume_store(
        &self,
        _: Request<store_platform_proto::v1::ResumeStoreRequest>,
    ) -> Result<Response<store_platform_proto::v1::ResumeStoreResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn start_fleet_upgrade(
        &self,
        _: Request<store_platform_proto::v1::StartFleetUpgradeRequest>,
    ) -> Result<Response<store_platform_proto::v1::StartFleetUpgradeResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_fleet_upgrade(
        &self,
        _: Request<store_platform_proto::v1::GetFleetUpgradeRequest>,
    ) -> Result<Response<store_platform_proto::v1::GetFleetUpgradeResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn stop_fleet_upgrade(
        &self,
        _: Request<store_platform_proto::v1::StopFleetUpgradeRequest>,
    ) -> Result<Response<store_platform_proto::v1::StopFleetUpgradeResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_fleet_upgrades(
        &self,
        _: Request<store_platform_proto::v1::ListFleetUpgradesRequest>,
    ) -> Result<Response<store_platform_proto::v1::ListFleetUpgradesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

type StreamSender = mpsc::Sender<Result<WatchStoresResponse, Status>>;

/// A status service whose WatchStores stream sends what the test pushes, when it pushes it.
#[derive(Clone, Debug, Default)]
pub struct StatusBackend {
    pub streams: Arc<Mutex<Vec<StreamSender>>>,
}

impl StatusBackend {
    /// Sends `message` on every open stream; how many got it.
    pub async fn push(&self, message: WatchStoresResponse) -> usize {
        let senders = self.streams.lock().expect("lock").clone();
        let mut sent = 0;
        for sender in senders {
            if sender.send(Ok(message.clone())).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Ends every open stream with `status`.
    pub async fn fail(&self, status: Status) {
        let senders = std::mem::take(&mut *self.streams.lock().expect("lock"));
        for sender in senders {
            let _ = sender.send(Err(status.clone())).await;
        }
    }

    pub fn open(&self) -> usize {
        self.streams
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| !s.is_closed())
            .count()
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchStoresResponse, Status>> + Send>>;

#[tonic::async_trait]
impl StatusService for StatusBackend {
    type WatchStoresStream = WatchStream;

    async fn watch_stores(
        &self,
        _: Request<WatchStoresRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let (sender, receiver) = mpsc::channel(16);
        self.streams.lock().expect("lock").push(sender);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn get_store_status(
        &self,
        request: Request<GetStoreStatusRequest>,
    ) -> Result<Response<GetStoreStatusResponse>, Status> {
        let store = seen(&request, &request.get_ref().store_id);
        Ok(Response::new(GetStoreStatusResponse { store: Some(store) }))
    }
}

/// Serves the two backends on `addr` (or a free port) until the returned handle is aborted.
pub async fn serve_backends(
    addr: Option<SocketAddr>,
    provisioner: Provisioner,
    status: StatusBackend,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ProvisionerServiceServer::new(provisioner))
            .add_service(StatusServiceServer::new(status))
            .serve_with_incoming(incoming)
            .await
            .expect("serve");
    });
    (addr, task)
}

/// Gateway settings for a test.
#[derive(Debug)]
pub struct Settings {
    pub burst: u32,
    pub unary_timeout: Duration,
    pub max_request_bytes: usize,
    pub cors_origins: Vec<&'static str>,
    /// Who may call (the test tokens when unset).
    pub auth: Option<Authenticator>,
    /// People's sign-in.
    pub signin: Option<Arc<store_platform_gateway::signin::SignInConfig>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            burst: 100,
            unary_timeout: Duration::from_secs(10),
            max_request_bytes: 64 * 1024,
            cors_origins: Vec::new(),
            auth: None,
            signin: None,
        }
    }
}

/// The gateway's router in front of backends at `backend` (both services there).
pub async fn router(
    web_root: &std::path::Path,
    backend: SocketAddr,
    settings: Settings,
) -> (axum::Router, Arc<Metrics>) {
    let channel = Endpoint::from_shared(format!("http://{backend}"))
        .expect("url")
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    let backends = [
        (store_platform_proto::SERVICE_NAMES[0], "provisioner"),
        (store_platform_proto::SERVICE_NAMES[1], "status"),
    ]
    .into_iter()
    .map(|(service, name)| {
        (
            service.to_owned(),
            Backend {
                name,
                channel: channel.clone(),
            },
        )
    })
    .collect();
    let metrics = Arc::new(Metrics::default());
    let forwarder = Forwarder::new(Config {
        backends,
        auth: settings
            .auth
            .clone()
            .unwrap_or_else(|| Authenticator::new(tokens())),
        backend_token: BackendToken::fixed(GATEWAY_SA_TOKEN).expect("token"),
        limiter: RateLimiter::new(60, settings.burst),
        metrics: metrics.clone(),
        unary_timeout: settings.unary_timeout,
        max_request_bytes: settings.max_request_bytes,
    });
    let (grpc, _health) = store_platform_runtime::grpc::standard_routes()
        .await
        .expect("routes");
    let router = app(AppState {
        web_root: web_root.to_owned(),
        grpc,
        forwarder,
        cors_origins: settings
            .cors_origins
            .iter()
            .map(|o| o.parse().expect("origin"))
            .collect(),
        signin: settings.signin.clone(),
    });
    (router, metrics)
}

/// Serves `router` on a free port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The tests' claims mapping: roles from the groups `platform-admins`, `store-owners` and `store-viewers`; the
/// tenant from the claim `tenant` or from groups `tenant-<name>`.
pub fn mapping() -> store_platform_gateway::auth::oidc::mapping::Mapping {
    store_platform_gateway::auth::oidc::mapping::Mapping {
        tenant_claim: Some("tenant".into()),
        tenant_group_prefix: Some("tenant-".into()),
        groups_claim: "groups".into(),
        admin_groups: vec!["platform-admins".into()],
        owner_groups: vec!["store-owners".into()],
        viewer_groups: vec!["store-viewers".into()],
        default_role: None,
        admin_tenant: "platform".into(),
        email_claim: "email".into(),
    }
}

/// A directory with a dashboard's files.
pub fn dashboard() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>dashboard</title>",
    )
    .expect("index");
    std::fs::create_dir(dir.path().join("assets")).expect("assets");
    std::fs::write(dir.path().join("assets/app.js"), "console.log('hi')").expect("asset");
    dir
}

/// `message` with the metadata a caller of the gateway sends: a bearer token.
pub fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}
