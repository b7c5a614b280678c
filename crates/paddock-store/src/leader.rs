//! One hub at a time does the work that must not be done twice — the
//! reconcile with the engine, the reaper — when several share one
//! PostgreSQL. The leader is whoever holds a session advisory lock on a
//! connection of its own: it is let go the moment that connection ends
//! (the hub stopped, crashed or lost the database), and another hub takes
//! it at its next try.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use postgres::{Client, NoTls};

/// The lock's number (any fixed one; "pdkL").
const LEADER_LOCK: i64 = 0x7064_6b4c;
/// How often a hub that does not lead tries, and one that leads looks
/// that its connection is still there.
const CHECK_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Leadership {
    leading: Arc<AtomicBool>,
    /// Dropped with the store: the thread ends and lets the lock go.
    _stop: mpsc::Sender<()>,
}

impl Leadership {
    /// Starts trying for the lock; returns once the first try is done,
    /// so a hub starting alone knows at once that it leads.
    pub(crate) fn start(config: postgres::Config) -> Self {
        let leading = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel();
        let (tried, first) = mpsc::sync_channel(1);
        let flag = leading.clone();
        let spawned = std::thread::Builder::new()
            .name("paddock-store-leader".into())
            .spawn(move || keep_trying(config, flag, stopped, tried));
        if spawned.is_ok() {
            let _ = first.recv_timeout(Duration::from_secs(10));
        }
        Self {
            leading,
            _stop: stop,
        }
    }

    pub(crate) fn leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }
}

fn keep_trying(
    config: postgres::Config,
    leading: Arc<AtomicBool>,
    stopped: mpsc::Receiver<()>,
    tried: mpsc::SyncSender<()>,
) {
    let mut client: Option<Client> = None;
    loop {
        let leads = match client.as_mut() {
            None => match config.connect(NoTls) {
                Ok(mut fresh) => {
                    let got = take(&mut fresh);
                    client = Some(fresh);
                    got
                }
                Err(_) => false,
            },
            Some(held) if leading.load(Ordering::Acquire) => held.simple_query("SELECT 1").is_ok(),
            Some(waiting) => take(waiting),
        };
        if client.as_ref().is_some_and(Client::is_closed) {
            client = None;
        }
        let was = leading.swap(leads && client.is_some(), Ordering::AcqRel);
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
