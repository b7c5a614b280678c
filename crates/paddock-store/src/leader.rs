//! One hub at a time does the work that must not be done twice — the
//! reconcile with the engine, the reaper — when several share one
//! PostgreSQL. The leader is whoever holds a session advisory lock on a
//! connection of its own: it is let go the moment that connection ends
//! (the hub stopped, crashed or lost the database), and another hub takes
//! it at its next try.
//!
//! A hub cut off from the database without a word (its machine powered
//! off, the network between them gone silent) cannot learn it lost the
//! lock, so leading is a lease: a hub leads only while its check of its
//! connection answered within the last [`LEASE`]. The server ends the
//! cut session, and frees the lock, no sooner than
//! [`crate::pg::SERVER_NOTICES_A_CUT`], which is longer: the cut hub has
//! stopped leading before another can start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::Client;

/// The lock's number (any fixed one; "pdkL").
const LEADER_LOCK: i64 = 0x7064_6b4c;
/// How often a hub that does not lead tries, and one that leads looks
/// that its connection is still there.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long one answered check lets a hub lead.
pub(crate) const LEASE: Duration = Duration::from_secs(5);
const _: () = assert!(LEASE.as_secs() * 2 < crate::pg::SERVER_NOTICES_A_CUT.as_secs());

pub(crate) struct Leadership {
    leading: Arc<AtomicBool>,
    /// When the lock was last known held, in ms after `since`.
    confirmed_ms: Arc<AtomicU64>,
    since: Instant,
    /// Dropped with the store: the thread ends and lets the lock go.
    _stop: mpsc::Sender<()>,
}

impl Leadership {
    /// Starts trying for the lock; returns once the first try is done,
    /// so a hub starting alone knows at once that it leads.
    pub(crate) fn start(config: postgres::Config) -> Self {
        let leading = Arc::new(AtomicBool::new(false));
        let confirmed_ms = Arc::new(AtomicU64::new(0));
        let since = Instant::now();
        let (stop, stopped) = mpsc::channel();
        let (tried, first) = mpsc::sync_channel(1);
        let lease = Lease {
            leading: leading.clone(),
            confirmed_ms: confirmed_ms.clone(),
            since,
        };
        let spawned = std::thread::Builder::new()
            .name("paddock-store-leader".into())
            .spawn(move || keep_trying(config, lease, stopped, tried));
        if spawned.is_ok() {
            let _ = first.recv_timeout(Duration::from_secs(10));
        }
        Self {
            leading,
            confirmed_ms,
            since,
            _stop: stop,
        }
    }

    /// Holding the lock, as last checked within the lease.
    pub(crate) fn leading(&self) -> bool {
        let confirmed = Duration::from_millis(self.confirmed_ms.load(Ordering::Acquire));
        self.leading.load(Ordering::Acquire) && self.since.elapsed() < confirmed + LEASE
    }
}

/// The leader thread's side of [`Leadership`].
struct Lease {
    leading: Arc<AtomicBool>,
    confirmed_ms: Arc<AtomicU64>,
    since: Instant,
}

fn keep_trying(
    config: postgres::Config,
    lease: Lease,
    stopped: mpsc::Receiver<()>,
    tried: mpsc::SyncSender<()>,
) {
    let mut client: Option<Client> = None;
    loop {
        // Taken before the check: the lease runs from when it was asked.
        let asked_ms = lease.since.elapsed().as_millis() as u64;
        let leads = match client.as_mut() {
            None => match crate::pg::connect(&config) {
                Ok(mut fresh) => {
                    let got = take(&mut fresh);
                    client = Some(fresh);
                    got
                }
                Err(_) => false,
            },
            Some(held) if lease.leading.load(Ordering::Acquire) => {
                held.simple_query("SELECT 1").is_ok()
            }
            Some(waiting) => take(waiting),
        };
        if client.as_ref().is_some_and(Client::is_closed) {
            client = None;
        }
        let leads = leads && client.is_some();
        if leads {
            lease.confirmed_ms.store(asked_ms, Ordering::Release);
        }
        let was = lease.leading.swap(leads, Ordering::AcqRel);
        if was != leads {
            tracing::info!(
                leading = leads,
                "leadership among the hubs on this database changed"
            );
        }
        let _ = tried.try_send(());
        match stopped.recv_timeout(CHECK_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

fn take(client: &mut Client) -> bool {
    client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
        .and_then(|row| row.try_get::<_, bool>(0))
        .unwrap_or(false)
}
