//! WebSocket clients for tests: `WsClient` (raw frames plus JSON helpers), the handshakes a
//! browser or a keyed client makes, and the frame-reading helpers the seed replays share.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::RECV_TIMEOUT;

/// A raw WebSocket client with JSON helpers.
pub struct WsClient {
    /// The underlying stream, for tests that need raw frames.
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects, panicking on failure.
    pub async fn connect(url: &str) -> Self {
        let (inner, _resp) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Self { inner }
    }

    /// Connects and returns the error (for upgrade-refused tests).
    pub async fn try_connect(url: &str) -> Result<Self, WsError> {
        let (inner, _resp) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { inner })
    }

    /// Connects with extra handshake headers and returns the error (for refused upgrades).
    pub async fn try_connect_with(
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Self, WsError> {
        handshake(url, headers).await.map(|(ws, _resp)| ws)
    }

    /// Sends one JSON value as a text frame.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.inner
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// Next message of any kind, or `None` when the stream ends; panics after `RECV_TIMEOUT`.
    pub async fn recv_message(&mut self) -> Option<Message> {
        match tokio::time::timeout(RECV_TIMEOUT, self.inner.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no message within {RECV_TIMEOUT:?}"),
        }
    }

    /// Next text frame parsed as JSON (pings/pongs skipped); panics on close or timeout.
    pub async fn recv_json(&mut self) -> Value {
        loop {
            match self.recv_message().await {
                Some(Message::Text(t)) => {
                    return serde_json::from_str(&t).expect("server sent JSON")
                }
                Some(Message::Binary(b)) => return serde_json::from_slice(&b).expect("JSON"),
                Some(Message::Ping(_)) | Some(Message::Pong(_)) | Some(Message::Frame(_)) => {}
                Some(Message::Close(c)) => panic!("unexpected close: {c:?}"),
                None => panic!("connection ended while waiting for a frame"),
            }
        }
    }

    /// Like `recv_json` but skips heartbeat `info` frames.
    pub async fn recv_json_no_heartbeat(&mut self) -> Value {
        loop {
            let v = self.recv_json().await;
            if !(v["type"] == "info" && v["msg"] == "ping") {
                return v;
            }
        }
    }

    /// Sends a frame and returns the next non-event, non-heartbeat reply.
    pub async fn request(&mut self, value: Value) -> Value {
        self.send_json(value).await;
        loop {
            let v = self.recv_json_no_heartbeat().await;
            if v["type"] != "event" {
                return v;
            }
        }
    }

    /// Subscribes to `topic` and returns the ack (asserted to be an ack).
    pub async fn subscribe(&mut self, topic: &str) -> Value {
        let ack = self
            .request(json!({"type": "subscribe", "topic": topic}))
            .await;
        assert_eq!(ack["type"], "ack", "subscribe to {topic} not acked: {ack}");
        ack
    }

    /// Publishes `payload` to `topic` and returns the ack (asserted to be an ack).
    pub async fn publish(&mut self, topic: &str, payload: Value) -> Value {
        let ack = self
            .request(json!({"type": "publish", "topic": topic,
                "message": {"payload": payload}}))
            .await;
        assert_eq!(ack["type"], "ack", "publish to {topic} not acked: {ack}");
        ack
    }

    /// Waits for the close frame (skipping anything before it) and returns it.
    pub async fn recv_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.recv_message().await {
                Some(Message::Close(c)) => return c,
                None => return None,
                Some(_) => {}
            }
        }
    }

    /// Asserts no text frame other than heartbeats arrives within `dur`.
    pub async fn expect_silence(&mut self, dur: Duration) {
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if !(v["type"] == "info" && v["msg"] == "ping") {
                        panic!("expected silence, got {v}");
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("socket error while expecting silence: {e}"),
                Ok(None) => panic!("connection closed while expecting silence"),
            }
        }
    }
}

/// The client handshake with `headers` added; returns the server's upgrade response too.
async fn handshake(
    url: &str,
    headers: &[(&'static str, &str)],
) -> Result<(WsClient, Response), WsError> {
    let mut req = url.into_client_request().unwrap();
    for (name, value) in headers {
        req.headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    let (inner, resp) = tokio_tungstenite::connect_async(req).await?;
    Ok((WsClient { inner }, resp))
}

/// `new WebSocket(url)` in a browser: the handshake carries the page's `Origin` and a browser
/// `User-Agent`. A browser also offers `permessage-deflate`, which herald accepts; tungstenite
/// cannot speak it, so this client does not offer it (a real browser with deflate is
/// e2e/deflate.test.mjs, hand-written compressed frames tests/ws_deflate.rs).
pub async fn browser_ws(url: &str) -> WsClient {
    let (ws, resp) = handshake(
        url,
        &[
            ("origin", "http://localhost:3000"),
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"),
        ],
    )
    .await
    .expect("browser WebSocket connects");
    // Nothing offered, so nothing may be accepted.
    assert!(
        resp.headers().get("sec-websocket-extensions").is_none(),
        "server answered an extension nobody offered"
    );
    ws
}

/// The next frame a browser's `onmessage` would see: a text frame holding JSON (so that
/// `JSON.parse(event.data)` works). WebSocket pings/pongs and heartbeat info frames are skipped.
pub async fn next_text_json(ws: &mut WsClient) -> Value {
    loop {
        match ws.recv_message().await {
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).expect("text frame is JSON");
                if !(v["type"] == "info" && v["msg"] == "ping") {
                    return v;
                }
            }
            Some(Message::Ping(_)) | Some(Message::Pong(_)) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends `frame` as text, exactly as written, and returns the next text frame.
pub async fn request_text(ws: &mut WsClient, frame: &str) -> Value {
    ws.send_text(frame).await;
    next_text_json(ws).await
}

/// Round-trips a ping and asserts nothing else arrived before the `pong`; returns the pong.
/// Frames of one connection are answered in order, so this proves nothing was queued before it.
pub async fn assert_nothing_queued(ws: &mut WsClient) -> Value {
    assert_nothing_queued_before(ws, r#"{"type":"ping","request_id":"barrier"}"#).await
}

/// [`assert_nothing_queued`] with the ping written as `ping` (e.g. seed c's `action` form),
/// which must carry `"request_id":"barrier"`.
pub async fn assert_nothing_queued_before(ws: &mut WsClient, ping: &str) -> Value {
    let v = request_text(ws, ping).await;
    assert_eq!(v["type"], "pong", "expected only the pong, got {v}");
    assert_eq!(v["request_id"], "barrier");
    v
}

/// The masking key of hand-written client frames.
const MASK: [u8; 4] = [0x3a, 0x91, 0x5c, 0xe7];

/// One client frame, masked as RFC 6455 §5.3 requires; `opcode` may carry RSV bits (0x40 | 1: a
/// compressed text frame).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame_header(fin, opcode, payload.len() as u64);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// A client frame header (mask key included) announcing `len` payload bytes.
pub fn client_frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(14);
    header.push(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        header.push(0x80 | len as u8);
    } else if len <= 0xffff {
        header.push(0x80 | 126);
        header.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        header.push(0x80 | 127);
        header.extend_from_slice(&len.to_be_bytes());
    }
    header.extend_from_slice(&MASK);
    header
}
