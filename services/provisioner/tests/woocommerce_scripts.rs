//! The WooCommerce bootstrap script, run with bash exactly as the Job runs it, against a stand-in `wp` that prints
//! what real WP-CLI 2.12.0 prints (proven first against the recordings in `fixtures/wp-cli-2.12.0`), real `curl`
//! against a storefront on loopback, and a listening socket for the database. The first run sets the shop up, a
//! second run changes nothing in WordPress's state, a failed run can be retried, and verification fails loudly when
//! the shop is not sellable.

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
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .arg(SCRIPT)
            .env_clear()
            .env("PATH", path)
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
    exit: i32,
    stdout: String,
    stderr: String,
}

/// Reads `transcripts.md`: `### \`command\``, `exit: N`, then fenced `stdout:` and optional `stderr:` blocks.
fn recordings() -> Vec<Recording> {
    let text =
        std::fs::read_to_string(Path::new(FIXTURES).join("transcripts.md")).expect("transcripts");
    let mut recordings = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(heading) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) else {
            continue;
        };
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
    let html = fixture.path("html");
    let wp = |args: &[&str]| {
        Command::new(Path::new(FIXTURES).join("wp"))
            .arg(format!("--path={}", html.display()))
            .arg("--url=http://shop.localhost")
            .args(args)
            .env("WP_STAND_IN_STATE", fixture.path("state.json"))
            .output()
            .expect("run the stand-in")
    };
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

/// The two runs of this script recorded against real WP-CLI 2.12.0, WooCommerce 9.9.5 and WordPress 6.8.3 (see the
/// fixtures' README): every call's arguments (the document root as `{docroot}`), exit code and exact output.
fn recorded_run(number: u32) -> Vec<Value> {
    std::fs::read_to_string(Path::new(FIXTURES).join(format!("bootstrap-run-{number}.jsonl")))
        .expect("recorded run")
        .lines()
        .map(|line| serde_json::from_str(line).expect("recorded call"))
        .collect()
}

/// The environment the recorded runs had.
const RECORDED_ENV: &[(&str, &str)] = &[
    ("STORE_URL", "http://shop.localhost"),
    ("STORE_HOST", "shop.localhost"),
    ("STORE_TITLE", "Ada's Test Shop"),
    ("WP_ADMIN_PASSWORD", "Transcript-Pass-0001"),
];

#[test]
fn the_stand_in_answers_every_call_of_the_recorded_runs_as_real_wp_cli_did() {
    let fixture = Fixture::new();
    let docroot = fixture.path("html").display().to_string();
    let config = fixture.path("wp-cli.yml");
    std::fs::write(
        &config,
        "core install:\n  admin_password: 'Transcript-Pass-0001'\n",
    )
    .expect("config");
    for number in [1, 2] {
        for call in recorded_run(number) {
            let argv: Vec<String> = call["argv"]
                .as_array()
                .expect("argv")
                .iter()
                .map(|a| a.as_str().expect("arg").replace("{docroot}", &docroot))
                .collect();
            let mut command = Command::new(Path::new(FIXTURES).join("wp"));
            command
                .args(&argv)
                .env("WP_STAND_IN_STATE", fixture.path("state.json"));
            if call["config_file"] == true {
                command.env("WP_CLI_CONFIG_PATH", &config);
            }
            let output = command.output().expect("run the stand-in");
            assert_eq!(
                (
                    output.status.code(),
                    String::from_utf8_lossy(&output.stdout).into_owned(),
                    String::from_utf8_lossy(&output.stderr).into_owned()
                ),
                (
                    call["exit"].as_i64().map(|c| c as i32),
                    call["stdout"].as_str().expect("stdout").to_owned(),
                    call["stderr"].as_str().expect("stderr").to_owned()
                ),
                "run {number}: {argv:?}"
            );
        }
    }
}

#[test]
fn the_script_asks_the_stand_in_exactly_what_it_asked_real_wp_cli() {
    let fixture = Fixture::new();
    let docroot = fixture.path("html").display().to_string();
    let storefront = Storefront::start(&[(200, SHOP_PAGE)]);
    for number in [1, 2] {
        let before = fixture.calls().len();
        let output = fixture.run(&storefront, RECORDED_ENV);
        assert!(output.status.success(), "run {number}: {}", text(&output));
        let asked: Vec<Vec<String>> = fixture.calls()[before..].to_vec();
        let recorded: Vec<Vec<String>> = recorded_run(number)
            .iter()
            .map(|call| {
                call["argv"]
                    .as_array()
                    .expect("argv")
                    .iter()
                    .map(|a| a.as_str().expect("arg").replace("{docroot}", &docroot))
                    .collect()
            })
            .collect();
        assert_eq!(asked, recorded, "run {number}");
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
    assert_eq!(
        fixture.state(),
        fresh.state(),
        "the retry converged on the same shop"
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
