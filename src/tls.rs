//! Optional native TLS: with `--tls-cert` and `--tls-key` (PEM files) the one listener serves
//! HTTPS and `wss://` through rustls with the `ring` provider (TLS 1.2 and 1.3, HTTP/1.1 by ALPN).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::error::ErrorCode;

/// Why the certificate or key cannot be used; the message is the one line shown at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no PEM certificate.
    #[error("TLS_CERT {path}: {reason}")]
    Certificate {
        /// The file given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file is missing, unreadable or holds no PEM private key.
    #[error("TLS_KEY {path}: {reason}")]
    Key {
        /// The file given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair (say, the key does not belong to the certificate).
    #[error("TLS_CERT and TLS_KEY cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// Loads the PEM certificate chain and private key into a server configuration.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    // Explicit provider: the process-wide default would be ambiguous if another crate in the
    // build enabled a second one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // hyper serves HTTP/1.1 only here (WebSocket upgrades need it), so never agree to h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in the file, leaf first (the client's `--cacert` reads its file so too).
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Certificate {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_reason(e)))?;
    if certs.is_empty() {
        return Err(fail(
            "no PEM certificate (BEGIN CERTIFICATE) in the file".into(),
        ));
    }
    Ok(certs)
}

/// The first private key in the file (PKCS#8, PKCS#1 or SEC1).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        reason: match e {
            pem::Error::NoItemsFound => "no PEM private key (BEGIN PRIVATE KEY) in the file".into(),
            e => pem_reason(e),
        },
    })
}

/// A PEM error as a short phrase; the crate's own text prints byte arrays.
fn pem_reason(e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => e.to_string(),
        pem::Error::NoItemsFound => "no PEM section found".into(),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "malformed PEM BEGIN line".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        other => other.to_string(),
    }
}

/// First byte of a TLS record that carries a handshake message (every ClientHello starts so).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How long a refused plain-HTTP client may keep sending before the socket is dropped.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Why a connection did not become a TLS stream.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The client spoke plain HTTP; it was answered with a 400 saying so.
    #[error("plain HTTP sent to the TLS port (answered 400)")]
    PlainHttp,
    /// No complete handshake within the header read timeout.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The handshake failed (not TLS, no shared cipher, the client distrusts the certificate).
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
}

/// Completes the server side of the handshake within `timeout` (a slowloris guard, like the
/// header read timeout). A client that speaks plain HTTP gets a 400 JSON error naming the
/// problem, as nginx does, instead of a reset it would have to puzzle over.
pub async fn accept(
    config: Arc<ServerConfig>,
    stream: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, AcceptError> {
    let handshake = async move {
        let mut first = [0u8; 1];
        let read = stream
            .peek(&mut first)
            .await
            .map_err(AcceptError::Handshake)?;
        if read == 1 && first[0] != TLS_HANDSHAKE_RECORD && first[0].is_ascii_uppercase() {
            refuse_plain_http(stream).await;
            return Err(AcceptError::PlainHttp);
        }
        TlsAcceptor::from(config)
            .accept(stream)
            .await
            .map_err(AcceptError::Handshake)
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or(Err(AcceptError::Timeout))
}

/// Answers a plain-HTTP request with 400 and closes.
async fn refuse_plain_http(mut stream: TcpStream) {
    let body = format!(
        r#"{{"error":{{"code":"{}","message":"this port speaks TLS: use https:// or wss://"}}}}"#,
        ErrorCode::BadRequest.as_str()
    );
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        // Read the request before answering and until the client closes after, so the socket is
        // not reset under an answer the client has not read yet.
        let mut scratch = [0u8; 4096];
        let _ = stream.read(&mut scratch).await;
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut scratch).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}
