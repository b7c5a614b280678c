//! Retention: `[audit] retain_days` prunes the decision log and the git
//! audit log once an hour (and at start), so neither grows until the disk
//! fills — a full disk stops decisions, failing closed. The decision log
//! keeps whatever an export sink has not delivered yet, however old.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use paddock_export::{AuditConfig, Exporter};
use paddock_store::Store;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(3600);

pub struct Retention {
    pub audit: AuditConfig,
    pub store: Arc<Store>,
    /// The git gate's audit log, when the gate runs.
    pub git_audit: Option<PathBuf>,
}

impl Retention {
    /// Prunes now, then every hour, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let Some(days) = self.audit.retain_days else {
            stop.cancelled().await;
            return;
        };
        let this = Arc::new(self);
        loop {
            let pruning = this.clone();
            match tokio::task::spawn_blocking(move || pruning.prune_once(days)).await {
                Ok(Ok((decisions, git))) if decisions + git > 0 => {
                    tracing::info!(
                        decisions,
                        git_records = git,
                        retain_days = days,
                        "pruned old audit records"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune old audit records"),
                Err(e) => tracing::warn!(error = %e, "the pruner stopped"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// Entries of the decision log and records of the git audit log that
    /// went.
    fn prune_once(&self, days: u32) -> anyhow::Result<(usize, usize)> {
        let keep_since = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
        let keep_since_ms = (keep_since.unix_timestamp_nanos() / 1_000_000) as i64;
        let delivered = Exporter::delivered_up_to(&self.audit, &self.store)?;
        let decisions = self.store.prune_egress_audit(keep_since_ms, delivered)?;
        let git = match &self.git_audit {
            Some(path) => paddock_gate::prune_audit_log(path, keep_since)?,
            None => 0,
        };
        Ok((decisions, git))
    }
}
