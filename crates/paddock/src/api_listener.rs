//! The API's listener: plain HTTP, or HTTPS with a certificate taken up
//! again whenever its files change (looked at every `tls_reload_secs`, and
//! at once on SIGHUP).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use paddock_tls::{CertFiles, ReloadingCert, TlsListener};

pub enum ApiListener {
    Plain(TcpListener),
    Tls(TlsListener, Arc<ReloadingCert>),
}

impl ApiListener {
    /// Reads the certificate now when there is one: a listener with files
    /// that cannot serve never starts.
    pub fn new(listener: TcpListener, tls: Option<&CertFiles>) -> anyhow::Result<Self> {
        let Some(files) = tls else {
            return Ok(Self::Plain(listener));
        };
        let cert = ReloadingCert::open(files.clone())
            .context("cannot serve HTTPS with server.tls_cert and server.tls_key")?;
        let config = cert.server_config(&[b"http/1.1"])?;
        Ok(Self::Tls(TlsListener::new(listener, config)?, cert))
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Plain(_) => "http",
            Self::Tls(..) => "https",
        }
    }

    /// What watches the certificate's files, if anything needs to.
    pub fn certificate(&self) -> Option<Arc<ReloadingCert>> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(_, cert) => Some(cert.clone()),
        }
    }

    /// Serves `app` until `until` completes, then lets requests under way
    /// finish.
    pub async fn serve(
        self,
        app: axum::Router,
        until: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match self {
            Self::Plain(l) => axum::serve(l, app).with_graceful_shutdown(until).await,
            Self::Tls(l, _) => axum::serve(l, app).with_graceful_shutdown(until).await,
        }
    }
}

/// Watches the certificate's files every `every` and on each SIGHUP.
pub async fn watch_certificate(cert: Arc<ReloadingCert>, every: Duration, stop: CancellationToken) {
    let nudge = Arc::new(tokio::sync::Notify::new());
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            let (nudge, stop) = (nudge.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        got = hangups.recv() => match got {
                            Some(()) => nudge.notify_one(),
                            None => return,
                        },
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP for the TLS certificate; its files are still looked at")
        }
    }
    cert.watch(every, nudge, stop).await;
}

/// How long the spoke listener's own certificate lasts; a new one is made
/// at every start.
const SPOKE_LISTENER_CERT_LIFE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The listener spokes dial: mutual TLS with the hub's spoke CA on both
/// sides, for the `names` spokes reach it by.
pub fn spoke_listener(
    listener: TcpListener,
    names: &[String],
    spokes: &paddock_spoke::Enrolment,
) -> anyhow::Result<TlsListener> {
    let bound = listener.local_addr()?;
    let config = spokes
        .ca()
        .listener_config(names, SPOKE_LISTENER_CERT_LIFE)
        .context("the spoke listener's TLS")?;
    tracing::info!(address = %bound, names = ?names, "spokes dial in on https://{bound}");
    Ok(TlsListener::with_log(
        listener,
        config,
        paddock_tls::HandshakeLog::Warn,
    )?)
}
