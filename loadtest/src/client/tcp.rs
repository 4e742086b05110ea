//! The publishing side the NATS and Redis clients share: a TCP connection split into a writer
//! with one output buffer, flushed explicitly, and a reader task that counts the server's replies
//! into [`Replies`] until the connection ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::inbound::Inbound;
use super::{ClientError, Replies};

/// Reads one reply from the front of a buffer and counts it into [`Replies`]: `Ok(None)` while
/// it is incomplete, otherwise the bytes it took; `Err` for what the protocol cannot parse.
pub type CountReply = fn(&[u8], &Replies) -> Result<Option<usize>, String>;

/// The [`CountReply`] skeleton: `parsed` is what the protocol's parser made of the front of the
/// buffer, `count` records one complete reply.
pub fn counted<T, E: std::fmt::Display>(
    parsed: Result<Option<(T, usize)>, E>,
    replies: &Replies,
    count: impl FnOnce(T, &Replies),
) -> Result<Option<usize>, String> {
    match parsed {
        Ok(Some((reply, n))) => {
            count(reply, replies);
            Ok(Some(n))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// A publishing connection over plain TCP.
pub struct TcpPublisher {
    writer: OwnedWriteHalf,
    /// Commands queued since the last flush.
    pub out: Vec<u8>,
    reader: JoinHandle<()>,
    /// What the reader task learned.
    pub replies: Arc<Replies>,
}

impl TcpPublisher {
    /// Splits `stream` and starts the reader task, which parses replies with `count`.
    pub fn start(stream: TcpStream, count: CountReply) -> Self {
        let (reader, writer) = stream.into_split();
        let replies = Arc::new(Replies::default());
        let reader = tokio::spawn(read_replies(reader, replies.clone(), count));
        Self {
            writer,
            out: Vec::with_capacity(64 * 1024),
            reader,
            replies,
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Shuts the writing side and stops the reader task.
    pub async fn close(mut self) {
        let _ = self.writer.shutdown().await;
        self.reader.abort();
    }
}

/// The reader task: counts every reply until the connection ends or sends what cannot be parsed.
async fn read_replies(mut reader: OwnedReadHalf, replies: Arc<Replies>, count: CountReply) {
    let mut inbound = Inbound::new();
    'read: while let Ok(n) = inbound.fill(&mut reader).await {
        if n == 0 {
            break;
        }
        let mut pos = 0;
        loop {
            match count(&inbound.data()[pos..], &replies) {
                Ok(Some(n)) => pos += n,
                Ok(None) => break,
                Err(e) => {
                    replies.error(e);
                    break 'read;
                }
            }
        }
        inbound.consume(pos);
    }
    replies.closed.store(true, Ordering::Relaxed);
}
