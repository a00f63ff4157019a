//! The steps that restore and upgrade share: stopping the store's writers behind its maintenance page, starting
//! them again (with the store's version's images) and taking the page down, and checking afresh that a customer can
//! order (the engine's verification Job, run again).

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::Pod};
use kube::api::{ListParams, Patch, PatchParams};
use store_platform_runtime::record::StoreRecord;

use crate::{
    backup::{self, SCHEDULE, Source, maintenance},
    engine::{Engine, Progress},
    error::Error,
    kube_ops::Kube,
    settings::Settings,
    shared::meta::APP_LABEL,
};

/// Backs `store` up as it is, before an operation changes it: the backup Job `name`, of kind `kind` (made once).
pub async fn back_up_first(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    kube: &Kube,
    (kind, name): (backup::Kind, &str),
) -> Result<(), Error> {
    let config = settings.backup.as_ref().ok_or(Error::BackupsOff)?;
    backup::prepare(store, source, settings, kube).await?;
    kube.create_once(&backup::job::job(
        store, source, settings, config, kind, name,
    ))
    .await
}

/// Suspends (or resumes) the store's CronJobs: the engine's, and the backup schedule unless `backups` says it
/// goes on.
async fn suspend_cron_jobs(
    source: &Source,
    kube: &Kube,
    suspend: bool,
    backups: bool,
) -> Result<(), Error> {
    let batch_v1 = kube.serves_batch_v1_cron_jobs().await?;
    let schedule = (!backups).then_some(&SCHEDULE);
    for name in source.cron_jobs.iter().chain(schedule) {
        kube.suspend_cron_job(name, suspend, batch_v1).await?;
    }
    Ok(())
}

/// Puts the page up, suspends the store's CronJobs (the backup schedule too, unless the store is only paused) and
/// scales its writers to zero.
pub async fn stop(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    kube: &Kube,
    why: maintenance::Why,
) -> Result<(), Error> {
    // Customers see what is happening rather than an error.
    maintenance::show(store, source, settings, kube, why).await?;
    suspend_cron_jobs(source, kube, true, why == maintenance::Why::Paused).await?;
    scale::<Deployment>(kube, source.writers, 0).await
}

/// Sets the replicas of the store's workloads `names` (Deployments or StatefulSets).
pub async fn scale<K>(kube: &Kube, names: &[&str], replicas: i32) -> Result<(), Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    for name in names {
        kube.api::<K>()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
            )
            .await
            .map_err(Error::kubernetes(format!(
                "scale {} {name} to {replicas}",
                K::kind(&K::DynamicType::default())
            )))?;
    }
    Ok(())
}

/// The pods still running of the store's writers.
pub async fn writer_pods(source: &Source, kube: &Kube) -> Result<Vec<String>, Error> {
    pods_of(source.writers, kube).await
}

/// The pods of the store's components `apps`.
pub async fn pods_of(apps: &[&str], kube: &Kube) -> Result<Vec<String>, Error> {
    if apps.is_empty() {
        return Ok(Vec::new());
    }
    let selector = format!("{APP_LABEL} in ({})", apps.join(","));
    let pods = kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kubernetes("list the store's pods"))?;
    Ok(pods
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .collect())
}

/// Done once no writer runs and no backup is being taken. Pods are not watched (a store's Deployment says its
/// replicas are gone while they still terminate): looked at again until they are gone.
pub async fn stopped(source: &Source, kube: &Kube) -> Result<Progress, Error> {
    let pods = writer_pods(source, kube).await?;
    if !pods.is_empty() {
        return Ok(Progress::Recheck(format!(
            "waiting for {} to stop",
            pods.join(", ")
        )));
    }
    if let Some(waiting) = maintenance::shown(source, kube).await? {
        return Ok(Progress::Recheck(waiting));
    }
    Ok(match backup::running(kube).await? {
        Some(job) => Progress::Waiting(format!(
            "waiting for backup {} to finish",
            job.metadata.name.unwrap_or_default()
        )),
        None => Progress::Done,
    })
}

pub async fn diagnose_stopped(source: &Source, kube: &Kube) -> String {
    match writer_pods(source, kube).await {
        Ok(pods) if !pods.is_empty() => format!("{} did not stop", pods.join(", ")),
        _ => "a backup was still running".to_owned(),
    }
}

/// Starts the store's databases again (the engine's steps that apply them).
pub async fn start_databases(
    engine: &dyn Engine,
    store: &StoreRecord,
    source: &Source,
    kube: &Kube,
) -> Result<(), Error> {
    for step in source.database_steps {
        engine.apply(step, store, kube).await?;
    }
    Ok(())
}

/// Done once the engine says each of the store's databases is.
pub async fn databases_started(
    engine: &dyn Engine,
    store: &StoreRecord,
    source: &Source,
    kube: &Kube,
) -> Result<Progress, Error> {
    for step in source.database_steps {
        match engine.observe(step, store, kube).await? {
            Progress::Done => {}
            other => return Ok(other),
        }
    }
    Ok(Progress::Done)
}

/// Applies the engine's `steps` for `store` (its writers, with their replicas and its version's images) and resumes
/// its CronJobs.
pub async fn start(
    engine: &dyn Engine,
    store: &StoreRecord,
    steps: &[&str],
    source: &Source,
    kube: &Kube,
) -> Result<(), Error> {
    for step in steps {
        engine.apply(step, store, kube).await?;
    }
    suspend_cron_jobs(source, kube, false, false).await
}

/// Done once the engine's `steps` are, and the store's Services reach its own pods again (then the page goes).
pub async fn started(
    engine: &dyn Engine,
    store: &StoreRecord,
    steps: &[&str],
    source: &Source,
    kube: &Kube,
) -> Result<Progress, Error> {
    for step in steps {
        match engine.observe(step, store, kube).await? {
            Progress::Done => {}
            other => return Ok(other),
        }
    }
    // The Services' endpoints are not watched: looked at again until they are the store's pods.
    Ok(match maintenance::hide(source, kube).await? {
        Some(waiting) => Progress::Recheck(waiting),
        None => Progress::Done,
    })
}

pub async fn diagnose_started(
    engine: &dyn Engine,
    store: &StoreRecord,
    steps: &[&str],
    kube: &Kube,
) -> String {
    let mut why = Vec::new();
    for step in steps {
        why.push(engine.diagnose(step, store, kube).await);
    }
    why.join("; ")
}

/// The engine's verification, run afresh: a verification Job made before `since` is removed and made again; the
/// fresh one's end is the step's. Read from the API server, and from the watch cache only once the cache holds the
/// fresh Job too, so an old Job's success is never taken for the new one's.
pub async fn verify(
    engine: &dyn Engine,
    store: &StoreRecord,
    source: &Source,
    kube: &Kube,
    since: Timestamp,
) -> Result<Progress, Error> {
    let removing = || {
        Progress::Waiting(format!(
            "removing the {} Job from before",
            source.verify_job
        ))
    };
    Ok(match kube.get::<Job>(source.verify_job).await? {
        Some(job) if job.metadata.deletion_timestamp.is_some() => removing(),
        Some(job)
            if job
                .metadata
                .creation_timestamp
                .as_ref()
                .is_none_or(|created| created.0 < since) =>
        {
            engine.reset(source.verify_step, store, kube).await?;
            removing()
        }
        Some(job) => {
            let cached = kube.observe::<Job>(source.verify_job).await?;
            if cached.and_then(|c| c.metadata.uid) == job.metadata.uid {
                engine.observe(source.verify_step, store, kube).await?
            } else {
                Progress::Waiting("checking that a customer can order".to_owned())
            }
        }
        None => {
            engine.apply(source.verify_step, store, kube).await?;
            Progress::Waiting("checking that a customer can order".to_owned())
        }
    })
}
