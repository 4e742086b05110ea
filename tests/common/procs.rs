//! Real processes for the cluster tests: a child killed on drop, finding a program, waiting for
//! a port, and a `herald` node started with a NATS URL.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a process to come up or for the cluster to agree.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A child process killed (SIGKILL) and reaped on drop, also when a test panics. A process
/// started as its own process group (nginx: its master forks workers) is killed as a group, or the
/// workers would outlive a killed master, still listening.
pub struct Proc {
    /// The process; `None` once it was killed or exited.
    pub child: Option<Child>,
    /// Its stderr's file, shown when it does not come up (`None`: not logged to a file).
    pub stderr: Option<PathBuf>,
}

impl Proc {
    /// Starts `cmd` with its stdout and stderr in `dir`, as `name.out` and `name.err`.
    pub fn spawn_logged(cmd: &mut Command, dir: &Path, name: &str) -> Self {
        let stderr = dir.join(format!("{name}.err"));
        let child = cmd
            .stdout(log_file(dir, &format!("{name}.out")))
            .stderr(log_file(dir, &format!("{name}.err")))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        Self {
            child: Some(child),
            stderr: Some(stderr),
        }
    }

    /// Its process id (0 once gone).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL (its whole group when it leads one) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails harmlessly (no such group) unless the child leads its own process group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (herald's lame-duck drain) without waiting.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds a program or fails the test naming the packages to install.
pub fn require(program: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
        "/bin",
    ] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':') {
            let p = Path::new(dir).join(program);
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "`{program}` not found: the cluster tests need the Debian packages nats-server and nginx \
         (apt-get install -y nats-server nginx)"
    );
}

/// Whether something accepts connections on loopback `port`.
async fn listens(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// Waits until something listens on `port`.
pub async fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + SETTLE;
    while !listens(port).await {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Proc {
    /// Waits until this child listens on `port`. Fails at once if it exited first, and either
    /// way shows the end of its stderr, so a failed start says why (a port taken, a bad config)
    /// instead of only that nothing listened.
    pub async fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + SETTLE;
        while !listens(port).await {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
                None => Some("killed".to_string()),
            };
            if exited.is_some() || Instant::now() >= deadline {
                let log = self.stderr.as_deref().unwrap_or(Path::new("/dev/null"));
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                panic!(
                    "nothing listened on {port} (exit: {}); the end of {}:\n{}",
                    exited.as_deref().unwrap_or("still running"),
                    log.display(),
                    lines[lines.len().saturating_sub(20)..].join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, ...) without waiting.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

/// A log file `name` in `dir`, for a child's stdout or stderr.
pub fn log_file(dir: &Path, name: &str) -> Stdio {
    Stdio::from(File::create(dir.join(name)).expect("log file"))
}

/// Starts the `herald` binary as node `index` on `port` with `NATS_URL` = `nats_url`, its output
/// in `dir`, and `env` on top.
pub fn spawn_herald(
    dir: &Path,
    port: u16,
    index: usize,
    nats_url: &str,
    env: &[(String, String)],
) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("NATS_URL", nats_url)
        .env("NODE_ID", format!("node{index}-{port}"))
        .env("RUST_LOG", "info")
        .env("SHUTDOWN_TIMEOUT_SECS", "2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn_logged(&mut cmd, dir, &format!("node{index}-{port}"))
}

/// Waits for `/readyz` on `port` to answer 200.
pub async fn wait_ready(port: u16) {
    wait_port(port, "herald").await;
    let client = super::http();
    let deadline = Instant::now() + SETTLE;
    loop {
        let ok = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "herald on {port} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh directory under the system's temporary directory, named after `what`.
pub fn temp_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Removes a test's directory, or keeps it (and says where) when the test failed, for its logs.
pub fn remove_unless_panicking(dir: &Path) {
    if std::thread::panicking() {
        eprintln!("cluster logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A single `nats-server -js` (`bin`) on loopback `port`, its store and logs in `dir`.
pub fn spawn_single_nats(bin: &Path, dir: &Path, port: u16) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-sd")
        .arg(dir.join("js"));
    Proc::spawn_logged(&mut cmd, dir, "nats")
}
