//! The hub's end of spoke links: who is connected, since when, with what
//! capacity. A spoke is let in only with a client certificate of the
//! hub's spoke CA (the handshake checks chain and dates) whose serial is
//! the one on record for that name and not revoked; a second connection
//! under one name replaces the first (a spoke back after a network cut
//! must not wait for its stale session to time out).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use paddock_store::Store;
use paddock_store::clock::now_secs;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_util::sync::CancellationToken;

use paddock_clearance::Hub;
use paddock_core::BoxService;
use paddock_core::remote::{
    RemoteCall, RemoteReply, RemoteStream, SpokeCallError, SpokeLoad, Spokes,
};
use tokio::sync::mpsc;

use crate::calls::{Answer, Session};
use crate::front::Link;
use crate::liveness::{DEFAULT_PING, Liveness, within};
use crate::mirror::Mirror;
use crate::wire::{HubMessage, SpokeMessage};

/// Frames waiting to go out on one link.
const OUTBOX: usize = 64;

/// How long a spoke has from its handshake to its hello.
pub(crate) const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// WebSocket close code for a refused spoke (application range).
const CLOSE_REFUSED: u16 = 4403;

/// A connected spoke, as the hub knows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkStatus {
    pub name: String,
    pub peer: String,
    pub connected_since_secs: i64,
    pub version: String,
    pub max_boxes: u32,
    pub boxes: u32,
}

pub(crate) struct Connected {
    status: LinkStatus,
    generation: u64,
    pub(crate) hang_up: CancellationToken,
    session: Session,
}

pub struct SpokeLinks {
    pub(crate) store: Arc<Store>,
    hub_version: String,
    pub(crate) connected: Mutex<HashMap<String, Connected>>,
    generation: AtomicU64,
    /// Set by [`SpokeLinks::attach`]: the hub's clearance and boxes.
    mirror: OnceLock<Arc<Mirror>>,
    /// `[spokes] boxes_here`.
    boxes_here: std::sync::atomic::AtomicBool,
    /// `[spokes] ping_secs`, in milliseconds: see `liveness`.
    ping_every_ms: AtomicU64,
    boxes: OnceLock<Weak<BoxService>>,
    /// The hub's gate, serving spokes' boxes (see `git`).
    pub(crate) git: OnceLock<Arc<dyn crate::git::GitForSpokes>>,
}

impl SpokeLinks {
    pub fn new(store: Arc<Store>, hub_version: &str) -> Arc<Self> {
        Arc::new(Self {
            store,
            hub_version: hub_version.to_owned(),
            connected: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(1),
            mirror: OnceLock::new(),
            boxes: OnceLock::new(),
            boxes_here: std::sync::atomic::AtomicBool::new(true),
            ping_every_ms: AtomicU64::new(DEFAULT_PING.as_millis() as u64),
            git: OnceLock::new(),
        })
    }

    /// Every box goes to a spoke: the hub runs none itself.
    pub fn keep_boxes_off_the_hub(&self) {
        self.boxes_here.store(false, Ordering::Relaxed);
    }

    /// How often the hub pings each spoke; a spoke silent for
    /// [`crate::liveness::MISSED_PINGS`] of them is hung up on. Taken by
    /// links opened after the call.
    pub fn set_ping_every(&self, every: Duration) {
        self.ping_every_ms
            .store(every.as_millis() as u64, Ordering::Relaxed);
    }

    /// Joins the links to the hub's clearance hub (spokes' held requests
    /// are mirrored there) and box service (boxes are placed on spokes,
    /// and reconciled when one connects).
    pub fn attach(self: &Arc<Self>, hub: Arc<Hub>, boxes: &Arc<BoxService>) {
        let _ = self.mirror.set(Mirror::new(hub, self.store.clone()));
        let _ = self.boxes.set(Arc::downgrade(boxes));
        boxes.set_spokes(self.clone());
    }

    /// Every connected spoke, by name.
    pub fn status(&self) -> Vec<LinkStatus> {
        let mut all: Vec<LinkStatus> = self
            .connected
            .lock()
            .values()
            .map(|c| c.status.clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Hangs up on the spoke (it was revoked).
    pub fn disconnect(&self, name: &str) {
        if let Some(c) = self.connected.lock().remove(name) {
            c.hang_up.cancel();
        }
    }

    /// Runs one spoke's link, its WebSocket just opened, until it ends.
    /// `admitted` is what the certificate check said of the connection.
    pub(crate) async fn run_link(
        self: Arc<Self>,
        mut link: Link,
        admitted: Result<(String, i64), String>,
        peer: SocketAddr,
        stop: CancellationToken,
    ) {
        let (name, not_after_secs) = match admitted {
            Ok(admitted) => admitted,
            Err(reason) => {
                tracing::warn!(%peer, %reason, "refused a spoke");
                refuse(&mut link, &reason).await;
                return;
            }
        };
        let hello = tokio::time::timeout(HELLO_DEADLINE, next_message(&mut link)).await;
        let Ok(Some(SpokeMessage::Hello {
            version,
            max_boxes,
            boxes,
        })) = hello
        else {
            tracing::warn!(spoke = %name, %peer, "a spoke sent no hello; hung up");
            refuse(&mut link, "the first frame must be a hello").await;
            return;
        };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let hang_up = stop.child_token();
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let session = Session::new(outbox);
        let status = LinkStatus {
            name: name.clone(),
            peer: peer.to_string(),
            connected_since_secs: now_secs(),
            version,
            max_boxes,
            boxes,
        };
        if let Some(stale) = self.connected.lock().insert(
            name.clone(),
            Connected {
                status,
                generation,
                hang_up: hang_up.clone(),
                session: session.clone(),
            },
        ) {
            tracing::info!(spoke = %name, "a spoke connected again; its previous link is closed");
            stale.hang_up.cancel();
        }
        tracing::info!(spoke = %name, %peer, "spoke connected");
        let welcome = HubMessage::Welcome {
            name: name.clone(),
            hub_version: self.hub_version.clone(),
            audit_after: self.store.spoke_audit_cursor(&name).unwrap_or(0),
        };
        let welcomed = tokio::time::timeout(HELLO_DEADLINE, send(&mut link, &welcome)).await;
        if matches!(welcomed, Ok(Ok(()))) {
            self.reconcile_soon(&name);
            let talk = Talk {
                name: &name,
                session: &session,
                hang_up: &hang_up,
                not_after_secs,
            };
            self.converse(talk, &mut link, outgoing).await;
        }
        session.end();
        self.gone(&name, generation);
        let _ = tokio::time::timeout(HELLO_DEADLINE, link.close(None)).await;
        tracing::info!(spoke = %name, "spoke disconnected");
    }

    /// The session `generation` of `name` ended: unless a newer one took
    /// its place, the spoke is no longer connected and its held requests
    /// leave the hub's queue.
    fn gone(&self, name: &str, generation: u64) {
        let current = {
            let mut connected = self.connected.lock();
            let current = connected
                .get(name)
                .is_some_and(|c| c.generation == generation);
            if current {
                connected.remove(name);
            }
            current
        };
        if current && let Some(mirror) = self.mirror.get() {
            mirror.forget_spoke(name);
        }
    }

    /// A spoke that (re)connects has its boxes' rows brought up to date.
    fn reconcile_soon(&self, name: &str) {
        let Some(boxes) = self.boxes.get().and_then(Weak::upgrade) else {
            return;
        };
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Err(e) = boxes.reconcile_spoke(&name).await {
                tracing::warn!(spoke = %name, error = %e, "cannot reconcile a spoke's boxes");
            }
        });
    }

    /// Reads the spoke's frames and sends the hub's until it goes, is
    /// hung up on, or its certificate runs out.
    async fn converse(
        &self,
        talk: Talk<'_>,
        link: &mut Link,
        mut outgoing: mpsc::Receiver<HubMessage>,
    ) {
        let Talk {
            name,
            session,
            hang_up,
            not_after_secs,
        } = talk;
        let expires_in = Duration::from_secs((not_after_secs - now_secs()).max(0) as u64);
        let expiry = tokio::time::sleep(expires_in);
        tokio::pin!(expiry);
        let mut liveness = Liveness::new(Duration::from_millis(
            self.ping_every_ms.load(Ordering::Relaxed),
        ));
        let mut ping = tokio::time::interval(liveness.ping_every());
        loop {
            tokio::select! {
                _ = hang_up.cancelled() => return,
                _ = &mut expiry => {
                    tracing::warn!(spoke = %name, "a spoke's certificate ran out; hung up (it enrols again)");
                    return;
                }
                _ = ping.tick() => {
                    if let Some(silent) = liveness.dead() {
                        tracing::warn!(spoke = %name, silent_secs = silent.as_secs(), "a spoke went silent (the network between us is cut?); hung up");
                        return;
                    }
                    let sent = within(&liveness, link.send(Message::Ping(Vec::new().into()))).await;
                    if let Err(e) = sent {
                        tracing::warn!(spoke = %name, error = %e, "cannot ping a spoke; hung up");
                        return;
                    }
                }
                Some(message) = outgoing.recv() => {
                    if let Err(e) = within(&liveness, send(link, &message)).await {
                        tracing::warn!(spoke = %name, error = %e, "cannot send to a spoke; hung up");
                        return;
                    }
                }
                frame = link.next() => {
                    liveness.heard();
                    match frame {
                        Some(Ok(Message::Text(text))) => match serde_json::from_str::<SpokeMessage>(&text) {
                            Ok(message) => {
                                if !self.take(name, session, message) {
                                    tracing::warn!(spoke = %name, "a spoke sent a frame it must not; hung up");
                                    return;
                                }
                            }
                            Err(_) => {
                                tracing::warn!(spoke = %name, "a spoke sent a frame the hub cannot read; hung up");
                                return;
                            }
                        },
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(_)) | Some(Err(_)) | None => return,
                    }
                }
            }
        }
    }

    /// Takes in one frame of the spoke's; false for one it must not send.
    fn take(&self, name: &str, session: &Session, message: SpokeMessage) -> bool {
        match message {
            SpokeMessage::Status { boxes } => {
                let changed = match self.connected.lock().get_mut(name) {
                    Some(c) => std::mem::replace(&mut c.status.boxes, boxes) != boxes,
                    None => false,
                };
                // Its boxes came or went (a time to live ran out there,
                // say): the hub's rows follow.
                if changed {
                    self.reconcile_soon(name);
                }
            }
            SpokeMessage::Reply { id, result } => {
                if !session.answer(id, Answer::Reply(result)) {
                    tracing::debug!(spoke = %name, id, "an answer nobody waits for; dropped");
                }
            }
            SpokeMessage::VerdictDone { id, applied } => {
                if !session.answer(id, Answer::VerdictDone(applied)) {
                    tracing::debug!(spoke = %name, id, "a verdict's answer nobody waits for; dropped");
                }
            }
            SpokeMessage::Event { event } => {
                if let Some(mirror) = self.mirror.get() {
                    mirror.on_event(name, session, event);
                }
            }
            SpokeMessage::StreamData { stream, data } => {
                if !session.streams.deliver(stream, &data) {
                    // Its reader went or fell too far behind: the spoke
                    // stops sending.
                    session.tell(HubMessage::StreamEnd { stream });
                }
            }
            SpokeMessage::StreamEnd { stream } => session.streams.end(stream),
            SpokeMessage::Audit { rows, through_id } => self.take_audit(name, rows, through_id),
            SpokeMessage::Hello { .. } => return false,
        }
        true
    }
}

impl SpokeLinks {
    /// A spoke's decisions join the hub's log: one audit log whatever
    /// machine held the connection. Only its own boxes' (the hub's record
    /// says which), each under the project the hub has for the box.
    fn take_audit(&self, spoke: &str, rows: Vec<paddock_store::AuditRow>, through_id: i64) {
        let mut kept = Vec::with_capacity(rows.len());
        for mut row in rows {
            match self.store.get_spoke_box(&row.box_id) {
                Ok(Some(placed)) if placed.spoke == spoke => {
                    row.project = placed.project;
                    kept.push(row);
                }
                Ok(_) => {
                    tracing::debug!(%spoke, box_id = %row.box_id, "a decision for a box the hub did not place there; not logged");
                }
                Err(e) => {
                    tracing::warn!(%spoke, error = %e, "cannot check a spoke's decisions; they are sent again on its next link");
                    return;
                }
            }
        }
        if let Err(e) = self.store.append_spoke_audit(spoke, &kept, through_id) {
            tracing::warn!(%spoke, error = %e, "cannot log a spoke's decisions; they are sent again on its next link");
        }
    }
}

/// Who the link is with, for [`SpokeLinks::converse`].
struct Talk<'a> {
    name: &'a str,
    session: &'a Session,
    hang_up: &'a CancellationToken,
    not_after_secs: i64,
}

impl Spokes for SpokeLinks {
    fn boxes_here(&self) -> bool {
        self.boxes_here.load(Ordering::Relaxed)
    }

    fn loads(&self) -> Vec<SpokeLoad> {
        self.status()
            .into_iter()
            .map(|s| SpokeLoad {
                name: s.name,
                boxes: s.boxes,
                max_boxes: s.max_boxes,
            })
            .collect()
    }

    fn open_stream(&self, spoke: &str) -> Result<RemoteStream, SpokeCallError> {
        let connected = self.connected.lock();
        let c = connected
            .get(spoke)
            .ok_or_else(|| SpokeCallError::Unreachable(spoke.to_owned()))?;
        Ok(c.session.open_stream())
    }

    fn call<'a>(
        &'a self,
        spoke: &'a str,
        call: RemoteCall,
    ) -> paddock_core::BoxFuture<'a, Result<RemoteReply, SpokeCallError>> {
        Box::pin(async move {
            let session = self
                .connected
                .lock()
                .get(spoke)
                .map(|c| c.session.clone())
                .ok_or_else(|| SpokeCallError::Unreachable(spoke.to_owned()))?;
            match session
                .ask(spoke, |id| HubMessage::Call { id, call })
                .await?
            {
                Answer::Reply(Ok(reply)) => Ok(reply),
                Answer::Reply(Err(failure)) => Err(SpokeCallError::Failed(failure)),
                Answer::VerdictDone(_) => Err(SpokeCallError::Garbled(spoke.to_owned())),
            }
        })
    }
}

async fn next_message(link: &mut Link) -> Option<SpokeMessage> {
    loop {
        match link.next().await? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

async fn send(link: &mut Link, message: &HubMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    link.send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}

/// Tells a spoke why it is refused, and closes; bounded, so a spoke on a
/// cut link leaves nothing waiting.
async fn refuse(link: &mut Link, reason: &str) {
    let refused = HubMessage::Refused {
        reason: reason.to_owned(),
    };
    let _ = tokio::time::timeout(HELLO_DEADLINE, async {
        let _ = send(link, &refused).await;
        let _ = link
            .close(Some(CloseFrame {
                code: CLOSE_REFUSED.into(),
                reason: "refused".into(),
            }))
            .await;
    })
    .await;
}
