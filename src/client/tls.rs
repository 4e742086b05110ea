//! The client side of TLS: which certificates a connection trusts (the system's CA store,
//! `--cacert FILE`, or nothing checked with `--insecure`), and a failed handshake in words.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::TlsError;

use super::{CliError, TlsArgs};

/// What a TLS connection accepts as the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Trust {
    /// A chain to a CA of the system's store (the default, as curl and browsers).
    System,
    /// A chain to a certificate of this PEM file (`--cacert`).
    CaFile(std::path::PathBuf),
    /// Any certificate (`--insecure`, and `probe`'s check of its own server's listener).
    Anything,
}

impl Trust {
    /// The trust the flags ask for.
    pub(super) fn from_args(args: &TlsArgs) -> Self {
        match (&args.cacert, args.insecure) {
            (_, true) => Self::Anything,
            (Some(file), false) => Self::CaFile(file.clone()),
            (None, false) => Self::System,
        }
    }
}

/// A rustls client configuration for `trust`, with the `ring` provider the server uses too.
pub(super) fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, CliError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Tls(format!("cannot set up TLS: {e}")))?;
    let mut config = match trust {
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::System => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Trust::CaFile(path) => builder
            .with_root_certificates(file_roots(path)?)
            .with_no_client_auth(),
    };
    // The server speaks HTTP/1.1 only (WebSocket upgrades need it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CA certificates of the operating system's store (`SSL_CERT_FILE` / `SSL_CERT_DIR`
/// override it, as for OpenSSL).
fn system_roots() -> Result<RootCertStore, CliError> {
    let hint = "install the ca-certificates package, or pass --cacert FILE";
    let certs = rustls_native_certs::load_native_certs().map_err(|e| {
        CliError::Tls(format!(
            "cannot read the system's CA certificates ({e}): {hint}"
        ))
    })?;
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(CliError::Tls(format!(
            "the system has no CA certificates to check the server against: {hint}"
        )));
    }
    Ok(roots)
}

/// Every certificate of a PEM file, as trust anchors.
fn file_roots(path: &Path) -> Result<RootCertStore, CliError> {
    let bad = |reason: String| CliError::BadCaCert {
        path: path.display().to_string(),
        reason,
    };
    let certs = crate::tls::load_certs(path).map_err(|e| match e {
        TlsError::Certificate { reason, .. } => bad(reason),
        other => bad(other.to_string()),
    })?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A failed TLS handshake (or a failed connection) as one phrase, with what to do about it.
pub(super) fn describe(e: &io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    match tls {
        rustls::Error::InvalidCertificate(reason) => format!(
            "the server's certificate is not trusted: {} (pass --cacert FILE with the CA that \
             issued it, or --insecure to skip the check)",
            certificate_reason(reason)
        ),
        rustls::Error::InvalidMessage(_) => "TLS handshake failed: the server did not answer in \
             TLS (if it serves plain HTTP, use http:// or ws://)"
            .into(),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Why a certificate was refused, in words.
fn certificate_reason(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => "it is not signed by a CA this client trusts".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is not issued for this host name".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".into()
        }
        CertificateError::BadSignature => "its signature does not verify".into(),
        CertificateError::Revoked => "it is revoked".into(),
        other => format!("{other:?}"),
    }
}

/// `--insecure`: any certificate is accepted, but the handshake's signatures are still checked,
/// so the peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate {
    /// The provider's signature algorithms, for the handshake signatures.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
