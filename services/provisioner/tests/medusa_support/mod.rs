//! The Medusa store of medusa_real.rs and of the `medusa` benchmark, run outside Kubernetes from the provisioner's
//! own objects: Debian's PostgreSQL and Redis with the StatefulSets' contract, and the backend's and storefront's
//! processes with their pods' environment and entrypoint arguments (see medusa_real.rs for what differs from pods).
//!
//! The backend runs as its pods run it: as the image's user (uid 1000), in a mount namespace of its own where the
//! built application is read-only at the image's path (/opt/medusa, owned by root) with the image's Node.js, and
//! the store's uploads volume, a directory of the test's, is mounted where the Deployments mount it.
// Each user (the test, the benchmark) uses a part of this.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::SocketAddr,
    os::unix::{
        fs::{PermissionsExt as _, chown},
        process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Container, EnvVar, Secret};
use serde_json::{Value, json};
use store_platform_provisioner::{
    medusa::{
        self, bootstrap,
        meta::{APP_DIR, NODE_UID, UPLOADS_DIR},
        postgres, redis,
    },
    settings::Settings,
};
use store_platform_test_support::{
    daemon::{Daemon, require_programs},
    process::free_port,
};

pub const STORE: &str = "shop";
pub const OWNER: &str = "owner@example.com";

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";
pub const PSQL: &str = "/usr/bin/psql";
pub const CURL: &str = "/usr/bin/curl";

/// The built application (scripts/medusa.sh prints it; scripts/test.sh exports it).
pub fn medusa_app() -> PathBuf {
    let dir = std::env::var_os("STORE_PLATFORM_MEDUSA")
        .map(PathBuf::from)
        .expect("STORE_PLATFORM_MEDUSA: run scripts/medusa.sh and export what it prints (make test does)");
    assert!(
        dir.join(".medusa/server/medusa-config.js").exists(),
        "{} holds no Medusa build: run scripts/medusa.sh",
        dir.display()
    );
    dir
}

/// Debian's newest PostgreSQL server binaries.
pub fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: scripts/debian-packages.sh installs it (make test runs it)")
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/postgres")
}

/// uid and gid of Debian's `postgres` user (PostgreSQL refuses to run as root).
pub fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let fields: Vec<&str> = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .expect("no postgres user: the postgresql package creates it")
        .split(':')
        .collect();
    (
        fields[2].parse().expect("a uid"),
        fields[3].parse().expect("a gid"),
    )
}

/// The values of a generated Secret, by key.
pub fn values(secret: &Secret) -> BTreeMap<String, String> {
    secret.string_data.clone().expect("string data")
}

/// A container's environment as the kubelet gives it: Secret references resolved, `$(VAR)` expanded from the
/// variables before it.
pub fn environment(
    container: &Container,
    secret: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    environment_with(container, secret, &BTreeMap::new())
}

/// The same, with the store's ConfigMap values for its ConfigMap references.
pub fn environment_with(
    container: &Container,
    secret: &BTreeMap<String, String>,
    config: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut resolved: Vec<(String, String)> = Vec::new();
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.clone().unwrap_or_default()
    {
        let value = match (value, value_from) {
            (Some(value), None) => resolved.iter().fold(value, |value, (earlier, its)| {
                value.replace(&format!("$({earlier})"), its)
            }),
            (None, Some(from)) => match (from.secret_key_ref, from.config_map_key_ref) {
                (Some(reference), None) => secret
                    .get(&reference.key)
                    .unwrap_or_else(|| panic!("no key {} in the Secret", reference.key))
                    .clone(),
                (None, Some(reference)) => config
                    .get(&reference.key)
                    .unwrap_or_else(|| panic!("no key {} in the ConfigMap", reference.key))
                    .clone(),
                other => panic!("{name}: {other:?}"),
            },
            other => panic!("{name}: {other:?}"),
        };
        resolved.push((name, value));
    }
    resolved
}

pub fn env_value<'a>(env: &'a [(String, String)], name: &str) -> &'a str {
    &env.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| {
            panic!(
                "no {name} in {:?}",
                env.iter().map(|(n, _)| n).collect::<Vec<_>>()
            )
        })
        .1
}

/// PostgreSQL and Redis of one store, on loopback.
pub struct Databases {
    pub dir: tempfile::TempDir,
    /// The store's uploads volume, owned by the pods' user as `fsGroup` makes it.
    pub uploads: PathBuf,
    pub postgres: Daemon,
    pub redis: Option<Daemon>,
    pub postgres_port: u16,
    pub redis_port: u16,
    /// The superuser the official image makes from `POSTGRES_USER` / `POSTGRES_PASSWORD`.
    pub user: String,
    pub password: String,
}

impl Databases {
    /// Initialises and starts PostgreSQL as the official image's entrypoint does from the StatefulSet's
    /// environment (superuser `POSTGRES_USER` with `POSTGRES_PASSWORD`, scram-sha-256 over TCP, database
    /// `POSTGRES_DB`), and Redis with the StatefulSet's arguments.
    pub fn start(settings: &Settings, secret: &BTreeMap<String, String>) -> Self {
        let bin = postgres_bin();
        require_programs(&[REDIS_SERVER, PSQL, CURL]);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (uid, gid) = postgres_user();
        let uploads = dir.path().join("uploads");
        std::fs::create_dir(&uploads).expect("the uploads volume");
        let node = u32::try_from(NODE_UID).expect("a uid");
        chown(&uploads, Some(node), Some(node)).expect("chown");

        let statefulset = postgres::stateful_set(STORE, settings);
        let spec = pod_spec(statefulset.spec.map(|s| s.template));
        let env = environment(&spec.containers[0], secret);
        let user = env_value(&env, "POSTGRES_USER").to_owned();
        let password = env_value(&env, "POSTGRES_PASSWORD").to_owned();
        let database = env_value(&env, "POSTGRES_DB").to_owned();

        let data = dir.path().join("pgdata");
        let socket = dir.path().join("pgsocket");
        for path in [&data, &socket] {
            std::fs::create_dir(path).expect("a directory for PostgreSQL");
            chown(path, Some(uid), Some(gid)).expect("chown");
        }
        chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        // The pods' user reaches its uploads, its termination log and PostgreSQL's socket through it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, &password).expect("the password file");
        chown(&pwfile, Some(uid), Some(gid)).expect("chown");
        let initdb = Command::new(bin.join("initdb"))
            .args([
                "--username",
                &user,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data)
            .uid(uid)
            .gid(gid)
            .output()
            .expect("initdb");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        std::fs::remove_file(&pwfile).expect("remove the password file");

        let postgres_port = free_port();
        let mut command = Command::new(bin.join("postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &postgres_port.to_string(), "-k"])
            .arg(&socket)
            .uid(uid)
            .gid(gid);
        let log = dir.path().join("postgres.log");
        std::fs::File::create(&log).expect("PostgreSQL's log");
        chown(&log, Some(uid), Some(gid)).expect("chown");
        let mut postgres = Daemon::spawn("postgres", command, &log).expect("start PostgreSQL");
        postgres.wait_for(
            ([127, 0, 0, 1], postgres_port).into(),
            Duration::from_secs(60),
        );

        let redis_port = free_port();
        let statefulset = redis::stateful_set(STORE, settings);
        let args = pod_spec(statefulset.spec.map(|s| s.template)).containers[0]
            .args
            .clone()
            .expect("Redis's arguments");
        assert_eq!(args[0], "redis-server");
        let redis_dir = dir.path().join("redis");
        std::fs::create_dir(&redis_dir).expect("Redis's directory");
        let mut args = args[1..].to_vec();
        for (flag, value) in [
            ("--dir", redis_dir.display().to_string()),
            ("--port", redis_port.to_string()),
        ] {
            let at = args
                .iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
            args[at + 1] = value;
        }
        let mut command = Command::new(REDIS_SERVER);
        command
            .args(&args)
            .args(["--bind", "127.0.0.1", "--save", ""]);
        let mut redis =
            Daemon::spawn("redis", command, &dir.path().join("redis.log")).expect("start Redis");
        redis.wait_for(([127, 0, 0, 1], redis_port).into(), Duration::from_secs(30));

        let databases = Self {
            dir,
            uploads,
            postgres,
            redis: Some(redis),
            postgres_port,
            redis_port,
            user,
            password,
        };
        databases.wait_until_accepting();
        if database != "postgres" {
            databases.sql("postgres", &format!("CREATE DATABASE {database}"));
        }
        databases
    }

    /// Waits until PostgreSQL accepts connections: it listens a moment before it does ("the database system is
    /// starting up").
    fn wait_until_accepting(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(postgres_bin().join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.postgres_port.to_string(),
                    "-U",
                    &self.user,
                ])
                .output()
                .expect("pg_isready");
            if ready.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL does not accept connections: {}\n{}",
                String::from_utf8_lossy(&ready.stdout),
                self.postgres.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `sql` as the superuser in `database`; returns what psql printed (unaligned, tuples only).
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(PSQL)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.postgres_port.to_string(),
                "-U",
                &self.user,
                "-d",
                database,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "psql {sql}: {}\nPostgreSQL's log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.postgres.log()
        );
        String::from_utf8(output.stdout)
            .expect("psql's output is UTF-8")
            .trim()
            .to_owned()
    }

    /// The pod's environment with the Services' names pointing at the loopback ports.
    pub fn localise(&self, env: Vec<(String, String)>) -> Vec<(String, String)> {
        let postgres_host = format!(
            "@{}:{}/",
            medusa::meta::POSTGRES,
            medusa::meta::POSTGRES_PORT
        );
        let redis_host = format!(
            "redis://{}:{}",
            medusa::meta::REDIS,
            medusa::meta::REDIS_PORT
        );
        env.into_iter()
            .map(|(name, value)| {
                let value = match name.as_str() {
                    "DATABASE_URL" => {
                        assert!(value.contains(&postgres_host), "{value}");
                        value.replace(
                            &postgres_host,
                            &format!("@127.0.0.1:{}/", self.postgres_port),
                        )
                    }
                    "REDIS_URL" => {
                        assert_eq!(value, redis_host);
                        format!("redis://127.0.0.1:{}", self.redis_port)
                    }
                    _ => value,
                };
                (name, value)
            })
            .collect()
    }
}

/// PATH with the image's Node.js first (scripts/medusa.sh put it in the build's `.node`).
pub fn path(app: &Path) -> String {
    format!(
        "{}:{}",
        app.join(".node/bin").display(),
        std::env::var("PATH").expect("PATH")
    )
}

/// Where the image's Node.js is, in the pods' mount namespace (the image has it in /usr/local/bin).
const POD_NODE_DIR: &str = "/opt/node";

/// `argv` run as the backend's pods run: uid and gid 1000 with no other groups, the built application read-only at
/// the image's path (root's files, as the image's `COPY` leaves them), the image's Node.js first on PATH, a home
/// of its own, and the store's uploads volume mounted where the container mounts it (if it does). Only the pod's
/// environment reaches it.
pub fn as_the_pod(
    app: &Path,
    container: &Container,
    uploads: &Path,
    env: &[(String, String)],
    argv: &[String],
) -> Command {
    let node = std::fs::canonicalize(app.join(".node/bin"))
        .expect("the image's Node.js (scripts/medusa.sh links it)");
    let mounts_uploads = container
        .volume_mounts
        .iter()
        .flatten()
        .any(|mount| mount.mount_path == UPLOADS_DIR);
    // A tmpfs over /opt, in this namespace only, holds the image's paths.
    let script = format!(
        r#"set -e
mount -t tmpfs -o mode=0755 pod-opt /opt
mkdir -p {APP_DIR} {POD_NODE_DIR}/bin /opt/home
mount --bind "$1" {APP_DIR}
mount -o remount,bind,ro {APP_DIR}
mount --bind "$2" {POD_NODE_DIR}/bin
mount -o remount,bind,ro {POD_NODE_DIR}/bin
if [ -n "$3" ]; then mount --bind "$3" {UPLOADS_DIR}; fi
chown {NODE_UID}:{NODE_UID} /opt/home
shift 3
exec setpriv --reuid={NODE_UID} --regid={NODE_UID} --clear-groups -- "$@""#
    );
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(script)
        .arg("pod")
        .arg(app)
        .arg(node)
        .arg(if mounts_uploads {
            uploads.as_os_str()
        } else {
            "".as_ref()
        })
        .args(argv)
        .env_clear()
        .env(
            "PATH",
            format!("{POD_NODE_DIR}/bin:/usr/local/bin:/usr/bin:/bin"),
        )
        .env("HOME", "/opt/home")
        .envs(env.iter().map(|(n, v)| (n, v)));
    command
}

/// The image's entrypoint with the one argument a pod gives it, run as the pod runs it ([`as_the_pod`]).
pub fn entrypoint(
    app: &Path,
    container: &Container,
    uploads: &Path,
    env: &[(String, String)],
) -> Command {
    let args = container.args.clone().expect("the container's arguments");
    assert_eq!(
        container.command, None,
        "the pods rely on the image's entrypoint"
    );
    let mut argv = vec![medusa::meta::ENTRYPOINT.to_owned()];
    argv.extend(args);
    as_the_pod(app, container, uploads, env, &argv)
}

/// The bootstrap Job's container, its environment on loopback, and the file standing in for its termination log.
pub fn bootstrap_command(
    app: &Path,
    databases: &Databases,
    secret: &BTreeMap<String, String>,
    key_file: &Path,
) -> Command {
    let job = bootstrap::job(STORE, &Settings::local(), None);
    bootstrap_command_of(app, databases, secret, key_file, job)
}

/// Job `job`'s container, as [`bootstrap_command`] runs the bootstrap Job's.
pub fn bootstrap_command_of(
    app: &Path,
    databases: &Databases,
    secret: &BTreeMap<String, String>,
    key_file: &Path,
    job: k8s_openapi::api::batch::v1::Job,
) -> Command {
    let container = pod_spec(job.spec.map(|s| s.template)).containers[0].clone();
    let env = databases
        .localise(environment(&container, secret))
        .into_iter()
        .map(|(name, value)| {
            if name == "PUBLISHABLE_KEY_FILE" {
                assert_eq!(value, bootstrap::KEY_FILE);
                (name, key_file.display().to_string())
            } else {
                (name, value)
            }
        })
        .collect::<Vec<_>>();
    // The container's own termination log is writable by it.
    if !key_file.exists() {
        std::fs::write(key_file, "").expect("the termination log");
    }
    let node = u32::try_from(NODE_UID).expect("a uid");
    chown(key_file, Some(node), Some(node)).expect("chown");
    entrypoint(app, &container, &databases.uploads, &env)
}

/// Runs a pod's exec probe (its readiness probe's, else its startup probe's), exactly as it is written, in the pod
/// ([`as_the_pod`]), next to `backend` (its port, as the pod's own).
pub fn probe(
    app: &Path,
    databases: &Databases,
    secret: &BTreeMap<String, String>,
    pod: &Container,
    backend: &Backend,
) -> Output {
    let command = [pod.readiness_probe.clone(), pod.startup_probe.clone()]
        .into_iter()
        .flatten()
        .find_map(|p| p.exec)
        .and_then(|e| e.command)
        .expect("an exec probe");
    let mut env = databases.localise(environment(pod, secret));
    env.push(("PORT".to_owned(), backend.port.to_string()));
    run(
        as_the_pod(app, pod, &databases.uploads, &env, &command),
        Duration::from_secs(30),
    )
}

pub fn run(mut command: Command, timeout: Duration) -> Output {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).expect("read stdout"));
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).expect("read stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let status = child.wait().expect("wait");
            panic!(
                "timed out after {timeout:?} ({status}):\n{}\n{}",
                out.join().expect("stdout"),
                err.join().expect("stderr")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: out.join().expect("stdout").into_bytes(),
        stderr: err.join().expect("stderr").into_bytes(),
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a kubelet keeps of a failed container's output as its termination message (FallbackToLogsOnError): the
/// last 80 lines, at most 2048 bytes.
pub fn termination_message(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let tail = lines[lines.len().saturating_sub(80)..].join("\n");
    let start = tail.len().saturating_sub(2048);
    let start = (start..tail.len())
        .find(|&i| tail.is_char_boundary(i))
        .unwrap_or(tail.len());
    tail[start..].to_owned()
}

/// One HTTP exchange with curl: status, headers and the body as JSON (`Value::Null` if it is not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: Value,
}

pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Reply {
    http_via(&[], method, url, headers, body)
}

/// The same, with curl run through `via` (e.g. `nsenter --net=… --` into a node's network namespace).
/// `program`, run through `via` (e.g. `nsenter --net=… --`) if it is given.
fn command_via(via: &[&str], program: impl AsRef<std::ffi::OsStr>) -> Command {
    match via.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// curl, run through `via` if it is given.
fn curl_via(via: &[&str]) -> Command {
    command_via(via, CURL)
}

pub fn http_via(
    via: &[&str],
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut command = curl_via(via);
    command.args([
        "-sS",
        "--max-time",
        "60",
        "-D",
        "-",
        "-o",
        "/dev/stdout",
        "-X",
        method,
        url,
    ]);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    if body.is_some() {
        command.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("curl");
    let mut stdin = child.stdin.take().expect("curl's stdin");
    if let Some(body) = body {
        stdin
            .write_all(body.to_string().as_bytes())
            .expect("write the body");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("curl");
    assert!(
        output.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let raw = String::from_utf8(output.stdout).expect("the reply is UTF-8");
    let (headers, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {headers}"));
    Reply {
        status,
        headers: headers.to_owned(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

impl Reply {
    pub fn ok(self, what: &str) -> Value {
        assert!(
            (200..300).contains(&self.status),
            "{what}: HTTP {}: {}",
            self.status,
            self.body
        );
        self.body
    }

    pub fn header(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .lines()
            .filter(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim())
            .collect()
    }
}

/// A server or worker started as its Deployment's pod is, listening on a port of its own.
pub struct Backend {
    pub daemon: Daemon,
    pub port: u16,
    pub url: String,
}

impl Backend {
    /// Starts it and waits until its startup probe's path answers.
    pub fn start(
        app: &Path,
        databases: &Databases,
        secret: &BTreeMap<String, String>,
        pod: &Container,
        name: &str,
    ) -> Self {
        let mut backend = Self::spawn(app, databases, secret, pod, name);
        backend.wait_started();
        backend
    }

    /// Starts it without waiting (from the thread that will outlive it: a test's servers die with the thread that
    /// started them).
    pub fn spawn(
        app: &Path,
        databases: &Databases,
        secret: &BTreeMap<String, String>,
        pod: &Container,
        name: &str,
    ) -> Self {
        let port = free_port();
        let mut env = databases.localise(environment(pod, secret));
        env.push(("PORT".to_owned(), port.to_string()));
        let command = entrypoint(app, pod, &databases.uploads, &env);
        let daemon = Daemon::spawn(
            name,
            command,
            &databases.dir.path().join(format!("{name}.log")),
        )
        .expect("start the backend");
        Self {
            daemon,
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until `/health` (the startup probe's path) answers 200.
    pub fn wait_started(&mut self) {
        self.daemon
            .wait_for(([127, 0, 0, 1], self.port).into(), Duration::from_secs(240));
        let deadline = Instant::now() + Duration::from_secs(60);
        while http("GET", &self.url("/health"), &[], None).status != 200 {
            assert!(
                Instant::now() < deadline,
                "/health never answered 200:\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// The store's Ingress as the tests' stand-in for the ingress controller takes it (`store-ingress`, a test-support
/// binary): one line per path, `<host> <prefix> <address:port>`, each Service's port at the address `service`
/// gives for it (ClusterIPs on the real node, loopback ports outside it).
pub fn ingress_routes(
    ingress: &k8s_openapi::api::networking::v1::Ingress,
    service: impl Fn(&str, i32) -> String,
) -> String {
    let mut routes = String::new();
    for rule in ingress.spec.iter().flat_map(|s| s.rules.iter().flatten()) {
        let host = rule.host.as_deref().expect("a host");
        for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
            assert_eq!(path.path_type, "Prefix");
            let backend = path.backend.service.as_ref().expect("a Service");
            let port = backend
                .port
                .as_ref()
                .and_then(|p| p.number)
                .expect("a port number");
            routes.push_str(&format!(
                "{host} {} {}\n",
                path.path.as_deref().expect("a path"),
                service(&backend.name, port)
            ));
        }
    }
    routes
}

/// Starts the ingress stand-in on `listen` with `routes`, through `via` (e.g. into the node's network namespace);
/// waits until it answers.
pub fn start_ingress(via: &[&str], listen: SocketAddr, routes: &str, dir: &Path) -> Daemon {
    let file = dir.join("ingress-routes");
    std::fs::write(&file, routes).expect("the routes");
    let program = store_platform_test_support::process::bin_dir()
        .join("store-ingress")
        .canonicalize()
        .expect("store-ingress is built (cargo build --bins)");
    let mut command = command_via(via, program);
    command.arg(listen.to_string()).arg(&file);
    let daemon =
        Daemon::spawn("ingress", command, &dir.join("ingress.log")).expect("start the ingress");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("store-ingress: on ") {
        assert!(
            Instant::now() < deadline,
            "the ingress did not start:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon
}

/// A shopper buys two of the product titled `product` in Chromium, at the storefront at `url`
/// (`deploy/medusa-storefront/e2e/order.mjs`, run through `via`), requiring its image to load from an address that
/// starts with `image_prefix`; returns the order's id. `context` goes into the failure's message (screenshots are in
/// `shots`).
pub fn buy_in_chromium(
    via: &[&str],
    url: &str,
    (product, image_prefix): (&str, &str),
    email: &str,
    shots: &Path,
    context: impl FnOnce() -> String,
) -> String {
    let shop_dir = storefront_dir();
    let mut command = command_via(via, "node");
    command
        .arg(shop_dir.join("e2e/order.mjs"))
        .current_dir(&shop_dir)
        .env("PATH", path(&medusa_app()))
        .env("STOREFRONT_URL", url)
        .env("CUSTOMER_EMAIL", email)
        .env("PRODUCT_TITLE", product)
        .env("IMAGE_PREFIX", image_prefix)
        .env("SCREENSHOTS", shots);
    let browser = run(command, Duration::from_secs(300));
    let browsed = text(&browser);
    assert!(
        browser.status.success(),
        "the order in Chromium failed (screenshots in {}):\n{browsed}\n{}",
        shots.display(),
        context()
    );
    browsed
        .lines()
        .find_map(|line| line.strip_prefix("order: "))
        .expect("the browser test names the order")
        .trim()
        .to_owned()
}

/// The storefront's folder (its server and its browser test; scripts/storefront.sh built it).
pub fn storefront_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/medusa-storefront");
    assert!(
        dir.join("dist/index.html").exists() && dir.join("node_modules/playwright-core").exists(),
        "the storefront is not built: run scripts/storefront.sh (make test does)"
    );
    dir
}

pub fn pod_spec(
    template: Option<k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> k8s_openapi::api::core::v1::PodSpec {
    template.and_then(|t| t.spec).expect("a pod template")
}

pub fn container_of(deployment: k8s_openapi::api::apps::v1::Deployment) -> Container {
    pod_spec(deployment.spec.map(|s| s.template)).containers[0].clone()
}

/// The tables the bootstrap fills, and how many rows each holds.
pub fn counts(databases: &Databases) -> String {
    let tables = [
        "region",
        "region_country",
        "tax_region",
        "stock_location",
        "fulfillment_set",
        "service_zone",
        "shipping_option",
        "product",
        "product_variant",
        "price",
        "inventory_level",
        "sales_channel",
        "api_key",
        "\"user\"",
        "provider_identity",
        "mikro_orm_migrations",
        "link_module_migrations",
    ];
    let sql = tables
        .iter()
        .map(|table| format!("SELECT '{table}', count(*) FROM {table}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    databases.sql("medusa", &sql)
}

/// The seed's product.
pub const SAMPLE_PRODUCT: &str = "sample-t-shirt";

/// A customer's order over the store API only, as a storefront places it: the region, the product with its price
/// and stock, a cart with two of it, e-mail and addresses, the shipping option, a payment collection with a
/// session of the system provider, completion. Returns the order's id.
pub fn place_order(server: &Backend, key: &str, settings: &Settings, email: &str) -> String {
    place_order_via(&[], &server.url, key, settings, email)
}

/// The same order, from `via` (see [`http_via`]) to the store API at `base`.
pub fn place_order_via(
    via: &[&str],
    base: &str,
    key: &str,
    settings: &Settings,
    email: &str,
) -> String {
    let order = order_of_via(via, base, key, settings, email, SAMPLE_PRODUCT);
    order["id"].as_str().expect("an order id").to_owned()
}

/// The same order of two of the product with handle `handle`; returns the order as the completion answers it
/// (its totals and tax among its fields).
pub fn order_of_via(
    via: &[&str],
    base: &str,
    key: &str,
    settings: &Settings,
    email: &str,
    handle: &str,
) -> Value {
    let url = |path: &str| format!("{base}{path}");
    let store = [("x-publishable-api-key", key)];
    let regions = http_via(via, "GET", &url("/store/regions"), &store, None).ok("regions");
    let region = &regions["regions"][0];
    let region_id = region["id"].as_str().expect("a region id");
    assert_eq!(region["currency_code"], settings.medusa.currency.as_str());
    let products = http_via(
        via,
        "GET",
        &url(&format!(
            "/store/products?handle={handle}&region_id={region_id}&fields=*variants.calculated_price,%2Bvariants.inventory_quantity"
        )),
        &store,
        None,
    )
    .ok("products");
    let product = &products["products"][0];
    assert_eq!(product["handle"], handle, "{products}");
    let variant = &product["variants"][0];
    assert!(
        variant["inventory_quantity"].as_i64().expect("stock") > 0,
        "{variant}"
    );
    assert!(
        variant["calculated_price"]["calculated_amount"]
            .as_f64()
            .expect("a price")
            > 0.0,
        "{variant}"
    );
    let cart = http_via(
        via,
        "POST",
        &url("/store/carts"),
        &store,
        Some(&json!({"region_id": region_id})),
    )
    .ok("cart");
    let cart_id = cart["cart"]["id"].as_str().expect("a cart id").to_owned();
    let cart_url = |path: &str| url(&format!("/store/carts/{cart_id}{path}"));
    http_via(
        via,
        "POST",
        &cart_url("/line-items"),
        &store,
        Some(&json!({"variant_id": variant["id"], "quantity": 2})),
    )
    .ok("line item");
    let country = settings.medusa.countries[0].as_str();
    let address = json!({
        "first_name": "Ada", "last_name": "Lovelace", "address_1": "1 Analytical Row", "city": "London",
        "country_code": country, "postal_code": "10115", "province": "", "phone": "+49 30 1234567",
    });
    http_via(
        via,
        "POST",
        &cart_url(""),
        &store,
        Some(&json!({"email": email, "shipping_address": address, "billing_address": address})),
    )
    .ok("addresses");
    let options = http_via(
        via,
        "GET",
        &url(&format!("/store/shipping-options?cart_id={cart_id}")),
        &store,
        None,
    )
    .ok("shipping options");
    let option_id = options["shipping_options"][0]["id"]
        .as_str()
        .expect("a shipping option")
        .to_owned();
    http_via(
        via,
        "POST",
        &cart_url("/shipping-methods"),
        &store,
        Some(&json!({"option_id": option_id})),
    )
    .ok("shipping method");
    let collection = http_via(
        via,
        "POST",
        &url("/store/payment-collections"),
        &store,
        Some(&json!({"cart_id": cart_id})),
    )
    .ok("payment collection");
    let collection_id = collection["payment_collection"]["id"]
        .as_str()
        .expect("a payment collection id");
    http_via(
        via,
        "POST",
        &url(&format!(
            "/store/payment-collections/{collection_id}/payment-sessions"
        )),
        &store,
        Some(&json!({"provider_id": "pp_system_default"})),
    )
    .ok("payment session");
    let completed = http_via(via, "POST", &cart_url("/complete"), &store, None).ok("complete");
    assert_eq!(completed["type"], "order", "{completed}");
    completed["order"].clone()
}

/// Checks that `order` charged the tax of the country it was shipped to, as the settings say: included in the
/// prices (the default) or added to them.
pub fn assert_taxed(order: &Value, settings: &Settings) {
    let country = order["shipping_address"]["country_code"]
        .as_str()
        .unwrap_or_else(|| panic!("no shipping country in {order}"));
    let rate: f64 = settings.medusa.tax_rates[country].parse().expect("a rate");
    let amount = |field: &str| {
        order[field]
            .as_f64()
            .unwrap_or_else(|| panic!("no {field} in {order}"))
    };
    let (total, tax) = (amount("total"), amount("tax_total"));
    let expected = if settings.medusa.prices_include_tax {
        total * rate / (100.0 + rate)
    } else {
        (total - tax) * rate / 100.0
    };
    assert!(
        rate > 0.0 && (tax - expected).abs() < 0.01,
        "{country} charges {rate} %: tax {tax} on a total of {total}, not {expected}: {order}"
    );
}

/// What the owner made in the admin: a product with an image they uploaded.
pub struct OwnersProduct {
    pub id: String,
    pub handle: String,
    pub title: String,
    /// The image's address, as Medusa stored it.
    pub image_url: String,
}

/// The shop owner's next hour, over the admin API as the dashboard calls it, with the admin's bearer `token`:
/// uploads `image`, creates a published product showing it (one variant with a price in the region's currency,
/// its inventory managed by Medusa, in the default sales channel; and, as the dashboard's form allows, no shipping
/// profile and no stock anywhere), checks that the store made it sellable (the default shipping profile, a stock
/// level at the store's default location, with nothing in stock yet), then enters 25 in stock, as the docs say.
pub fn owner_adds_a_product_via(
    via: &[&str],
    base: &str,
    token: &str,
    settings: &Settings,
    image: &Path,
) -> OwnersProduct {
    let bearer = format!("Bearer {token}");
    let admin = [("authorization", bearer.as_str())];
    let url = |path: &str| format!("{base}{path}");

    // The upload, as the dashboard's media field sends it: multipart, field "files".
    let mut command = curl_via(via);
    command
        .args(["-sS", "--fail-with-body", "--max-time", "60", "-H"])
        .arg(format!("authorization: {bearer}"))
        .arg("-F")
        .arg(format!("files=@{};type=image/png", image.display()))
        .arg(url("/admin/uploads"));
    let output = command.output().expect("curl");
    assert!(
        output.status.success(),
        "the upload failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let uploaded: Value = serde_json::from_slice(&output.stdout).expect("the upload's answer");
    let image_url = uploaded["files"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no file in {uploaded}"))
        .to_owned();

    let channels =
        http_via(via, "GET", &url("/admin/sales-channels"), &admin, None).ok("sales channels");
    let channel = channels["sales_channels"][0]["id"].clone();
    let title = "Owner's Enamel Mug";
    let handle = "owners-enamel-mug";
    let created = http_via(
        via,
        "POST",
        &url("/admin/products"),
        &admin,
        Some(&json!({
            "title": title,
            "handle": handle,
            "status": "published",
            "description": "Made by the owner, in the admin.",
            "thumbnail": image_url,
            "images": [{"url": image_url}],
            "options": [{"title": "Default option", "values": ["Default option value"]}],
            "variants": [{
                "title": "Default variant",
                "sku": "OWNER-MUG",
                "manage_inventory": true,
                "options": {"Default option": "Default option value"},
                "prices": [{"currency_code": settings.medusa.currency, "amount": 12}],
            }],
            "sales_channels": [{"id": channel}],
        })),
    )
    .ok("the owner's product");
    let id = created["product"]["id"]
        .as_str()
        .expect("a product id")
        .to_owned();

    // Sellable: the default shipping profile, and a stock level at the store's default location.
    let product = http_via(
        via,
        "GET",
        &url(&format!(
            "/admin/products/{id}?fields=shipping_profile.type,variants.inventory_items.inventory.id,variants.inventory_items.inventory.location_levels.*"
        )),
        &admin,
        None,
    )
    .ok("the product");
    assert_eq!(
        product["product"]["shipping_profile"]["type"], "default",
        "the new product has no shipping profile: {product}"
    );
    let store = http_via(via, "GET", &url("/admin/stores"), &admin, None).ok("the store");
    let location = store["stores"][0]["default_location_id"].clone();
    let item = &product["product"]["variants"][0]["inventory_items"][0]["inventory"];
    let levels = item["location_levels"].as_array().expect("levels");
    assert!(
        levels
            .iter()
            .any(|l| l["location_id"] == location && l["stocked_quantity"] == 0),
        "the new product's inventory is not at the default location {location}: {product}"
    );
    // The owner enters what is in stock: the variant's inventory, at that location.
    http_via(
        via,
        "POST",
        &url(&format!(
            "/admin/inventory-items/{}/location-levels/{}",
            item["id"].as_str().expect("an inventory item"),
            location.as_str().expect("a location")
        )),
        &admin,
        Some(&json!({"stocked_quantity": 25})),
    )
    .ok("the stock");
    OwnersProduct {
        id,
        handle: handle.to_owned(),
        title: title.to_owned(),
        image_url,
    }
}

/// The owner imports products from `csv` (Medusa's import columns) as the dashboard does: the file uploaded into the
/// store's files, an import started from it, confirmed; waits until the product with handle `handle` exists and
/// returns it with its shipping profile.
pub fn import_products_via(
    via: &[&str],
    base: &str,
    token: &str,
    csv: &str,
    handle: &str,
) -> Value {
    let bearer = format!("Bearer {token}");
    let admin = [("authorization", bearer.as_str())];
    let file = tempfile::NamedTempFile::new().expect("a file");
    std::fs::write(file.path(), csv).expect("the CSV");
    let mut command = curl_via(via);
    command
        .args(["-sS", "--fail-with-body", "--max-time", "60", "-H"])
        .arg(format!("authorization: {bearer}"))
        .arg("-F")
        .arg(format!("files=@{};type=text/csv", file.path().display()))
        .arg(format!("{base}/admin/uploads"));
    let output = command.output().expect("curl");
    assert!(
        output.status.success(),
        "the CSV's upload failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let uploaded: Value = serde_json::from_slice(&output.stdout).expect("json");
    let key = uploaded["files"][0]["id"].clone();
    let started = http_via(
        via,
        "POST",
        &format!("{base}/admin/products/imports"),
        &admin,
        Some(&json!({
            "file_key": key, "originalname": "products.csv", "extension": "csv",
            "size": csv.len(), "mime_type": "text/csv",
        })),
    )
    .ok("the import");
    assert_eq!(started["summary"]["toCreate"], 1, "{started}");
    let transaction = started["transaction_id"].as_str().expect("a transaction");
    http_via(
        via,
        "POST",
        &format!("{base}/admin/products/imports/{transaction}/confirm"),
        &admin,
        None,
    )
    .ok("the import's confirmation");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found = http_via(
            via,
            "GET",
            &format!("{base}/admin/products?handle={handle}&fields=id,title,shipping_profile.type"),
            &admin,
            None,
        )
        .ok("the imported product");
        if let Some(product) = found["products"].as_array().and_then(|p| p.first()) {
            return product.clone();
        }
        assert!(Instant::now() < deadline, "the import never made {handle}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The bytes at `url`, from `via` (curl's exit status must say HTTP 2xx).
pub fn bytes_via(via: &[&str], url: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut command = curl_via(via);
    command.args(["-sS", "--fail", "--max-time", "60", "-o", "-"]);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    let output = command.arg(url).output().expect("curl");
    assert!(
        output.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Whether connecting to `url` from `via` is refused (curl's exit code 7), as a Service with no ready endpoint in
/// kube-proxy's rules does.
pub fn refused_via(via: &[&str], url: &str) -> bool {
    let status = curl_via(via)
        .args(["-sS", "--max-time", "10", "-o", "/dev/null", url])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("curl");
    status.code() == Some(7)
}

/// The owner exports the products to CSV (the worker writes the file into the uploads volume, and the admin's
/// notification links to it); returns the CSV as the link serves it, fetched from `via` at `base`'s host.
pub fn export_products_via(via: &[&str], base: &str, token: &str) -> String {
    let bearer = format!("Bearer {token}");
    let admin = [("authorization", bearer.as_str())];
    http_via(
        via,
        "POST",
        &format!("{base}/admin/products/export"),
        &admin,
        Some(&json!({})),
    )
    .ok("the export");
    let deadline = Instant::now() + Duration::from_secs(120);
    let link = loop {
        let notes = http_via(
            via,
            "GET",
            &format!("{base}/admin/notifications?limit=20"),
            &admin,
            None,
        )
        .ok("notifications");
        let file = notes["notifications"]
            .as_array()
            .expect("notifications")
            .iter()
            .find_map(|n| n["data"]["file"]["url"].as_str().map(str::to_owned));
        if let Some(url) = file {
            break url;
        }
        assert!(
            Instant::now() < deadline,
            "no export reached the admin: {notes}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    // The link names the store's address; the file is fetched from the same server.
    let path = &link[link.find("/static/").expect("a /static link")..];
    String::from_utf8(bytes_via(via, &format!("{base}{path}"), &[])).expect("a CSV")
}

/// The admin's bearer token from the store's sign-in (`POST /auth/user/emailpass`), from `via` to `base`.
pub fn admin_token_via(via: &[&str], base: &str, email: &str, password: &str) -> String {
    let login = json!({"email": email, "password": password});
    http_via(
        via,
        "POST",
        &format!("{base}/auth/user/emailpass"),
        &[],
        Some(&login),
    )
    .ok("the admin's sign-in")["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// Whether `orders` (as [`admin_orders_via`] returns them) has order `id`.
pub fn lists_order(orders: &Value, id: &str) -> bool {
    orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .any(|o| o["id"] == id)
}

/// The orders the admin API lists, as `{"orders": [{id, email, total}, ...]}`.
pub fn admin_orders_via(via: &[&str], base: &str, token: &str) -> Value {
    http_via(
        via,
        "GET",
        &format!("{base}/admin/orders?fields=id,email,total"),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .ok("orders")
}

/// Waits up to two minutes for `line` in what `daemon` printed; panics with `what` and its output otherwise.
pub fn wait_for_log(daemon: &Daemon, line: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !daemon.log().contains(line) {
        assert!(Instant::now() < deadline, "{what}:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The files a later build of the backend adds to `app`'s (paths under `.medusa/server`): a module of its own,
/// `greeting`, registered in the built configuration, with its `migrations` (each a class name, which Medusa records
/// once it ran, and the SQL its `up` runs) and a store route, `/store/greetings`, that says which build answers
/// (`build`) and counts the module's rows: the visible change. An upgrade's next image, as `medusa build` would lay
/// out a project with that module.
pub fn next_build_files(
    app: &Path,
    build: &str,
    migrations: &[(&str, &str)],
) -> Vec<(PathBuf, String)> {
    let config = std::fs::read_to_string(app.join(".medusa/server/medusa-config.js"))
        .expect("the built configuration");
    let registered = config.replace(
        "modules: [fileModule, ...redisModules],",
        r#"modules: [fileModule, ...redisModules, { resolve: "./src/modules/greeting" }],"#,
    );
    assert_ne!(
        registered, config,
        "the built configuration lists its modules"
    );
    let module = Path::new("src/modules/greeting");
    let migrations = migrations.iter().map(|(name, sql)| {
        (
            module.join(format!("migrations/{name}.js")),
            format!(
                r#""use strict";
Object.defineProperty(exports, "__esModule", {{ value: true }});
exports.{name} = void 0;
const {{ Migration }} = require("@medusajs/framework/mikro-orm/migrations");
class {name} extends Migration {{
  async up() {{
    this.addSql({sql:?});
  }}
}}
exports.{name} = {name};
"#
            ),
        )
    });
    let mut files = vec![
        (PathBuf::from("medusa-config.js"), registered),
        (
            module.join("index.js"),
            r#""use strict";
Object.defineProperty(exports, "__esModule", { value: true });
const { Module } = require("@medusajs/framework/utils");
const service = require("./service").default;
exports.GREETING_MODULE = "greeting";
exports.default = Module("greeting", { service });
"#
            .to_owned(),
        ),
        (
            module.join("service.js"),
            r#""use strict";
Object.defineProperty(exports, "__esModule", { value: true });
const { MedusaService } = require("@medusajs/framework/utils");
const Greeting = require("./models/greeting").default;
class GreetingModuleService extends MedusaService({ Greeting }) {}
exports.default = GreetingModuleService;
"#
            .to_owned(),
        ),
        (
            module.join("models/greeting.js"),
            r#""use strict";
Object.defineProperty(exports, "__esModule", { value: true });
const { model } = require("@medusajs/framework/utils");
exports.default = model.define("greeting", { id: model.id().primaryKey(), message: model.text() });
"#
            .to_owned(),
        ),
        (
            PathBuf::from("src/api/store/greetings/route.js"),
            format!(
                r#""use strict";
Object.defineProperty(exports, "__esModule", {{ value: true }});
exports.GET = async function GET(req, res) {{
  const [, count] = await req.scope.resolve("greeting").listAndCountGreetings({{}});
  res.json({{ build: {build:?}, greetings: count }});
}};
"#
            ),
        ),
    ];
    files.extend(migrations);
    files
}

/// The migration of the build that adds the module: a real table, as `medusa db:generate` writes it.
pub const GREETING_MIGRATION: (&str, &str) = ("Migration20261206000000", GREETING_TABLE);
const GREETING_TABLE: &str = r#"create table if not exists "greeting" ("id" text not null, "message" text not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "deleted_at" timestamptz null, constraint "greeting_pkey" primary key ("id"));"#;

/// The next migration, of a build after that one, which PostgreSQL refuses: a table made, then a column of a type
/// that does not exist.
pub const BROKEN_MIGRATION: (&str, &str) = ("Migration20261207000000", BROKEN_SQL);
const BROKEN_SQL: &str = r#"create table "upgrade_half_done" ("id" text primary key); alter table "order" add column "priority" no_such_type;"#;
