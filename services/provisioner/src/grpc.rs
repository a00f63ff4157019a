//! The ProvisionerService gRPC API.
//!
//! The store lifecycle (create, reconcile, delete, retry, credentials) is not built yet; every call says so with
//! `Unimplemented` rather than pretending to succeed.

use store_platform_proto::v1::{
    CreateStoreRequest, CreateStoreResponse, DeleteStoreRequest, DeleteStoreResponse,
    GetStoreCredentialsRequest, GetStoreCredentialsResponse, GetStoreRequest, GetStoreResponse,
    ListStoresRequest, ListStoresResponse, RetryStoreRequest, RetryStoreResponse,
    provisioner_service_server::ProvisionerService,
};
use tonic::{Request, Response, Status};

/// The ProvisionerService implementation.
#[derive(Clone)]
pub struct Provisioner {
    // Held for the store lifecycle; used by every RPC once it exists.
    _client: kube::Client,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner").finish_non_exhaustive()
    }
}

impl Provisioner {
    pub fn new(client: kube::Client) -> Self {
        Self { _client: client }
    }
}

fn not_built_yet(method: &str) -> Status {
    Status::unimplemented(format!(
        "{method} is not available yet: this provisioner build has no store lifecycle"
    ))
}

#[tonic::async_trait]
impl ProvisionerService for Provisioner {
    async fn create_store(
        &self,
        _: Request<CreateStoreRequest>,
    ) -> Result<Response<CreateStoreResponse>, Status> {
        Err(not_built_yet("CreateStore"))
    }

    async fn get_store(
        &self,
        _: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        Err(not_built_yet("GetStore"))
    }

    async fn list_stores(
        &self,
        _: Request<ListStoresRequest>,
    ) -> Result<Response<ListStoresResponse>, Status> {
        Err(not_built_yet("ListStores"))
    }

    async fn delete_store(
        &self,
        _: Request<DeleteStoreRequest>,
    ) -> Result<Response<DeleteStoreResponse>, Status> {
        Err(not_built_yet("DeleteStore"))
    }

    async fn retry_store(
        &self,
        _: Request<RetryStoreRequest>,
    ) -> Result<Response<RetryStoreResponse>, Status> {
        Err(not_built_yet("RetryStore"))
    }

    async fn get_store_credentials(
        &self,
        _: Request<GetStoreCredentialsRequest>,
    ) -> Result<Response<GetStoreCredentialsResponse>, Status> {
        Err(not_built_yet("GetStoreCredentials"))
    }
}
