//! The byte stream under every command: TCP, with a TLS handshake first for `https://` and
//! `wss://` targets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::target::Target;
use super::tls::{client_config, describe, Trust};
use super::CliError;

/// A connection to the server, plain or TLS.
#[derive(Debug)]
pub(super) enum Stream {
    /// `http://`, `ws://`.
    Plain(TcpStream),
    /// `https://`, `wss://` (boxed: a TLS stream carries its buffers inline).
    Tls(Box<TlsStream<TcpStream>>),
}

/// Connects to `target`, with a TLS handshake trusting `trust` when its scheme asks for one.
/// `url` names the target in errors.
pub(super) async fn open(target: &Target, trust: &Trust, url: &str) -> Result<Stream, CliError> {
    let failed = |reason: String| CliError::Connect {
        url: url.to_owned(),
        reason,
    };
    // Built before connecting, so a bad --cacert is reported as such even if the server is down.
    let tls = if target.tls {
        Some(client_config(trust)?)
    } else {
        None
    };
    let tcp = TcpStream::connect((target.bare_host(), target.port))
        .await
        .map_err(|e| failed(e.to_string()))?;
    // Frames are small and the client waits for each ack: no Nagle delay.
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Stream::Plain(tcp));
    };
    let name = ServerName::try_from(target.bare_host().to_owned())
        .map_err(|_| failed("the host is not a valid TLS server name".into()))?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| failed(describe(&e)))?;
    Ok(Stream::Tls(Box::new(stream)))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
