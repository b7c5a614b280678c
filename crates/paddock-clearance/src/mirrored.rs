//! Requests held somewhere else — on a spoke, at another hub on the same
//! database — that this hub holds a request of its own for, under an id
//! it made: one pending queue whatever machine holds the connection. The
//! holder's news about a request reaches this hub's copy; a verdict given
//! here is the caller's to carry to the holder (`decided`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::event::{ClearanceEvent, EventKind};
use crate::hub::{Ack, CheckedVerdict, Ending, Hold, Hub, Ticket};

/// How many of one box's requests are mirrored at once (the holder
/// enforces its own, smaller, limit).
const MIRROR_LIMIT: usize = 256;
/// A mirrored request its holder never ends is withdrawn after this.
const BACKSTOP: Duration = Duration::from_secs(60 * 60);

/// (the holder, the holder's request id).
pub type HolderKey = (String, String);

/// What `Mirrored::take` made of the holder's event.
pub enum Mirroring {
    /// A new request here: its caller awaits `decided` with the ticket.
    Fresh(HolderKey, Ticket),
    /// Nothing more to do here.
    Done,
    /// Not a request's news: the caller decides (show it, or not).
    Other(ClearanceEvent),
}

pub struct Mirrored {
    hub: Arc<Hub>,
    /// Holder's key → this hub's request id.
    held: Mutex<HashMap<HolderKey, String>>,
}

impl Mirrored {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Takes in `holder`'s event about one of its requests (`by` names
    /// the holder to people: "spoke gpu-1"): a new hold is held here too
    /// (once, however often it is announced), a hold again is shown under
    /// this hub's id, an end there ends the copy here. The holder's
    /// request id never shows here.
    pub fn take(&self, holder: &str, by: &str, mut event: ClearanceEvent) -> Mirroring {
        let theirs = std::mem::take(&mut event.request_id);
        let key = (holder.to_owned(), theirs);
        if event.kind == EventKind::ConnectionBlocked.as_str() && !key.1.is_empty() {
            if self.held.lock().contains_key(&key) {
                return Mirroring::Done; // announced again: held already
            }
            return match self.hub.hold(event, MIRROR_LIMIT, BACKSTOP) {
                Hold::Held(ticket) if ticket.fresh => {
                    self.held
                        .lock()
                        .insert(key.clone(), ticket.request_id.clone());
                    Mirroring::Fresh(key, ticket)
                }
                Hold::Held(_) => Mirroring::Done,
                Hold::TooMany => {
                    tracing::warn!(holder = %by, "a box held there has too many requests to mirror; not shown");
                    Mirroring::Done
                }
            };
        }
        if event.kind == EventKind::ConnectionHeldAgain.as_str() {
            if let Some(id) = self.held.lock().get(&key).cloned() {
                event.request_id = id;
                self.hub.publish(event);
            }
            return Mirroring::Done;
        }
        if event.kind == EventKind::VerdictApplied.as_str() {
            // Ended at the holder (its deadline, its own console): the
            // copy ends too. One decided here was announced already.
            let mirrored = self.held.lock().remove(&key);
            if let Some(id) = mirrored {
                self.hub.withdraw(&id, by, &event.reason);
            }
            return Mirroring::Done;
        }
        Mirroring::Other(event)
    }

    /// Waits for the copy of `key` to end here, however it ends; the
    /// verdict to carry to the holder if a person decided. One the holder
    /// never ends is withdrawn at the backstop, saying `never_ended`.
    pub async fn decided(
        &self,
        key: &HolderKey,
        mut ticket: Ticket,
        never_ended: &str,
    ) -> Option<(Box<CheckedVerdict>, Ack)> {
        let ending = tokio::select! {
            ending = ticket.ending() => Some(ending),
            _ = tokio::time::sleep(BACKSTOP) => None,
        };
        // Ended here: the holder's later word about it finds nothing.
        self.held.lock().remove(key);
        match ending {
            None => {
                self.hub
                    .withdraw(&ticket.request_id, "paddock", never_ended);
                None
            }
            Some(Ending::Decided { verdict, ack }) => Some((verdict, ack)),
            Some(Ending::Withdrawn { .. }) => None,
        }
    }

    /// Every copy of `holder`'s requests leaves the queue (it went, or
    /// fell silent); it announces them again when it is back.
    pub fn withdraw_all_of(&self, holder: &str, reason: &str) {
        let ids: Vec<String> = {
            let mut held = self.held.lock();
            let keys: Vec<HolderKey> = held.keys().filter(|k| k.0 == holder).cloned().collect();
            keys.iter().filter_map(|k| held.remove(k)).collect()
        };
        for id in ids {
            self.hub.withdraw(&id, "paddock", reason);
        }
    }

    /// Every copy leaves the queue (this hub stops).
    pub fn withdraw_all(&self, reason: &str) {
        let all: Vec<String> = self.held.lock().drain().map(|(_, id)| id).collect();
        for id in all {
            self.hub.withdraw(&id, "paddock", reason);
        }
    }
}
