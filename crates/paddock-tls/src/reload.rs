//! The certificate a listener presents, taken up again when its files
//! change. A handshake reads whichever certificate is current, so a
//! renewal reaches new connections at once and established ones keep
//! theirs. A renewal that cannot be read (half written, a key that is not
//! the certificate's) changes nothing: the certificate in use stays, and
//! the log says why until the files are right.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::TlsError;
use crate::files::{CertFiles, Stamp};

#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files as they were when last looked at.
    seen: Mutex<Stamp>,
}

impl ReloadingCert {
    /// Reads the files now: a listener never starts without a certificate.
    pub fn open(files: CertFiles) -> Result<Arc<Self>, TlsError> {
        let seen = files.stamp();
        let current = files.load()?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        }))
    }

    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// Takes the files up again if they changed since last looked at:
    /// `Ok(true)` when a new certificate is now in use. On an error the
    /// one in use stays, and the same files are tried again next time.
    pub fn check(&self) -> Result<bool, TlsError> {
        let now = self.files.stamp();
        let mut seen = self.seen.lock();
        if *seen == now {
            return Ok(false);
        }
        let loaded = self.files.load()?;
        *self.current.write() = loaded;
        *seen = now;
        Ok(true)
    }

    /// Looks at the files every `every`, and at once when `nudged` (a
    /// SIGHUP, say), until `stop`; logs what it takes up and what it
    /// cannot.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        nudged: Arc<Notify>,
        stop: CancellationToken,
    ) {
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
                _ = nudged.notified() => {}
            }
            match self.check() {
                Ok(true) => {
                    last_error = None;
                    tracing::info!(cert = %self.files.cert.display(), "took up the renewed TLS certificate");
                }
                Ok(false) => {}
                Err(e) => {
                    let message = e.to_string();
                    // Once per distinct failure, not once per look.
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::error!(error = %message, "the TLS certificate's files changed but cannot be used; still serving the previous certificate");
                        last_error = Some(message);
                    }
                }
            }
        }
    }

    /// A rustls server configuration presenting the current certificate,
    /// offering `alpn` (most preferred first).
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}
