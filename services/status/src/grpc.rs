//! The StatusService gRPC API: a tenant's stores as a live stream, and one store's status.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use store_platform_proto::v1::{
    GetStoreStatusRequest, GetStoreStatusResponse, Heartbeat, StoreChange, StoresSnapshot,
    WatchStoresRequest, WatchStoresResponse, status_service_server::StatusService,
    watch_stores_response::Event,
};
use store_platform_runtime::{Shutdown, record::timestamp, tenant::Caller};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status as GrpcStatus};

use crate::hub::{Filter, Hub};

/// The StatusService implementation.
#[derive(Clone, Debug)]
pub struct Status {
    hub: Arc<Hub>,
    heartbeat: Duration,
    shutdown: Shutdown,
}

impl Status {
    pub fn new(hub: Arc<Hub>, heartbeat: Duration, shutdown: Shutdown) -> Self {
        Self {
            hub,
            heartbeat,
            shutdown,
        }
    }
}

/// The caller's tenant, from request metadata, read by the provisioner's rule.
fn caller<T>(request: &Request<T>) -> Result<Caller, GrpcStatus> {
    Ok(store_platform_runtime::tenant::from_metadata(
        request.metadata(),
    )?)
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

/// The stream one subscriber reads: a snapshot, then its changes; a heartbeat when idle; a fresh snapshot if it
/// fell too far behind; the end at shutdown.
fn subscription(
    hub: Arc<Hub>,
    filter: Filter,
    heartbeat: Duration,
    shutdown: Shutdown,
) -> WatchStream {
    let (stores, receiver) = hub.subscribe(&filter);
    hub.metrics.sent("snapshot");
    let first = snapshot(stores);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (hub, filter, receiver, ticker, shutdown, Some(first));
    Box::pin(futures::stream::unfold(
        state,
        |(hub, filter, mut receiver, mut ticker, shutdown, first)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (hub, filter, receiver, ticker, shutdown, None)));
            }
            loop {
                let message = tokio::select! {
                    () = shutdown.wait() => return None,
                    _ = ticker.tick() => {
                        hub.metrics.sent("heartbeat");
                        WatchStoresResponse { event: Some(Event::Heartbeat(Heartbeat { time: now() })) }
                    }
                    received = receiver.recv() => match received {
                        Ok(change) if filter.admits(&change.store) => {
                            hub.metrics.sent("change");
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
                            let (stores, fresh) = hub.subscribe(&filter);
                            receiver = fresh;
                            hub.metrics.snapshots_resent.inc();
                            hub.metrics.sent("snapshot");
                            snapshot(stores)
                        }
                        Err(RecvError::Closed) => return None,
                    },
                };
                ticker.reset();
                return Some((Ok(message), (hub, filter, receiver, ticker, shutdown, None)));
            }
        },
    ))
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
            caller: caller(&request)?,
            store_id: store_id(&request.get_ref().store_id)?,
        };
        if !self.hub.is_synced() {
            return Err(GrpcStatus::unavailable(
                "the store index is not synced with Kubernetes yet",
            ));
        }
        Ok(Response::new(subscription(
            self.hub.clone(),
            filter,
            self.heartbeat,
            self.shutdown.clone(),
        )))
    }

    #[tracing::instrument(skip_all, fields(store = %request.get_ref().store_id))]
    async fn get_store_status(
        &self,
        request: Request<GetStoreStatusRequest>,
    ) -> Result<Response<GetStoreStatusResponse>, GrpcStatus> {
        let caller = caller(&request)?;
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
