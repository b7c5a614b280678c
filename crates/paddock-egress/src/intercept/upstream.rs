//! The gateway's side towards a host it terminates for: TLS verified
//! against the system's roots (plus a configured CA), ALPN offering h2
//! and HTTP/1.1, dialled only to the addresses the decision allowed, and
//! pooled for the life of the box's connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::EgressError;

/// The client configuration for every upstream: the host's trusted roots,
/// and `extra_ca_file`'s certificates (a site's own CA; tests' servers).
pub fn client_config(extra_ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, EgressError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // One unreadable system root does not take the others away.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca_file {
        use rustls::pki_types::pem::PemObject as _;
        let bad = |e: String| {
            EgressError::Invalid(format!("[egress] upstream_ca_file {}: {e}", path.display()))
        };
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("holds no certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| EgressError::Invalid(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Dials the allowed addresses of one host and speaks TLS to it under the
/// name the box asked for.
#[derive(Clone)]
pub(crate) struct UpstreamConnector {
    pub addrs: Arc<[SocketAddr]>,
    pub name: ServerName<'static>,
    pub tls: TlsConnector,
    pub timeout: Duration,
}

/// One upstream connection, telling the pool whether ALPN chose h2.
pub(crate) struct UpstreamIo {
    io: TokioIo<TlsStream<TcpStream>>,
    h2: bool,
}

/// Why an upstream could not be reached, kept apart so the box is told a
/// certificate it should not trust from a host that is down.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("its TLS certificate is not trusted: {0}")]
    Certificate(String),
    #[error("TLS failed: {0}")]
    Tls(io::Error),
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = UpstreamIo;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = crate::proxy::dial(&this.addrs, this.timeout)
                .await
                .map_err(UpstreamError::Connect)?;
            let tls = this
                .tls
                .connect(this.name.clone(), tcp)
                .await
                .map_err(|e| {
                    let certificate = e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                        .filter(|r| matches!(r, rustls::Error::InvalidCertificate(_)))
                        .map(ToString::to_string);
                    match certificate {
                        Some(why) => UpstreamError::Certificate(why),
                        None => UpstreamError::Tls(e),
                    }
                })?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(UpstreamIo {
                io: TokioIo::new(tls),
                h2,
            })
        })
    }
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
