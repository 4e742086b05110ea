//! Core NATS protocol over plain TCP: `CONNECT` (verbose off), `SUB`, `PUB`, `PING`/`PONG`, and a
//! parser for what the server sends (`MSG`, `PING`, `PONG`, `+OK`, `-ERR`, `INFO`).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use memchr::memchr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::inbound::Inbound;
use super::tcp::{counted, TcpPublisher};
use super::{ClientError, Closed, Finished, Recv, Replies};

/// The longest control line accepted (the server's own default limit is 4 KiB).
const MAX_CONTROL_LINE: usize = 4096;

const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"herald-load\"}\r\n";

/// One operation from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Msg(Msg<'a>),
    Ping,
    Pong,
    Ok,
    Err(&'a [u8]),
    Info(&'a [u8]),
}

/// `MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n`.
#[derive(Debug, PartialEq, Eq)]
pub struct Msg<'a> {
    pub subject: &'a [u8],
    pub sid: u64,
    pub reply: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("control line longer than {MAX_CONTROL_LINE} bytes")]
    LineTooLong,
    #[error("unknown operation {0:?}")]
    Unknown(String),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Parses one operation from the front of `buf`: `Ok(None)` when it is not complete yet,
/// otherwise the operation and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Op<'_>, usize)>, ParseError> {
    let Some(nl) = memchr(b'\n', buf) else {
        return if buf.len() > MAX_CONTROL_LINE {
            Err(ParseError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let after = nl + 1;
    let (verb, args) = match line.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&line[..i], trim(&line[i + 1..])),
        None => (line, &line[line.len()..]),
    };
    let op = if verb.eq_ignore_ascii_case(b"MSG") {
        return parse_msg(buf, args, after);
    } else if verb.eq_ignore_ascii_case(b"PING") {
        Op::Ping
    } else if verb.eq_ignore_ascii_case(b"PONG") {
        Op::Pong
    } else if verb.eq_ignore_ascii_case(b"+OK") {
        Op::Ok
    } else if verb.eq_ignore_ascii_case(b"-ERR") {
        Op::Err(args)
    } else if verb.eq_ignore_ascii_case(b"INFO") {
        Op::Info(args)
    } else {
        return Err(ParseError::Unknown(
            String::from_utf8_lossy(verb).into_owned(),
        ));
    };
    Ok(Some((op, after)))
}

fn parse_msg<'a>(
    buf: &'a [u8],
    args: &'a [u8],
    after: usize,
) -> Result<Option<(Op<'a>, usize)>, ParseError> {
    let mut fields = [&args[..0]; 4];
    let mut n = 0;
    for field in args
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|f| !f.is_empty())
    {
        if n == fields.len() {
            return Err(ParseError::Malformed("MSG: too many fields"));
        }
        fields[n] = field;
        n += 1;
    }
    let (subject, sid, reply, size) = match n {
        3 => (fields[0], fields[1], None, fields[2]),
        4 => (fields[0], fields[1], Some(fields[2]), fields[3]),
        _ => return Err(ParseError::Malformed("MSG: wrong field count")),
    };
    let sid = number(sid).ok_or(ParseError::Malformed("MSG sid"))?;
    let size = number(size).ok_or(ParseError::Malformed("MSG size"))? as usize;
    let end = after + size;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ParseError::Malformed("MSG: payload not followed by CRLF"));
    }
    let msg = Msg {
        subject,
        sid,
        reply,
        payload: &buf[after..end],
    };
    Ok(Some((Op::Msg(msg), end + 2)))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn number(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

fn is_slow_consumer(text: &[u8]) -> bool {
    memchr::memmem::find(&text.to_ascii_lowercase(), b"slow consumer").is_some()
}

/// A connection subscribed to its subjects, one `sid` per subject.
pub struct Subscriber {
    stream: TcpStream,
    inbound: Inbound,
}

impl Subscriber {
    /// Sends `CONNECT`, one `SUB` per subject and a `PING`; the `PONG` proves the server
    /// registered every subscription.
    pub async fn connect(mut stream: TcpStream, subjects: &[String]) -> Result<Self, ClientError> {
        let mut out = CONNECT.to_vec();
        for (sid, subject) in subjects.iter().enumerate() {
            out.extend_from_slice(format!("SUB {subject} {}\r\n", sid + 1).as_bytes());
        }
        out.extend_from_slice(b"PING\r\n");
        stream.write_all(&out).await?;
        let mut inbound = Inbound::new();
        loop {
            let mut pos = 0;
            let mut done = false;
            while let Some((op, n)) =
                parse(&inbound.data()[pos..]).map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                pos += n;
                match op {
                    Op::Pong => done = true,
                    Op::Err(text) => {
                        return Err(ClientError::Server(String::from_utf8_lossy(text).into()))
                    }
                    _ => {}
                }
            }
            inbound.consume(pos);
            if done {
                return Ok(Self { stream, inbound });
            }
            if inbound.fill(&mut stream).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    pub async fn recv<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> Recv {
        loop {
            let (consumed, pings, end) = self.drain(on);
            if let Some(end) = end {
                return Recv::Closed(end);
            }
            for _ in 0..pings {
                if let Err(e) = self.stream.write_all(b"PONG\r\n").await {
                    return Recv::Closed(Closed::Other(e.to_string()));
                }
            }
            if consumed > 0 {
                return Recv::Data;
            }
            if let Some(end) = self.inbound.refill(&mut self.stream).await {
                return Recv::Closed(end);
            }
        }
    }

    /// Hands over every complete message buffered: (bytes consumed, `PING`s to answer, end).
    fn drain<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> (usize, usize, Option<Closed>) {
        let mut pos = 0;
        let mut pings = 0;
        let mut end = None;
        loop {
            match parse(&self.inbound.data()[pos..]) {
                Ok(Some((op, n))) => {
                    pos += n;
                    match op {
                        Op::Msg(msg) => on(msg.subject, msg.payload),
                        Op::Ping => pings += 1,
                        Op::Err(text) => {
                            let text = String::from_utf8_lossy(text).into_owned();
                            end = Some(if is_slow_consumer(text.as_bytes()) {
                                Closed::Policy(text)
                            } else {
                                Closed::Other(text)
                            });
                            break;
                        }
                        Op::Pong | Op::Ok | Op::Info(_) => {}
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
        (pos, pings, end)
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// A publishing connection; its reader task notes `PING`s to answer and counts `PONG`s.
pub struct Publisher {
    conn: TcpPublisher,
}

impl Publisher {
    /// Sends `CONNECT` and starts the reader task.
    pub async fn connect(mut stream: TcpStream) -> Result<Self, ClientError> {
        stream.write_all(CONNECT).await?;
        Ok(Self {
            conn: TcpPublisher::start(stream, count_reply),
        })
    }

    /// Queues one `PUB`.
    pub fn push(&mut self, subject: &str, payload: &[u8]) {
        let out = &mut self.conn.out;
        // Writing into a Vec cannot fail.
        let _ = write!(out, "PUB {subject} {}\r\n", payload.len());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    /// Writes what is queued, with the `PONG` a server `PING` is owed.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if self.conn.replies.ping_due.swap(false, Ordering::Relaxed) {
            self.conn.out.extend_from_slice(b"PONG\r\n");
        }
        self.conn.flush().await
    }

    /// NATS does not answer `PUB`; a `PING` after the last one is answered once the server has
    /// processed everything before it.
    pub async fn finish(mut self, timeout: Duration) -> Result<Finished, ClientError> {
        let replies = self.conn.replies.clone();
        let pongs = replies.ok.load(Ordering::Relaxed);
        self.conn.out.extend_from_slice(b"PING\r\n");
        self.flush().await?;
        replies.wait_for(pongs + 1, timeout).await;
        let mut finished = replies.finished(0);
        if replies.ok.load(Ordering::Relaxed) <= pongs {
            finished
                .first_error
                .get_or_insert("no PONG after the last PUB".into());
            finished.errors += 1;
        }
        self.conn.close().await;
        Ok(finished)
    }
}

/// Counts one server operation a publisher reads ([`CountReply`]).
fn count_reply(buf: &[u8], replies: &Replies) -> Result<Option<usize>, String> {
    counted(parse(buf), replies, |op, replies| match op {
        Op::Pong => {
            replies.ok.fetch_add(1, Ordering::Relaxed);
        }
        Op::Ping => replies.ping_due.store(true, Ordering::Relaxed),
        Op::Err(text) => replies.error(String::from_utf8_lossy(text)),
        Op::Msg(_) | Op::Ok | Op::Info(_) => {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_msg_with_and_without_reply() {
        let buf = b"MSG hl1.3 7 5\r\nhello\r\nMSG a.b 1 _INBOX.x 0\r\n\r\n";
        let (op, n) = parse(buf).unwrap().unwrap();
        assert_eq!(
            op,
            Op::Msg(Msg {
                subject: b"hl1.3",
                sid: 7,
                reply: None,
                payload: b"hello"
            })
        );
        let (op, m) = parse(&buf[n..]).unwrap().unwrap();
        assert_eq!(
            op,
            Op::Msg(Msg {
                subject: b"a.b",
                sid: 1,
                reply: Some(b"_INBOX.x"),
                payload: b""
            })
        );
        assert_eq!(n + m, buf.len());
    }

    #[test]
    fn payload_may_contain_crlf_and_waits_for_all_bytes() {
        let buf = b"MSG s 1 4\r\na\r\nb\r\n";
        let (op, _) = parse(buf).unwrap().unwrap();
        assert!(matches!(op, Op::Msg(m) if m.payload == b"a\r\nb"));
        for cut in 0..buf.len() {
            assert_eq!(parse(&buf[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn parses_control_operations() {
        assert_eq!(parse(b"PING\r\n").unwrap(), Some((Op::Ping, 6)));
        assert_eq!(parse(b"pong\r\n").unwrap(), Some((Op::Pong, 6)));
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some((Op::Ok, 5)));
        let (op, _) = parse(b"-ERR 'Slow Consumer'\r\n").unwrap().unwrap();
        assert_eq!(op, Op::Err(b"'Slow Consumer'"));
        assert!(is_slow_consumer(b"'Slow Consumer'"));
        let (op, _) = parse(b"INFO {\"server_id\":\"x\"} \r\n").unwrap().unwrap();
        assert_eq!(op, Op::Info(b"{\"server_id\":\"x\"}"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse(b"HELLO\r\n"), Err(ParseError::Unknown(_))));
        assert!(parse(b"MSG s x 1\r\na\r\n").is_err());
        assert!(parse(b"MSG s 1 1\r\nab\r\n").is_err());
        assert!(parse(b"MSG s\r\n").is_err());
        assert_eq!(
            parse(&[b'x'; MAX_CONTROL_LINE + 1]),
            Err(ParseError::LineTooLong)
        );
    }
}
