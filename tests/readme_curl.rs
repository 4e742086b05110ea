//! The README's examples, run as a reader runs them: in the order printed, against one fresh
//! server. First "Try it in 30 seconds" (the subscribe its `wscat` line sends, then its `curl`,
//! with the answers it prints), then the WebSocket API's frames, then every `curl` of the REST
//! API section with the real `curl`. A later example that only works on a fresh server (say, a
//! create that answers 409 because an earlier one auto-created the topic) fails here.
//!
//! "Authentication and permissions" runs as a reader runs it too: its shell commands typed one
//! after another into one `bash` (the real binary on `PATH`, its default port moved to a free
//! one), each checked against the output printed under it, then its `wscat` session.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{free_port, TestServer, WsClient};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const README: &str = include_str!("../README.md");

/// The lines under `heading` (a whole heading line, `## REST API`) up to the next heading; a
/// `#` inside a fenced block is a shell comment, not a heading.
fn section(heading: &str) -> Vec<&'static str> {
    let mut lines = README.lines().skip_while(|l| *l != heading);
    assert!(lines.next().is_some(), "README has no `{heading}`");
    let mut fenced = false;
    lines
        .take_while(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
            }
            fenced || !l.starts_with('#')
        })
        .collect()
}

/// The lines of every fenced block of `lang` in `lines`, in order.
fn fenced(lines: &[&'static str], lang: &str) -> Vec<&'static str> {
    let opening = format!("```{lang}");
    let mut inside = false;
    let mut found = Vec::new();
    for line in lines {
        if line.trim().starts_with("```") {
            inside = !inside && line.trim() == opening;
        } else if inside {
            found.push(*line);
        }
    }
    found
}

/// Whether `actual` is what the README prints: the same keys, the same values (objects compared
/// the same way, key by key), `…` standing for any string and `expires_in` for any lifetime
/// within a minute of the printed one (a token's seconds left depend on when it was minted).
fn printed_matches(printed: &Value, actual: &Value) -> bool {
    if printed == "…" {
        return actual.is_string();
    }
    let (Some(p), Some(a)) = (printed.as_object(), actual.as_object()) else {
        return printed == actual;
    };
    let mut keys: Vec<_> = p.keys().collect();
    let mut actual_keys: Vec<_> = a.keys().collect();
    keys.sort();
    actual_keys.sort();
    keys == actual_keys
        && p.iter().all(|(k, v)| match (k.as_str(), v.as_u64()) {
            ("expires_in", Some(printed_left)) => a[k]
                .as_u64()
                .is_some_and(|left| left.abs_diff(printed_left) <= 60),
            _ => printed_matches(v, &a[k]),
        })
}

/// `actual` matches what the README prints (see [`printed_matches`]).
fn assert_printed(printed: &str, actual: &Value) {
    let expected: Value = serde_json::from_str(printed)
        .unwrap_or_else(|e| panic!("README output is not JSON ({e}): {printed}"));
    assert!(
        printed_matches(&expected, actual),
        "README prints {printed}, the server says {actual}"
    );
}

/// Whether the output line `actual` is the README's `printed` line: JSON compared as
/// [`printed_matches`] does, text with `…` standing for any run of characters.
fn line_matches(printed: &str, actual: &str) -> bool {
    if let Ok(expected) = serde_json::from_str::<Value>(printed) {
        return serde_json::from_str::<Value>(actual).is_ok_and(|a| printed_matches(&expected, &a));
    }
    let parts: Vec<&str> = printed.split('…').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return actual == printed;
    }
    if !actual.starts_with(first) || !actual.ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Runs one README `curl` line against `server`; returns the HTTP status and the body.
async fn curl(server: &TestServer, line: &str) -> (u16, String) {
    let command = line
        .replace("localhost:8080", &server.addr.to_string())
        // Show the status so a failing example is caught.
        .replacen("curl -s", "curl -sS -o /dev/stderr -w '%{http_code}'", 1);
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .output()
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{line}: curl failed: {body}");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_example_works_in_the_order_printed() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is required for this test (apt-get install curl)");
    }
    let server = TestServer::start().await;

    // 1. "Try it in 30 seconds": subscribe as its wscat line does, publish with its curl.
    let try_it = fenced(&section("### Try it in 30 seconds"), "sh");
    let wscat = try_it
        .iter()
        .find(|l| l.contains("wscat -c "))
        .expect("a wscat line");
    let url = wscat
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .expect("a ws:// URL")
        .replace("localhost:8080", &server.addr.to_string());
    let sent = try_it
        .iter()
        .find_map(|l| l.strip_prefix("> "))
        .expect("a `>` frame");
    let answer = try_it
        .iter()
        .find_map(|l| l.strip_prefix("< "))
        .expect("a `<` frame");
    let mut subscriber = WsClient::connect(&url).await;
    subscriber.send_text(sent).await;
    assert_printed(answer, &subscriber.recv_json_no_heartbeat().await);
    let curls: Vec<&str> = try_it
        .iter()
        .copied()
        .filter(|l| l.starts_with("curl "))
        .collect();
    let printed: Vec<&str> = try_it.iter().filter_map(|l| l.strip_prefix("# ")).collect();
    assert_eq!(
        curls.len(),
        printed.len(),
        "each Try-it curl prints its answer"
    );
    for (line, printed) in curls.iter().zip(&printed) {
        let (status, body) = curl(&server, line).await;
        assert!(
            (200..300).contains(&status),
            "{line}: HTTP {status}: {body}"
        );
        assert_printed(printed, &serde_json::from_str(&body).unwrap());
    }
    let event = subscriber.recv_json_no_heartbeat().await;
    assert_eq!(
        event["type"], "event",
        "the event arrives in the first terminal: {event}"
    );

    // 2. The WebSocket API's client frames, each answered by an ack, a pong or a presence
    // answer, not an error.
    let frames = fenced(&section("## WebSocket API (`GET /ws`)"), "json");
    assert!(frames.len() >= 5, "README lost its frames: {frames:?}");
    let mut ws = WsClient::connect(&url).await;
    for frame in &frames {
        let reply = ws.request(serde_json::from_str(frame).unwrap()).await;
        assert!(
            ["ack", "pong", "presence"].contains(&reply["type"].as_str().unwrap_or_default()),
            "{frame}: {reply}"
        );
    }

    // 3. The REST API section, in order, on the same server.
    let rest: Vec<&str> = fenced(&section("## REST API"), "sh")
        .into_iter()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert!(rest.len() >= 10, "README lost its examples: {rest:?}");
    for line in rest {
        let (status, body) = curl(&server, line).await;
        assert!(
            (200..300).contains(&status),
            "{line}: HTTP {status}: {body}"
        );
        if !line.contains("/metrics") {
            serde_json::from_str::<Value>(&body)
                .unwrap_or_else(|e| panic!("{line}: not JSON ({e}): {body}"));
        }
    }
}

/// One shell command of the README and the output lines printed under it (`# …`).
struct Command {
    text: String,
    printed: Vec<&'static str>,
}

/// The commands of a README `sh` block, in order: a heredoc is one command with its body, and
/// the `# ` lines under a command are its output.
fn commands(block: &[&'static str]) -> Vec<Command> {
    let mut commands: Vec<Command> = Vec::new();
    let mut lines = block.iter();
    while let Some(line) = lines.next() {
        if let Some(out) = line.strip_prefix("# ") {
            commands
                .last_mut()
                .expect("output under no command")
                .printed
                .push(out);
            continue;
        }
        let mut text = line.to_string();
        if let Some((_, tag)) = line.split_once("<<'") {
            let tag = tag.split('\'').next().unwrap_or_default();
            for body in lines.by_ref() {
                text = format!("{text}\n{body}");
                if *body == tag {
                    break;
                }
            }
        }
        commands.push(Command {
            text,
            printed: Vec::new(),
        });
    }
    commands
}

/// A terminal a reader types into: one `bash` reading commands from a pipe, whose output (and
/// its background jobs') is read line by line. It leads its own process group, killed with
/// everything started in it on drop.
struct Terminal {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line printed so far.
    seen: Vec<String>,
}

impl Terminal {
    fn start(dir: &std::path::Path, vars: &[(&str, String)]) -> Self {
        let mut child = tokio::process::Command::new("bash")
            .current_dir(dir)
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn bash");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line printed, within `until`.
    async fn next_line(&mut self, until: tokio::time::Instant, waiting_for: &str) -> String {
        let line = tokio::time::timeout_at(until, self.lines.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "waited for {waiting_for}; the terminal shows:\n{}",
                    self.seen.join("\n")
                )
            })
            .expect("bash ended");
        self.seen.push(line.clone());
        line
    }

    /// Types `command` and waits for the prompt; its exit status and where its output starts in
    /// [`Terminal::seen`].
    async fn run(&mut self, command: &str) -> (i32, usize) {
        let start = self.seen.len();
        let marker = "@@readme-status ";
        self.stdin
            // On a line of its own: curl's output has no final newline.
            .write_all(format!("{command}\nprintf '\\n{marker}%s\\n' \"$?\"\n").as_bytes())
            .await
            .unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = self.next_line(until, command).await;
            if let Some(status) = line.strip_prefix(marker) {
                self.seen.pop();
                return (status.parse().unwrap(), start);
            }
        }
    }

    /// Waits until a line printed since `start` is the README's `printed` line.
    async fn wait_for(&mut self, start: usize, printed: &str) {
        if self.seen[start..].iter().any(|l| line_matches(printed, l)) {
            return;
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while !line_matches(printed, &self.next_line(until, printed).await) {}
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_authentication_example_works_in_the_order_printed() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_herald"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir =
        std::env::temp_dir().join(format!("herald-readme-auth-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The reader's defaults (`herald` on :8080, the CLI's ws://127.0.0.1:8080) moved to `port`.
    let vars = [
        ("PATH", path),
        ("HOME", dir.display().to_string()),
        ("HOST", "127.0.0.1".to_string()),
        ("PORT", port.to_string()),
        ("HERALD_URL", format!("ws://{addr}")),
    ];
    let mut terminal = Terminal::start(&dir, &vars);
    terminal.run("exec 2>&1").await;

    // 1. The shell session, command by command, each checked against what is printed under it.
    let block = fenced(&section("### Try it with tokens"), "sh");
    let commands = commands(&block);
    assert!(commands.len() >= 12, "README lost its commands: {block:?}");
    for command in &commands {
        let typed = command.text.replace("localhost:8080", &addr);
        let (status, start) = terminal.run(&typed).await;
        // A refused `herald pub` exits 1, like any failed command; curl prints the refusal.
        let refused = command
            .printed
            .iter()
            .any(|l| l.starts_with("herald: FORBIDDEN") || l.starts_with("herald: UNAUTHORIZED"));
        assert_eq!(
            status != 0,
            refused,
            "`{}` exited {status}; the terminal shows:\n{}",
            command.text,
            terminal.seen[start..].join("\n")
        );
        for printed in &command.printed {
            terminal.wait_for(start, printed).await;
        }
    }
    let (_, start) = terminal.run(r#"printf '%s\n' "$TOKEN""#).await;
    let token = terminal.seen[start..]
        .iter()
        .find(|l| l.starts_with("eyJ") && l.split('.').count() == 3)
        .expect("$TOKEN is a JWT")
        .clone();
    assert!(
        !terminal.seen[..start].iter().any(|l| l.contains(&token)),
        "the token reached the server's log"
    );

    // 2. The browser's in-band `auth`, as its wscat session shows it.
    let session = fenced(&section("### Browsers"), "sh");
    let url = session
        .iter()
        .find_map(|l| l.strip_prefix("npx wscat -c "))
        .expect("a wscat line")
        .replace("localhost:8080", &addr);
    let mut ws = WsClient::connect(&url).await;
    let mut exchanged = 0;
    for line in &session {
        if let Some(frame) = line.strip_prefix("> ") {
            ws.send_text(&frame.replace("$TOKEN", &token)).await;
        } else if let Some(answer) = line.strip_prefix("< ") {
            assert_printed(answer, &ws.recv_json_no_heartbeat().await);
            exchanged += 1;
        }
    }
    assert_eq!(exchanged, 3, "auth, subscribe and a forbidden publish");
    drop(terminal);
    let _ = std::fs::remove_dir_all(&dir);
}
