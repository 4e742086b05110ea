//! The read buffer of the NATS and Redis clients: starts at [`READ_BUFFER`] bytes, grows only
//! when one message does not fit, and gives its space back as complete messages are consumed.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Closed, READ_BUFFER};

/// Bytes read from a socket and not consumed yet.
pub struct Inbound {
    buf: BytesMut,
}

impl Inbound {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_BUFFER),
        }
    }

    /// Reads once more from `reader`; `Ok(0)` is end of stream.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_BUFFER / 4 {
            // Reclaims consumed space first (no copy when everything was consumed); doubles
            // only when a partial message fills the buffer.
            self.buf.reserve(READ_BUFFER.max(self.buf.len()));
        }
        reader.read_buf(&mut self.buf).await
    }

    /// [`fill`](Self::fill) for a subscriber with nothing complete buffered: `None` to go on
    /// reading, otherwise how the connection ended.
    pub async fn refill<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Option<Closed> {
        match self.fill(reader).await {
            Ok(0) => Some(Closed::Other("connection closed".into())),
            Ok(_) => None,
            Err(e) => Some(Closed::Other(e.to_string())),
        }
    }

    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    /// Drops `n` consumed bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
    }
}
