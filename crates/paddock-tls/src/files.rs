//! A certificate chain and its key, as PEM files on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::TlsError;

/// Where the certificate (leaf first, then its chain) and its private
/// key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a change to either file changes: its modification time, its
/// length and its inode (a renewal that renames a new file into place
/// keeps neither).
pub(crate) type Stamp = [(Option<SystemTime>, u64, u64); 2];

fn stamp_of(path: &Path) -> (Option<SystemTime>, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => (m.modified().ok(), m.len(), m.ino()),
        Err(_) => (None, 0, 0),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

impl CertFiles {
    pub(crate) fn stamp(&self) -> Stamp {
        [stamp_of(&self.cert), stamp_of(&self.key)]
    }

    /// Reads both files and checks that the key is the certificate's.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let cert_pem = read(&self.cert)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key_pem = read(&self.key)?;
        let bad_key = |reason: String| TlsError::BadKey {
            path: self.key.clone(),
            reason,
        };
        // The parser's own errors describe the PEM, never the key's bytes.
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad_key(e.to_string()))?;
        let provider = rustls::crypto::ring::default_provider();
        match CertifiedKey::from_der(chain, key, &provider) {
            Ok(certified) => Ok(Arc::new(certified)),
            Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
            }),
            Err(e) => Err(bad_key(e.to_string())),
        }
    }
}
