//! The WooCommerce bootstrap script against a stub `wp` that records every call and keeps WordPress's state in
//! files: the first run sets the shop up, a second run changes nothing, and verification fails loudly when the shop
//! is not sellable.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/woocommerce-bootstrap.sh"
);

/// `wp` as far as the script uses it. State lives in $STUB_STATE; every call is appended to calls.log.
const STUB_WP: &str = r#"#!/usr/bin/env bash
set -u
state=${STUB_STATE:?}
echo "$*" >>"$state/calls.log"
args=()
field=""
for a in "$@"; do
  case $a in
    --path=* | --url=* | --skip-plugins=* | --user=*) ;;
    --field=*) field=${a#--field=} ;;
    *) args+=("$a") ;;
  esac
done
set -- "${args[@]}"
case "$1 $2" in
  "core is-installed") [[ -f $state/installed ]] ;;
  "core install") touch "$state/installed" ;;
  "plugin is-active") [[ -f $state/active-$3 ]] ;;
  "plugin activate") touch "$state/active-$3" ;;
  "option get") if [[ -f $state/option-$3 ]]; then cat "$state/option-$3"; else exit 1; fi ;;
  "option update") printf '%s' "$4" >"$state/option-$3" ;;
  "rewrite structure") printf '%s' "$3" >"$state/option-permalink_structure" ;;
  "rewrite flush") ;;
  "wc tool") ;;
  "wc payment_gateway")
    case $3 in
      get) cat "$state/gateway-$4" 2>/dev/null || echo false ;;
      update) echo true >"$state/gateway-$4" ;;
    esac ;;
  "wc product")
    case $3 in
      list) cat "$state/product" 2>/dev/null || true ;;
      create) echo 42 >"$state/product" ;;
      get)
        case $field in
          status) echo publish ;;
          purchasable) echo "${STUB_PURCHASABLE:-true}" ;;
        esac ;;
    esac ;;
  *) echo "stub wp: unexpected call: $*" >&2; exit 2 ;;
esac
"#;

const STUB_CURL: &str = "#!/usr/bin/env bash\necho \"${STUB_HTTP_CODE:-200}\"\n";

struct Fixture {
    dir: tempfile::TempDir,
    database: TcpListener,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["bin", "state", "html/wp-includes"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("html/wp-includes/version.php"), "<?php")
            .expect("version.php");
        std::fs::write(dir.path().join("html/wp-config.php"), "<?php").expect("wp-config.php");
        for (name, body) in [("wp", STUB_WP), ("curl", STUB_CURL)] {
            let path = dir.path().join("bin").join(name);
            std::fs::write(&path, body).expect("stub");
            Command::new("chmod")
                .arg("+x")
                .arg(&path)
                .status()
                .expect("chmod");
        }
        // Something listening where the script waits for the database.
        let database = TcpListener::bind("127.0.0.1:0").expect("bind");
        Self { dir, database }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn run(&self, extra: &[(&str, &str)]) -> Output {
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
            .env("STUB_STATE", self.path("state"))
            .env("WP_PATH", self.path("html"))
            .env("WORDPRESS_DB_HOST", format!("127.0.0.1:{port}"))
            .env("STORE_URL", "http://shoes.localhost")
            .env("STORE_HOST", "shoes.localhost")
            .env("STORE_TITLE", "Shoes & Socks")
            .env("WP_ADMIN_USER", "admin")
            .env("WP_ADMIN_PASSWORD", "s3cret")
            .env("WP_ADMIN_EMAIL", "owner@example.com")
            .env("WORDPRESS_SERVICE_URL", "http://wordpress")
            .env("DB_WAIT_SECONDS", "5")
            .envs(extra.iter().copied())
            .output()
            .expect("run the script")
    }

    fn calls(&self) -> Vec<String> {
        read_lines(&self.path("state/calls.log"))
    }

    fn truncate_calls(&self) {
        std::fs::write(self.path("state/calls.log"), "").expect("truncate");
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn changes(calls: &[String]) -> Vec<&String> {
    let mutating = [
        "core install",
        "plugin activate",
        "option update",
        "rewrite structure",
        "payment_gateway update",
        "product create",
    ];
    calls
        .iter()
        .filter(|c| mutating.iter().any(|m| c.contains(m)))
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_first_run_sets_the_shop_up() {
    let fixture = Fixture::new();
    let output = fixture.run(&[]);
    assert!(output.status.success(), "{}", text(&output));
    let calls = fixture.calls();
    let made = changes(&calls);
    for expected in [
        "core install",
        "plugin activate woocommerce",
        "payment_gateway update cod",
        "payment_gateway update cheque",
        "product create",
        "option update woocommerce_coming_soon no",
        "option update woocommerce_enable_guest_checkout yes",
        "rewrite structure /%postname%/",
    ] {
        assert!(
            made.iter().any(|c| c.contains(expected)),
            "{expected} missing from {made:?}"
        );
    }
    assert!(
        calls
            .iter()
            .any(|c| c.contains("core install") && c.contains("--admin_password=s3cret"))
    );
    assert!(text(&output).contains("bootstrap: done"));
}

#[test]
fn a_second_run_changes_nothing() {
    let fixture = Fixture::new();
    assert!(fixture.run(&[]).status.success());
    fixture.truncate_calls();
    let output = fixture.run(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(changes(&fixture.calls()), Vec::<&String>::new());
    assert!(text(&output).contains("verified"));
}

#[test]
fn verification_fails_when_the_product_cannot_be_bought() {
    let fixture = Fixture::new();
    let output = fixture.run(&[("STUB_PURCHASABLE", "false")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("FAILED: the sample product is not purchasable"),
        "{}",
        text(&output)
    );
}

#[test]
fn verification_fails_when_the_storefront_does_not_answer() {
    let fixture = Fixture::new();
    let output = fixture.run(&[("STUB_HTTP_CODE", "502")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("storefront answered HTTP 502"),
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
    let output = fixture.run(&[
        ("WORDPRESS_DB_HOST", &format!("127.0.0.1:{closed}")),
        ("DB_WAIT_SECONDS", "2"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains(&format!("database 127.0.0.1:{closed} unreachable")),
        "{}",
        text(&output)
    );
}
