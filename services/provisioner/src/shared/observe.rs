//! Reading from the objects' status whether a step is done, and clearing a failed Job so it can run again.

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::ResourceQuota,
};
use kube::api::{DeleteParams, PropagationPolicy};

use super::diagnose::job_failure;
use crate::{engine::Progress, error::Error, kube_ops::Kube};

/// Pods are admitted only once the quota controller has computed the quota's usage. Read from this pass's apply, else
/// from the API server: quotas are not watched (see [`crate::kube_ops::Observed`]).
pub async fn quota(kube: &Kube) -> Result<Progress, Error> {
    Ok(match kube.observe::<ResourceQuota>("store").await? {
        Some(quota)
            if quota
                .status
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .is_some() =>
        {
            Progress::Done
        }
        Some(_) => Progress::Recheck("waiting for the quota controller".to_owned()),
        None => Progress::Recheck("resource quota missing".to_owned()),
    })
}

/// Done when StatefulSet `name` has seen its spec, has rolled it out (its pod runs the current revision), and has
/// a ready replica.
pub async fn stateful_set(kube: &Kube, name: &str) -> Result<Progress, Error> {
    Ok(match kube.observe::<StatefulSet>(name).await? {
        Some(set) => {
            let generation = set.metadata.generation;
            let status = set.status.unwrap_or_default();
            let rolled_out = status.update_revision.is_none()
                || status.current_revision == status.update_revision;
            if status.observed_generation >= generation
                && rolled_out
                && status.ready_replicas.unwrap_or(0) >= 1
            {
                Progress::Done
            } else {
                Progress::Waiting(format!("waiting for {name}-0 to be ready"))
            }
        }
        None => Progress::Waiting(format!("{name} StatefulSet missing")),
    })
}

/// Done when Deployment `name` has seen its spec, has rolled it out (no pod of an older template is left), and has
/// an available replica; `what` names it for people.
pub async fn deployment(kube: &Kube, name: &str, what: &str) -> Result<Progress, Error> {
    Ok(match kube.observe::<Deployment>(name).await? {
        Some(deployment) => {
            let generation = deployment.metadata.generation;
            let status = deployment.status.unwrap_or_default();
            if status.observed_generation >= generation
                && status.updated_replicas.unwrap_or(0) >= status.replicas.unwrap_or(0)
                && status.available_replicas.unwrap_or(0) >= 1
            {
                Progress::Done
            } else {
                Progress::Waiting(format!("waiting for {what} to be available"))
            }
        }
        None => Progress::Waiting(format!("{name} Deployment missing")),
    })
}

/// Where Job `name` (its pods labelled `app`) stands; None when it does not exist, so the step makes a fresh
/// one. `busy` says what it does while it runs.
pub async fn job(
    kube: &Kube,
    name: &str,
    app: &str,
    busy: &str,
) -> Result<Option<Progress>, Error> {
    let Some(job) = kube.observe::<Job>(name).await? else {
        return Ok(None);
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Some(Progress::Waiting(format!(
            "removing the previous {name} Job"
        ))));
    }
    let status = job.status.clone().unwrap_or_default();
    let failed = status
        .conditions
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"));
    Ok(Some(if status.succeeded.unwrap_or(0) >= 1 {
        Progress::Done
    } else if failed {
        // Confirm with the API server: after a retry the cache may still hold the failed Job it replaced.
        match kube.get::<Job>(name).await? {
            Some(current) if current.metadata.uid == job.metadata.uid => {
                Progress::Failed(job_failure(kube, &job, app).await)
            }
            _ => Progress::Waiting(busy.to_owned()),
        }
    } else {
        Progress::Waiting(busy.to_owned())
    }))
}

/// Removes failed Job `name` and its pods (a failed Job never runs again), so the step makes a fresh one.
pub async fn remove_job(kube: &Kube, name: &str) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteParams::default()
    };
    match kube.api::<Job>().delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kubernetes {
            action: format!("delete the failed {name} Job").into(),
            source,
        }),
    }
}
