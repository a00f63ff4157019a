//! The backup Job's pod, once for both kinds: the `dump` init container runs the engine's dump in the store's own
//! database image into an emptyDir, then `restic` runs `scripts/backup.sh` in the repository tool's image with the
//! store's files mounted read-only beside the dump. The pod runs as the files' owner, on the node their volume is
//! attached on, with the `restricted` Pod Security level and no service account token.

use k8s_openapi::{
    api::{
        batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec},
        core::v1::{
            ConfigMap, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar,
            PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, SecretEnvSource, Volume,
            VolumeMount,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use store_platform_runtime::record::StoreRecord;

use super::{
    BACKUP, KIND_LABEL, Kind, RESTORE_LABEL, SCHEDULE, Source,
    secret::{RESTRICT_KEY, STORE_SECRET},
};
use crate::{
    settings::{Backup, Settings},
    shared::{
        meta::{container_security, env, labels, object_meta, pod_security, secret_key_env},
        size::Size,
        workload::{config_map_volume, on_the_node_of},
    },
};

pub const SCRIPT: &str = include_str!("../../scripts/backup.sh");
pub const SCRIPT_CONFIG: &str = "backup-script";
pub const SCRIPT_KEY: &str = "backup.sh";
pub const RESTORE_SCRIPT: &str = include_str!("../../scripts/restore.sh");
pub const RESTORE_SCRIPT_KEY: &str = "restore.sh";
/// Where a restore Job puts the fetched backup (an emptyDir); its content is at `data/`.
pub const RESTORE_DIR: &str = "/restore";
/// Where the restore Job mounts the store's files, to replace them.
const FILES_DIR: &str = "/files";
/// The `files` container's commands: the store's files replaced by the backup's, lost+found (root's) aside. Each
/// entry is copied by itself: the volume's own directory is usually root's (a real volume's root is), and copying `.`
/// would try to give it the backup's times and mode, which only its owner may.
const REPLACE_FILES: &str = "set -eu
find \"$FILES_DIR\" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +
find \"$RESTORE_DIR/data/files\" -mindepth 1 -maxdepth 1 -exec cp -a {} \"$FILES_DIR/\" \\;
echo \"replaced the store's files: $(du -sk \"$FILES_DIR\" 2>/dev/null | cut -f1) KiB\"
";
const SCRIPTS_DIR: &str = "/opt/store-platform";
/// Where the dump, the manifest and the store's files are put together: the paths every snapshot records.
pub const BACKUP_DIR: &str = "/backup";

/// One backup pod's containers (the dump runs first, alone): restic holds a store's index and a chunk in memory; a
/// dump streams.
pub const BACKUP_SIZE: Size = Size {
    cpu_request_milli: 100,
    memory_request_mi: 128,
    cpu_limit_milli: 1000,
    memory_limit_mi: 512,
};

/// How long one backup may run before Kubernetes stops it; the next one starts afresh.
const RUN_DEADLINE_SECONDS: i64 = 3600;

pub fn script_config_map(id: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(id, SCRIPT_CONFIG, BACKUP),
        data: Some(
            [
                (SCRIPT_KEY.to_owned(), SCRIPT.to_owned()),
                (RESTORE_SCRIPT_KEY.to_owned(), RESTORE_SCRIPT.to_owned()),
            ]
            .into(),
        ),
        ..ConfigMap::default()
    }
}

/// The labels of a backup Job and its pod.
fn job_labels(id: &str, kind: Kind) -> std::collections::BTreeMap<String, String> {
    let mut labels = labels(id, BACKUP);
    labels.insert(KIND_LABEL.to_owned(), kind.as_str().to_owned());
    labels
}

/// On-demand backup Job `name` of `store`.
pub fn job(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    backup: &Backup,
    kind: Kind,
    name: &str,
) -> Job {
    let mut metadata = object_meta(&store.id, name, BACKUP);
    metadata.labels = Some(job_labels(&store.id, kind));
    Job {
        metadata,
        spec: Some(job_spec(store, source, settings, backup, kind)),
        ..Job::default()
    }
}

/// The CronJob of `store`'s scheduled backups. Its Jobs carry the same labels as on-demand ones, so the platform
/// sees both alike.
pub fn cron_job(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    backup: &Backup,
) -> CronJob {
    let kind = Kind::Scheduled;
    CronJob {
        metadata: object_meta(&store.id, SCHEDULE, BACKUP),
        spec: Some(CronJobSpec {
            schedule: backup.schedule.clone(),
            concurrency_policy: Some("Forbid".to_owned()),
            // A run missed by more than an hour (the controller was down) waits for the next one.
            starting_deadline_seconds: Some(3600),
            successful_jobs_history_limit: Some(2),
            failed_jobs_history_limit: Some(2),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels(&store.id, kind)),
                    ..ObjectMeta::default()
                }),
                spec: Some(job_spec(store, source, settings, backup, kind)),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}

fn job_spec(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    backup: &Backup,
    kind: Kind,
) -> JobSpec {
    JobSpec {
        // One attempt: a failed backup is reported as failed, and the next one is the retry.
        backoff_limit: Some(0),
        active_deadline_seconds: Some(RUN_DEADLINE_SECONDS),
        template: pod(store, source, settings, backup, kind),
        ..JobSpec::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// What the backup script reads besides the store's Secret.
fn script_env(store: &StoreRecord, source: &Source, backup: &Backup, kind: Kind) -> Vec<EnvVar> {
    let spec = serde_json::to_string(&store.spec).unwrap_or_else(|_| "{}".to_owned());
    vec![
        env("BACKUP_DIR", BACKUP_DIR),
        env(
            "S3_BUCKET_LOOKUP",
            if backup.path_style { "path" } else { "dns" },
        ),
        env("S3_REGION", backup.region.clone()),
        env("STORE_ID", store.id.clone()),
        env("STORE_TENANT", store.tenant.clone()),
        env("STORE_ENGINE", store.spec.engine.as_str()),
        env("ENGINE_VERSION", source.version.clone()),
        env("DATABASE_IMAGE", source.database_image.clone()),
        env("STORE_SPEC", spec),
        env("BACKUP_KIND", kind.as_str()),
        env("KEEP_DAILY", backup.keep_daily.to_string()),
        env("KEEP_WEEKLY", backup.keep_weekly.to_string()),
        env("KEEP_MONTHLY", backup.keep_monthly.to_string()),
        env("KEEP_ON_DEMAND", backup.keep_on_demand.to_string()),
        env("RESTIC_CACHE_DIR", "/tmp/restic-cache"),
        env("HOME", "/tmp"),
    ]
}

/// A container of a backup or restore Job: restricted, its last output its termination message, with `mounts`.
fn container(
    settings: &Settings,
    (name, image): (&str, &str),
    command: Vec<String>,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        command: Some(command),
        env: Some(env),
        resources: Some(BACKUP_SIZE.requirements()),
        security_context: Some(container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// `sh -c script`.
fn shell(script: &str) -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]
}

/// The pod of a backup or restore Job: `init` in order, then `main`, as the files' owner, with no API token. Its
/// volumes: the working directory `work` and `/tmp` (emptyDirs), the store's files (read-only for a backup) and
/// the scripts.
fn job_pod(
    source: &Source,
    labels: std::collections::BTreeMap<String, String>,
    (work, files_read_only): (&str, bool),
    affinity: Option<k8s_openapi::api::core::v1::Affinity>,
    (init, main): (Vec<Container>, Container),
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            affinity,
            restart_policy: Some("Never".to_owned()),
            init_containers: Some(init),
            containers: vec![main],
            volumes: Some(vec![
                empty_dir(work),
                empty_dir("tmp"),
                Volume {
                    name: "files".to_owned(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: source.files_claim.to_owned(),
                        read_only: Some(files_read_only),
                    }),
                    ..Volume::default()
                },
                config_map_volume("script", SCRIPT_CONFIG, 0o555),
            ]),
            security_context: Some(pod_security(source.uid)),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            ..PodSpec::default()
        }),
    }
}

fn pod(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    backup: &Backup,
    kind: Kind,
) -> PodTemplateSpec {
    let dump = container(
        settings,
        ("dump", &source.database_image),
        shell(source.dump),
        [
            env("BACKUP_DIR", BACKUP_DIR),
            secret_key_env(RESTRICT_KEY, STORE_SECRET, RESTRICT_KEY),
        ]
        .into_iter()
        .chain(source.dump_env.iter().cloned())
        .collect(),
        vec![mount("backup", BACKUP_DIR, false)],
    );
    let mut files = mount("files", &format!("{BACKUP_DIR}/files"), true);
    files.sub_path = source.files_sub_path.map(str::to_owned);
    let mut restic = container(
        settings,
        ("restic", &backup.image),
        vec!["sh".to_owned(), format!("{SCRIPTS_DIR}/{SCRIPT_KEY}")],
        script_env(store, source, backup, kind),
        vec![
            mount("backup", BACKUP_DIR, false),
            files,
            mount("tmp", "/tmp", false),
            mount("script", SCRIPTS_DIR, true),
        ],
    );
    restic.env_from = from_secret(STORE_SECRET);
    job_pod(
        source,
        job_labels(&store.id, kind),
        ("backup", true),
        Some(on_the_node_of(source.next_to)),
        (vec![dump], restic),
    )
}

/// Every key of Secret `name` as environment variables: where the repository is, its key, the object store's
/// credentials.
fn from_secret(name: &str) -> Option<Vec<EnvFromSource>> {
    Some(vec![EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: name.to_owned(),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }])
}

/// The backup a restore Job fetches, from which repository, and where its pod runs.
#[derive(Clone, Debug)]
pub struct RestoreFrom<'a> {
    /// The full id of the snapshot.
    pub snapshot: &'a str,
    /// The Secret naming the repository and holding its key: the store's own, or a clone's source's.
    pub secret: &'a str,
    /// None: anywhere the files' volume can attach (the store's writers are stopped). A clone's restore runs
    /// beside the writer already using the volume, if one is.
    pub affinity: Option<k8s_openapi::api::core::v1::Affinity>,
}

/// Restore Job `name` of `store`: fetches the snapshot (verifying it), loads its dump into the store's database with
/// the database's own client, empties the engine's cache, and replaces the store's files.
pub fn restore_job(
    store: &StoreRecord,
    source: &Source,
    settings: &Settings,
    backup: &Backup,
    name: &str,
    from: RestoreFrom,
) -> Job {
    let snapshot = from.snapshot;
    let work = || mount("restore", RESTORE_DIR, false);
    let mut fetch = container(
        settings,
        ("fetch", &backup.image),
        vec![
            "sh".to_owned(),
            format!("{SCRIPTS_DIR}/{RESTORE_SCRIPT_KEY}"),
        ],
        vec![
            env("SNAPSHOT", snapshot),
            env("RESTORE_DIR", RESTORE_DIR),
            env("STORE_ENGINE", store.spec.engine.as_str()),
            env(
                "S3_BUCKET_LOOKUP",
                if backup.path_style { "path" } else { "dns" },
            ),
            env("S3_REGION", backup.region.clone()),
            env("RESTIC_CACHE_DIR", "/tmp/restic-cache"),
            env("HOME", "/tmp"),
        ],
        vec![
            work(),
            mount("tmp", "/tmp", false),
            mount("script", SCRIPTS_DIR, true),
        ],
    );
    fetch.env_from = from_secret(from.secret);
    let mut load_env = vec![env("RESTORE_DIR", RESTORE_DIR)];
    load_env.extend(source.dump_env.iter().cloned());
    let load = container(
        settings,
        ("load", &source.database_image),
        shell(source.load),
        load_env,
        vec![work()],
    );
    let mut init_containers = vec![fetch, load];
    if let Some(cache) = &source.cache {
        init_containers.push(container(
            settings,
            ("flush", &cache.image),
            shell(cache.flush),
            vec![
                env("CACHE_HOST", cache.app),
                env("CACHE_PORT", cache.port.to_string()),
            ],
            vec![work()],
        ));
    }
    let mut files_mount = mount("files", FILES_DIR, false);
    files_mount.sub_path = source.files_sub_path.map(str::to_owned);
    let files = container(
        settings,
        ("files", &backup.image),
        shell(REPLACE_FILES),
        vec![env("RESTORE_DIR", RESTORE_DIR), env("FILES_DIR", FILES_DIR)],
        vec![work(), files_mount],
    );
    let mut metadata = object_meta(&store.id, name, BACKUP);
    // A label value holds at most 63 characters: the label names the snapshot by its first 16, the annotation whole.
    metadata.labels.get_or_insert_default().insert(
        RESTORE_LABEL.to_owned(),
        snapshot.chars().take(16).collect(),
    );
    metadata
        .annotations
        .get_or_insert_default()
        .insert(RESTORE_LABEL.to_owned(), snapshot.to_owned());
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(RUN_DEADLINE_SECONDS),
            template: job_pod(
                source,
                labels(&store.id, BACKUP),
                ("restore", false),
                from.affinity,
                (init_containers, files),
            ),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
