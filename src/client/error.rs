//! Why a client command failed: one [`CliError`] each, printed by `main` as one line.

use crate::config::ConfigError;

use std::time::Duration;

/// How long `pub` and `sub` wait for the ack (or error) that answers their frame.
pub(super) const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client command failed. Each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `herald token` could not mint (a short secret, a bad pattern, …).
    #[error("cannot mint a token: {0}")]
    Mint(String),
    /// The URL cannot be used.
    #[error("invalid URL `{url}`: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `--cacert` file cannot be used.
    #[error("--cacert {path}: {reason}")]
    BadCaCert {
        /// The file given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS cannot be set up on this machine (say, no CA certificates to trust).
    #[error("{0}")]
    Tls(String),
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
    Connect {
        /// The URL connected to.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The server answered the WebSocket upgrade with an HTTP error.
    #[error("{url} refused the connection: HTTP {status}{detail}")]
    Refused {
        /// The URL connected to.
        url: String,
        /// The HTTP status of the answer.
        status: u16,
        /// The error code and message of its body, and a hint.
        detail: String,
    },
    /// The server answered a frame with an error frame.
    #[error("{code}: {message}{context}")]
    Server {
        /// The wire error code.
        code: String,
        /// The server's message.
        message: String,
        /// Which input it answers (say, a stdin line), or nothing.
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
        /// The URL probed.
        url: String,
        /// The HTTP status, or why there is none.
        status: String,
        /// The start of the answer's body.
        body: String,
    },
}

impl CliError {
    /// 2 for bad input (as for bad flags), 1 for everything that went wrong at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadUrl { .. }
            | Self::BadCaCert { .. }
            | Self::BadApiKey
            | Self::NoMessage
            | Self::Mint(_)
            | Self::Config(_) => 2,
            _ => 1,
        }
    }
}
