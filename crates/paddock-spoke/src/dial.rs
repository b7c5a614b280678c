//! The spoke's end of the link: it dials the hub (outbound only, so a
//! spoke behind NAT needs no open port) with the client certificate it
//! enrolled for, trusting the hub by the CA it got then, and keeps the
//! link up — again after a cut, with a growing pause. A refusal (the
//! spoke was revoked, or enrolled again elsewhere) ends the run: trying
//! again would change nothing until someone enrols it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::SpokeError;
use crate::local::Local;
use crate::talk::Link;
use crate::wire::{CONNECT_PATH, MAX_FRAME};

/// The files `paddock spoke enroll` writes in the spoke's directory.
pub const KEY_FILE: &str = "spoke-key.pem";
pub const CERT_FILE: &str = "spoke.pem";
pub const HUB_CA_FILE: &str = "hub-ca.pem";

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// What the spoke offers the hub.
#[derive(Debug, Clone)]
pub struct SpokeInfo {
    pub max_boxes: u32,
    /// `[spokes] ping_secs`: see `liveness`.
    pub ping_every: Duration,
}

fn read(path: &Path) -> Result<Vec<u8>, SpokeError> {
    std::fs::read(path).map_err(|e| {
        SpokeError::Files(format!(
            "cannot read {} ({e}): has this machine enrolled (`paddock spoke enroll`)?",
            path.display()
        ))
    })
}

/// The spoke's TLS: its certificate and key, and the hub's CA alone as
/// the root (no public CA can vouch for a hub).
pub fn client_config(dir: &Path) -> Result<Arc<rustls::ClientConfig>, SpokeError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        SpokeError::Files(format!("{what} in {}: {e}", dir.display()))
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&dir.join(CERT_FILE))?)
            .collect::<Result<_, _>>()
            .map_err(|e| bad("the spoke's certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&dir.join(KEY_FILE))?)
        .map_err(|e| bad("the spoke's key", &e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&dir.join(HUB_CA_FILE))?) {
        let ca = ca.map_err(|e| bad("the hub's CA", &e))?;
        roots.add(ca).map_err(|e| bad("the hub's CA", &e))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("TLS", &e))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| bad("the spoke's certificate and key", &e))?;
    Ok(Arc::new(config))
}

/// `https://host:port` → `wss://host:port/spoke/connect`.
pub fn link_url(hub: &str) -> Result<String, SpokeError> {
    let Some(rest) = hub.trim_end_matches('/').strip_prefix("https://") else {
        return Err(SpokeError::Files(format!(
            "the hub's spoke address must be https:// (got {hub:?})"
        )));
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(SpokeError::Files(format!("no host in {hub:?}")));
    }
    Ok(format!("wss://{authority}{CONNECT_PATH}"))
}

/// How a link ended.
pub(crate) enum Ended {
    /// The hub said no: do not try again.
    Refused(String),
    /// The link was lost; `steady` if it had lasted.
    Lost { why: String, steady: bool },
}

/// Keeps the spoke linked to `hub` until `stop`, or until the hub
/// refuses it.
pub async fn run(
    hub: &str,
    dir: PathBuf,
    info: SpokeInfo,
    local: Arc<Local>,
    stop: CancellationToken,
) -> Result<(), SpokeError> {
    let url = link_url(hub)?;
    let config = client_config(&dir)?;
    let mut pause = FIRST_PAUSE;
    loop {
        let ended = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            ended = session(&url, config.clone(), &info, &local) => ended,
        };
        match ended {
            Ended::Refused(reason) => return Err(SpokeError::Refused(reason)),
            Ended::Lost { why, steady } => {
                if steady {
                    pause = FIRST_PAUSE;
                }
                tracing::warn!(hub = %url, error = %why, retry_in_secs = pause.as_secs(), "no link to the hub");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

/// Dials the hub: a WebSocket over mutual TLS, within 15 s.
async fn open(url: &str, config: Arc<rustls::ClientConfig>) -> Result<Link, String> {
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(ws_config),
        true,
        Some(tokio_tungstenite::Connector::Rustls(config)),
    );
    match tokio::time::timeout(Duration::from_secs(15), connecting).await {
        Ok(Ok((link, _))) => Ok(link),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 15 s".into()),
    }
}

async fn session(
    url: &str,
    config: Arc<rustls::ClientConfig>,
    info: &SpokeInfo,
    local: &Arc<Local>,
) -> Ended {
    let mut link = match open(url, config).await {
        Ok(link) => link,
        Err(why) => return Ended::Lost { why, steady: false },
    };
    // Terminals of an earlier link lost their hub side with it.
    local.streams.clear();
    crate::talk::converse(&mut link, info, local).await
}

#[cfg(test)]
mod tests {
    use super::link_url;

    #[test]
    fn the_link_is_wss_on_the_hubs_spoke_address() {
        assert_eq!(
            link_url("https://hub.example:7879/").unwrap(),
            "wss://hub.example:7879/spoke/connect"
        );
        assert!(link_url("http://hub.example:7879").is_err());
        assert!(link_url("https://").is_err());
    }
}
