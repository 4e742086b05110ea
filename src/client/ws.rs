//! The WebSocket connection `sub` and `pub` share: the handshake (with the API key, over TCP or
//! TLS), one request and the ack that answers it, and a bounded close.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::HeaderValue;
use serde::Deserialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::error::REPLY_TIMEOUT;
use super::target::Target;
use super::tls::Trust;
use super::transport::{open, Stream};
use super::{CliError, ClientArgs};

/// How long connecting (TCP, TLS and WebSocket handshakes) may take before the client gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing client waits for the server's close reply before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// An open WebSocket to the server.
pub(super) type Socket = WebSocketStream<Stream>;

/// The parts of a server frame the clients act on; the payload is never parsed into these.
#[derive(Debug, Deserialize)]
pub(super) struct FrameHead {
    /// `ack`, `event`, `error`, `info`, `pong`.
    #[serde(rename = "type")]
    pub(super) kind: String,
    /// Echoed from the frame an ack or error answers.
    #[serde(default)]
    pub(super) request_id: Option<String>,
    /// What an `info` frame announces (`topic_deleted`, `shutting_down`).
    #[serde(default)]
    pub(super) msg: Option<String>,
    /// The topic an `info` frame concerns.
    #[serde(default)]
    pub(super) topic: Option<String>,
    /// The body of an `error` frame.
    #[serde(default)]
    pub(super) error: Option<ErrorBody>,
}

/// `{"code","message"}` of an error frame or a REST error body.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    /// The wire error code.
    pub(super) code: String,
    /// The server's message.
    #[serde(default)]
    pub(super) message: String,
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

/// Sends `frame` and returns the text of the ack that answers it, or the error frame as an error.
pub(super) async fn request(
    ws: &mut Socket,
    frame: Value,
    request_id: &str,
) -> Result<String, CliError> {
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

/// Opens the WebSocket `args` name, with the API key as `X-API-Key`, and sorts the ways it can
/// fail.
pub(super) async fn connect(args: &ClientArgs) -> Result<Socket, CliError> {
    let target = Target::parse(&args.url, "ws", "/ws")?;
    let url = target.ws_url();
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|_| CliError::BadUrl {
            url: args.url.clone(),
            reason: "not a WebSocket URL",
        })?;
    let api_key = args.api_key.as_deref().filter(|k| !k.is_empty());
    if let Some(key) = api_key {
        let value = HeaderValue::from_str(key).map_err(|_| CliError::BadApiKey)?;
        req.headers_mut().insert("x-api-key", value);
    }
    if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
        let value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| CliError::BadApiKey)?;
        req.headers_mut().insert("authorization", value);
    }
    let trust = Trust::from_args(&args.tls);
    let connecting = async {
        let stream = open(&target, &trust, &url).await?;
        tokio_tungstenite::client_async_with_config(req, stream, None)
            .await
            .map(|(ws, _response)| ws)
            .map_err(|e| handshake_error(e, &url, api_key))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| CliError::Connect {
            url: url.clone(),
            reason: format!("timed out after {}s", CONNECT_TIMEOUT.as_secs()),
        })?
}

/// A refused or failed WebSocket handshake as one error, with a hint for a missing key.
fn handshake_error(e: WsError, url: &str, api_key: Option<&str>) -> CliError {
    match e {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let mut detail = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<RestError>(b).ok())
                .map(|e| format!(" {}: {}", e.error.code, e.error.message))
                .unwrap_or_default();
            if status == 401 {
                detail.push_str(match api_key {
                    Some(_) => " (check --api-key / HERALD_API_KEY, or --token / HERALD_TOKEN)",
                    None => {
                        " (the server needs --api-key / HERALD_API_KEY or --token / HERALD_TOKEN)"
                    }
                });
            }
            CliError::Refused {
                url: url.to_owned(),
                status,
                detail,
            }
        }
        WsError::Io(e) => CliError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        },
        e => CliError::Connect {
            url: url.to_owned(),
            reason: format!("WebSocket handshake failed: {e}"),
        },
    }
}

/// Sends a normal close and waits (bounded) for the server's reply.
pub(super) async fn close(ws: &mut Socket) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    drain(ws).await;
}

/// Reads until the stream ends, so the close handshake completes; bounded by `CLOSE_TIMEOUT`.
pub(super) async fn drain(ws: &mut Socket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// 1000 and 1001 (server shutting down) end a subscription cleanly; anything else is an error.
pub(super) fn closed(frame: Option<CloseFrame>) -> Result<(), CliError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
