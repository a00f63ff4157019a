//! Real servers from Debian's packages (MariaDB, Apache with PHP, …) run by a test as child processes: output to a
//! log file, stopped when dropped, and killed by the kernel if the test process dies first.

use std::{
    fs::File,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::control_plane::{die_with_parent, terminate};

/// A server started by a test.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` with stdout and stderr appended to `log`, in a process group of its own: a server that
    /// stops by signalling its whole group (Apache does) must not signal the test and everything else it runs.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let out = File::options().create(true).append(true).open(log)?;
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        die_with_parent(&mut command);
        let child = command.spawn()?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Waits until something accepts connections on `addr`; panics with the log if the server exits or the time
    /// runs out.
    pub fn wait_for(&mut self, addr: SocketAddr, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {addr} within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        terminate(&self.child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panics, naming the script that installs them, unless every one of `programs` exists.
pub fn require_programs(programs: &[&str]) {
    let missing: Vec<&&str> = programs.iter().filter(|p| !Path::new(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}: scripts/debian-packages.sh installs them (make test runs it)"
    );
}
