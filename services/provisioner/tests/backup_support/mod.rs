//! The backup and restore Jobs of a store run outside Kubernetes, as their pods run them, for backup_real.rs and
//! the `backup` benchmark: moto's S3 server as the object store, the Jobs' containers with their environment (the
//! Services' names pointing at loopback ports), as the pods' uid, the store's files mounted where the pods mount
//! them.
// Each user uses a part of this.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    os::unix::fs::{PermissionsExt as _, chown},
    path::Path,
    process::Command,
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::Container;
use store_platform_provisioner::{
    backup::{self, Kind, Source, job, repository},
    engine::Engine as _,
    medusa::{self, meta::NODE_UID},
    settings::{Backup, Settings},
};
use store_platform_runtime::record::{Engine as EngineKind, StoreRecord, StoreSpec, StoreStatus};

use crate::medusa_support::{
    Databases, OWNER, STORE, environment, pod_spec, postgres_bin, run, termination_message, text,
    values,
};

pub const RESTIC: &str = "/usr/bin/restic";
pub const TENANT: &str = "acme";
pub const BUCKET: &str = "store-backups";

pub use store_platform_test_support::object_store::ObjectStore;

/// moto's S3 server on a loopback port, with the platform's bucket, for one test.
pub fn object_store(dir: &Path) -> ObjectStore {
    ObjectStore::start(&[], std::net::Ipv4Addr::LOCALHOST, BUCKET, dir)
}

pub fn backup_settings(endpoint: &str, dir: &Path) -> Backup {
    let access = dir.join("access-key");
    let secret = dir.join("secret-key");
    std::fs::write(&access, "platform-access-key\n").expect("key file");
    std::fs::write(&secret, "platform-secret-key\n").expect("key file");
    Backup {
        endpoint: endpoint.to_owned(),
        bucket: BUCKET.to_owned(),
        prefix: "store-platform".to_owned(),
        region: "us-east-1".to_owned(),
        path_style: true,
        access_key_file: access,
        secret_key_file: secret,
        image: "restic/restic:0.17.3".to_owned(),
        schedule: "17 3 * * *".to_owned(),
        keep_daily: 7,
        keep_weekly: 4,
        keep_monthly: 3,
        keep_on_demand: 10,
        deleted_retention: Duration::from_secs(30 * 86_400),
        key_namespace: "store-platform".to_owned(),
        egress_cidrs: vec!["127.0.0.1/32".to_owned()],
        egress_port: 9000,
    }
}

pub fn store(engine: EngineKind) -> StoreRecord {
    StoreRecord {
        id: STORE.to_owned(),
        tenant: TENANT.to_owned(),
        spec: StoreSpec {
            display_name: "Shop".to_owned(),
            engine,
            admin_email: OWNER.to_owned(),
            source: None,
        },
        status: StoreStatus::pending(&[], jiff::Timestamp::UNIX_EPOCH),
        create_time: None,
        terminating: false,
        damage: None,
    }
}

/// The store whose backup and restore Jobs a test runs: its record, its engine's part, its generated secrets, where
/// its files are, the loopback ports standing in for its Services, the uid its pods run as, and PATH with its
/// database's client tools.
pub struct Target<'a> {
    pub store: StoreRecord,
    pub source: Source,
    pub secret: &'a BTreeMap<String, String>,
    pub files: &'a Path,
    pub database_port: u16,
    pub cache_port: Option<u16>,
    pub uid: u32,
    pub path: String,
}

impl Target<'_> {
    /// A container's environment as the kubelet gives it (its Secret references resolved from the store's
    /// Secrets, `envFrom` the backup Secret), with the Services' names and the pod's paths replaced by the test's.
    fn environment(
        &self,
        container: &Container,
        repository_secret: &BTreeMap<String, String>,
        paths: &[(&str, &Path)],
    ) -> Vec<(String, String)> {
        let mut secrets = self.secret.clone();
        secrets.extend(repository_secret.clone());
        let mut env: Vec<(String, String)> = environment(container, &secrets)
            .into_iter()
            .map(|(name, value)| {
                let local = match name.as_str() {
                    "DATABASE_HOST" | "CACHE_HOST" => Some("127.0.0.1".to_owned()),
                    "DATABASE_PORT" => Some(self.database_port.to_string()),
                    "CACHE_PORT" => self.cache_port.map(|port| port.to_string()),
                    _ => paths
                        .iter()
                        .find(|(variable, _)| *variable == name)
                        .map(|(_, path)| path.display().to_string()),
                };
                (name, local.unwrap_or(value))
            })
            .collect();
        if container.env_from.is_some() {
            env.extend(
                repository_secret
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        env.push(("PATH".to_owned(), self.path.clone()));
        env
    }

    /// `argv` as the pod runs it: the pod's uid and gid with no other groups, only `env`; with `files`, the store's
    /// files mounted read-only at `$BACKUP_DIR/files` in a mount namespace of its own.
    fn as_the_pod(&self, files: Option<&Path>, env: &[(String, String)], argv: &[&str]) -> Command {
        let uid = self.uid;
        let mut command = Command::new("unshare");
        command.args(["--mount", "--propagation", "private", "--", "sh", "-c"]);
        match files {
            Some(backup_dir) => {
                command
                    .arg(format!(
                        r#"set -e
mount --bind "$1" "$2/files"
mount -o remount,bind,ro "$2/files"
shift 2
exec setpriv --reuid={uid} --regid={uid} --clear-groups -- "$@""#
                    ))
                    .arg("pod")
                    .arg(self.files)
                    .arg(backup_dir);
            }
            None => {
                command
                    .arg(format!(
                        r#"exec setpriv --reuid={uid} --regid={uid} --clear-groups -- "$@""#
                    ))
                    .arg("pod");
            }
        }
        command
            .args(argv)
            .env_clear()
            .envs(env.iter().map(|(n, v)| (n, v)));
        command
    }

    /// Runs an on-demand backup Job of the store: its dump container, then its restic container, as the pod does.
    pub fn backup(
        &self,
        settings: &Settings,
        repository_secret: &BTreeMap<String, String>,
        work: &Path,
    ) -> Run {
        let backup = settings.backup.as_ref().expect("backups on");
        let job = job::job(
            &self.store,
            &self.source,
            settings,
            backup,
            Kind::OnDemand,
            "backup-1",
        );
        let pod = pod_spec(job.spec.map(|s| s.template));
        let backup_dir = work.join("backup");
        let _ = std::fs::remove_dir_all(&backup_dir);
        scratch(&backup_dir);
        scratch(&backup_dir.join("files"));
        let tmp = work.join("tmp");
        scratch(&tmp);
        let termination_log = work.join("termination-log");
        std::fs::write(&termination_log, "").expect("termination log");
        chown(&termination_log, Some(self.uid), Some(self.uid)).expect("chown");
        let paths = [
            ("BACKUP_DIR", backup_dir.as_path()),
            ("HOME", tmp.as_path()),
        ];
        let cache = tmp.join("restic-cache");

        let dump = &pod.init_containers.as_ref().expect("init containers")[0];
        assert_eq!(dump.name, "dump");
        let env = self.environment(dump, repository_secret, &paths);
        let command = dump.command.clone().expect("the dump's command");
        let argv: Vec<&str> = command.iter().map(String::as_str).collect();
        let dumped = run(
            self.as_the_pod(Some(&backup_dir), &env, &argv),
            Duration::from_secs(120),
        );
        if !dumped.status.success() {
            return Run {
                ok: false,
                output: text(&dumped),
                termination: termination_message(&text(&dumped)),
            };
        }

        let restic = &pod.containers[0];
        assert_eq!(restic.name, "restic");
        let script = work.join(job::SCRIPT_KEY);
        std::fs::write(&script, job::SCRIPT).expect("the script, as the ConfigMap mounts it");
        let mut env = self.environment(restic, repository_secret, &paths);
        env.extend([
            ("RESTIC_CACHE_DIR".to_owned(), cache.display().to_string()),
            ("TMPDIR".to_owned(), tmp.display().to_string()),
            (
                "TERMINATION_LOG".to_owned(),
                termination_log.display().to_string(),
            ),
        ]);
        let script_path = script.display().to_string();
        let ran = run(
            self.as_the_pod(Some(&backup_dir), &env, &["sh", &script_path]),
            Duration::from_secs(300),
        );
        let output = text(&ran);
        Run {
            ok: ran.status.success(),
            termination: if ran.status.success() {
                std::fs::read_to_string(&termination_log).expect("termination log")
            } else {
                termination_message(&output)
            },
            output,
        }
    }

    /// Runs the restore Job of `snapshot` as the pod does: `fetch` (restic), `load` (the database's client),
    /// `flush` (the cache's, if the engine has one), then `files`; stops at the first container that fails, with its
    /// output.
    pub fn restore(
        &self,
        settings: &Settings,
        repository_secret: &BTreeMap<String, String>,
        work: &Path,
        snapshot: &str,
    ) -> Result<String, String> {
        let backup = settings.backup.as_ref().expect("backups on");
        let job = job::restore_job(
            &self.store,
            &self.source,
            settings,
            backup,
            "restore-1",
            job::RestoreFrom {
                snapshot,
                secret: store_platform_provisioner::backup::secret::STORE_SECRET,
                affinity: None,
            },
        );
        let pod = pod_spec(job.spec.map(|s| s.template));
        let restore_dir = work.join("restore");
        let _ = std::fs::remove_dir_all(&restore_dir);
        scratch(&restore_dir);
        let tmp = work.join("restore-tmp");
        scratch(&tmp);
        let script = work.join(job::RESTORE_SCRIPT_KEY);
        std::fs::write(&script, job::RESTORE_SCRIPT)
            .expect("the script, as the ConfigMap mounts it");
        let cache = tmp.join("cache");
        let paths = [
            ("RESTORE_DIR", restore_dir.as_path()),
            ("FILES_DIR", self.files),
            ("RESTIC_CACHE_DIR", cache.as_path()),
            ("HOME", tmp.as_path()),
        ];
        let mut transcript = String::new();
        let containers = pod
            .init_containers
            .clone()
            .expect("init containers")
            .into_iter()
            .chain(pod.containers.clone());
        for container in containers {
            let mut env = self.environment(&container, repository_secret, &paths);
            env.push(("TMPDIR".to_owned(), tmp.display().to_string()));
            let command = container.command.clone().expect("a command");
            let script_path = script.display().to_string();
            let argv: Vec<&str> =
                if command.len() == 2 && command[1].ends_with(job::RESTORE_SCRIPT_KEY) {
                    vec!["sh", &script_path]
                } else {
                    command.iter().map(String::as_str).collect()
                };
            let ran = run(self.as_the_pod(None, &env, &argv), Duration::from_secs(300));
            transcript.push_str(&format!("--- {}\n{}", container.name, text(&ran)));
            if !ran.status.success() {
                return Err(transcript);
            }
        }
        Ok(transcript)
    }
}

/// What one run of the backup Job produced.
pub struct Run {
    pub ok: bool,
    pub output: String,
    pub termination: String,
}

/// A scratch directory the pod's user may write, as an emptyDir is.
pub fn scratch(path: &Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
}

/// A Medusa store on `databases`.
pub fn medusa_target<'a>(
    databases: &'a Databases,
    settings: &Settings,
    secret: &'a BTreeMap<String, String>,
) -> Target<'a> {
    Target {
        store: store(EngineKind::Medusa),
        source: medusa::Medusa::new(Arc::new(settings.clone()))
            .backup_source(&store(EngineKind::Medusa)),
        secret,
        files: &databases.uploads,
        database_port: databases.postgres_port,
        cache_port: Some(databases.redis_port),
        uid: u32::try_from(NODE_UID).expect("uid"),
        path: format!("{}:/usr/bin:/bin", postgres_bin().display()),
    }
}

pub fn redis(databases: &Databases, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &databases.redis_port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn field<'a>(termination: &'a str, name: &str) -> &'a str {
    termination
        .split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {termination:?}"))
}

/// restic alone, as an operator without the platform runs it.
pub fn restic(backup: &Backup, secret: &BTreeMap<String, String>, args: &[&str]) -> String {
    let output = Command::new(RESTIC)
        .args(["-o", "s3.bucket-lookup=path", "--no-cache"])
        .args(args)
        .env_clear()
        .envs(secret)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("restic");
    assert!(
        output.status.success(),
        "restic {args:?} against {}: {}",
        backup.endpoint,
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A repository key made as the platform makes one.
pub fn new_key(backup: &Backup) -> String {
    values(&backup::secret::key_secret(
        &backup.key_namespace,
        TENANT,
        STORE,
    ))[backup::secret::PASSWORD_KEY]
        .clone()
}

/// The store's backup Secret, as its `backups` step writes it, with `key`: what the Jobs read.
pub fn repository_secret(backup: &Backup, key: &str) -> BTreeMap<String, String> {
    let credentials = repository::Credentials::read(backup).expect("credentials");
    values(&backup::secret::store_secret(
        STORE,
        &repository::location(backup, TENANT, STORE),
        key,
        &credentials,
    ))
}
