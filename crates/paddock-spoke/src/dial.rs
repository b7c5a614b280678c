//! The spoke's end of the link: it dials the hub (outbound only, so a
//! spoke behind NAT needs no open port) with the client certificate it
//! enrolled for, trusting the hub by the CA it got then, and keeps the
//! link up — again after a cut, with a growing pause. A refusal (the
//! spoke was revoked, or enrolled again elsewhere) ends the run: trying
//! again would change nothing until someone enrols it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use tokio::sync::mpsc;

use crate::SpokeError;
use crate::local::Local;
use crate::wire::{CONNECT_PATH, HubMessage, MAX_FRAME, SpokeMessage};

/// The files `paddock spoke enroll` writes in the spoke's directory.
pub const KEY_FILE: &str = "spoke-key.pem";
pub const CERT_FILE: &str = "spoke.pem";
pub const HUB_CA_FILE: &str = "hub-ca.pem";

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// A link that lasted this long was a good one: the next pause starts
/// short again.
const STEADY: Duration = Duration::from_secs(60);
/// How often the spoke looks whether its number of boxes changed by
/// itself (a time to live, an idle box reaped) and tells the hub.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How often the spoke sends the hub its new decisions.
const AUDIT_EVERY: Duration = Duration::from_secs(1);

/// What the spoke offers the hub.
#[derive(Debug, Clone)]
pub struct SpokeInfo {
    pub max_boxes: u32,
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
enum Ended {
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
    let lost = |why: String| Ended::Lost { why, steady: false };
    let mut link = match open(url, config).await {
        Ok(link) => link,
        Err(why) => return lost(why),
    };
    // Terminals of an earlier link lost their hub side with it.
    local.streams.clear();
    // Subscribed before the held requests are read, so none falls
    // between the two.
    let events = local.subscribe();
    let mut opening = vec![SpokeMessage::Hello {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        max_boxes: info.max_boxes,
        boxes: local.box_count(),
    }];
    opening.extend(
        local
            .held()
            .into_iter()
            .map(|event| SpokeMessage::Event { event }),
    );
    for message in &opening {
        if let Err(e) = send(&mut link, message).await {
            return lost(e);
        }
    }
    let started = tokio::time::Instant::now();
    let ended = |why: String| Ended::Lost {
        why,
        steady: started.elapsed() >= STEADY,
    };
    let (outbox, mut outgoing) = mpsc::channel::<SpokeMessage>(64);
    let mut told_boxes = local.box_count();
    let mut look = tokio::time::interval(STATUS_EVERY);
    // The hub says in its welcome how far it has the decision log.
    let mut audit_after: Option<i64> = None;
    let mut audit_tick = tokio::time::interval(AUDIT_EVERY);
    loop {
        let frame = tokio::select! {
            _ = audit_tick.tick() => {
                if let Some(after) = audit_after
                    && let Some((rows, through_id)) = local.decisions_after(after)
                {
                    if let Err(e) = send(&mut link, &SpokeMessage::Audit { rows, through_id }).await {
                        return ended(e);
                    }
                    audit_after = Some(through_id);
                }
                continue;
            }
            _ = look.tick() => {
                let boxes = local.box_count();
                if boxes != told_boxes {
                    told_boxes = boxes;
                    if let Err(e) = send(&mut link, &SpokeMessage::Status { boxes }).await {
                        return ended(e);
                    }
                }
                continue;
            }
            Some(message) = outgoing.recv() => {
                if let SpokeMessage::Status { boxes } = &message {
                    told_boxes = *boxes;
                }
                if let Err(e) = send(&mut link, &message).await {
                    return ended(e);
                }
                continue;
            }
            published = events.next() => {
                let Some(published) = published else {
                    return ended("the spoke's clearance hub stopped".into());
                };
                let message = SpokeMessage::Event { event: published.event.clone() };
                if let Err(e) = send(&mut link, &message).await {
                    return ended(e);
                }
                continue;
            }
            frame = link.next() => frame,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return ended(e.to_string()),
            None => return ended("the hub closed the link".into()),
        };
        match frame {
            Message::Text(text) => match serde_json::from_str::<HubMessage>(&text) {
                Ok(message) => {
                    if let Some(refused) = take(message, local, &outbox, &mut audit_after) {
                        return refused;
                    }
                }
                Err(e) => return lost(format!("the hub sent a frame this spoke cannot read: {e}")),
            },
            Message::Close(_) => return ended("the hub closed the link".into()),
            _ => {}
        }
    }
}

/// Does what the hub sent; calls and verdicts run on their own, their
/// answers going out through `outbox`. `Some` ends the link.
fn take(
    message: HubMessage,
    local: &Arc<Local>,
    outbox: &mpsc::Sender<SpokeMessage>,
    audit: &mut Option<i64>,
) -> Option<Ended> {
    match message {
        HubMessage::Welcome {
            name,
            hub_version,
            audit_after,
        } => {
            tracing::info!(spoke = %name, %hub_version, "linked to the hub");
            *audit = Some(audit_after);
        }
        HubMessage::Refused { reason } => return Some(Ended::Refused(reason)),
        HubMessage::Call { id, call } => {
            let (local, outbox) = (local.clone(), outbox.clone());
            tokio::spawn(async move {
                use paddock_core::remote::RemoteCall;
                let changes_load =
                    matches!(call, RemoteCall::Create { .. } | RemoteCall::Destroy { .. });
                let result = if matches!(call, RemoteCall::OpenTerminal { .. }) {
                    local.open_terminal(call, outbox.clone()).await
                } else {
                    local.handle(call).await
                };
                let _ = outbox.send(SpokeMessage::Reply { id, result }).await;
                if changes_load {
                    let boxes = local.box_count();
                    let _ = outbox.send(SpokeMessage::Status { boxes }).await;
                }
            });
        }
        HubMessage::StreamData { stream, data } => {
            if !local.streams.deliver(stream, &data) {
                let _ = outbox.try_send(SpokeMessage::StreamEnd { stream });
            }
        }
        HubMessage::StreamEnd { stream } => local.streams.end(stream),
        HubMessage::Verdict { id, verdict } => {
            let (local, outbox) = (local.clone(), outbox.clone());
            tokio::spawn(async move {
                let applied = local.verdict(verdict).await;
                let _ = outbox.send(SpokeMessage::VerdictDone { id, applied }).await;
            });
        }
    }
    None
}

type Link =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(link: &mut Link, message: &SpokeMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    link.send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
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
