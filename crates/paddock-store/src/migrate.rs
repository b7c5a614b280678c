//! Forward-only schema migrations: on SQLite tracked in its
//! `user_version`, on PostgreSQL in `paddock_schema`, run under an
//! advisory lock so hubs starting together migrate once.

#[cfg(test)]
use rusqlite::Connection;

use crate::db::{Conn, params};
use crate::{Result, StoreError};

/// Append-only: a migration that has shipped is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_boxes.sql"),
    include_str!("../migrations/0002_git_tokens.sql"),
    include_str!("../migrations/0003_egress.sql"),
    include_str!("../migrations/0004_api_tokens.sql"),
    include_str!("../migrations/0005_api_token_mcp.sql"),
    include_str!("../migrations/0006_time_units.sql"),
    include_str!("../migrations/0007_box_lifecycle.sql"),
    include_str!("../migrations/0008_box_runtime.sql"),
    include_str!("../migrations/0009_secrets.sql"),
    include_str!("../migrations/0010_http_rules.sql"),
    include_str!("../migrations/0011_audit_export.sql"),
    include_str!("../migrations/0012_spokes.sql"),
    include_str!("../migrations/0013_spoke_boxes.sql"),
    include_str!("../migrations/0014_shared_keys.sql"),
];

/// PostgreSQL's, by the version each brings the schema to: it starts at
/// SQLite's 13 in one step, and every later migration is written for both.
const PG_MIGRATIONS: &[(i64, &str)] = &[
    (13, include_str!("../migrations/postgres/0013_schema.sql")),
    (14, include_str!("../migrations/0014_shared_keys.sql")),
];

/// The advisory lock the migrating hub holds (any fixed number; "pdk").
const PG_MIGRATION_LOCK: i64 = 0x70646b;

pub(crate) fn run(conn: &Conn<'_>) -> Result<()> {
    if conn.is_postgres() {
        return run_postgres(conn);
    }
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", params![], |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        conn.transaction(|tx| {
            tx.batch(sql)?;
            tx.batch(&format!("PRAGMA user_version = {}", index as i64 + 1))
        })?;
    }
    Ok(())
}

fn run_postgres(conn: &Conn<'_>) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    conn.transaction(|tx| {
        tx.execute(
            "SELECT pg_advisory_xact_lock(?1)",
            params![PG_MIGRATION_LOCK],
        )?;
        tx.batch("CREATE TABLE IF NOT EXISTS paddock_schema (version BIGINT NOT NULL)")?;
        let found: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM paddock_schema",
            params![],
            |r| r.get(0),
        )?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        for (version, sql) in PG_MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.batch(sql)?;
            tx.execute("DELETE FROM paddock_schema", params![])?;
            tx.execute(
                "INSERT INTO paddock_schema (version) VALUES (?1)",
                params![*version],
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before the columns said their units keeps every
    /// value under the new names.
    #[test]
    fn time_columns_are_renamed_with_their_values() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            "INSERT INTO boxes (id, project, image, state, created_at, updated_at) \
                 VALUES ('b1', 'p', 'img', 'running', 1000, 2000);
             INSERT INTO egress_audit (at, box_id, project, dest, port, proto, domain, decision, decided_by, request_id, reason) \
                 VALUES (3000, 'b1', 'p', '1.2.3.4', 443, 6, '', 'allow', 'rule', '', '');
             INSERT INTO egress_shield (box_id, state, until) VALUES ('b1', 'down', 4000);
             INSERT INTO api_tokens (id, token_hash, name, capabilities, created_at, expires_at) \
                 VALUES ('t1', 'h', 'n', 'box:read', 5, 6);",
        )
        .unwrap();
        let store = crate::Store::with_sqlite(conn);
        run(&store.conn()).unwrap();
        let conn = store.sqlite_for_tests();
        let row: (i64, i64, i64, i64, i64, i64) = conn
            .query_row(
                "SELECT b.created_at_ms, b.updated_at_ms, a.at_ms, s.until_ms, t.created_at_secs, t.expires_at_secs \
                 FROM boxes b, egress_audit a, egress_shield s, api_tokens t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        assert_eq!(row, (1000, 2000, 3000, 4000, 5, 6));
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    /// A store a newer paddock wrote is refused, untouched: this binary
    /// cannot know what its later migrations mean.
    #[test]
    fn a_store_from_a_newer_binary_is_refused_and_left_as_it_is() {
        let conn = Connection::open_in_memory().unwrap();
        let newer = MIGRATIONS.len() as i64 + 1;
        conn.pragma_update(None, "user_version", newer).unwrap();
        let store = crate::Store::with_sqlite(conn);
        match run(&store.conn()) {
            Err(StoreError::TooNew { found, known }) => {
                assert_eq!((found, known), (newer, MIGRATIONS.len() as i64));
            }
            other => panic!("{other:?}"),
        }
        let tables: i64 = store
            .sqlite_for_tests()
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "nothing was created");
    }
}

#[cfg(test)]
mod versions {
    /// PostgreSQL's schema is always at SQLite's latest version.
    #[test]
    fn postgres_reaches_the_same_version() {
        let last = super::PG_MIGRATIONS.last().unwrap().0;
        assert_eq!(last, super::MIGRATIONS.len() as i64);
    }
}
