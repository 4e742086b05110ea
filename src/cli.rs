//! The client half of the `herald` binary, like `nats sub` / `nats pub`: `herald sub` prints a
//! topic's events as JSON lines, `herald pub` publishes and prints each ack, and `herald probe`
//! is the container health check (one HTTP GET, exit 0 or 1).
//!
//! The clients speak the public wire contract (PROTOCOL.md §1) over `/ws` and nothing else, so
//! they work against any herald, single node or cluster. Errors are one [`CliError`] each; `main`
//! prints it as one line and exits with [`CliError::exit_code`].

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use futures_util::{FutureExt, SinkExt, StreamExt};
use http::header::HeaderValue;
use http::Uri;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::ConfigError;

/// How long connecting (TCP + WebSocket handshake) may take before the client gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `pub` and `sub` wait for the ack (or error) that answers their frame.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Events `sub` writes between two flushes of stdout (and checks of Ctrl-C) while frames keep
/// arriving without a pause.
const MAX_UNFLUSHED: usize = 256;
/// How long a closing client waits for the server's close reply before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Stdin lines read ahead of the publisher. When full, the reader thread blocks, so a fast
/// producer piped into `herald pub -` is paced by the server's acks instead of filling memory.
const STDIN_QUEUE: usize = 64;
/// The most of a probe's answer that is read; `/livez` and `/readyz` answer a few bytes.
const PROBE_MAX_RESPONSE: u64 = 64 * 1024;
/// The most of a failing probe's body that is shown.
const PROBE_BODY_SHOWN: usize = 200;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the server is and how to authenticate; shared by `sub` and `pub`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server URL: `ws://host:port` (path defaults to `/ws`); `http://` and a bare `host:port`
    /// work too.
    #[arg(long, env = "HERALD_URL", default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// API key, sent as the X-API-Key header.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// `herald sub TOPIC`: print every event of TOPIC as one JSON line on stdout.
#[derive(Debug, Clone, Args)]
pub struct SubArgs {
    /// Topic to subscribe to.
    pub topic: String,
    /// First replay the last N stored messages of the topic.
    #[arg(long, value_name = "N")]
    pub last_n: Option<u64>,
    /// First replay every stored message with a seq greater than S (resume after a reconnect).
    #[arg(long, value_name = "S")]
    pub since_seq: Option<u64>,
    /// The topic epoch last seen, with --since-seq; a different epoch replays nothing.
    #[arg(long, value_name = "E", requires = "since_seq")]
    pub epoch: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `herald pub TOPIC [MESSAGE | -]`: publish, waiting for each ack and printing it.
#[derive(Debug, Clone, Args)]
pub struct PubArgs {
    /// Topic to publish to.
    pub topic: String,
    /// The payload: sent as JSON when it is valid JSON, otherwise as a JSON string. `-` (or
    /// nothing, with stdin not a terminal) publishes each non-empty stdin line instead. A message
    /// that starts with `-` (other than a number) goes after `--`.
    #[arg(allow_negative_numbers = true)]
    pub message: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `herald probe`: GET a health route; exit 0 on a 2xx answer, 1 otherwise.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Server URL, `http://host:port` (`ws://` works too). Default: where a server started in
    /// this environment listens (HOST/PORT/ADDR, with 0.0.0.0 read as 127.0.0.1).
    #[arg(long)]
    pub url: Option<String>,
    /// Route to check, when the URL has no path of its own.
    #[arg(long, default_value = "/livez")]
    pub path: String,
    /// Seconds the whole check may take.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
}

/// Why a client command failed. Each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The URL cannot be used.
    #[error("invalid URL `{url}`: {reason}")]
    BadUrl { url: String, reason: &'static str },
    /// The API key cannot be sent as a header.
    #[error("invalid API key: it must be visible ASCII")]
    BadApiKey,
    /// `pub` without a message, interactively.
    #[error("missing MESSAGE (use `-` to publish stdin lines)")]
    NoMessage,
    /// The configuration `probe` takes its default address from is invalid.
    #[error("no --url given and {0}")]
    Config(#[from] ConfigError),
    /// The TCP connection failed or timed out.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The server answered the WebSocket upgrade with an HTTP error.
    #[error("{url} refused the connection: HTTP {status}{detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    /// The server answered a frame with an error frame.
    #[error("{code}: {message}{context}")]
    Server {
        code: String,
        message: String,
        context: String,
    },
    /// No answer to a frame within `REPLY_TIMEOUT`.
    #[error("no answer from the server within {}s", REPLY_TIMEOUT.as_secs())]
    NoReply,
    /// The server closed the connection with a code other than 1000 or 1001.
    #[error("server closed the connection: {0}")]
    Closed(String),
    /// The connection ended without a close frame, or a read or write failed.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The subscribed topic was deleted, so no more events will come.
    #[error("topic `{0}` was deleted")]
    TopicDeleted(String),
    /// Reading stdin failed (for example a line that is not UTF-8).
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    /// Writing stdout failed (other than a closed pipe, which ends `sub` quietly).
    #[error("cannot write stdout: {0}")]
    Stdout(std::io::Error),
    /// The probed route did not answer 2xx.
    #[error("{url} answered {status}{body}")]
    Unhealthy {
        url: String,
        status: String,
        body: String,
    },
}

impl CliError {
    /// 2 for bad input (as for bad flags), 1 for everything that went wrong at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadUrl { .. } | Self::BadApiKey | Self::NoMessage | Self::Config(_) => 2,
            _ => 1,
        }
    }
}

/// The parts of a server frame the clients act on; the payload is never parsed into these.
#[derive(Debug, Deserialize)]
struct FrameHead {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

/// `{"code","message"}` of an error frame or a REST error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// A REST error body, as the server answers a refused upgrade.
#[derive(Debug, Deserialize)]
struct RestError {
    error: ErrorBody,
}

impl ErrorBody {
    fn into_cli(self, context: String) -> CliError {
        CliError::Server {
            code: self.code,
            message: self.message,
            context,
        }
    }
}

/// Runs `herald sub`: subscribe, then copy events to stdout until Ctrl-C, SIGTERM or the server
/// closes (1000 or 1001 is a clean end).
pub async fn sub(args: SubArgs) -> Result<(), CliError> {
    let url = ws_url(&args.client.url)?;
    // Installed before connecting, so Ctrl-C at any point ends `sub` the same clean way.
    let signal = stop_signal();
    tokio::pin!(signal);
    let mut frame = json!({"type": "subscribe", "topic": args.topic, "request_id": "sub"});
    if let Some(n) = args.last_n {
        frame["last_n"] = n.into();
    }
    if let Some(s) = args.since_seq {
        frame["since_seq"] = s.into();
    }
    if let Some(e) = &args.epoch {
        frame["epoch"] = e.as_str().into();
    }
    let subscribe = async {
        let mut ws = connect(&url, args.client.api_key.as_deref()).await?;
        let ack = request(&mut ws, frame, "sub").await?;
        Ok::<_, CliError>((ws, ack))
    };
    let (mut ws, ack) = tokio::select! {
        biased;
        () = &mut signal => return Ok(()),
        subscribed = subscribe => subscribed?,
    };
    let ack: Value = serde_json::from_str(&ack).unwrap_or_default();
    eprintln!(
        "herald: subscribed to {} at seq {} (epoch {})",
        args.topic,
        ack["seq"],
        ack["epoch"].as_str().unwrap_or("?")
    );
    if let (Some(since), Some(false)) = (args.since_seq, ack["recovered"].as_bool()) {
        eprintln!(
            "herald: warning: messages after seq {since} were lost (epoch changed or ring overrun); \
             replaying what the server still holds"
        );
    }

    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut unflushed = 0;
    let result = loop {
        // Flush when nothing else is ready (or after a long burst), so a burst is one write; the
        // signal is checked at every flush.
        let ready = if unflushed < MAX_UNFLUSHED {
            ws.next().now_or_never()
        } else {
            None
        };
        let next = match ready {
            Some(next) => next,
            None => {
                if let Err(e) = out.flush() {
                    break stdout_error(e);
                }
                unflushed = 0;
                tokio::select! {
                    biased;
                    () = &mut signal => {
                        close(&mut ws).await;
                        break Ok(());
                    }
                    next = ws.next() => next,
                }
            }
        };
        unflushed += 1;
        let text = match next {
            Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Close(frame))) => {
                drain(&mut ws).await;
                break closed(frame);
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => break Err(CliError::Lost(e.to_string())),
            None => {
                break Err(CliError::Lost(
                    "the stream ended without a close frame".into(),
                ))
            }
        };
        let Ok(head) = serde_json::from_str::<FrameHead>(&text) else {
            continue;
        };
        match (head.kind.as_str(), head.msg.as_deref()) {
            ("event", _) => {
                let written = if text.contains('\n') {
                    // Events are compact JSON; re-encode anything else so one event is one line.
                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    writeln!(out, "{value}")
                } else {
                    writeln!(out, "{text}")
                };
                if let Err(e) = written {
                    break stdout_error(e);
                }
            }
            ("info", Some("topic_deleted")) if head.topic.as_deref() == Some(&args.topic) => {
                close(&mut ws).await;
                break Err(CliError::TopicDeleted(args.topic.clone()));
            }
            ("info", Some("shutting_down")) => eprintln!("herald: the server is shutting down"),
            ("error", _) => {
                if let Some(e) = head.error {
                    eprintln!("herald: server error: {}: {}", e.code, e.message);
                }
            }
            _ => {}
        }
    };
    match out.flush() {
        Err(e) if result.is_ok() => stdout_error(e),
        _ => result,
    }
}

/// Runs `herald pub`: one message, or one per stdin line; stops at the first error.
pub async fn publish(args: PubArgs) -> Result<(), CliError> {
    let url = ws_url(&args.client.url)?;
    let from_stdin = match args.message.as_deref() {
        Some("-") => true,
        Some(_) => false,
        None if std::io::stdin().is_terminal() => return Err(CliError::NoMessage),
        None => true,
    };
    let mut ws = connect(&url, args.client.api_key.as_deref()).await?;
    if !from_stdin {
        let message = args.message.unwrap_or_default();
        publish_one(&mut ws, &args.topic, &message, 1, String::new()).await?;
    } else {
        let mut lines = stdin_lines();
        let mut count = 0u64;
        while let Some(line) = lines.recv().await {
            let (number, line) = line.map_err(CliError::Stdin)?;
            if line.trim().is_empty() {
                continue;
            }
            count += 1;
            let context = format!(" (stdin line {number})");
            publish_one(&mut ws, &args.topic, &line, count, context).await?;
        }
    }
    close(&mut ws).await;
    Ok(())
}

/// Publishes `message` and prints its ack as one line on stdout.
async fn publish_one(
    ws: &mut Socket,
    topic: &str,
    message: &str,
    n: u64,
    context: String,
) -> Result<(), CliError> {
    let payload = serde_json::from_str::<Value>(message)
        .unwrap_or_else(|_| Value::String(message.to_owned()));
    let request_id = format!("pub-{n}");
    let frame = json!({"type": "publish", "topic": topic, "message": {"payload": payload},
        "request_id": request_id});
    let ack = request(ws, frame, &request_id).await.map_err(|e| match e {
        CliError::Server { code, message, .. } => CliError::Server {
            code,
            message,
            context,
        },
        other => other,
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ack}")
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

/// Sends `frame` and returns the text of the ack that answers it, or the error frame as an error.
async fn request(ws: &mut Socket, frame: Value, request_id: &str) -> Result<String, CliError> {
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| CliError::Lost(e.to_string()))?;
    let reply = async {
        loop {
            let text = match ws.next().await {
                Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                Some(Ok(Message::Close(frame))) => {
                    drain(ws).await;
                    return match closed(frame) {
                        Ok(()) => Err(CliError::Closed("before answering".into())),
                        Err(e) => Err(e),
                    };
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(CliError::Lost(e.to_string())),
                None => return Err(CliError::Lost("the stream ended".into())),
            };
            let Ok(head) = serde_json::from_str::<FrameHead>(&text) else {
                continue;
            };
            // An error without a request_id answers the one frame in flight.
            let ours = head.request_id.as_deref().is_none_or(|id| id == request_id);
            match head.kind.as_str() {
                "ack" if head.request_id.as_deref() == Some(request_id) => return Ok(text),
                "error" if ours => {
                    let body = head.error.unwrap_or(ErrorBody {
                        code: "UNKNOWN".into(),
                        message: text,
                    });
                    return Err(body.into_cli(String::new()));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(REPLY_TIMEOUT, reply)
        .await
        .map_err(|_| CliError::NoReply)?
}

/// Stdin lines, numbered from 1, read on a thread of their own: a blocking read cannot be
/// cancelled, and the thread ends with the process.
fn stdin_lines() -> mpsc::Receiver<std::io::Result<(u64, String)>> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    std::thread::spawn(move || {
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let failed = line.is_err();
            let item = line.map(|l| (i as u64 + 1, l.trim_end_matches('\r').to_owned()));
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Normalizes `--url` to a `ws://` URL with a path (`/ws` when none is given).
fn ws_url(url: &str) -> Result<String, CliError> {
    let bad = |reason| CliError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("ws://{url}")
    };
    let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("ws") | Some("http") => "ws",
        Some("wss") | Some("https") => {
            return Err(bad(
                "TLS is not built into this client; use ws:// (through a TLS-terminating proxy's plain port)",
            ))
        }
        _ => return Err(bad("the scheme must be ws:// or http://")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") | Some("/") => "/ws",
        Some(p) => p,
    };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// Opens the WebSocket, with the API key as `X-API-Key`, and sorts the ways it can fail.
async fn connect(url: &str, api_key: Option<&str>) -> Result<Socket, CliError> {
    let mut req = url.into_client_request().map_err(|_| CliError::BadUrl {
        url: url.to_owned(),
        reason: "not a WebSocket URL",
    })?;
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        let value = HeaderValue::from_str(key).map_err(|_| CliError::BadApiKey)?;
        req.headers_mut().insert("x-api-key", value);
    }
    let connecting = tokio_tungstenite::connect_async_with_config(req, None, true);
    let result = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| CliError::Connect {
            url: url.to_owned(),
            reason: format!("timed out after {}s", CONNECT_TIMEOUT.as_secs()),
        })?;
    match result {
        Ok((ws, _response)) => Ok(ws),
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            let mut detail = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<RestError>(b).ok())
                .map(|e| format!(" {}: {}", e.error.code, e.error.message))
                .unwrap_or_default();
            if status == 401 {
                detail.push_str(match api_key {
                    Some(_) => " (check --api-key / HERALD_API_KEY)",
                    None => " (the server needs --api-key or HERALD_API_KEY)",
                });
            }
            Err(CliError::Refused {
                url: url.to_owned(),
                status,
                detail,
            })
        }
        Err(WsError::Io(e)) => Err(CliError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) => Err(CliError::Connect {
            url: url.to_owned(),
            reason: format!("WebSocket handshake failed: {e}"),
        }),
    }
}

/// Sends a normal close and waits (bounded) for the server's reply.
async fn close(ws: &mut Socket) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    drain(ws).await;
}

/// Reads until the stream ends, so the close handshake completes; bounded by `CLOSE_TIMEOUT`.
async fn drain(ws: &mut Socket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// 1000 and 1001 (server shutting down) end a subscription cleanly; anything else is an error.
fn closed(frame: Option<CloseFrame>) -> Result<(), CliError> {
    let Some(frame) = frame else {
        return Ok(());
    };
    let text = format!("{} {}", u16::from(frame.code), frame.reason.as_str())
        .trim_end()
        .to_owned();
    match frame.code {
        CloseCode::Normal | CloseCode::Away => {
            eprintln!("herald: the server closed the connection ({text})");
            Ok(())
        }
        _ => Err(CliError::Closed(text)),
    }
}

/// A closed pipe (`herald sub t | head -3`) ends `sub` quietly; other write errors do not.
fn stdout_error(e: std::io::Error) -> Result<(), CliError> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(CliError::Stdout(e))
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called, not
/// when first polled, so a signal that arrives early is not fatal.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `herald probe`. `server_addr` is where a server configured by this environment listens,
/// the target when `--url` is absent.
pub async fn probe(
    args: ProbeArgs,
    server_addr: Result<SocketAddr, ConfigError>,
) -> Result<(), CliError> {
    let (host, port, path) = match &args.url {
        Some(url) => probe_target(url, &args.path)?,
        None => {
            let mut addr = server_addr?;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let host = match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            (host, addr.port(), args.path.clone())
        }
    };
    let url = format!("http://{host}:{port}{path}");
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let check = async {
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let mut stream = TcpStream::connect((connect_host, port)).await?;
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: herald-probe\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        let mut response = Vec::new();
        stream
            .take(PROBE_MAX_RESPONSE)
            .read_to_end(&mut response)
            .await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = match tokio::time::timeout(timeout, check).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(CliError::Connect {
                url,
                reason: e.to_string(),
            })
        }
        Err(_) => {
            return Err(CliError::Connect {
                url,
                reason: format!("no answer within {}s", timeout.as_secs()),
            })
        }
    };
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    let body: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(PROBE_BODY_SHOWN)
        .collect();
    if status_line.starts_with("HTTP/1.") && status.starts_with('2') {
        println!("{status} {body}");
        Ok(())
    } else {
        Err(CliError::Unhealthy {
            url,
            status: if status.is_empty() {
                "no HTTP status".into()
            } else {
                status.to_owned()
            },
            body: if body.is_empty() {
                body
            } else {
                format!(": {body}")
            },
        })
    }
}

/// `(host, port, path)` of a probe URL; the URL's own path wins over `--path`.
fn probe_target(url: &str, default_path: &str) -> Result<(String, u16, String), CliError> {
    let bad = |reason| CliError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("ws") => {}
        Some("https") | Some("wss") => {
            return Err(bad("TLS is not built into the probe; use http://"))
        }
        _ => return Err(bad("the scheme must be http://")),
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("") | Some("/") => default_path.to_owned(),
        Some(p) => p.to_owned(),
    };
    if !path.starts_with('/') {
        return Err(bad("the path must start with /"));
    }
    Ok((host, port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_to_the_ws_route() {
        let ok = |u: &str| ws_url(u).unwrap();
        assert_eq!(ok("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ok("ws://h:1/"), "ws://h:1/ws");
        assert_eq!(ok("http://h:1/ws/sub/x?id=a"), "ws://h:1/ws/sub/x?id=a");
        assert_eq!(ok("localhost:9000"), "ws://localhost:9000/ws");
        assert_eq!(ok("ws://[::1]:80"), "ws://[::1]:80/ws");
        assert!(matches!(ws_url("wss://h"), Err(CliError::BadUrl { .. })));
        assert!(matches!(ws_url("ftp://h"), Err(CliError::BadUrl { .. })));
        assert!(matches!(ws_url("ws://"), Err(CliError::BadUrl { .. })));
    }

    #[test]
    fn probe_urls_take_the_default_path() {
        let t = |u: &str| probe_target(u, "/livez").unwrap();
        assert_eq!(
            t("http://127.0.0.1:8080"),
            ("127.0.0.1".into(), 8080, "/livez".into())
        );
        assert_eq!(t("ws://h:9/readyz"), ("h".into(), 9, "/readyz".into()));
        assert_eq!(t("h"), ("h".into(), 80, "/livez".into()));
        assert_eq!(t("http://[::1]:7"), ("[::1]".into(), 7, "/livez".into()));
        assert!(probe_target("https://h", "/livez").is_err());
    }

    #[test]
    fn frame_heads_ignore_the_payload() {
        let head: FrameHead = serde_json::from_str(
            r#"{"type":"error","request_id":"r","error":{"code":"X","message":"m"},"ts":"t"}"#,
        )
        .unwrap();
        assert_eq!(head.kind, "error");
        assert_eq!(head.error.unwrap().code, "X");
    }
}
