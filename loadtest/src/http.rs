//! A minimal HTTP/1.1 client for the `rest` scenario: one keep-alive connection, one request in
//! flight, responses framed by `Content-Length`. Enough for herald's JSON routes, and lean, so
//! the scenario measures the server.

use std::io::Write;
use std::time::Duration;

use memchr::memmem;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::client::{ClientError, Inbound};
use crate::latency::LatencyRecorder;
use crate::payload::{self, Stamp};

/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The parts of a response head the client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Bytes of status line and headers, blank line included.
    pub head_len: usize,
    pub content_length: usize,
    /// The server will close the connection after this response.
    pub close: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("malformed status line")]
    StatusLine,
    #[error("malformed header {0:?}")]
    Header(String),
    #[error("chunked responses are not supported")]
    Chunked,
    #[error("response head over {MAX_HEAD} bytes")]
    HeadTooLong,
}

/// Parses a response head at the front of `buf`; `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let Some(end) = memmem::find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::HeadTooLong)
        } else {
            Ok(None)
        };
    };
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or(HttpError::StatusLine)?;
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let version = parts.next().ok_or(HttpError::StatusLine)?;
    if !version.starts_with(b"HTTP/1.") {
        return Err(HttpError::StatusLine);
    }
    let status = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(HttpError::StatusLine)?;
    let mut content_length = 0;
    let mut close = version == b"HTTP/1.0";
    for line in lines {
        let colon = memchr::memchr(b':', line)
            .ok_or_else(|| HttpError::Header(String::from_utf8_lossy(line).into()))?;
        let name = &line[..colon];
        let value = std::str::from_utf8(&line[colon + 1..])
            .map_err(|_| HttpError::Header(String::from_utf8_lossy(name).into()))?
            .trim();
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = value
                .parse()
                .map_err(|_| HttpError::Header("content-length".into()))?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            return Err(HttpError::Chunked);
        } else if name.eq_ignore_ascii_case(b"connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                close = true;
            } else if value.contains("keep-alive") {
                close = false;
            }
        }
    }
    Ok(Some(ResponseHead {
        status,
        head_len: end + 4,
        content_length,
        close,
    }))
}

/// Builds a request with a JSON body (or none).
pub fn request(method: &str, host: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.map_or(0, <[u8]>::len));
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(body) = body {
        let _ = write!(
            out,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// herald's `POST /publish` of `{"topic":"…","data":"…"}` with the payload of `stamp`, `size`
/// bytes long; `body` is a buffer the caller reuses between requests.
pub fn publish_request(
    host: &str,
    topic: &str,
    stamp: &Stamp,
    size: usize,
    body: &mut Vec<u8>,
) -> Vec<u8> {
    body.clear();
    body.extend_from_slice(br#"{"topic":""#);
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(br#"","data":""#);
    payload::encode(body, stamp, size);
    body.extend_from_slice(br#""}"#);
    request("POST", host, "/publish", Some(body))
}

/// A response: status, body, and whether the connection must be dropped after it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub close: bool,
}

impl Response {
    /// `None` for a 200; otherwise `HTTP <status> <body>`, to report why it was refused.
    pub fn rejection(&self) -> Option<String> {
        (self.status != 200).then(|| {
            format!(
                "HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One keep-alive connection.
pub struct HttpConn {
    stream: TcpStream,
    inbound: Inbound,
}

impl HttpConn {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            inbound: Inbound::new(),
        }
    }

    /// [`send`](Self::send) bounded by `limit`; the latency of an answer goes to `latency`.
    pub async fn send_timed(
        &mut self,
        request: &[u8],
        limit: Duration,
        latency: &mut LatencyRecorder,
    ) -> Result<Response, ClientError> {
        let began = Instant::now();
        let response = timeout(limit, self.send(request))
            .await
            .unwrap_or(Err(ClientError::Timeout))?;
        latency.record(began.elapsed().as_nanos() as u64);
        Ok(response)
    }

    /// Writes `request` and reads its whole response.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response, ClientError> {
        self.stream.write_all(request).await?;
        loop {
            if let Some(head) =
                parse_head(self.inbound.data()).map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                let total = head.head_len + head.content_length;
                if self.inbound.data().len() >= total {
                    let body = self.inbound.data()[head.head_len..total].to_vec();
                    self.inbound.consume(total);
                    return Ok(Response {
                        status: head.status,
                        body,
                        close: head.close,
                    });
                }
            }
            if self.inbound.fill(&mut self.stream).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_keep_alive_response() {
        let buf = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 12\r\n\r\n{\"seq\":1234}";
        let head = parse_head(buf).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length, 12);
        assert_eq!(&buf[head.head_len..], b"{\"seq\":1234}");
        assert!(!head.close);
    }

    #[test]
    fn waits_for_the_whole_head() {
        let buf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        for cut in 0..buf.len() {
            assert_eq!(parse_head(&buf[..cut]).unwrap(), None);
        }
        assert_eq!(parse_head(buf).unwrap().unwrap().status, 404);
    }

    #[test]
    fn connection_close_and_http10() {
        let head = parse_head(b"HTTP/1.1 429 Too Many\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.close);
        assert_eq!(head.content_length, 0);
        let head = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(head.close);
    }

    #[test]
    fn rejects_what_it_cannot_frame() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::Chunked)
        );
        assert_eq!(parse_head(b"SPDY 200\r\n\r\n"), Err(HttpError::StatusLine));
        assert_eq!(
            parse_head(b"HTTP/1.1 abc OK\r\n\r\n"),
            Err(HttpError::StatusLine)
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn builds_requests() {
        let req = request("POST", "127.0.0.1:8080", "/publish", Some(b"{}"));
        assert_eq!(
            req,
            b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
