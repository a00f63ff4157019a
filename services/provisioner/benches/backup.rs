//! Backup and restore benchmark, process level: a Medusa store with 1,000 orders and 100 MB of uploaded images, its
//! backup and restore Jobs run exactly as backup_real.rs runs them (the Jobs' containers and environment, as the
//! pods' uid; Debian's PostgreSQL, Redis and restic; moto's S3 server as the object store). What it prints:
//!
//! - the first backup's time, the store's size and the repository's size after it;
//! - a second backup of the unchanged store: its time and what it added to the repository (deduplication);
//! - a restore in place over the store (its orders and images changed since): its time;
//! - a restore of a deleted store (its database emptied and its volume empty): its time.
//!
//!     make bench-backup
//!
//! A benchmark, not a test: nothing here passes or fails on a number.

use std::{os::unix::fs::chown, process::Command, time::Instant};

use store_platform_provisioner::{
    medusa::{self, meta::NODE_UID},
    settings::Settings,
};

#[path = "../tests/medusa_support/mod.rs"]
mod medusa_support;
use medusa_support::*;

#[path = "../tests/backup_support/mod.rs"]
mod backup_support;
use backup_support::*;

const UPLOADS: usize = 100;
const UPLOAD_BYTES: usize = 1024 * 1024;

/// The repository's size in the object store, as restic counts it (every blob, compressed and encrypted).
fn repository_bytes(secret: &std::collections::BTreeMap<String, String>) -> String {
    let output = Command::new(RESTIC)
        .args([
            "-o",
            "s3.bucket-lookup=path",
            "--no-cache",
            "stats",
            "--mode",
            "raw-data",
        ])
        .env_clear()
        .envs(secret)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("restic stats");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Total Size:")
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    let objects = object_store(dir.path());
    let mut settings = Settings::local();
    settings.backup = Some(backup_settings(&objects.endpoint, dir.path()));
    let backup = settings.backup.clone().expect("backups on");
    let secret = values(&medusa::secret::credentials(STORE, OWNER));
    let databases = Databases::start(&settings, &secret);
    let target = medusa_target(&databases, &settings, &secret);

    databases.sql(
        "medusa",
        "CREATE TABLE store_order (id serial PRIMARY KEY, email text NOT NULL, total numeric(12, 2) NOT NULL, \
         items jsonb NOT NULL); \
         INSERT INTO store_order (email, total, items) \
         SELECT 'customer' || n || '@example.com', n * 1.5, \
           jsonb_build_array(jsonb_build_object('sku', 'SKU-' || n, 'quantity', 1 + n % 3, 'title', repeat('x', 200))) \
         FROM generate_series(1, 1000) AS n",
    );
    let node = u32::try_from(NODE_UID).expect("uid");
    // Images do not compress: random bytes stand for them.
    let mut random = std::fs::File::open("/dev/urandom").expect("urandom");
    for n in 0..UPLOADS {
        let path = databases.uploads.join(format!("image-{n}.jpg"));
        let mut file = std::fs::File::create(&path).expect("an upload");
        std::io::copy(
            &mut std::io::Read::take(&mut random, UPLOAD_BYTES as u64),
            &mut file,
        )
        .expect("write");
        chown(&path, Some(node), Some(node)).expect("chown");
    }

    let repository_secret = repository_secret(&backup, &new_key(&backup));
    let work = dir.path().join("job");
    scratch(&work);

    let started = Instant::now();
    let first = target.backup(&settings, &repository_secret, &work);
    let first_time = started.elapsed();
    assert!(first.ok, "{}", first.output);
    let bytes: u64 = field(&first.termination, "bytes").parse().expect("bytes");
    println!(
        "first backup: {:.1} s; the store's data {:.1} MB; repository {}",
        first_time.as_secs_f64(),
        bytes as f64 / 1e6,
        repository_bytes(&repository_secret)
    );

    let started = Instant::now();
    let second = target.backup(&settings, &repository_secret, &work);
    let second_time = started.elapsed();
    assert!(second.ok, "{}", second.output);
    let added: u64 = field(&second.termination, "added").parse().expect("added");
    println!(
        "second backup, unchanged: {:.1} s; added {added} bytes ({:.3} % of the first)",
        second_time.as_secs_f64(),
        added as f64 * 100.0 / bytes as f64
    );
    let snapshot = field(&second.termination, "snapshot").to_owned();

    databases.sql("medusa", "DELETE FROM store_order WHERE id % 10 = 0");
    for n in 0..10 {
        std::fs::remove_file(databases.uploads.join(format!("image-{n}.jpg"))).expect("remove");
    }
    let started = Instant::now();
    target
        .restore(&settings, &repository_secret, &work, &snapshot)
        .unwrap_or_else(|transcript| panic!("{transcript}"));
    println!("restore in place: {:.1} s", started.elapsed().as_secs_f64());

    databases.sql("medusa", "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    for entry in std::fs::read_dir(&databases.uploads).expect("uploads") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    let started = Instant::now();
    target
        .restore(&settings, &repository_secret, &work, &snapshot)
        .unwrap_or_else(|transcript| panic!("{transcript}"));
    println!(
        "restore of a deleted store (empty database and volume): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let orders = databases.sql("medusa", "SELECT count(*) FROM store_order");
    assert_eq!(orders, "1000");
    assert_eq!(
        std::fs::read_dir(&databases.uploads)
            .expect("uploads")
            .count(),
        UPLOADS
    );
}
