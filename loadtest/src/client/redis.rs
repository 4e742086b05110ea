//! Redis pub/sub over RESP2: `SUBSCRIBE` / `PUBLISH`, and a parser for replies and push
//! messages that borrows from the read buffer (pub/sub arrays have at most four elements, so
//! they are parsed into a fixed array, no allocation).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use memchr::memchr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::inbound::Inbound;
use super::tcp::{counted, TcpPublisher};
use super::{ClientError, Closed, Finished, Recv, Replies};

/// Elements of the largest array this client expects (`pmessage` has four).
const MAX_ITEMS: usize = 4;

/// Longest header line (`$<len>`, `:<int>`, `+…`, `-…`) accepted.
const MAX_LINE: usize = 64 * 1024;

/// A non-array value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    /// `None` is the null bulk string.
    Bulk(Option<&'a [u8]>),
}

/// One reply or push message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    Scalar(Scalar<'a>),
    Array(Items<'a>),
}

/// The elements of a (flat, short) array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Items<'a> {
    items: [Scalar<'a>; MAX_ITEMS],
    len: usize,
}

impl<'a> Items<'a> {
    pub fn as_slice(&self) -> &[Scalar<'a>] {
        &self.items[..self.len]
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("unknown type byte {0:#04x}")]
    UnknownType(u8),
    #[error("bad number")]
    BadNumber,
    #[error("array of {0} elements (at most {MAX_ITEMS} expected)")]
    TooManyItems(i64),
    #[error("nested array")]
    Nested,
    #[error("bulk string not followed by CRLF")]
    BadBulk,
    #[error("line ends in LF without CR")]
    BareLf,
    #[error("header line too long")]
    LineTooLong,
}

/// Parses one value from the front of `buf`: `Ok(None)` when incomplete, otherwise the value
/// and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ParseError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    if kind != b'*' && kind != b'>' {
        return Ok(scalar(buf, 0)?.map(|(s, n)| (Reply::Scalar(s), n)));
    }
    let Some((header, mut pos)) = line(buf, 1)? else {
        return Ok(None);
    };
    let count = int(header)?;
    if count < 0 {
        return Ok(Some((Reply::Scalar(Scalar::Bulk(None)), pos)));
    }
    if count > MAX_ITEMS as i64 {
        return Err(ParseError::TooManyItems(count));
    }
    let mut items = Items {
        items: [Scalar::Bulk(None); MAX_ITEMS],
        len: count as usize,
    };
    for slot in items.items.iter_mut().take(count as usize) {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'*' | b'>') => return Err(ParseError::Nested),
            Some(_) => {}
        }
        let Some((value, next)) = scalar(buf, pos)? else {
            return Ok(None);
        };
        *slot = value;
        pos = next;
    }
    Ok(Some((Reply::Array(items), pos)))
}

/// One scalar starting at `pos`, and the position after it.
fn scalar(buf: &[u8], pos: usize) -> Result<Option<(Scalar<'_>, usize)>, ParseError> {
    let kind = buf[pos];
    let Some((text, next)) = line(buf, pos + 1)? else {
        return Ok(None);
    };
    let value = match kind {
        b'+' => Scalar::Simple(text),
        b'-' => Scalar::Error(text),
        b':' => Scalar::Int(int(text)?),
        b'$' => {
            let len = int(text)?;
            if len < 0 {
                return Ok(Some((Scalar::Bulk(None), next)));
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ParseError::BadBulk);
            }
            return Ok(Some((Scalar::Bulk(Some(&buf[next..end])), end + 2)));
        }
        other => return Err(ParseError::UnknownType(other)),
    };
    Ok(Some((value, next)))
}

/// The line starting at `pos` (without CRLF) and the position after its CRLF.
fn line(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, ParseError> {
    let rest = &buf[pos.min(buf.len())..];
    match memchr(b'\n', rest) {
        Some(nl) if nl > 0 && rest[nl - 1] == b'\r' => Ok(Some((&rest[..nl - 1], pos + nl + 1))),
        Some(_) => Err(ParseError::BareLf),
        None if rest.len() > MAX_LINE => Err(ParseError::LineTooLong),
        None => Ok(None),
    }
}

fn int(text: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(ParseError::BadNumber)
}

/// Appends a command as a RESP array of bulk strings.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", args.len());
    for arg in args {
        let _ = write!(out, "${}\r\n", arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A connection subscribed to its channels.
pub struct Subscriber {
    stream: TcpStream,
    inbound: Inbound,
}

impl Subscriber {
    /// `SUBSCRIBE` every channel in one command and wait for each confirmation.
    pub async fn connect(mut stream: TcpStream, channels: &[String]) -> Result<Self, ClientError> {
        let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        args.extend(channels.iter().map(|c| c.as_bytes()));
        let mut out = Vec::new();
        command(&mut out, &args);
        stream.write_all(&out).await?;
        let mut inbound = Inbound::new();
        let mut confirmed = 0;
        loop {
            let mut pos = 0;
            while let Some((reply, n)) =
                parse(&inbound.data()[pos..]).map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                pos += n;
                match reply {
                    Reply::Array(items) => {
                        if let [Scalar::Bulk(Some(b"subscribe")), ..] = items.as_slice() {
                            confirmed += 1;
                        }
                    }
                    Reply::Scalar(Scalar::Error(text)) => {
                        return Err(ClientError::Server(String::from_utf8_lossy(text).into()))
                    }
                    Reply::Scalar(_) => {}
                }
            }
            inbound.consume(pos);
            if confirmed >= channels.len() {
                return Ok(Self { stream, inbound });
            }
            if inbound.fill(&mut stream).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    pub async fn recv<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> Recv {
        loop {
            let (consumed, end) = self.drain(on);
            if let Some(end) = end {
                return Recv::Closed(end);
            }
            if consumed > 0 {
                return Recv::Data;
            }
            if let Some(end) = self.inbound.refill(&mut self.stream).await {
                return Recv::Closed(end);
            }
        }
    }

    /// Hands over every complete message buffered: (bytes consumed, end).
    fn drain<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> (usize, Option<Closed>) {
        let mut pos = 0;
        let mut end = None;
        loop {
            match parse(&self.inbound.data()[pos..]) {
                Ok(Some((reply, n))) => {
                    pos += n;
                    match reply {
                        Reply::Array(items) => {
                            if let [Scalar::Bulk(Some(b"message")), Scalar::Bulk(Some(channel)), Scalar::Bulk(Some(payload))] =
                                items.as_slice()
                            {
                                on(channel, payload);
                            }
                        }
                        Reply::Scalar(Scalar::Error(text)) => {
                            end = Some(Closed::Other(String::from_utf8_lossy(text).into()));
                            break;
                        }
                        Reply::Scalar(_) => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    end = Some(Closed::Other(e.to_string()));
                    break;
                }
            }
        }
        self.inbound.consume(pos);
        (pos, end)
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// A publishing connection; its reader task counts the integer replies to `PUBLISH`.
pub struct Publisher {
    conn: TcpPublisher,
    /// `PUBLISH` commands queued so far.
    sent: u64,
}

impl Publisher {
    /// Starts the reader task (Redis needs no handshake).
    pub fn connect(stream: TcpStream) -> Self {
        Self {
            conn: TcpPublisher::start(stream, count_reply),
            sent: 0,
        }
    }

    /// Queues one `PUBLISH`.
    pub fn push(&mut self, channel: &str, payload: &[u8]) {
        command(
            &mut self.conn.out,
            &[b"PUBLISH", channel.as_bytes(), payload],
        );
        self.sent += 1;
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.conn.flush().await
    }

    /// Flushes, waits (up to `timeout`) for a reply to every `PUBLISH`, closes.
    pub async fn finish(mut self, timeout: Duration) -> Result<Finished, ClientError> {
        self.flush().await?;
        let replies = self.conn.replies.clone();
        replies.wait_for(self.sent, timeout).await;
        let finished = replies.finished(self.sent);
        self.conn.close().await;
        Ok(finished)
    }
}

/// Counts one reply a publisher reads ([`CountReply`](super::tcp::CountReply)).
fn count_reply(buf: &[u8], replies: &Replies) -> Result<Option<usize>, String> {
    counted(parse(buf), replies, |reply, replies| match reply {
        Reply::Scalar(Scalar::Int(_)) => {
            replies.ok.fetch_add(1, Ordering::Relaxed);
        }
        Reply::Scalar(Scalar::Error(text)) => replies.error(String::from_utf8_lossy(text)),
        _ => {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(reply: Reply<'_>) -> Vec<Scalar<'_>> {
        match reply {
            Reply::Array(items) => items.as_slice().to_vec(),
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn parses_push_message() {
        let buf = b"*3\r\n$7\r\nmessage\r\n$5\r\nhl1.0\r\n$6\r\nab\r\ncd\r\n:7\r\n";
        let (reply, n) = parse(buf).unwrap().unwrap();
        assert_eq!(
            array(reply),
            vec![
                Scalar::Bulk(Some(b"message")),
                Scalar::Bulk(Some(b"hl1.0")),
                Scalar::Bulk(Some(b"ab\r\ncd")),
            ]
        );
        assert_eq!(
            parse(&buf[n..]).unwrap(),
            Some((Reply::Scalar(Scalar::Int(7)), 4))
        );
    }

    #[test]
    fn incomplete_input_waits() {
        let buf = b"*3\r\n$9\r\nsubscribe\r\n$3\r\nabc\r\n:1\r\n";
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (reply, n) = parse(buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(array(reply)[2], Scalar::Int(1));
    }

    #[test]
    fn parses_scalars() {
        assert_eq!(
            parse(b"+OK\r\n").unwrap(),
            Some((Reply::Scalar(Scalar::Simple(b"OK")), 5))
        );
        assert_eq!(
            parse(b"-ERR wrong\r\n").unwrap(),
            Some((Reply::Scalar(Scalar::Error(b"ERR wrong")), 12))
        );
        assert_eq!(
            parse(b"$-1\r\n").unwrap(),
            Some((Reply::Scalar(Scalar::Bulk(None)), 5))
        );
        assert_eq!(
            parse(b"$0\r\n\r\n").unwrap(),
            Some((Reply::Scalar(Scalar::Bulk(Some(b""))), 6))
        );
        let (reply, _) = parse(b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(array(reply).len(), 3);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse(b"?x\r\n"), Err(ParseError::UnknownType(b'?')));
        assert_eq!(parse(b":x\r\n"), Err(ParseError::BadNumber));
        assert_eq!(parse(b"$1\r\nab\r\n"), Err(ParseError::BadBulk));
        assert_eq!(parse(b"*9\r\n"), Err(ParseError::TooManyItems(9)));
        assert_eq!(parse(b"*1\r\n*0\r\n"), Err(ParseError::Nested));
    }

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        command(&mut out, &[b"PUBLISH", b"ch", b"hi"]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    }
}
