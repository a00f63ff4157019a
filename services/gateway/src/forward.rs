//! The generic forwarder: every method of the platform's services goes to its backend over one gRPC channel per
//! backend, with no code per RPC. On the way it authenticates the caller, sets the caller's tenant for the backend,
//! enforces the per-tenant rate limit, the unary timeout and the request size, and records metrics and the audit
//! log.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version, header};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt as _, Full, Limited};
use store_platform_proto::{ALL_TENANTS, SCOPE_METADATA_KEY, TENANT_METADATA_KEY};
use tonic::{Code, Status, body::Body, transport::Channel};
use tower::ServiceExt as _;

use crate::{
    auth::{Authenticator, BackendToken, CSRF_HEADER, Identity},
    limit::RateLimiter,
    methods::{Method, Methods},
    metrics::{CallLabels, MethodLabels, Metrics},
};

/// One backend service and the channel to it.
#[derive(Clone, Debug)]
pub struct Backend {
    /// A short name for messages and logs ("provisioner", "status").
    pub name: &'static str,
    pub channel: Channel,
}

/// What the forwarder needs.
#[derive(Debug)]
pub struct Config {
    /// The backend of each fully qualified service name.
    pub backends: HashMap<String, Backend>,
    pub auth: Authenticator,
    /// The gateway's own credentials towards the backends.
    pub backend_token: BackendToken,
    pub limiter: RateLimiter,
    pub metrics: Arc<Metrics>,
    pub unary_timeout: Duration,
    pub max_request_bytes: usize,
}

/// The forwarding service (a `tower::Service` for gRPC requests); cheap to clone.
#[derive(Clone, Debug)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    methods: Methods,
    config: Config,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl tower::Service<Request<Body>> for Forwarder {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> ResponseFuture {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(request).await) })
    }
}

impl Forwarder {
    pub fn new(config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                methods: Methods::from_contracts(),
                config,
            }),
        }
    }

    /// Who may call.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.config.auth
    }

    /// The services it forwards.
    pub fn services(&self) -> Vec<String> {
        self.inner.methods.services()
    }
}

/// A gRPC status as a complete (trailers-only) response.
pub fn status_response(status: Status) -> Response<Body> {
    status.into_http()
}

/// The name of a gRPC code as the specification spells it, for metrics and the audit log.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
        .map(Code::from_i32)
}

/// The message in a buffered unary gRPC request body (one uncompressed length-prefixed message).
fn only_message(body: &[u8]) -> Option<&[u8]> {
    let (&compressed, rest) = body.split_first()?;
    let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    (compressed == 0).then(|| rest.get(4..4 + length)).flatten()
}

fn deadline_exceeded(backend: &str, timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the {backend} service did not answer within {timeout:?}"
    ))
}

/// Whether `error` or one of its sources is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<E>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// One call's record, written once when the call ends however it ends: the metrics and the audit line.
#[derive(Debug)]
struct Outcome {
    inner: Arc<Inner>,
    method: Method,
    identity: Option<Identity>,
    store_id: Option<String>,
    started: Instant,
    stream_open: bool,
}

impl Outcome {
    fn method_labels(&self) -> MethodLabels {
        MethodLabels {
            service: self.method.service.clone(),
            method: self.method.name.clone(),
        }
    }

    fn finish(self, code: Code) {
        let metrics = &self.inner.config.metrics;
        metrics
            .calls
            .get_or_create(&CallLabels {
                service: self.method.service.clone(),
                method: self.method.name.clone(),
                code: code_name(code).to_owned(),
            })
            .inc();
        if self.method.server_streaming {
            if self.stream_open {
                metrics
                    .open_streams
                    .get_or_create(&self.method_labels())
                    .dec();
            }
        } else {
            metrics
                .latency
                .get_or_create(&self.method_labels())
                .observe(self.started.elapsed().as_secs_f64());
        }
        if self.method.is_audited() {
            let (who, email, tenant, role) = match &self.identity {
                Some(identity) => (
                    identity.name.as_str(),
                    identity.email.as_deref().unwrap_or(""),
                    identity.tenant.as_str(),
                    identity.role.as_str(),
                ),
                None => ("unauthenticated", "", "", ""),
            };
            tracing::info!(
                target: "audit",
                who,
                email,
                tenant,
                role,
                method = %self.method.name,
                store = self.store_id.as_deref().unwrap_or(""),
                result = code_name(code),
                "audit"
            );
        }
    }
}

impl Inner {
    async fn forward(self: Arc<Self>, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let Some(method) = self.methods.get(&path).cloned() else {
            return status_response(Status::unimplemented(format!(
                "the gateway does not route {path}"
            )));
        };
        let mut outcome = Outcome {
            inner: self.clone(),
            method,
            identity: None,
            store_id: None,
            started: Instant::now(),
            stream_open: false,
        };
        match self.prepare(request, &mut outcome).await {
            Ok(request) => self.send(request, outcome).await,
            Err(status) => {
                outcome.finish(status.code());
                status_response(status)
            }
        }
    }

    /// Authenticates, rewrites the caller's metadata, reads the request and applies the limits.
    async fn prepare(
        &self,
        request: Request<Body>,
        outcome: &mut Outcome,
    ) -> Result<Request<Body>, Status> {
        let config = &self.config;
        let identity = config
            .auth
            .authenticate(request.headers())
            .await
            .map_err(|error| error.status())?;
        outcome.identity = Some(identity.clone());
        let method = outcome.method.clone();
        let needed = method.required_role();
        if identity.role < needed {
            return Err(Status::permission_denied(format!(
                "{} needs the {needed} role; {} has the {} role in tenant {:?}",
                method.name, identity.name, identity.role, identity.tenant
            )));
        }

        let (mut parts, body) = request.into_parts();
        let headers = &mut parts.headers;
        // The backend learns who is calling from the gateway alone: credentials stay here, and whatever platform
        // metadata the client sent is replaced.
        for name in [
            header::AUTHORIZATION,
            header::COOKIE,
            header::HOST,
            header::CONTENT_LENGTH,
        ] {
            headers.remove(name);
        }
        let ours: Vec<_> = headers
            .keys()
            .filter(|name| {
                name.as_str().starts_with("x-store-platform-") || name.as_str() == CSRF_HEADER
            })
            .cloned()
            .collect();
        for name in ours {
            headers.remove(name);
        }
        headers.insert(
            TENANT_METADATA_KEY,
            HeaderValue::from_str(&identity.tenant)
                .map_err(|_| Status::internal("the token's tenant is not a header value"))?,
        );
        if identity.is_admin() {
            headers.insert(SCOPE_METADATA_KEY, HeaderValue::from_static(ALL_TENANTS));
        }
        headers.insert(header::AUTHORIZATION, config.backend_token.header());

        let max = config.max_request_bytes;
        let body = if method.client_streaming {
            Body::new(
                Limited::new(body, max)
                    .map_err(|error| Status::resource_exhausted(error.to_string())),
            )
        } else {
            // One request message: read it whole, so its size is checked before the backend sees it and the audit
            // log can name the store.
            let bytes = Limited::new(body, max)
                .collect()
                .await
                .map_err(|error| {
                    if error.is::<http_body_util::LengthLimitError>() {
                        Status::resource_exhausted(format!(
                            "the request is larger than {max} bytes"
                        ))
                    } else {
                        Status::cancelled(format!("the request could not be read: {error}"))
                    }
                })?
                .to_bytes();
            if method.is_audited() {
                outcome.store_id = only_message(&bytes).and_then(|m| method.store_id(m));
            }
            Body::new(Full::new(bytes).map_err(|never: Infallible| match never {}))
        };

        if method.is_rate_limited()
            && let Err(wait) = config.limiter.check(&identity.tenant, Instant::now())
        {
            return Err(Status::resource_exhausted(format!(
                "tenant {:?} creates and deletes stores faster than allowed; try again in {} s",
                identity.tenant,
                wait.as_secs().max(1)
            )));
        }
        if !method.server_streaming {
            let millis = config.unary_timeout.as_millis().min(99_999_999);
            headers.insert(
                "grpc-timeout",
                HeaderValue::from_str(&format!("{millis}m")).expect("digits"),
            );
        }
        parts.version = Version::HTTP_2;
        Ok(Request::from_parts(parts, body))
    }

    async fn send(&self, request: Request<Body>, mut outcome: Outcome) -> Response<Body> {
        let Some(backend) = self.config.backends.get(&outcome.method.service) else {
            let status = Status::unimplemented(format!(
                "the gateway has no backend for {}",
                outcome.method.service
            ));
            outcome.finish(status.code());
            return status_response(status);
        };
        // The channel enforces the grpc-timeout set on unary calls; streams have none.
        let result = backend.channel.clone().oneshot(request).await;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                let status = if caused_by::<tonic::TimeoutExpired>(&error) {
                    deadline_exceeded(backend.name, self.config.unary_timeout)
                } else {
                    tracing::warn!(backend = backend.name, %error, "backend unavailable");
                    Status::unavailable(format!(
                        "the {} service is unavailable: {error}",
                        backend.name
                    ))
                };
                outcome.finish(status.code());
                return status_response(status);
            }
        };
        // A trailers-only response (the status in the headers, nothing after): it stays one HEADERS frame that
        // ends the stream. Passing its empty body on would add an empty DATA frame after it, which the gRPC
        // specification does not allow and strict clients (gRPC's C core, grpc-go) reject.
        if let Some(code) = grpc_status(response.headers()) {
            outcome.finish(code);
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
        if outcome.method.server_streaming {
            self.config
                .metrics
                .open_streams
                .get_or_create(&outcome.method_labels())
                .inc();
            outcome.stream_open = true;
        }
        response.map(|body| {
            Body::new(Observed {
                inner: body,
                outcome: Some(outcome),
                ended: false,
            })
        })
    }
}

/// A backend's response body, passed through frame by frame (no buffering, so streams flow as they are sent),
/// that records the call's outcome when it ends. It always ends with a trailers frame carrying the status: a
/// backend that breaks off mid-stream, or ends without a status, ends the call with UNAVAILABLE or UNKNOWN trailers
/// rather than a broken or status-less HTTP stream. Its size is unknown, which gRPC-web text needs.
#[derive(Debug)]
struct Observed {
    inner: Body,
    outcome: Option<Outcome>,
    /// The trailers went out (the backend's, or the gateway's in their place): nothing more follows.
    ended: bool,
}

impl Observed {
    fn finish(&mut self, code: Code) {
        if let Some(outcome) = self.outcome.take() {
            outcome.finish(code);
        }
    }

    /// The gateway's own closing trailers, in place of the backend's.
    fn close_with(&mut self, status: &Status) -> Frame<Bytes> {
        self.ended = true;
        self.finish(status.code());
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from(status.code() as i32));
        if let Ok(message) = HeaderValue::from_str(&percent_safe(status.message())) {
            trailers.insert("grpc-message", message);
        }
        Frame::trailers(trailers)
    }
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers).unwrap_or(Code::Unknown);
                    self.ended = true;
                    self.finish(code);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                tracing::warn!(%error, "a backend response broke off");
                let status =
                    Status::unavailable(format!("the backend broke off: {}", error.message()));
                Poll::Ready(Some(Ok(self.close_with(&status))))
            }
            Poll::Ready(None) => {
                tracing::warn!("a backend response ended without a status");
                let status = Status::unknown("the backend ended the call without a status");
                Poll::Ready(Some(Ok(self.close_with(&status))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // The client went away before the end.
        self.finish(Code::Cancelled);
    }
}

/// `message` with only the characters a grpc-message header may carry unescaped.
fn percent_safe(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if (' '..='~').contains(&c) && c != '%' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A body whose size is unknown. tonic-web passes on the size of the body it encodes, which is wrong for
/// `grpc-web-text` (base64 is longer): an HTTP/1.1 server would then cut the response short.
#[derive(Debug)]
pub struct UnknownSize<B>(pub B);

impl<B: http_body::Body + Unpin> http_body::Body for UnknownSize<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_of_a_unary_request_body_is_found_by_its_prefix() {
        let mut body = vec![0, 0, 0, 0, 3];
        body.extend_from_slice(b"abc");
        assert_eq!(only_message(&body), Some(&b"abc"[..]));
        body[0] = 1; // compressed: not read
        assert_eq!(only_message(&body), None);
        assert_eq!(only_message(&[0, 0, 0, 0, 9, 1]), None);
        assert_eq!(only_message(&[]), None);
    }

    #[test]
    fn codes_have_their_specification_names() {
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::from_i32(99)), "UNKNOWN");
    }
}
