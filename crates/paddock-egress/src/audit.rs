//! The decision log. Decisions are queued to a writer thread that stores
//! them in batches, so the proxy's hot path never waits on SQLite; on
//! shutdown the queue is drained before the thread ends.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use paddock_store::{AuditRow, Store};

pub struct AuditLog {
    tx: Option<mpsc::Sender<AuditRow>>,
    writer: Option<JoinHandle<()>>,
}

const BATCH: usize = 512;
/// How long the writer waits to fill a batch: the most a crash can lose.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

impl AuditLog {
    pub fn start(store: Arc<Store>) -> Self {
        let (tx, rx) = mpsc::channel::<AuditRow>();
        let writer = std::thread::Builder::new()
            .name("egress-audit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Gather for a moment: one commit per batch rather than
                    // per decision keeps a busy gateway's log cheap. Asleep,
                    // not waiting on the channel, so a decision made
                    // meanwhile wakes nobody: the hot path only queues.
                    std::thread::sleep(GATHER);
                    let mut queued = vec![first];
                    queued.extend(rx.try_iter());
                    for batch in queued.chunks(BATCH) {
                        if let Err(e) = store.append_egress_audit(batch) {
                            tracing::error!(error = %e, lost = batch.len(), "cannot store egress decisions");
                        }
                    }
                }
            })
            .ok();
        Self {
            tx: Some(tx),
            writer,
        }
    }

    pub fn record(&self, row: AuditRow) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(row);
        }
    }

    pub fn alive(&self) -> bool {
        self.writer.as_ref().is_some_and(|w| !w.is_finished())
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
