//! Server-to-client WebSocket frames without a copy: a frame is a small header plus the payload
//! buffer that every subscriber shares, and a connection's writer sends a whole batch of them with
//! vectored writes (`writev`), so the payload is never copied before the kernel copies it.
//!
//! tungstenite still reads the connection and answers the peer's pings and closes; what it writes
//! goes into a [`ControlOut`] (through [`ReadAhead`]) that the writer sends between batches, so every
//! byte on the wire is written by one task and frames never interleave.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;

mod control;
mod read_ahead;

pub(super) use control::{has_close, ControlOut};
pub(super) use read_ahead::{inflate_error_of, ReadAhead, TUNGSTENITE_READ_BUFFER};

use crate::broker::{Outgoing, Replayed, StoredEvent};
use crate::protocol::Frame;

/// Opcode of a text frame (RFC 6455 §5.2).
const OP_TEXT: u8 = 0x1;
/// A text frame with RSV1 set: its payload is compressed (RFC 7692 §6). The bit sits beside the
/// opcode in the header's first byte, so it rides in the opcode.
const OP_TEXT_DEFLATED: u8 = 0x40 | OP_TEXT;
/// Opcode of a close frame.
pub(super) const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
const OP_PING: u8 = 0x9;

/// Slices per vectored write: two per frame. Linux accepts up to 1024 (`IOV_MAX`); 128 already
/// moves 64 frames per system call, and the array lives on the stack only while a write is polled.
const MAX_IOV: usize = 128;

/// Payloads up to this size are copied next to their header into the thread's scratch buffer
/// when written; larger ones go to the kernel straight from the shared buffer. Measured with the
/// fan-out flamegraph: with a slice per header and per 128-byte payload, the kernel's per-slice
/// copy setup (`_copy_from_iter`) cost more than the copy it saved.
const COPY_MAX: usize = 1024;

/// Bytes copied per write into the worker thread's scratch buffer (see [`Wire`]).
const SCRATCH_SIZE: usize = 64 * 1024;

/// Bytes copied for a write after the socket last said "not now": a writer is polled on every
/// outbox wake-up, and a stalled client's writer must not copy a full scratch buffer each time
/// only to have it refused.
const PROBE_SIZE: usize = 2 * 1024;

/// Opcode of a frame that is already complete frames (tungstenite's), so it gets no header.
const OP_RAW: u8 = 0xFF;

thread_local! {
    /// Where a writer copies its small frames just before the system call. One per worker thread
    /// instead of one per connection: what a write took is done with by the time the next task
    /// runs, so a burst leaves no buffers behind in every connection it touched.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A frame's payload: a shared event, or any other buffer.
enum Body {
    /// An event, still shared with its topic's ring.
    Event(Arc<StoredEvent>),
    /// An event's compressed form (already made), shared with the ring like the event.
    Deflated(Arc<StoredEvent>),
    /// A reply, info or control frame's payload, or raw frames written by tungstenite.
    Bytes(Bytes),
}

impl Body {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Event(event) => event.frame.as_bytes(),
            Self::Deflated(event) => event.deflated().unwrap_or_default(),
            Self::Bytes(bytes) => bytes,
        }
    }
}

/// One frame on the wire: its opcode (the header is made when it is written) and payload.
struct WireFrame {
    opcode: u8,
    payload: Body,
}

impl WireFrame {
    /// The frame's header (none for tungstenite's ready-made frames).
    fn head(&self) -> ([u8; 10], u8) {
        if self.opcode == OP_RAW {
            ([0; 10], 0)
        } else {
            header(self.opcode, self.payload.as_bytes().len())
        }
    }

    fn len(&self) -> usize {
        usize::from(self.head().1) + self.payload.as_bytes().len()
    }
}

/// The header of an unmasked, final server frame carrying `len` payload bytes.
fn header(opcode: u8, len: usize) -> ([u8; 10], u8) {
    let mut head = [0u8; 10];
    head[0] = 0x80 | opcode;
    let head_len = if len < 126 {
        head[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, head_len)
}

/// Part of one vectored write: bytes in the scratch buffer, or a large payload by reference.
#[derive(Clone, Copy)]
enum Slice<'a> {
    Scratch(usize, usize),
    Shared(&'a [u8]),
}

/// Appends `bytes` to the scratch buffer and to the last part when that part ends there; false
/// (and nothing copied) when it does not fit this write.
fn copy(
    scratch: &mut Vec<u8>,
    limit: usize,
    parts: &mut [Slice<'_>; MAX_IOV],
    n: &mut usize,
    bytes: &[u8],
) -> bool {
    let from = scratch.len();
    if from + bytes.len() > limit && *n > 0 {
        return false;
    }
    match parts[..*n].last_mut() {
        Some(Slice::Scratch(_, to)) if *to == from => *to = from + bytes.len(),
        _ if *n == MAX_IOV => return false,
        _ => {
            parts[*n] = Slice::Scratch(from, from + bytes.len());
            *n += 1;
        }
    }
    scratch.extend_from_slice(bytes);
    true
}

/// Frames queued for the socket and how far writing them got. The progress lives here, not in
/// the write future, so a write interrupted by shutdown or overflow resumes mid-frame and the
/// closing frames that follow land on a frame boundary.
///
/// Queued frames are only references to their payloads (an event shared with every subscriber
/// and the ring, or a reply's buffer). The copying that makes small frames cheap for the kernel
/// happens at the moment of the write, into a buffer per worker thread; what the socket did not
/// take is copied again next time. A connection so holds no frame bytes of its own however
/// large a burst it was sent, and the allocator has no per-connection high-water mark to keep
/// (the soak's 1 s stall left one of ≈ 2 MiB in RSS when each connection had its own buffer).
#[derive(Default)]
pub(super) struct Wire {
    /// Events of at least this many bytes go out compressed; `usize::MAX` on a connection that
    /// did not negotiate permessage-deflate (or with `COMPRESSION=off`).
    compress_from: usize,
    frames: Vec<WireFrame>,
    /// The first frame not completely written.
    first: usize,
    /// Bytes of `frames[first]` already written.
    offset: usize,
    /// Bytes queued and not yet written.
    queued: usize,
    /// Whether the last write found the socket full.
    blocked: bool,
}

impl Wire {
    /// Whether everything queued was written.
    pub(super) fn is_empty(&self) -> bool {
        self.first == self.frames.len()
    }

    /// Frees the buffers a busy spell left behind; call while idle.
    pub(super) fn release(&mut self) {
        if self.is_empty() {
            self.frames = Vec::new();
        }
    }

    /// Bytes queued and not yet written.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    fn push(&mut self, opcode: u8, payload: Body) {
        let frame = WireFrame { opcode, payload };
        self.queued += frame.len();
        self.frames.push(frame);
    }

    /// A wire for a connection that compresses events of at least `compress_from` bytes
    /// (`None`: a connection without permessage-deflate).
    pub(super) fn new(compress_from: Option<usize>) -> Self {
        Self {
            compress_from: compress_from.unwrap_or(usize::MAX),
            ..Self::default()
        }
    }

    /// Queues the text frames of one outbox item.
    pub(super) fn item(&mut self, item: Outgoing) {
        match item {
            Outgoing::Event(event) => self.event(event),
            Outgoing::Replay(replayed) => {
                let Replayed { ack, events } = *replayed;
                if let Some(ack) = &ack {
                    self.text(ack);
                }
                for event in events {
                    self.event(event);
                }
            }
            other => {
                for frame in other.frames() {
                    self.text(frame);
                }
            }
        }
    }

    /// Queues an event, compressed when this connection compresses and it is large enough. The
    /// first connection to need it compresses it, for every other one and for replay.
    fn event(&mut self, event: Arc<StoredEvent>) {
        if event.frame.len() >= self.compress_from && event.deflated().is_some() {
            self.push(OP_TEXT_DEFLATED, Body::Deflated(event));
        } else {
            self.push(OP_TEXT, Body::Event(event));
        }
    }

    /// Queues one text frame.
    pub(super) fn text(&mut self, frame: &Frame) {
        let bytes: &Bytes = frame.as_bytes();
        self.push(OP_TEXT, Body::Bytes(bytes.clone()));
    }

    /// Queues an empty ping.
    pub(super) fn ping(&mut self) {
        self.push(OP_PING, Body::Bytes(Bytes::new()));
    }

    /// Queues a close frame with `code` and `reason` (at most 123 bytes, as RFC 6455 allows).
    pub(super) fn close(&mut self, code: u16, reason: &str) {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::with_capacity(2 + end);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        self.push(OP_CLOSE, Body::Bytes(payload.into()));
    }

    /// Queues complete frames tungstenite wrote (see [`ControlOut`]).
    pub(super) fn raw(&mut self, frames: Vec<u8>) {
        self.push(OP_RAW, Body::Bytes(frames.into()));
    }

    /// Writes everything queued. Cancel-safe: dropping the future keeps what is left for the next
    /// call.
    pub(super) async fn write_to<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> io::Result<()> {
        poll_fn(|cx| self.poll_write(io, cx)).await
    }

    fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            let written = SCRATCH.with_borrow_mut(|scratch| {
                let mut parts = [Slice::Scratch(0, 0); MAX_IOV];
                let limit = if self.blocked {
                    PROBE_SIZE
                } else {
                    SCRATCH_SIZE
                };
                let n = self.fill(scratch, limit, &mut parts);
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                for (slice, part) in slices.iter_mut().zip(&parts[..n]) {
                    *slice = IoSlice::new(match *part {
                        Slice::Scratch(from, to) => &scratch[from..to],
                        Slice::Shared(bytes) => bytes,
                    });
                }
                Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n])
            });
            self.blocked = written.is_pending();
            let written = ready!(written)?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
        // Done: drop the payload references now, and the list too once it is large, so an idle
        // connection holds no memory for the burst it once had.
        self.frames.clear();
        if self.frames.capacity() > 32 {
            self.frames = Vec::new();
        }
        self.first = 0;
        self.offset = 0;
        Poll::Ready(Ok(()))
    }

    /// Lays out the next unwritten bytes, in order, for one vectored write: headers and small
    /// payloads copied into `scratch` (cleared first, at most `limit` bytes), large
    /// payloads by reference. Returns how many of `parts` are used.
    fn fill<'a>(
        &'a self,
        scratch: &mut Vec<u8>,
        limit: usize,
        parts: &mut [Slice<'a>; MAX_IOV],
    ) -> usize {
        scratch.clear();
        let mut n = 0;
        let mut skip = self.offset;
        for frame in &self.frames[self.first..] {
            let (head, head_len) = frame.head();
            let head = &head[..usize::from(head_len)];
            if skip >= head.len() {
                skip -= head.len();
            } else {
                if !copy(scratch, limit, parts, &mut n, &head[skip..]) {
                    return n;
                }
                skip = 0;
            }
            let payload = frame.payload.as_bytes();
            if skip >= payload.len() {
                skip -= payload.len();
                continue;
            }
            let rest = &payload[skip..];
            skip = 0;
            if payload.len() <= COPY_MAX {
                if !copy(scratch, limit, parts, &mut n, rest) {
                    return n;
                }
            } else if n == MAX_IOV {
                return n;
            } else {
                parts[n] = Slice::Shared(rest);
                n += 1;
            }
        }
        n
    }

    /// Records that `n` more bytes were written.
    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let left = self.frames[self.first].len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.first += 1;
            self.offset = 0;
        }
        // Zero-length frames (none are queued today) would otherwise wait for the next write.
        while self.first < self.frames.len() && self.frames[self.first].len() == 0 {
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    /// tungstenite's own encoding of a server text frame with `payload`.
    fn reference_text(payload: &[u8]) -> Vec<u8> {
        let frame = WsFrame::message(
            payload.to_vec(),
            tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
            ),
            true,
        );
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    /// A writer that refuses its first `refuse` writes, then takes at most `chunk` bytes per
    /// call, to exercise full sockets and partial writes; records what each call was offered.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
        refuse: usize,
        offered: Vec<usize>,
    }

    impl Trickle {
        fn new(chunk: usize) -> Self {
            Self {
                out: Vec::new(),
                chunk,
                refuse: 0,
                offered: Vec::new(),
            }
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.offered.push(bufs.iter().map(|b| b.len()).sum());
            if self.refuse > 0 {
                self.refuse -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.chunk - n);
                self.out.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.chunk {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn headers_match_tungstenite_for_every_length_class() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = vec![b'a'; len];
            let (head, head_len) = header(OP_TEXT, len);
            let mut ours = head[..usize::from(head_len)].to_vec();
            ours.extend_from_slice(&payload);
            assert_eq!(ours, reference_text(&payload), "length {len}");
        }
    }

    #[test]
    fn close_frame_matches_tungstenite() {
        let mut wire = Wire::default();
        wire.close(1008, "slow consumer");
        let frame = &wire.frames[0];
        let (head, head_len) = frame.head();
        let mut ours = head[..usize::from(head_len)].to_vec();
        ours.extend_from_slice(frame.payload.as_bytes());
        let mut reference = Vec::new();
        WsFrame::close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: "slow consumer".into(),
        }))
        .format(&mut reference)
        .unwrap();
        assert_eq!(ours, reference);
        assert!(has_close(&ours));
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let mut wire = Wire::default();
        wire.close(1000, &"é".repeat(100));
        let frame = &wire.frames[0];
        let payload = frame.payload.as_bytes();
        assert_eq!(frame.head().1, 2, "a one-byte length");
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[tokio::test]
    async fn partial_writes_resume_mid_frame() {
        let mut wire = Wire::default();
        let frames: Vec<Frame> = (0..300)
            .map(|i| Frame::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 200))))
            .collect();
        let mut expected = Vec::new();
        for f in &frames {
            wire.text(f);
            expected.extend(reference_text(f.as_bytes()));
        }
        // Large frames go out zero-copy between the copied small ones.
        let big = Frame::from("y".repeat(70_000));
        wire.text(&big);
        expected.extend(reference_text(big.as_bytes()));
        wire.text(&frames[0]);
        expected.extend(reference_text(frames[0].as_bytes()));
        wire.ping();
        expected.extend([0x89, 0x00]);
        wire.raw(vec![0x8A, 0x01, b'p']);
        expected.extend([0x8A, 0x01, b'p']);
        let mut out = Trickle::new(777);
        assert_eq!(wire.queued(), expected.len());
        wire.write_to(&mut out).await.unwrap();
        assert_eq!(out.out, expected);
        assert!(wire.is_empty());
        assert_eq!(wire.queued(), 0);
    }

    #[tokio::test]
    async fn writes_past_the_scratch_buffer_and_the_slice_limit_keep_order() {
        // More small bytes than one scratch buffer holds, and more large frames than one
        // vectored write has slices for, interleaved.
        for chunk in [usize::MAX, 4096, 999] {
            let mut wire = Wire::default();
            let mut expected = Vec::new();
            for i in 0..2_000 {
                let frame = if i % 10 == 0 {
                    Frame::from(format!("{i}:{}", "L".repeat(COPY_MAX + i)))
                } else {
                    Frame::from(format!("{i}:{}", "s".repeat(i % 300)))
                };
                wire.text(&frame);
                expected.extend(reference_text(frame.as_bytes()));
            }
            let mut out = Trickle::new(chunk);
            wire.write_to(&mut out).await.unwrap();
            assert!(out.out == expected, "chunk {chunk}: bytes differ");
            assert!(wire.is_empty());
            assert_eq!(wire.frames.capacity(), 0, "a large batch's list is freed");
        }
    }

    #[tokio::test]
    async fn a_full_socket_is_offered_a_small_probe_not_the_whole_buffer() {
        let mut wire = Wire::default();
        let mut expected = Vec::new();
        for i in 0..500 {
            let frame = Frame::from(format!("{i}:{}", "p".repeat(200)));
            wire.text(&frame);
            expected.extend(reference_text(frame.as_bytes()));
        }
        let mut io = Trickle::new(usize::MAX);
        io.refuse = 3;
        wire.write_to(&mut io).await.unwrap();
        assert_eq!(io.out, expected);
        // The first attempt fills the scratch buffer; while refused, only a probe is copied;
        // once a write succeeds, whole buffers again.
        assert!(io.offered[0] > SCRATCH_SIZE / 2, "{:?}", io.offered);
        assert!(
            io.offered[1..3].iter().all(|&n| n <= PROBE_SIZE),
            "{:?}",
            io.offered
        );
        assert!(io.offered[3] <= PROBE_SIZE, "the successful probe itself");
        assert!(io.offered[4] > SCRATCH_SIZE / 2, "{:?}", io.offered);
    }

    #[test]
    fn close_is_found_among_frames() {
        let mut frames = reference_text(&[b'x'; 300]);
        assert!(!has_close(&frames));
        frames.extend([0x8A, 0x00]);
        assert!(!has_close(&frames));
        frames.extend([0x88, 0x02, 0x03, 0xE8]);
        assert!(has_close(&frames));
        assert!(!has_close(&[0x81]));
    }
}
