//! Callers of the platform's services, the Kubernetes way: a ServiceAccount and a token for it from the TokenRequest
//! API, with the platform's audience. Every control plane started here has one such caller for the tests,
//! `store-platform-tests/caller`, allowed any tenant and the all-tenants scope by the caller policy it writes
//! beside its kubeconfig ([`POLICY_FILE`]); its token is in [`TOKEN_FILE`].

use std::path::Path;

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::{Namespace, ServiceAccount},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

/// The tests' caller: its namespace and name.
pub const NAMESPACE: &str = "store-platform-tests";
pub const NAME: &str = "caller";

/// Files in a control plane's directory: the caller's token, and a caller policy that allows it everything.
pub const TOKEN_FILE: &str = "caller.token";
pub const POLICY_FILE: &str = "callers.json";

/// How long the tests' token is valid: longer than any run.
const TEST_TOKEN_SECONDS: i64 = 7 * 24 * 3600;

async fn create_if_missing<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates the ServiceAccount `namespace/name` (and its namespace) unless they exist.
pub async fn ensure_service_account(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    };
    create_if_missing(
        &Api::<Namespace>::all(client.clone()),
        &Namespace {
            metadata: meta(namespace),
            ..Namespace::default()
        },
    )
    .await?;
    create_if_missing(
        &Api::<ServiceAccount>::namespaced(client.clone(), namespace),
        &ServiceAccount {
            metadata: meta(name),
            ..ServiceAccount::default()
        },
    )
    .await
}

/// A new token of the ServiceAccount `namespace/name` for `audience`, valid for `seconds` (at least 600, the API's
/// minimum), as `kubectl create token` asks for it.
pub async fn request_token(
    client: &Client,
    namespace: &str,
    name: &str,
    audience: &str,
    seconds: i64,
) -> Result<String, kube::Error> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(seconds),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let issued = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    Ok(issued.status.map(|s| s.token).unwrap_or_default())
}

/// A caller policy with one entry: `namespace/name`, allowed any tenant and the all-tenants scope.
pub fn policy_allowing_all(namespace: &str, name: &str) -> String {
    serde_json::json!({
        "callers": [{
            "serviceAccount": format!("{namespace}/{name}"),
            "anyTenant": true,
            "allTenantsScope": true,
        }]
    })
    .to_string()
}

/// Creates the tests' caller in the cluster of `client` and writes its token and policy into `dir`.
pub async fn write_test_caller(client: &Client, dir: &Path) -> anyhow::Result<()> {
    ensure_service_account(client, NAMESPACE, NAME).await?;
    let token = request_token(
        client,
        NAMESPACE,
        NAME,
        store_platform_proto::TOKEN_AUDIENCE,
        TEST_TOKEN_SECONDS,
    )
    .await?;
    anyhow::ensure!(!token.is_empty(), "the TokenRequest returned no token");
    write_private(&dir.join(TOKEN_FILE), &token)?;
    std::fs::write(dir.join(POLICY_FILE), policy_allowing_all(NAMESPACE, NAME))?;
    Ok(())
}

/// Writes `contents` to `path`, readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(contents.as_bytes())?;
    std::fs::rename(partial, path)
}
