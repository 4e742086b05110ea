//! `LOG_FORMAT=json`: the real binary writes one JSON object per line, and every line a
//! connection logs carries its span (`conn_id`, `peer`, and for a WebSocket its `route`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// How long the test waits for a log line it expects.
const WAIT: Duration = Duration::from_secs(15);

/// Log lines as they arrive, each parsed as JSON (the test fails on the first line that is not).
struct Log {
    rx: mpsc::Receiver<String>,
    seen: Vec<Value>,
}

impl Log {
    /// Reads lines until one satisfies `want`; returns it.
    fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = self
                .rx
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no log line {what} within {WAIT:?}: {:#?}", self.seen));
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            assert!(value.is_object(), "{line}");
            self.seen.push(value.clone());
            if want(&value) {
                return value;
            }
        }
    }
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or("")
}

/// The `conn` span of a line, from the list of spans it was logged in.
fn conn_span(v: &Value) -> Option<&Value> {
    v["spans"].as_array()?.iter().find(|s| s["name"] == "conn")
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_the_connection_span() {
    let mut child = Command::new(BIN)
        .env("ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Log {
        rx,
        seen: Vec::new(),
    };
    let listening = log.until("herald listening", |v| message(v) == "herald listening");
    assert_eq!(listening["level"], "INFO");
    assert!(listening["timestamp"].is_string());
    let addr = listening["fields"]["addr"].as_str().unwrap().to_string();

    // A WebSocket session on a topic route, with a client id.
    let url = format!("ws://{addr}/ws/sub/logged?id=client-7");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(r#"{"type":"ping","request_id":"p"}"#))
        .await
        .unwrap();
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("pong in time")
            .expect("open")
            .unwrap();
        if frame.is_text() && frame.to_text().unwrap().contains("pong") {
            break;
        }
    }
    ws.close(None).await.unwrap();
    let disconnected = log.until("disconnected", |v| message(v) == "disconnected");

    // A REST request on another connection.
    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let request = log.until("request /health", |v| {
        message(v) == "request" && v["fields"]["route"] == "/health"
    });
    assert_eq!(request["fields"]["status"], 200);
    assert_eq!(request["fields"]["method"], "GET");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success());
    // Every remaining line must be JSON too.
    while let Ok(line) = log.rx.recv_timeout(Duration::from_secs(5)) {
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        log.seen.push(value);
    }
    reader.join().unwrap();

    let session = conn_span(&disconnected).expect("session line has the conn span");
    let conn_id = session["conn_id"].as_u64().expect("numeric conn_id");
    assert!(session["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(session["route"], "/ws/sub/{topic}");
    assert_eq!(session["client_id"], "client-7");
    // Every line the session logged carries the same span.
    let session_lines: Vec<&Value> = log
        .seen
        .iter()
        .filter(|v| conn_span(v).is_some_and(|s| s["conn_id"] == conn_id))
        .collect();
    for expected in ["connected", "read loop ended", "disconnected"] {
        let line = session_lines
            .iter()
            .find(|v| message(v) == expected)
            .unwrap_or_else(|| panic!("no `{expected}` line in the session's span"));
        assert_eq!(conn_span(line).unwrap()["route"], "/ws/sub/{topic}");
    }
    let rest = conn_span(&request).expect("request line has the conn span");
    assert_ne!(rest["conn_id"], conn_id, "each connection has its own id");
    assert!(rest["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    // No line names the raw topic path: routes are templates.
    assert!(!log
        .seen
        .iter()
        .any(|v| v.to_string().contains("/ws/sub/logged")));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.is_empty(), "unexpected stderr: {stderr}");
}

/// Logs written to a pipe (a file, `docker logs`, a log shipper) carry no ANSI colour codes, in
/// either format, without the caller having to know about `NO_COLOR`.
#[cfg(unix)]
#[test]
fn piped_logs_carry_no_colour_codes() {
    for format in ["text", "json"] {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", format)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).split(b'\n');
        let mut log: Vec<u8> = Vec::new();
        let addr = loop {
            let line = lines.next().expect("server printed its address").unwrap();
            log.extend_from_slice(&line);
            log.push(b'\n');
            let text = String::from_utf8_lossy(&line).into_owned();
            if text.contains("herald listening") {
                // Either `addr=127.0.0.1:port` (text) or `"addr":"127.0.0.1:port"` (JSON).
                let start = text.find("127.0.0.1:").expect("the address in the line");
                break text[start..]
                    .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                    .next()
                    .unwrap()
                    .to_string();
            }
        };
        // A request, so connection spans and debug lines are written too.
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for line in lines {
            log.extend_from_slice(&line.unwrap());
            log.push(b'\n');
        }
        let mut stderr = Vec::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut stderr)
            .unwrap();
        assert!(child.wait().unwrap().success());
        let text = String::from_utf8_lossy(&log);
        assert!(
            text.lines().count() >= 4,
            "{format}: little was logged: {text}"
        );
        assert!(
            !log.contains(&0x1b) && !stderr.contains(&0x1b),
            "{format}: escape codes in piped output:\n{text}"
        );
    }
}
