//! What the gateway costs: the same unary call directly to the provisioner (gRPC) and through the gateway (native
//! gRPC passed through, and gRPC-web over HTTP/1.1), with the same client library in the same run; throughput with
//! 64 concurrent callers; and the gateway's memory with 1,000 WatchStores streams held open through it. Then what
//! the backends' caller check costs: one remembered token check, timed in process, and the TokenReviews the
//! provisioner and the status service sent to the API server during the whole load.
//!
//!     make bench-gateway
//!     make bench-gateway BENCH_GATEWAY_ARGS="--calls 2000 --streams 200"
//!
//! On a control plane of its own, the release `provisioner`, `status` and `gateway` binaries run as processes.
//! The call is ListStores (answered from the provisioner's watch cache, so the API server is not in the path).
//! Latency is measured in interleaved rounds (direct, gateway gRPC, gateway gRPC-web, repeated), so drift on a busy
//! machine hits the three alike.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use store_platform_proto::{
    TENANT_METADATA_KEY,
    v1::{
        ListStoresRequest, WatchStoresRequest,
        provisioner_service_client::ProvisionerServiceClient,
        status_service_client::StatusServiceClient,
    },
};
use store_platform_test_support::{
    Assets, ControlPlane, TestEnv, caller,
    measure::{arg, percentile, process_usage, release_bin_dir},
    process::{ServiceProcess, free_port, http_get, tokens_file},
};
use tonic::{Request, transport::Channel};

const TOKEN: &str = "bench-token";

/// The direct caller's ServiceAccount token (the control plane's test caller).
static DIRECT_TOKEN: OnceLock<String> = OnceLock::new();

/// A ListStores request as each path needs it: a ServiceAccount token and the tenant directly, the API token
/// through the gateway.
fn request(direct: bool) -> Request<ListStoresRequest> {
    let mut request = Request::new(ListStoresRequest {
        page_size: 10,
        ..ListStoresRequest::default()
    });
    let metadata = request.metadata_mut();
    let token = if direct {
        metadata.insert(TENANT_METADATA_KEY, "bench".parse().expect("ascii"));
        DIRECT_TOKEN.get().expect("the direct caller's token")
    } else {
        TOKEN
    };
    metadata.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

/// The sum of `token_reviews_total` on a service's metrics endpoint.
async fn token_reviews(metrics: std::net::SocketAddr) -> anyhow::Result<f64> {
    let text = http_get(metrics, "/metrics").await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("store_platform_token_reviews_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// The p50 of one remembered caller check (token hash, cache lookup, policy), in process against `plane`.
async fn cached_check(plane: &ControlPlane, checks: usize) -> anyhow::Result<(Duration, Duration)> {
    use store_platform_runtime::auth::{Authenticator, Policy, token_reviewer};
    let audience = store_platform_proto::TOKEN_AUDIENCE;
    let policy = Policy::parse(&std::fs::read_to_string(
        plane.dir().join(caller::POLICY_FILE),
    )?)?;
    let auth = Authenticator::new(
        token_reviewer(plane.client().await?, audience.to_owned()),
        audience,
        Duration::from_secs(3600),
        policy,
    );
    let mut metadata = tonic::metadata::MetadataMap::new();
    let token = DIRECT_TOKEN.get().expect("the direct caller's token");
    metadata.insert("authorization", format!("Bearer {token}").parse()?);
    metadata.insert(TENANT_METADATA_KEY, "bench".parse()?);
    // The warm-up is the one TokenReview.
    timed(checks, || async {
        std::hint::black_box(auth.caller(&metadata, "ListStores").await?);
        Ok(())
    })
    .await
}

/// The p50 and p99 of `check`, run `times` times after one warm-up.
async fn timed<F, Fut>(times: usize, mut check: F) -> anyhow::Result<(Duration, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    check().await?;
    let mut all = Vec::with_capacity(times);
    for _ in 0..times {
        let start = Instant::now();
        check().await?;
        all.push(start.elapsed());
    }
    all.sort();
    Ok((percentile(&all, 0.5), percentile(&all, 0.99)))
}

/// What the gateway's check of a person's session (cookie and CSRF token) and of a machine's JWT (signature with the
/// provider's cached keys, claims, mapping) cost, in process: a real OpenID provider (tools/oidc/provider.mjs) signs
/// the JWT, and the session is a Secret on `plane`, as the gateway keeps it.
async fn sign_in_checks(
    plane: &ControlPlane,
    checks: usize,
) -> anyhow::Result<[(Duration, Duration); 3]> {
    use store_platform_gateway::auth::{
        Authenticator, Identity, Role, SessionAuth, Tokens,
        oidc::{self, http::Http, mapping::Mapping},
        sessions::{Session, Sessions},
    };
    use store_platform_test_support::oidc::OidcProvider;
    let keys = tempfile::tempdir()?;
    let idp = OidcProvider::start(&serde_json::json!({
        "port": 0,
        "keys_file": keys.path().join("keys.json"),
        "clients": [{"client_id": "bench", "client_secret": "bench-secret",
                     "grant_types": ["client_credentials"], "redirect_uris": [], "response_types": [],
                     "tenant": "bench", "groups": ["owners"]}],
        "resources": {"urn:bench": "store-platform"},
    }));
    let token = idp
        .client_credentials("bench", "bench-secret", "urn:bench")
        .await
        .map_err(|answer| anyhow::anyhow!("no token: {}", answer.body))?;
    let provider = oidc::Provider::new(
        oidc::Config {
            issuer: idp.issuer.clone(),
            client_id: "dashboard".into(),
            audiences: vec!["store-platform".into()],
            mapping: Mapping {
                tenant_claim: Some("tenant".into()),
                groups_claim: "groups".into(),
                owner_groups: vec!["owners".into()],
                admin_tenant: "platform".into(),
                email_claim: "email".into(),
                ..Mapping::default()
            },
            skew: Duration::from_secs(60),
            jwks_min_refresh: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(3600),
        },
        Http::new(None, Duration::from_secs(5))?,
    );
    let shutdown = store_platform_runtime::Shutdown::new();
    let client = plane.client().await?;
    let namespace = "bench-sessions";
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?,
        )
        .await?;
    let sessions = Sessions::start(client, namespace, shutdown.clone(), Default::default());
    let csrf = "bench-csrf-token-0123456789abcdefghijklmnopq";
    let cookie = sessions
        .create(Session {
            identity: Identity {
                name: "bench-person".into(),
                email: Some("person@example.test".into()),
                tenant: "bench".into(),
                role: Role::Owner,
            },
            csrf: csrf.into(),
            expires: i64::MAX / 2,
            ends: i64::MAX / 2,
            refresh_token: None,
            id_token: None,
        })
        .await?;
    let auth = Authenticator::new(Tokens::default())
        .with_provider(provider.clone())
        .with_sessions(std::sync::Arc::new(SessionAuth::new(
            sessions,
            provider,
            None,
            "store_platform_session".into(),
        )));
    let mut by_session = http::HeaderMap::new();
    by_session.insert(
        "cookie",
        format!("store_platform_session={cookie}").parse()?,
    );
    by_session.insert("x-csrf-token", csrf.parse()?);
    let mut by_jwt = http::HeaderMap::new();
    by_jwt.insert("authorization", format!("Bearer {token}").parse()?);
    let session = timed(checks, || async {
        std::hint::black_box(auth.authenticate(&by_session).await?);
        Ok(())
    })
    .await?;
    let jwt = timed(checks, || async {
        std::hint::black_box(auth.authenticate(&by_jwt).await?);
        Ok(())
    })
    .await?;
    // A token seen for the first time: the signature, the claims and the mapping, every time.
    let audiences = ["store-platform".to_owned()];
    let provider = auth.provider().expect("the provider").clone();
    let first = timed(checks, || async {
        let claims = provider.verify(&token, &audiences).await?;
        std::hint::black_box(provider.config.mapping.identity(&claims)?);
        Ok(())
    })
    .await?;
    shutdown.trigger();
    Ok([session, jwt, first])
}

type GrpcWebService = tonic_web::GrpcWebClientService<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        tonic_web::GrpcWebCall<tonic::body::Body>,
    >,
>;

fn grpc_web(origin: &str) -> ProvisionerServiceClient<GrpcWebService> {
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let service = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http1);
    ProvisionerServiceClient::with_origin(service, origin.parse().expect("uri"))
}

#[derive(Clone)]
enum Path {
    Direct(ProvisionerServiceClient<Channel>),
    Gateway(ProvisionerServiceClient<Channel>),
    GrpcWeb(Box<ProvisionerServiceClient<GrpcWebService>>),
}

impl Path {
    fn label(&self) -> &'static str {
        match self {
            Path::Direct(_) => "direct to the provisioner (gRPC)",
            Path::Gateway(_) => "through the gateway (gRPC)",
            Path::GrpcWeb(_) => "through the gateway (gRPC-web)",
        }
    }

    async fn call(&mut self) -> anyhow::Result<()> {
        match self {
            Path::Direct(client) => client.list_stores(request(true)).await?,
            Path::Gateway(client) => client.list_stores(request(false)).await?,
            Path::GrpcWeb(client) => client.list_stores(request(false)).await?,
        };
        Ok(())
    }
}

async fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(addr.to_owned())?.connect().await?)
}

fn main() -> anyhow::Result<()> {
    let calls = arg("--calls", 3000);
    let streams = arg("--streams", 1000);
    // Shorter than the services' default (30 s), so the load spans several cache periods.
    let ttl_secs = arg("--token-cache-secs", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let assets = Assets::locate()?;
        let bin_dir = release_bin_dir();
        let dir = std::env::temp_dir().join(format!("store-platform-bench-gateway-{}", std::process::id()));
        let plane = ControlPlane::start(&assets, dir).await?;
        let kubeconfig = plane.kubeconfig_path().display().to_string();
        DIRECT_TOKEN.get_or_init(|| TestEnv::in_dir(plane.dir()).caller_token());
        let logs = tempfile::tempdir()?;
        let (provisioner_port, status_port, gateway_port) = (free_port(), free_port(), free_port());
        let (provisioner_metrics, status_metrics) = (free_port(), free_port());
        let ttl = format!("{ttl_secs}s");
        let mut provisioner = ServiceProcess::start_from(
            &bin_dir,
            "provisioner",
            &[
                ("KUBECONFIG", kubeconfig.clone()),
                ("GRPC_ADDR", format!("127.0.0.1:{provisioner_port}")),
                ("METRICS_ADDR", format!("127.0.0.1:{provisioner_metrics}")),
                ("TOKEN_CACHE_TTL", ttl.to_owned()),
                ("LOG_FILTER", "warn".to_owned()),
            ],
            logs.path(),
        );
        let mut status = ServiceProcess::start_from(
            &bin_dir,
            "status",
            &[
                ("KUBECONFIG", kubeconfig.clone()),
                ("GRPC_ADDR", format!("127.0.0.1:{status_port}")),
                ("METRICS_ADDR", format!("127.0.0.1:{status_metrics}")),
                ("TOKEN_CACHE_TTL", ttl.to_owned()),
                ("LOG_FILTER", "warn".to_owned()),
            ],
            logs.path(),
        );
        let tokens = tokens_file(logs.path(), "bench", "bench", TOKEN, false);
        let web_root = logs.path().join("web");
        std::fs::create_dir(&web_root)?;
        std::fs::write(web_root.join("index.html"), "<!doctype html>")?;
        let mut gateway = ServiceProcess::start_from(
            &bin_dir,
            "gateway",
            &[
                ("HTTP_ADDR", format!("127.0.0.1:{gateway_port}")),
                ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
                ("WEB_ROOT", web_root.display().to_string()),
                ("TOKENS_FILE", tokens.display().to_string()),
                // The gateway's ServiceAccount token: here the control plane's test caller's.
                ("KUBECONFIG", kubeconfig),
                ("PROVISIONER_URL", format!("http://127.0.0.1:{provisioner_port}")),
                ("STATUS_URL", format!("http://127.0.0.1:{status_port}")),
                ("LOG_FILTER", "warn".to_owned()),
            ],
            logs.path(),
        );
        provisioner.channel(provisioner_port).await;
        status.channel(status_port).await;
        gateway.channel(gateway_port).await;
        let load_started = Instant::now();
        let reviews_before = token_reviews(([127, 0, 0, 1], provisioner_metrics).into()).await?
            + token_reviews(([127, 0, 0, 1], status_metrics).into()).await?;
        let gateway_url = format!("http://127.0.0.1:{gateway_port}");
        let paths = [
            Path::Direct(ProvisionerServiceClient::new(
                channel(&format!("http://127.0.0.1:{provisioner_port}")).await?,
            )),
            Path::Gateway(ProvisionerServiceClient::new(channel(&gateway_url).await?)),
            Path::GrpcWeb(Box::new(grpc_web(&gateway_url))),
        ];
        println!(
            "gateway benchmark: ListStores, {calls} sequential calls per path, Kubernetes v1.20.2 on loopback"
        );

        // Warm every path (connections, caches), then interleaved rounds.
        for path in &paths {
            for _ in 0..200 {
                path.clone().call().await?;
            }
        }
        let rounds = 10;
        let mut latencies: Vec<Vec<Duration>> = vec![Vec::with_capacity(calls); paths.len()];
        for _ in 0..rounds {
            for (i, path) in paths.iter().enumerate() {
                let mut path = path.clone();
                for _ in 0..calls / rounds {
                    let start = Instant::now();
                    path.call().await?;
                    latencies[i].push(start.elapsed());
                }
            }
        }
        let mut medians = Vec::new();
        for (path, values) in paths.iter().zip(&mut latencies) {
            values.sort();
            let (p50, p99) = (percentile(values, 0.5), percentile(values, 0.99));
            medians.push((p50, p99));
            println!("  {:<36} p50 {:>8.1?}  p99 {:>8.1?}", path.label(), p50, p99);
        }
        let (direct50, direct99) = medians[0];
        for (path, (p50, p99)) in paths.iter().zip(&medians).skip(1) {
            println!(
                "  {:<36} adds {:>6.1} µs at p50 ({:.2}x), {:>6.1} µs at p99 ({:.2}x)",
                path.label(),
                (p50.as_secs_f64() - direct50.as_secs_f64()) * 1e6,
                p50.as_secs_f64() / direct50.as_secs_f64(),
                (p99.as_secs_f64() - direct99.as_secs_f64()) * 1e6,
                p99.as_secs_f64() / direct99.as_secs_f64(),
            );
        }

        println!("throughput, 64 concurrent callers for 5 s:");
        for path in &paths {
            let deadline = Instant::now() + Duration::from_secs(5);
            let callers = (0..64).map(|_| {
                let mut path = path.clone();
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        if path.call().await.is_ok() {
                            done += 1;
                        }
                    }
                    done
                })
            });
            let mut total = 0;
            for caller in futures::future::join_all(callers).await {
                total += caller?;
            }
            println!("  {:<36} {:>8.0} calls/s", path.label(), total as f64 / 5.0);
        }

        // Streams held open through the gateway, as browsers hold them: gRPC-web, one HTTP/1.1 connection each.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = process_usage(gateway.pid());
        let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
        let service = tower::ServiceBuilder::new()
            .layer(tonic_web::GrpcWebClientLayer::new())
            .service(http1);
        let mut open = Vec::with_capacity(streams);
        for _ in 0..streams {
            let mut client = StatusServiceClient::with_origin(service.clone(), gateway_url.parse()?);
            let mut request = Request::new(WatchStoresRequest::default());
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {TOKEN}").parse()?);
            let mut stream = client.watch_stores(request).await?.into_inner();
            stream.message().await?; // the snapshot: the stream is open end to end
            open.push(stream);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let held = process_usage(gateway.pid());
        println!(
            "{streams} WatchStores streams held open through the gateway (gRPC-web, a connection each): gateway RSS \
             {:.1} MiB before, {:.1} MiB with them: {:.1} MiB more ({:.1} KiB per stream); gateway CPU so far {:.2} s",
            before.rss_kib as f64 / 1024.0,
            held.rss_kib as f64 / 1024.0,
            held.rss_kib.saturating_sub(before.rss_kib) as f64 / 1024.0,
            held.rss_kib.saturating_sub(before.rss_kib) as f64 / streams as f64,
            held.cpu_seconds,
        );
        drop(open);
        let reviews = token_reviews(([127, 0, 0, 1], provisioner_metrics).into()).await?
            + token_reviews(([127, 0, 0, 1], status_metrics).into()).await?
            - reviews_before;
        let minutes = load_started.elapsed().as_secs_f64() / 60.0;
        // Each token is reviewed by each service that sees it: the direct caller's by the provisioner, the gateway's
        // by both.
        let bound = 3.0 * (minutes * 60.0 / ttl_secs as f64).ceil();
        println!(
            "caller checks: {reviews:.0} TokenReviews from the provisioner and the status service in {minutes:.1} \
             min of the load above ({:.1} per minute; at most {bound:.0} if each token is reviewed once per \
             service and cache period of {ttl})",
            reviews / minutes
        );
        let (check50, check99) = cached_check(&plane, 100_000).await?;
        println!(
            "  one remembered caller check (SHA-256 of the token, cache, policy), in process: p50 {:.1} µs, p99 \
             {:.1} µs",
            check50.as_secs_f64() * 1e6,
            check99.as_secs_f64() * 1e6
        );
        let [session, jwt, first] = sign_in_checks(&plane, 20_000).await?;
        for (what, (p50, p99)) in [
            ("a person's session check (cookie, CSRF token; sessions in memory)", session),
            ("a machine's JWT check (a token it sent before, remembered until it expires)", jwt),
            ("a machine's JWT check, first call (RS256, cached keys, claims, roles)", first),
        ] {
            println!(
                "  {what}, in process: p50 {:.1} µs, p99 {:.1} µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
        drop(gateway);
        drop(status);
        drop(provisioner);
        drop(plane);
        anyhow::Ok(())
    })
}
