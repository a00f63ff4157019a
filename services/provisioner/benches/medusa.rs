//! Medusa store benchmark, process level: one store brought up on this machine exactly as medusa_real.rs does it
//! (the pods' commands and environment, Debian's PostgreSQL 15 and Redis, the backend and storefront this project
//! ships, the images' Node.js), timed step by step as the provisioner runs them, then one order placed over the
//! store API. What it prints:
//!
//! - seconds per step, and start → ready (what CreateStore → READY costs on real pods, less image pulls, volume
//!   binding and scheduling);
//! - the bootstrap run a second time (a retried or repeated Job: nothing to do);
//! - one order over the store API;
//! - peak memory (VmHWM) of the server, the worker, PostgreSQL (the postmaster and its largest backend), Redis and
//!   the storefront, and the peak of the bootstrap's processes together (sampled every 50 ms).
//!
//!     make bench-medusa
//!
//! A benchmark, not a test: nothing here passes or fails on a number.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use store_platform_provisioner::{
    medusa::{backend, parse_publishable_key, secret, storefront},
    settings::Settings,
};
use store_platform_test_support::{daemon::Daemon, process::free_port};

#[path = "../tests/medusa_support/mod.rs"]
mod medusa_support;
use medusa_support::*;

/// A /proc/<pid>/status field in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Resident memory of `pid` and all its descendants, in KiB.
fn tree_rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").unwrap_or(0) + children(pid).into_iter().map(tree_rss).sum::<u64>()
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn main() {
    let app = medusa_app();
    let settings = Settings::local();
    let secret = values(&secret::credentials(STORE, OWNER));
    let mut steps: Vec<(&str, Duration)> = Vec::new();
    let started = Instant::now();

    let databases = Databases::start(&settings, &secret);
    steps.push(("postgres and redis (initdb, start)", started.elapsed()));
    let key_file = databases.dir.path().join("termination-log");

    let timed = |command: Command, what: &str| {
        let began = Instant::now();
        let mut command = command;
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let mut peak = 0;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            peak = peak.max(tree_rss(child.id()));
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{what} failed");
        (began.elapsed(), peak)
    };
    let (first, bootstrap_peak) = timed(
        bootstrap_command(&app, &databases, &secret, &key_file),
        "the bootstrap",
    );
    steps.push(("bootstrap (migrations, admin, seed)", first));
    let key = parse_publishable_key(&std::fs::read_to_string(&key_file).expect("key"))
        .expect("a key")
        .to_owned();

    let began = Instant::now();
    let server_pod = container_of(backend::server(STORE, &settings));
    let worker_pod = container_of(backend::worker(STORE, &settings));
    // Both at once, as the backend step applies both Deployments.
    let mut server = Backend::spawn(&app, &databases, &secret, &server_pod, "server");
    let mut worker = Backend::spawn(&app, &databases, &secret, &worker_pod, "worker");
    server.wait_started();
    worker.wait_started();
    steps.push(("backend (server and worker, to /health)", began.elapsed()));

    let began = Instant::now();
    let storefront_pod = container_of(storefront::deployment(STORE, &settings));
    let config: BTreeMap<String, String> = storefront::config(STORE, &key).data.expect("data");
    let port = free_port();
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(storefront_dir())
        .env_clear()
        .env("PATH", path(&app))
        .envs(environment_with(&storefront_pod, &secret, &config))
        .env("PORT", port.to_string());
    let mut shop = Daemon::spawn(
        "storefront",
        command,
        &databases.dir.path().join("storefront.log"),
    )
    .expect("storefront");
    shop.wait_for(([127, 0, 0, 1], port).into(), Duration::from_secs(30));
    steps.push(("storefront", began.elapsed()));
    let total = started.elapsed();

    let (again, _) = timed(
        bootstrap_command(&app, &databases, &secret, &key_file),
        "the second bootstrap",
    );
    let began = Instant::now();
    place_order(&server, &key, &settings, "bench@example.com");
    let order = began.elapsed();
    // Let the worker process the order's events before reading its peak.
    std::thread::sleep(Duration::from_secs(5));

    let node = Command::new(app.join(".node/bin/node"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "Medusa store, process level (Node.js {node}, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (step, took) in &steps {
        println!("  {step:<45} {:>6.1} s", took.as_secs_f64());
    }
    println!("  {:<45} {:>6.1} s", "start → ready", total.as_secs_f64());
    println!(
        "  {:<45} {:>6.1} s",
        "bootstrap again (nothing to do)",
        again.as_secs_f64()
    );
    println!(
        "  {:<45} {:>6.2} s",
        "one order over the store API (10 calls)",
        order.as_secs_f64()
    );
    let hwm = |daemon: &Daemon| status_kib(daemon.pid(), "VmHWM:").unwrap_or(0);
    let postgres = databases.postgres.pid();
    let backend_peak = children(postgres)
        .into_iter()
        .filter_map(|pid| status_kib(pid, "VmHWM:"))
        .max()
        .unwrap_or(0);
    println!("Peak memory (VmHWM)");
    println!("  {:<45} {:>8}", "server", mib(hwm(&server.daemon)));
    println!("  {:<45} {:>8}", "worker", mib(hwm(&worker.daemon)));
    println!(
        "  {:<45} {:>8}",
        "bootstrap (its processes together)",
        mib(bootstrap_peak)
    );
    println!(
        "  {:<45} {:>8}",
        "postgres: postmaster",
        mib(status_kib(postgres, "VmHWM:").unwrap_or(0))
    );
    println!(
        "  {:<45} {:>8}",
        "postgres: largest backend",
        mib(backend_peak)
    );
    if let Some(redis) = &databases.redis {
        println!("  {:<45} {:>8}", "redis", mib(hwm(redis)));
    }
    println!("  {:<45} {:>8}", "storefront", mib(hwm(&shop)));
}
