//! The hub proper: subscribers, the one map of held requests, and the
//! checks a verdict must pass before it ends a request. A held request has
//! one owner — this map — and ends exactly once: by a verdict, by being
//! withdrawn (deadline, box gone, shield changed), never left behind.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};

use crate::event::{ClearanceEvent, EventKind, Published};
use crate::queue::{SubscriberQueue, Subscription, Unsubscribe};
pub use crate::verdict::{CheckedVerdict, Verdict, VerdictError, VerdictScope};

/// The hub's settings: `[clearance]` in paddock.toml, read as they are.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Events each subscriber may have waiting before its oldest are
    /// dropped (at least 1).
    pub queue_capacity: usize,
    /// Also serve the hub where terok's clients look for hubs
    /// (`varlink::terok_socket_path`).
    pub terok_discovery: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 128,
            terok_discovery: true,
        }
    }
}

/// How a held request ended, as its [`Ticket`]s see it.
#[derive(Debug, Clone)]
pub enum Ending {
    /// A person decided. The holder applies the verdict's scope and
    /// answers through `ack`; the verdict's sender waits for that answer.
    Decided {
        verdict: Box<CheckedVerdict>,
        ack: Ack,
    },
    /// Nobody decided: the deadline passed, the box went, its shield
    /// changed.
    Withdrawn { by: String, reason: String },
}

/// The holder's answer to a verdict: whether its scope could be applied.
/// Taken once; a holder that is gone answers nothing, which the verdict's
/// sender hears as a failure.
#[derive(Debug, Clone, Default)]
pub struct Ack(Arc<Mutex<Option<AckSender>>>);

/// Why a holder could not apply a verdict's scope, in its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotApplied(pub String);

/// Where the holder's answer goes.
type AckSender = oneshot::Sender<Result<(), NotApplied>>;

impl Ack {
    /// Answers the verdict; only the first answer counts.
    pub fn answer(&self, applied: Result<(), NotApplied>) {
        if let Some(tx) = lock(&self.0).take() {
            let _ = tx.send(applied);
        }
    }
}

/// One waiter's hold on a request. Every attempt on the same destination
/// holds the same request; the one that opened it is `fresh` and answers
/// for it (records it, enforces its deadline, applies its verdict).
pub struct Ticket {
    pub request_id: String,
    pub fresh: bool,
    ending: watch::Receiver<Option<Ending>>,
}

impl Ticket {
    /// Another waiter on the same request (never the fresh one).
    pub fn another(&self) -> Ticket {
        Ticket {
            request_id: self.request_id.clone(),
            fresh: false,
            ending: self.ending.clone(),
        }
    }

    /// Waits for the request to end. A hub dropped meanwhile withdraws it.
    pub async fn ending(&mut self) -> Ending {
        match self.ending.wait_for(Option::is_some).await {
            Ok(ending) => ending.clone().unwrap_or_else(gone),
            Err(_) => gone(),
        }
    }
}

fn gone() -> Ending {
    Ending::Withdrawn {
        by: "paddock".into(),
        reason: "the clearance hub stopped".into(),
    }
}

/// What asking to hold a request gave.
pub enum Hold {
    Held(Ticket),
    /// The box already waits on as many undecided requests as it may.
    TooMany,
}

#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub event: ClearanceEvent,
    pub first_seen: SystemTime,
    pub times_blocked: u64,
    /// When its holder withdraws it if nobody decided.
    pub deadline: SystemTime,
}

/// The key of an event's dossier that carries what the agent said when it
/// asked ahead (untrusted text, shown as "agent says").
pub const AGENT_REASON: &str = "agent_reason";

/// The key of an event's dossier that names the hub holding a request
/// this hub only mirrors (hubs on one database): that hub's surfaces that
/// speak for it once, such as webhooks, leave it to the holder.
pub const HELD_AT: &str = "held_at";

/// A held request as every surface shows it (varlink's `Pending`, REST's
/// pending list, the terminal client): one shape, one set of names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingView {
    pub container: String,
    pub request_id: String,
    pub dest: String,
    pub port: i64,
    pub proto: i64,
    pub domain: String,
    pub project: String,
    /// When it was first held: RFC 3339, UTC…
    pub first_seen: String,
    /// …and in milliseconds since the epoch.
    pub first_seen_ms: i64,
    pub times_blocked: u64,
    /// When it is withdrawn undecided, in milliseconds since the epoch.
    pub deadline_ms: i64,
    /// What the agent said when it asked ahead; empty if it did not.
    pub agent_reason: String,
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl From<&PendingRequest> for PendingView {
    fn from(p: &PendingRequest) -> Self {
        Self {
            container: p.event.container.clone(),
            request_id: p.event.request_id.clone(),
            dest: p.event.dest.clone(),
            port: p.event.port,
            proto: p.event.proto,
            domain: p.event.domain.clone(),
            project: p.event.dossier.get("project").cloned().unwrap_or_default(),
            first_seen: time::OffsetDateTime::from(p.first_seen)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            first_seen_ms: epoch_ms(p.first_seen),
            times_blocked: p.times_blocked,
            deadline_ms: epoch_ms(p.deadline),
            agent_reason: p
                .event
                .dossier
                .get(AGENT_REASON)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

impl PendingView {
    /// A held request as its announcement names it, for a reader that
    /// heard of it only after it ended (its count and deadline unknown).
    pub fn from_event(e: &ClearanceEvent) -> Self {
        let now = SystemTime::now();
        Self::from(&PendingRequest {
            event: e.clone(),
            first_seen: now,
            times_blocked: 1,
            deadline: now,
        })
    }
}

/// Attempts of one box on one destination share one request; a request
/// held at the HTTP level (its `http_request` in the dossier, `GET /path`)
/// is a destination of its own.
type HoldKey = (String, String, i64, String);

/// The dossier entry naming an HTTP-level request (`METHOD /path`).
pub const HTTP_REQUEST: &str = "http_request";

fn hold_key(e: &ClearanceEvent) -> HoldKey {
    (
        e.container.clone(),
        e.dest.clone(),
        e.port,
        e.dossier.get(HTTP_REQUEST).cloned().unwrap_or_default(),
    )
}

struct Live {
    pending: PendingRequest,
    ending: watch::Sender<Option<Ending>>,
}

/// How many ended requests the hub remembers, so a late verdict hears how
/// its request ended instead of that it never existed.
const REMEMBER_ENDED: usize = 1024;

#[derive(Default)]
struct Held {
    by_request: HashMap<String, Live>,
    by_key: HashMap<HoldKey, String>,
    ended: std::collections::VecDeque<(String, String)>,
}

impl Held {
    /// Removes a live request and remembers `how` it ended.
    fn end(&mut self, request_id: &str, how: String) -> Option<Live> {
        let live = self.remove(request_id)?;
        if self.ended.len() >= REMEMBER_ENDED {
            self.ended.pop_front();
        }
        self.ended.push_back((request_id.to_owned(), how));
        Some(live)
    }

    /// Why a verdict cannot reach `request_id`: it ended, or never was.
    fn gone(&self, request_id: &str) -> VerdictError {
        match self.ended.iter().rev().find(|(id, _)| id == request_id) {
            Some((_, how)) => VerdictError::AlreadyEnded {
                request_id: request_id.to_owned(),
                how: how.clone(),
            },
            None => VerdictError::UnknownRequest {
                request_id: request_id.to_owned(),
            },
        }
    }

    fn remove(&mut self, request_id: &str) -> Option<Live> {
        let live = self.by_request.remove(request_id)?;
        let e = &live.pending.event;
        self.by_key.remove(&hold_key(e));
        Some(live)
    }
}

/// One subscriber's queue, as the worldview shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SubscriberQueueView {
    /// The hub's number for it, in order of subscription.
    pub subscriber: u64,
    pub queued: usize,
    pub dropped: u64,
}

/// The hub: subscribers, and the one place a held request lives — from
/// [`Hub::hold`] until a verdict, a withdrawal or the deadline ends it.
pub struct Hub {
    config: HubConfig,
    next_subscriber: AtomicU64,
    subscribers: Mutex<HashMap<u64, Arc<SubscriberQueue>>>,
    held: Mutex<Held>,
    me: Weak<Hub>,
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

impl Hub {
    pub fn new(config: HubConfig) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            config,
            next_subscriber: AtomicU64::new(1),
            subscribers: Mutex::new(HashMap::new()),
            held: Mutex::new(Held::default()),
            me: me.clone(),
        })
    }

    pub fn subscribe(&self) -> Subscription {
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let queue = SubscriberQueue::new(self.config.queue_capacity.max(1));
        lock(&self.subscribers).insert(id, queue.clone());
        let hub: Weak<dyn Unsubscribe> = self.me.clone();
        Subscription { queue, id, hub }
    }

    pub fn subscriber_count(&self) -> usize {
        lock(&self.subscribers).len()
    }

    /// Each subscriber's queue as it stands: how many events wait in it
    /// and how many it has lost, oldest subscriber first.
    pub fn subscriber_queues(&self) -> Vec<SubscriberQueueView> {
        let mut all: Vec<SubscriberQueueView> = lock(&self.subscribers)
            .iter()
            .map(|(id, queue)| SubscriberQueueView {
                subscriber: *id,
                queued: queue.queued(),
                dropped: queue.dropped(),
            })
            .collect();
        all.sort_by_key(|q| q.subscriber);
        all
    }

    pub fn publish(&self, mut event: ClearanceEvent) {
        // Every `connection_blocked` is decidable: one without a request
        // to cite would put buttons in terok's clients that can only fail.
        if event.kind == EventKind::ConnectionBlocked.as_str() && event.request_id.is_empty() {
            event.kind = EventKind::ConnectionRefused.as_str().to_owned();
        }
        // Clone the list out so a push never runs under the list's lock.
        let queues: Vec<_> = lock(&self.subscribers).values().cloned().collect();
        if queues.is_empty() {
            return; // nobody to serialise it for
        }
        let published = Arc::new(Published::new(event));
        for queue in queues {
            queue.push(published.clone());
        }
    }

    /// Holds a request for the event's (box, dest, port), or joins the one
    /// already held; a new one gets a fresh `request_id`, is announced, and
    /// counts against the box's `limit` of undecided requests. `hold_for`
    /// is when its holder will withdraw it (shown as the countdown). A
    /// repeat attempt is announced as `connection_held_again`.
    pub fn hold(&self, mut event: ClearanceEvent, limit: usize, hold_for: Duration) -> Hold {
        let key = hold_key(&event);
        let mut held = lock(&self.held);
        if let Some(id) = held.by_key.get(&key).cloned()
            && let Some(live) = held.by_request.get_mut(&id)
        {
            live.pending.times_blocked += 1;
            let mut again = live.pending.event.clone();
            again.kind = EventKind::ConnectionHeldAgain.as_str().to_owned();
            again.reason = format!("attempt {}", live.pending.times_blocked);
            let ticket = Ticket {
                request_id: id,
                fresh: false,
                ending: live.ending.subscribe(),
            };
            drop(held);
            self.publish(again);
            return Hold::Held(ticket);
        }
        let of_box = held
            .by_key
            .keys()
            .filter(|(container, _, _, _)| *container == key.0)
            .count();
        if of_box >= limit {
            return Hold::TooMany;
        }
        let request_id = paddock_secret::random_id(12);
        event.request_id = request_id.clone();
        let (ending, rx) = watch::channel(None);
        held.by_key.insert(key, request_id.clone());
        held.by_request.insert(
            request_id.clone(),
            Live {
                pending: PendingRequest {
                    event: event.clone(),
                    first_seen: SystemTime::now(),
                    times_blocked: 1,
                    deadline: SystemTime::now() + hold_for,
                },
                ending,
            },
        );
        drop(held);
        self.publish(event);
        Hold::Held(Ticket {
            request_id,
            fresh: true,
            ending: rx,
        })
    }

    /// Ends a held request undecided (its deadline, say); `None` if it had
    /// already ended. A verdict citing it is then `AlreadyEnded`. The end
    /// is announced as a `verdict_applied` deny naming the reason, so every
    /// console and pop-up showing it can close it.
    pub fn withdraw(&self, request_id: &str, by: &str, reason: &str) -> Option<PendingRequest> {
        let live = lock(&self.held).end(request_id, format!("withdrawn ({reason})"))?;
        crate::metrics::hold_ended(live.pending.first_seen, "withdrawn");
        live.ending.send_replace(Some(Ending::Withdrawn {
            by: by.to_owned(),
            reason: reason.to_owned(),
        }));
        let mut ended = live.pending.event.clone();
        ended.kind = EventKind::VerdictApplied.as_str().to_owned();
        ended.action = "deny".into();
        ended.ok = true;
        ended.reason = reason.to_owned();
        self.publish(ended);
        Some(live.pending)
    }

    /// One held request, if it is still held.
    pub fn pending_request(&self, request_id: &str) -> Option<PendingRequest> {
        lock(&self.held)
            .by_request
            .get(request_id)
            .map(|l| l.pending.clone())
    }

    /// Ends every held request of a box (it exited, went, or its shield
    /// changed).
    pub fn withdraw_container(
        &self,
        container: &str,
        by: &str,
        reason: &str,
    ) -> Vec<PendingRequest> {
        let ids: Vec<String> = lock(&self.held)
            .by_request
            .iter()
            .filter(|(_, l)| l.pending.event.container == container)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| self.withdraw(id, by, reason))
            .collect()
    }

    pub fn pending(&self) -> Vec<PendingRequest> {
        let mut all: Vec<_> = lock(&self.held)
            .by_request
            .values()
            .map(|l| l.pending.clone())
            .collect();
        all.sort_by_key(|p| p.first_seen);
        all
    }

    /// Checks a verdict against what was emitted, ends the request with
    /// it, and waits for its holder to apply it. Returns whether it was
    /// applied; the outcome is also published as `verdict_applied`.
    pub async fn verdict(&self, verdict: Verdict) -> Result<bool, VerdictError> {
        let allow = match verdict.action.as_str() {
            "allow" => true,
            "deny" => false,
            other => {
                return Err(VerdictError::InvalidAction {
                    action: other.to_owned(),
                });
            }
        };
        let (ack_tx, ack_rx) = oneshot::channel();
        let checked = {
            let mut held = lock(&self.held);
            let Some(live) = held.by_request.get(&verdict.request_id) else {
                return Err(held.gone(&verdict.request_id));
            };
            let e = &live.pending.event;
            // terok's clients answer with the event's domain when it has
            // one, its dest otherwise: both were emitted, so both name it.
            let names_it =
                verdict.dest == e.dest || (!e.domain.is_empty() && verdict.dest == e.domain);
            if e.container != verdict.container || !names_it {
                return Err(VerdictError::VerdictTupleMismatch {
                    expected_container: e.container.clone(),
                    expected_dest: e.dest.clone(),
                    got_container: verdict.container.clone(),
                    got_dest: verdict.dest.clone(),
                });
            }
            let how = format!(
                "{} by {}",
                if allow { "allowed" } else { "denied" },
                verdict.decided_by
            );
            let Some(live) = held.end(&verdict.request_id, how) else {
                return Err(held.gone(&verdict.request_id));
            };
            crate::metrics::hold_ended(
                live.pending.first_seen,
                if allow { "allowed" } else { "denied" },
            );
            let checked = CheckedVerdict {
                allow,
                verdict,
                event: live.pending.event,
            };
            live.ending.send_replace(Some(Ending::Decided {
                verdict: Box::new(checked.clone()),
                ack: Ack(Arc::new(Mutex::new(Some(ack_tx)))),
            }));
            checked
        };
        let outcome = match tokio::time::timeout(ACK_WITHIN, ack_rx).await {
            Ok(Ok(applied)) => applied.map_err(|NotApplied(why)| why),
            Ok(Err(_)) => Err("nothing holds the request any more".to_owned()),
            Err(_) => Err(format!(
                "the verdict was not applied within {} s",
                ACK_WITHIN.as_secs()
            )),
        };
        let mut applied = ClearanceEvent::new(EventKind::VerdictApplied, &checked.event.container);
        applied.request_id = checked.verdict.request_id.clone();
        applied.dest = checked.event.dest.clone();
        applied.port = checked.event.port;
        applied.proto = checked.event.proto;
        applied.domain = checked.event.domain.clone();
        applied.action = checked.verdict.action.clone();
        applied.dossier = checked.event.dossier.clone();
        applied.ok = outcome.is_ok();
        applied.reason = match &outcome {
            Ok(()) => format!(
                "{} by {} (scope {})",
                checked.verdict.action,
                checked.verdict.decided_by,
                checked.verdict.scope.as_str()
            ),
            Err(e) => e.clone(),
        };
        self.publish(applied);
        outcome
            .map(|()| true)
            .map_err(|stderr| VerdictError::ApplyFailed {
                action: checked.verdict.action,
                stderr,
            })
    }

    /// Ends every subscription (shutdown): readers see the end of the stream.
    pub fn close(&self) {
        for queue in lock(&self.subscribers).drain().map(|(_, q)| q) {
            queue.close();
        }
    }
}

/// How long a verdict waits for its holder to apply it (a rule written to
/// the store); far more than that takes.
const ACK_WITHIN: Duration = Duration::from_secs(10);

impl Unsubscribe for Hub {
    fn unsubscribe(&self, id: u64) {
        lock(&self.subscribers).remove(&id);
    }
}
