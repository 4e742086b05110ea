//! The real `herald` binary: bad configuration stops start-up with one line, and SIGTERM drains
//! and exits 0.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::spawned::{assert_one_line_refusal, run_refused};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

#[test]
fn bad_values_stop_startup_with_one_clear_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PORT", "eighty")], "PORT"),
        (&[("SUBSCRIBER_QUEUE_SIZE", "-1")], "SUBSCRIBER_QUEUE_SIZE"),
        (&[("SLOW_CONSUMER_POLICY", "whenever")], "whenever"),
        (&[("AUTO_CREATE_TOPICS", "maybe")], "maybe"),
        (&[("ADDR", "not an address")], "not an address"),
        (&[("SUBSCRIBER_QUEUE_SIZE", "0")], "SUBSCRIBER_QUEUE_SIZE"),
        (
            &[("HEARTBEAT_INTERVAL_SECS", "0")],
            "HEARTBEAT_INTERVAL_SECS",
        ),
    ];
    // Every case here fails before binding, so nothing listens.
    for (vars, mention) in cases {
        let out = run_refused(&[], vars);
        assert_one_line_refusal(&out, 2, mention, &format!("{vars:?}"));
    }
}

#[cfg(unix)]
#[test]
fn sigterm_drains_and_exits_zero() {
    let mut child = Command::new(BIN)
        .env("ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first log line names the bound address.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "herald did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The API key never appears in logs, even at trace level, nor in `--help`.
#[cfg(unix)]
#[test]
fn api_key_is_never_logged() {
    const KEY: &str = "k3y-that-must-not-leak";
    let help = Command::new(BIN)
        .arg("--help")
        .env("API_KEY", KEY)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains(KEY));
    let mut child = Command::new(BIN)
        .env("ADDR", "127.0.0.1:0")
        .env("API_KEY", KEY)
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut log = String::new();
    let addr = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    use std::io::{Read, Write};
    for request in [
        format!("GET /health HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nConnection: close\r\n\r\n"),
        format!("GET /stats?api_key={KEY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        "GET /stats HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\nConnection: close\r\n\r\n".into(),
    ] {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 "), "{response}");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success());
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        log.lines().count() > 3,
        "trace logging produced little: {log}"
    );
    assert!(!log.contains(KEY), "key in stdout log:\n{log}");
    assert!(!stderr.contains(KEY), "key in stderr:\n{stderr}");
}
