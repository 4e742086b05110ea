//! Certificates for TLS tests, made here by rcgen: a CA and a server certificate it signed, or a
//! self-signed server certificate, as PEM files in a directory removed on drop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use herald::config::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A server certificate and key, and the certificate that vouches for it.
pub struct Pki {
    /// The directory of the files below.
    pub dir: PathBuf,
    /// The CA certificate, PEM (the server certificate itself when self-signed).
    pub ca_pem: String,
    /// `ca_pem` as a file, for `--cacert` and `SSL_CERT_FILE`.
    pub ca: PathBuf,
    /// The server certificate, PEM (`TLS_CERT`).
    pub cert: PathBuf,
    /// The server's private key, PEM (`TLS_KEY`).
    pub key: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    /// A CA, and a server certificate it signed for `names` (DNS names or IP addresses).
    pub fn new(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "herald test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = leaf_params(names).signed_by(&key, &issuer).unwrap();
        Self::write(ca_cert.pem(), leaf.pem(), key.serialize_pem())
    }

    /// A server certificate for `names` signed by its own key, as a quick `openssl req -x509`
    /// makes: no CA vouches for it, so clients must be told to trust it.
    pub fn self_signed(names: &[&str]) -> Self {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names).self_signed(&key).unwrap();
        Self::write(cert.pem(), cert.pem(), key.serialize_pem())
    }

    /// `TLS_CERT` and `TLS_KEY` for an in-process server.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    fn write(ca_pem: String, cert_pem: String, key_pem: String) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "herald-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca_pem,
            dir,
        };
        std::fs::write(&pki.ca, &pki.ca_pem).unwrap();
        std::fs::write(&pki.cert, cert_pem).unwrap();
        std::fs::write(&pki.key, key_pem).unwrap();
        pki
    }
}

/// A server certificate's parameters: `names` as subject alternative names, the first as CN.
fn leaf_params(names: &[&str]) -> CertificateParams {
    let mut leaf =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("herald"),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf
}
