//! `call-provisioner <address> <list|credentials> <tenant> <token file|-> [all-tenants] [store id]`: one direct call
//! of the provisioner, as a program inside a pod makes it, printing `<gRPC code> <message>` (`OK <n> stores` for a
//! list) on one line. Tests run it in pods on the real node to call the platform as a pod in another namespace.

use std::{process::ExitCode, time::Duration};

use store_platform_proto::{
    ALL_TENANTS, SCOPE_METADATA_KEY, TENANT_METADATA_KEY,
    v1::{
        GetStoreCredentialsRequest, ListStoresRequest,
        provisioner_service_client::ProvisionerServiceClient,
    },
};

struct Call {
    address: String,
    rpc: String,
    tenant: String,
    token_file: String,
    all_tenants: bool,
    store_id: String,
}

fn request<T>(call: &Call, message: T) -> Result<tonic::Request<T>, String> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    let value = |text: &str| {
        text.parse()
            .map_err(|_| format!("{text:?} is not a header value"))
    };
    metadata.insert(TENANT_METADATA_KEY, value(&call.tenant)?);
    if call.token_file != "-" {
        let token = std::fs::read_to_string(&call.token_file)
            .map_err(|e| format!("{}: {e}", call.token_file))?;
        metadata.insert("authorization", value(&format!("Bearer {}", token.trim()))?);
    }
    if call.all_tenants {
        metadata.insert(SCOPE_METADATA_KEY, value(ALL_TENANTS)?);
    }
    Ok(request)
}

async fn run(call: &Call) -> Result<String, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", call.address))
        .map_err(|e| format!("{}: {e}", call.address))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", call.address))?;
    let mut api = ProvisionerServiceClient::new(channel);
    let answer = match call.rpc.as_str() {
        "list" => api
            .list_stores(request(call, ListStoresRequest::default())?)
            .await
            .map(|r| format!("{} stores", r.into_inner().stores.len())),
        "credentials" => api
            .get_store_credentials(request(
                call,
                GetStoreCredentialsRequest {
                    store_id: call.store_id.clone(),
                },
            )?)
            .await
            .map(|_| "credentials".to_owned()),
        other => return Err(format!("unknown call {other:?}: list or credentials")),
    };
    Ok(match answer {
        Ok(what) => format!("OK {what}"),
        Err(status) => format!("{:?} {}", status.code(), status.message()),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, rpc, tenant, token_file, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: call-provisioner <address> <list|credentials> <tenant> <token file|-> [all-tenants] [store id]"
        );
        return ExitCode::from(2);
    };
    let all_tenants = rest.first().is_some_and(|s| s == "all-tenants");
    let call = Call {
        address: address.clone(),
        rpc: rpc.clone(),
        tenant: tenant.clone(),
        token_file: token_file.clone(),
        all_tenants,
        store_id: rest
            .get(usize::from(all_tenants))
            .cloned()
            .unwrap_or_default(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("call-provisioner: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&call)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("ERROR {error}");
            ExitCode::FAILURE
        }
    }
}
