//! The WooCommerce scripts, run with bash exactly as their Jobs run them, against a stand-in `wp` that prints what
//! real WP-CLI 2.12.0 with WooCommerce 9.9.5 prints (proven first against the recordings in `fixtures/wp-cli-2.12.0`),
//! real `curl` against a storefront on loopback, and a listening socket for the database.
//!
//! The bootstrap: the first run sets the shop up and settles WooCommerce's new-shop routine (new order tables, so
//! every store is the same whatever happens first), a second run changes nothing in WordPress's state, a failed run
//! can be retried, a run after an install that was killed (its lock left behind) finishes the install, and
//! verification fails loudly when the shop is not installed, settled or sellable.
//!
//! The cron run: every due action and every due event runs, even when an event's handler ends the process (as
//! WooCommerce's health checks do), and a run whose work failed says so and fails.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Arc, Mutex},
};

use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/woocommerce-bootstrap.sh"
);
const CRON_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/woocommerce-cron.sh");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wp-cli-2.12.0");
const PASSWORD: &str = "Xk2pQ9vLr7TzB4mN8cWs1dHf5gJa3eYu";

/// A storefront on loopback: answers each request with the next of `answers` (the last one repeats), and keeps
/// the Host header of every request.
struct Storefront {
    url: String,
    hosts: Arc<Mutex<Vec<String>>>,
}

impl Storefront {
    fn start(answers: &[(u16, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the storefront");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let answers: Vec<(u16, String)> =
            answers.iter().map(|(c, b)| (*c, (*b).to_owned())).collect();
        let hosts = Arc::new(Mutex::new(Vec::new()));
        let seen = hosts.clone();
        std::thread::spawn(move || {
            for (index, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let (code, body) = answers[index.min(answers.len() - 1)].clone();
                if let Some(host) = answer(stream, code, &body) {
                    seen.lock().expect("hosts").push(host);
                }
            }
        });
        Self { url, hosts }
    }

    fn hosts(&self) -> Vec<String> {
        self.hosts.lock().expect("hosts").clone()
    }
}

fn answer(mut stream: TcpStream, code: u16, body: &str) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut host = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("host:") {
            host = Some(value.trim().to_owned());
        }
    }
    let reply = format!(
        "HTTP/1.1 {code} Status\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).ok()?;
    host
}

const SHOP_PAGE: &str = "<html><body><h2>Sample product</h2><a>Add to cart</a></body></html>";

struct Fixture {
    dir: tempfile::TempDir,
    database: TcpListener,
}

impl Fixture {
    /// A document root as WordPress's init container leaves it: core files, wp-config.php, and the platform's
    /// must-use mail plugin.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["bin", "html/wp-includes", "html/wp-content/mu-plugins"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for file in [
            "html/wp-includes/version.php",
            "html/wp-config.php",
            "html/wp-content/mu-plugins/store-platform-mail.php",
        ] {
            std::fs::write(dir.path().join(file), "<?php\n").expect("write");
        }
        std::os::unix::fs::symlink(Path::new(FIXTURES).join("wp"), dir.path().join("bin/wp"))
            .expect("link the stand-in");
        // Something listening where the script waits for the database.
        let database = TcpListener::bind("127.0.0.1:0").expect("bind");
        Self { dir, database }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn run(&self, storefront: &Storefront, extra: &[(&str, &str)]) -> Output {
        let port = self.database.local_addr().expect("addr").port();
        Command::new("bash")
            .arg(SCRIPT)
            .env_clear()
            .env("PATH", self.path_var())
            .env("WP_STAND_IN_STATE", self.path("state.json"))
            .env("WP_PATH", self.path("html"))
            .env("WORDPRESS_DB_HOST", format!("127.0.0.1:{port}"))
            .env("STORE_URL", "http://shoes.localhost")
            .env("STORE_HOST", "shoes.localhost")
            .env("STORE_TITLE", "Ada's Shoes & Socks")
            .env("WP_ADMIN_USER", "admin")
            .env("WP_ADMIN_PASSWORD", PASSWORD)
            .env("WP_ADMIN_EMAIL", "owner@example.com")
            .env("WORDPRESS_SERVICE_URL", &storefront.url)
            .env("DB_WAIT_SECONDS", "5")
            .env("HTTP_RETRIES", "2")
            .env("HTTP_TIMEOUT_SECONDS", "5")
            .envs(extra.iter().copied())
            .output()
            .expect("run the script")
    }

    /// The store's cron run, as its CronJob runs it.
    fn run_cron(&self, extra: &[(&str, &str)]) -> Output {
        Command::new("bash")
            .arg(CRON_SCRIPT)
            .env_clear()
            .env("PATH", self.path_var())
            .env("WP_STAND_IN_STATE", self.path("state.json"))
            .env("WP_PATH", self.path("html"))
            .env("STORE_URL", "http://shop.localhost")
            .envs(extra.iter().copied())
            .output()
            .expect("run the cron script")
    }

    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// WordPress's state as the stand-in keeps it: options, users, plugins, posts, gateways.
    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.path("state.json")).expect("state");
        serde_json::from_str(&text).expect("state json")
    }

    fn edit_state(&self, edit: impl FnOnce(&mut Value)) {
        let mut state = self.state();
        edit(&mut state);
        std::fs::write(self.path("state.json"), state.to_string()).expect("write state");
    }

    /// Every argument vector `wp` was started with, as `ps` would have shown it.
    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.path("state.json.calls"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("call"))
            .collect()
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn shop() -> Storefront {
    Storefront::start(&[(200, SHOP_PAGE)])
}

/// One recorded call: its arguments, exit code, and output.
#[derive(Debug)]
struct Recording {
    heading: String,
    /// The config file's content (WP_CLI_CONFIG_PATH), if one was used: `section: key: 'value'`.
    config: Option<String>,
    exit: i32,
    stdout: String,
    stderr: String,
}

/// Reads `transcripts.md`: `### \`command\``, `exit: N`, then fenced `stdout:` and optional `stderr:` blocks.
fn recordings() -> Vec<Recording> {
    recordings_in("transcripts.md")
}

/// Reads a file of recordings: `### \`command\``, an optional `config: …` line, `exit: N`, then fenced `stdout:`
/// and optional `stderr:` blocks.
fn recordings_in(file: &str) -> Vec<Recording> {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join(file)).expect("transcripts");
    let mut recordings = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(heading) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) else {
            continue;
        };
        let config = lines
            .next_if(|l| l.starts_with("config: "))
            .map(|l| l["config: ".len()..].to_owned());
        let exit = lines
            .next()
            .and_then(|l| l.strip_prefix("exit: "))
            .and_then(|n| n.parse().ok())
            .expect("exit line");
        let mut blocks = std::collections::HashMap::new();
        while let Some(label) = lines.peek().and_then(|l| l.strip_suffix(':')) {
            let label = label.to_owned();
            lines.next();
            assert_eq!(lines.next(), Some("```"), "{heading}: fence");
            let mut body = Vec::new();
            for line in lines.by_ref() {
                if line == "```" {
                    break;
                }
                body.push(line.replace("^I", "\t"));
            }
            blocks.insert(label, body.join("\n"));
        }
        recordings.push(Recording {
            heading: heading.to_owned(),
            config,
            exit,
            stdout: blocks.remove("stdout").unwrap_or_default(),
            stderr: blocks.remove("stderr").unwrap_or_default(),
        });
    }
    recordings
}

/// A recorded block shows the output without its last newline, and no output as one empty line.
fn shown(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

#[test]
fn the_stand_in_prints_what_real_wp_cli_printed() {
    // The recorded calls, in order, as argument vectors (the headings join them with spaces).
    let title = "--title=Ada's Test Shop";
    let install = [
        "core",
        "install",
        title,
        "--admin_user=admin",
        "--admin_password=Transcript-Pass-0001",
        "--admin_email=owner@example.com",
        "--skip-email",
    ];
    let create = [
        "wc",
        "product",
        "create",
        "--name=Sample product",
        "--sku=STORE-PLATFORM-SAMPLE",
        "--regular_price=19.99",
        "--status=publish",
    ];
    let calls: Vec<Vec<&str>> = vec![
        vec!["--version"],
        vec!["core", "is-installed"],
        install.to_vec(),
        vec!["core", "is-installed"],
        install.to_vec(),
        vec!["plugin", "is-active", "woocommerce"],
        vec!["plugin", "activate", "woocommerce"],
        vec!["plugin", "is-active", "woocommerce"],
        vec!["plugin", "activate", "woocommerce"],
        vec!["plugin", "activate", "no-such-plugin"],
        vec!["option", "get", "blogname"],
        vec!["option", "update", "blogname", "Ada's Test Shop"],
        vec!["option", "get", "woocommerce_coming_soon"],
        vec!["option", "update", "woocommerce_coming_soon", "no"],
        vec!["option", "update", "woocommerce_coming_soon", "no"],
        vec!["option", "get", "no_such_option_here"],
        vec!["option", "get", "permalink_structure"],
        vec!["rewrite", "structure", "/%postname%/"],
        vec!["rewrite", "flush"],
        vec![
            "option",
            "get",
            "woocommerce_onboarding_profile",
            "--format=json",
        ],
        vec!["wc", "tool", "run", "install_pages", "--user=admin"],
        vec![
            "wc",
            "payment_gateway",
            "get",
            "cod",
            "--field=enabled",
            "--user=admin",
        ],
        vec![
            "wc",
            "payment_gateway",
            "get",
            "cod",
            "--field=enabled",
            "--format=json",
            "--user=admin",
        ],
        vec![
            "wc",
            "payment_gateway",
            "update",
            "cod",
            "--enabled=true",
            "--user=admin",
        ],
        vec![
            "wc",
            "payment_gateway",
            "get",
            "cod",
            "--field=enabled",
            "--user=admin",
        ],
        vec![
            "wc",
            "payment_gateway",
            "get",
            "cod",
            "--field=enabled",
            "--format=json",
            "--user=admin",
        ],
        vec![
            "wc",
            "payment_gateway",
            "get",
            "no_such_gateway",
            "--field=enabled",
            "--user=admin",
        ],
        vec![
            "wc",
            "product",
            "list",
            "--sku=STORE-PLATFORM-SAMPLE",
            "--field=id",
            "--user=admin",
        ],
        [
            &create[..],
            &["--catalog_visibility=visible", "--user=admin"],
        ]
        .concat(),
        vec![
            "wc",
            "product",
            "list",
            "--sku=STORE-PLATFORM-SAMPLE",
            "--field=id",
            "--user=admin",
        ],
        vec![
            "wc",
            "product",
            "get",
            "10",
            "--field=status",
            "--user=admin",
        ],
        vec![
            "wc",
            "product",
            "get",
            "10",
            "--field=purchasable",
            "--user=admin",
        ],
        vec![
            "wc",
            "product",
            "get",
            "10",
            "--field=purchasable",
            "--format=json",
            "--user=admin",
        ],
        vec![
            "wc",
            "product",
            "get",
            "999999",
            "--field=status",
            "--user=admin",
        ],
        [&create[..], &["--user=admin"]].concat(),
    ];
    let recordings = recordings();
    // The last recording is the whole product table, which the script never asks for.
    assert_eq!(
        recordings.len(),
        calls.len() + 1,
        "one argument vector per recording"
    );
    assert_eq!(
        recordings[calls.len()].heading,
        "wp wc product list --user=admin"
    );

    // As recorded: an image without sendmail and without the platform's mail plugin.
    let fixture = Fixture::new();
    std::fs::remove_file(fixture.path("html/wp-content/mu-plugins/store-platform-mail.php"))
        .expect("remove the mail plugin");
    let html = fixture.path("html");
    for (call, recording) in calls.iter().zip(&recordings) {
        assert_eq!(format!("wp {}", call.join(" ")), recording.heading);
        let output = Command::new(Path::new(FIXTURES).join("wp"))
            .arg(format!("--path={}", html.display()))
            .arg("--url=http://shop.localhost")
            .args(call)
            .env("WP_STAND_IN_STATE", fixture.path("state.json"))
            .output()
            .expect("run the stand-in");
        assert_eq!(
            (
                output.status.code(),
                shown(&output.stdout),
                shown(&output.stderr)
            ),
            (
                Some(recording.exit),
                recording.stdout.clone(),
                recording.stderr.clone()
            ),
            "{}",
            recording.heading
        );
    }
}

#[test]
fn the_stand_in_prints_yes_no_fields_byte_for_byte_as_recorded() {
    // bytes.txt: a yes/no field prints "1\n" or "\n" plainly, "true\n" or "false\n" as JSON.
    let bytes = std::fs::read_to_string(Path::new(FIXTURES).join("bytes.txt")).expect("bytes");
    let fixture = Fixture::new();
    let wp = |args: &[&str]| fixture.wp(args, None);
    assert!(
        wp(&[
            "core",
            "install",
            "--title=T",
            "--admin_user=admin",
            "--admin_password=p",
            "--admin_email=a@example.com"
        ])
        .status
        .success()
    );
    assert!(wp(&["plugin", "activate", "woocommerce"]).status.success());
    assert!(
        wp(&[
            "wc",
            "payment_gateway",
            "update",
            "cod",
            "--enabled=true",
            "--user=admin"
        ])
        .status
        .success()
    );
    assert!(
        wp(&["rewrite", "structure", "/%postname%/"])
            .status
            .success()
    );
    assert!(
        wp(&["wc", "tool", "run", "install_pages", "--user=admin"])
            .status
            .success()
    );
    assert!(
        wp(&[
            "wc",
            "product",
            "create",
            "--name=Sample product",
            "--sku=S",
            "--regular_price=1",
            "--status=publish",
            "--user=admin"
        ])
        .status
        .success()
    );
    for line in bytes.lines() {
        let Some((command, spelled)) = line.split_once(" stdout bytes:") else {
            continue;
        };
        let command = command.trim_matches('`').strip_prefix("wp ").expect("wp");
        let mut args: Vec<&str> = command.split(' ').collect();
        if args[0] == "wc" {
            // Recorded as the store's administrator, like every WooCommerce command.
            args.push("--user=admin");
        }
        // "1 \n" spells the bytes '1' and '\n'.
        let expected: String = spelled
            .split_whitespace()
            .map(|b| if b == "\\n" { "\n" } else { b })
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&wp(&args).stdout),
            expected,
            "{command}"
        );
    }
}

/// A run of one of the scripts recorded against real WP-CLI 2.12.0, WooCommerce 9.9.5 and WordPress 6.8.3 (see the
/// fixtures' README): every call's arguments (the document root as `{docroot}`), exit code and exact output.
fn recorded_run(name: &str) -> Vec<Value> {
    std::fs::read_to_string(Path::new(FIXTURES).join(format!("{name}.jsonl")))
        .expect("recorded run")
        .lines()
        .map(|line| serde_json::from_str(line).expect("recorded call"))
        .collect()
}

/// A recorded call's arguments, with the fixture's document root.
fn recorded_argv(call: &Value, docroot: &str) -> Vec<String> {
    call["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .map(|a| a.as_str().expect("arg").replace("{docroot}", docroot))
        .collect()
}

/// What differs between two runs of the real tool as well: the store's id (a random UUID at each install) and how
/// long a cron event's handler took.
fn normalised(text: &str) -> String {
    text.lines()
        .map(|line| {
            if let Some(at) = line
                .rfind("' in ")
                .filter(|_| line.starts_with("Executed the cron event '"))
            {
                return format!("{}' in <time>s.", &line[..at]);
            }
            let uuid = |word: &str| {
                word.len() == 36
                    && word.char_indices().all(|(i, c)| {
                        if [8, 13, 18, 23].contains(&i) {
                            c == '-'
                        } else {
                            c.is_ascii_hexdigit()
                        }
                    })
            };
            line.split(' ')
                .map(|word| if uuid(word) { "<uuid>" } else { word })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

/// The environment the recorded bootstrap runs had.
const RECORDED_ENV: &[(&str, &str)] = &[
    ("STORE_URL", "http://shop.localhost"),
    ("STORE_HOST", "shop.localhost"),
    ("STORE_TITLE", "Ada's Test Shop"),
    ("WP_ADMIN_PASSWORD", "Transcript-Pass-0001"),
];

/// The state a recorded run started from.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// An empty database.
    Fresh,
    /// Where the previous recorded run left the store.
    Continue,
    /// WordPress installed and WooCommerce's first activation killed half-way, at the moment `lock_taken`: what the
    /// recorded database held (the install lock, `woocommerce_newly_installed`, the placeholder image and
    /// WooCommerce's first options; the plugin not yet active).
    KilledInstall { lock_taken: u64 },
    /// A store with WooCommerce, with the cron events and pending actions the recorded one had
    /// (`<name>.start.json`).
    Cron(&'static str),
}

/// The recorded runs, the state each started from and the moment it was recorded.
const RECORDED_RUNS: &[(&str, Start, Option<u64>)] = &[
    ("bootstrap-run-1", Start::Fresh, None),
    ("bootstrap-run-2", Start::Continue, None),
    (
        "bootstrap-run-after-a-killed-install",
        Start::KilledInstall {
            lock_taken: 1_796_460_847,
        },
        Some(1_796_461_147),
    ),
    (
        "bootstrap-run-after-a-killed-install-before-the-fix",
        Start::KilledInstall {
            lock_taken: 1_796_461_024,
        },
        Some(1_796_461_324),
    ),
    (
        "cron-run-health-checks",
        Start::Cron("cron-run-health-checks"),
        None,
    ),
    (
        "cron-run-failing-action",
        Start::Cron("cron-run-failing-action"),
        None,
    ),
];

impl Fixture {
    /// `wp` (the stand-in) on the fixture's document root, at the moment `now` if given.
    fn wp(&self, args: &[&str], now: Option<u64>) -> Output {
        let mut command = Command::new(Path::new(FIXTURES).join("wp"));
        command
            .arg(format!("--path={}", self.path("html").display()))
            .arg("--url=http://shop.localhost")
            .args(args)
            .env("WP_STAND_IN_STATE", self.path("state.json"));
        if let Some(now) = now {
            command.env("WP_STAND_IN_NOW", now.to_string());
        }
        command.output().expect("run the stand-in")
    }

    /// Puts the store into the state `start` describes; returns the moment the stand-in's clock is to stand at.
    fn start(&self, start: Start, now: Option<u64>) -> Option<u64> {
        let install = |title: &str| {
            let config = self.path("install.yml");
            std::fs::write(
                &config,
                "core install:\n  admin_password: 'Transcript-Pass-0001'\n",
            )
            .expect("config");
            let output = Command::new(Path::new(FIXTURES).join("wp"))
                .arg(format!("--path={}", self.path("html").display()))
                .arg("--url=http://shop.localhost")
                .args([
                    "core",
                    "install",
                    "--url=http://shop.localhost",
                    &format!("--title={title}"),
                    "--admin_user=admin",
                    "--admin_email=owner@example.com",
                    "--skip-email",
                ])
                .env("WP_STAND_IN_STATE", self.path("state.json"))
                .env("WP_CLI_CONFIG_PATH", &config)
                .output()
                .expect("install");
            assert!(output.status.success(), "{}", text(&output));
        };
        match start {
            Start::Fresh | Start::Continue => now,
            Start::KilledInstall { lock_taken } => {
                install("Ada's Test Shop");
                self.edit_state(|state| {
                    let options = state["options"].as_object_mut().expect("options");
                    for (name, value) in [
                        ("woocommerce_newly_installed", "yes".to_owned()),
                        ("woocommerce_placeholder_image", "4".to_owned()),
                        ("woocommerce_enable_guest_checkout", "yes".to_owned()),
                        ("woocommerce_enable_checkout_login_reminder", "no".to_owned()),
                        ("woocommerce_currency", "USD".to_owned()),
                        ("woocommerce_custom_orders_table_enabled", "no".to_owned()),
                        ("_transient_wc_installing", "yes".to_owned()),
                        (
                            "_transient_timeout_wc_installing",
                            (lock_taken + 600).to_string(),
                        ),
                    ] {
                        options.insert(name.to_owned(), value.into());
                    }
                    state["posts"]
                        .as_array_mut()
                        .expect("posts")
                        .push(serde_json::json!({
                            "id": 4, "type": "attachment", "name": "woocommerce-placeholder", "status": "inherit"
                        }));
                    state["next_id"] = 5.into();
                });
                now
            }
            Start::Cron(name) => {
                install("Ada's Test Shop");
                assert!(
                    self.wp(&["plugin", "activate", "woocommerce"], None)
                        .status
                        .success()
                );
                let recorded: Value = serde_json::from_str(
                    &std::fs::read_to_string(
                        Path::new(FIXTURES).join(format!("{name}.start.json")),
                    )
                    .expect("the recorded start"),
                )
                .expect("json");
                self.edit_state(|state| {
                    state["cron"] = recorded["cron"].clone();
                    state["actions"] = recorded["actions"]
                        .as_array()
                        .expect("actions")
                        .iter()
                        .map(|a| {
                            let mut a = a.clone();
                            a["status"] = "pending".into();
                            a
                        })
                        .collect();
                });
                recorded["now"].as_u64()
            }
        }
    }
}

#[test]
fn the_stand_in_answers_every_call_of_the_recorded_runs_as_real_wp_cli_did() {
    let mut fixture = Fixture::new();
    for (name, start, now) in RECORDED_RUNS {
        if !matches!(start, Start::Continue) {
            fixture = Fixture::new();
        }
        let now = fixture.start(*start, *now);
        let docroot = fixture.path("html").display().to_string();
        let config = fixture.path("wp-cli.yml");
        std::fs::write(
            &config,
            "core install:\n  admin_password: 'Transcript-Pass-0001'\n",
        )
        .expect("config");
        for call in recorded_run(name) {
            let argv = recorded_argv(&call, &docroot);
            let mut command = Command::new(Path::new(FIXTURES).join("wp"));
            command
                .args(&argv)
                .env("WP_STAND_IN_STATE", fixture.path("state.json"));
            if let Some(now) = now {
                command.env("WP_STAND_IN_NOW", now.to_string());
            }
            if call["config_file"] == true {
                command.env("WP_CLI_CONFIG_PATH", &config);
            }
            let output = command.output().expect("run the stand-in");
            assert_eq!(
                (
                    output.status.code(),
                    normalised(&String::from_utf8_lossy(&output.stdout)),
                    normalised(&String::from_utf8_lossy(&output.stderr))
                ),
                (
                    call["exit"].as_i64().map(|c| c as i32),
                    normalised(call["stdout"].as_str().expect("stdout")),
                    normalised(call["stderr"].as_str().expect("stderr"))
                ),
                "{name}: {argv:?}"
            );
        }
    }
}

#[test]
fn the_scripts_ask_the_stand_in_exactly_what_they_asked_real_wp_cli() {
    let mut fixture = Fixture::new();
    let storefront = Storefront::start(&[(200, SHOP_PAGE)]);
    for (name, start, now) in RECORDED_RUNS {
        if name.ends_with("before-the-fix") {
            // Recorded with the script as it was, to hold the stand-in to what real WooCommerce does then.
            continue;
        }
        if !matches!(start, Start::Continue) {
            fixture = Fixture::new();
        }
        let now = fixture.start(*start, *now).map(|n| n.to_string());
        let docroot = fixture.path("html").display().to_string();
        let before = fixture.calls().len();
        let mut env = RECORDED_ENV.to_vec();
        if let Some(now) = &now {
            env.push(("WP_STAND_IN_NOW", now));
        }
        let (output, succeeds) = if name.starts_with("cron-") {
            (fixture.run_cron(&env), *name != "cron-run-failing-action")
        } else {
            (fixture.run(&storefront, &env), true)
        };
        assert_eq!(
            output.status.success(),
            succeeds,
            "{name}: {}",
            text(&output)
        );
        let asked: Vec<Vec<String>> = fixture.calls()[before..].to_vec();
        let mut recorded: Vec<Vec<String>> = recorded_run(name)
            .iter()
            .map(|call| recorded_argv(call, &docroot))
            .collect();
        if name.starts_with("cron-") {
            // Since these were recorded the cron run first asks whether WordPress is installed and WooCommerce
            // active (its CronJob now comes before the bootstrap): the same two calls the bootstrap's recordings
            // hold the stand-in's answers to.
            let asks = |words: &[&str]| {
                [
                    format!("--path={docroot}"),
                    "--url=http://shop.localhost".to_owned(),
                ]
                .into_iter()
                .chain(words.iter().map(|word| (*word).to_owned()))
                .collect::<Vec<_>>()
            };
            recorded.splice(
                0..0,
                [
                    asks(&["core", "is-installed"]),
                    asks(&["plugin", "is-active", "woocommerce"]),
                ],
            );
        }
        assert_eq!(asked, recorded, "{name}");
    }
}

#[test]
fn the_first_run_sets_the_shop_up() {
    let fixture = Fixture::new();
    let storefront = shop();
    let output = fixture.run(&storefront, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let state = fixture.state();
    assert_eq!(state["installed"], true);
    assert_eq!(state["users"]["admin"]["password"], PASSWORD);
    assert_eq!(state["options"]["blogname"], "Ada&#039;s Shoes &amp; Socks");
    for (option, value) in [
        ("woocommerce_coming_soon", "no"),
        ("woocommerce_store_pages_only", "no"),
        ("woocommerce_enable_guest_checkout", "yes"),
        ("woocommerce_enable_checkout_login_reminder", "yes"),
        ("permalink_structure", "/%postname%/"),
    ] {
        assert_eq!(state["options"][option], value, "{option}");
    }
    assert_eq!(
        state["options"]["woocommerce_onboarding_profile"],
        serde_json::json!({"completed": true, "skipped": true})
    );
    assert_eq!(state["gateways"]["cod"], true);
    assert_eq!(state["gateways"]["cheque"], true);
    // WooCommerce's install completed, and its new-shop routine ran before any customer came: orders go to its
    // order tables in every store.
    for (option, value) in [
        ("woocommerce_version", "9.9.5"),
        ("woocommerce_db_version", "9.9.5"),
        ("woocommerce_newly_installed", "no"),
        ("woocommerce_custom_orders_table_enabled", "yes"),
    ] {
        assert_eq!(state["options"][option], value, "{option}");
    }
    assert!(state["options"]["woocommerce_store_id"].is_string());
    let products: Vec<&Value> = state["posts"]
        .as_array()
        .expect("posts")
        .iter()
        .filter(|p| p["type"] == "product")
        .collect();
    assert_eq!(products.len(), 1);
    assert_eq!(products[0]["sku"], "STORE-PLATFORM-SAMPLE");
    assert_eq!(products[0]["status"], "publish");
    let log = text(&output);
    assert!(log.contains("bootstrap: done"), "{log}");
    // Nothing the script does makes WP-CLI warn, and no mail goes to a sendmail the image does not have.
    assert!(
        !log.contains("Warning:") && !log.contains("sendmail"),
        "{log}"
    );
    assert!(
        storefront.hosts().iter().all(|h| h == "shoes.localhost"),
        "{:?}",
        storefront.hosts()
    );
}

#[test]
fn the_admin_password_never_appears_on_a_command_line() {
    let fixture = Fixture::new();
    let output = fixture.run(&shop(), &[]);
    assert!(output.status.success(), "{}", text(&output));
    let calls = fixture.calls();
    assert!(calls.iter().any(|c| c.iter().any(|a| a == "install")));
    for call in calls {
        assert!(
            !call.iter().any(|a| a.contains(PASSWORD)),
            "the password is in {call:?}"
        );
    }
    assert!(!text(&output).contains(PASSWORD));
    // The config file that carried it is gone.
    assert_eq!(fixture.state()["users"]["admin"]["password"], PASSWORD);
}

#[test]
fn a_second_run_changes_nothing() {
    let fixture = Fixture::new();
    let storefront = shop();
    assert!(fixture.run(&storefront, &[]).status.success());
    let before = fixture.state();
    let calls_before = fixture.calls().len();
    let output = fixture.run(&storefront, &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(fixture.state(), before, "the second run changed WordPress");
    // Commands that write (WooCommerce's install_pages tool runs every time: it creates only missing pages).
    let writes: Vec<Vec<String>> = fixture.calls()[calls_before..]
        .iter()
        .filter(|call| {
            let words: Vec<&str> = call
                .iter()
                .map(String::as_str)
                .filter(|a| !a.starts_with("--"))
                .collect();
            matches!(
                words.as_slice(),
                ["core", "install", ..]
                    | ["plugin", "activate", ..]
                    | ["option", "update", ..]
                    | ["rewrite", ..]
                    | ["eval", ..]
                    | ["transient", "delete", ..]
                    | ["wc", _, "update" | "create", ..]
            )
        })
        .cloned()
        .collect();
    assert_eq!(writes, Vec::<Vec<String>>::new(), "the second run wrote");
    assert!(text(&output).contains("verified"));
}

#[test]
fn a_run_that_failed_half_way_is_finished_by_the_retry() {
    let fixture = Fixture::new();
    let down = Storefront::start(&[(502, "bad gateway")]);
    let output = fixture.run(&down, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let output = fixture.run(&shop(), &[]);
    assert!(output.status.success(), "{}", text(&output));
    let fresh = Fixture::new();
    assert!(fresh.run(&shop(), &[]).status.success());
    // Each install draws its own store id.
    let without_id = |mut state: Value| {
        assert!(state["options"]["woocommerce_store_id"].is_string());
        state["options"]["woocommerce_store_id"] = Value::Null;
        state
    };
    assert_eq!(
        without_id(fixture.state()),
        without_id(fresh.state()),
        "the retry converged on the same shop"
    );
}

/// A store whose first bootstrap was killed while WooCommerce installed (an OOM kill does it), `lock_age` seconds
/// ago: WordPress is installed, WooCommerce's install lock is held and the plugin not yet active.
fn killed_install(lock_age: u64) -> Fixture {
    let fixture = Fixture::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    fixture.start(
        Start::KilledInstall {
            lock_taken: now - lock_age,
        },
        None,
    );
    fixture
}

#[test]
fn a_retry_after_a_killed_install_finishes_woocommerces_install() {
    let fixture = killed_install(300);
    let output = fixture.run(&shop(), &[]);
    assert!(output.status.success(), "{}", text(&output));
    let log = text(&output);
    assert!(
        log.contains("WooCommerce's install lock is ") && log.contains("installing again"),
        "{log}"
    );
    let state = fixture.state();
    for (option, value) in [
        ("woocommerce_version", "9.9.5"),
        ("woocommerce_db_version", "9.9.5"),
        ("woocommerce_newly_installed", "no"),
        ("woocommerce_custom_orders_table_enabled", "yes"),
    ] {
        assert_eq!(state["options"][option], value, "{option}");
    }
    assert!(state["options"]["woocommerce_store_id"].is_string());
    assert!(
        state["options"].get("_transient_wc_installing").is_none(),
        "the lock is gone"
    );
}

#[test]
fn a_young_install_lock_is_waited_for_before_it_is_taken_as_left_behind() {
    let fixture = killed_install(1);
    let started = std::time::Instant::now();
    let output = fixture.run(&shop(), &[("WC_INSTALL_LOCK_STALE_SECONDS", "6")]);
    assert!(output.status.success(), "{}", text(&output));
    let log = text(&output);
    assert!(
        log.contains("WooCommerce is being installed (its lock is"),
        "{log}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(4),
        "the lock was not waited for"
    );
    assert_eq!(fixture.state()["options"]["woocommerce_version"], "9.9.5");
}

#[test]
fn verification_fails_when_woocommerce_is_not_installed_completely_or_not_settled() {
    for (option, value, reason) in [
        (
            "woocommerce_store_id",
            Value::Null,
            "WooCommerce's installation did not complete",
        ),
        (
            "woocommerce_newly_installed",
            "maybe".into(),
            "WooCommerce's new-shop routine has not run",
        ),
        (
            "woocommerce_custom_orders_table_enabled",
            "no".into(),
            "orders are not kept in WooCommerce's order tables",
        ),
    ] {
        let fixture = Fixture::new();
        assert!(fixture.run(&shop(), &[]).status.success());
        fixture.edit_state(|state| {
            let options = state["options"].as_object_mut().expect("options");
            if value.is_null() {
                options.remove(option);
            } else {
                options.insert(option.to_owned(), value.clone());
            }
        });
        let output = fixture.run(&shop(), &[]);
        assert_eq!(output.status.code(), Some(1), "{option}: {}", text(&output));
        assert!(
            text(&output).contains(&format!("FAILED: {reason}")),
            "{option}: {}",
            text(&output)
        );
    }
}

/// A store with WooCommerce whose cron events and actions are those of `start` (see [`Start::Cron`]), and the
/// moment they were recorded.
fn cron_store(start: &'static str) -> (Fixture, String) {
    let fixture = Fixture::new();
    let now = fixture
        .start(Start::Cron(start), None)
        .expect("the recorded moment");
    (fixture, now.to_string())
}

/// The events still due at `now`, and the actions still pending that were due.
fn left_due(state: &Value, now: &str) -> (Vec<String>, Vec<String>) {
    let now: u64 = now.parse().expect("now");
    let events = state["cron"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["time"].as_u64().expect("time") <= now)
        .map(|e| e["hook"].as_str().expect("hook").to_owned())
        .collect();
    let actions = state["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["status"] == "pending" && a["time"].as_u64().expect("time") <= now)
        .map(|a| a["hook"].as_str().expect("hook").to_owned())
        .collect();
    (events, actions)
}

#[test]
fn a_cron_run_does_every_due_event_and_action_even_when_a_health_check_ends_the_process() {
    let (fixture, now) = cron_store("cron-run-health-checks");
    let output = fixture.run_cron(&[("WP_STAND_IN_NOW", &now)]);
    assert!(output.status.success(), "{}", text(&output));
    let log = text(&output);
    // The first round ended at WooCommerce's image-regeneration health check; the next ran what it had skipped.
    assert!(log.contains("round 1 ended before its last event"), "{log}");
    assert!(
        log.contains("Executed the cron event 'woocommerce_cleanup_sessions'"),
        "{log}"
    );
    assert!(log.ends_with("cron: done\n"), "{log}");
    assert_eq!(
        left_due(&fixture.state(), &now),
        (Vec::new(), Vec::new()),
        "work left due"
    );
}

#[test]
fn a_cron_run_whose_action_fails_runs_the_events_and_then_fails_saying_so() {
    let (fixture, now) = cron_store("cron-run-failing-action");
    let output = fixture.run_cron(&[("WP_STAND_IN_NOW", &now)]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let log = text(&output);
    assert!(
        log.contains("Error: Error processing action 8: the probe failed on purpose"),
        "{log}"
    );
    assert!(
        log.contains("cron: FAILED: 1 scheduled action(s) failed"),
        "{log}"
    );
    // Every event that was due ran; what is due now was scheduled by this run (the privacy cleanup's health
    // check, which WooCommerce's personal-data cleanup starts), for the next one.
    assert_eq!(
        left_due(&fixture.state(), &now).0,
        ["wp_1_wc_privacy_cleanup_cron"]
    );
}

#[test]
fn a_cron_run_before_the_bootstrap_finds_nothing_to_do_and_without_woocommerce_runs_the_events() {
    // The CronJob comes before the bootstrap: WordPress not installed yet, nothing to run, and the run succeeds.
    let fixture = Fixture::new();
    let output = fixture.run_cron(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("WordPress is not installed yet"),
        "{}",
        text(&output)
    );
    let calls = fixture.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].ends_with(&["core".to_owned(), "is-installed".to_owned()]),
        "{calls:?}"
    );

    // WooCommerce switched off: no actions to run, and WordPress's events still run.
    let (fixture, now) = cron_store("cron-run-health-checks");
    fixture.edit_state(|state| {
        let plugins = state["active_plugins"].as_array_mut().expect("plugins");
        plugins.retain(|plugin| plugin != "woocommerce");
    });
    let output = fixture.run_cron(&[("WP_STAND_IN_NOW", &now)]);
    assert!(output.status.success(), "{}", text(&output));
    let log = text(&output);
    assert!(log.contains("WooCommerce is not active"), "{log}");
    assert!(!log.contains("action-scheduler"), "{log}");
    assert!(log.ends_with("cron: done\n"), "{log}");
    assert!(
        left_due(&fixture.state(), &now).0.is_empty(),
        "events left due"
    );
}

#[test]
fn a_cron_run_fails_when_wp_cli_does_and_when_events_keep_ending_it() {
    // WP-CLI cannot load WordPress (no wp-config.php): the run fails with WP-CLI's words and its exit code.
    let (fixture, now) = cron_store("cron-run-health-checks");
    std::fs::remove_file(fixture.path("html/wp-config.php")).expect("remove wp-config.php");
    let output = fixture.run_cron(&[("WP_STAND_IN_NOW", &now)]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("Error: 'wp-config.php' not found."),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("wp core is-installed ended with exit code 1"),
        "{}",
        text(&output)
    );

    // More health checks due than rounds allowed: the run stops and says so rather than loop.
    let (fixture, now) = cron_store("cron-run-health-checks");
    let moment: u64 = now.parse().expect("now");
    fixture.edit_state(|state| {
        let events = state["cron"].as_array_mut().expect("events");
        for process in ["a", "b", "c"] {
            events.push(serde_json::json!({
                "hook": format!("wp_1_wc_{process}_cron"), "time": moment - 1, "interval": 300
            }));
        }
    });
    let output = fixture.run_cron(&[("WP_STAND_IN_NOW", &now), ("CRON_ROUNDS", "2")]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("events were still due after 2 rounds"),
        "{}",
        text(&output)
    );
}

#[test]
fn verification_fails_when_the_product_cannot_be_bought() {
    let fixture = Fixture::new();
    assert!(fixture.run(&shop(), &[]).status.success());
    // Someone cleared the price: WooCommerce no longer sells it.
    fixture.edit_state(|state| {
        for post in state["posts"].as_array_mut().expect("posts") {
            if post["type"] == "product" {
                post["regular_price"] = "".into();
            }
        }
    });
    let output = fixture.run(&shop(), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("FAILED: the sample product is not purchasable"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_gateway_switched_off_is_switched_on_again() {
    let fixture = Fixture::new();
    assert!(fixture.run(&shop(), &[]).status.success());
    // A plain `--field=enabled` prints an empty line for "off": only the JSON read tells them apart reliably.
    fixture.edit_state(|state| state["gateways"]["cod"] = false.into());
    let output = fixture.run(&shop(), &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("payment gateway cod enabled"));
    assert_eq!(fixture.state()["gateways"]["cod"], true);
}

#[test]
fn the_storefront_check_retries_a_warming_up_wordpress() {
    let fixture = Fixture::new();
    let warming = Storefront::start(&[(503, "starting"), (503, "starting"), (200, SHOP_PAGE)]);
    let output = fixture.run(&warming, &[("HTTP_RETRIES", "3")]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(warming.hosts().len(), 3);
}

#[test]
fn verification_fails_when_the_storefront_does_not_answer() {
    let fixture = Fixture::new();
    let output = fixture.run(&Storefront::start(&[(502, "bad gateway")]), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("storefront answered HTTP 502"),
        "{}",
        text(&output)
    );

    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let nobody = Storefront {
        url,
        hosts: Arc::default(),
    };
    let output = fixture.run(&nobody, &[("HTTP_RETRIES", "1")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("does not answer"),
        "{}",
        text(&output)
    );
}

#[test]
fn verification_fails_when_the_storefront_does_not_list_the_product() {
    let fixture = Fixture::new();
    let empty = Storefront::start(&[(200, "<html><body>No products were found.</body></html>")]);
    let output = fixture.run(&empty, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("does not list the sample product"),
        "{}",
        text(&output)
    );
}

#[test]
fn an_unreachable_database_fails_with_its_address() {
    let fixture = Fixture::new();
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let output = fixture.run(
        &shop(),
        &[
            ("WORDPRESS_DB_HOST", &format!("127.0.0.1:{closed}")),
            ("DB_WAIT_SECONDS", "2"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains(&format!("database 127.0.0.1:{closed} unreachable")),
        "{}",
        text(&output)
    );
}

#[test]
fn a_store_rebuilt_without_its_admin_email_finishes_if_wordpress_was_installed_and_says_why_if_not()
{
    let fixture = Fixture::new();
    let output = fixture.run(&shop(), &[("WP_ADMIN_EMAIL", "")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("FAILED: the store's admin email is unknown"),
        "{}",
        text(&output)
    );
    assert_eq!(fixture.state()["installed"], false);

    let installed = Fixture::new();
    assert!(installed.run(&shop(), &[]).status.success());
    let output = installed.run(&shop(), &[("WP_ADMIN_EMAIL", "")]);
    assert!(output.status.success(), "{}", text(&output));
}

/// A document root and database as a clone finds them: a store's database from `http://shop.localhost` (as in
/// clone-transcripts.md: the address in posts, plainly and JSON-escaped, in serialized values, in the
/// administrator's profile, in guids and in a table WordPress does not register), under a wp-config.php that
/// defines `new_url` as the address.
fn cloned_database(fixture: &Fixture, new_url: &str) {
    std::fs::write(
        fixture.path("html/wp-config.php"),
        format!("<?php\ndefine('WP_HOME', '{new_url}');\ndefine('WP_SITEURL', '{new_url}');\n"),
    )
    .expect("wp-config.php");
    let old = "http://shop.localhost";
    let state = serde_json::json!({
        "installed": true,
        "options": {
            "home": old,
            "siteurl": old,
            "blogname": "Ada&#039;s Test Shop",
            "store_platform_test": {"logo": format!("{old}/logo.png")},
        },
        "users": {"admin": {
            "password": "Transcript-Pass-0001",
            "email": "owner@example.com",
            "role": "administrator",
            "url": old,
        }},
        "active_plugins": [],
        "posts": [
            {"id": 1, "type": "post", "name": "hello-world", "status": "publish", "guid": format!("{old}/?p=1")},
            {"id": 2, "type": "page", "name": "sample-page", "status": "publish",
             "guid": format!("{old}/?page_id=2"), "content": format!("<a href=\"{old}/wp-admin/\">your dashboard</a>")},
            {"id": 3, "type": "page", "name": "privacy-policy", "status": "draft",
             "guid": format!("{old}/?page_id=3"), "content": format!("Our website address is: {old}.")},
            {"id": 4, "type": "post", "name": "shoe", "status": "publish", "guid": format!("{old}/?p=4"),
             "content": format!(
                 "<img src=\"{old}/wp-content/uploads/2026/12/shoe.png\" alt=\"shoe\"/>\n{{\"href\":\"http:\\/\\/shop.localhost\\/shop\\/\"}}"
             )},
        ],
        "next_id": 5,
        "cron": [],
        "actions": [],
        "tables": {
            "wp_postmeta": [{"id": 1, "meta_value": {"link": format!("{old}/shop/")}}],
            "wp_wc_orders_meta": [
                {"id": 1, "meta_value": format!("{old}/checkout/order-received/1/")},
                {"id": 2, "meta_value": {"return_url": format!("{old}/my-account/")}},
            ],
        },
    });
    std::fs::write(fixture.path("state.json"), state.to_string()).expect("state");
}

/// A recording's config line (`user update: user_pass: 'x'`) as the YAML file it stood for.
fn config_file(fixture: &Fixture, line: &str) -> PathBuf {
    let (section, setting) = line.split_once(": ").expect("section: setting");
    let path = fixture.path("wp-cli.yml");
    std::fs::write(&path, format!("{section}:\n  {setting}\n")).expect("config");
    path
}

#[test]
fn the_stand_in_moves_a_clones_address_as_real_wp_cli_did() {
    // The calls of clone-transcripts.md a clone's bootstrap makes (or that show what they did), in recorded order:
    // (heading, argv, the address of --url).
    let count = "--format=count";
    let skip = [
        "--all-tables-with-prefix",
        "--skip-tables=*options",
        "--skip-columns=guid",
        count,
    ];
    let (old, copy, longer) = (
        "http://shop.localhost",
        "http://copy.localhost",
        "http://spring-sale.localhost",
    );
    let escaped = |url: &str| url.replace('/', "\\/");
    let replace = |from: &str, to: &str, rest: &[&str]| -> Vec<String> {
        ["search-replace", from, to]
            .iter()
            .chain(rest)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let plain = |args: &[&str]| -> Vec<String> { args.iter().map(|s| (*s).to_owned()).collect() };
    let calls: Vec<(Vec<String>, &str)> = vec![
        (plain(&["option", "get", "home"]), copy),
        (
            plain(&["option", "list", "--search=home", "--field=option_value"]),
            copy,
        ),
        (
            plain(&["option", "list", "--search=siteurl", "--field=option_value"]),
            copy,
        ),
        (plain(&["user", "get", "admin", "--field=ID"]), copy),
        (plain(&["user", "get", "nobody", "--field=ID"]), copy),
        (plain(&["user", "update", "admin", "--skip-email"]), copy),
        (
            plain(&["user", "check-password", "admin", "Clone-Pass-0002"]),
            copy,
        ),
        (
            plain(&["user", "check-password", "admin", "Transcript-Pass-0001"]),
            copy,
        ),
        (plain(&["user", "update", "nobody", "--skip-email"]), copy),
        (
            plain(&[
                "user",
                "create",
                "admin2",
                "admin2@example.com",
                "--role=administrator",
            ]),
            copy,
        ),
        (
            plain(&["user", "check-password", "admin2", "Clone-Pass-0003"]),
            copy,
        ),
        (replace(old, copy, &skip), copy),
        (replace(old, copy, &skip), copy),
        (replace(&escaped(old), &escaped(copy), &skip), copy),
        (
            replace(old, copy, &["*options", "--all-tables-with-prefix", count]),
            copy,
        ),
        (
            replace(
                copy,
                copy,
                &["--all-tables-with-prefix", "--skip-columns=guid"],
            ),
            copy,
        ),
        (replace(old, copy, &["no_such_table", count]), copy),
        (
            plain(&["option", "list", "--search=home", "--field=option_value"]),
            copy,
        ),
        (
            plain(&["option", "list", "--search=siteurl", "--field=option_value"]),
            copy,
        ),
        (replace(copy, longer, &skip), longer),
        (replace(&escaped(copy), &escaped(longer), &skip), longer),
        (
            replace(
                copy,
                longer,
                &["*options", "--all-tables-with-prefix", count],
            ),
            longer,
        ),
        (
            plain(&["option", "list", "--search=home", "--field=option_value"]),
            longer,
        ),
    ];
    let recordings = recordings_in("clone-transcripts.md");
    let heading = |argv: &[String]| {
        let words: Vec<String> = argv
            .iter()
            .map(|a| {
                if a.contains('*') && !a.starts_with("--") || a.contains('\\') {
                    format!("'{a}'")
                } else {
                    a.replace("--skip-tables=*options", "--skip-tables='*options'")
                }
            })
            .collect();
        format!("wp {}", words.join(" "))
    };
    let fixture = Fixture::new();
    cloned_database(&fixture, copy);
    let mut from = 0;
    for (argv, url) in &calls {
        let wanted = heading(argv);
        if *url == longer {
            std::fs::write(
                fixture.path("html/wp-config.php"),
                format!(
                    "<?php\ndefine('WP_HOME', '{longer}');\ndefine('WP_SITEURL', '{longer}');\n"
                ),
            )
            .expect("wp-config.php");
        }
        let at = recordings[from..]
            .iter()
            .position(|r| r.heading == wanted)
            .unwrap_or_else(|| panic!("no recording of {wanted} after #{from}"));
        let recording = &recordings[from + at];
        from += at + 1;
        let mut command = Command::new(Path::new(FIXTURES).join("wp"));
        command
            .arg(format!("--path={}", fixture.path("html").display()))
            .arg(format!("--url={url}"))
            .args(argv)
            .env("WP_STAND_IN_STATE", fixture.path("state.json"));
        if let Some(config) = &recording.config {
            command.env("WP_CLI_CONFIG_PATH", config_file(&fixture, config));
        }
        let output = command.output().expect("run the stand-in");
        assert_eq!(
            (
                output.status.code(),
                shown(&output.stdout),
                shown(&output.stderr)
            ),
            (
                Some(recording.exit),
                recording.stdout.clone(),
                recording.stderr.clone()
            ),
            "{wanted}"
        );
    }
    // What the database held afterwards, as recorded: every address moved but the guids'; serialized values whole.
    let state = fixture.state();
    assert_eq!(
        state["options"]["store_platform_test"]["logo"],
        format!("{longer}/logo.png")
    );
    assert_eq!(
        state["tables"]["wp_wc_orders_meta"][1]["meta_value"]["return_url"],
        format!("{longer}/my-account/")
    );
    assert_eq!(state["posts"][3]["guid"], format!("{old}/?p=4"));
    assert!(
        state["posts"][3]["content"]
            .as_str()
            .is_some_and(|c| c.contains("http:\\/\\/spring-sale.localhost\\/shop\\/")
                && !c.contains("shop.localhost/")),
        "{state}"
    );
}

/// A clone's run: the database of store `shop`, at http://shop.localhost, in the store at http://shoes.localhost.
fn clone_run(fixture: &Fixture, storefront: &Storefront) -> Output {
    fixture.run(storefront, &[("CLONED_FROM", "shop")])
}

#[test]
fn a_clones_first_run_moves_its_address_and_sets_its_own_admin_password() {
    let fixture = Fixture::new();
    let storefront = shop();
    // The shop as its own bootstrap left it, then its database as a backup brings it: another address, another
    // password, and content naming the old address.
    let first = fixture.run(
        &storefront,
        &[
            ("STORE_URL", "http://shop.localhost"),
            ("WP_ADMIN_PASSWORD", "the-old-stores-password"),
        ],
    );
    assert!(first.status.success(), "{}", text(&first));
    std::fs::write(
        fixture.path("html/wp-config.php"),
        "<?php\ndefine('WP_HOME', 'http://shoes.localhost');\ndefine('WP_SITEURL', 'http://shoes.localhost');\n",
    )
    .expect("wp-config.php");
    fixture.edit_state(|state| {
        state["posts"][0]["content"] = Value::from(
            "See http://shop.localhost/shop/ and {\"u\":\"http:\\/\\/shop.localhost\\/\"}",
        );
        state["posts"][0]["guid"] = Value::from("http://shop.localhost/?p=1");
        state["options"]["widget_text"] =
            serde_json::json!({"2": {"text": "http://shop.localhost/sale/"}});
    });
    let before = fixture.calls().len();

    let output = clone_run(&fixture, &storefront);
    assert!(output.status.success(), "{}", text(&output));
    let state = fixture.state();
    assert_eq!(state["options"]["home"], "http://shoes.localhost");
    assert_eq!(state["options"]["siteurl"], "http://shoes.localhost");
    assert_eq!(
        state["options"]["widget_text"]["2"]["text"],
        "http://shoes.localhost/sale/"
    );
    assert_eq!(
        state["posts"][0]["content"],
        "See http://shoes.localhost/shop/ and {\"u\":\"http:\\/\\/shoes.localhost\\/\"}"
    );
    assert_eq!(
        state["posts"][0]["guid"], "http://shop.localhost/?p=1",
        "guids are ids: left alone"
    );
    assert_eq!(
        state["users"]["admin"]["password"], PASSWORD,
        "the clone's own password"
    );
    assert!(
        text(&output).contains("moving it to http://shoes.localhost"),
        "{}",
        text(&output)
    );

    // What it asked WP-CLI: the recorded forms (clone-transcripts.md), the password never on a command line.
    let asked: Vec<Vec<String>> = fixture.calls()[before..].to_vec();
    let docroot = fixture.path("html").display().to_string();
    let globals = [
        format!("--path={docroot}"),
        "--url=http://shoes.localhost".to_owned(),
    ];
    let adoption: Vec<Vec<String>> = asked
        .iter()
        .filter(|call| {
            let words: Vec<&str> = call[2..].iter().map(String::as_str).collect();
            matches!(
                words.as_slice(),
                ["search-replace" | "user", ..] | ["option", "list", ..]
            )
        })
        .cloned()
        .collect();
    let with_globals = |args: &[&str]| -> Vec<String> {
        globals
            .iter()
            .cloned()
            .chain(args.iter().map(|a| (*a).to_owned()))
            .collect()
    };
    let skip = [
        "--all-tables-with-prefix",
        "--skip-tables=*options",
        "--skip-columns=guid",
        "--format=count",
    ];
    assert_eq!(
        adoption,
        vec![
            with_globals(&["option", "list", "--search=home", "--field=option_value"]),
            with_globals(&["user", "get", "admin", "--field=ID"]),
            with_globals(&["user", "update", "admin", "--skip-email"]),
            with_globals(
                &[
                    &[
                        "search-replace",
                        "http://shop.localhost",
                        "http://shoes.localhost"
                    ][..],
                    &skip
                ]
                .concat()
            ),
            with_globals(
                &[
                    &[
                        "search-replace",
                        "http:\\/\\/shop.localhost",
                        "http:\\/\\/shoes.localhost"
                    ][..],
                    &skip
                ]
                .concat()
            ),
            with_globals(&[
                "search-replace",
                "http://shop.localhost",
                "http://shoes.localhost",
                "*options",
                "--all-tables-with-prefix",
                "--format=count"
            ]),
        ]
    );
    assert!(!asked.iter().flatten().any(|a| a.contains(PASSWORD)));
    assert!(!text(&output).contains(PASSWORD));

    // Run again (a retried Job): the address is the store's, nothing is moved or reset.
    let before = fixture.calls().len();
    let again = clone_run(&fixture, &storefront);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("the database's address is this store's"),
        "{}",
        text(&again)
    );
    assert!(
        !fixture.calls()[before..].iter().any(|call| call
            .iter()
            .any(|a| a == "search-replace" || a == "update" && call.contains(&"user".to_owned()))),
        "the second run moved or reset something"
    );
}

#[test]
fn a_clone_whose_database_has_no_such_administrator_gets_one() {
    let fixture = Fixture::new();
    let storefront = shop();
    assert!(
        fixture
            .run(
                &storefront,
                &[
                    ("STORE_URL", "http://shop.localhost"),
                    ("WP_ADMIN_USER", "ada")
                ]
            )
            .status
            .success()
    );
    let output = clone_run(&fixture, &storefront);
    assert!(output.status.success(), "{}", text(&output));
    let state = fixture.state();
    assert_eq!(state["users"]["admin"]["password"], PASSWORD);
    assert_eq!(state["users"]["admin"]["role"], "administrator");
    assert!(
        state["users"]["ada"].is_object(),
        "the old store's administrator stays"
    );
}
