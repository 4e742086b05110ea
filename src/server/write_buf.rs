//! The write buffer between a WebSocket and its socket, which gives its memory back after a burst.
//!
//! tungstenite buffers outgoing frames in a `Vec` of its own that keeps its largest size for the
//! connection's life: after one burst (a stalled client catching up, a replay) every connection
//! held up to `WS_WRITE_BUFFER_SIZE` × 2 for good, which the soak saw as a 2 MiB RSS step that
//! never went away (RELIABILITY.md). So tungstenite writes every frame straight through
//! (`write_buffer_size(0)`) into this buffer, which collects the writer's batch, writes it to
//! the socket in as few calls as before, and drops its allocation once a flush empties it if a
//! burst grew it past [`KEEP`].

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Capacity kept across flushes; a buffer grown past it is freed once empty.
pub(super) const KEEP: usize = 1024;

/// `inner` with a write buffer of at most `limit` bytes that shrinks after each burst.
#[derive(Debug)]
pub(super) struct WriteBuf<S> {
    /// The socket.
    inner: S,
    /// Bytes accepted from the WebSocket, not yet written to `inner`.
    buf: Vec<u8>,
    /// How much of `buf` `inner` has already taken.
    written: usize,
    /// Past this many buffered bytes a write first empties the buffer into the socket.
    limit: usize,
}

impl<S> WriteBuf<S> {
    /// Wraps `inner`, buffering up to `limit` bytes (`WS_WRITE_BUFFER_SIZE`) between flushes.
    pub(super) fn new(inner: S, limit: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
            limit,
        }
    }

    /// Bytes currently allocated for the buffer.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<S: AsyncWrite + Unpin> WriteBuf<S> {
    /// Writes the whole buffer to `inner`, then gives back a burst's allocation.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.buf.clear();
        self.written = 0;
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteBuf<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.buf.is_empty() && this.buf.len() + data.len() > this.limit {
            ready!(this.poll_drain(cx))?;
        }
        if data.len() >= this.limit {
            // A frame as large as the buffer gains nothing from a copy.
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        // No reservation up front: an idle connection should cost what its last batch took.
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteBuf<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes 0, 1, … 250, 0, 1, … so reordering or loss shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn small_writes_wait_for_the_flush_and_arrive_in_order() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut w = WriteBuf::new(client, 16 * 1024);
        let data = pattern(3_000);
        for chunk in data.chunks(100) {
            w.write_all(chunk).await.unwrap();
        }
        let mut probe = [0u8; 1];
        let early = futures_util::FutureExt::now_or_never(server.read(&mut probe));
        assert!(early.is_none(), "bytes reached the socket before the flush");
        w.flush().await.unwrap();
        let mut got = vec![0u8; data.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn a_burst_is_written_in_full_and_its_memory_given_back() {
        // A socket that takes at most 1 KiB at a time, so the burst meets a full socket.
        let (client, mut server) = tokio::io::duplex(1024);
        let mut w = WriteBuf::new(client, 16 * 1024);
        let data = pattern(100_000);
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 100_000];
            server.read_exact(&mut got).await.map(|_| (server, got))
        });
        for chunk in data.chunks(300) {
            w.write_all(chunk).await.unwrap();
            assert!(w.buf.len() <= 16 * 1024, "buffer over its limit");
        }
        assert!(
            w.capacity() > KEEP,
            "the burst should have grown the buffer"
        );
        w.flush().await.unwrap();
        assert_eq!(w.capacity(), 0, "the burst's allocation was kept");
        let (_server, got) = reader.await.unwrap().unwrap();
        assert_eq!(got, data);

        // A quiet connection keeps its small buffer instead of reallocating every batch.
        w.write_all(&[1; 200]).await.unwrap();
        w.flush().await.unwrap();
        let small = w.capacity();
        assert!((200..=KEEP).contains(&small));
        w.write_all(&[2; 100]).await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(w.capacity(), small);
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_goes_straight_through() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut w = WriteBuf::new(client, 1024);
        w.write_all(b"head").await.unwrap();
        let big = pattern(5_000);
        w.write_all(&big).await.unwrap();
        w.flush().await.unwrap();
        assert!(w.capacity() <= KEEP);
        let mut got = vec![0u8; 4 + big.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..], &big[..]);
    }
}
