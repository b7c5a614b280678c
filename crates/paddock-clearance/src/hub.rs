//! The hub proper: subscribers, the live map of held requests, and the
//! checks a verdict must pass before it reaches whoever holds the request.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use crate::event::{ClearanceEvent, EventKind, Published};
use crate::queue::{SubscriberQueue, Subscription, Unsubscribe};

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events each subscriber may have waiting before its oldest are dropped.
    pub queue_capacity: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 128,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictScope {
    /// This held request only.
    Once,
    /// Later connections of the same box to the same destination, too.
    Box,
    /// Every box of the project.
    Project,
}

impl VerdictScope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "once" => Some(Self::Once),
            "box" => Some(Self::Box),
            "project" => Some(Self::Project),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Box => "box",
            Self::Project => "project",
        }
    }
}

/// A verdict as a surface received it; `action` is still unchecked text.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub container: String,
    pub request_id: String,
    pub dest: String,
    pub action: String,
    pub scope: VerdictScope,
    /// How long a `box` or `project` verdict lasts; `None` is until removed.
    pub ttl: Option<Duration>,
    /// Who decided, for the audit log (a surface and, later, a principal).
    pub decided_by: String,
}

/// A verdict that passed the hub's checks.
#[derive(Debug, Clone)]
pub struct CheckedVerdict {
    pub allow: bool,
    pub verdict: Verdict,
    /// The event that announced the request.
    pub event: ClearanceEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    #[error("no held request {request_id}")]
    UnknownRequest { request_id: String },
    #[error(
        "the request was announced for {expected_container} → {expected_dest}, not {got_container} → {got_dest}"
    )]
    VerdictTupleMismatch {
        expected_container: String,
        expected_dest: String,
        got_container: String,
        got_dest: String,
    },
    #[error("action must be allow or deny, not {action:?}")]
    InvalidAction { action: String },
    #[error("applying {action} failed: {stderr}")]
    ApplyFailed { action: String, stderr: String },
}

/// Whoever holds requests. Called with the hub's checks passed and the
/// request already out of the live map, so it runs at most once per request.
/// Must not block: it runs on the surface's task.
pub trait VerdictSink: Send + Sync {
    fn apply(&self, verdict: &CheckedVerdict) -> Result<(), String>;
}

#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub event: ClearanceEvent,
    pub first_seen: SystemTime,
    pub times_blocked: u64,
}

pub struct Hub {
    config: HubConfig,
    next_subscriber: AtomicU64,
    subscribers: Mutex<HashMap<u64, Arc<SubscriberQueue>>>,
    live: Mutex<HashMap<String, PendingRequest>>,
    sink: OnceLock<Arc<dyn VerdictSink>>,
    me: Weak<Hub>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub fn new(config: HubConfig) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            config,
            next_subscriber: AtomicU64::new(1),
            subscribers: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            sink: OnceLock::new(),
            me: me.clone(),
        })
    }

    /// Only the first sink counts: one component holds requests.
    pub fn set_sink(&self, sink: Arc<dyn VerdictSink>) {
        let _ = self.sink.set(sink);
    }

    pub fn subscribe(&self) -> Subscription {
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let queue = SubscriberQueue::new(self.config.queue_capacity);
        lock(&self.subscribers).insert(id, queue.clone());
        let hub: Weak<dyn Unsubscribe> = self.me.clone();
        Subscription { queue, id, hub }
    }

    pub fn subscriber_count(&self) -> usize {
        lock(&self.subscribers).len()
    }

    pub fn publish(&self, event: ClearanceEvent) {
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

    /// Announces a held request and remembers its triple for the verdict.
    pub fn hold(&self, event: ClearanceEvent) {
        lock(&self.live).insert(
            event.request_id.clone(),
            PendingRequest {
                event: event.clone(),
                first_seen: SystemTime::now(),
                times_blocked: 1,
            },
        );
        self.publish(event);
    }

    /// Another attempt joined a request that is already held.
    pub fn blocked_again(&self, request_id: &str) {
        if let Some(p) = lock(&self.live).get_mut(request_id) {
            p.times_blocked += 1;
        }
    }

    /// The holder gave up on a request (deadline, or the box went): a
    /// verdict citing it is now `UnknownRequest`.
    pub fn withdraw(&self, request_id: &str) -> bool {
        lock(&self.live).remove(request_id).is_some()
    }

    /// Drops every held request of a box (it exited, or its shield changed).
    pub fn forget_container(&self, container: &str) -> Vec<String> {
        let mut live = lock(&self.live);
        let gone: Vec<String> = live
            .iter()
            .filter(|(_, p)| p.event.container == container)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            live.remove(id);
        }
        gone
    }

    pub fn pending(&self) -> Vec<PendingRequest> {
        let mut all: Vec<_> = lock(&self.live).values().cloned().collect();
        all.sort_by_key(|p| p.first_seen);
        all
    }

    /// Checks a verdict against what was emitted and hands it to the sink.
    /// Returns whether the sink applied it; the outcome is also published as
    /// `verdict_applied`.
    pub fn verdict(&self, verdict: Verdict) -> Result<bool, VerdictError> {
        let allow = match verdict.action.as_str() {
            "allow" => true,
            "deny" => false,
            other => {
                return Err(VerdictError::InvalidAction {
                    action: other.to_owned(),
                });
            }
        };
        let pending = {
            let mut live = lock(&self.live);
            let Entry::Occupied(entry) = live.entry(verdict.request_id.clone()) else {
                return Err(VerdictError::UnknownRequest {
                    request_id: verdict.request_id.clone(),
                });
            };
            let e = &entry.get().event;
            if e.container != verdict.container || e.dest != verdict.dest {
                return Err(VerdictError::VerdictTupleMismatch {
                    expected_container: e.container.clone(),
                    expected_dest: e.dest.clone(),
                    got_container: verdict.container.clone(),
                    got_dest: verdict.dest.clone(),
                });
            }
            entry.remove()
        };
        let checked = CheckedVerdict {
            allow,
            verdict,
            event: pending.event,
        };
        let outcome = match self.sink.get() {
            Some(sink) => sink.apply(&checked),
            None => Err("nothing holds requests in this hub".to_owned()),
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

impl Unsubscribe for Hub {
    fn unsubscribe(&self, id: u64) {
        lock(&self.subscribers).remove(&id);
    }
}
