//! Every bad setting stops the real binary before it binds, with exit code 2 and one line naming
//! the variable (or the flag, when given as one), the value and what is allowed; and the start-up
//! line says how clients authenticate without printing the key.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::pki::Pki;
use common::spawned::run_refused;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// The exit code and stderr of the binary refusing `args` and `vars`.
fn run(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String) {
    // A free `ADDR` unless the case sets its own, so a case that wrongly starts binds nothing.
    let vars: Vec<(&str, &str)> = [("ADDR", "127.0.0.1:0")]
        .into_iter()
        .chain(vars.iter().copied())
        .collect();
    let out = run_refused(args, &vars);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Flags, environment variables, and the exact line after `herald: invalid configuration: `.
type Case<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>, String);

#[test]
fn each_bad_setting_is_one_line_naming_the_variable_the_value_and_what_is_allowed() {
    let pki = Pki::new(&["localhost"]);
    let missing = pki.dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let key = pki.key.to_str().unwrap();
    let whole = |from: u64, to: u64| format!("expected a whole number from {from} to {to}");
    let secs = whole(1, 31_536_000);
    let cases: Vec<Case> =
        vec![
        (
            &[],
            vec![("SUBSCRIBER_QUEUE_SIZE", "-1")],
            format!("SUBSCRIBER_QUEUE_SIZE=-1: {}", whole(1, 1_048_576)),
        ),
        (
            &[],
            vec![("SUBSCRIBER_QUEUE_SIZE", "0")],
            format!("SUBSCRIBER_QUEUE_SIZE=0: {}", whole(1, 1_048_576)),
        ),
        (
            &[],
            vec![("SUBSCRIBER_QUEUE_BYTES", "100")],
            format!("SUBSCRIBER_QUEUE_BYTES=100: {}", whole(1024, 17_179_869_184)),
        ),
        (
            &[],
            vec![("RING_BUFFER_SIZE", "2000000")],
            format!("RING_BUFFER_SIZE=2000000: {}", whole(1, 1_048_576)),
        ),
        (
            &[],
            vec![("PORT", "abc")],
            format!("PORT=abc: {}", whole(0, 65_535)),
        ),
        (
            &[],
            vec![("PORT", "")],
            format!("PORT=\"\": {}", whole(0, 65_535)),
        ),
        (
            &["--port", "70000"],
            vec![],
            format!("--port=70000: {}", whole(0, 65_535)),
        ),
        (
            &[],
            vec![("MAX_MESSAGE_BYTES", "100000000")],
            format!("MAX_MESSAGE_BYTES=100000000: {}", whole(1, 67_108_864)),
        ),
        (
            &[],
            vec![("MAX_PUBLISH_RATE", "-5")],
            format!("MAX_PUBLISH_RATE=-5: {}", whole(0, 4_294_967_295)),
        ),
        (
            &[],
            vec![("MAX_TOPICS", "lots")],
            "MAX_TOPICS=lots: expected a whole number, 1 or more".into(),
        ),
        (
            &[],
            vec![("MAX_PATTERN_SUBSCRIPTIONS", "0")],
            "MAX_PATTERN_SUBSCRIPTIONS=0: expected a whole number, 1 or more".into(),
        ),
        (
            &[],
            vec![("PRESENCE_COALESCE_MS", "0")],
            format!("PRESENCE_COALESCE_MS=0: {}", whole(1, 10_000)),
        ),
        (
            &[],
            vec![("PRESENCE_TTL_SECS", "soon")],
            format!("PRESENCE_TTL_SECS=soon: {}", whole(1, 3_600)),
        ),
        (
            &[],
            vec![("MAX_PRESENCE_CLIENTS", "0")],
            "MAX_PRESENCE_CLIENTS=0: expected a whole number, 1 or more".into(),
        ),
        (
            &[],
            vec![("HEARTBEAT_INTERVAL_SECS", "0")],
            format!("HEARTBEAT_INTERVAL_SECS=0: {secs}"),
        ),
        (
            &[],
            vec![("SHUTDOWN_TIMEOUT_SECS", "1e3")],
            format!("SHUTDOWN_TIMEOUT_SECS=1e3: {}", whole(0, 31_536_000)),
        ),
        (
            &[],
            vec![("TOPIC_IDLE_TTL_SECS", "-5")],
            format!("TOPIC_IDLE_TTL_SECS=-5: {}", whole(0, 31_536_000)),
        ),
        (
            &[],
            vec![("HISTORY_TTL_SECS", "1h")],
            format!("HISTORY_TTL_SECS=1h: {}", whole(0, 31_536_000)),
        ),
        (
            &[],
            vec![("STREAM_MAX_MSGS_PER_TOPIC", "0")],
            format!("STREAM_MAX_MSGS_PER_TOPIC=0: {}", whole(1, 1_000_000_000)),
        ),
        (
            &[],
            vec![("STREAM_MAX_AGE_SECS", "1d")],
            format!("STREAM_MAX_AGE_SECS=1d: {}", whole(0, 31_536_000)),
        ),
        (
            &[],
            vec![("MAX_INFLIGHT_PUBLISHES", "0")],
            format!("MAX_INFLIGHT_PUBLISHES=0: {}", whole(1, 65_536)),
        ),
        (
            &[],
            vec![("IDLE_TIMEOUT_SECS", "5")],
            "IDLE_TIMEOUT_SECS=5 must be more than HEARTBEAT_INTERVAL_SECS=20: the server pings \
             every heartbeat and closes connections silent for the idle timeout, so clients that \
             only listen would be closed"
                .into(),
        ),
        (
            &[],
            vec![("IDLE_TIMEOUT_SECS", "30"), ("HEARTBEAT_INTERVAL_SECS", "30")],
            "IDLE_TIMEOUT_SECS=30 must be more than HEARTBEAT_INTERVAL_SECS=30: the server pings \
             every heartbeat and closes connections silent for the idle timeout, so clients that \
             only listen would be closed"
                .into(),
        ),
        (
            &[],
            vec![("SLOW_CONSUMER_POLICY", "whenever")],
            "SLOW_CONSUMER_POLICY=whenever: expected one of disconnect, drop_oldest".into(),
        ),
        (
            &[],
            vec![("AUTO_CREATE_TOPICS", "maybe")],
            "AUTO_CREATE_TOPICS=maybe: expected one of true, false".into(),
        ),
        (
            &[],
            vec![("COMPRESSION", "maybe")],
            "COMPRESSION=maybe: expected one of on, off".into(),
        ),
        (
            &[],
            vec![("COMPRESS_MIN_BYTES", "-1")],
            format!("COMPRESS_MIN_BYTES=-1: expected a whole number from 0 to {}", 64 << 20),
        ),
        (
            &[],
            vec![("LOG_FORMAT", "xml")],
            "LOG_FORMAT=xml: expected one of text, json".into(),
        ),
        (
            &[],
            vec![("ADDR", "not an address")],
            "ADDR=\"not an address\": expected host:port, :port or [IPv6]:port \
             (e.g. 0.0.0.0:8080, [::1]:8080)"
                .into(),
        ),
        (
            &[],
            vec![("ADDR", ""), ("HOST", "::1::2")],
            "HOST=::1::2: expected an IP address (0.0.0.0, ::, 127.0.0.1, ::1) or a host name \
             that resolves"
                .into(),
        ),
        (
            &[],
            vec![("ALLOWED_ORIGINS", "https://ok.example,app.example.com")],
            "ALLOWED_ORIGINS=app.example.com: each origin is scheme://host[:port] as browsers \
             send it (e.g. https://app.example.com); unset ALLOWED_ORIGINS to allow every origin"
                .into(),
        ),
        (
            &[],
            vec![("NODE_ID", "node 1")],
            "NODE_ID=\"node 1\": only A-Z a-z 0-9 _ - are allowed".into(),
        ),
        (
            &[],
            vec![("NATS_URL", "nats://a:4222,http://b")],
            "NATS_URL=http://b: invalid scheme for NATS server URL: http; expected \
             comma-separated nats://host:port URLs"
                .into(),
        ),
        (
            &[],
            vec![("NATS_REPLICAS", "7")],
            format!("NATS_REPLICAS=7: {}", whole(1, 5)),
        ),
        (
            &[],
            vec![("NATS_REPLICAS", "0")],
            format!("NATS_REPLICAS=0: {}", whole(1, 5)),
        ),
        (
            &[],
            vec![("RUST_LOG", "nonsense=====")],
            "RUST_LOG=nonsense=====: error parsing level filter: expected one of \"off\", \
             \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5; expected a \
             level (error, warn, info, debug, trace) or comma-separated target=level directives \
             such as `herald=debug,hyper=warn`"
                .into(),
        ),
        (
            &[],
            vec![("TLS_CERT", pki.cert.to_str().unwrap())],
            "TLS_CERT is set but TLS_KEY is not: TLS needs both (or neither)".into(),
        ),
        (
            &[],
            vec![("TLS_CERT", missing), ("TLS_KEY", key)],
            format!("TLS_CERT {missing}: No such file or directory (os error 2)"),
        ),
        (
            &[],
            vec![("TLS_CERT", key), ("TLS_KEY", key)],
            format!("TLS_CERT {key}: no PEM certificate (BEGIN CERTIFICATE) in the file"),
        ),
    ];
    for (args, vars, expected) in &cases {
        let (code, stderr) = run(args, vars);
        assert_eq!(code, Some(2), "{args:?} {vars:?}: {stderr}");
        assert_eq!(
            stderr,
            format!("herald: invalid configuration: {expected}\n"),
            "{args:?} {vars:?}"
        );
    }
}

/// Reads the binary's log lines until the start-up line; returns them all.
fn startup_log(vars: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("herald listening");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn the_startup_line_says_how_clients_authenticate_and_an_empty_key_is_reported() {
    const KEY: &str = "k3y-for-the-startup-line";
    let with_key = startup_log(&[("ADDR", "127.0.0.1:0"), ("API_KEY", KEY)]);
    let listening = with_key.last().unwrap();
    assert!(listening.contains("auth=api_key"), "{with_key:?}");
    assert!(!with_key.iter().any(|l| l.contains(KEY)), "{with_key:?}");

    let open = startup_log(&[("ADDR", "127.0.0.1:0")]);
    assert!(open.last().unwrap().contains("auth=none"), "{open:?}");
    assert_eq!(open.len(), 1, "no warning without API_KEY: {open:?}");

    // `API_KEY=` (say, `API_KEY=$UNSET_VARIABLE`) turns auth off: said loudly, not silently.
    let empty = startup_log(&[("ADDR", "127.0.0.1:0"), ("API_KEY", "")]);
    assert!(empty.last().unwrap().contains("auth=none"), "{empty:?}");
    assert!(
        empty.iter().any(|l| l.contains("WARN")
            && l.contains("API_KEY is set but empty, so authentication is off")),
        "{empty:?}"
    );
}

/// `HOST=::1` listens on the IPv6 loopback (it used to be read as `::1:8080`, not an address).
#[test]
fn an_ipv6_host_is_bracketed() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    };
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let port = port.to_string();
    let log = startup_log(&[("HOST", "::1"), ("PORT", &port)]);
    assert!(
        log.last().unwrap().contains(&format!("addr=[::1]:{port}")),
        "{log:?}"
    );
}

/// The token settings' files are read before the server starts: a missing or bad file is bad
/// configuration (exit 2, one line naming it), like the TLS files.
#[test]
fn unreadable_token_files_stop_start_up_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("herald-token-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_toml = dir.join("permissions.toml");
    std::fs::write(&bad_toml, "[anonymous]\nsubscribe = [\"x\"]\n").unwrap();
    let missing = dir.join("missing.pem");
    let secret = "0123456789abcdef0123456789abcdef";
    let cases = [
        (
            vec![
                ("JWT_SECRET", secret),
                ("PERMISSIONS_FILE", bad_toml.to_str().unwrap()),
            ],
            "permissions.toml",
        ),
        (
            vec![("JWT_PUBLIC_KEY", missing.to_str().unwrap())],
            "missing.pem",
        ),
        (vec![("JWT_SECRET", "short")], "JWT_SECRET"),
    ];
    for (vars, mention) in cases {
        let vars: Vec<(&str, &str)> = [("ADDR", "127.0.0.1:0")].into_iter().chain(vars).collect();
        let out = run_refused(&[], &vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{vars:?}: {stderr}");
        assert!(stderr.contains(mention), "{vars:?}: {stderr}");
        assert!(!stderr.contains(secret), "{vars:?}: the secret was printed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
