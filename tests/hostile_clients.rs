//! Hostile clients (issue 7): every misbehaving client is bounded by a documented limit (slow
//! consumer queue, header-read timeout, control-frame rate, frame and message limits, UTF-8
//! validation, per-connection subscription cap, `MAX_TOPICS`, `MAX_CONNECTIONS`), and none of them
//! disturbs a healthy subscriber on the same server.
//!
//! Every test runs a [`Canary`]: a publisher that publishes to its own topic 20 times a second for
//! the whole test and a subscriber that must receive every message, in `seq` order, with a
//! publish-to-receive latency that stays far below a second.
//!
//! Raw clients ([`RawWs`]) write masked client frames by hand, so the tests can send what a
//! well-behaved WebSocket library never would.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rest::get_json;
use common::ws::{client_frame, client_frame_header};
use common::{http, TestServer, WsClient, RECV_TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use herald::config::{Config, SlowConsumerPolicy};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, timeout_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::MaybeTlsStream;

// ---------------------------------------------------------------------------------------------
// The healthy subscriber
// ---------------------------------------------------------------------------------------------

/// The canary's topic.
const HEALTHY: &str = "healthy";
/// 20 messages a second.
const CANARY_PERIOD: Duration = Duration::from_millis(50);
/// Largest publish-to-receive latency (and publish-to-ack time) the canary accepts. Unloaded it is
/// around a millisecond; this leaves room for a busy 2-core CI box without hiding a stall.
const MAX_LATENCY: Duration = Duration::from_secs(1);
/// The median must stay well below that: the same order of magnitude as an idle server.
const MAX_MEDIAN_LATENCY: Duration = Duration::from_millis(250);
/// The canary runs at least this long (30 messages), even beside a hostile client that is dealt
/// with in milliseconds.
const CANARY_MIN_RUN: Duration = Duration::from_millis(1500);

/// One event as the healthy subscriber saw it.
struct Received {
    n: u64,
    seq: u64,
    latency: Duration,
}

/// A steady publisher and a healthy subscriber on [`HEALTHY`], running beside a hostile client.
struct Canary {
    started: Instant,
    stop: Arc<AtomicBool>,
    first_seq: u64,
    publisher: JoinHandle<(u64, Duration)>,
    subscriber: JoinHandle<Vec<Received>>,
}

impl Canary {
    /// Subscribes, then starts publishing. Uses two WebSocket connections.
    async fn start(server: &TestServer) -> Self {
        let base = Instant::now();
        let mut sub = server.ws().await;
        let ack = sub.subscribe(HEALTHY).await;
        let first_seq = ack["seq"].as_u64().expect("subscribe ack seq") + 1;
        let subscriber = tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                // Panics (failing the test) on a close, an error frame or 10 s of silence.
                let v = sub.recv_json_no_heartbeat().await;
                let now = base.elapsed();
                assert_eq!(v["type"], "event", "healthy subscriber got {v}");
                assert_eq!(v["topic"], HEALTHY, "healthy subscriber got {v}");
                let payload = &v["message"]["payload"];
                let sent = Duration::from_micros(payload["t"].as_u64().expect("t"));
                got.push(Received {
                    n: payload["n"].as_u64().expect("n"),
                    seq: v["seq"].as_u64().expect("seq"),
                    latency: now.saturating_sub(sent),
                });
                if payload["last"] == true {
                    return got;
                }
            }
        });
        let mut publisher = server.ws().await;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let publisher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CANARY_PERIOD);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut max_ack = Duration::ZERO;
            let mut n = 0;
            loop {
                tick.tick().await;
                let last = stopped.load(Ordering::Relaxed);
                n += 1;
                let sent = Instant::now();
                let t = base.elapsed().as_micros() as u64;
                let ack = publisher
                    .request(json!({"type": "publish", "topic": HEALTHY,
                        "message": {"payload": {"n": n, "t": t, "last": last}}}))
                    .await;
                max_ack = max_ack.max(sent.elapsed());
                assert_eq!(ack["type"], "ack", "healthy publisher: {ack}");
                assert_eq!(ack["seq"], first_seq + n - 1, "healthy publisher: {ack}");
                if last {
                    return (n, max_ack);
                }
            }
        });
        Self {
            started: base,
            stop,
            first_seq,
            publisher,
            subscriber,
        }
    }

    /// Stops the publisher and checks that the subscriber got every message, in order, in time.
    async fn finish(self, scenario: &str) {
        tokio::time::sleep_until(self.started + CANARY_MIN_RUN).await;
        self.stop.store(true, Ordering::Relaxed);
        let (published, max_ack) = timeout(Duration::from_secs(15), self.publisher)
            .await
            .unwrap_or_else(|_| panic!("{scenario}: healthy publisher stalled"))
            .expect("healthy publisher");
        let got = timeout(Duration::from_secs(15), self.subscriber)
            .await
            .unwrap_or_else(|_| panic!("{scenario}: healthy subscriber stalled"))
            .expect("healthy subscriber");
        let ns: Vec<u64> = got.iter().map(|r| r.n).collect();
        assert_eq!(
            ns,
            (1..=published).collect::<Vec<_>>(),
            "{scenario}: the healthy subscriber must get every message in order"
        );
        let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (self.first_seq..self.first_seq + published).collect::<Vec<_>>(),
            "{scenario}: seq gap or reorder"
        );
        let mut latencies: Vec<Duration> = got.iter().map(|r| r.latency).collect();
        latencies.sort();
        let median = latencies[latencies.len() / 2];
        let max = *latencies.last().expect("at least one message");
        eprintln!(
            "{scenario}: healthy subscriber got {published} messages; latency median {median:?}, \
             max {max:?}; slowest publish ack {max_ack:?}"
        );
        assert!(
            max < MAX_LATENCY,
            "{scenario}: healthy subscriber latency {max:?}"
        );
        assert!(
            median < MAX_MEDIAN_LATENCY,
            "{scenario}: healthy subscriber median latency {median:?}"
        );
        assert!(
            max_ack < MAX_LATENCY,
            "{scenario}: healthy publisher waited {max_ack:?} for an ack"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// REST helpers
// ---------------------------------------------------------------------------------------------

/// Polls `GET path` until `done` holds; panics after `within`. Returns the body and the wait.
async fn wait_for(
    server: &TestServer,
    path: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let v = get_json(&server.url(path)).await;
        if done(&v) {
            return (v, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; last GET {path}: {v}"
        );
        sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `/health` (up to 5 s) until it counts `want` connections.
async fn wait_for_connections(server: &TestServer, want: u64, what: &str) {
    wait_for(server, "/health", Duration::from_secs(5), what, |h| {
        h["connections"] == want
    })
    .await;
}

/// `/health` `connections` once the canary is up: its two connections.
async fn baseline_connections(server: &TestServer) -> u64 {
    let (health, _) = wait_for(
        server,
        "/health",
        Duration::from_secs(5),
        "canary connected",
        |h| h["connections"] == 2,
    )
    .await;
    health["connections"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------------
// A raw WebSocket client
// ---------------------------------------------------------------------------------------------

/// The RFC 6455 example key and its accept value.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;

/// A frame from the server (never masked).
struct ServerFrame {
    opcode: u8,
    payload: Vec<u8>,
}

impl ServerFrame {
    fn json(&self) -> Value {
        assert_eq!(self.opcode, OP_TEXT, "expected a text frame");
        serde_json::from_slice(&self.payload).expect("server sent JSON")
    }

    fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, OP_CLOSE);
        match self.payload.as_slice() {
            [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            _ => 1005,
        }
    }
}

/// Splits one complete server frame off the front of `buf`.
fn parse_server_frame(buf: &[u8]) -> Option<(ServerFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
    let (len, at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    let frame = ServerFrame {
        opcode: buf[0] & 0x0f,
        payload: buf[at..at + len].to_vec(),
    };
    Some((frame, at + len))
}

/// How a raw connection ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The server sent a close frame with this code.
    Close(u16),
    /// EOF or reset without a close frame.
    Gone,
}

/// A WebSocket client that speaks raw bytes.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    async fn connect(addr: SocketAddr) -> Self {
        Self::handshake(TcpStream::connect(addr).await.unwrap(), addr).await
    }

    /// Sends the upgrade request on `stream` and checks the 101 answer.
    async fn handshake(mut stream: TcpStream, addr: SocketAddr) -> Self {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = timeout(RECV_TIMEOUT, stream.read(&mut chunk))
                .await
                .expect("upgrade answer in time")
                .expect("read upgrade answer");
            assert!(n > 0, "connection closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        assert!(head.contains(WS_ACCEPT), "bad Sec-WebSocket-Accept: {head}");
        buf.drain(..head_end);
        Self { stream, buf }
    }

    async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.stream
            .write_all(&client_frame(fin, opcode, payload))
            .await
    }

    async fn send_json(&mut self, value: Value) -> std::io::Result<()> {
        self.send_frame(true, OP_TEXT, value.to_string().as_bytes())
            .await
    }

    /// The next frame, or `None` on EOF or a socket error.
    async fn read_frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next text frame as JSON, skipping heartbeats and control frames; panics on the end.
    async fn recv_json(&mut self) -> Value {
        loop {
            let frame = timeout(RECV_TIMEOUT, self.read_frame())
                .await
                .expect("a frame in time")
                .expect("connection ended while waiting for a frame");
            if frame.opcode == OP_TEXT {
                let v = frame.json();
                if !(v["type"] == "info" && v["msg"] == "ping") {
                    return v;
                }
            } else {
                assert!(
                    frame.opcode >= 0x9,
                    "unexpected frame opcode {}",
                    frame.opcode
                );
            }
        }
    }

    /// Reads (skipping everything else) until the server's close frame or the end of the
    /// connection; panics if neither comes `within`.
    async fn expect_end(&mut self, within: Duration) -> Ended {
        let deadline = Instant::now() + within;
        loop {
            match timeout_at(deadline, self.read_frame()).await {
                Err(_) => panic!("connection still open after {within:?}"),
                Ok(None) => return Ended::Gone,
                Ok(Some(frame)) if frame.opcode == OP_CLOSE => {
                    return Ended::Close(frame.close_code())
                }
                Ok(Some(_)) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Slow consumers
// ---------------------------------------------------------------------------------------------

const FLOOD: &str = "flood";
const FLOOD_PAYLOAD: usize = 64 * 1024;
/// A slow consumer must be gone this soon after the flood starts.
const SLOW_CONSUMER_BOUND: Duration = Duration::from_secs(10);

fn slow_consumer_config(c: &mut Config) {
    c.subscriber_queue_size = 16;
    c.slow_consumer_policy = SlowConsumerPolicy::Disconnect;
    c.max_message_bytes = 128 * 1024;
}

/// Publishes 64 KiB messages to [`FLOOD`], one ack at a time, until `stop`; returns the count.
fn flood(server: &TestServer, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    let url = server.ws_url("/ws");
    tokio::spawn(async move {
        let mut publisher = WsClient::connect(&url).await;
        let frame = json!({"type": "publish", "topic": FLOOD,
            "message": {"payload": "x".repeat(FLOOD_PAYLOAD)}})
        .to_string();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            publisher.send_text(&frame).await;
            let ack = publisher.recv_json_no_heartbeat().await;
            assert_eq!(ack["type"], "ack", "flood publisher: {ack}");
            assert!(
                sent.elapsed() < MAX_LATENCY,
                "the flood publisher was slowed down: {:?}",
                sent.elapsed()
            );
            n += 1;
        }
        n
    })
}

/// Waits until the slow consumer is off [`FLOOD`] and counted as a slow-consumer disconnect.
async fn wait_for_slow_consumer_disconnect(server: &TestServer, what: &str) -> Duration {
    let (_, took) = wait_for(
        server,
        &format!("/topics/{FLOOD}"),
        SLOW_CONSUMER_BOUND,
        what,
        |t| t["subscribers"] == 0,
    )
    .await;
    wait_for(
        server,
        "/stats",
        Duration::from_secs(5),
        "slow-consumer disconnect counted",
        |s| s["slow_consumer_disconnects"] == 1,
    )
    .await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_disconnected_as_a_slow_consumer() {
    let server = TestServer::start_with(slow_consumer_config).await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    let mut hostile = server.ws().await;
    hostile.subscribe(FLOOD).await;
    // From here on `hostile` is not polled until the server has dropped it.
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(&server, stop.clone());
    let took = wait_for_slow_consumer_disconnect(&server, "never-reading subscriber dropped").await;
    stop.store(true, Ordering::Relaxed);
    let published = flooder.await.expect("flood publisher");
    eprintln!("never reads: dropped {took:?} after the flood started ({published} x 64 KiB)");
    wait_for_connections(&server, baseline, "connection count back to baseline").await;

    // What it finally reads: an in-order prefix, maybe SLOW_CONSUMER, then 1008 or the end.
    let mut seqs = Vec::new();
    let mut error_seen = false;
    let close = loop {
        match hostile.recv_message().await {
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "event" {
                    assert!(!error_seen, "event after SLOW_CONSUMER");
                    seqs.push(v["seq"].as_u64().unwrap());
                } else {
                    assert_eq!(v["error"]["code"], "SLOW_CONSUMER", "{v}");
                    error_seen = true;
                }
            }
            Some(Message::Close(frame)) => break frame,
            Some(_) => {}
            None => break None,
        }
    };
    if let Some(frame) = close {
        assert_eq!(frame.code, CloseCode::Policy, "{frame:?}");
    }
    assert!((seqs.len() as u64) < published, "it cannot have kept up");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    canary.finish("never reads").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_reading_one_byte_a_second_is_disconnected_as_a_slow_consumer() {
    let server = TestServer::start_with(slow_consumer_config).await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    // A small receive window so the server feels the trickle quickly.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut hostile = RawWs::handshake(stream, server.addr).await;
    hostile
        .send_json(json!({"type": "subscribe", "topic": FLOOD}))
        .await
        .unwrap();
    wait_for(
        &server,
        &format!("/topics/{FLOOD}"),
        Duration::from_secs(5),
        "trickle reader subscribed",
        |t| t["subscribers"] == 1,
    )
    .await;

    let fast = Arc::new(AtomicBool::new(false));
    let drain = fast.clone();
    let mut stream = hostile.stream;
    let reader = tokio::spawn(async move {
        let started = Instant::now();
        let mut slow_bytes = 0u64;
        let mut byte = [0u8; 1];
        while !drain.load(Ordering::Relaxed) {
            sleep(Duration::from_secs(1)).await;
            match stream.read(&mut byte).await {
                Ok(0) | Err(_) => return (slow_bytes, started.elapsed(), false),
                Ok(_) => slow_bytes += 1,
            }
        }
        let slow_for = started.elapsed();
        // Told the server dropped it: read the rest at full speed, up to the end.
        let mut chunk = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
        (slow_bytes, slow_for, true)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(&server, stop.clone());
    let took = wait_for_slow_consumer_disconnect(&server, "byte-a-second reader dropped").await;
    stop.store(true, Ordering::Relaxed);
    let published = flooder.await.expect("flood publisher");
    eprintln!("byte a second: dropped {took:?} after the flood started ({published} x 64 KiB)");
    wait_for_connections(&server, baseline, "connection count back to baseline").await;

    fast.store(true, Ordering::Relaxed);
    let (slow_bytes, slow_for, _) = timeout(Duration::from_secs(10), reader)
        .await
        .expect("the dropped trickle reader's connection ends")
        .expect("reader");
    assert!(
        slow_bytes <= slow_for.as_secs() + 1,
        "the reader really read one byte a second ({slow_bytes} in {slow_for:?})"
    );

    canary.finish("byte a second").await;
}

// ---------------------------------------------------------------------------------------------
// Slowloris
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_upgrade_heads_are_closed_after_the_header_read_timeout() {
    let header_timeout = Duration::from_secs(1);
    let server = TestServer::start_with(|c| c.header_read_timeout = header_timeout).await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;
    let partial = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        server.addr
    );

    // 10 silent connections, 10 that stop after part of the head, 10 that trickle a header byte
    // every 100 ms forever (each byte is progress, but the head never completes).
    let mut loris = Vec::new();
    for i in 0..30 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let partial = partial.clone();
        loris.push(tokio::spawn(async move {
            let opened = Instant::now();
            if i >= 10 {
                stream.write_all(partial.as_bytes()).await.unwrap();
            }
            let (mut rd, mut wr) = stream.split();
            let mut answer = Vec::new();
            {
                let trickle = async {
                    if i >= 20 {
                        let mut tick = tokio::time::interval(Duration::from_millis(100));
                        loop {
                            tick.tick().await;
                            if wr.write_all(b"X").await.is_err() {
                                break;
                            }
                        }
                    }
                    std::future::pending::<()>().await
                };
                let read_to_end = async {
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = rd.read(&mut chunk).await {
                        if n == 0 {
                            break;
                        }
                        answer.extend_from_slice(&chunk[..n]);
                    }
                };
                tokio::select! {
                    _ = read_to_end => {}
                    _ = trickle => unreachable!(),
                }
            }
            (
                opened.elapsed(),
                String::from_utf8_lossy(&answer).into_owned(),
            )
        }));
    }

    // Meanwhile a well-behaved client connects and is served.
    let mut fresh = server.ws().await;
    let pong = fresh
        .request(json!({"type": "ping", "request_id": "ok"}))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");

    let mut answers = std::collections::BTreeSet::new();
    for (i, task) in loris.into_iter().enumerate() {
        let (lived, answer) = timeout(header_timeout + Duration::from_secs(5), task)
            .await
            .unwrap_or_else(|_| panic!("slowloris connection {i} still open"))
            .expect("slowloris task");
        assert!(
            lived >= header_timeout / 2 && lived < header_timeout + Duration::from_secs(2),
            "slowloris connection {i} closed after {lived:?} (header_read_timeout {header_timeout:?})"
        );
        // Never upgraded: at most an HTTP error answer (408) before the close.
        assert!(
            answer.is_empty() || (answer.starts_with("HTTP/1.1 4") && !answer.contains(" 101 ")),
            "slowloris connection {i} got {answer:?}"
        );
        answers.insert(answer.lines().next().unwrap_or("(nothing)").to_string());
    }
    eprintln!("slowloris: 30 connections closed; answers: {answers:?}");
    drop(fresh);
    wait_for_connections(&server, baseline, "no upgraded session left behind").await;

    canary.finish("slowloris").await;
}

// ---------------------------------------------------------------------------------------------
// Ping flood
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_closed_with_1008_while_a_polite_pinger_stays() {
    let server = TestServer::start_with(|c| c.max_control_frames_per_sec = 50).await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    // 20 pings a second, under the limit of 50, for as long as the flood lasts.
    let mut polite = server.ws().await;
    let polite_stop = Arc::new(AtomicBool::new(false));
    let polite_stopped = polite_stop.clone();
    let polite = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut sent = 0u32;
        while !polite_stopped.load(Ordering::Relaxed) || sent < 40 {
            tick.tick().await;
            polite
                .inner
                .send(Message::Ping(b"polite".to_vec().into()))
                .await
                .expect("polite pinger was disconnected");
            sent += 1;
        }
        polite
    });

    let (flooder, _) = tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .unwrap();
    let (mut sink, mut stream) = flooder.split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_secs(5) {
            if sink
                .send(Message::Ping(b"flood".to_vec().into()))
                .await
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        sent
    });
    let close = timeout(Duration::from_secs(5), async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        }
    })
    .await
    .expect("the ping flood is closed within 5 s");
    let closed_after = started.elapsed();
    let sent = writer.await.expect("flood writer");
    eprintln!("ping flood: closed after {closed_after:?} and {sent} pings: {close:?}");
    if let Some(frame) = &close {
        assert_eq!(frame.code, CloseCode::Policy, "{frame:?}");
    }
    assert!(sent > 50, "the flood exceeded the limit ({sent} pings)");
    assert!(
        closed_after < Duration::from_secs(3),
        "closed only after {closed_after:?}"
    );

    polite_stop.store(true, Ordering::Relaxed);
    let mut polite = polite.await.expect("polite pinger");
    let pong = polite
        .request(json!({"type": "ping", "request_id": "polite"}))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
    wait_for_connections(&server, baseline + 1, "only the flooder is gone").await;

    canary.finish("ping flood").await;
}

// ---------------------------------------------------------------------------------------------
// Fragmentation, frame size, UTF-8
// ---------------------------------------------------------------------------------------------

/// `max_message_bytes`; the WebSocket frame/message limit is this plus 64 KiB.
const MESSAGE_LIMIT: usize = 64 * 1024;
const FRAME_LIMIT: usize = MESSAGE_LIMIT + 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_fragmented_message_is_closed_with_1009_at_the_limit() {
    let server = TestServer::start_with(|c| c.max_message_bytes = MESSAGE_LIMIT).await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    let mut hostile = RawWs::connect(server.addr).await;
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0usize;
    let mut write_failed = false;
    // A text frame without FIN, then continuations without FIN, up to twice the limit.
    while sent <= 2 * FRAME_LIMIT {
        let opcode = if sent == 0 { OP_TEXT } else { OP_CONTINUATION };
        if hostile.send_frame(false, opcode, &chunk).await.is_err() {
            write_failed = true;
            break;
        }
        sent += chunk.len();
    }
    let end = hostile.expect_end(Duration::from_secs(5)).await;
    eprintln!("endless fragments: {sent} bytes sent (write failed: {write_failed}): {end:?}");
    assert_eq!(end, Ended::Close(1009), "message over the limit");
    wait_for_connections(&server, baseline, "fragmenting connection gone").await;

    canary.finish("endless fragments").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_that_never_finish_under_the_limit_are_closed_by_the_idle_timeout() {
    let idle = Duration::from_secs(2);
    let server = TestServer::start_with(|c| {
        c.max_message_bytes = MESSAGE_LIMIT;
        c.idle_timeout = idle;
        c.heartbeat_interval = Duration::from_secs(1);
    })
    .await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    // A message that grows by one byte every 100 ms: it would take hours to reach the limit.
    let mut hostile = RawWs::connect(server.addr).await;
    hostile.send_frame(false, OP_TEXT, b"{").await.unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = hostile.stream.into_split();
    let trickle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if wr
                .write_all(&client_frame(false, OP_CONTINUATION, b" "))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut buf = std::mem::take(&mut hostile.buf);
    let end = timeout(idle + Duration::from_secs(5), async {
        loop {
            while let Some((frame, used)) = parse_server_frame(&buf) {
                buf.drain(..used);
                if frame.opcode == OP_CLOSE {
                    return Ended::Close(frame.close_code());
                }
            }
            let mut chunk = [0u8; 4096];
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return Ended::Gone,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("a never-finished message is bounded by the idle timeout");
    let lived = started.elapsed();
    trickle.abort();
    eprintln!("unfinished fragments: closed after {lived:?}: {end:?}");
    assert_eq!(end, Ended::Close(1001), "closed as idle");
    assert!(
        lived >= idle / 2 && lived < idle + Duration::from_secs(3),
        "closed after {lived:?} (idle timeout {idle:?})"
    );
    wait_for_connections(&server, baseline, "fragmenting connection gone").await;

    canary.finish("unfinished fragments").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_size_limit_are_closed_with_1009() {
    let server = TestServer::start_with(|c| c.max_message_bytes = MESSAGE_LIMIT).await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    // Contrast: a frame within the frame limit whose payload is over MAX_MESSAGE_BYTES is an
    // error frame, and the connection stays.
    let mut ws = server.ws().await;
    let err = ws
        .request(json!({"type": "publish", "topic": "big", "request_id": "p",
            "message": {"payload": "x".repeat(MESSAGE_LIMIT + 1024)}}))
        .await;
    assert_eq!(err["error"]["code"], "PAYLOAD_TOO_LARGE", "{err}");
    let pong = ws
        .request(json!({"type": "ping", "request_id": "after"}))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");

    // A real frame over the limit.
    ws.send_text(&"x".repeat(FRAME_LIMIT + 1)).await;
    let close = ws.recv_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Size, "{close:?}");

    // A header announcing 1 GiB, with no payload behind it: refused on the header alone.
    let mut raw = RawWs::connect(server.addr).await;
    raw.stream
        .write_all(&client_frame_header(true, OP_TEXT, 1 << 30))
        .await
        .unwrap();
    raw.stream.write_all(b"{\"type\":").await.unwrap();
    let started = Instant::now();
    let end = raw.expect_end(Duration::from_secs(5)).await;
    assert_eq!(end, Ended::Close(1009), "1 GiB frame header");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the server waited {:?} on the announced gigabyte",
        started.elapsed()
    );

    // Same with a binary frame.
    let mut raw = RawWs::connect(server.addr).await;
    raw.send_frame(true, OP_BINARY, &vec![b' '; FRAME_LIMIT + 1])
        .await
        .ok();
    assert_eq!(
        raw.expect_end(Duration::from_secs(5)).await,
        Ended::Close(1009)
    );

    drop(ws);
    wait_for_connections(&server, baseline, "oversize senders gone").await;
    canary.finish("oversize frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_text_frames_is_closed_with_1007() {
    let server = TestServer::start().await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    // Not UTF-8 at all.
    let mut raw = RawWs::connect(server.addr).await;
    raw.send_frame(true, OP_TEXT, &[0xc3, 0x28, 0xff])
        .await
        .unwrap();
    assert_eq!(raw.expect_end(RECV_TIMEOUT).await, Ended::Close(1007));

    // JSON whose string holds an invalid byte.
    let mut raw = RawWs::connect(server.addr).await;
    raw.send_frame(
        true,
        OP_TEXT,
        b"{\"type\":\"ping\",\"request_id\":\"\xff\"}",
    )
    .await
    .unwrap();
    assert_eq!(raw.expect_end(RECV_TIMEOUT).await, Ended::Close(1007));

    // A binary frame that is not UTF-8 is only a BAD_REQUEST; a valid character split across two
    // fragments is fine; an invalid byte in a later fragment closes with 1007.
    let mut raw = RawWs::connect(server.addr).await;
    raw.send_frame(true, OP_BINARY, &[0xff, 0xfe])
        .await
        .unwrap();
    let err = raw.recv_json().await;
    assert_eq!(err["error"]["code"], "BAD_REQUEST", "{err}");
    let euro = "{\"type\":\"ping\",\"request_id\":\"\u{20ac}\"}".as_bytes();
    let split = euro.iter().position(|&b| b == 0xe2).unwrap() + 1;
    raw.send_frame(false, OP_TEXT, &euro[..split])
        .await
        .unwrap();
    raw.send_frame(true, OP_CONTINUATION, &euro[split..])
        .await
        .unwrap();
    let pong = raw.recv_json().await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(pong["request_id"], "\u{20ac}", "{pong}");
    raw.send_frame(false, OP_TEXT, b"{\"type\":\"ping\",")
        .await
        .unwrap();
    raw.send_frame(true, OP_CONTINUATION, b"\"request_id\":\"\xc0\xaf\"}")
        .await
        .unwrap();
    assert_eq!(raw.expect_end(RECV_TIMEOUT).await, Ended::Close(1007));

    wait_for_connections(&server, baseline, "bad UTF-8 senders gone").await;
    canary.finish("invalid UTF-8").await;
}

// ---------------------------------------------------------------------------------------------
// Subscription and topic caps
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_subscribe_frames_from_one_connection_are_bounded() {
    const FRAMES: usize = 100_000;
    let server = TestServer::start().await;
    let cap = Config::default().max_subscriptions_per_connection;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;

    // Watch the server's topic and subscription counts for the whole flood.
    let watching = Arc::new(AtomicBool::new(true));
    let watch_flag = watching.clone();
    let health_url = server.url("/health");
    let watcher = tokio::spawn(async move {
        let client = http();
        let (mut max_topics, mut max_subs) = (0u64, 0u64);
        while watch_flag.load(Ordering::Relaxed) {
            let h: Value = client
                .get(&health_url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            max_topics = max_topics.max(h["topics"].as_u64().unwrap());
            max_subs = max_subs.max(h["subscribers"].as_u64().unwrap());
            sleep(Duration::from_millis(20)).await;
        }
        (max_topics, max_subs)
    });

    // Subscribe frames to distinct topics, written in big batches, never reading the replies.
    let mut hostile = RawWs::connect(server.addr).await;
    let started = Instant::now();
    let mut sent = 0;
    'flood: for batch in 0..FRAMES / 1000 {
        let mut bytes = Vec::with_capacity(1000 * 48);
        for i in batch * 1000..(batch + 1) * 1000 {
            let frame = format!(r#"{{"type":"subscribe","topic":"t{i}"}}"#);
            bytes.extend_from_slice(&client_frame(true, OP_TEXT, frame.as_bytes()));
        }
        match timeout(Duration::from_secs(10), hostile.stream.write_all(&bytes)).await {
            Ok(Ok(())) => sent += 1000,
            Ok(Err(_)) => break 'flood,
            Err(_) => panic!("the server stopped reading without closing"),
        }
    }
    let write_took = started.elapsed();

    // Now read what came back: acks for the first `cap` topics in order, then LIMIT_EXCEEDED,
    // possibly cut short by SLOW_CONSUMER and a close (it did not read its replies).
    let (mut acks, mut limit_errors, mut slow_consumer) = (0usize, 0usize, false);
    let end = loop {
        if acks + limit_errors == sent {
            break None;
        }
        let frame = match timeout(RECV_TIMEOUT, hostile.read_frame()).await {
            Err(_) => panic!("no reply and no close after {acks} acks, {limit_errors} errors"),
            Ok(None) => break Some(Ended::Gone),
            Ok(Some(frame)) => frame,
        };
        match frame.opcode {
            OP_CLOSE => break Some(Ended::Close(frame.close_code())),
            OP_TEXT => {}
            _ => continue,
        }
        let v = frame.json();
        assert!(!slow_consumer, "frame after SLOW_CONSUMER: {v}");
        match (v["type"].as_str(), v["error"]["code"].as_str()) {
            (Some("ack"), _) => {
                assert_eq!(limit_errors, 0, "ack after LIMIT_EXCEEDED: {v}");
                assert_eq!(v["topic"], format!("t{acks}"), "acks in order: {v}");
                acks += 1;
            }
            (Some("error"), Some("LIMIT_EXCEEDED")) => {
                assert_eq!(acks, cap, "LIMIT_EXCEEDED before the cap: {v}");
                limit_errors += 1;
            }
            (Some("error"), Some("SLOW_CONSUMER")) => slow_consumer = true,
            _ => panic!("unexpected reply: {v}"),
        }
    };
    let elapsed = started.elapsed();
    let stats = get_json(&server.url("/stats")).await;
    eprintln!(
        "100k subscribes: wrote {sent} frames in {write_took:?}; read {acks} acks, \
         {limit_errors} LIMIT_EXCEEDED, slow consumer: {slow_consumer}; end {end:?}; {elapsed:?}; slow-consumer disconnects: {}",
        stats["slow_consumer_disconnects"]
    );
    assert!(acks <= cap, "{acks} subscriptions acked, cap {cap}");
    assert!(
        limit_errors > 0 || stats["slow_consumer_disconnects"] == 1,
        "bounded neither by the cap nor as a slow consumer: {stats}"
    );
    if let Some(Ended::Close(code)) = end {
        assert_eq!(code, 1008, "closed as a slow consumer");
    }
    drop(hostile);

    let (h, _) = wait_for(
        &server,
        "/health",
        Duration::from_secs(10),
        "flooder gone and unsubscribed",
        |h| h["connections"] == baseline && h["subscribers"] == 1,
    )
    .await;
    watching.store(false, Ordering::Relaxed);
    let (max_topics, max_subs) = watcher.await.expect("health watcher");
    eprintln!(
        "100k subscribes: at most {max_topics} topics and {max_subs} subscriptions; after: {h}"
    );
    // Auto-created topics remain after the client leaves, but never more than the cap allows.
    let topic_bound = cap as u64 + 1;
    assert!(h["topics"].as_u64().unwrap() <= topic_bound, "{h}");
    assert!(
        max_topics <= topic_bound,
        "{max_topics} topics at some point"
    );
    assert!(
        max_subs <= topic_bound,
        "{max_subs} subscriptions at some point"
    );

    canary.finish("100k subscribes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_subscribing_to_max_topics_is_refused_the_next_topic() {
    const MAX_TOPICS: usize = 200;
    let server = TestServer::start_with(|c| {
        c.max_topics = MAX_TOPICS;
        c.max_subscriptions_per_connection = 1000;
    })
    .await;
    let canary = Canary::start(&server).await;

    // The canary's topic is one of the MAX_TOPICS; the hostile client subscribes to it and
    // creates all the others, pipelined.
    let mut hostile = server.ws().await;
    let names: Vec<String> = std::iter::once(HEALTHY.to_string())
        .chain((1..MAX_TOPICS).map(|i| format!("mt-{i}")))
        .collect();
    // Pipelined 25 at a time: well within its outbound queue (SUBSCRIBER_QUEUE_SIZE = 100
    // frames), which a client with more requests in flight than that overflows.
    for (c, chunk) in names.chunks(25).enumerate() {
        for (i, name) in chunk.iter().enumerate() {
            hostile
                .send_json(json!({"type": "subscribe", "topic": name, "request_id": c * 25 + i}))
                .await;
        }
        for (i, name) in chunk.iter().enumerate() {
            let ack = loop {
                let v = hostile.recv_json_no_heartbeat().await;
                if v["type"] != "event" {
                    break v;
                }
            };
            assert_eq!(ack["type"], "ack", "subscription to {name} refused: {ack}");
            assert_eq!(ack["topic"], name.as_str());
            assert_eq!(ack["request_id"], c * 25 + i);
        }
    }
    let health = get_json(&server.url("/health")).await;
    assert_eq!(health["topics"], MAX_TOPICS, "{health}");

    // Topic number MAX_TOPICS + 1: refused on every path, the connection stays.
    let err = hostile
        .request(json!({"type": "subscribe", "topic": "one-too-many", "request_id": "over"}))
        .await;
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["error"]["code"], "LIMIT_EXCEEDED", "{err}");
    assert_eq!(err["request_id"], "over");
    let err = hostile
        .request(
            json!({"type": "publish", "topic": "one-too-many", "request_id": "pub",
            "message": {"payload": 1}}),
        )
        .await;
    assert_eq!(err["error"]["code"], "LIMIT_EXCEEDED", "{err}");
    let resp = http()
        .post(server.url("/topics"))
        .json(&json!({"name": "one-too-many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "LIMIT_EXCEEDED", "{body}");

    // Existing topics keep working, for it and for newcomers.
    let ack = hostile.publish("mt-7", json!("still works")).await;
    assert_eq!(ack["seq"], 1);
    let mut newcomer = server.ws().await;
    newcomer.subscribe("mt-7").await;
    newcomer.subscribe(HEALTHY).await;
    drop(newcomer);
    drop(hostile);

    // Auto-created topics outlive the connection, still within the cap.
    let health = get_json(&server.url("/health")).await;
    assert_eq!(health["topics"], MAX_TOPICS, "{health}");
    canary.finish("max topics").await;
}

// ---------------------------------------------------------------------------------------------
// Connection storms and the connection cap
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_dropped_without_a_close_frame_leave_nothing_behind() {
    const CONNECTIONS: usize = 2_000;
    const BATCH: usize = 200;
    let server = TestServer::start().await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await;
    let url = server.ws_url("/ws");

    let started = Instant::now();
    for batch in 0..CONNECTIONS / BATCH {
        let conns = futures_util::future::join_all((0..BATCH).map(|i| {
            let url = url.clone();
            async move {
                let mut ws = WsClient::connect(&url).await;
                // Every fourth one holds a subscription when it vanishes.
                if i % 4 == 0 {
                    ws.subscribe("churn").await;
                }
                ws
            }
        }))
        .await;
        for (i, ws) in conns.into_iter().enumerate() {
            let MaybeTlsStream::Plain(tcp) = ws.inner.get_ref() else {
                unreachable!("plain TCP");
            };
            // A third vanish with a reset, the rest with a bare FIN; none sends a close frame.
            if (batch * BATCH + i) % 3 == 0 {
                tcp.set_zero_linger().unwrap();
            }
            drop(ws);
        }
    }
    let churned = started.elapsed();

    let (health, took) = wait_for(
        &server,
        "/health",
        Duration::from_secs(10),
        "connections and subscriptions back to baseline",
        |h| h["connections"] == baseline && h["subscribers"] == 1,
    )
    .await;
    eprintln!("{CONNECTIONS} connections opened and dropped in {churned:?}; baseline {took:?} later: {health}");
    let churn = get_json(&server.url("/topics/churn")).await;
    assert_eq!(churn["subscribers"], 0, "{churn}");

    canary.finish("connection storm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_upgrades_with_503_until_one_closes() {
    const MAX: usize = 5;
    let server = TestServer::start_with(|c| c.max_connections = MAX).await;
    let canary = Canary::start(&server).await;
    let baseline = baseline_connections(&server).await as usize;

    let mut open = Vec::new();
    for _ in baseline..MAX {
        open.push(server.ws().await);
    }
    wait_for_connections(&server, MAX as u64, "at the connection cap").await;

    async fn refused(server: &TestServer) {
        match WsClient::try_connect(&server.ws_url("/ws")).await {
            Ok(_) => panic!("upgrade beyond MAX_CONNECTIONS accepted"),
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 503);
                let body: Value =
                    serde_json::from_slice(resp.body().as_deref().expect("a body")).unwrap();
                assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
            }
            Err(e) => panic!("expected HTTP 503, got {e}"),
        }
    }
    // The 6th, and many more: all refused before upgrading, none counted.
    for _ in 0..20 {
        refused(&server).await;
    }
    let health = get_json(&server.url("/health")).await;
    assert_eq!(health["connections"], MAX, "{health}");

    // One closes properly: a newcomer gets its slot, and the cap holds again.
    let mut leaving = open.pop().unwrap();
    leaving.inner.close(None).await.unwrap();
    wait_for_connections(&server, (MAX - 1) as u64, "closed connection released").await;
    let mut newcomer = server.ws().await;
    let pong = newcomer
        .request(json!({"type": "ping", "request_id": "in"}))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
    wait_for_connections(&server, MAX as u64, "newcomer counted").await;
    refused(&server).await;

    // One vanishes without a close frame: its slot is released too.
    drop(open.pop().unwrap());
    wait_for_connections(&server, (MAX - 1) as u64, "vanished connection released").await;
    let mut another = server.ws().await;
    let pong = another
        .request(json!({"type": "ping", "request_id": "in2"}))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");

    canary.finish("max connections").await;
}
