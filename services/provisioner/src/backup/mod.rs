//! Backups, whatever the engine: each store's encrypted restic repository in the platform's object store, its key
//! kept outside the store's namespace, and the Jobs that fill it (on a schedule and on demand). The engine says
//! what is its own (which database image dumps what, which files, whose uid) in a [`Source`]; everything else is
//! written once, here.

pub mod clone;
pub mod job;
pub mod maintenance;
pub mod policy;
pub mod repository;
pub mod restore;
pub mod secret;
pub mod sweep;

use jiff::Timestamp;
use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{EnvVar, Pod},
    },
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{Client, api::ListParams};
use store_platform_proto::v1 as proto;
use store_platform_runtime::record::{self, StoreRecord};

use crate::{
    error::Error,
    kube_ops::Kube,
    settings::{Backup, Settings},
    shared::diagnose::last_words,
};

/// The component of backup Jobs' pods, for selectors and NetworkPolicies.
pub const BACKUP: &str = "backup";
/// The CronJob of scheduled backups.
pub const SCHEDULE: &str = "backup";
/// The label saying whether a backup Job is `scheduled`, `on-demand`, `pre-restore` or `pre-upgrade`.
pub const KIND_LABEL: &str = "store-platform.io/backup-kind";
/// The label of a restore Job: the snapshot it restores (the first 16 characters of its id; its annotation of the
/// same name holds all of it). Restore Jobs are not backups, and lists leave them out.
pub const RESTORE_LABEL: &str = "store-platform.io/restores";

/// What an engine says about backing up one of its stores.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The store's own database image: its dump tool's version always matches the server.
    pub database_image: String,
    /// Shell commands, run in that image, writing the database's logical dump to `/backup/database.sql`.
    pub dump: &'static str,
    /// What the dump reads: where the database is, and its password (by reference to the store's Secret).
    pub dump_env: Vec<EnvVar>,
    /// The database's component and port, which backup pods may reach.
    pub database_app: &'static str,
    pub database_port: i32,
    /// The volume claim of the store's files, and the directory in it that is backed up (None: all of it).
    pub files_claim: &'static str,
    pub files_sub_path: Option<&'static str>,
    /// The uid owning the files, which backup pods run as.
    pub uid: i64,
    /// The component whose node the files' ReadWriteOnce volume is attached on.
    pub next_to: &'static str,
    /// The image that runs the store, recorded in each backup.
    pub version: String,
    /// Shell commands, run in the database image, replacing the store's database with the dump at
    /// `$RESTORE_DIR/data/database.sql`.
    pub load: &'static str,
    /// A cache to empty after a restore (its image, commands, component and port), if the engine keeps one.
    pub cache: Option<Cache>,
    /// The Deployments that write the store's data, stopped while it is replaced.
    pub writers: &'static [&'static str],
    /// The engine's CronJobs, suspended meanwhile (the backup schedule's is suspended for every engine).
    pub cron_jobs: &'static [&'static str],
    /// The engine's steps that apply the writers again (with their replicas), and the one that verifies a customer
    /// can order, rerun after a restore: its Job.
    pub writer_steps: &'static [&'static str],
    /// The engine's steps whose objects run the version's images, applied again when the store's version changes
    /// and when a suspended store resumes.
    pub image_steps: &'static [&'static str],
    /// The Deployments besides the writers, and the StatefulSets of the store's databases, stopped while the store
    /// is suspended; and the engine's steps that apply the databases again.
    pub idle: &'static [&'static str],
    pub databases: &'static [&'static str],
    pub database_steps: &'static [&'static str],
    pub verify_step: &'static str,
    pub verify_job: &'static str,
    /// How the store shows that it is being restored, if it can.
    pub maintenance: Option<maintenance::Maintenance>,
}

/// A cache an engine empties after a restore.
#[derive(Clone, Debug, PartialEq)]
pub struct Cache {
    pub image: String,
    pub flush: &'static str,
    pub app: &'static str,
    pub port: i32,
}

/// Why a backup was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Scheduled,
    OnDemand,
    /// Taken by a restore before it replaces anything: the store as it was.
    PreRestore,
    /// Taken by an upgrade before it changes anything: what a failed upgrade rolls back to.
    PreUpgrade,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::OnDemand => "on-demand",
            Self::PreRestore => "pre-restore",
            Self::PreUpgrade => "pre-upgrade",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "scheduled" => Some(Self::Scheduled),
            "on-demand" => Some(Self::OnDemand),
            "pre-restore" => Some(Self::PreRestore),
            "pre-upgrade" => Some(Self::PreUpgrade),
            _ => None,
        }
    }
}

/// Makes store `store` ready to be backed up, and backs it up on the platform's schedule: the repository key (made
/// once, in the platform's namespace), the Secret and script its Jobs read, their NetworkPolicy and the CronJob.
/// Backups off: nothing.
pub async fn prepare(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    kube: &Kube,
) -> Result<(), Error> {
    let Some(backup) = settings.backup.as_ref() else {
        return Ok(());
    };
    let key = repository::key(&kube.client, backup, &store.tenant, &store.id).await?;
    // A store made again with a deleted one's id keeps its backups.
    sweep::unmark(&kube.client, backup, &store.tenant, &store.id).await?;
    let credentials = repository::Credentials::read(backup)?;
    kube.apply(&secret::store_secret(
        &store.id,
        &repository::location(backup, &store.tenant, &store.id),
        &key,
        &credentials,
    ))
    .await?;
    kube.apply(&job::script_config_map(&store.id)).await?;
    kube.apply(&policy::network_policy(&store.id, source, backup))
        .await?;
    // Asked each time: stores are prepared once, and on-demand backups are rare.
    let batch_v1 = kube.serves_batch_v1_cron_jobs().await?;
    kube.apply_cron_job(&job::cron_job(store, source, settings, backup), batch_v1)
        .await?;
    Ok(())
}

/// Where a backup or restore Job stands, from its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    /// A pod failed, or Kubernetes gave up on it (its deadline passed).
    Failed,
}

pub fn job_state(job: &Job) -> JobState {
    let status = job.status.as_ref();
    if status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        JobState::Succeeded
    } else if status.and_then(|s| s.failed).unwrap_or(0) > 0
        || status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Failed" && c.status == "True")
    {
        JobState::Failed
    } else {
        JobState::Running
    }
}

/// The store's backup Job that is running, if any (scheduled or on demand).
pub async fn running(kube: &Kube) -> Result<Option<Job>, Error> {
    Ok(jobs(kube).await?.into_iter().find(|job| {
        job_state(job) == JobState::Running && job.metadata.deletion_timestamp.is_none()
    }))
}

/// Every backup Job in the store's namespace (not its restore Jobs).
pub async fn jobs(kube: &Kube) -> Result<Vec<Job>, Error> {
    let selector = format!(
        "{}={BACKUP},!{RESTORE_LABEL}",
        crate::shared::meta::APP_LABEL
    );
    Ok(kube
        .api::<Job>()
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(Error::kubernetes("list the store's backup Jobs"))?
        .items)
}

/// Starts an on-demand backup of `store` now, unless one is running: then that one. Backups off: an error saying
/// so.
pub async fn start(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    kube: &Kube,
) -> Result<Job, Error> {
    let backup = settings.backup.as_ref().ok_or(Error::BackupsOff)?;
    if let Some(job) = running(kube).await? {
        return Ok(job);
    }
    // A store made before backups were configured has none of what its Jobs read yet; this also brings fresh object
    // store credentials to the store.
    prepare(store, source, settings, kube).await?;
    let name = format!("backup-{}", Timestamp::now().strftime("%Y%m%d-%H%M%S"));
    let job = job::job(store, source, settings, backup, Kind::OnDemand, &name);
    kube.create_once(&job).await?;
    Ok(kube.get::<Job>(&name).await?.unwrap_or(job))
}

/// Why backup Job `job` failed, in the words of the container that failed (its termination message is the tail of
/// its output), or the Job's own condition (its deadline passed, its pod could not start).
pub async fn failure(kube: &Kube, job: &Job) -> String {
    let name = job.metadata.name.clone().unwrap_or_default();
    let pods = kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let words = pods.iter().rev().find_map(|pod| {
        let status = pod.status.as_ref()?;
        status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .find_map(|container| {
                let terminated = container.state.as_ref()?.terminated.as_ref()?;
                (terminated.exit_code != 0).then(|| {
                    format!(
                        "{} exited with {}: {}",
                        container.name,
                        terminated.exit_code,
                        last_words(terminated.message.as_deref().unwrap_or("no output"))
                    )
                })
            })
    });
    words.unwrap_or_else(|| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"))
            .and_then(|c| c.message.clone().or(c.reason.clone()))
            .unwrap_or_else(|| "the backup Job failed without a reason".to_owned())
    })
}

fn timestamp(time: Option<&Time>) -> Option<prost_types::Timestamp> {
    time.map(|t| record::timestamp(t.0))
}

fn proto_kind(kind: Option<Kind>) -> proto::BackupKind {
    match kind {
        Some(Kind::Scheduled) => proto::BackupKind::Scheduled,
        Some(Kind::OnDemand) => proto::BackupKind::OnDemand,
        Some(Kind::PreRestore) => proto::BackupKind::PreRestore,
        Some(Kind::PreUpgrade) => proto::BackupKind::PreUpgrade,
        None => proto::BackupKind::Unspecified,
    }
}

/// Backup Job `job` as the API shows it: running, or failed with why. `source` is the engine's.
pub async fn job_to_proto(
    kube: &Kube,
    job: &Job,
    store_id: &str,
    engine: proto::Engine,
    source: &Source,
) -> proto::Backup {
    let status = job.status.clone().unwrap_or_default();
    let (state, message, finish) = match job_state(job) {
        JobState::Succeeded => (
            proto::BackupState::Succeeded,
            String::new(),
            status.completion_time.clone(),
        ),
        JobState::Failed => {
            let finished = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Failed")
                .and_then(|c| c.last_transition_time.clone());
            (
                proto::BackupState::Failed,
                failure(kube, job).await,
                finished,
            )
        }
        JobState::Running => (proto::BackupState::Running, String::new(), None),
    };
    let kind = job
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(KIND_LABEL))
        .and_then(|k| Kind::parse(k));
    proto::Backup {
        id: job.metadata.name.clone().unwrap_or_default(),
        store_id: store_id.to_owned(),
        state: state as i32,
        kind: proto_kind(kind) as i32,
        create_time: timestamp(
            status
                .start_time
                .as_ref()
                .or(job.metadata.creation_timestamp.as_ref()),
        ),
        finish_time: timestamp(finish.as_ref()),
        size_bytes: 0,
        engine: engine as i32,
        engine_version: source.version.clone(),
        message,
    }
}

/// Snapshot `snapshot` of store `store_id` as the API shows it.
pub fn snapshot_to_proto(snapshot: &repository::Snapshot, store_id: &str) -> proto::Backup {
    let engine = match snapshot.engine.as_str() {
        "woocommerce" => proto::Engine::Woocommerce,
        "medusa" => proto::Engine::Medusa,
        _ => proto::Engine::Unspecified,
    };
    proto::Backup {
        id: snapshot.id.clone(),
        store_id: store_id.to_owned(),
        state: proto::BackupState::Succeeded as i32,
        kind: proto_kind(snapshot.kind) as i32,
        create_time: Some(record::timestamp(snapshot.time)),
        finish_time: Some(record::timestamp(snapshot.time)),
        size_bytes: i64::try_from(snapshot.bytes).unwrap_or(i64::MAX),
        engine: engine as i32,
        engine_version: snapshot.version.clone(),
        message: String::new(),
    }
}

/// Every backup of store `id` of `tenant`, newest first: the repository's snapshots, and the store's backup Jobs
/// that are running or failed (`kube` is None for a deleted store, which has no Jobs).
pub async fn list(
    client: &Client,
    backup: &Backup,
    tenant: &str,
    id: &str,
    store: Option<(&Kube, proto::Engine, &Source)>,
) -> Result<Vec<proto::Backup>, Error> {
    let mut backups = Vec::new();
    if let Some(key) = repository::existing_key_of(client, backup, tenant, id).await? {
        backups.extend(
            repository::snapshots(backup, tenant, id, &key)
                .await?
                .iter()
                .map(|snapshot| snapshot_to_proto(snapshot, id)),
        );
    }
    if let Some((kube, engine, source)) = store {
        for job in jobs(kube).await? {
            // A succeeded Job is its snapshot, listed above (or forgotten by retention).
            if job_state(&job) != JobState::Succeeded {
                backups.push(job_to_proto(kube, &job, id, engine, source).await);
            }
        }
    }
    backups
        .sort_by_key(|b| std::cmp::Reverse(b.create_time.as_ref().map(|t| (t.seconds, t.nanos))));
    Ok(backups)
}

/// A platform with backups on, and the pod of a backup of a store, for the engines' tests.
#[cfg(test)]
pub(crate) mod example {
    use std::{path::PathBuf, time::Duration};

    use k8s_openapi::api::core::v1::PodSpec;
    use store_platform_runtime::record::{
        Engine as EngineKind, StoreRecord, StoreSpec, StoreStatus,
    };

    use super::{Kind, Source, job};
    use crate::settings::{Backup, Settings};

    pub fn backup() -> Backup {
        Backup {
            endpoint: "http://objects.example:9000".to_owned(),
            bucket: "backups".to_owned(),
            prefix: "store-platform".to_owned(),
            region: "us-east-1".to_owned(),
            path_style: true,
            access_key_file: PathBuf::from("/run/backup/access-key"),
            secret_key_file: PathBuf::from("/run/backup/secret-key"),
            image: "restic/restic:0.17.3".to_owned(),
            schedule: "17 3 * * *".to_owned(),
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 3,
            keep_on_demand: 10,
            deleted_retention: Duration::from_secs(30 * 86_400),
            key_namespace: "store-platform".to_owned(),
            egress_cidrs: vec!["10.0.0.0/8".to_owned()],
            egress_port: 9000,
        }
    }

    pub fn store(id: &str, engine: EngineKind) -> StoreRecord {
        StoreRecord {
            id: id.to_owned(),
            tenant: "acme".to_owned(),
            spec: StoreSpec {
                display_name: "Shoes".to_owned(),
                engine,
                admin_email: "owner@example.com".to_owned(),
                source: None,
            },
            status: StoreStatus::pending(&[], jiff::Timestamp::UNIX_EPOCH),
            create_time: None,
            terminating: false,
            damage: None,
        }
    }

    /// The pod of an on-demand backup of store `id`.
    pub fn pod(id: &str, engine: EngineKind, source: &Source, settings: &Settings) -> PodSpec {
        job::job(
            &store(id, engine),
            source,
            settings,
            &backup(),
            Kind::OnDemand,
            "backup-1",
        )
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec")
    }
}
