//! Every gRPC client sees the same answers: the same calls — each status code the services return, unary and a
//! WatchStores stream that ends with an error after messages — made directly to the provisioner and the status
//! service and through the gateway, by four independent implementations: tonic (the reference), gRPC's C core
//! (PyPI's grpcio, the core of the C++, Ruby, PHP and C# clients), @grpc/grpc-js (npm) and grpc-go (Debian's
//! golang-google-grpc-dev, the library grpcurl is built on). Each must get the reference's code and, where the
//! server wrote the status, its message.
//!
//! Clients live in `test-support/clients`; scripts/tools.sh installs grpcio and grpc-js, scripts/debian-packages.sh
//! Go and grpc-go. Requests and responses are raw bytes in every client: no generated code can differ.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use prost::Message as _;
use serde_json::{Value, json};
use store_platform_proto::v1::{
    CreateStoreRequest, Engine, GetStoreRequest, GetStoreStatusRequest, ListStoresRequest,
    WatchStoresRequest,
};
use store_platform_test_support::{
    TestEnv, caller,
    process::{ServiceProcess as Service, free_port, tokens_file},
};
use tonic::{codec::Codec, transport::Channel};

const TOKEN: &str = "clients-token-7d1e";
const TENANT: &str = "clients";
/// A viewer of the same tenant, through the gateway.
const VIEWER_TOKEN: &str = "clients-viewer-token-52a9";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

/// How a case's message is compared: the server wrote it (every client must show it as is), or the client made
/// the status itself (a deadline it enforced), whose wording is the library's own.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Message {
    Server,
    ClientsOwn,
}

#[derive(Debug)]
struct Case {
    name: &'static str,
    target: String,
    method: &'static str,
    streaming: bool,
    request: Vec<u8>,
    metadata: Vec<(&'static str, String)>,
    deadline_ms: u64,
    expect_code: tonic::Code,
    message: Message,
}

impl Case {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "target": self.target,
            "method": self.method,
            "streaming": self.streaming,
            "request_hex": self.request.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "metadata": self.metadata.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "deadline_ms": self.deadline_ms,
        })
    }
}

/// What one client saw of one call.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    code: i32,
    message: String,
    received: u64,
}

/// Messages as bytes, for tonic's generic client.
#[derive(Clone, Copy, Debug, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf as _;
        let mut item = vec![0; src.remaining()];
        src.copy_to_slice(&mut item);
        Ok(Some(item))
    }
}

/// The reference: the case through tonic.
async fn with_tonic(case: &Case) -> Seen {
    let channel = Channel::from_shared(format!("http://{}", case.target))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.expect("ready");
    let mut request = tonic::Request::new(case.request.clone());
    for (key, value) in &case.metadata {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("ascii"));
    }
    if case.deadline_ms > 0 {
        request.set_timeout(Duration::from_millis(case.deadline_ms));
    }
    let path = case.method.parse().expect("path");
    let (status, received) = if case.streaming {
        match client.server_streaming(request, path, Raw).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                let mut received = 0;
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => received += 1,
                        Ok(None) => break (tonic::Status::ok(""), received),
                        Err(status) => break (status, received),
                    }
                }
            }
            Err(status) => (status, 0),
        }
    } else {
        match client.unary(request, path, Raw).await {
            Ok(_) => (tonic::Status::ok(""), 1),
            Err(status) => (status, 0),
        }
    };
    Seen {
        code: status.code() as i32,
        message: status.message().to_owned(),
        received,
    }
}

/// Runs one of the client programs over every case; what it printed, one result per case.
fn with_program(label: &str, mut command: Command, cases: &[Case], dir: &Path) -> Vec<Seen> {
    let file = dir.join("cases.json");
    std::fs::write(
        &file,
        serde_json::to_string(&cases.iter().map(Case::to_json).collect::<Vec<_>>()).expect("json"),
    )
    .expect("cases file");
    let output = command.arg(&file).output().expect("run the client");
    assert!(
        output.status.success(),
        "{label} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Vec<Seen> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a result line");
            Seen {
                code: value["code"].as_i64().expect("code") as i32,
                message: value["message"].as_str().unwrap_or_default().to_owned(),
                received: value["received"].as_u64().expect("received"),
            }
        })
        .collect();
    assert_eq!(seen.len(), cases.len(), "{label}: one result per case");
    seen
}

/// grpc-go's client, built from Debian's packages with the machine's Go (cached by Go's build cache).
fn grpc_go_client(dir: &Path) -> PathBuf {
    let go = Path::new("/usr/bin/go");
    assert!(
        go.exists() && Path::new("/usr/share/gocode/src/google.golang.org/grpc").exists(),
        "Go and grpc-go are missing: scripts/debian-packages.sh installs them (make test runs it)"
    );
    let binary = dir.join("grpc-go-client");
    let cache = root().join("target/go-build-cache");
    let build = Command::new(go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(root().join("test-support/clients/grpc-go"))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", cache)
        .env("GOFLAGS", "")
        .output()
        .expect("go build");
    assert!(
        build.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    binary
}

fn create(id: &str, name: &str) -> Vec<u8> {
    CreateStoreRequest {
        store_id: id.into(),
        display_name: name.into(),
        engine: Engine::Woocommerce as i32,
        admin_email: "owner@example.com".into(),
        source: None,
    }
    .encode_to_vec()
}

fn get(id: &str) -> Vec<u8> {
    GetStoreRequest {
        store_id: id.into(),
    }
    .encode_to_vec()
}

/// The calls, each made directly and through the gateway where that makes sense.
fn cases(
    (direct, status, gateway, broken): (&str, &str, &str, &str),
    caller_token: &str,
    stranger_token: &str,
) -> Vec<Case> {
    use tonic::Code;
    // A direct caller: its ServiceAccount token and the tenant it names.
    let tenant = vec![
        ("authorization", format!("Bearer {caller_token}")),
        ("x-store-platform-tenant", TENANT.to_owned()),
    ];
    let token = vec![("authorization", format!("Bearer {TOKEN}"))];
    let unary = |name,
                 target: &str,
                 method,
                 request: Vec<u8>,
                 metadata: &Vec<(&'static str, String)>,
                 code| Case {
        name,
        target: target.to_owned(),
        method,
        streaming: false,
        request,
        metadata: metadata.clone(),
        deadline_ms: 0,
        expect_code: code,
        message: Message::Server,
    };
    let huge = create("conf-huge", &"x".repeat(100_000));
    let mut cases = Vec::new();
    for (via, target, who) in [("direct", direct, &tenant), ("gateway", gateway, &token)] {
        let via: &'static str = if via == "direct" { "direct" } else { "gateway" };
        let name =
            |what: &str| -> &'static str { Box::leak(format!("{via}: {what}").into_boxed_str()) };
        let create_path = "/store_platform.v1.ProvisionerService/CreateStore";
        let get_path = "/store_platform.v1.ProvisionerService/GetStore";
        cases.extend([
            unary(
                name("OK, a create"),
                target,
                create_path,
                create("conf-shop", "Conformance"),
                who,
                Code::Ok,
            ),
            unary(
                name("OK, a read"),
                target,
                get_path,
                get("conf-shop"),
                who,
                Code::Ok,
            ),
            unary(
                name("INVALID_ARGUMENT"),
                target,
                create_path,
                create("Bad_Id", "Bad"),
                who,
                Code::InvalidArgument,
            ),
            unary(
                name("NOT_FOUND"),
                target,
                get_path,
                get("conf-missing"),
                who,
                Code::NotFound,
            ),
            unary(
                name("ALREADY_EXISTS"),
                target,
                create_path,
                create("conf-shop", "Another spec"),
                who,
                Code::AlreadyExists,
            ),
            unary(
                name("RESOURCE_EXHAUSTED"),
                target,
                create_path,
                huge.clone(),
                who,
                Code::ResourceExhausted,
            ),
            unary(
                name("UNAUTHENTICATED"),
                target,
                "/store_platform.v1.ProvisionerService/ListStores",
                ListStoresRequest::default().encode_to_vec(),
                &Vec::new(),
                Code::Unauthenticated,
            ),
            unary(
                name("UNIMPLEMENTED"),
                target,
                "/store_platform.v1.ProvisionerService/NoSuchMethod",
                Vec::new(),
                who,
                Code::Unimplemented,
            ),
        ]);
        // A stream that ends with an error after messages (the snapshot, heartbeats): the deadline ends it.
        cases.push(Case {
            name: name("WatchStores, then DEADLINE_EXCEEDED"),
            target: if via == "direct" {
                status.to_owned()
            } else {
                target.to_owned()
            },
            method: "/store_platform.v1.StatusService/WatchStores",
            streaming: true,
            request: WatchStoresRequest::default().encode_to_vec(),
            metadata: who.clone(),
            deadline_ms: 2500,
            expect_code: Code::DeadlineExceeded,
            message: Message::ClientsOwn,
        });
    }
    // A ServiceAccount the caller policy does not name, calling the provisioner directly.
    cases.push(unary(
        "direct: PERMISSION_DENIED",
        direct,
        "/store_platform.v1.ProvisionerService/ListStores",
        ListStoresRequest::default().encode_to_vec(),
        &vec![
            ("authorization", format!("Bearer {stranger_token}")),
            ("x-store-platform-tenant", TENANT.to_owned()),
        ],
        Code::PermissionDenied,
    ));
    // A viewer's token: the gateway refuses what the role may not do.
    cases.push(unary(
        "gateway: PERMISSION_DENIED",
        gateway,
        "/store_platform.v1.ProvisionerService/DeleteStore",
        get("conf-shop"),
        &vec![("authorization", format!("Bearer {VIEWER_TOKEN}"))],
        Code::PermissionDenied,
    ));
    // What only the gateway says: its backend is down, or does not answer in time.
    cases.push(unary(
        "gateway: UNAVAILABLE",
        broken,
        "/store_platform.v1.ProvisionerService/GetStore",
        get("conf-shop"),
        &token,
        Code::Unavailable,
    ));
    cases.push(unary(
        "gateway: DEADLINE_EXCEEDED",
        broken,
        "/store_platform.v1.StatusService/GetStoreStatus",
        GetStoreStatusRequest {
            store_id: "conf-shop".into(),
        }
        .encode_to_vec(),
        &token,
        Code::DeadlineExceeded,
    ));
    cases
}

#[tokio::test]
async fn every_grpc_client_sees_the_same_codes_and_messages_directly_and_through_the_gateway() {
    let env = TestEnv::shared();
    let scratch = tempfile::tempdir().expect("temp dir");
    let web_root = scratch.path().join("web");
    std::fs::create_dir(&web_root).expect("web root");
    std::fs::write(web_root.join("index.html"), "<!doctype html>").expect("index");
    let kubeconfig = env.kubeconfig_path().display().to_string();
    let tokens = tokens_file(scratch.path(), "clients", TENANT, TOKEN, false);
    let viewer = format!("viewer {TENANT} {} viewer\n", {
        use sha2::Digest as _;
        sha2::Sha256::digest(VIEWER_TOKEN.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    });
    std::fs::write(
        &tokens,
        std::fs::read_to_string(&tokens).expect("tokens") + &viewer,
    )
    .expect("the viewer's token");

    let (provisioner_port, status_port, gateway_port, broken_port) =
        (free_port(), free_port(), free_port(), free_port());
    let mut provisioner = Service::start(
        "provisioner",
        &[
            ("KUBECONFIG", kubeconfig.clone()),
            ("GRPC_ADDR", format!("127.0.0.1:{provisioner_port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("LEASE_NAME", format!("clients-{}", std::process::id())),
        ],
        scratch.path(),
    );
    let mut status = Service::start(
        "status",
        &[
            ("KUBECONFIG", kubeconfig),
            ("GRPC_ADDR", format!("127.0.0.1:{status_port}")),
            ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("HEARTBEAT_INTERVAL", "1s".to_owned()),
        ],
        scratch.path(),
    );
    let gateway_env =
        |port: u16, provisioner: String, status: String, extra: &[(&'static str, &str)]| {
            let mut vars = vec![
                ("HTTP_ADDR", format!("127.0.0.1:{port}")),
                ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
                ("WEB_ROOT", web_root.display().to_string()),
                ("TOKENS_FILE", tokens.display().to_string()),
                ("PROVISIONER_URL", provisioner),
                ("STATUS_URL", status),
            ];
            vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            vars
        };
    let mut gateway = Service::start(
        "gateway",
        &gateway_env(
            gateway_port,
            format!("http://127.0.0.1:{provisioner_port}"),
            format!("http://127.0.0.1:{status_port}"),
            &[],
        ),
        scratch.path(),
    );
    // A gateway whose provisioner is down (nothing listens) and whose status service never answers (a socket that
    // accepts and stays silent).
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let nobody = free_port();
    let broken_logs = scratch.path().join("broken");
    std::fs::create_dir(&broken_logs).expect("logs");
    let mut broken = Service::start(
        "gateway",
        &gateway_env(
            broken_port,
            format!("http://127.0.0.1:{nobody}"),
            format!("http://127.0.0.1:{silent_port}"),
            &[
                ("UNARY_TIMEOUT", "700ms"),
                ("BACKEND_CONNECT_TIMEOUT", "5s"),
            ],
        ),
        &broken_logs,
    );
    for (service, port) in [
        (&mut provisioner, provisioner_port),
        (&mut status, status_port),
        (&mut gateway, gateway_port),
        (&mut broken, broken_port),
    ] {
        service.channel(port).await;
    }

    let at = |port: u16| format!("127.0.0.1:{port}");
    let client = env.client().await;
    caller::ensure_service_account(&client, caller::NAMESPACE, "stranger")
        .await
        .expect("a ServiceAccount outside the policy");
    let stranger = caller::request_token(
        &client,
        caller::NAMESPACE,
        "stranger",
        store_platform_proto::TOKEN_AUDIENCE,
        3600,
    )
    .await
    .expect("its token");
    let cases = cases(
        (
            &at(provisioner_port),
            &at(status_port),
            &at(gateway_port),
            &at(broken_port),
        ),
        &env.caller_token(),
        &stranger,
    );
    let mut reference = Vec::new();
    for case in &cases {
        let seen = tokio::time::timeout(Duration::from_secs(30), with_tonic(case))
            .await
            .unwrap_or_else(|_| panic!("tonic, {}: no answer in 30 s", case.name));
        assert_eq!(
            tonic::Code::from_i32(seen.code),
            case.expect_code,
            "tonic, {}: {seen:?}",
            case.name
        );
        reference.push(seen);
    }

    let tools = root().join("tools");
    let mut python = Command::new(tools.join(".venv/bin/python"));
    python.arg(root().join("test-support/clients/grpcio_client.py"));
    let mut node = Command::new("node");
    node.arg(root().join("test-support/clients/grpc_js_client.cjs"))
        .env("NODE_PATH", tools.join("node_modules"));
    let go = Command::new(grpc_go_client(scratch.path()));
    let mut disagreements = Vec::new();
    for (label, command) in [
        ("grpcio (C core)", python),
        ("@grpc/grpc-js", node),
        ("grpc-go", go),
    ] {
        let seen = with_program(label, command, &cases, scratch.path());
        for ((case, reference), seen) in cases.iter().zip(&reference).zip(&seen) {
            let same = seen.code == reference.code
                && (case.message == Message::ClientsOwn || seen.message == reference.message)
                && (case.streaming && seen.received >= 1 || seen.received == reference.received);
            if !same {
                disagreements.push(format!(
                    "{label}, {}: saw {seen:?}, tonic saw {reference:?}",
                    case.name
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "clients disagree:\n{}",
        disagreements.join("\n")
    );
    for service in [provisioner, status, gateway, broken] {
        assert!(service.terminate(Duration::from_secs(20)));
    }
}
