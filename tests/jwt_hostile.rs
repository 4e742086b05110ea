//! A flood of upgrades with bad tokens (issue 15, "Bad input"): about 5,000 attempts a second for
//! about 3 s from a few tasks, each a fresh connection whose token is refused. Meanwhile a canary
//! subscriber must receive every message published every 50 ms, in order, none later than a
//! second after its publish (a loose bound: this proves liveness, not speed), every attempt must
//! get its 401 (no hang, no 5xx), and `/metrics` must count the refused verifications.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::jwt::*;
use common::TestServer;
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

/// Upgrade attempts per second, over all attacking tasks.
const RATE: u64 = 5_000;
/// How many tasks share the attack.
const TASKS: u64 = 4;
/// How long the attack lasts.
const ATTACK: Duration = Duration::from_secs(3);
/// Unanswered attempts one task keeps open at most.
const IN_FLIGHT: usize = 256;
/// An attempt not answered within this is hung.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The canary's period and its largest publish-to-receive latency.
const PERIOD: Duration = Duration::from_millis(50);
const MAX_LATENCY: Duration = Duration::from_secs(1);

/// What the attack saw.
#[derive(Debug, Default)]
struct Tally {
    /// Attempts answered, by status.
    statuses: BTreeMap<u16, u64>,
    /// Attempts that failed at the socket (connect, write, read) or got no status line.
    errors: BTreeMap<String, u64>,
    /// Attempts with no answer within [`ATTEMPT_TIMEOUT`].
    hung: u64,
    /// Attempts started.
    started: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.hung += other.hung;
        self.started += other.started;
    }

    fn record(&mut self, outcome: Result<Result<u16, String>, tokio::time::error::Elapsed>) {
        match outcome {
            Ok(Ok(status)) => *self.statuses.entry(status).or_default() += 1,
            Ok(Err(e)) => *self.errors.entry(e).or_default() += 1,
            Err(_) => self.hung += 1,
        }
    }
}

/// The raw upgrade requests of the attack: bad tokens that all reach verification (each is
/// under 8 KiB), as Bearer and as `?token=`, on `/ws` and `/ws/sub/{topic}`.
fn attack_requests(addr: SocketAddr) -> Vec<Arc<[u8]>> {
    let c = claims("mallory", 3600, admin_rights());
    let mut expired = c.clone();
    expired["exp"] = json!(now() - 600);
    let mut forged_other = c.clone();
    forged_other["sub"] = json!("mallory-2");
    let tokens = [
        wrong_signature(&c),
        wrong_signature(&forged_other),
        sign(Algorithm::HS256, &expired),
        unsigned(&c),
        {
            let t = sign(Algorithm::HS256, &c);
            t[..t.len() - 4].to_string()
        },
    ];
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let mut requests = Vec::new();
    for t in &tokens {
        for path in ["/ws", "/ws/sub/canary"] {
            requests.push(format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}Authorization: Bearer {t}\r\n\r\n"
            ));
            requests.push(format!(
                "GET {path}?token={t} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}\r\n"
            ));
        }
    }
    requests
        .into_iter()
        .map(|r| Arc::from(r.into_bytes()))
        .collect()
}

/// One attempt: connect, send the upgrade, read the status line.
async fn attempt(addr: SocketAddr, request: Arc<[u8]>) -> Result<u16, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    s.write_all(&request)
        .await
        .map_err(|e| format!("write: {:?}", e.kind()))?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while head.len() < 12 {
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {:?}", e.kind()))?;
        if n == 0 {
            return Err("closed without a status line".into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not HTTP: {:?}", String::from_utf8_lossy(&head)))
}

/// One attacking task: `RATE / TASKS` attempts a second for [`ATTACK`], paced by the clock.
async fn attack_task(addr: SocketAddr, requests: Arc<Vec<Arc<[u8]>>>, offset: usize) -> Tally {
    let per_sec = RATE / TASKS;
    let mut tally = Tally::default();
    let mut in_flight = JoinSet::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut i = offset;
    while started.elapsed() < ATTACK {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * per_sec as f64) as u64;
        while tally.started < due && in_flight.len() < IN_FLIGHT {
            let request = Arc::clone(&requests[i % requests.len()]);
            i += 1;
            tally.started += 1;
            in_flight.spawn(timeout(ATTEMPT_TIMEOUT, attempt(addr, request)));
        }
        while let Some(done) = in_flight.try_join_next() {
            tally.record(done.expect("attempt task"));
        }
    }
    while let Some(done) = in_flight.join_next().await {
        tally.record(done.expect("attempt task"));
    }
    tally
}

/// Every `/metrics` series whose name contains `auth`, with its value.
async fn auth_series(server: &TestServer) -> BTreeMap<String, f64> {
    let (status, body) = rest(
        server,
        Method::GET,
        "/metrics",
        Cred::KeyHeader(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().expect("metrics text").to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            name.contains("auth")
                .then(|| Some((series.to_string(), value.parse().ok()?)))
                .flatten()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_token_upgrades_is_refused_counted_and_does_not_disturb_a_subscriber() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        admin_key(c);
    })
    .await;
    let addr = server.addr;
    let before = auth_series(&server).await;

    // The canary: a token subscriber and an admin-key publisher, one message every 50 ms.
    let base = Instant::now();
    let t = token("canary", 3600, rights(&["canary"], &[], &[]));
    let mut sub = ws_ok(&server, "/ws", Cred::Query(&t)).await;
    let ack = try_subscribe(&mut sub, "canary", "s").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let subscriber = tokio::spawn(async move {
        let mut got: Vec<(u64, u64, Duration)> = Vec::new();
        loop {
            let v = sub.recv_json_no_heartbeat().await;
            let at = base.elapsed();
            assert_eq!(v["type"], "event", "canary got {v}");
            let p = &v["message"]["payload"];
            let sent = Duration::from_micros(p["t"].as_u64().expect("t"));
            got.push((
                p["n"].as_u64().expect("n"),
                v["seq"].as_u64().expect("seq"),
                at - sent,
            ));
            if p["last"] == true {
                return got;
            }
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut publisher = ws_ok(&server, "/ws", Cred::KeyHeader(ADMIN_KEY)).await;
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            let last = *stop_rx.borrow();
            n += 1;
            let t = base.elapsed().as_micros() as u64;
            let ack = try_publish(
                &mut publisher,
                "canary",
                json!({"n": n, "t": t, "last": last}),
                "p",
            )
            .await;
            assert_eq!(ack["type"], "ack", "canary publish: {ack}");
            if last {
                return n;
            }
        }
    });

    // The attack, on a runtime of its own so the test's own load does not sit on the server's
    // worker threads.
    let requests = Arc::new(attack_requests(addr));
    let attack = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("attack runtime");
        rt.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = (0..TASKS)
                .map(|k| tokio::spawn(attack_task(addr, Arc::clone(&requests), k as usize * 3)))
                .collect();
            let mut tally = Tally::default();
            for task in tasks {
                tally.add(task.await.expect("attack task"));
            }
            (tally, started.elapsed())
        })
    });
    let (tally, took) = tokio::task::spawn_blocking(move || attack.join().expect("attack thread"))
        .await
        .expect("join");
    // A few more canary messages after the attack, then stop.
    tokio::time::sleep(PERIOD * 4).await;
    stop_tx.send(true).expect("stop");
    let published = timeout(Duration::from_secs(15), publisher)
        .await
        .expect("canary publisher stalled")
        .expect("canary publisher");
    let got = timeout(Duration::from_secs(15), subscriber)
        .await
        .expect("canary subscriber stalled")
        .expect("canary subscriber");

    let refused = tally.statuses.get(&401).copied().unwrap_or(0);
    eprintln!(
        "attack: {} attempts in {took:.2?} ({:.0}/s): statuses {:?}, errors {:?}, hung {}",
        tally.started,
        tally.started as f64 / took.as_secs_f64(),
        tally.statuses,
        tally.errors,
        tally.hung
    );
    let max = got.iter().map(|g| g.2).max().unwrap_or_default();
    eprintln!(
        "canary: {published} published, {} received, max latency {max:?}",
        got.len()
    );
    assert_eq!(tally.hung, 0, "attempts left hanging");
    assert_eq!(
        refused, tally.started,
        "every attempt must get its 401: {tally:?}"
    );
    assert!(
        tally.started >= RATE * ATTACK.as_secs() / 2,
        "the attack reached only {} attempts (target {} in {ATTACK:?})",
        tally.started,
        RATE * ATTACK.as_secs()
    );
    let ns: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        ns,
        (1..=published).collect::<Vec<_>>(),
        "canary lost or reordered messages"
    );
    assert!(
        got.windows(2).all(|w| w[0].1 < w[1].1),
        "canary seq not increasing"
    );
    assert!(
        max <= MAX_LATENCY,
        "canary latency {max:?} over {MAX_LATENCY:?}"
    );

    // /metrics counts the refused verifications.
    let after = auth_series(&server).await;
    let grown: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect();
    let refusal_words = [
        "fail", "refus", "reject", "invalid", "denied", "error", "bad",
    ];
    let counted = grown
        .iter()
        .filter(|(k, _)| {
            refusal_words
                .iter()
                .any(|w| k.to_ascii_lowercase().contains(w))
        })
        .map(|(_, d)| *d)
        .fold(0.0, f64::max);
    assert!(
        counted >= refused as f64,
        "no /metrics auth refusal counter grew by the {refused} refused attempts: {grown:?}"
    );
}
