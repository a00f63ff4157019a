//! The stores waiting for a reconcile pass, first come first served, each at most once.
//!
//! A store is *queued* (waiting for a worker), *running* (a worker is on it) or *sleeping* (it asked to be looked at
//! again at a time). A trigger for a queued store changes nothing; for a running store it asks for one more pass
//! when this one ends (at the back of the queue, behind the stores that waited meanwhile); for a sleeping one it
//! queues the store now and drops the timer (the pass it gets will say when next). Each worker takes the store at
//! the front, so no store waits behind one that came after it, and the work costs the same whether ten stores or
//! ten thousand are idle.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use prometheus_client::metrics::gauge::Gauge;
use tokio::{sync::Notify, time::Instant};

/// Where a store stands; a store that is none of these has no entry.
#[derive(Debug, Default)]
struct Entry {
    queued: bool,
    running: bool,
    /// Triggered while running: queued again when the pass ends.
    again: bool,
    /// When it asked to be looked at next, if it is sleeping.
    wake_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<String>,
    entries: HashMap<String, Entry>,
    /// Every sleeping store by its time; the same pairs as the entries' `wake_at`.
    timers: BTreeSet<(Instant, String)>,
    closed: bool,
}

impl State {
    fn entry(&mut self, store: &str) -> &mut Entry {
        if !self.entries.contains_key(store) {
            self.entries.insert(store.to_owned(), Entry::default());
        }
        self.entries.get_mut(store).expect("inserted above")
    }

    /// Queues `store` unless it is queued or running (then once more after). True if it was queued now.
    fn trigger(&mut self, store: &str) -> bool {
        let entry = self.entry(store);
        let wake_at = entry.wake_at.take();
        let queued = if entry.running {
            entry.again = true;
            false
        } else if entry.queued {
            false
        } else {
            entry.queued = true;
            true
        };
        if let Some(at) = wake_at {
            self.timers.remove(&(at, store.to_owned()));
        }
        if queued {
            self.queue.push_back(store.to_owned());
        }
        queued
    }

    fn forget_if_idle(&mut self, store: &str) {
        if self.entries.get(store).is_some_and(|entry| {
            !entry.queued && !entry.running && !entry.again && entry.wake_at.is_none()
        }) {
            self.entries.remove(store);
        }
    }
}

/// The provisioner's work queue. Shared by the triggers (watch events), the workers and the timer.
#[derive(Debug, Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    /// Wakes a worker: a store was queued, or the queue closed.
    queued: Notify,
    /// Wakes the timer: a store asked to be woken earlier than any other, or the queue closed.
    timers_changed: Notify,
    /// Stores waiting for a worker, exported as a metric.
    depth: Gauge,
}

impl WorkQueue {
    /// A queue whose length `depth` shows.
    pub fn new(depth: Gauge) -> Self {
        Self {
            depth,
            ..Self::default()
        }
    }

    fn show_depth(&self, state: &State) {
        self.depth
            .set(i64::try_from(state.queue.len()).unwrap_or(i64::MAX));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover the data rather than wedge every worker if it ever did.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `store` needs a pass: now, or once more after the one it is in.
    pub fn trigger(&self, store: &str) {
        let mut state = self.state();
        if state.trigger(store) {
            self.show_depth(&state);
            drop(state);
            self.queued.notify_one();
        }
    }

    /// The next store to work on, marked running; `None` once the queue is closed.
    pub async fn next(&self) -> Option<String> {
        loop {
            let notified = self.queued.notified();
            tokio::pin!(notified);
            // Registered before looking, so a trigger between the look and the wait is not missed.
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if state.closed {
                    return None;
                }
                if let Some(store) = state.queue.pop_front() {
                    let entry = state.entry(&store);
                    entry.queued = false;
                    entry.running = true;
                    self.show_depth(&state);
                    let more = !state.queue.is_empty();
                    drop(state);
                    if more {
                        // Pass the baton: one notification may have stood for several stores.
                        self.queued.notify_one();
                    }
                    return Some(store);
                }
            }
            notified.await;
        }
    }

    /// The pass on `store` ended; it asked to be looked at again after `wake_after`, or on its next trigger.
    pub fn done(&self, store: &str, wake_after: Option<Duration>) {
        let mut state = self.state();
        let entry = state.entry(store);
        entry.running = false;
        if std::mem::take(&mut entry.again) {
            // Triggered during the pass: that pass comes now, and decides the next wake-up itself.
            entry.queued = true;
            state.queue.push_back(store.to_owned());
            self.show_depth(&state);
            drop(state);
            self.queued.notify_one();
            return;
        }
        let Some(after) = wake_after else {
            state.forget_if_idle(store);
            return;
        };
        let at = Instant::now() + after;
        let earliest = state.timers.first().map(|(first, _)| *first);
        let entry = state.entry(store);
        entry.wake_at = Some(at);
        state.timers.insert((at, store.to_owned()));
        drop(state);
        if earliest.is_none_or(|first| at < first) {
            self.timers_changed.notify_one();
        }
    }

    /// Workers finish the pass they are in and stop; the timer stops.
    pub fn close(&self) {
        self.state().closed = true;
        self.queued.notify_waiters();
        self.timers_changed.notify_one();
    }

    /// Queues each sleeping store when its time comes, until the queue closes.
    pub async fn run_timers(&self) {
        loop {
            let changed = self.timers_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next = {
                let mut state = self.state();
                if state.closed {
                    return;
                }
                let now = Instant::now();
                let mut woke = 0;
                while let Some((at, store)) = state.timers.first().cloned()
                    && at <= now
                {
                    state.timers.remove(&(at, store.clone()));
                    state.entry(&store).wake_at = None;
                    if state.trigger(&store) {
                        woke += 1;
                    }
                }
                self.show_depth(&state);
                let next = state.timers.first().map(|(at, _)| *at);
                drop(state);
                for _ in 0..woke {
                    self.queued.notify_one();
                }
                next
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn queue_of(queue: &WorkQueue) -> Vec<String> {
        queue.state().queue.iter().cloned().collect()
    }

    #[tokio::test]
    async fn stores_come_out_in_the_order_they_were_triggered_and_each_once() {
        let queue = WorkQueue::default();
        for store in ["a", "b", "a", "c", "b"] {
            queue.trigger(store);
        }
        assert_eq!(queue_of(&queue), ["a", "b", "c"]);
        assert_eq!(queue.depth.get(), 3);
        assert_eq!(queue.next().await.as_deref(), Some("a"));
        assert_eq!(queue.next().await.as_deref(), Some("b"));
        assert_eq!(queue.next().await.as_deref(), Some("c"));
        assert!(queue_of(&queue).is_empty());
        assert_eq!(queue.depth.get(), 0);
    }

    #[tokio::test]
    async fn a_store_triggered_during_its_pass_runs_once_more_after_it_behind_those_that_waited() {
        let queue = WorkQueue::default();
        queue.trigger("a");
        assert_eq!(queue.next().await.as_deref(), Some("a"));
        queue.trigger("a");
        queue.trigger("a");
        queue.trigger("b");
        // Not handed to a second worker while its pass runs.
        assert_eq!(queue_of(&queue), ["b"]);
        queue.done("a", Some(Duration::from_secs(3600)));
        assert_eq!(queue_of(&queue), ["b", "a"]);
        // The pass that follows decides the next wake-up: no timer was kept from the one before.
        assert!(queue.state().timers.is_empty());
    }

    #[tokio::test]
    async fn an_idle_store_leaves_nothing_behind() {
        let queue = WorkQueue::default();
        queue.trigger("a");
        assert_eq!(queue.next().await.as_deref(), Some("a"));
        queue.done("a", None);
        let state = queue.state();
        assert!(state.entries.is_empty() && state.timers.is_empty() && state.queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleeping_store_wakes_at_its_time_or_at_its_next_trigger_whichever_is_first() {
        let queue = Arc::new(WorkQueue::default());
        let timers = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run_timers().await }
        });
        for store in ["late", "early", "triggered"] {
            queue.trigger(store);
            assert_eq!(queue.next().await.as_deref(), Some(store));
        }
        queue.done("late", Some(Duration::from_secs(20)));
        queue.done("early", Some(Duration::from_secs(10)));
        queue.done("triggered", Some(Duration::from_secs(5)));
        queue.trigger("triggered");
        assert_eq!(queue.next().await.as_deref(), Some("triggered"));
        queue.done("triggered", None);

        let start = Instant::now();
        assert_eq!(queue.next().await.as_deref(), Some("early"));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(queue.next().await.as_deref(), Some("late"));
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        // The trigger dropped the 5 s timer: nothing else wakes.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), queue.next())
                .await
                .is_err()
        );
        queue.close();
        timers.await.expect("timer task");
    }

    #[tokio::test]
    async fn closing_stops_every_waiting_worker() {
        let queue = Arc::new(WorkQueue::default());
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.next().await })
            })
            .collect();
        tokio::task::yield_now().await;
        queue.close();
        for worker in workers {
            assert_eq!(worker.await.expect("worker"), None);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_workers_take_every_store_exactly_once() {
        let queue = Arc::new(WorkQueue::default());
        let taken = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (queue, taken) = (queue.clone(), taken.clone());
                tokio::spawn(async move {
                    while let Some(store) = queue.next().await {
                        queue.done(&store, None);
                        taken.lock().expect("lock").push(store);
                    }
                })
            })
            .collect();
        for i in 0..1000 {
            queue.trigger(&format!("store-{i}"));
        }
        while taken.lock().expect("lock").len() < 1000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        queue.close();
        for worker in workers {
            worker.await.expect("worker");
        }
        let mut taken = taken.lock().expect("lock").clone();
        taken.sort();
        taken.dedup();
        assert_eq!(taken.len(), 1000);
        assert!(queue.state().entries.is_empty());
    }
}
