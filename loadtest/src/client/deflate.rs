//! herald's `/ws` read frame by frame by hand, for `--deflate on|off`: the bytes on the wire are
//! counted ([`WIRE_BYTES`]), and with `on` the client offers permessage-deflate (RFC 7692, with
//! `client_no_context_takeover` as herald answers) and inflates every compressed event, each on
//! its own, before the same event scan the tungstenite client uses.

use std::sync::atomic::{AtomicU64, Ordering};

use flate2::{Decompress, FlushDecompress};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::herald::{parse_event, ACK_PREFIX, ERROR_PREFIX};
use super::{ClientError, Closed, Inbound, Recv};

/// Bytes read from every `--deflate` subscriber socket of this process, handshakes included.
pub static WIRE_BYTES: AtomicU64 = AtomicU64::new(0);

/// The tail RFC 7692 §7.2.2 appends before inflating a message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// One server frame parsed from the read buffer.
struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    /// Where the payload lies in the buffer, and the whole frame's length.
    payload: std::ops::Range<usize>,
    len: usize,
}

/// A complete frame at the start of `data`, if there is one.
fn frame(data: &[u8]) -> Option<Frame> {
    let (&b0, rest) = data.split_first()?;
    let b1 = *rest.first()?;
    let (at, len) = match b1 & 0x7F {
        126 => (
            4,
            usize::from(u16::from_be_bytes(data.get(2..4)?.try_into().ok()?)),
        ),
        127 => (
            10,
            usize::try_from(u64::from_be_bytes(data.get(2..10)?.try_into().ok()?)).ok()?,
        ),
        n => (2, usize::from(n)),
    };
    (data.len() >= at + len).then_some(Frame {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0F,
        payload: at..at + len,
        len: at + len,
    })
}

/// A masked client frame (key zero: the server only checks that one is there).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    out
}

/// A subscribed `/ws` connection read by hand.
pub struct Subscriber {
    stream: TcpStream,
    inbound: Inbound,
    /// Present when deflate was negotiated; reset for every message.
    inflate: Option<Decompress>,
    /// The message being assembled from fragments, and where inflated messages go.
    message: Vec<u8>,
    inflated: Vec<u8>,
    compressed: bool,
}

impl Subscriber {
    /// Upgrades (offering deflate when `offer`), subscribes to every topic, waits for the acks.
    pub async fn connect(
        mut stream: TcpStream,
        host: &str,
        path: &str,
        topics: &[String],
        offer: bool,
    ) -> Result<Self, ClientError> {
        let ext = if offer {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut inbound = Inbound::new();
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(inbound.data(), b"\r\n\r\n") {
                break i + 4;
            }
            let n = inbound.fill(&mut stream).await?;
            WIRE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
            if n == 0 {
                return Err(ClientError::Closed);
            }
        };
        let head = String::from_utf8_lossy(&inbound.data()[..head_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") {
            return Err(ClientError::Protocol(format!("upgrade refused: {head}")));
        }
        let negotiated = head.contains("sec-websocket-extensions: permessage-deflate");
        if offer && !negotiated {
            return Err(ClientError::Protocol(
                "the server declined permessage-deflate".into(),
            ));
        }
        inbound.consume(head_end);
        for topic in topics {
            let frame = format!(r#"{{"type":"subscribe","topic":"{topic}"}}"#);
            stream
                .write_all(&client_frame(0x1, frame.as_bytes()))
                .await?;
        }
        let mut this = Self {
            stream,
            inbound,
            inflate: negotiated.then(|| Decompress::new(false)),
            message: Vec::new(),
            inflated: Vec::new(),
            compressed: false,
        };
        let mut acked = 0;
        while acked < topics.len() {
            let mut error = None;
            let mut on_reply = |text: &[u8]| {
                if text.starts_with(ACK_PREFIX) {
                    acked += 1;
                } else if text.starts_with(ERROR_PREFIX) {
                    error = Some(String::from_utf8_lossy(text).to_string());
                }
            };
            if let Some(closed) = this.read(&mut on_reply).await {
                return Err(ClientError::Protocol(format!("{closed:?}")));
            }
            if let Some(e) = error {
                return Err(ClientError::Server(e));
            }
        }
        Ok(this)
    }

    /// Waits for data, then hands every complete delivery to `on(topic, payload)`.
    pub async fn recv<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> Recv {
        let mut slow = false;
        let mut on_message = |text: &[u8]| {
            if let Some((topic, payload)) = parse_event(text) {
                on(topic, payload);
            } else if text.starts_with(ERROR_PREFIX)
                && memchr::memmem::find(text, b"SLOW_CONSUMER").is_some()
            {
                slow = true;
            }
        };
        let closed = self.read(&mut on_message).await;
        if slow {
            return Recv::Closed(Closed::Policy("SLOW_CONSUMER".into()));
        }
        closed.map_or(Recv::Data, Recv::Closed)
    }

    /// Reads once, then hands every complete data message to `on`; answers pings. `Some` when
    /// the connection ended.
    async fn read(&mut self, on: &mut impl FnMut(&[u8])) -> Option<Closed> {
        if frame(self.inbound.data()).is_none() {
            match self.inbound.fill(&mut self.stream).await {
                Ok(0) => return Some(Closed::Other("connection closed".into())),
                Ok(n) => {
                    WIRE_BYTES.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => return Some(Closed::Other(e.to_string())),
            }
        }
        while let Some(f) = frame(self.inbound.data()) {
            let payload = &self.inbound.data()[f.payload.clone()];
            match f.opcode {
                0x8 => {
                    let code = payload
                        .get(..2)
                        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                    return Some(if code == 1008 {
                        Closed::Policy(format!("close 1008 {reason}"))
                    } else {
                        Closed::Other(format!("close {code} {reason}"))
                    });
                }
                0x9 => {
                    let pong = client_frame(0xA, payload);
                    if let Err(e) = self.stream.write_all(&pong).await {
                        return Some(Closed::Other(e.to_string()));
                    }
                }
                0x0..=0x2 => {
                    if f.opcode != 0 {
                        self.compressed = f.rsv1;
                        self.message.clear();
                    }
                    if f.fin && self.message.is_empty() && !self.compressed {
                        on(payload);
                    } else {
                        self.message.extend_from_slice(payload);
                        if f.fin {
                            if let Err(e) = self.finish(on) {
                                return Some(Closed::Other(e));
                            }
                        }
                    }
                }
                _ => {}
            }
            self.inbound.consume(f.len);
        }
        None
    }

    /// A whole message was assembled in `message`: inflate it if compressed, hand it over.
    fn finish(&mut self, on: &mut impl FnMut(&[u8])) -> Result<(), String> {
        if !self.compressed {
            on(&self.message);
            return Ok(());
        }
        let inflate = self
            .inflate
            .as_mut()
            .ok_or("a compressed frame without permessage-deflate")?;
        inflate.reset(false);
        self.message.extend_from_slice(&TAIL);
        self.inflated.clear();
        loop {
            self.inflated.reserve(self.message.len() * 4 + 1024);
            let consumed = inflate.total_in() as usize;
            inflate
                .decompress_vec(
                    &self.message[consumed..],
                    &mut self.inflated,
                    FlushDecompress::Sync,
                )
                .map_err(|e| e.to_string())?;
            if inflate.total_in() as usize == self.message.len()
                && self.inflated.len() < self.inflated.capacity()
            {
                break;
            }
        }
        on(&self.inflated);
        Ok(())
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}
