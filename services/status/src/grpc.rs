//! The StatusService gRPC API.
//!
//! The namespace watch and its stream are not built yet; every call says so with `Unimplemented` rather than
//! pretending to succeed.

use std::pin::Pin;

use store_platform_proto::v1::{
    GetStoreStatusRequest, GetStoreStatusResponse, WatchStoresRequest, WatchStoresResponse,
    status_service_server::StatusService,
};
use tonic::{Request, Response, codegen::tokio_stream::Stream};

/// The StatusService implementation.
#[derive(Clone)]
pub struct Status {
    // Held for the namespace watch; used by every RPC once it exists.
    _client: kube::Client,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status").finish_non_exhaustive()
    }
}

impl Status {
    pub fn new(client: kube::Client) -> Self {
        Self { _client: client }
    }
}

fn not_built_yet(method: &str) -> tonic::Status {
    tonic::Status::unimplemented(format!(
        "{method} is not available yet: this status build has no namespace watch"
    ))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchStoresResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl StatusService for Status {
    type WatchStoresStream = WatchStream;

    async fn watch_stores(
        &self,
        _: Request<WatchStoresRequest>,
    ) -> Result<Response<Self::WatchStoresStream>, tonic::Status> {
        Err(not_built_yet("WatchStores"))
    }

    async fn get_store_status(
        &self,
        _: Request<GetStoreStatusRequest>,
    ) -> Result<Response<GetStoreStatusResponse>, tonic::Status> {
        Err(not_built_yet("GetStoreStatus"))
    }
}
