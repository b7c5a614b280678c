//! What audit export and retention read and write: the decision log in
//! id order from a cursor, each sink's cursor, and pruning old entries
//! that every sink has delivered.

use crate::db::{OptionalExtension, params};

use crate::egress::{AUDIT_COLUMNS, audit_row};
use crate::{AuditRow, Result, Store};

impl Store {
    /// Up to `limit` decision log entries after `after_id`, oldest first.
    pub fn egress_audit_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRow>> {
        self.conn().query_map(
            &format!("SELECT {AUDIT_COLUMNS} FROM egress_audit WHERE id > ?1 ORDER BY id LIMIT ?2"),
            params![after_id, limit.max(1)],
            audit_row,
        )
    }

    /// The id of the decision log's newest entry (0 when it is empty).
    pub fn egress_audit_last_id(&self) -> Result<i64> {
        self.conn().query_row(
            "SELECT IFNULL(MAX(id), 0) FROM egress_audit",
            params![],
            |r| r.get(0),
        )
    }

    /// The last entry `sink` delivered; `None` for a sink never run.
    pub fn audit_cursor(&self, sink: &str) -> Result<Option<i64>> {
        self.conn()
            .query_row(
                "SELECT last_id FROM audit_export_cursors WHERE sink = ?1",
                params![sink],
                |r| r.get(0),
            )
            .optional()
    }

    /// Moves `sink`'s cursor on; never back (a late writer of an older
    /// position changes nothing).
    pub fn set_audit_cursor(&self, sink: &str, last_id: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit_export_cursors (sink, last_id) VALUES (?1, ?2) \
             ON CONFLICT (sink) DO UPDATE SET last_id = excluded.last_id \
             WHERE audit_export_cursors.last_id < excluded.last_id",
            params![sink, last_id],
        )?;
        Ok(())
    }

    /// Removes decision log entries older than `before_ms`, but none after
    /// `delivered_up_to` (what every export sink has delivered, when there
    /// are sinks): retention never takes what a sink still has to send.
    /// Returns how many went.
    pub fn prune_egress_audit(
        &self,
        before_ms: i64,
        delivered_up_to: Option<i64>,
    ) -> Result<usize> {
        self.conn().execute(
            "DELETE FROM egress_audit WHERE at_ms < ?1 AND (CAST(?2 AS BIGINT) IS NULL OR id <= ?2)",
            params![before_ms, delivered_up_to],
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn entry(at_ms: i64) -> AuditRow {
        AuditRow {
            id: 0,
            at_ms,
            box_id: "b".into(),
            project: "p".into(),
            dest: "example.test".into(),
            port: 443,
            proto: 6,
            domain: String::new(),
            decision: "allowed".into(),
            decided_by: "default".into(),
            request_id: String::new(),
            reason: String::new(),
        }
    }

    #[test]
    fn entries_come_in_id_order_from_a_cursor_that_only_moves_on() {
        entries_come_in_id_order_from_a_cursor_that_only_moves_on_on(
            &Store::open_in_memory().unwrap(),
        );
    }

    pub(crate) fn entries_come_in_id_order_from_a_cursor_that_only_moves_on_on(store: &Store) {
        let batch: Vec<AuditRow> = (0..5).map(entry).collect();
        store.append_egress_audit(&batch).unwrap();
        assert_eq!(store.egress_audit_last_id().unwrap(), 5);
        let ids = |rows: Vec<AuditRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(store.egress_audit_after(0, 2).unwrap()), [1, 2]);
        assert_eq!(ids(store.egress_audit_after(2, 10).unwrap()), [3, 4, 5]);

        assert_eq!(store.audit_cursor("file").unwrap(), None);
        store.set_audit_cursor("file", 3).unwrap();
        store.set_audit_cursor("file", 2).unwrap();
        assert_eq!(store.audit_cursor("file").unwrap(), Some(3));
    }

    #[test]
    fn pruning_keeps_what_a_sink_has_not_delivered() {
        pruning_keeps_what_a_sink_has_not_delivered_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn pruning_keeps_what_a_sink_has_not_delivered_on(store: &Store) {
        let batch: Vec<AuditRow> = (0..6).map(|i| entry(i * 1000)).collect();
        store.append_egress_audit(&batch).unwrap();
        // Older than 4 s: ids 1..=4; the sinks have delivered up to 2.
        assert_eq!(store.prune_egress_audit(4000, Some(2)).unwrap(), 2);
        assert_eq!(store.egress_audit_after(0, 10).unwrap()[0].id, 3);
        // No sinks: age alone decides.
        assert_eq!(store.prune_egress_audit(4000, None).unwrap(), 2);
        assert_eq!(store.egress_audit_after(0, 10).unwrap()[0].id, 5);
    }
}
