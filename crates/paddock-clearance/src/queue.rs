//! One bounded queue per subscriber. Publishing never waits: when a
//! subscriber is full its oldest event goes, so a slow reader loses its own
//! backlog and nobody else notices.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use crate::event::Published;

pub(crate) struct SubscriberQueue {
    events: Mutex<VecDeque<Arc<Published>>>,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    ready: Notify,
}

impl SubscriberQueue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
        })
    }

    fn events(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Published>>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, event: Arc<Published>) {
        {
            let mut events = self.events();
            if events.len() >= self.capacity {
                events.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            events.push_back(event);
        }
        self.ready.notify_one();
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }
}

/// A subscriber's end. Dropping it unsubscribes.
pub struct Subscription {
    pub(crate) queue: Arc<SubscriberQueue>,
    pub(crate) id: u64,
    pub(crate) hub: Weak<dyn Unsubscribe>,
}

pub(crate) trait Unsubscribe: Send + Sync {
    fn unsubscribe(&self, id: u64);
}

impl Subscription {
    /// The next event, or `None` once the hub has shut down.
    pub async fn next(&self) -> Option<Arc<Published>> {
        loop {
            if let Some(event) = self.queue.events().pop_front() {
                return Some(event);
            }
            if self.queue.closed.load(Ordering::Acquire) {
                return None;
            }
            // notify_one leaves a permit when nobody waits, so an event
            // pushed between the check above and this await is not missed.
            self.queue.ready.notified().await;
        }
    }

    /// Events this subscriber lost because it read too slowly.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.id);
        }
    }
}
