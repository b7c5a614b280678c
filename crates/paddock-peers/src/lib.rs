//! Hubs that share one PostgreSQL share one pending queue. A connection is
//! held by the gateway of the hub that made its box; every other hub holds
//! a request of its own for it (its own id, in its own clearance hub), so
//! its console, varlink clients, pop-ups and webhooks show it and its rule
//! that a verdict must cite a request it emitted holds unchanged. A
//! verdict given there is sent to the holding hub under the holder's id;
//! the holder's hub checks and applies it as any other (so it is applied
//! once, however many hubs decide), and its answer is the acknowledgement.
//!
//! The messages go over PostgreSQL's `NOTIFY` (see `paddock_store`'s
//! notices). A hub listening again asks the others to announce what they
//! hold; a hub that falls silent has its requests withdrawn elsewhere.
//!
//! Must not: apply a verdict anywhere but in the holding hub's own
//! clearance hub, or pass on what it mirrors (each hub speaks only for
//! the connections its own gateway holds).

mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paddock_clearance::{
    ClearanceEvent, EventKind, HolderKey, Hub, Mirrored, Mirroring, NotApplied, RelayedVerdict,
    Ticket,
};
use paddock_store::{Notice, Store};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::wire::{CHANNEL, PeerMessage};

/// The dossier key a mirrored request carries: the hub that holds it.
pub use paddock_clearance::HELD_AT;
const ALIVE_EVERY: Duration = Duration::from_secs(5);
/// A hub not heard from for this long is taken for gone.
const SILENT_FOR: Duration = Duration::from_secs(20);
/// How long a verdict waits for the holder's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

pub struct Peers {
    me: String,
    hub: Arc<Hub>,
    store: Arc<Store>,
    /// The other hubs' held requests, held here too.
    mirrored: Mirrored,
    asks: Mutex<HashMap<u64, oneshot::Sender<Result<(), String>>>>,
    next_ask: AtomicU64,
    heard: Mutex<HashMap<String, Instant>>,
    /// Reads the egress rules again (another hub changed them).
    reread_rules: Box<dyn Fn() + Send + Sync>,
}

impl Peers {
    /// `me` names this hub among the others (unique per hub);
    /// `reread_rules` is called when another hub changed egress rules.
    pub fn new(
        hub: Arc<Hub>,
        store: Arc<Store>,
        me: &str,
        reread_rules: Box<dyn Fn() + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(Self {
            me: me.to_owned(),
            mirrored: Mirrored::new(hub.clone()),
            hub,
            store,

            asks: Mutex::new(HashMap::new()),
            next_ask: AtomicU64::new(1),
            heard: Mutex::new(HashMap::new()),
            reread_rules,
        })
    }

    /// Runs until `stop`; returns at once on a store no other hub shares.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut notices) = self.store.listen(CHANNEL) else {
            return;
        };
        let own = self.hub.subscribe();
        let mut alive = tokio::time::interval(ALIVE_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                notice = notices.recv() => match notice {
                    Some(Notice::Connected) => self.send(&PeerMessage::Resend { from: self.me.clone() }),
                    Some(Notice::Message(text)) => self.take(&text),
                    None => break,
                },
                published = own.next() => match published {
                    Some(published) => self.pass_on(&published.event),
                    None => break,
                },
                _ = alive.tick() => {
                    self.send(&PeerMessage::Alive { from: self.me.clone() });
                    self.forget_the_silent();
                }
            }
        }
        self.mirrored.withdraw_all("this hub stopped");
    }

    fn send(&self, message: &PeerMessage) {
        let Ok(text) = serde_json::to_string(message) else {
            return;
        };
        if let Err(e) = self.store.notify(CHANNEL, &text) {
            tracing::warn!(error = %e, "cannot tell the other hubs");
        }
    }

    /// This hub's own held requests' news goes to the others; what it
    /// mirrors does not (its holder says it).
    fn pass_on(&self, event: &ClearanceEvent) {
        if event.dossier.contains_key(HELD_AT) {
            return;
        }
        if event.kind == EventKind::RuleAdded.as_str()
            || event.kind == EventKind::RuleRemoved.as_str()
        {
            self.send(&PeerMessage::RulesChanged {
                from: self.me.clone(),
            });
            return;
        }
        let news = [
            EventKind::ConnectionBlocked,
            EventKind::ConnectionHeldAgain,
            EventKind::VerdictApplied,
        ];
        if event.request_id.is_empty() || !news.iter().any(|k| k.as_str() == event.kind) {
            return;
        }
        self.send(&PeerMessage::Event {
            from: self.me.clone(),
            event: event.clone(),
        });
    }

    fn take(self: &Arc<Self>, text: &str) {
        let message: PeerMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "a message from another hub cannot be read; dropped");
                return;
            }
        };
        if message.from() == self.me {
            return;
        }
        self.heard
            .lock()
            .insert(message.from().to_owned(), Instant::now());
        match message {
            PeerMessage::Resend { .. } => {
                for pending in self.hub.pending() {
                    self.pass_on(&pending.event);
                }
            }
            PeerMessage::Alive { .. } => {}
            PeerMessage::RulesChanged { .. } => (self.reread_rules)(),
            PeerMessage::Event { from, event } => self.mirror(from, event),
            PeerMessage::Verdict {
                from,
                to,
                ask,
                verdict,
            } if to == self.me => {
                let peers = self.clone();
                tokio::spawn(async move {
                    let applied = peers.hub.apply_relayed(verdict, "").await;
                    peers.send(&PeerMessage::Done {
                        from: peers.me.clone(),
                        to: from,
                        ask,
                        applied,
                    });
                });
            }
            PeerMessage::Done {
                to, ask, applied, ..
            } if to == self.me => {
                if let Some(waiting) = self.asks.lock().remove(&ask) {
                    let _ = waiting.send(applied);
                }
            }
            PeerMessage::Verdict { .. } | PeerMessage::Done { .. } => {}
        }
    }

    fn mirror(self: &Arc<Self>, from: String, mut event: ClearanceEvent) {
        let by = format!("hub {from}");
        event.dossier.insert(HELD_AT.into(), from.clone());
        if let Mirroring::Fresh(key, ticket) = self.mirrored.take(&from, &by, event) {
            let peers = self.clone();
            tokio::spawn(async move { peers.until_ended(key, ticket).await });
        }
    }

    /// A verdict given here goes to the holding hub under its id; its
    /// answer is the acknowledgement.
    async fn until_ended(&self, key: HolderKey, ticket: Ticket) {
        let Some((verdict, ack)) = self
            .mirrored
            .decided(&key, ticket, "the holding hub never ended it")
            .await
        else {
            return;
        };
        let (to, request_id) = key;
        let ask = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let (answered, answer) = oneshot::channel();
        self.asks.lock().insert(ask, answered);
        self.send(&PeerMessage::Verdict {
            from: self.me.clone(),
            to: to.clone(),
            ask,
            verdict: RelayedVerdict::of(request_id, &verdict),
        });
        let applied = match tokio::time::timeout(ANSWER_WITHIN, answer).await {
            Ok(Ok(applied)) => applied,
            _ => Err(format!("hub {to} did not answer the verdict")),
        };
        self.asks.lock().remove(&ask);
        ack.answer(applied.map_err(NotApplied));
    }

    /// The requests of hubs not heard from for a while leave the queue;
    /// they announce them again when they are back.
    fn forget_the_silent(&self) {
        let silent: Vec<String> = {
            let mut heard = self.heard.lock();
            let gone: Vec<String> = heard
                .iter()
                .filter(|(_, at)| at.elapsed() > SILENT_FOR)
                .map(|(hub, _)| hub.clone())
                .collect();
            for hub in &gone {
                heard.remove(hub);
            }
            gone
        };
        for hub in silent {
            self.mirrored
                .withdraw_all_of(&hub, &format!("hub {hub} fell silent"));
        }
    }
}
