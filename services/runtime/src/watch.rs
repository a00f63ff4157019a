//! Long-lived watches of the API server that notice when they have gone silent, and say how long since each was
//! last heard from.
//!
//! kube's own watcher waits for a listing and for the start of a watch without a deadline, and trusts a quiet
//! stream for as long as the server's own watch timeout (290 s). After an API-server restart a status stream once
//! stayed frozen for minutes that way, with no error anywhere. Every watch in the platform goes through [`watch`]
//! instead, which yields the same events (so kube's reflectors and controllers take it) and:
//!
//! - asks the API server to end each watch after [`SERVER_TIMEOUT`], with bookmarks (a 1.20 server sends one 2 s
//!   before that end; newer ones also every minute), so a healthy watch is heard from at least that often;
//! - abandons a listing or a watch start that has not answered within [`REQUEST_DEADLINE`], and a watch that has
//!   been silent (no event, bookmark or end) for [`SILENCE`], and begins again: from the last resource version,
//!   re-listing only when the server says that version is gone (410);
//! - retries failures after 250 ms, doubling up to 2 s, so it is back within about 2 s of the API server;
//! - records, per watch, when it last heard from the API server (an event, a bookmark, a listing, a watch begun)
//!   and how many times it had to start again, as the metrics
//!   `store_platform_watch_age_seconds` and `store_platform_watch_restarts_total`.
//!
//! So a watch can stall for at most [`SILENCE`] (plus one retry delay) before it is replaced.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Debug,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt as _, stream::BoxStream};
use kube::{
    Api, Resource,
    api::{ListParams, WatchEvent, WatchParams},
    runtime::watcher::{self, Event},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::de::DeserializeOwned;

/// How long the API server keeps one watch open before it ends it (and a client begins the next from where it
/// was).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a watch may go without hearing from the API server before it is abandoned and begun again: the
/// server's own end of it, and room for a slow server.
pub const SILENCE: Duration = Duration::from_secs(SERVER_TIMEOUT.as_secs() + 15);
/// How long a listing or the start of a watch may take to answer.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// The three deadlines of a watch; [`watch`] uses the constants above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// Asked of the API server: it ends each watch after this.
    pub server_timeout: Duration,
    /// The longest a watch stream may stay silent.
    pub silence: Duration,
    /// The longest a listing or a watch start may take to answer.
    pub request: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            server_timeout: SERVER_TIMEOUT,
            silence: SILENCE,
            request: REQUEST_DEADLINE,
        }
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabel {
    pub watch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabel {
    pub watch: String,
    /// `silent` (a deadline passed), `failed` (an error) or `expired` (the server no longer had its version: a
    /// re-list).
    pub reason: String,
}

/// The watches of one service: when each last heard from the API server, and its restarts.
#[derive(Debug, Default)]
pub struct Watches {
    heard: Mutex<BTreeMap<&'static str, Instant>>,
    age: Family<WatchLabel, Gauge<f64, AtomicU64>>,
    restarts: Family<RestartLabel, Counter>,
}

impl Watches {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "watch_age_seconds",
            "Seconds since each watch of the API server last heard from it (an event, a bookmark, a listing or a watch begun)",
            self.age.clone(),
        );
        registry.register(
            "watch_restarts",
            "Watches begun again other than at the server's own end of them, by watch and reason (silent, failed, expired)",
            self.restarts.clone(),
        );
    }

    /// Sets the age gauges; call before each scrape.
    pub fn refresh(&self) {
        for (watch, at) in self.heard().iter() {
            self.age
                .get_or_create(&WatchLabel {
                    watch: (*watch).to_owned(),
                })
                .set(at.elapsed().as_secs_f64());
        }
    }

    /// How long since `watch` last heard from the API server; `None` before its first listing.
    pub fn age(&self, watch: &str) -> Option<Duration> {
        self.heard().get(watch).map(Instant::elapsed)
    }

    /// How many times `watch` was begun again for `reason`.
    pub fn restarts(&self, watch: &str, reason: &str) -> u64 {
        self.restarts
            .get_or_create(&RestartLabel {
                watch: watch.to_owned(),
                reason: reason.to_owned(),
            })
            .get()
    }

    fn heard(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Instant>> {
        self.heard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn heard_from(&self, watch: &'static str) {
        self.heard().insert(watch, Instant::now());
    }

    fn restarted(&self, watch: &'static str, reason: &str) {
        self.restarts
            .get_or_create(&RestartLabel {
                watch: watch.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Where a watch is.
enum Phase<K> {
    List,
    Start {
        version: String,
    },
    Watching {
        version: String,
        stream: BoxStream<'static, kube::Result<WatchEvent<K>>>,
    },
    /// Waits, then goes on to the phase inside.
    Retry(Box<Phase<K>>),
}

struct State<K: Clone> {
    api: Api<K>,
    name: &'static str,
    labels: String,
    watches: Arc<Watches>,
    phase: Phase<K>,
    pending: VecDeque<Result<Event<K>, watcher::Error>>,
    retry: Duration,
    deadlines: Deadlines,
}

/// Objects of `api` with `labels`, as kube's `watcher` yields them (a listing, then changes), under the name
/// `name` in the metrics of `watches`. It never ends; errors are yielded for logging and retried by itself, so it
/// needs no backoff of its own.
pub fn watch<K>(
    api: Api<K>,
    name: &'static str,
    labels: &str,
    watches: Arc<Watches>,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    watch_with(api, name, labels, watches, Deadlines::default())
}

/// [`watch`] with other deadlines (tests make them short).
pub fn watch_with<K>(
    api: Api<K>,
    name: &'static str,
    labels: &str,
    watches: Arc<Watches>,
    deadlines: Deadlines,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let state = State {
        deadlines,
        api,
        name,
        labels: labels.to_owned(),
        watches,
        phase: Phase::List,
        pending: VecDeque::new(),
        retry: FIRST_RETRY,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                return Some((item, state));
            }
            let phase = std::mem::replace(&mut state.phase, Phase::List);
            state.phase = state.step(phase).await;
        }
    })
}

impl<K> State<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// `then`, after the retry delay (which doubles each time, until the API server is heard from again).
    fn retry(&mut self, then: Phase<K>) -> Phase<K> {
        Phase::Retry(Box::new(then))
    }

    fn heard(&mut self) {
        self.watches.heard_from(self.name);
        self.retry = FIRST_RETRY;
    }

    async fn step(&mut self, phase: Phase<K>) -> Phase<K> {
        match phase {
            Phase::Retry(then) => {
                tokio::time::sleep(self.retry).await;
                self.retry = (self.retry * 2).min(LAST_RETRY);
                *then
            }
            Phase::List => self.list().await,
            Phase::Start { version } => self.start(version).await,
            Phase::Watching { version, stream } => self.next(version, stream).await,
        }
    }

    async fn list(&mut self) -> Phase<K> {
        // From the API server's cache (resourceVersion 0): a whole listing, unpaged, without a read from etcd.
        let params = ListParams::default().labels(&self.labels).match_any();
        match tokio::time::timeout(self.deadlines.request, self.api.list(&params)).await {
            Ok(Ok(list)) => {
                let Some(version) = list.metadata.resource_version.filter(|v| !v.is_empty()) else {
                    self.pending
                        .push_back(Err(watcher::Error::NoResourceVersion));
                    return self.retry(Phase::List);
                };
                self.heard();
                self.pending.push_back(Ok(Event::Init));
                self.pending
                    .extend(list.items.into_iter().map(|o| Ok(Event::InitApply(o))));
                self.pending.push_back(Ok(Event::InitDone));
                Phase::Start { version }
            }
            Ok(Err(error)) => {
                self.watches.restarted(self.name, "failed");
                self.pending
                    .push_back(Err(watcher::Error::InitialListFailed(error)));
                self.retry(Phase::List)
            }
            Err(_) => {
                tracing::warn!(watch = self.name, deadline = ?self.deadlines.request, "listing did not answer in time; listing again");
                self.watches.restarted(self.name, "silent");
                self.retry(Phase::List)
            }
        }
    }

    async fn start(&mut self, version: String) -> Phase<K> {
        let params = WatchParams::default()
            .labels(&self.labels)
            .timeout(u32::try_from(self.deadlines.server_timeout.as_secs()).unwrap_or(u32::MAX));
        match tokio::time::timeout(self.deadlines.request, self.api.watch(&params, &version)).await
        {
            Ok(Ok(stream)) => {
                self.heard();
                Phase::Watching {
                    version,
                    stream: stream.boxed(),
                }
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 410 => {
                self.watches.restarted(self.name, "expired");
                Phase::List
            }
            Ok(Err(error)) => {
                self.watches.restarted(self.name, "failed");
                self.pending
                    .push_back(Err(watcher::Error::WatchStartFailed(error)));
                self.retry(Phase::Start { version })
            }
            Err(_) => {
                tracing::warn!(watch = self.name, deadline = ?self.deadlines.request, "watch did not start in time; starting it again");
                self.watches.restarted(self.name, "silent");
                self.retry(Phase::Start { version })
            }
        }
    }

    async fn next(
        &mut self,
        version: String,
        mut stream: BoxStream<'static, kube::Result<WatchEvent<K>>>,
    ) -> Phase<K> {
        let version = match tokio::time::timeout(self.deadlines.silence, stream.next()).await {
            Ok(Some(Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)))) => {
                let version = object.meta().resource_version.clone().unwrap_or(version);
                self.heard();
                self.pending.push_back(Ok(Event::Apply(object)));
                version
            }
            Ok(Some(Ok(WatchEvent::Deleted(object)))) => {
                let version = object.meta().resource_version.clone().unwrap_or(version);
                self.heard();
                self.pending.push_back(Ok(Event::Delete(object)));
                version
            }
            Ok(Some(Ok(WatchEvent::Bookmark(bookmark)))) => {
                self.heard();
                bookmark.metadata.resource_version
            }
            Ok(Some(Ok(WatchEvent::Error(status)))) if status.code == 410 => {
                // The server no longer has our version (a restarted server's cache starts afresh): list again.
                self.watches.restarted(self.name, "expired");
                return Phase::List;
            }
            Ok(Some(Ok(WatchEvent::Error(status)))) => {
                self.watches.restarted(self.name, "failed");
                self.pending
                    .push_back(Err(watcher::Error::WatchError(status)));
                return self.retry(Phase::Start { version });
            }
            Ok(Some(Err(error))) => {
                self.watches.restarted(self.name, "failed");
                self.pending
                    .push_back(Err(watcher::Error::WatchFailed(error)));
                return self.retry(Phase::Start { version });
            }
            // The server ended the watch (its timeout, or it went away): begin the next one where this one was. Not
            // counted as heard: a server that died ends its watches too; the next start's answer tells.
            Ok(None) => return Phase::Start { version },
            Err(_) => {
                tracing::warn!(watch = self.name, silence = ?self.deadlines.silence, "watch silent; starting it again");
                self.watches.restarted(self.name, "silent");
                return Phase::Start { version };
            }
        };
        Phase::Watching { version, stream }
    }
}
