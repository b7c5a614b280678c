//! Forward-only schema migrations, tracked in SQLite's `user_version`.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Append-only: a migration that has shipped is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_boxes.sql"),
    include_str!("../migrations/0002_git_tokens.sql"),
    include_str!("../migrations/0003_egress.sql"),
    include_str!("../migrations/0004_api_tokens.sql"),
    include_str!("../migrations/0005_api_token_mcp.sql"),
];

pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
