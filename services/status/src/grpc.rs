//! The StatusService gRPC API: a tenant's stores as a live stream, and one store's status.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use store_platform_proto::v1::{
    GetStoreStatusRequest, GetStoreStatusResponse, Heartbeat, StoreChange, StoresSnapshot,
    WatchStoresRequest, WatchStoresResponse, status_service_server::StatusService,
    watch_stores_response::Event,
};
use store_platform_runtime::{Shutdown, auth::Authenticator, record::timestamp};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status as GrpcStatus};

use crate::hub::{Filter, Hub};

/// The StatusService implementation.
#[derive(Clone, Debug)]
pub struct Status {
    hub: Arc<Hub>,
    auth: Authenticator,
    heartbeat: Duration,
    shutdown: Shutdown,
}

impl Status {
    pub fn new(
        hub: Arc<Hub>,
        auth: Authenticator,
        heartbeat: Duration,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            hub,
            auth,
            heartbeat,
            shutdown,
        }
    }
}

fn store_id(id: &str) -> Result<Option<String>, GrpcStatus> {
    if id.is_empty() {
        return Ok(None);
    }
    let valid = (3..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if valid {
        Ok(Some(id.to_owned()))
    } else {
        Err(GrpcStatus::invalid_argument(
            "store_id: must be a store id (a DNS label of 3 to 40 characters)",
        ))
    }
}

fn now() -> Option<prost_types::Timestamp> {
    Some(timestamp(jiff::Timestamp::now()))
}

fn snapshot(stores: Vec<store_platform_proto::v1::Store>) -> WatchStoresResponse {
    WatchStoresResponse {
        event: Some(Event::Snapshot(StoresSnapshot {
            stores,
            time: now(),
        })),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchStoresResponse, GrpcStatus>> + Send>>;

/// When the caller's deadline passes, if it set one.
async fn passed(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a subscription carries from one message to the next.
struct Subscriber {
    hub: Arc<Hub>,
    filter: Filter,
    receiver: tokio::sync::broadcast::Receiver<Arc<crate::index::Change>>,
    ticker: tokio::time::Interval,
    shutdown: Shutdown,
    /// The caller's deadline, and how long it was.
    deadline: Option<(tokio::time::Instant, Duration)>,
    first: Option<WatchStoresResponse>,
    ended: bool,
}

/// The stream one subscriber reads: a snapshot, then its changes; a heartbeat when idle; a fresh snapshot if it
/// fell too far behind; DEADLINE_EXCEEDED when the caller's deadline passes (tonic enforces it only until the
/// response starts); the end at shutdown.
fn subscription(
    hub: Arc<Hub>,
    filter: Filter,
    heartbeat: Duration,
    shutdown: Shutdown,
    deadline: Option<Duration>,
) -> WatchStream {
    let (stores, receiver) = hub.subscribe(&filter);
    hub.metrics.sent("snapshot");
    let first = snapshot(stores);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Subscriber {
        hub,
        filter,
        receiver,
        ticker,
        shutdown,
        deadline: deadline.map(|after| (tokio::time::Instant::now() + after, after)),
        first: Some(first),
        ended: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        if let Some(first) = state.first.take() {
            return Some((Ok(first), state));
        }
        loop {
            let message = tokio::select! {
                () = state.shutdown.wait() => return None,
                () = passed(state.deadline.map(|(at, _)| at)) => {
                    state.ended = true;
                    let after = state.deadline.map(|(_, after)| after).unwrap_or_default();
                    let status = GrpcStatus::deadline_exceeded(format!(
                        "the call's deadline ({after:?}) passed"
                    ));
                    return Some((Err(status), state));
                }
                _ = state.ticker.tick() => {
                    state.hub.metrics.sent("heartbeat");
                    WatchStoresResponse { event: Some(Event::Heartbeat(Heartbeat { time: now() })) }
                }
                received = state.receiver.recv() => match received {
                    Ok(change) if state.filter.admits(&change.store) => {
                        state.hub.metrics.sent("change");
                        WatchStoresResponse {
                            event: Some(Event::Change(StoreChange {
                                r#type: change.kind.to_proto() as i32,
                                store: Some(change.store.clone()),
                            })),
                        }
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "subscriber lagged; resending a snapshot");
                        let (stores, fresh) = state.hub.subscribe(&state.filter);
                        state.receiver = fresh;
                        state.hub.metrics.snapshots_resent.inc();
                        state.hub.metrics.sent("snapshot");
                        snapshot(stores)
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            state.ticker.reset();
            return Some((Ok(message), state));
        }
    }))
}

#[tonic::async_trait]
impl StatusService for Status {
    type WatchStoresStream = WatchStream;

    #[tracing::instrument(skip_all)]
    async fn watch_stores(
        &self,
        request: Request<WatchStoresRequest>,
    ) -> Result<Response<Self::WatchStoresStream>, GrpcStatus> {
        let filter = Filter {
            caller: self.auth.caller(request.metadata(), "WatchStores").await?,
            store_id: store_id(&request.get_ref().store_id)?,
        };
        if !self.hub.is_synced() {
            return Err(GrpcStatus::unavailable(
                "the store index is not synced with Kubernetes yet",
            ));
        }
        let deadline = store_platform_runtime::grpc::timeout(request.metadata());
        Ok(Response::new(subscription(
            self.hub.clone(),
            filter,
            self.heartbeat,
            self.shutdown.clone(),
            deadline,
        )))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn get_store_status(
        &self,
        request: Request<GetStoreStatusRequest>,
    ) -> Result<Response<GetStoreStatusResponse>, GrpcStatus> {
        let caller = self
            .auth
            .caller(request.metadata(), "GetStoreStatus")
            .await?;
        let id = store_id(&request.get_ref().store_id)?
            .ok_or_else(|| GrpcStatus::invalid_argument("store_id: must not be empty"))?;
        if !self.hub.is_synced() {
            return Err(GrpcStatus::unavailable(
                "the store index is not synced with Kubernetes yet",
            ));
        }
        let store = self
            .hub
            .get(&caller, &id)
            .ok_or_else(|| GrpcStatus::not_found(format!("store {id:?} not found")))?;
        Ok(Response::new(GetStoreStatusResponse { store: Some(store) }))
    }
}
