//! The background loop: reap boxes nobody activated, keep spare box
//! networks and warm pools ready, and finish a reconcile that could not
//! run at start — on the leading hub only when several share a database
//! (the one that takes over reconciles first).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::BoxService;
use crate::model::now_ms;

impl BoxService {
    /// Destroys boxes still waiting for activation after the activation
    /// TTL, boxes whose own time to live ran out, and boxes idle past
    /// `[boxes] idle_timeout_secs`; each removal is announced with its
    /// reason. Returns the ids reaped.
    pub async fn reap_once(&self) -> crate::Result<Vec<String>> {
        let now = now_ms();
        let activation_ms = secs_to_ms(self.config().activation.ttl_secs);
        let idle_secs = self.config().boxes.idle_timeout_secs;
        let idle_cutoff = (idle_secs > 0).then(|| now - secs_to_ms(idle_secs));
        let mut doomed: Vec<(String, String)> = self
            .store
            .boxes_pending_since(now - activation_ms)?
            .into_iter()
            .map(|id| (id, "it was not activated in time".to_owned()))
            .collect();
        for id in self.store.boxes_expired(now, idle_cutoff)? {
            let ttl_over = self
                .store
                .get_box(&id)?
                .and_then(|r| r.expires_at_ms)
                .is_some_and(|at| at <= now);
            let reason = if ttl_over {
                "its time to live ran out".to_owned()
            } else {
                format!("it was idle for more than {idle_secs} s")
            };
            if !doomed.iter().any(|(d, _)| *d == id) {
                doomed.push((id, reason));
            }
        }
        let mut reaped = Vec::new();
        for (id, reason) in doomed {
            match self.destroy_because(&id, &reason).await {
                Ok(()) => {
                    tracing::info!(box_id = %id, reason, "reaped a box");
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
        let every = Duration::from_secs(self.config().activation.reap_interval_secs.max(1));
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
                _ = self.pools.wanted.notified() => {
                    if reconciled {
                        self.fill_pools().await;
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            // Hubs sharing one database: only the leader reconciles and
            // reaps; one that stops leading reconciles again if it leads
            // later (what it knew may be stale by then).
            if !self.store.leads() {
                reconciled = false;
                continue;
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
                self.fill_pools().await;
            }
        }
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}
