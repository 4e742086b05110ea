//! The real `herald` binary as a client (`herald sub`, `herald pub`, `herald probe`) against an
//! in-process server on port 0.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::{http, TestServer, RECV_TIMEOUT};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// `herald ARGS` with none of the client or server variables of the test's own environment.
fn herald(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("HERALD_URL")
        .env_remove("HERALD_API_KEY")
        .env_remove("API_KEY")
        .env_remove("HOST")
        .env_remove("PORT")
        .env_remove("ADDR")
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to completion with `stdin` as its input (bounded by `RECV_TIMEOUT`).
async fn run(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    tokio::time::timeout(RECV_TIMEOUT, child.wait_with_output())
        .await
        .expect("herald did not finish")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON lines of a command's stdout.
fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Waits (bounded) until `GET /topics/{topic}` reports `n` subscribers.
async fn wait_subscribers(server: &TestServer, topic: &str, n: u64, key: Option<&str>) {
    let client = http();
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    loop {
        let mut req = client.get(server.url(&format!("/topics/{topic}")));
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        if let Ok(resp) = req.send().await {
            if resp.status() == 200 {
                let body: Value = resp.json().await.unwrap();
                if body["subscribers"] == n {
                    return;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic} never reached {n} subscribers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `herald sub` and its stdout.
struct Sub {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Sub {
    /// Starts `herald sub ARGS` and waits until the server counts it as a subscriber of `topic`.
    async fn start(server: &TestServer, topic: &str, args: &[&str]) -> Self {
        let url = server.ws_url("");
        let mut all = vec!["sub", topic, "--url", &url];
        all.extend_from_slice(args);
        let mut child = herald(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        wait_subscribers(server, topic, 1, None).await;
        Self { child, lines }
    }

    /// The next stdout line as JSON.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(RECV_TIMEOUT, self.lines.next_line())
            .await
            .expect("no line from herald sub")
            .unwrap()
            .expect("herald sub ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }

    /// Sends SIGINT, as Ctrl-C does.
    async fn interrupt(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the exit; returns the exit code and stderr.
    async fn exit(mut self) -> (Option<i32>, String) {
        let status = tokio::time::timeout(RECV_TIMEOUT, self.child.wait())
            .await
            .expect("herald sub did not exit")
            .unwrap();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            e.read_to_string(&mut stderr).await.unwrap();
        }
        (status.code(), stderr)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_prints_in_order_what_pub_sends_and_exits_zero_on_shutdown() {
    let server = TestServer::start_with(|c| c.shutdown_timeout = Duration::from_secs(2)).await;
    let url = server.ws_url("");
    let mut sub = Sub::start(&server, "cli.orders", &[]).await;

    let out = run(
        herald(&["pub", "cli.orders", r#"{"n":1}"#, "--url", &url]),
        "",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let acks = json_lines(&out);
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0]["type"], "ack");
    assert_eq!(acks[0]["status"], "ok");
    assert_eq!(acks[0]["seq"], 1);

    // `-`: one message per line; blank lines are skipped, non-JSON is sent as a string.
    let stdin = "plain words\n\n{\"n\":3}\r\n42\n";
    let out = run(herald(&["pub", "cli.orders", "-", "--url", &url]), stdin).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let acks = json_lines(&out);
    let seqs: Vec<&Value> = acks.iter().map(|a| &a["seq"]).collect();
    assert_eq!(seqs, [2, 3, 4]);

    let payloads = [
        json!({"n":1}),
        json!("plain words"),
        json!({"n":3}),
        json!(42),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let event = sub.next().await;
        assert_eq!(event["type"], "event", "{event}");
        assert_eq!(event["topic"], "cli.orders");
        assert_eq!(event["seq"], i + 1);
        assert_eq!(&event["message"]["payload"], payload);
    }

    // PROTOCOL.md §7: the server closes with 1001, which ends `sub` cleanly.
    server.shutdown().await.unwrap();
    let (code, stderr) = sub.exit().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("1001"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_exits_zero_on_ctrl_c_and_unsubscribes() {
    let server = TestServer::start().await;
    let sub = Sub::start(&server, "cli.ctrlc", &[]).await;
    sub.interrupt().await;
    let (code, stderr) = sub.exit().await;
    assert_eq!(code, Some(0), "{stderr}");
    wait_subscribers(&server, "cli.ctrlc", 0, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_fails_when_its_topic_is_deleted() {
    let server = TestServer::start().await;
    let sub = Sub::start(&server, "cli.doomed", &[]).await;
    let resp = http()
        .delete(server.url("/topics/cli.doomed"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (code, stderr) = sub.exit().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cli.doomed` was deleted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_last_n_replays_before_live_events() {
    let server = TestServer::start().await;
    let url = server.ws_url("");
    let out = run(
        herald(&["pub", "cli.replay", "-", "--url", &url]),
        "a\nb\nc\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut sub = Sub::start(&server, "cli.replay", &["--last-n", "2"]).await;
    for (seq, payload) in [(2, "b"), (3, "c")] {
        let event = sub.next().await;
        assert_eq!(event["seq"], seq, "{event}");
        assert_eq!(event["message"]["payload"], payload);
    }
    let out = run(herald(&["pub", "cli.replay", "d", "--url", &url]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let event = sub.next().await;
    assert_eq!(event["seq"], 4);
    assert_eq!(event["message"]["payload"], "d");
    sub.interrupt().await;
    assert_eq!(sub.exit().await.0, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_topic_without_auto_create_fails_with_topic_not_found() {
    let server = TestServer::start_with(|c| c.auto_create_topics = false).await;
    let url = server.ws_url("");
    for args in [
        vec!["pub", "cli.absent", "{}", "--url", &url],
        vec!["sub", "cli.absent", "--url", &url],
    ] {
        let out = run(herald(&args), "").await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("TOPIC_NOT_FOUND"), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // A failing line stops `pub -` there: the lines before it were published, none after.
    let out = run(herald(&["pub", "cli.absent", "-", "--url", &url]), "x\ny\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("stdin line 1"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_from_flag_or_env_and_a_wrong_key_is_one_clear_line() {
    let server = TestServer::start_with(|c| c.api_key = Some("s3cret".into())).await;
    let url = server.ws_url("");

    let out = run(
        herald(&["pub", "cli.auth", "1", "--url", &url, "--api-key", "s3cret"]),
        "",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut cmd = herald(&["pub", "cli.auth", "2"]);
    cmd.env("HERALD_URL", &url).env("HERALD_API_KEY", "s3cret");
    let out = run(cmd, "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_lines(&out)[0]["seq"], 2);

    for key in [Some("wrong"), None] {
        let mut args = vec!["sub", "cli.auth", "--url", &url];
        args.extend(key.iter().flat_map(|k| ["--api-key", *k]));
        let out = run(herald(&args), "").await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("HTTP 401") && stderr.contains("UNAUTHORIZED"),
            "{stderr}"
        );
        assert!(stderr.contains("HERALD_API_KEY"), "no hint: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_one_line_and_nonzero() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["pub"], 2, "<TOPIC>"),
        (&["sub", "t", "--last-n", "many"], 2, "--last-n"),
        (&["sub", "t", "--epoch", "e"], 2, "--since-seq"),
        (&["pub", "t", "x", "--url", "ftp://h"], 2, "ftp://h"),
        (
            &[
                "pub",
                "t",
                "x",
                "--url",
                "wss://h",
                "--cacert",
                "/nonexistent",
            ],
            2,
            "--cacert /nonexistent",
        ),
        (&["probe", "-k", "--cacert", "ca.pem"], 2, "--insecure"),
        (&["--port", "1", "sub", "t"], 2, "sub"),
        (&["pub", "t", "-x"], 2, "-- -x"),
        (
            &["pub", "t", "x", "--url", "ws://127.0.0.1:1"],
            1,
            "cannot connect",
        ),
        (
            &["probe", "--url", "http://127.0.0.1:1"],
            1,
            "cannot connect",
        ),
    ];
    for (args, code, mention) in cases {
        let out = run(herald(args), "").await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(mention),
            "{args:?}: {stderr:?} lacks {mention}"
        );
    }
    let server = TestServer::start().await;
    let out = run(
        herald(&["pub", "bad topic!", "x", "--url", &server.ws_url("")]),
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("BAD_REQUEST"));
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_checks_livez_readyz_and_finds_the_server_from_the_environment() {
    let server = TestServer::start_with(|c| c.api_key = Some("k".into())).await;
    let base = server.url("");
    let out = run(herald(&["probe", "--url", &base]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("200 "));
    let out = run(herald(&["probe", "--url", &base, "--path", "/readyz"]), "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A route that is not 2xx (here: it needs the key) fails with the status and body.
    let out = run(herald(&["probe", "--url", &format!("{base}/health")]), "").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("UNAUTHORIZED"),
        "{stderr}"
    );

    // Without --url: where a server started with this environment listens.
    let mut cmd = herald(&["probe"]);
    cmd.env("ADDR", format!("0.0.0.0:{}", server.addr.port()));
    let out = run(cmd, "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_subcommand_and_top_level_flags_both_run_the_server() {
    for args in [
        &["serve", "--host", "127.0.0.1", "--port"][..],
        &["--host", "127.0.0.1", "--port"][..],
    ] {
        let port = common::free_port().to_string();
        let mut all = args.to_vec();
        all.push(&port);
        let mut server = herald(&all)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            let out = run(herald(&["probe", "--url", &url, "--timeout-secs", "1"]), "").await;
            if out.status.success() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{args:?}: never ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid = server.id().unwrap().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(15), server.wait())
            .await
            .expect("server did not stop")
            .unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
}
