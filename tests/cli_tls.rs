//! The `herald` client speaks TLS: `sub`, `pub` and `probe` against a TLS server, trusting its
//! CA by `--cacert` or by the system store, a self-signed certificate by `--insecure` or by
//! `--cacert` of the certificate itself, and refusing it with neither; and the Dockerfile's
//! health check (`herald probe` with the server's own environment) works with TLS_CERT/TLS_KEY.

mod common;

use std::process::{Output, Stdio};

use common::pki::Pki;
use common::{TestServer, RECV_TIMEOUT};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// The names the test certificates are issued for: what the clients connect to.
const NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// `herald ARGS` with an empty environment but `PATH` and `vars`, so neither the client's
/// (`HERALD_*`) nor the server's variables of the test's own environment leak in.
fn herald(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `cmd` to completion (bounded by `RECV_TIMEOUT`).
async fn run(mut cmd: Command) -> Output {
    tokio::time::timeout(RECV_TIMEOUT, cmd.output())
        .await
        .expect("herald did not finish")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn tls_server(pki: &Pki) -> TestServer {
    let files = pki.files();
    TestServer::start_with(move |c| c.tls = Some(files)).await
}

/// `herald pub TOPIC MESSAGE --url URL FLAGS` must succeed and print the ack.
async fn publish_ok(url: &str, topic: &str, flags: &[&str], vars: &[(&str, &str)]) -> Value {
    let mut args = vec!["pub", topic, r#"{"n":1}"#, "--url", url];
    args.extend_from_slice(flags);
    let out = run(herald(&args, vars)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "pub {flags:?} {vars:?}: {}",
        text(&out.stderr)
    );
    let ack: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
    ack
}

/// `herald probe --url URL FLAGS` must succeed with a 200.
async fn probe_ok(url: &str, flags: &[&str], vars: &[(&str, &str)]) {
    let mut args = vec!["probe", "--url", url];
    args.extend_from_slice(flags);
    let out = run(herald(&args, vars)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "probe {flags:?} {vars:?}: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("200 "),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_pub_and_probe_over_tls_trust_the_ca_given_by_cacert() {
    let pki = Pki::new(NAMES);
    let server = tls_server(&pki).await;
    let port = server.addr.port();
    let ca = pki.ca.to_str().unwrap();
    let wss = format!("wss://localhost:{port}");

    let mut sub = herald(&["sub", "secure", "--url", &wss, "--cacert", ca], &[])
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(sub.stderr.take().unwrap()).lines();
    let mut stdout = BufReader::new(sub.stdout.take().unwrap()).lines();
    let subscribed = tokio::time::timeout(RECV_TIMEOUT, stderr.next_line())
        .await
        .expect("sub did not subscribe in time")
        .unwrap()
        .expect("sub ended");
    assert!(
        subscribed.starts_with("herald: subscribed to secure"),
        "{subscribed}"
    );

    let ack = publish_ok(&wss, "secure", &["--cacert", ca], &[]).await;
    assert_eq!(ack["seq"], 1);
    let event = tokio::time::timeout(RECV_TIMEOUT, stdout.next_line())
        .await
        .expect("no event from sub")
        .unwrap()
        .expect("sub ended");
    let event: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["message"]["payload"]["n"], 1, "{event}");
    let _ = sub.start_kill();

    // https:// to the REST side, and an IP address as the name the certificate must carry.
    probe_ok(&format!("https://localhost:{port}"), &["--cacert", ca], &[]).await;
    probe_ok(
        &format!("https://127.0.0.1:{port}/readyz"),
        &["--cacert", ca],
        &[],
    )
    .await;
    publish_ok(
        &format!("https://127.0.0.1:{port}"),
        "secure",
        &["--cacert", ca],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_flags_the_system_ca_store_decides() {
    let pki = Pki::new(NAMES);
    let stranger = Pki::new(NAMES);
    let server = tls_server(&pki).await;
    let wss = format!("wss://localhost:{}", server.addr.port());
    // SSL_CERT_FILE replaces the system store, as for OpenSSL: a store holding this CA is
    // trusted, one without it is not.
    let store = [("SSL_CERT_FILE", pki.ca.to_str().unwrap())];
    publish_ok(&wss, "sys", &[], &store).await;
    probe_ok(
        &format!("https://localhost:{}", server.addr.port()),
        &[],
        &store,
    )
    .await;

    let other_store = [("SSL_CERT_FILE", stranger.ca.to_str().unwrap())];
    let out = run(herald(&["pub", "sys", "x", "--url", &wss], &other_store)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not trusted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_needs_insecure_or_itself_as_cacert() {
    let pki = Pki::self_signed(NAMES);
    let stranger = Pki::new(NAMES);
    let server = tls_server(&pki).await;
    let port = server.addr.port();
    let wss = format!("wss://localhost:{port}");
    let https = format!("https://localhost:{port}");
    // A system store that exists but does not hold this certificate.
    let store = [("SSL_CERT_FILE", stranger.ca.to_str().unwrap())];

    publish_ok(&wss, "self", &["--insecure"], &store).await;
    probe_ok(&https, &["-k"], &store).await;
    let cert = pki.cert.to_str().unwrap();
    publish_ok(&wss, "self", &["--cacert", cert], &store).await;
    probe_ok(&https, &["--cacert", cert], &store).await;

    // Neither: refused, with what to do about it; nothing is published.
    for args in [
        vec!["pub", "self", "x", "--url", &wss],
        vec!["sub", "self", "--url", &wss],
        vec!["probe", "--url", &https],
    ] {
        let out = run(herald(&args, &store)).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("certificate is not trusted")
                && stderr.contains("--cacert")
                && stderr.contains("--insecure"),
            "{args:?}: {stderr}"
        );
    }
    let history: Value = {
        let out = run(herald(
            &["pub", "self", "last", "--url", &wss, "--insecure"],
            &[],
        ))
        .await;
        serde_json::from_str(text(&out.stdout).trim()).unwrap()
    };
    assert_eq!(
        history["seq"], 3,
        "the refused pub published nothing: {history}"
    );

    // A --cacert that is not a certificate is bad input (exit 2), named as such.
    let out = run(herald(
        &[
            "pub",
            "self",
            "x",
            "--url",
            &wss,
            "--cacert",
            pki.key.to_str().unwrap(),
        ],
        &[],
    ))
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--cacert"), "{stderr}");
}

/// The Dockerfile's `HEALTHCHECK CMD herald probe`: the probe runs with the container's
/// environment, TLS_CERT and TLS_KEY included, and must find the server over HTTPS.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_probe_follows_the_servers_tls_environment() {
    let pki = Pki::new(&["herald.example.com"]);
    let cert = pki.cert.to_str().unwrap();
    let key = pki.key.to_str().unwrap();
    let mut server = herald(
        &[],
        &[
            ("ADDR", "127.0.0.1:0"),
            ("TLS_CERT", cert),
            ("TLS_KEY", key),
            ("LOG_FORMAT", "json"),
        ],
    )
    .spawn()
    .unwrap();
    let mut log = BufReader::new(server.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(RECV_TIMEOUT, log.next_line())
            .await
            .expect("the server did not start in time")
            .unwrap()
            .expect("the server exited");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["fields"]["message"] == "herald listening" {
            break v["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    let env = [
        ("ADDR", addr.as_str()),
        ("TLS_CERT", cert),
        ("TLS_KEY", key),
    ];
    let out = run(herald(&["probe"], &env)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("200 "),
        "{}",
        text(&out.stdout)
    );
    let ready = run(herald(&["probe", "--path", "/readyz"], &env)).await;
    assert_eq!(ready.status.code(), Some(0), "{}", text(&ready.stderr));

    // Asked to verify (--cacert) the certificate for herald.example.com against 127.0.0.1, the
    // probe refuses: the name check is still there when asked for.
    let ca = pki.ca.to_str().unwrap();
    let verified = run(herald(&["probe", "--cacert", ca], &env)).await;
    assert_eq!(
        verified.status.code(),
        Some(1),
        "{}",
        text(&verified.stderr)
    );
    assert!(text(&verified.stderr).contains("not issued for this host name"));
    let _ = server.start_kill();
    let _ = server.wait().await;
}
