//! The background loop: reap boxes nobody activated, keep spare box
//! networks ready, and finish a reconcile that could not run at start.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::BoxService;
use crate::model::now_ms;

impl BoxService {
    /// Destroys boxes still waiting for activation after the TTL. Returns
    /// the ids reaped.
    pub async fn reap_once(&self) -> crate::Result<Vec<String>> {
        let ttl_ms = (self.config.activation.ttl_secs as i64).saturating_mul(1000);
        let expired = self.store.boxes_pending_since(now_ms() - ttl_ms)?;
        let mut reaped = Vec::new();
        for id in expired {
            match self.destroy(&id).await {
                Ok(()) => {
                    tracing::info!(box_id = %id, "reaped a box that was not activated in time");
                    reaped.push(id);
                }
                Err(crate::CoreError::NotFound(_)) => {}
                Err(e) => tracing::warn!(box_id = %id, error = %e, "reaping failed; will retry"),
            }
        }
        Ok(reaped)
    }

    /// Runs until `stop` is cancelled. `reconciled` says whether the start-up
    /// reconcile already succeeded.
    pub async fn maintain(self: Arc<Self>, mut reconciled: bool, stop: CancellationToken) {
        let every = Duration::from_secs(self.config.activation.reap_interval_secs.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    // A clean stop leaves no idle network behind: spares
                    // would pile up across instances that never return.
                    self.drop_spares().await;
                    return;
                }
                _ = self.networks.wanted.notified() => {
                    if reconciled {
                        self.refill_networks().await;
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            if !reconciled {
                match self.reconcile().await {
                    Ok(report) => {
                        tracing::info!(?report, "reconciled with the docker engine");
                        reconciled = true;
                    }
                    Err(e) => tracing::debug!(error = %e, "reconcile still not possible"),
                }
            }
            if let Err(e) = self.reap_once().await {
                tracing::warn!(error = %e, "reaper pass failed");
            }
            if reconciled {
                if let Err(e) = self.collect_networks(false).await {
                    tracing::debug!(error = %e, "network collection failed; will retry");
                }
                self.refill_networks().await;
            }
        }
    }
}
