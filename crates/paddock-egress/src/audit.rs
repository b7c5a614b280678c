//! The decision log. Decisions are queued to a writer thread that stores
//! them in batches, so the proxy's hot path never waits on SQLite; on
//! shutdown the queue is drained before the thread ends.
//!
//! Nothing is decided off the record: a batch that cannot be written (a
//! full disk, a locked store) is kept and retried, and while it fails the
//! log says so ([`AuditLog::failure`]) — the gateway then refuses new
//! connections and `/healthz` names the log. Once a write succeeds again,
//! everything kept is stored and decisions resume, with no restart.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{self, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use paddock_store::{AuditRow, Store};

/// What was decided, as the log records it. The names are the log's public
/// vocabulary (the REST log, `paddock egress log`): they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditDecision {
    Allowed,
    Denied,
    Held,
    VerdictAllow,
    VerdictDeny,
    Timeout,
    /// A held request withdrawn: the box went, or its shield changed.
    Dropped,
    RawBlock,
    DnsRefused,
    /// A request or query that could not even be read.
    Malformed,
    ShieldUp,
    ShieldDown,
    ShieldBlock,
    /// A secret put on the wire to a host it is bound to.
    Injected,
    /// A secret's placeholder sent where no binding puts it: an attempt
    /// to carry the secret elsewhere, refused.
    SecretMisuse,
}

impl AuditDecision {
    pub const ALL: [AuditDecision; 15] = [
        Self::Allowed,
        Self::Denied,
        Self::Held,
        Self::VerdictAllow,
        Self::VerdictDeny,
        Self::Timeout,
        Self::Dropped,
        Self::RawBlock,
        Self::DnsRefused,
        Self::Malformed,
        Self::ShieldUp,
        Self::ShieldDown,
        Self::ShieldBlock,
        Self::Injected,
        Self::SecretMisuse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Held => "held",
            Self::VerdictAllow => "verdict_allow",
            Self::VerdictDeny => "verdict_deny",
            Self::Timeout => "timeout",
            Self::Dropped => "dropped",
            Self::RawBlock => "raw_block",
            Self::DnsRefused => "dns_refused",
            Self::Malformed => "malformed",
            Self::ShieldUp => "shield_up",
            Self::ShieldDown => "shield_down",
            Self::ShieldBlock => "shield_block",
            Self::Injected => "injected",
            Self::SecretMisuse => "secret_misuse",
        }
    }
}

/// Why the log cannot be written right now, if it cannot.
type Failure = Arc<Mutex<Option<String>>>;

pub struct AuditLog {
    tx: Option<mpsc::Sender<AuditRow>>,
    writer: Option<JoinHandle<()>>,
    failure: Failure,
}

const BATCH: usize = 512;
/// How long the writer waits to fill a batch: the most a crash can lose.
const GATHER: Duration = Duration::from_millis(20);
/// How often a failing log tries again.
const RETRY: Duration = Duration::from_millis(250);
/// Decisions kept while the log cannot be written. Past this the oldest
/// go (and the loss is logged): while failing, the gateway decides little
/// but refusals, so this is far more than an outage produces.
const MAX_KEPT: usize = 100_000;

fn lock(failure: &Failure) -> parking_lot::MutexGuard<'_, Option<String>> {
    failure.lock()
}

/// Stores what is kept, batch by batch; stops at the first failure, which
/// it records (the rows stay kept).
fn write_kept(store: &Store, kept: &mut VecDeque<AuditRow>, failure: &Failure) {
    while !kept.is_empty() {
        let n = kept.len().min(BATCH);
        let batch: Vec<AuditRow> = kept.iter().take(n).cloned().collect();
        match store.append_egress_audit(&batch) {
            Ok(()) => {
                kept.drain(..n);
                if lock(failure).take().is_some() {
                    tracing::warn!(
                        "the egress decision log can be written again; decisions resume"
                    );
                }
            }
            Err(e) => {
                let mut current = lock(failure);
                if current.is_none() {
                    tracing::error!(error = %e, kept = kept.len(), "cannot store egress decisions; refusing connections until they can be");
                }
                *current = Some(e.to_string());
                return;
            }
        }
    }
}

fn run(store: Arc<Store>, rx: mpsc::Receiver<AuditRow>, failure: Failure) {
    let mut kept: VecDeque<AuditRow> = VecDeque::new();
    let mut open = true;
    loop {
        if kept.is_empty() {
            if !open {
                return;
            }
            match rx.recv() {
                Ok(first) => kept.push_back(first),
                Err(_) => return,
            }
            // Gather for a moment: one commit per batch rather than per
            // decision keeps a busy gateway's log cheap. Asleep, not
            // waiting on the channel, so a decision made meanwhile wakes
            // nobody: the hot path only queues.
            std::thread::sleep(GATHER);
        } else {
            std::thread::sleep(RETRY);
        }
        loop {
            match rx.try_recv() {
                Ok(row) => kept.push_back(row),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if kept.len() > MAX_KEPT {
            let lost = kept.len() - MAX_KEPT;
            kept.drain(..lost);
            tracing::error!(
                lost,
                "egress decisions lost: the log stayed unwritable too long"
            );
        }
        write_kept(&store, &mut kept, &failure);
        if !open && !kept.is_empty() && lock(&failure).is_some() {
            tracing::error!(
                lost = kept.len(),
                "stopping with egress decisions the log could not store"
            );
            return;
        }
    }
}

impl AuditLog {
    pub fn start(store: Arc<Store>) -> Self {
        let (tx, rx) = mpsc::channel::<AuditRow>();
        let failure: Failure = Arc::new(Mutex::new(None));
        let shared = failure.clone();
        let writer = std::thread::Builder::new()
            .name("egress-audit".into())
            .spawn(move || run(store, rx, shared))
            .ok();
        Self {
            tx: Some(tx),
            writer,
            failure,
        }
    }

    pub fn record(&self, row: AuditRow) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(row);
        }
    }

    /// Why decisions cannot be recorded now; `None` while they can.
    pub fn failure(&self) -> Option<String> {
        if self.writer.as_ref().is_none_or(|w| w.is_finished()) {
            return Some("its writer has stopped".into());
        }
        lock(&self.failure).clone()
    }

    /// Stores everything queued so far and stops the writer.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}
