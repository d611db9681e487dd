//! TLS material for HTTPS mocks: a self-signed certificate generated at start (written out so
//! clients can trust it), or a user-supplied certificate and key.
//!
//! Some clients only speak https (simple-salesforce builds every URL with `https://`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::MockError;

/// Host names and addresses a generated certificate is valid for.
///
/// `login.salesforce.com` and `test.salesforce.com` are included so that a client whose login
/// URL is fixed can be pointed at the mock by name resolution alone (a hosts-file entry).
pub const DEFAULT_SUBJECT_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "login.salesforce.com",
    "test.salesforce.com",
];

/// A certificate chain and private key, in PEM.
#[derive(Clone)]
pub struct TlsMaterial {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Generate a fresh self-signed certificate for [`DEFAULT_SUBJECT_NAMES`].
    pub fn self_signed() -> Result<Self, MockError> {
        let names: Vec<String> = DEFAULT_SUBJECT_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cert = rcgen::generate_simple_self_signed(names)
            .map_err(|e| MockError::Tls(format!("cannot generate a certificate: {e}")))?;
        Ok(Self {
            cert_pem: cert.cert.pem(),
            key_pem: cert.signing_key.serialize_pem(),
        })
    }

    /// Load a PEM certificate chain and a PEM private key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, MockError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| MockError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let material = Self {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        };
        material.server_config()?;
        Ok(material)
    }

    /// The certificate chain in PEM (what a client must trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Write the certificate (not the key) to `path`, for clients to trust
    /// (e.g. `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`).
    pub fn write_cert(&self, path: &Path) -> Result<PathBuf, MockError> {
        std::fs::write(path, &self.cert_pem).map_err(|source| MockError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(path.to_path_buf())
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, MockError> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| MockError::Tls(format!("bad certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(MockError::Tls("no certificate in PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| MockError::Tls(format!("bad private key PEM: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| MockError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| MockError::Tls(format!("certificate and key do not fit: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A TLS acceptor for the server loop.
    pub fn acceptor(&self) -> Result<TlsAcceptor, MockError> {
        Ok(TlsAcceptor::from(Arc::new(self.server_config()?)))
    }
}
