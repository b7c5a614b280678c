//! Restore and reconcile: make the store and the engine agree after a start.

use std::collections::HashSet;

use paddock_store::{BoxRow, BoxState};
use serde::Serialize;

use crate::lifecycle::NetworkAfter;
use crate::model::now_ms;
use crate::networks::{ROLE, ROLE_BOX_NETWORK};
use crate::{BoxService, Result, labels};

/// What a reconcile pass found and did, for the start-up log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    /// Boxes kept: row and container both present.
    pub restored: usize,
    /// Creates or destroys a crash interrupted, now finished (torn down).
    pub finished: Vec<String>,
    /// Boxes whose container had disappeared, dropped from the store.
    pub dropped: Vec<String>,
    /// This instance's labelled containers the store does not know.
    pub unknown_containers: Vec<String>,
    /// This instance's labelled networks the store does not know.
    pub unknown_networks: Vec<String>,
    /// Pool networks no box held, beyond the spares kept: removed.
    pub pruned_networks: usize,
    /// Whether the unknown objects were removed (config `remove_unknown`).
    pub removed_unknown: bool,
}

impl BoxService {
    /// Runs once at start, before serving, and again from the maintenance
    /// loop until it has succeeded (the engine may be down at start).
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let rows = self.store.list_boxes()?;
        let owned = self
            .engine
            .list_labelled(&[(labels::INSTANCE, &self.instance)])
            .await?;
        let with_container: HashSet<&str> = owned
            .containers
            .iter()
            .filter_map(|(_, l)| l.get(labels::BOX).map(String::as_str))
            .collect();

        let mut restored = Vec::new();
        for row in &rows {
            let _guard = self.lock_box(&row.id).await;
            match row.state {
                BoxState::Creating => {
                    self.teardown(
                        &row.id,
                        NetworkAfter::Discard,
                        "its creation was interrupted",
                    )
                    .await?;
                    report.finished.push(row.id.clone());
                }
                BoxState::Destroying => {
                    self.teardown(&row.id, NetworkAfter::Recycle, "the box was destroyed")
                        .await?;
                    report.finished.push(row.id.clone());
                }
                _ if !with_container.contains(row.id.as_str()) => {
                    self.teardown(&row.id, NetworkAfter::Recycle, "its container disappeared")
                        .await?;
                    report.dropped.push(row.id.clone());
                }
                _ => restored.push(row),
            }
        }

        let known: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        report.unknown_containers = owned
            .containers
            .iter()
            .filter(|(_, l)| {
                l.get(labels::BOX)
                    .is_none_or(|b| !known.contains(b.as_str()))
            })
            .map(|(id, _)| id.clone())
            .collect();

        // Networks: pool networks are collected (held ones announced,
        // orphans adopted or removed); anything else labelled is unknown.
        report.unknown_networks = owned
            .networks
            .iter()
            .filter(|(_, l)| l.get(ROLE).is_none_or(|r| r != ROLE_BOX_NETWORK))
            .map(|(id, _)| id.clone())
            .collect();
        report.pruned_networks = self.collect_networks(true).await?;

        // Running boxes get their extensions back (listeners exist now that
        // the networks are collected); one that cannot be guarded again is
        // torn down rather than left running unguarded.
        for row in restored {
            let _guard = self.lock_box(&row.id).await;
            if self.restore(row).await? {
                report.restored += 1;
            } else {
                report.dropped.push(row.id.clone());
            }
        }

        if self.config().reconcile.remove_unknown {
            for id in &report.unknown_containers {
                self.engine.remove_container(id).await?;
            }
            for id in &report.unknown_networks {
                self.engine.remove_network(id).await?;
            }
            report.removed_unknown = true;
        } else {
            for id in report
                .unknown_containers
                .iter()
                .chain(&report.unknown_networks)
            {
                tracing::warn!(object = %id, "paddock-labelled Docker object unknown to the store; set reconcile.remove_unknown to remove it");
            }
        }
        Ok(report)
    }

    /// Brings one kept box back to what its row says. False when it had to
    /// be torn down (its guards could not be restored).
    async fn restore(&self, row: &BoxRow) -> Result<bool> {
        let Some(container) = &row.container_id else {
            return Ok(true);
        };
        let running = self.engine.container_running(container).await?;
        match (row.state, running) {
            // A stop the crash interrupted: finish it.
            (BoxState::Stopped, true) => {
                self.engine
                    .stop_container(container, self.config().boxes.stop_grace_secs)
                    .await?;
            }
            (BoxState::Stopped | BoxState::Exited, false) => {}
            (_, true) => {
                if let Err(e) = self.announce_started(row, container).await {
                    tracing::error!(box_id = %row.id, error = %e, "cannot restore a box's guards; removing it");
                    self.teardown(
                        &row.id,
                        NetworkAfter::Discard,
                        "its guards could not be restored",
                    )
                    .await?;
                    return Ok(false);
                }
                // Started by someone else while it was exited: it runs,
                // guarded, so it is ready again.
                self.store.transition_box_from(
                    &row.id,
                    &[BoxState::Exited],
                    BoxState::Ready,
                    None,
                    None,
                    now_ms(),
                )?;
            }
            // Its main process ended while paddock was away.
            (_, false) => {
                let code = self.engine.exit_code(container).await?;
                self.main_process_ended(&row.id, code);
            }
        }
        Ok(true)
    }
}
