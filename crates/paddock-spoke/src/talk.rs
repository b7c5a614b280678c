//! The spoke's side of one linked session, from its hello to its end:
//! what it tells the hub unasked (its held requests, its load, its
//! decisions, pings) and what it does with the hub's frames.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use paddock_clearance::Subscription;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::dial::{Ended, SpokeInfo};
use crate::liveness::{Liveness, within};
use crate::local::Local;
use crate::wire::{HubMessage, SpokeMessage};

/// A link that lasted this long was a good one: the next pause starts
/// short again.
const STEADY: Duration = Duration::from_secs(60);
/// How often the spoke looks whether its number of boxes changed by
/// itself (a time to live, an idle box reaped) and tells the hub.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How often the spoke sends the hub its new decisions.
const AUDIT_EVERY: Duration = Duration::from_secs(1);

/// One session's state on the spoke's side.
struct Talk<'a> {
    link: &'a mut Link,
    local: &'a Arc<Local>,
    liveness: Liveness,
    /// The number of boxes the hub was last told.
    told_boxes: u32,
    /// How far the hub has the decision log: its welcome says.
    audit_after: Option<i64>,
}

/// Says hello, announces the held requests, then talks until the link
/// ends.
pub(crate) async fn converse(link: &mut Link, info: &SpokeInfo, local: &Arc<Local>) -> Ended {
    // Subscribed before the held requests are read, so none falls
    // between the two.
    let mut events = local.subscribe();
    let mut talk = Talk {
        link,
        local,
        liveness: Liveness::new(info.ping_every),
        told_boxes: local.box_count(),
        audit_after: None,
    };
    if let Err(why) = talk.announce(info).await {
        return Ended::Lost { why, steady: false };
    }
    let started = Instant::now();
    let why = match talk.run(&mut events).await {
        Ok(refused) => return refused,
        Err(why) => why,
    };
    Ended::Lost {
        why,
        steady: started.elapsed() >= STEADY,
    }
}

impl Talk<'_> {
    async fn send(&mut self, message: &SpokeMessage) -> Result<(), String> {
        within(&self.liveness, send(self.link, message)).await
    }

    async fn announce(&mut self, info: &SpokeInfo) -> Result<(), String> {
        let hello = SpokeMessage::Hello {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            max_boxes: info.max_boxes,
            boxes: self.told_boxes,
        };
        self.send(&hello).await?;
        for event in self.local.held() {
            self.send(&SpokeMessage::Event { event }).await?;
        }
        Ok(())
    }

    /// Until the link ends: `Ok` with the hub's refusal, `Err` with why
    /// it was lost.
    async fn run(&mut self, events: &mut Subscription) -> Result<Ended, String> {
        let (outbox, mut outgoing) = mpsc::channel::<SpokeMessage>(64);
        let mut look = tokio::time::interval(STATUS_EVERY);
        let mut audit_tick = tokio::time::interval(AUDIT_EVERY);
        let mut ping = tokio::time::interval(self.liveness.ping_every());
        loop {
            let frame = tokio::select! {
                _ = ping.tick() => {
                    self.ping().await?;
                    continue;
                }
                _ = audit_tick.tick() => {
                    self.send_decisions().await?;
                    continue;
                }
                _ = look.tick() => {
                    let boxes = self.local.box_count();
                    if boxes != self.told_boxes {
                        self.send_out(SpokeMessage::Status { boxes }).await?;
                    }
                    continue;
                }
                Some(message) = outgoing.recv() => {
                    self.send_out(message).await?;
                    continue;
                }
                published = events.next() => {
                    let published = published.ok_or("the spoke's clearance hub stopped")?;
                    self.send(&SpokeMessage::Event { event: published.event.clone() }).await?;
                    continue;
                }
                frame = self.link.next() => frame,
            };
            self.liveness.heard();
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message = serde_json::from_str::<HubMessage>(&text)
                        .map_err(|e| format!("the hub sent a frame this spoke cannot read: {e}"))?;
                    if let Some(refused) = take(message, self.local, &outbox, &mut self.audit_after)
                    {
                        return Ok(refused);
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err("the hub closed the link".into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
            }
        }
    }

    /// Pings the hub, unless it has been silent too long already.
    async fn ping(&mut self) -> Result<(), String> {
        if let Some(silent) = self.liveness.dead() {
            return Err(format!(
                "nothing heard from the hub for {} s (the network between us is cut?)",
                silent.as_secs()
            ));
        }
        within(
            &self.liveness,
            self.link.send(Message::Ping(Vec::new().into())),
        )
        .await
    }

    /// The decisions after the hub's cursor, once its welcome said where
    /// that is.
    async fn send_decisions(&mut self) -> Result<(), String> {
        let Some(after) = self.audit_after else {
            return Ok(());
        };
        if let Some((rows, through_id)) = self.local.decisions_after(after) {
            self.send(&SpokeMessage::Audit { rows, through_id }).await?;
            self.audit_after = Some(through_id);
        }
        Ok(())
    }

    async fn send_out(&mut self, message: SpokeMessage) -> Result<(), String> {
        if let SpokeMessage::Status { boxes } = &message {
            self.told_boxes = *boxes;
        }
        self.send(&message).await
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

pub(crate) type Link =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(link: &mut Link, message: &SpokeMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    link.send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}
