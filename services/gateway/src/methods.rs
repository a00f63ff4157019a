//! The methods the gateway forwards, read from the contracts' descriptor set, so forwarding needs no code per RPC.

use std::collections::HashMap;

use prost::Message as _;
use prost_types::FileDescriptorSet;

use crate::auth::Role;

/// The package whose services the gateway forwards.
const PACKAGE: &str = "store_platform.v1";

/// What the gateway needs to know about one method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    /// Fully qualified service name, e.g. `store_platform.v1.ProvisionerService`.
    pub service: String,
    /// Method name, e.g. `CreateStore`.
    pub name: String,
    /// The response is a stream: no timeout, counted as an open stream.
    pub server_streaming: bool,
    /// The request is a stream: forwarded without buffering.
    pub client_streaming: bool,
}

impl Method {
    /// Calls that change something or reveal a secret: each gets an audit log line.
    pub fn is_audited(&self) -> bool {
        matches!(
            self.name.as_str(),
            "CreateStore"
                | "DeleteStore"
                | "RetryStore"
                | "GetStoreCredentials"
                | "BackupStore"
                | "RestoreStore"
                | "UpgradeStore"
                | "SuspendStore"
                | "ResumeStore"
                | "StartFleetUpgrade"
                | "StopFleetUpgrade"
        )
    }

    /// The least role that may call it. Calls that only read need a viewer; calls across every tenant an
    /// administrator; every other call (and any method added later, until it is listed here) an owner.
    pub fn required_role(&self) -> Role {
        match self.name.as_str() {
            "GetStore" | "ListStores" | "ListBackups" | "ListDeletedStores" | "ListVersions"
            | "WatchStores" | "GetStoreStatus" => Role::Viewer,
            "StartFleetUpgrade" | "GetFleetUpgrade" | "ListFleetUpgrades" | "StopFleetUpgrade" => {
                Role::Admin
            }
            _ => Role::Owner,
        }
    }

    /// Calls counted against a tenant's rate limit.
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self.name.as_str(),
            "CreateStore"
                | "DeleteStore"
                | "BackupStore"
                | "RestoreStore"
                | "UpgradeStore"
                | "SuspendStore"
                | "ResumeStore"
        )
    }

    /// The store a request names: every store-platform request that names one has `store_id` as field 1.
    pub fn store_id(&self, message: &[u8]) -> Option<String> {
        #[derive(Clone, PartialEq, prost::Message)]
        struct NamesAStore {
            #[prost(string, tag = "1")]
            store_id: String,
        }
        NamesAStore::decode(message)
            .ok()
            .map(|m| m.store_id)
            .filter(|id| !id.is_empty())
    }
}

/// Every forwarded method, by request path (`/package.Service/Method`).
#[derive(Clone, Debug, Default)]
pub struct Methods {
    by_path: HashMap<String, Method>,
}

impl Methods {
    /// The methods of every service in the store-platform package.
    pub fn from_contracts() -> Self {
        let set = FileDescriptorSet::decode(store_platform_proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled-in descriptor set decodes");
        let mut by_path = HashMap::new();
        for file in set.file.iter().filter(|f| f.package() == PACKAGE) {
            for service in &file.service {
                let service_name = format!("{PACKAGE}.{}", service.name());
                for method in &service.method {
                    by_path.insert(
                        format!("/{service_name}/{}", method.name()),
                        Method {
                            service: service_name.clone(),
                            name: method.name().to_owned(),
                            server_streaming: method.server_streaming(),
                            client_streaming: method.client_streaming(),
                        },
                    );
                }
            }
        }
        Self { by_path }
    }

    pub fn get(&self, path: &str) -> Option<&Method> {
        self.by_path.get(path)
    }

    /// The services with at least one method.
    pub fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self.by_path.values().map(|m| m.service.clone()).collect();
        services.sort();
        services.dedup();
        services
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_of_the_contracts_is_known_with_its_streaming_methods() {
        let methods = Methods::from_contracts();
        assert_eq!(
            methods.services(),
            [
                "store_platform.v1.ProvisionerService",
                "store_platform.v1.StatusService"
            ]
        );
        let watch = methods
            .get("/store_platform.v1.StatusService/WatchStores")
            .expect("WatchStores");
        assert!(watch.server_streaming && !watch.client_streaming);
        let create = methods
            .get("/store_platform.v1.ProvisionerService/CreateStore")
            .expect("CreateStore");
        assert!(!create.server_streaming && create.is_audited() && create.is_rate_limited());
        let list = methods
            .get("/store_platform.v1.ProvisionerService/ListStores")
            .expect("ListStores");
        assert!(!list.is_audited() && !list.is_rate_limited());
        assert!(
            methods
                .get("/store_platform.v1.ProvisionerService/Nope")
                .is_none()
        );
    }

    #[test]
    fn the_store_id_is_read_from_any_request_that_names_one() {
        let methods = Methods::from_contracts();
        let delete = methods
            .get("/store_platform.v1.ProvisionerService/DeleteStore")
            .expect("DeleteStore");
        let request = store_platform_proto::v1::CreateStoreRequest {
            store_id: "shoes".into(),
            display_name: "Shoes".into(),
            engine: 1,
            admin_email: "a@example.com".into(),
            source: None,
        };
        assert_eq!(
            delete.store_id(&request.encode_to_vec()),
            Some("shoes".into())
        );
        assert_eq!(delete.store_id(&[0xff, 0xff]), None);
    }
}
