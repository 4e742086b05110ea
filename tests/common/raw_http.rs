//! Requests written by hand on a raw TCP connection, for what an HTTP client library will not
//! send or will not report faithfully: a megabyte of header, an answer sent before the request was
//! read to its end.

/// How the server answered a request written by hand (see [`huge_request`]).
#[derive(Debug)]
pub struct RawOutcome {
    /// The status of the answer, if one came.
    pub status: Option<u16>,
    /// Everything read, lossy UTF-8.
    pub text: String,
    /// How the exchange ended.
    pub ended: String,
}

impl RawOutcome {
    /// Asserts an answer with one of `statuses` (never a 5xx) that does not echo `secret`.
    pub fn assert_refused(&self, statuses: &[u16], secret: &str, what: &str) {
        let status = self
            .status
            .unwrap_or_else(|| panic!("{what}: no HTTP answer ({}): {:?}", self.ended, self.text));
        assert!(
            statuses.contains(&status),
            "{what}: HTTP {status}, expected one of {statuses:?}: {}",
            self.text.chars().take(300).collect::<String>()
        );
        super::jwt::assert_not_echoed(&self.text, secret, what);
    }
}

/// Writes `GET {target}` with `headers` (each `Name: value`) on a fresh connection while reading
/// the answer, so a server that answers before reading everything is heard; bounded by
/// [`super::RECV_TIMEOUT`] (a hung connection fails the test).
pub async fn huge_request(
    addr: std::net::SocketAddr,
    target: &str,
    headers: &[String],
) -> RawOutcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        // The server may stop reading once it has seen enough: a failed write is expected.
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.flush().await;
        wr
    });
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(super::RECV_TIMEOUT, async {
        let mut chunk = [0u8; 8192];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => return "closed by the server".to_string(),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    // One answer is all this needs; a keep-alive server would wait for more.
                    if complete_answer(&buf) {
                        return "answered".to_string();
                    }
                }
                Err(e) => return format!("read error: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("request to {target}: no answer and no close within the timeout"));
    writer.abort();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok());
    RawOutcome {
        status,
        text,
        ended,
    }
}

/// Whether `buf` holds a whole HTTP answer: the head, and the body its `content-length` says.
fn complete_answer(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    buf.len() >= end + 4 + length
}

/// The headers of a WebSocket upgrade request, to add to [`huge_request`].
pub fn upgrade_headers() -> Vec<String> {
    [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ]
    .map(String::from)
    .to_vec()
}
