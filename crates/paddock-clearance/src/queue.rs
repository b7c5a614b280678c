//! One bounded queue per subscriber. Publishing never waits: when a
//! subscriber is full its oldest event goes, so a slow reader loses its own
//! backlog and nobody else notices.
//!
//! A subscriber with a socket may also attach a [`DirectSink`]: when its
//! queue is empty and nothing is being written, the publisher writes the
//! event's varlink frame straight to the socket without blocking, sparing a
//! task wake-up per subscriber (what fan-out to many costs). Whatever does
//! not fit goes through the queue, in order.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::Notify;

use crate::event::Published;

/// A socket the publisher may write to without waiting.
pub trait DirectSink: Send + Sync {
    /// Writes what fits now: `Some(bytes written)`, or `None` when nothing
    /// can be written without blocking (or the socket failed).
    fn try_write(&self, bytes: &[u8]) -> Option<usize>;
}

#[derive(Default)]
struct State {
    events: VecDeque<Arc<Published>>,
    /// An event whose frame was written directly only in part: the rest
    /// goes first.
    partial: Option<(Arc<Published>, usize)>,
    /// The subscriber's task is writing; the publisher must not.
    busy: bool,
}

pub(crate) struct SubscriberQueue {
    state: Mutex<State>,
    sink: OnceLock<Arc<dyn DirectSink>>,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    ready: Notify,
}

/// The bytes a subscriber's task must write next.
pub struct Chunk {
    pub event: Arc<Published>,
    /// How much of the event's varlink frame is already written.
    pub offset: usize,
}

impl SubscriberQueue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            sink: OnceLock::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
        })
    }

    fn state(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    pub(crate) fn push(&self, event: Arc<Published>) {
        {
            let mut state = self.state();
            if let Some(sink) = self.sink.get()
                && !state.busy
                && state.events.is_empty()
                && state.partial.is_none()
            {
                let frame = &event.varlink_frame;
                match sink.try_write(frame) {
                    Some(n) if n == frame.len() => return,
                    Some(n) if n > 0 => {
                        state.partial = Some((event, n));
                        drop(state);
                        self.ready.notify_one();
                        return;
                    }
                    _ => {}
                }
            }
            if state.events.len() >= self.capacity {
                state.events.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::dropped();
            }
            state.events.push_back(event);
        }
        self.ready.notify_one();
    }

    pub(crate) fn queued(&self) -> usize {
        self.state().events.len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
            if let Some(event) = self.queue.state().events.pop_front() {
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

    /// Lets the publisher write varlink frames straight to this socket.
    /// Use with [`Subscription::next_chunk`] and [`Subscription::written`].
    pub fn attach(&self, sink: Arc<dyn DirectSink>) {
        let _ = self.queue.sink.set(sink);
    }

    /// What to write next; the publisher keeps off the socket until
    /// [`Subscription::written`] is called.
    pub async fn next_chunk(&self) -> Option<Chunk> {
        loop {
            {
                let mut state = self.queue.state();
                let next = match state.partial.take() {
                    Some((event, offset)) => Some(Chunk { event, offset }),
                    None => state
                        .events
                        .pop_front()
                        .map(|event| Chunk { event, offset: 0 }),
                };
                if next.is_some() {
                    state.busy = true;
                    return next;
                }
            }
            if self.queue.closed.load(Ordering::Acquire) {
                return None;
            }
            self.queue.ready.notified().await;
        }
    }

    /// The chunk from [`Subscription::next_chunk`] is on the socket.
    pub fn written(&self) {
        self.queue.state().busy = false;
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
