//! TLS on paddock's own listeners: a certificate and key read from PEM
//! files an operator (or certbot, or cert-manager) keeps current, taken up
//! again whenever the files change without dropping a connection, and a
//! listener that completes handshakes off the accept loop so a slow or
//! silent client holds up nobody else.
//!
//! It also holds the hub's CA for spokes (`SpokeCa`): client
//! certificates issued for a spoke's name in trade for a signing request.
//!
//! What the crate must not do: decide who may call (IAM does, on the
//! requests that arrive), or know paddock's routes.

mod files;
mod listener;
mod reload;
mod spoke_ca;

pub use files::CertFiles;
pub use listener::{HANDSHAKE_DEADLINE, HandshakeLog, TlsListener};
pub use reload::ReloadingCert;
pub use spoke_ca::{IssuedCert, PeerCert, SPOKE_CA_FILES, SpokeCa, peer_cert, spoke_request};

use std::path::PathBuf;

/// Why a certificate could not be taken up. Nothing here ever carries a
/// key's bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no usable PEM private key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("the TLS configuration was refused: {0}")]
    Config(String),
    #[error("not a usable certificate signing request: {0}")]
    Csr(String),
}

#[cfg(test)]
mod tests;
