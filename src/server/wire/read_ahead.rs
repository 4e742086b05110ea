//! [`ReadAhead`]: what tungstenite runs on: the socket's read half, read ahead in large chunks,
//! and a write side that hands tungstenite's frames to the writer.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::control::ControlOut;
use crate::protocol::inflate::{InflateError, Inflater};

/// What tungstenite reads into per call, and so the buffer every connection keeps for its life
/// (tungstenite allocates it up front and never shrinks it). Larger frames grow it as needed.
/// Small because the socket is read by [`ReadAhead`]: a call here copies from memory, so a
/// 1 KiB frame taking eight calls instead of two costs nanoseconds, while 384 bytes more would
/// sit in every idle connection. A typical request (a subscribe) fits in one call.
pub(crate) const TUNGSTENITE_READ_BUFFER: usize = 128;

/// Smallest read from the socket per system call (`WS_READ_BUFFER_SIZE` is clamped to it).
const MIN_READ_AHEAD: usize = 512;
/// Largest read from the socket per system call (`WS_READ_BUFFER_SIZE` is clamped to it).
const MAX_READ_AHEAD: usize = 64 * 1024;

/// What tungstenite runs on: the socket's read half, and a write side that hands its frames to
/// the writer. A write always takes the whole buffer, so tungstenite only ever hands over
/// complete frames and never waits.
///
/// Reads go to the socket `read_size` bytes at a time (into a stack buffer), however small
/// tungstenite's own buffer is; what does not fit is kept in `ahead` until tungstenite asks
/// again, and freed once drained. An idle connection so holds only tungstenite's small buffer,
/// while a client that pipelines frames is still read with few system calls.
pub(crate) struct ReadAhead<R> {
    read: R,
    /// Bytes read from the socket that tungstenite has not taken yet, from `ahead_pos` on.
    ahead: Vec<u8>,
    ahead_pos: usize,
    /// Bytes to ask the socket for per read.
    read_size: usize,
    /// Where tungstenite's frames go.
    control: Arc<ControlOut>,
    /// Present when the connection negotiated permessage-deflate: what tungstenite reads is
    /// then the socket's frames with compressed messages inflated.
    inflating: Option<Box<Inflating>>,
}

/// The inflating side of a [`ReadAhead`].
struct Inflating {
    inflater: Inflater,
    /// Frames made from the input that tungstenite has not taken yet, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
}

/// Plain frames made per step while inflating, unless tungstenite asks for more.
const INFLATE_STEP: usize = 4 * 1024;

impl<R> ReadAhead<R> {
    /// `read_ahead`: bytes already read from the socket (hyper's leftovers), served first.
    pub(crate) fn new(
        read: R,
        read_ahead: Vec<u8>,
        read_size: usize,
        control: Arc<ControlOut>,
    ) -> Self {
        Self {
            read,
            ahead: read_ahead,
            ahead_pos: 0,
            read_size: read_size.clamp(MIN_READ_AHEAD, MAX_READ_AHEAD),
            control,
            inflating: None,
        }
    }

    /// Inflates compressed messages (permessage-deflate) to at most `max_message` bytes before
    /// tungstenite reads them.
    pub(crate) fn inflate(&mut self, max_message: usize) {
        self.inflating = Some(Box::new(Inflating {
            inflater: Inflater::new(max_message),
            out: Vec::new(),
            out_pos: 0,
        }));
    }

    /// Moves buffered bytes into `buf`; false when there were none.
    fn serve_ahead(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.ahead_pos == self.ahead.len() {
            return false;
        }
        let n = buf.remaining().min(self.ahead.len() - self.ahead_pos);
        buf.put_slice(&self.ahead[self.ahead_pos..self.ahead_pos + n]);
        self.ahead_pos += n;
        if self.ahead_pos == self.ahead.len() {
            self.ahead = Vec::new();
            self.ahead_pos = 0;
        }
        true
    }
}

impl<R: AsyncRead + Unpin> ReadAhead<R> {
    /// `poll_read` of a connection that inflates: socket bytes go through the inflater, and
    /// tungstenite is served what it makes.
    fn poll_inflated(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(inflating) = self.inflating.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        let want = buf.remaining().max(INFLATE_STEP);
        loop {
            if inflating.out_pos < inflating.out.len() {
                let out = &inflating.out[inflating.out_pos..];
                let n = buf.remaining().min(out.len());
                buf.put_slice(&out[..n]);
                inflating.out_pos += n;
                if inflating.out_pos == inflating.out.len() {
                    inflating.out = Vec::new();
                    inflating.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if self.ahead_pos < self.ahead.len() {
                let input = &self.ahead[self.ahead_pos..];
                let used = inflating
                    .inflater
                    .feed(input, &mut inflating.out, want)
                    .map_err(inflate_error)?;
                self.ahead_pos += used;
                if self.ahead_pos == self.ahead.len() {
                    self.ahead = Vec::new();
                    self.ahead_pos = 0;
                }
                continue;
            }
            let mut storage = [MaybeUninit::<u8>::uninit(); MAX_READ_AHEAD];
            let mut chunk = ReadBuf::uninit(&mut storage[..self.read_size]);
            ready!(Pin::new(&mut self.read).poll_read(cx, &mut chunk))?;
            let input = chunk.filled();
            if input.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let used = inflating
                .inflater
                .feed(input, &mut inflating.out, want)
                .map_err(inflate_error)?;
            if used < input.len() {
                self.ahead = input[used..].to_vec();
                self.ahead_pos = 0;
            }
        }
    }
}

/// The error tungstenite passes on for a compressed message that cannot be read; the session
/// finds the [`InflateError`] inside it (`inflate_error_of`).
fn inflate_error(error: InflateError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// The [`InflateError`] inside an I/O error tungstenite returned, if that is what it is.
pub(crate) fn inflate_error_of(error: &io::Error) -> Option<InflateError> {
    error.get_ref()?.downcast_ref::<InflateError>().copied()
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadAhead<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.inflating.is_some() {
            return this.poll_inflated(cx, buf);
        }
        if this.serve_ahead(buf) {
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= this.read_size {
            return Pin::new(&mut this.read).poll_read(cx, buf);
        }
        let mut storage = [MaybeUninit::<u8>::uninit(); MAX_READ_AHEAD];
        let mut chunk = ReadBuf::uninit(&mut storage[..this.read_size]);
        ready!(Pin::new(&mut this.read).poll_read(cx, &mut chunk))?;
        let filled = chunk.filled();
        let n = buf.remaining().min(filled.len());
        buf.put_slice(&filled[..n]);
        if n < filled.len() {
            this.ahead = filled[n..].to_vec();
            this.ahead_pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: Unpin> AsyncWrite for ReadAhead<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.control.push(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_compressing_connection_holds_little() {
        // What negotiating permessage-deflate adds to an idle connection: the boxed inflating
        // state (no decompressor, no buffers while no compressed message is being read).
        assert!(
            std::mem::size_of::<Inflating>() <= 128,
            "{}",
            std::mem::size_of::<Inflating>()
        );
        let mut reader = ReadAhead::new(tokio::io::empty(), Vec::new(), 4096, Arc::default());
        reader.inflate(1 << 20);
        let inflating = reader.inflating.as_deref().expect("inflating");
        assert!(!inflating.inflater.is_inflating());
        assert_eq!(inflating.out.capacity(), 0);
    }

    #[tokio::test]
    async fn reads_ahead_and_hands_out_small_chunks_in_order() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let sent: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&sent).await.unwrap();
        drop(client);
        let control = Arc::new(ControlOut::default());
        let mut reader = ReadAhead::new(server, b"hello".to_vec(), 4096, control);
        let mut got = Vec::new();
        let mut chunk = [0u8; 100];
        loop {
            let n = reader.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            // Never more than one read-ahead buffer is held.
            assert!(reader.ahead.len() <= 4096);
        }
        assert_eq!(&got[..5], b"hello");
        assert_eq!(&got[5..], &sent[..]);
        assert!(reader.ahead.capacity() == 0, "drained read-ahead is freed");
    }
}
