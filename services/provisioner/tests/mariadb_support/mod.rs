//! Debian's MariaDB for the tests that run a WooCommerce store's database for real (wordpress_real.rs,
//! backup_real.rs): a fresh server on a socket and a loopback port of its own, with the store's database and user.
// Each user uses a part of this.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use store_platform_test_support::{daemon::Daemon, process::free_port};

pub const MARIADBD: &str = "/usr/sbin/mariadbd";
pub const MARIADB: &str = "/usr/bin/mariadb";

/// A running MariaDB.
pub struct MariaDb {
    pub daemon: Daemon,
    pub socket: PathBuf,
    pub port: u16,
}

/// Runs `command` with `sh -c`; it must succeed.
pub fn sh(command: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .expect("sh");
    assert!(status.success(), "{command}");
}

/// What a command printed, standard output then standard error.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A fresh MariaDB in `data`, with the database `wordpress` and its user `wordpress`@`localhost`.
pub fn start(data: &Path) -> MariaDb {
    // Temporary tables go to $TMPDIR: one of its own, or servers started at the same moment trip over each other's.
    let tmp = data.with_file_name("db-tmp");
    for dir in [data, tmp.as_path()] {
        std::fs::create_dir_all(dir).expect("mkdir");
        sh(&format!("chown mysql:mysql {}", dir.display()));
    }
    let install = Command::new("mariadb-install-db")
        .env("TMPDIR", &tmp)
        .args([
            "--no-defaults",
            "--user=mysql",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .expect("mariadb-install-db");
    assert!(install.status.success(), "{}", text(&install));
    let socket = data.join("mysqld.sock");
    let port = free_port();
    let mut command = Command::new(MARIADBD);
    command
        .env("TMPDIR", &tmp)
        .args([
            "--no-defaults",
            "--user=mysql",
            "--bind-address=127.0.0.1",
            "--skip-log-bin",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", data.join("mysqld.pid").display()))
        // The hard limit: raising it further needs CAP_SYS_RESOURCE, which root lacks here.
        .arg("--open-files-limit=4096");
    let mut daemon =
        Daemon::spawn("mariadb", command, &data.join("mariadb.log")).expect("start mariadb");
    daemon.wait_for(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(60),
    );
    let database = MariaDb {
        daemon,
        socket,
        port,
    };
    database.sql(
        "CREATE DATABASE wordpress; \
         CREATE USER 'wordpress'@'localhost' IDENTIFIED BY 'wordpress-db-password'; \
         GRANT ALL ON wordpress.* TO 'wordpress'@'localhost';",
    );
    // The socket's directory must be reachable for uid 33.
    sh(&format!("chmod 0755 {}", data.display()));
    database
}

impl MariaDb {
    /// Runs `sql` as root over the socket; returns what the client printed (tab-separated, no headers).
    pub fn sql(&self, sql: &str) -> String {
        let output = Command::new(MARIADB)
            .args(["--no-defaults", "-uroot", "-N", "-B", "-S"])
            .arg(&self.socket)
            .arg("-e")
            .arg(sql)
            .output()
            .expect("mariadb");
        assert!(
            output.status.success(),
            "{sql}: {}\n{}",
            text(&output),
            self.daemon.log()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Gives root a password for TCP connections from loopback, as the official image's root has one.
    pub fn root_password(&self, password: &str) {
        // MariaDB may name a loopback client `localhost`: root there keeps the socket and gains the password.
        self.sql(&format!(
            "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket \
               OR mysql_native_password USING PASSWORD('{password}'); \
             CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}'; \
             GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
        ));
    }
}
