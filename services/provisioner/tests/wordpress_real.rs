//! A store's WordPress side run for real, outside Kubernetes: WordPress core from Debian's package, PHP 8.2 under
//! Apache's mod_php as uid 33, and MariaDB, all on loopback, with exactly what the provisioner gives a store — the
//! init script and mail plugin of its ConfigMap, its `wp-config.php` additions and its mail settings. What is
//! shown: the init script lays out a core WordPress runs from; WordPress installs; without a relay no mail is
//! attempted (no sendmail error anywhere) and WordPress says the mail was not sent; with one, mail arrives through
//! SMTP with authentication, from the platform's sender, replies to the site; a relay that refuses is logged
//! without its password; a relay that says nothing costs a request its mail budget once, however many mails it
//! sends; wp-admin never waits on the internet the store cannot reach; WP-Cron never runs from visitors' requests
//! (the CronJob runs it with WP-CLI, which Debian does not carry: woocommerce_scripts.rs tests that).
//!
//! Not the store image: Debian carries WordPress 6.1 (the image has 6.8) and neither WooCommerce nor WP-CLI; the
//! image's entrypoint (which only writes wp-config.php once the core is in place) is replaced by an equivalent
//! `wp-config.php` written here. Test-only additions: WordPress's proxy setting points at a listener of the test's
//! that stands in for the closed internet (it takes connections and never answers, as a dropped connection would),
//! so whatever WordPress would send out comes to the test instead of leaving the machine, and the test sees it;
//! and a must-use plugin that schedules one event. Packages: scripts/debian-packages.sh.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use store_platform_provisioner::{
    settings::{Mail, MailSecurity, Settings},
    woocommerce::wordpress,
};
use store_platform_test_support::{
    daemon::{Daemon, require_programs},
    process::free_port,
};

mod mariadb_support;
use mariadb_support::{sh, text};

const STORE: &str = "shop";
const HOST: &str = "shop.localhost";
const RELAY_USER: &str = "relay-user";
const RELAY_PASSWORD: &str = "relay-secret-7Qm2";
const SENDER: &str = "shops@platform.example";
const OWNER: &str = "owner@example.com";

const APACHE: &str = "/usr/sbin/apache2";
const MARIADBD: &str = "/usr/sbin/mariadbd";
const PROGRAMS: &[&str] = &[
    APACHE,
    "/usr/lib/apache2/modules/libphp8.2.so",
    MARIADBD,
    "/usr/bin/mariadb-install-db",
    "/usr/bin/mariadb",
    "/usr/share/wordpress/wp-includes/version.php",
    "/usr/bin/curl",
];

/// A single event due a minute ago, and a record of when it ran (test only).
const CRON_PROBE: &str = r#"<?php
add_action('init', function () {
    if (wp_installing() || !is_blog_installed()) {
        return;
    }
    if (false === get_option('sp_probe_scheduled')) {
        update_option('sp_probe_scheduled', time());
        wp_schedule_single_event(time() - 60, 'sp_probe_event');
    }
});
add_action('sp_probe_event', function () {
    update_option('sp_probe_ran', time());
});
"#;

/// One SMTP conversation, as the relay saw it.
#[derive(Clone, Debug, Default)]
struct Delivery {
    login: Option<(String, String)>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }
}

/// An SMTP relay on loopback that wants AUTH LOGIN or PLAIN with the relay's credentials and keeps every mail.
struct Relay {
    port: u16,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl Relay {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("addr").port();
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let kept = deliveries.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let _ = converse(stream, &kept);
                });
            }
        });
        Self { port, deliveries }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("deliveries").clone()
    }
}

fn converse(stream: TcpStream, kept: &Mutex<Vec<Delivery>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut say = |line: &str| out.write_all(format!("{line}\r\n").as_bytes());
    let read = |reader: &mut BufReader<TcpStream>| -> std::io::Result<String> {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    say("220 relay.test ESMTP")?;
    let mut delivery = Delivery::default();
    loop {
        let line = read(&mut reader)?;
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            say("250-relay.test")?;
            say("250-AUTH LOGIN PLAIN")?;
            say("250 8BITMIME")?;
        } else if upper == "AUTH LOGIN" {
            say("334 VXNlcm5hbWU6")?;
            let user = decode(&read(&mut reader)?);
            say("334 UGFzc3dvcmQ6")?;
            let password = decode(&read(&mut reader)?);
            let ok = user == RELAY_USER && password == RELAY_PASSWORD;
            delivery.login = Some((user, password));
            say(if ok {
                "235 2.7.0 accepted"
            } else {
                "535 5.7.8 refused"
            })?;
        } else if let Some(encoded) = upper.strip_prefix("AUTH PLAIN ") {
            let decoded = decode(&line[line.len() - encoded.len()..]);
            let mut parts = decoded.split('\0').skip(1);
            let (user, password) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let ok = user == RELAY_USER && password == RELAY_PASSWORD;
            delivery.login = Some((user.to_owned(), password.to_owned()));
            say(if ok {
                "235 2.7.0 accepted"
            } else {
                "535 5.7.8 refused"
            })?;
        } else if upper.starts_with("MAIL FROM:") {
            if !matches!(&delivery.login, Some((u, p)) if u == RELAY_USER && p == RELAY_PASSWORD) {
                say("530 5.7.0 authentication required")?;
                continue;
            }
            delivery.mail_from = line[10..].trim().trim_matches(['<', '>']).to_owned();
            say("250 ok")?;
        } else if upper.starts_with("RCPT TO:") {
            delivery
                .rcpt_to
                .push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            say("250 ok")?;
        } else if upper == "DATA" {
            say("354 go on")?;
            loop {
                let line = read(&mut reader)?;
                if line == "." {
                    break;
                }
                delivery
                    .data
                    .push_str(line.strip_prefix('.').unwrap_or(&line));
                delivery.data.push('\n');
            }
            kept.lock().expect("deliveries").push(delivery.clone());
            delivery.mail_from.clear();
            delivery.rcpt_to.clear();
            delivery.data.clear();
            say("250 kept")?;
        } else if upper == "RSET" || upper == "NOOP" {
            say("250 ok")?;
        } else if upper == "QUIT" || line.is_empty() {
            let _ = say("221 bye");
            return Ok(());
        } else {
            say("502 not here")?;
        }
    }
}

/// Standard base64, as SMTP AUTH sends it.
fn decode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let Some(value) = ALPHABET.iter().position(|a| *a == c) else {
            continue;
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The internet as a store sees it: closed. It takes connections and never answers, and keeps the first line of
/// each (a proxy's request line: `CONNECT api.wordpress.org:443 HTTP/1.1`).
struct Internet {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Internet {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the internet");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let _ = BufReader::new(&stream).read_line(&mut line);
                    kept.lock()
                        .expect("requests")
                        .push(line.trim_end().to_owned());
                    // Held open, unanswered, until the client gives up.
                    std::thread::sleep(Duration::from_secs(300));
                    drop(stream);
                });
            }
        });
        Self { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

/// An SMTP relay that takes connections and never says anything, and counts them.
fn silent_relay() -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(Mutex::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            *counted.lock().expect("count") += 1;
            held.push(stream);
        }
    });
    (port, connections)
}

/// MariaDB, Apache with mod_php and a WordPress document root laid out by the platform's init script.
struct Store {
    dir: tempfile::TempDir,
    internet: Internet,
    web: Option<Daemon>,
    _database: Daemon,
    web_port: u16,
    socket: PathBuf,
    settings: Settings,
}

impl Store {
    /// The store's files and database, with Apache not yet started.
    fn prepare(mail: Option<Mail>) -> Self {
        require_programs(PROGRAMS);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let internet = Internet::start();
        let path = |sub: &str| dir.path().join(sub);

        // The image's pristine core (/usr/src/wordpress there): Debian's WordPress, with the .htaccess the image
        // ships, owned by www-data.
        sh(&format!(
            "cp -rL /usr/share/wordpress {src} && rm -f {src}/wp-config.php {src}/.htaccess && chown -R 33:33 {src}",
            src = path("src").display()
        ));
        std::fs::write(
            path("src/.htaccess"),
            "# BEGIN WordPress\nRewriteEngine On\nRewriteBase /\nRewriteRule ^index\\.php$ - [L]\n\
             RewriteCond %{REQUEST_FILENAME} !-f\nRewriteCond %{REQUEST_FILENAME} !-d\n\
             RewriteRule . /index.php [L]\n# END WordPress\n",
        )
        .expect("htaccess");
        // The ConfigMap's files, as the pod mounts them.
        std::fs::create_dir(path("platform")).expect("mkdir");
        for (name, content) in wordpress::files_config_map(STORE).data.expect("data") {
            std::fs::write(path("platform").join(name), content).expect("platform file");
        }
        // The volume: a root-owned 0777 directory, as a local-path provisioner gives.
        std::fs::create_dir(path("html")).expect("mkdir");
        std::fs::set_permissions(path("html"), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let init = Command::new("setpriv")
            .args(["--reuid=33", "--regid=33", "--groups=33", "--", "bash"])
            .arg(path("platform/install-core.sh"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("WORDPRESS_SOURCE", path("src"))
            .env("WORDPRESS_TARGET", path("html"))
            .env("PLATFORM_FILES", path("platform"))
            .output()
            .expect("run the init script");
        assert!(init.status.success(), "{}: {}", init.status, text(&init));
        // What the image's entrypoint then writes: a wp-config.php that reads the environment.
        let config = format!(
            "<?php\n\
             define('DB_NAME', getenv('WORDPRESS_DB_NAME'));\n\
             define('DB_USER', getenv('WORDPRESS_DB_USER'));\n\
             define('DB_PASSWORD', getenv('WORDPRESS_DB_PASSWORD'));\n\
             define('DB_HOST', getenv('WORDPRESS_DB_HOST'));\n\
             define('DB_CHARSET', 'utf8mb4');\n\
             define('DB_COLLATE', '');\n\
             {salts}\
             $table_prefix = 'wp_';\n\
             eval(getenv('WORDPRESS_CONFIG_EXTRA'));\n\
             define('WP_PROXY_HOST', '127.0.0.1');\n\
             define('WP_PROXY_PORT', '{internet}');\n\
             if (!defined('ABSPATH')) {{ define('ABSPATH', __DIR__ . '/'); }}\n\
             require_once ABSPATH . 'wp-settings.php';\n",
            salts = [
                "AUTH_KEY",
                "SECURE_AUTH_KEY",
                "LOGGED_IN_KEY",
                "NONCE_KEY",
                "AUTH_SALT",
                "SECURE_AUTH_SALT",
                "LOGGED_IN_SALT",
                "NONCE_SALT",
            ]
            .iter()
            .map(|k| format!(
                "define('{k}', '{}');\n",
                store_platform_provisioner::woocommerce::secret::password()
            ))
            .collect::<String>(),
            internet = internet.port,
        );
        std::fs::write(path("html/wp-config.php"), config).expect("wp-config");
        std::fs::write(
            path("html/wp-content/mu-plugins/sp-cron-probe.php"),
            CRON_PROBE,
        )
        .expect("probe");
        sh(&format!(
            "chown 33:33 {0}/wp-config.php {0}/wp-content/mu-plugins/sp-cron-probe.php",
            path("html").display()
        ));

        let mariadb_support::MariaDb {
            daemon: database,
            socket,
            ..
        } = mariadb_support::start(&path("db"));
        let settings = Settings {
            mail,
            ..Settings::local()
        };
        Self {
            internet,
            web_port: free_port(),
            web: None,
            _database: database,
            socket,
            settings,
            dir,
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Starts Apache as uid 33 with the environment the WordPress container gets (the relay's password as the
    /// store's Secret would give it).
    fn start_web(&mut self) {
        let run = self.path("web");
        std::fs::create_dir_all(&run).expect("mkdir");
        sh(&format!("chown 33:33 {}", run.display()));
        let modules = "/usr/lib/apache2/modules";
        let config = format!(
            "ServerRoot /etc/apache2\n\
             PidFile {run}/apache2.pid\n\
             Mutex file:{run}\n\
             Listen 127.0.0.1:{port}\n\
             LoadModule mpm_prefork_module {modules}/mod_mpm_prefork.so\n\
             LoadModule authz_core_module {modules}/mod_authz_core.so\n\
             LoadModule dir_module {modules}/mod_dir.so\n\
             LoadModule mime_module {modules}/mod_mime.so\n\
             LoadModule rewrite_module {modules}/mod_rewrite.so\n\
             LoadModule php_module {modules}/libphp8.2.so\n\
             StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\nMaxRequestWorkers 8\n\
             TypesConfig /etc/mime.types\n\
             ErrorLog {run}/error.log\nLogLevel warn\n\
             ServerName {HOST}\n\
             DocumentRoot {docroot}\n\
             DirectoryIndex index.php index.html\n\
             <Directory {docroot}>\n  AllowOverride All\n  Require all granted\n</Directory>\n\
             <FilesMatch \"^\\.ht\">\n  Require all denied\n</FilesMatch>\n\
             <FilesMatch \"\\.php$\">\n  SetHandler application/x-httpd-php\n</FilesMatch>\n",
            run = run.display(),
            port = self.web_port,
            docroot = self.path("html").display(),
        );
        std::fs::write(run.join("httpd.conf"), config).expect("httpd.conf");
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=33",
                "--regid=33",
                "--groups=33",
                "--",
                APACHE,
                "-DFOREGROUND",
                "-f",
            ])
            .arg(run.join("httpd.conf"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/bin")
            .env("APACHE_RUN_DIR", &run)
            .env(
                "WORDPRESS_DB_HOST",
                format!("localhost:{}", self.socket.display()),
            )
            .env("WORDPRESS_DB_NAME", "wordpress")
            .env("WORDPRESS_DB_USER", "wordpress")
            .env("WORDPRESS_DB_PASSWORD", "wordpress-db-password")
            .env(
                "WORDPRESS_CONFIG_EXTRA",
                wordpress::config_extra(STORE, &self.settings),
            );
        for var in wordpress::mail_env(&self.settings) {
            let value = match var.value {
                Some(value) => value,
                // The one variable the pod reads from the store's Secret.
                None => RELAY_PASSWORD.to_owned(),
            };
            command.env(&var.name, value);
        }
        let mut web =
            Daemon::spawn("apache", command, &run.join("apache.out")).expect("start apache");
        web.wait_for(
            SocketAddr::from(([127, 0, 0, 1], self.web_port)),
            Duration::from_secs(30),
        );
        self.web = Some(web);
    }

    /// Apache's error log: PHP's errors and warnings land here, as they do in the container's log.
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.path("web/error.log")).unwrap_or_default()
    }

    /// curl with the store's Host header; returns (HTTP code, body).
    fn request(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        self.curl(path, form, None)
    }

    /// The same, as a browser keeps a session: its cookies in `jar`.
    fn browse(&self, jar: &Path, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        self.curl(path, form, Some(jar))
    }

    fn curl(&self, path: &str, form: &[(&str, &str)], jar: Option<&Path>) -> (u16, String) {
        let mut command = Command::new("curl");
        if let Some(jar) = jar {
            command.arg("-b").arg(jar).arg("-c").arg(jar);
        }
        command
            .args([
                "-sS",
                "--max-time",
                "60",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "-H",
            ])
            .arg(format!("Host: {HOST}"));
        for (key, value) in form {
            command
                .arg("--data-urlencode")
                .arg(format!("{key}={value}"));
        }
        command.arg(format!("http://127.0.0.1:{}{path}", self.web_port));
        let output = command.output().expect("curl");
        assert!(
            output.status.success(),
            "curl {path}: {}\nApache's log:\n{}\n{}\n{}",
            text(&output),
            self.error_log(),
            self.web.as_ref().map(Daemon::log).unwrap_or_default(),
            String::from_utf8_lossy(
                &Command::new("sh")
                    .arg("-c")
                    .arg("ps -eo pid,ppid,user,stat,args | grep -E 'apache|mariadb' | grep -v grep")
                    .output()
                    .expect("ps")
                    .stdout
            ),
        );
        let body = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, code) = body.rsplit_once('\n').expect("code");
        (code.trim().parse().expect("http code"), body.to_owned())
    }

    /// WordPress's own web installer, as a person would use it.
    fn install_wordpress(&self) {
        let (code, body) = self.request(
            "/wp-admin/install.php?step=2",
            &[
                ("weblog_title", "Real Shop"),
                ("user_name", "admin"),
                ("admin_password", "A-long-Admin-passw0rd!"),
                ("admin_password2", "A-long-Admin-passw0rd!"),
                ("admin_email", OWNER),
                ("blog_public", "0"),
                ("Submit", "Install WordPress"),
            ],
        );
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("Success!"), "{body}");
    }

    fn option(&self, name: &str) -> Option<String> {
        let value = self.sql(&format!(
            "SELECT option_value FROM wordpress.wp_options WHERE option_name = '{name}'"
        ));
        (!value.is_empty()).then_some(value)
    }

    /// `statement` as MariaDB's root; what it printed, trimmed.
    fn sql(&self, statement: &str) -> String {
        let output = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-N", "-B", "-S"])
            .arg(&self.socket)
            .arg("-e")
            .arg(statement)
            .output()
            .expect("mariadb");
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// What a password reset answers: WordPress mails the link.
    fn ask_for_a_password_reset(&self) -> (u16, String) {
        self.request(
            "/wp-login.php?action=lostpassword",
            &[
                ("user_login", "admin"),
                ("redirect_to", ""),
                ("wp-submit", "Get New Password"),
            ],
        )
    }
}

fn relay(port: u16) -> Mail {
    Mail {
        host: "127.0.0.1".into(),
        port,
        security: MailSecurity::None,
        username: Some(RELAY_USER.into()),
        password_file: Some("/etc/store-platform/smtp/password".into()),
        from: SENDER.into(),
        egress_cidrs: vec!["127.0.0.1/32".into()],
    }
}

#[test]
fn without_a_relay_wordpress_runs_sends_nothing_and_says_so_and_visitors_never_run_cron() {
    let mut store = Store::prepare(None);
    store.start_web();
    store.install_wordpress();
    // Debian's installer page warns about two variables of its own; from here on, nothing may.
    let installed = store.error_log().len();
    let (code, body) = store.request("/wp-login.php", &[]);
    assert_eq!(code, 200, "the login page, from the copied core: {body}");

    // A password reset needs a mail: WordPress reports it could not be sent, and nothing tried a sendmail.
    let (code, body) = store.ask_for_a_password_reset();
    assert_eq!(code, 200);
    assert!(body.contains("could not be sent"), "{body}");
    let log = store.error_log();
    assert!(!log.contains("sendmail"), "{log}");
    // One line says what happened, for the operator.
    assert!(
        log.contains("store-platform mail: mail is off (the platform has no SMTP relay); not sent: [Real Shop] Password Reset"),
        "{log}"
    );
    let since = &log[installed..];
    assert!(
        !since.contains("PHP Fatal") && !since.contains("PHP Warning"),
        "{since}"
    );

    // Visitors' requests never run WP-Cron (DISABLE_WP_CRON): the due event waits for the CronJob.
    for _ in 0..3 {
        assert_eq!(store.request("/", &[]).0, 200);
    }
    assert!(
        store.option("sp_probe_scheduled").is_some(),
        "the probe scheduled its event"
    );
    // WordPress spawns cron by taking this lock, then calling itself; it never did.
    assert_eq!(
        store.option("_transient_doing_cron"),
        None,
        "a visit spawned WP-Cron"
    );
    assert_eq!(
        store.option("sp_probe_ran"),
        None,
        "cron ran from a visitor's request"
    );
    assert!(
        !store.error_log().contains("PHP Fatal"),
        "{}",
        store.error_log()
    );
    assert_eq!(store.internet.requests(), Vec::<String>::new());
}

#[test]
fn with_a_relay_mail_arrives_authenticated_from_the_platform_sender() {
    let relay_server = Relay::start();
    let mut store = Store::prepare(Some(relay(relay_server.port)));
    store.start_web();
    // Installing WordPress mails the owner about the new site.
    store.install_wordpress();
    let (code, body) = store.ask_for_a_password_reset();
    assert_eq!(
        code, 302,
        "a sent reset mail redirects to 'check your email': {body}"
    );

    let deliveries = relay_server.deliveries();
    assert_eq!(
        deliveries.len(),
        2,
        "{deliveries:#?}\n{}",
        store.error_log()
    );
    for delivery in &deliveries {
        assert_eq!(
            delivery.login,
            Some((RELAY_USER.to_owned(), RELAY_PASSWORD.to_owned()))
        );
        assert_eq!(delivery.mail_from, SENDER);
        assert_eq!(delivery.rcpt_to, [OWNER]);
        let from = delivery.header("From").expect("From");
        assert!(from.contains(SENDER), "{from}");
        // WordPress's own mails come from "wordpress@<site>", where nobody reads: replies go to the administrator.
        let reply_to = delivery.header("Reply-To").expect("Reply-To");
        assert!(reply_to.contains(OWNER), "{reply_to}");
    }
    assert!(
        deliveries.iter().any(|d| d
            .header("Subject")
            .is_some_and(|s| s.contains("Password Reset"))),
        "{deliveries:#?}"
    );
    assert!(
        !store.error_log().contains("store-platform mail"),
        "{}",
        store.error_log()
    );
}

#[test]
fn a_relay_that_refuses_is_logged_without_its_password() {
    let relay_server = Relay::start();
    let mut store = Store::prepare(Some(relay(relay_server.port)));
    store.start_web();
    store.install_wordpress();
    // The relay's password is rotated, and the store still has the old one.
    drop(store.web.take());
    let refusing = Relay::start();
    store.settings.mail = Some(Mail {
        username: Some("someone-else".into()),
        ..relay(refusing.port)
    });
    store.start_web();
    let (code, body) = store.ask_for_a_password_reset();
    assert_eq!(code, 200);
    assert!(body.contains("could not be sent"), "{body}");
    assert!(refusing.deliveries().is_empty());
    let log = store.error_log();
    assert!(log.contains("store-platform mail: not sent:"), "{log}");
    assert!(!log.contains(RELAY_PASSWORD), "{log}");
}

#[test]
fn a_relay_that_says_nothing_costs_a_request_its_mail_budget_once_however_many_mails_it_sends() {
    // It takes the connection and never answers (PHPMailer would wait 5 minutes for each reply).
    let (port, connections) = silent_relay();
    let mut store = Store::prepare(Some(relay(port)));
    store.start_web();
    // The installer's own mail: one connection, given up on.
    store.install_wordpress();
    assert_eq!(*connections.lock().expect("count"), 1);

    // A visitor registers: WordPress mails the administrator and the new user in the same request. The first mail
    // waits out the request's whole budget; the second is not tried.
    store.sql("UPDATE wordpress.wp_options SET option_value = '1' WHERE option_name = 'users_can_register'");
    let started = std::time::Instant::now();
    let (code, body) = store.request(
        "/wp-login.php?action=register",
        &[
            ("user_login", "grace"),
            ("user_email", "grace@example.com"),
            ("redirect_to", ""),
            ("wp-submit", "Register"),
        ],
    );
    let took = started.elapsed();
    assert!(code == 200 || code == 302, "{code}: {body}");
    assert_eq!(
        *connections.lock().expect("count"),
        2,
        "the relay was tried again after it said nothing"
    );
    let log = store.error_log();
    assert!(
        log.contains("store-platform mail: not sent: the relay took up the 15 s this request may spend on mail"),
        "{log}"
    );
    eprintln!("a registration (two mails) against a silent relay took {took:?}");
    assert_eq!(store.internet.requests(), Vec::<String>::new());
}

#[test]
fn wp_admin_never_waits_on_the_internet_the_store_cannot_reach() {
    let mut store = Store::prepare(None);
    store.start_web();
    store.install_wordpress();
    // The owner signs in and opens the dashboard, the updates page and the plugin installer: on their own, each asks
    // api.wordpress.org (updates, PHP and browser checks, plugin lists), and each such request would wait for a
    // closed internet to answer.
    let jar = store.path("cookies");
    let started = std::time::Instant::now();
    let login = store.browse(&jar, "/wp-login.php", &[]);
    assert_eq!(login.0, 200, "{}", login.1);
    let signed_in = store.browse(
        &jar,
        "/wp-login.php",
        &[
            ("log", "admin"),
            ("pwd", "A-long-Admin-passw0rd!"),
            ("wp-submit", "Log In"),
            ("testcookie", "1"),
        ],
    );
    assert_eq!(signed_in.0, 302, "{}", signed_in.1);
    for page in [
        "/wp-admin/",
        "/wp-admin/update-core.php",
        "/wp-admin/plugin-install.php",
    ] {
        let (code, body) = store.browse(&jar, page, &[]);
        assert_eq!(code, 200, "{page}: {body}");
        assert!(body.contains("wp-admin"), "{page}: {body}");
    }
    eprintln!(
        "sign-in and three wp-admin pages took {:?}",
        started.elapsed()
    );
    assert_eq!(
        store.internet.requests(),
        Vec::<String>::new(),
        "WordPress tried to reach the internet"
    );
}
