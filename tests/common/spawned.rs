//! The real `herald` binary started from environment variables, for tests of start-up
//! configuration: one that serves (killed on drop), or one that must refuse to start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A herald binary started from environment variables, killed on drop.
pub struct Spawned {
    child: Child,
    /// The port its environment told it to listen on.
    pub port: u16,
}

impl Spawned {
    /// Starts `target/.../herald` with exactly `envs` (plus logging) and waits for its
    /// "herald listening" log line; `port` is where those variables make it listen.
    pub async fn start(envs: &[(&str, String)], port: u16) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_clear()
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn herald");
        let stdout = child.stdout.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Keeps draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let spawned = Self { child, port };
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = rx.recv().await {
                if line.contains("herald listening") {
                    return;
                }
            }
            panic!("herald exited before listening");
        })
        .await
        .expect("herald did not start listening");
        spawned
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` and exactly `vars` (plus `PATH`), which must make it refuse to
/// start: it has to exit on its own within 10 s (it is killed and the test fails otherwise).
pub fn run_refused(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("herald {args:?} {vars:?} kept running: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Asserts a refused start: exit `code`, and the reason in exactly one stderr line that
/// mentions `mention`.
pub fn assert_one_line_refusal(out: &Output, code: i32, mention: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{what}: not one line: {stderr}"
    );
    assert!(
        stderr.contains(mention),
        "{what}: {stderr:?} does not mention {mention}"
    );
}
