//! Egress rules at the HTTP level (the gateway's `http_rules.rs` gives
//! them meaning; here they are rows).

use crate::db::params;

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRuleRow {
    pub id: i64,
    /// `box` or `project`.
    pub scope: String,
    pub subject: String,
    /// An exact name or `*.suffix`.
    pub host: String,
    /// None: any port.
    pub port: Option<u16>,
    /// Upper case, comma-separated; empty: any method.
    pub methods: String,
    pub path: String,
    /// Ref globs a push must update to match, comma-separated; empty: none.
    pub refs: String,
    pub action: String,
    pub expires_at_ms: Option<i64>,
    pub created_by: String,
    pub created_at_ms: i64,
}

const COLUMNS: &str = "id, scope, subject, host, port, methods, path, refs, action, expires_at_ms, created_by, created_at_ms";

fn row(r: &crate::db::Row) -> crate::Result<HttpRuleRow> {
    Ok(HttpRuleRow {
        id: r.get(0)?,
        scope: r.get(1)?,
        subject: r.get(2)?,
        host: r.get(3)?,
        port: r.get::<Option<i64>>(4)?.map(|p| p as u16),
        methods: r.get(5)?,
        path: r.get(6)?,
        refs: r.get(7)?,
        action: r.get(8)?,
        expires_at_ms: r.get(9)?,
        created_by: r.get(10)?,
        created_at_ms: r.get(11)?,
    })
}

impl Store {
    /// Adds the rule, or changes the action of the one with the same
    /// scope, host, port, methods, path and refs.
    pub fn put_http_rule(&self, rule: &HttpRuleRow) -> Result<HttpRuleRow> {
        let conn = self.conn();
        let port = rule.port.map(i64::from);
        conn.execute(
            "INSERT INTO egress_http_rules (scope, subject, host, port, methods, path, refs, action, expires_at_ms, created_by, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (scope, subject, host, IFNULL(port, -1), methods, path, refs) \
             DO UPDATE SET action = excluded.action, expires_at_ms = excluded.expires_at_ms, \
                           created_by = excluded.created_by, created_at_ms = excluded.created_at_ms",
            params![rule.scope, rule.subject, rule.host, port, rule.methods, rule.path, rule.refs, rule.action, rule.expires_at_ms, rule.created_by, rule.created_at_ms],
        )?;
        conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM egress_http_rules WHERE scope = ?1 AND subject = ?2 AND host = ?3 \
                 AND IFNULL(port, -1) = IFNULL(?4, -1) AND methods = ?5 AND path = ?6 AND refs = ?7"
            ),
            params![rule.scope, rule.subject, rule.host, port, rule.methods, rule.path, rule.refs],
            row,
        )
    }

    pub fn http_rules(&self) -> Result<Vec<HttpRuleRow>> {
        self.conn().query_map(
            &format!("SELECT {COLUMNS} FROM egress_http_rules ORDER BY id"),
            params![],
            row,
        )
    }

    pub fn delete_http_rule(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM egress_http_rules WHERE id = ?1", params![id])?
            > 0)
    }

    /// Rules of one box go with it.
    pub fn delete_box_http_rules(&self, box_id: &str) -> Result<usize> {
        self.conn().execute(
            "DELETE FROM egress_http_rules WHERE scope = 'box' AND subject = ?1",
            params![box_id],
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_same_request_pattern_is_one_rule() {
        the_same_request_pattern_is_one_rule_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn the_same_request_pattern_is_one_rule_on(s: &Store) {
        let mut rule = HttpRuleRow {
            id: 0,
            scope: "project".into(),
            subject: "p".into(),
            host: "api.github.com".into(),
            port: None,
            methods: "GET,HEAD".into(),
            path: "/repos/acme/**".into(),
            refs: String::new(),
            action: "allow".into(),
            expires_at_ms: None,
            created_by: "t".into(),
            created_at_ms: 1,
        };
        let first = s.put_http_rule(&rule).unwrap();
        rule.action = "deny".into();
        let second = s.put_http_rule(&rule).unwrap();
        assert_eq!((first.id, second.action.as_str()), (second.id, "deny"));
        rule.port = Some(8443);
        assert_ne!(s.put_http_rule(&rule).unwrap().id, first.id);
        assert_eq!(s.http_rules().unwrap().len(), 2);
        assert!(s.delete_http_rule(first.id).unwrap());
        assert_eq!(s.http_rules().unwrap().len(), 1);
    }
}
