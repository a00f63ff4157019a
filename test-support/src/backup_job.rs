//! The part of a backup Job the simulated kubelet cannot play: its restic container, run here with the platform's
//! backup script (`script`), Debian's restic, and the container's own environment and Secret, as the Job declares
//! them. Tests on the simulated kubelet use it where a backup must really land in the object store.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use k8s_openapi::api::{batch::v1::Job, core::v1::Secret};
use kube::{Api, Client, api::ListParams};

/// What the restic container of store `id`'s on-demand backup Job would have done,
/// had a kubelet run it: the platform's backup script, with Debian's restic, the store's backup Secret and the
/// container's own environment, writes a real snapshot into the store's repository. Only the places differ: a
/// directory of the test's for `/backup` (holding a small dump and an upload, for what the `dump` container and the
/// store's volume would give) and for `/tmp`. Returns the snapshot as the repository lists
/// it, read back with restic.
pub async fn run_the_restic_container(client: &Client, id: &str, script: &Path) -> Written {
    let namespace = format!("store-{id}");
    // The click's BackupStore may still be on its way.
    let deadline = Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let jobs =
            Api::<Job>::namespaced(client.clone(), &namespace)
                .list(&ListParams::default().labels(
                    "app.kubernetes.io/name=backup,store-platform.io/backup-kind=on-demand",
                ))
                .await
                .expect("list the store's backup Jobs")
                .items;
        if !jobs.is_empty() || Instant::now() > deadline {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(jobs.len(), 1, "one on-demand backup Job: {jobs:?}");
    let pod = jobs[0]
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .expect("the Job's pod");
    let restic = pod
        .containers
        .iter()
        .find(|container| container.name == "restic")
        .expect("the restic container");
    let mut environment = BTreeMap::new();
    for source in restic.env_from.iter().flatten() {
        let name = &source.secret_ref.as_ref().expect("a Secret").name;
        let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
            .get(name)
            .await
            .expect("the store's backup Secret");
        for (key, value) in secret.data.unwrap_or_default() {
            environment.insert(key, String::from_utf8(value.0).expect("utf-8"));
        }
    }
    for variable in restic.env.iter().flatten() {
        let value = variable
            .value
            .clone()
            .unwrap_or_else(|| panic!("{} is not a plain value: {variable:?}", variable.name));
        environment.insert(variable.name.clone(), value);
    }
    assert_eq!(environment["BACKUP_KIND"], "on-demand");

    let dir = tempfile::tempdir().expect("the pod's directories");
    let backup_dir = dir.path().join("backup");
    std::fs::create_dir_all(backup_dir.join("files/uploads")).expect("mkdir");
    std::fs::write(
        backup_dir.join("database.sql"),
        format!("-- the database of {id}, as the dump container would leave it\n"),
    )
    .expect("the dump");
    std::fs::write(
        backup_dir.join("files/uploads/logo.png"),
        b"an upload of the store's owner",
    )
    .expect("an upload");
    let termination = dir.path().join("termination-log");
    for (key, value) in [
        ("BACKUP_DIR", backup_dir.display().to_string()),
        ("HOME", dir.path().display().to_string()),
        ("TMPDIR", dir.path().display().to_string()),
        (
            "RESTIC_CACHE_DIR",
            dir.path().join("restic-cache").display().to_string(),
        ),
        ("TERMINATION_LOG", termination.display().to_string()),
        ("PATH", "/usr/bin:/bin".to_owned()),
    ] {
        environment.insert(key.to_owned(), value);
    }
    let output = tokio::process::Command::new("sh")
        .arg(script)
        .env_clear()
        .envs(&environment)
        .output()
        .await
        .expect("run the backup script");
    assert!(
        output.status.success(),
        "the backup script failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // `snapshot=<id> bytes=<n> added=<n>`, as the Job's termination message.
    let message = std::fs::read_to_string(&termination).expect("the termination message");
    let field = |name: &str| {
        message
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {message:?}"))
            .to_owned()
    };
    let (snapshot, bytes) = (field("snapshot"), field("bytes"));

    // The snapshot, as anyone with the key reads it from the object store.
    let listed = tokio::process::Command::new("restic")
        .args([
            "-o",
            &format!("s3.bucket-lookup={}", environment["S3_BUCKET_LOOKUP"]),
            "--no-cache",
            "snapshots",
            "--json",
            &snapshot,
        ])
        .env_clear()
        .envs(&environment)
        .output()
        .await
        .expect("run restic");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let snapshots: Vec<serde_json::Value> =
        serde_json::from_slice(&listed.stdout).expect("restic's JSON");
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    // The script reports restic's short id; the repository lists the full one, as the platform shows it.
    let full_id = snapshots[0]["id"].as_str().expect("the snapshot's id");
    assert!(
        full_id.starts_with(&snapshot),
        "{full_id} is not {snapshot}"
    );
    let tags = snapshots[0]["tags"].to_string();
    assert!(
        tags.contains("kind=on-demand") && tags.contains(&format!("bytes={bytes}")),
        "{tags}"
    );
    let time: jiff::Timestamp = snapshots[0]["time"]
        .as_str()
        .expect("the snapshot's time")
        .parse()
        .expect("an RFC 3339 time");
    Written {
        id: full_id.to_owned(),
        bytes,
        time,
    }
}

/// A snapshot as the repository lists it.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its full id.
    pub id: String,
    /// Its size tag, as the script wrote it.
    pub bytes: String,
    pub time: jiff::Timestamp,
}
