//! Egress rules, the decision log and shield states. Rules are stored as
//! text the egress crate parses; the store only keeps them.

use crate::db::{Conn, OptionalExtension, params};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    pub id: i64,
    /// `box` or `project`.
    pub scope: String,
    pub subject: String,
    pub target: String,
    pub ports: Option<(u16, u16)>,
    /// `allow`, `deny` or `ask`.
    pub action: String,
    /// Unix milliseconds; `None` never expires.
    pub expires_at_ms: Option<i64>,
    pub created_by: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub box_id: String,
    pub project: String,
    pub dest: String,
    pub port: u16,
    pub proto: u8,
    pub domain: String,
    pub decision: String,
    pub decided_by: String,
    pub request_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub box_id: Option<String>,
    pub project: Option<String>,
    /// Entries with a larger id only (for following the log).
    pub after: Option<i64>,
    /// Entries with a smaller id only (for paging back through it).
    pub before: Option<i64>,
    /// One decision only (`held`, `verdict_allow`, …).
    pub decision: Option<String>,
    /// Entries at or after this time (ms since the epoch)…
    pub from_ms: Option<i64>,
    /// …and before this one.
    pub to_ms: Option<i64>,
    pub limit: u32,
}

/// The decision log's columns, in this order.
pub(crate) const AUDIT_COLUMNS: &str = "id, at_ms, box_id, project, dest, port, proto, domain, decision, decided_by, request_id, reason";

pub(crate) fn audit_row(r: &crate::db::Row) -> crate::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        at_ms: r.get(1)?,
        box_id: r.get(2)?,
        project: r.get(3)?,
        dest: r.get(4)?,
        port: r.get::<i64>(5)? as u16,
        proto: r.get::<i64>(6)? as u8,
        domain: r.get(7)?,
        decision: r.get(8)?,
        decided_by: r.get(9)?,
        request_id: r.get(10)?,
        reason: r.get(11)?,
    })
}

fn rule_from(r: &crate::db::Row) -> crate::Result<RuleRow> {
    let lo: Option<i64> = r.get(4)?;
    let hi: Option<i64> = r.get(5)?;
    Ok(RuleRow {
        id: r.get(0)?,
        scope: r.get(1)?,
        subject: r.get(2)?,
        target: r.get(3)?,
        ports: lo.zip(hi).map(|(lo, hi)| (lo as u16, hi as u16)),
        action: r.get(6)?,
        expires_at_ms: r.get(7)?,
        created_by: r.get(8)?,
        created_at_ms: r.get(9)?,
    })
}

const RULE_COLUMNS: &str = "id, scope, subject, target, port_lo, port_hi, action, expires_at_ms, created_by, created_at_ms";

impl Store {
    /// Adds a rule, or replaces the action and lifetime of the rule with the
    /// same scope, subject, target and ports. Returns the stored row.
    pub fn put_egress_rule(&self, rule: &RuleRow) -> Result<RuleRow> {
        let conn = self.conn();
        let (lo, hi) = match rule.ports {
            Some((lo, hi)) => (Some(lo as i64), Some(hi as i64)),
            None => (None, None),
        };
        conn.execute(
            "INSERT INTO egress_rules (scope, subject, target, port_lo, port_hi, action, expires_at_ms, created_by, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (scope, subject, target, IFNULL(port_lo, -1), IFNULL(port_hi, -1)) \
             DO UPDATE SET action = excluded.action, expires_at_ms = excluded.expires_at_ms, \
                           created_by = excluded.created_by, created_at_ms = excluded.created_at_ms",
            params![rule.scope, rule.subject, rule.target, lo, hi, rule.action, rule.expires_at_ms, rule.created_by, rule.created_at_ms],
        )?;
        conn.query_row(
            &format!(
                "SELECT {RULE_COLUMNS} FROM egress_rules WHERE scope = ?1 AND subject = ?2 AND target = ?3 \
                 AND IFNULL(port_lo, -1) = IFNULL(?4, -1) AND IFNULL(port_hi, -1) = IFNULL(?5, -1)"
            ),
            params![rule.scope, rule.subject, rule.target, lo, hi],
            rule_from,
        )
    }

    pub fn egress_rules(&self) -> Result<Vec<RuleRow>> {
        self.conn().query_map(
            &format!("SELECT {RULE_COLUMNS} FROM egress_rules ORDER BY id"),
            params![],
            rule_from,
        )
    }

    pub fn delete_egress_rule(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM egress_rules WHERE id = ?1", params![id])?
            > 0)
    }

    /// Rules of one box go with it.
    pub fn delete_box_egress_rules(&self, box_id: &str) -> Result<usize> {
        self.conn().execute(
            "DELETE FROM egress_rules WHERE scope = 'box' AND subject = ?1",
            params![box_id],
        )
    }

    pub fn delete_expired_egress_rules(&self, now_ms: i64) -> Result<usize> {
        self.conn().execute(
            "DELETE FROM egress_rules WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1",
            params![now_ms],
        )
    }

    /// Appends decisions in one transaction (the egress gateway batches).
    pub fn append_egress_audit(&self, rows: &[AuditRow]) -> Result<()> {
        self.conn().transaction(|tx| insert_audit(tx, rows))
    }

    /// Appends decisions a spoke's gateway took (their ids are the
    /// spoke's; here they get the hub's) and records the spoke's id the
    /// hub has its log through, in one transaction: a batch is in the
    /// hub's log once or not at all.
    pub fn append_spoke_audit(
        &self,
        spoke: &str,
        rows: &[AuditRow],
        through_id: i64,
    ) -> Result<()> {
        self.conn().transaction(|tx| {
            insert_audit(tx, rows)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![spoke_audit_key(spoke), through_id.to_string()],
            )?;
            Ok(())
        })
    }

    /// The spoke's id the hub has its decision log through (0: none yet).
    pub fn spoke_audit_cursor(&self, spoke: &str) -> Result<i64> {
        Ok(self
            .meta(&spoke_audit_key(spoke))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// The newest `limit` entries matching, oldest first.
    pub fn egress_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        let sql = "SELECT id, at_ms, box_id, project, dest, port, proto, domain, decision, decided_by, request_id, reason \
             FROM egress_audit WHERE (CAST(?1 AS TEXT) IS NULL OR box_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR project = ?2) \
             AND (CAST(?3 AS BIGINT) IS NULL OR id > ?3) AND (CAST(?5 AS BIGINT) IS NULL OR id < ?5) AND (CAST(?6 AS TEXT) IS NULL OR decision = ?6) \
             AND (CAST(?7 AS BIGINT) IS NULL OR at_ms >= ?7) AND (CAST(?8 AS BIGINT) IS NULL OR at_ms < ?8) \
             ORDER BY id DESC LIMIT ?4";
        let bound = params![
            q.box_id,
            q.project,
            q.after,
            q.limit.max(1),
            q.before,
            q.decision,
            q.from_ms,
            q.to_ms
        ];
        let mut out = self.conn().query_map(sql, bound, audit_row)?;
        out.reverse();
        Ok(out)
    }

    /// `None` is a raised shield (the normal state).
    pub fn egress_shield(&self, box_id: &str) -> Result<Option<(String, Option<i64>)>> {
        self.conn()
            .query_row(
                "SELECT state, until_ms FROM egress_shield WHERE box_id = ?1",
                params![box_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }

    pub fn set_egress_shield(
        &self,
        box_id: &str,
        state: Option<(&str, Option<i64>)>,
    ) -> Result<()> {
        let conn = self.conn();
        match state {
            None => {
                conn.execute(
                    "DELETE FROM egress_shield WHERE box_id = ?1",
                    params![box_id],
                )?;
            }
            Some((state, until_ms)) => {
                conn.execute(
                    "INSERT INTO egress_shield (box_id, state, until_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (box_id) DO UPDATE SET state = excluded.state, until_ms = excluded.until_ms",
                    params![box_id, state, until_ms],
                )?;
            }
        }
        Ok(())
    }
}

fn spoke_audit_key(spoke: &str) -> String {
    format!("spoke_audit:{spoke}")
}

fn insert_audit(tx: &Conn<'_>, rows: &[AuditRow]) -> Result<()> {
    for r in rows {
        tx.execute(
            "INSERT INTO egress_audit (at_ms, box_id, project, dest, port, proto, domain, decision, \
             decided_by, request_id, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                r.at_ms,
                r.box_id,
                r.project,
                r.dest,
                r.port,
                r.proto,
                r.domain,
                r.decision,
                r.decided_by,
                r.request_id,
                r.reason
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn decision(id: i64, box_id: &str) -> AuditRow {
        AuditRow {
            id,
            at_ms: id * 10,
            box_id: box_id.into(),
            project: "as-the-spoke-says".into(),
            dest: "1.2.3.4".into(),
            port: 443,
            proto: 6,
            domain: "x.test".into(),
            decision: "allow".into(),
            decided_by: "hub: a person".into(),
            request_id: String::new(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_spokes_decisions_join_the_log_with_how_far_it_has_them() {
        a_spokes_decisions_join_the_log_with_how_far_it_has_them_on(
            &Store::open_in_memory().unwrap(),
        );
    }

    pub(crate) fn a_spokes_decisions_join_the_log_with_how_far_it_has_them_on(s: &Store) {
        assert_eq!(s.spoke_audit_cursor("gpu-1").unwrap(), 0);
        s.append_egress_audit(&[decision(0, "here")]).unwrap();
        s.append_spoke_audit("gpu-1", &[decision(41, "far"), decision(42, "far")], 42)
            .unwrap();
        assert_eq!(s.spoke_audit_cursor("gpu-1").unwrap(), 42);
        assert_eq!(s.spoke_audit_cursor("gpu-2").unwrap(), 0);
        // A batch whose rows were all dropped still moves the cursor on.
        s.append_spoke_audit("gpu-1", &[], 50).unwrap();
        assert_eq!(s.spoke_audit_cursor("gpu-1").unwrap(), 50);
        let all = s.egress_audit_after(0, 10).unwrap();
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![1, 2, 3], "the hub's own ids, in order");
        assert_eq!(all[1].box_id, "far");
    }
}
