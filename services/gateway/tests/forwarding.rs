//! The gateway on a real port in front of in-process backends: native gRPC (h2c) and gRPC-web (binary over
//! HTTP/1.1, and text) for unary calls, server streams arriving message by message, limits, timeouts, a backend
//! that is down and comes back, and the metrics.

mod support;

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use base64::Engine as _;
use store_platform_proto::v1::{
    CreateStoreRequest, GetStoreRequest, Heartbeat, WatchStoresRequest, WatchStoresResponse,
    provisioner_service_client::ProvisionerServiceClient,
    status_service_client::StatusServiceClient, watch_stores_response::Event,
};
use support::{
    ALICE, Provisioner, Settings, StatusBackend, dashboard, router, serve, serve_backends,
    with_token,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::{Code, transport::Channel};

async fn grpc_channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

fn heartbeat(seconds: i64) -> WatchStoresResponse {
    WatchStoresResponse {
        event: Some(Event::Heartbeat(Heartbeat {
            time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        })),
    }
}

fn create(id: &str) -> CreateStoreRequest {
    CreateStoreRequest {
        store_id: id.into(),
        display_name: "Shop".into(),
        engine: 1,
        admin_email: "a@example.com".into(),
        source: None,
    }
}

#[tokio::test]
async fn native_grpc_passes_through_with_the_callers_tenant_and_the_backends_errors() {
    let web = dashboard();
    let (backend, _task) =
        serve_backends(None, Provisioner::default(), StatusBackend::default()).await;
    let gateway = serve(router(web.path(), backend, Settings::default()).await.0).await;
    let mut api = ProvisionerServiceClient::new(grpc_channel(gateway).await);
    let store = api
        .create_store(with_token(ALICE, create("shoes")))
        .await
        .expect("create")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(
        (store.id.as_str(), store.tenant.as_str()),
        ("shoes", "acme")
    );
    let error = api
        .get_store(with_token(
            ALICE,
            GetStoreRequest {
                store_id: "missing".into(),
            },
        ))
        .await
        .expect_err("not found");
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(error.message(), "store \"missing\" not found");
}

#[tokio::test]
async fn grpc_web_over_http1_carries_unary_calls_and_streams_message_by_message() {
    let web = dashboard();
    let status = StatusBackend::default();
    let (backend, _task) = serve_backends(None, Provisioner::default(), status.clone()).await;
    let gateway = serve(router(web.path(), backend, Settings::default()).await.0).await;
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let grpc_web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http1);
    let origin: http::Uri = format!("http://{gateway}").parse().expect("uri");

    let mut api = ProvisionerServiceClient::with_origin(grpc_web.clone(), origin.clone());
    let store = api
        .create_store(with_token(ALICE, create("boots")))
        .await
        .expect("create over gRPC-web")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(store.tenant, "acme");

    let mut watch = StatusServiceClient::with_origin(grpc_web, origin);
    let mut stream = watch
        .watch_stores(with_token(ALICE, WatchStoresRequest::default()))
        .await
        .expect("watch over gRPC-web")
        .into_inner();
    // Each message arrives before the next is sent: nothing on the way buffers the stream.
    for second in 1..=3 {
        assert_eq!(status.push(heartbeat(second)).await, 1);
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the message arrives on its own")
            .expect("message")
            .expect("open");
        assert_eq!(message, heartbeat(second));
    }
    status
        .fail(tonic::Status::unavailable("status shutting down"))
        .await;
    let error = stream.message().await.expect_err("the stream ends");
    assert_eq!(error.code(), Code::Unavailable);
}

/// A gRPC-web text call over HTTP/1.1 by hand, read until the server closes: the response head and the decoded
/// body.
async fn grpc_web_text_call(
    gateway: std::net::SocketAddr,
    token: Option<&str>,
    message: &impl prost::Message,
) -> (String, Vec<u8>) {
    let message = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&message);
    let body = base64::engine::general_purpose::STANDARD.encode(&frame);
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /store_platform.v1.ProvisionerService/CreateStore HTTP/1.1\r\nHost: {gateway}\r\n\
         Content-Type: application/grpc-web-text\r\nAccept: application/grpc-web-text\r\nX-Grpc-Web: 1\r\n\
         {authorization}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(gateway)
        .await
        .expect("connect");
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8(response).expect("text");
    let (head, body) = response.split_once("\r\n\r\n").expect("head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("application/grpc-web-text"), "{head}");
    let text: String = if head.contains("transfer-encoding: chunked") {
        let mut text = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
            if size == 0 {
                break;
            }
            text.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        text
    } else {
        body.to_owned()
    };
    // tonic-web encodes each frame on its own, so the text is several base64 pieces, each ending its padding.
    let mut decoded = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let end = rest
            .find('=')
            .map(|i| i + rest[i..].bytes().take_while(|&b| b == b'=').count())
            .unwrap_or(rest.len());
        decoded.extend(
            base64::engine::general_purpose::STANDARD
                .decode(&rest[..end])
                .expect("base64"),
        );
        rest = &rest[end..];
    }
    (head, decoded)
}

/// The trailer frame (flag 0x80) at the start of `frames`, as text.
fn trailer_frame(frames: &[u8]) -> String {
    assert_eq!(frames.first(), Some(&0x80), "a trailer frame: {frames:?}");
    String::from_utf8_lossy(&frames[5..]).to_ascii_lowercase()
}

#[tokio::test]
async fn grpc_web_text_responses_arrive_whole_answers_and_errors_alike() {
    let web = dashboard();
    let (backend, _task) =
        serve_backends(None, Provisioner::default(), StatusBackend::default()).await;
    let gateway = serve(router(web.path(), backend, Settings::default()).await.0).await;

    let (_, decoded) = grpc_web_text_call(gateway, Some(ALICE), &create("texts")).await;
    // A data frame with the store, then the trailer frame with grpc-status 0.
    assert_eq!(decoded[0], 0, "data frame first");
    let length = u32::from_be_bytes(decoded[1..5].try_into().expect("4 bytes")) as usize;
    let reply: store_platform_proto::v1::CreateStoreResponse =
        prost::Message::decode(&decoded[5..5 + length]).expect("decode");
    assert_eq!(reply.store.expect("store").id, "texts");
    assert!(trailer_frame(&decoded[5 + length..]).contains("grpc-status:0"));

    // An error the gateway answers itself has no data frame: the status must still arrive (in the head or in a
    // trailer frame the body must not be cut from).
    let (head, decoded) = grpc_web_text_call(gateway, None, &create("texts")).await;
    if !head.contains("grpc-status: 16") {
        assert!(trailer_frame(&decoded).contains("grpc-status:16"), "{head}");
    }
}

#[tokio::test]
async fn a_backend_that_is_down_is_unavailable_at_once_and_the_gateway_recovers_when_it_returns() {
    let web = dashboard();
    // Reserve a port, then free it: nothing listens there until the backend starts.
    let port = store_platform_test_support::process::free_port();
    let backend_addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let gateway = serve(
        router(web.path(), backend_addr, Settings::default())
            .await
            .0,
    )
    .await;
    let mut api = ProvisionerServiceClient::new(grpc_channel(gateway).await);

    let started = Instant::now();
    let error = api
        .create_store(with_token(ALICE, create("down")))
        .await
        .expect_err("backend down");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(error.message().contains("provisioner"), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let (_, _task) = serve_backends(
        Some(backend_addr),
        Provisioner::default(),
        StatusBackend::default(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match api.create_store(with_token(ALICE, create("back"))).await {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                assert_eq!(error.code(), Code::Unavailable, "{error:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the gateway did not recover: {error:?}"),
        }
    }
}

#[tokio::test]
async fn limits_rate_size_and_time_answer_with_their_codes_before_or_instead_of_the_backend() {
    let web = dashboard();
    let provisioner = Provisioner::default();
    let (backend, _task) =
        serve_backends(None, provisioner.clone(), StatusBackend::default()).await;
    let settings = Settings {
        burst: 2,
        unary_timeout: Duration::from_millis(300),
        max_request_bytes: 1024,
        ..Settings::default()
    };
    let (app, metrics) = router(web.path(), backend, settings).await;
    let gateway = serve(app).await;
    let mut api = ProvisionerServiceClient::new(grpc_channel(gateway).await);

    for id in ["one", "two"] {
        api.create_store(with_token(ALICE, create(id)))
            .await
            .expect("within the burst");
    }
    let error = api
        .create_store(with_token(ALICE, create("three")))
        .await
        .expect_err("over the rate");
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.message().contains("acme"), "{error:?}");
    assert_eq!(provisioner.calls.load(Ordering::SeqCst), 2);

    let mut large = create("large");
    large.display_name = "x".repeat(2048);
    let error = api
        .get_store(with_token(
            ALICE,
            GetStoreRequest {
                store_id: "y".repeat(2048),
            },
        ))
        .await
        .expect_err("too large");
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.message().contains("1024 bytes"), "{error:?}");

    *provisioner.get_delay.lock().expect("lock") = Duration::from_secs(2);
    let error = api
        .get_store(with_token(
            ALICE,
            GetStoreRequest {
                store_id: "slow".into(),
            },
        ))
        .await
        .expect_err("too slow");
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");

    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::with_prefix("store_platform");
    metrics.register(&mut registry);
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for expected in [
        r#"store_platform_gateway_calls_total{service="store_platform.v1.ProvisionerService",method="CreateStore",code="OK"} 2"#,
        r#"store_platform_gateway_calls_total{service="store_platform.v1.ProvisionerService",method="CreateStore",code="RESOURCE_EXHAUSTED"} 1"#,
        r#"store_platform_gateway_calls_total{service="store_platform.v1.ProvisionerService",method="GetStore",code="DEADLINE_EXCEEDED"} 1"#,
        r#"store_platform_gateway_unary_call_duration_seconds_count{service="store_platform.v1.ProvisionerService",method="CreateStore"} 3"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

#[tokio::test]
async fn open_streams_are_counted_while_open() {
    let web = dashboard();
    let status = StatusBackend::default();
    let (backend, _task) = serve_backends(None, Provisioner::default(), status.clone()).await;
    let (app, metrics) = router(web.path(), backend, Settings::default()).await;
    let gateway = serve(app).await;
    let mut watch = StatusServiceClient::new(grpc_channel(gateway).await);
    let gauge = || {
        metrics
            .open_streams
            .get_or_create(&store_platform_gateway::metrics::MethodLabels {
                service: "store_platform.v1.StatusService".into(),
                method: "WatchStores".into(),
            })
            .get()
    };
    let mut stream = watch
        .watch_stores(with_token(ALICE, WatchStoresRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    status.push(heartbeat(1)).await;
    stream.message().await.expect("message").expect("open");
    assert_eq!(gauge(), 1);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge() != 0 {
        assert!(
            Instant::now() < deadline,
            "the closed stream is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One gRPC call over a bare HTTP/2 connection, seen frame by frame: the response headers, whether they ended the
/// stream, the data frames, and the trailers.
struct Framed {
    headers: http::HeaderMap,
    ended_with_headers: bool,
    data_frames: Vec<bytes::Bytes>,
    trailers: Option<http::HeaderMap>,
}

async fn call_framed(
    gateway: std::net::SocketAddr,
    path: &'static str,
    message: Vec<u8>,
) -> Framed {
    let tcp = tokio::net::TcpStream::connect(gateway)
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!("http://{gateway}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {ALICE}"))
        .body(())
        .expect("request");
    let (response, mut send) = client.send_request(request, false).expect("send");
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("len").to_be_bytes());
    framed.extend_from_slice(&message);
    send.send_data(framed.into(), true).expect("data");
    let response = response.await.expect("response");
    let (parts, mut body) = response.into_parts();
    let ended_with_headers = body.is_end_stream();
    let mut data_frames = Vec::new();
    while let Some(data) = body.data().await {
        let data = data.expect("data frame");
        let _ = body.flow_control().release_capacity(data.len());
        data_frames.push(data);
    }
    let trailers = body.trailers().await.expect("trailers");
    Framed {
        headers: parts.headers,
        ended_with_headers,
        data_frames,
        trailers,
    }
}

#[tokio::test]
async fn an_error_stays_trailers_only_and_every_other_response_ends_with_trailers() {
    use prost::Message as _;
    let web = dashboard();
    let status = StatusBackend::default();
    let (backend, _task) = serve_backends(None, Provisioner::default(), status.clone()).await;
    let gateway = serve(router(web.path(), backend, Settings::default()).await.0).await;

    // The backend's error is one HEADERS frame that ends the stream: no DATA frame follows it (gRPC's C core and
    // grpc-go refuse one).
    let missing = GetStoreRequest {
        store_id: "missing".into(),
    }
    .encode_to_vec();
    let error = call_framed(
        gateway,
        "/store_platform.v1.ProvisionerService/GetStore",
        missing,
    )
    .await;
    assert!(error.ended_with_headers, "headers: {:?}", error.headers);
    assert_eq!(error.headers["grpc-status"], "5");
    assert!(error.data_frames.is_empty() && error.trailers.is_none());
    // So is the gateway's own refusal (no token counts as one, here an unknown method).
    let unknown = call_framed(
        gateway,
        "/store_platform.v1.ProvisionerService/Nope",
        Vec::new(),
    )
    .await;
    assert!(unknown.ended_with_headers);
    assert_eq!(unknown.headers["grpc-status"], "12");

    // A success: headers, the message, then the status in trailers.
    let found = call_framed(
        gateway,
        "/store_platform.v1.ProvisionerService/GetStore",
        GetStoreRequest {
            store_id: "shoes".into(),
        }
        .encode_to_vec(),
    )
    .await;
    assert!(!found.ended_with_headers);
    assert!(!found.headers.contains_key("grpc-status"));
    assert!(!found.data_frames.is_empty());
    assert_eq!(found.trailers.expect("trailers")["grpc-status"], "0");

    // A stream that ends with an error after messages: the error comes in trailers.
    let watch = tokio::spawn(call_framed(
        gateway,
        "/store_platform.v1.StatusService/WatchStores",
        WatchStoresRequest::default().encode_to_vec(),
    ));
    while status.open() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    status.push(heartbeat(1)).await;
    status.push(heartbeat(2)).await;
    status
        .fail(tonic::Status::resource_exhausted("too many watchers"))
        .await;
    let watched = watch.await.expect("watch");
    assert!(!watched.ended_with_headers);
    assert!(watched.data_frames.iter().map(|d| d.len()).sum::<usize>() > 0);
    let trailers = watched.trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "8");
    assert_eq!(trailers["grpc-message"], "too%20many%20watchers");
}
