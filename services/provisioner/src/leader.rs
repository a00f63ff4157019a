//! Leader election over a `coordination.k8s.io` Lease: every replica serves the API, only the holder reconciles.
//! The holder renews the Lease every `RENEW`; a replica takes it over once it has gone unrenewed for `DURATION`.
//! Writes are guarded by the Lease's resource version, so two replicas can never both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use store_platform_runtime::Shutdown;

const DURATION: Duration = Duration::from_secs(15);
const RENEW: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Election {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
}

impl Election {
    pub fn new(client: Client, namespace: &str, name: &str, identity: String) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity,
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease; true if this replica holds it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec
            .renew_time
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let duration = spec
            .lease_duration_seconds
            .map_or(DURATION, |s| Duration::from_secs(s.max(1) as u64));
        let expired = now.duration_since(renewed)
            > jiff::SignedDuration::try_from(duration).unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(if holder == self.identity {
            self.spec(now, spec.acquire_time, transitions)
        } else if holder.is_empty() || expired {
            self.spec(now, None, transitions + 1)
        } else {
            return Ok(false);
        });
        // The resource version read above guards the write: a concurrent taker makes it fail with 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up so another replica takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
            }
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }

    /// Runs `work` while this replica leads, until `shutdown`. Leadership lost stops `work` (through the shutdown
    /// handed to it) and the replica competes again.
    pub async fn lead<F, Fut>(self, shutdown: Shutdown, work: F)
    where
        F: Fn(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut ticker = tokio::time::interval(RENEW);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !shutdown.is_triggered() {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.wait() => break,
            }
            match self.try_acquire().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, "leader election failed");
                    continue;
                }
            }
            tracing::info!(identity = %self.identity, lease = %self.name, "leading: reconciling stores");
            let term = Shutdown::new();
            let running = tokio::spawn(work(term.clone()));
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = shutdown.wait() => break,
                }
                match self.try_acquire().await {
                    Ok(true) => last_renewed = tokio::time::Instant::now(),
                    Ok(false) => break,
                    // An unreachable API server: keep leading until the Lease could have expired.
                    Err(error) if last_renewed.elapsed() < DURATION - RENEW => {
                        tracing::warn!(%error, "failed to renew the lease");
                    }
                    Err(_) => break,
                }
            }
            term.trigger();
            let _ = running.await;
            tracing::info!(identity = %self.identity, "stopped leading");
        }
        self.release().await;
    }
}
