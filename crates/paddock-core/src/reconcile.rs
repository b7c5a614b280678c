//! Restore and reconcile: make the store and the engine agree after a start.

use std::collections::HashSet;

use paddock_store::BoxState;
use serde::Serialize;

use crate::lifecycle::NetworkAfter;
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
                    self.teardown(&row.id, NetworkAfter::Discard).await?;
                    report.finished.push(row.id.clone());
                }
                BoxState::Destroying => {
                    self.teardown(&row.id, NetworkAfter::Recycle).await?;
                    report.finished.push(row.id.clone());
                }
                _ if !with_container.contains(row.id.as_str()) => {
                    self.teardown(&row.id, NetworkAfter::Recycle).await?;
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
            if let Some(container) = &row.container_id
                && self.engine.container_running(container).await?
                && let Err(e) = self.announce_started(row, container).await
            {
                tracing::error!(box_id = %row.id, error = %e, "cannot restore a box's guards; removing it");
                self.teardown(&row.id, NetworkAfter::Discard).await?;
                report.dropped.push(row.id.clone());
                continue;
            }
            report.restored += 1;
        }

        if self.config.reconcile.remove_unknown {
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
}
