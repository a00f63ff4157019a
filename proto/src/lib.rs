//! The store-platform contracts. This crate owns the code generated from `proto/` and the encoded file-descriptor
//! set that every server offers through reflection; hand-written helpers for the contracts sit beside it.

pub mod v1 {
    #![allow(clippy::all, missing_debug_implementations)]
    tonic::include_proto!("store_platform.v1");
}

/// The encoded `FileDescriptorSet` of every store-platform `.proto` file (with its imports), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/store_platform_descriptor.bin"));

/// Request metadata key carrying the tenant a call acts for. The gateway sets it from the caller's credentials;
/// internal callers set it themselves, and the caller policy says which tenants each caller may name.
pub const TENANT_METADATA_KEY: &str = "x-store-platform-tenant";

/// Request metadata key that widens a call to every tenant's stores when it carries [`ALL_TENANTS`]. The gateway
/// sets it for administrators and strips it from everyone else; a call still creates stores for its own tenant.
pub const SCOPE_METADATA_KEY: &str = "x-store-platform-scope";

/// The [`SCOPE_METADATA_KEY`] value for an administrator.
pub const ALL_TENANTS: &str = "all-tenants";

/// The audience of the ServiceAccount tokens callers of the provisioner and the status service send
/// (`authorization: Bearer …`), unless the services are told another.
pub const TOKEN_AUDIENCE: &str = "store-platform";

/// Fully-qualified names of the store-platform gRPC services.
pub const SERVICE_NAMES: &[&str] = &[
    "store_platform.v1.ProvisionerService",
    "store_platform.v1.StatusService",
];

/// Server reflection, v1 and v1alpha, for the store-platform contracts plus health.
///
/// Both versions are served because grpcurl still asks for v1alpha while `buf curl` and newer clients ask for v1.
pub mod reflection {
    use tonic_reflection::server::{
        Builder, Error,
        v1::{ServerReflection, ServerReflectionServer},
        v1alpha::{
            ServerReflection as ServerReflectionV1Alpha,
            ServerReflectionServer as ServerReflectionV1AlphaServer,
        },
    };

    fn builder() -> Builder<'static> {
        Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    }

    /// `grpc.reflection.v1.ServerReflection`.
    pub fn v1() -> Result<ServerReflectionServer<impl ServerReflection>, Error> {
        builder().build_v1()
    }

    /// `grpc.reflection.v1alpha.ServerReflection`.
    pub fn v1alpha() -> Result<ServerReflectionV1AlphaServer<impl ServerReflectionV1Alpha>, Error> {
        builder().build_v1alpha()
    }
}
