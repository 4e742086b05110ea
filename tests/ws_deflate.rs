//! permessage-deflate (RFC 7692, PROTOCOL.md §1 Compression) over real sockets: the handshake,
//! events compressed once and shared (live and replayed), a compressing and a plain client on one
//! topic, compressed client frames (whole, fragmented, pings between), the inflate bomb, corrupt
//! data, `COMPRESSION=off`; and Python `websockets`, which offers deflate by default.

mod common;

use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::ws::client_frame;
use common::TestServer;

const OFFER: &str = "permessage-deflate; client_max_window_bits";
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// One frame from the server: first byte (FIN, RSV1, opcode) and payload as sent.
#[derive(Debug, Clone)]
struct Received {
    b0: u8,
    payload: Vec<u8>,
}

impl Received {
    fn rsv1(&self) -> bool {
        self.b0 & 0x40 != 0
    }
    fn opcode(&self) -> u8 {
        self.b0 & 0x0F
    }
    /// The message text, inflated when compressed.
    fn text(&self) -> String {
        let bytes = if self.rsv1() {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        };
        String::from_utf8(bytes).expect("UTF-8")
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.text()).expect("JSON")
    }
}

/// A WebSocket client written by hand, to see RSV1 and send compressed frames.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server's `Sec-WebSocket-Extensions` answer.
    extensions: Option<String>,
}

impl Raw {
    async fn connect(server: &TestServer, offer: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let ext = offer.map_or(String::new(), |o| {
            format!("Sec-WebSocket-Extensions: {o}\r\n")
        });
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n",
            server.addr
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_string())
        });
        buf.drain(..end);
        Self {
            stream,
            buf,
            extensions,
        }
    }

    /// Sends one masked frame with first byte `b0` (FIN, RSV1, opcode).
    async fn frame(&mut self, b0: u8, payload: &[u8]) {
        let frame = client_frame(b0 & 0x80 != 0, b0 & 0x7F, payload);
        self.stream.write_all(&frame).await.unwrap();
    }

    async fn send_json(&mut self, v: Value) {
        self.frame(0x81, v.to_string().as_bytes()).await;
    }

    /// The next frame, or `None` once the server closed the connection.
    async fn recv(&mut self) -> Option<Received> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if self.buf.len() >= 2 {
                    let (b0, b1) = (self.buf[0], self.buf[1]);
                    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
                    let (at, len) = match b1 & 0x7F {
                        126 if self.buf.len() >= 4 => (
                            4,
                            usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        ),
                        127 if self.buf.len() >= 10 => (
                            10,
                            u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        ),
                        126 | 127 => (usize::MAX, 0),
                        n => (2, usize::from(n)),
                    };
                    if at != usize::MAX && self.buf.len() >= at + len {
                        let payload = self.buf[at..at + len].to_vec();
                        self.buf.drain(..at + len);
                        return Some(Received { b0, payload });
                    }
                }
                let mut chunk = [0u8; 65536];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("a frame within 10 s")
    }

    /// The next text frame that is not a heartbeat.
    async fn recv_text(&mut self) -> Received {
        loop {
            let f = self.recv().await.expect("connection open");
            if f.opcode() == 1 && !f.text().contains("\"heartbeat\"") {
                return f;
            }
        }
    }

    /// The close frame's code, skipping anything before it.
    async fn close_code(&mut self) -> Option<u16> {
        while let Some(f) = self.recv().await {
            if f.opcode() == 8 {
                return Some(u16::from_be_bytes([f.payload[0], f.payload[1]]));
            }
        }
        None
    }
}

/// Raw deflate of `data`, sync-flushed, the tail removed (RFC 7692 §7.2.1), made here with
/// flate2 directly so the test does not use herald's compressor.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(8 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

/// A JSON payload of realistic text, `n` items long.
fn payload(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let symbol = ["AAPL", "MSFT", "GOOG"][i % 3];
            json!({"id": i, "symbol": symbol, "price": 100.0 + i as f64 / 4.0,
                   "note": format!("order {i} filled at the market open after a short auction")})
        })
        .collect();
    json!({ "items": items })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_compressed_once_for_compressing_clients_and_plain_for_others() {
    let server = TestServer::start().await;
    let mut a = Raw::connect(&server, Some(OFFER)).await;
    let mut b = Raw::connect(&server, Some("permessage-deflate")).await;
    let mut plain = Raw::connect(&server, None).await;
    assert_eq!(a.extensions.as_deref(), Some(ANSWER));
    assert_eq!(b.extensions.as_deref(), Some(ANSWER));
    assert_eq!(plain.extensions, None);
    for c in [&mut a, &mut b, &mut plain] {
        c.send_json(json!({"type": "subscribe", "topic": "news", "request_id": "s"}))
            .await;
        let ack = c.recv_text().await;
        assert!(!ack.rsv1(), "replies stay plain");
        assert_eq!(ack.json()["type"], "ack");
    }
    let big = payload(40);
    let small = json!({"n": 1});
    let mut publisher = Raw::connect(&server, None).await;
    for p in [&big, &small] {
        publisher
            .send_json(json!({"type": "publish", "topic": "news", "message": {"payload": p}}))
            .await;
        assert_eq!(publisher.recv_text().await.json()["type"], "ack");
    }
    let (a1, b1, p1) = (
        a.recv_text().await,
        b.recv_text().await,
        plain.recv_text().await,
    );
    assert!(a1.rsv1() && b1.rsv1(), "a large event goes out compressed");
    assert!(
        !p1.rsv1(),
        "never compressed for a client that did not offer"
    );
    assert_eq!(
        a1.payload, b1.payload,
        "the same compressed bytes for every subscriber"
    );
    assert_eq!(a1.text(), p1.text(), "inflates to exactly the plain frame");
    assert_eq!(a1.json()["message"]["payload"], big);
    assert!(
        a1.payload.len() * 3 < p1.payload.len(),
        "{} compressed vs {} plain",
        a1.payload.len(),
        p1.payload.len()
    );
    let (a2, p2) = (a.recv_text().await, plain.recv_text().await);
    assert!(!a2.rsv1(), "under COMPRESS_MIN_BYTES: plain");
    assert_eq!(a2.payload, p2.payload);

    // Replay: the ack plain, the stored events in the form this client takes, the same bytes.
    let mut late = Raw::connect(&server, Some(OFFER)).await;
    late.send_json(json!({"type": "subscribe", "topic": "news", "last_n": 2}))
        .await;
    assert!(!late.recv_text().await.rsv1());
    let r1 = late.recv_text().await;
    assert!(r1.rsv1());
    assert_eq!(r1.payload, a1.payload, "replay shares the compressed bytes");
    let r2 = late.recv_text().await;
    assert!(!r2.rsv1());
    assert_eq!(r2.json()["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_client_frames_whole_fragmented_and_with_pings_between() {
    let server = TestServer::start().await;
    let mut c = Raw::connect(&server, Some(OFFER)).await;
    let mut plain = Raw::connect(&server, None).await;
    plain
        .send_json(json!({"type": "subscribe", "topic": "t"}))
        .await;
    plain.recv_text().await;
    // Whole.
    let big = payload(30);
    let whole =
        json!({"type": "publish", "topic": "t", "message": {"payload": big}, "request_id": "w"});
    c.frame(0xC1, &deflate(whole.to_string().as_bytes())).await;
    let ack = c.recv_text().await.json();
    assert_eq!(
        (ack["type"].as_str(), ack["request_id"].as_str()),
        (Some("ack"), Some("w")),
        "{ack}"
    );
    assert_eq!(plain.recv_text().await.json()["message"]["payload"], big);
    // Fragmented in three, a ping between each, the last fragment empty.
    let frag = json!({"type": "publish", "topic": "t", "message": {"payload": payload(20)}, "request_id": "f"});
    let packed = deflate(frag.to_string().as_bytes());
    let (x, y) = packed.split_at(packed.len() / 2);
    c.frame(0x41, x).await;
    c.frame(0x89, b"one").await;
    c.frame(0x00, y).await;
    c.frame(0x89, b"two").await;
    c.frame(0x80, b"").await;
    let mut pongs = Vec::new();
    let ack = loop {
        let f = c.recv().await.expect("open");
        match f.opcode() {
            0xA => pongs.push(f.payload),
            1 => break f.json(),
            _ => {}
        }
    };
    assert_eq!(
        pongs,
        vec![b"one".to_vec(), b"two".to_vec()],
        "pings answered in place"
    );
    assert_eq!(ack["request_id"], "f", "{ack}");
    assert_eq!(
        plain.recv_text().await.json()["message"]["payload"],
        payload(20)
    );
    // A plain frame on the same connection still works.
    c.send_json(json!({"type": "ping", "request_id": "p"}))
        .await;
    assert_eq!(c.recv_text().await.json()["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inflate_bomb_is_closed_with_1009() {
    let server = TestServer::start().await;
    let mut c = Raw::connect(&server, Some(OFFER)).await;
    // 48 MiB of one byte: a frame of ≈ 48 KiB that inflates to far past MAX_MESSAGE_BYTES (1 MiB).
    let mut c2 = Compress::new(Compression::best(), false);
    let zeros = vec![b' '; 48 << 20];
    let mut bomb = Vec::with_capacity(1 << 20);
    c2.compress_vec(&zeros, &mut bomb, FlushCompress::Sync)
        .unwrap();
    bomb.truncate(bomb.len() - 4);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    c.frame(0xC1, &bomb).await;
    assert_eq!(c.close_code().await, Some(1009));
    // The server is fine.
    let mut other = Raw::connect(&server, Some(OFFER)).await;
    other.send_json(json!({"type": "ping"})).await;
    assert_eq!(other.recv_text().await.json()["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_is_closed_with_1007_and_rsv1_without_deflate_fails() {
    let server = TestServer::start().await;
    let mut c = Raw::connect(&server, Some(OFFER)).await;
    c.frame(0xC1, &[0xFF, 0xFF, 0xFF, 0xFF]).await;
    assert_eq!(c.close_code().await, Some(1007));
    // RSV1 on a connection that did not negotiate it: a protocol error, the connection fails.
    let mut plain = Raw::connect(&server, None).await;
    plain.frame(0xC1, &deflate(b"{\"type\":\"ping\"}")).await;
    assert_eq!(plain.close_code().await, None, "dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_off_declines_every_offer() {
    let server = TestServer::start_with(|c| c.compression = herald::config::Compression::Off).await;
    let mut c = Raw::connect(&server, Some(OFFER)).await;
    assert_eq!(c.extensions, None);
    c.send_json(json!({"type": "subscribe", "topic": "t"}))
        .await;
    c.recv_text().await;
    let mut p = Raw::connect(&server, None).await;
    p.send_json(json!({"type": "publish", "topic": "t", "message": {"payload": payload(40)}}))
        .await;
    let ev = c.recv_text().await;
    assert!(!ev.rsv1());
    assert_eq!(ev.json()["message"]["payload"], payload(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_the_server_cannot_meet_is_declined_not_refused() {
    let server = TestServer::start().await;
    let c = Raw::connect(
        &server,
        Some("permessage-deflate; server_max_window_bits=10"),
    )
    .await;
    assert_eq!(c.extensions, None);
    let c = Raw::connect(
        &server,
        Some("permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=15"),
    )
    .await;
    assert_eq!(
        c.extensions.as_deref(),
        Some(&*format!("{ANSWER}; server_max_window_bits=15"))
    );
}

/// The Python `websockets` client (tests/python/deflate_client.py), which offers
/// permessage-deflate by default and compresses what it sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_receives_events_and_replays_compressed() {
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/tests/python/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run `source loadtest/lib.sh && pinned_venv tests/python/.venv \
         tests/python/requirements.txt` (test.sh does)"
    );
    let server = TestServer::start().await;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(format!("{root}/tests/python/deflate_client.py"))
            .arg(server.ws_url("/ws"))
            .output(),
    )
    .await
    .expect("the Python client finishes within 60 s")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}
