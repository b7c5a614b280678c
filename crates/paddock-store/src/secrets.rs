//! Sealed secrets of projects. The store keeps what the vault hands it
//! (`paddock-vault` seals and opens); it never sees a value in the clear.

use crate::db::{OptionalExtension, params};

use crate::{Result, Store};

/// One secret as stored: its value sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub project: String,
    pub name: String,
    /// The variable a box of the project finds its placeholder in.
    pub env: Option<String>,
    /// The bindings, JSON (the vault's to read).
    pub bindings: String,
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_used_ms: Option<i64>,
}

const COLUMNS: &str =
    "project, name, env, bindings, nonce, sealed, created_at_ms, updated_at_ms, last_used_ms";

fn row(r: &crate::db::Row) -> crate::Result<SecretRow> {
    Ok(SecretRow {
        project: r.get(0)?,
        name: r.get(1)?,
        env: r.get(2)?,
        bindings: r.get(3)?,
        nonce: r.get(4)?,
        sealed: r.get(5)?,
        created_at_ms: r.get(6)?,
        updated_at_ms: r.get(7)?,
        last_used_ms: r.get(8)?,
    })
}

impl Store {
    /// Writes the secret, keeping its creation time (and when it was last
    /// used) if it existed.
    pub fn put_secret(&self, s: &SecretRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO secrets (project, name, env, bindings, nonce, sealed, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (project, name) DO UPDATE SET env = excluded.env, bindings = excluded.bindings, \
             nonce = excluded.nonce, sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms",
            params![
                s.project,
                s.name,
                s.env,
                s.bindings,
                s.nonce,
                s.sealed,
                s.created_at_ms,
                s.updated_at_ms
            ],
        )?;
        Ok(())
    }

    pub fn secret(&self, project: &str, name: &str) -> Result<Option<SecretRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM secrets WHERE project = ?1 AND name = ?2"),
                params![project, name],
                row,
            )
            .optional()
    }

    /// Every secret, or a project's, by project then name.
    pub fn secrets(&self, project: Option<&str>) -> Result<Vec<SecretRow>> {
        self.conn().query_map(&format!(
            "SELECT {COLUMNS} FROM secrets WHERE CAST(?1 AS TEXT) IS NULL OR project = ?1 ORDER BY project, name"
        ), params![project], row)
    }

    /// Whether there was one to delete.
    pub fn delete_secret(&self, project: &str, name: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "DELETE FROM secrets WHERE project = ?1 AND name = ?2",
            params![project, name],
        )? > 0)
    }

    pub fn secret_used(&self, project: &str, name: &str, at_ms: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE secrets SET last_used_ms = CASE WHEN COALESCE(last_used_ms, 0) > ?3 THEN last_used_ms ELSE ?3 END \
             WHERE project = ?1 AND name = ?2",
            params![project, name, at_ms],
        )?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sample(value: u8, at_ms: i64) -> SecretRow {
        SecretRow {
            project: "p".into(),
            name: "KEY".into(),
            env: Some("API_KEY".into()),
            bindings: "[]".into(),
            nonce: vec![value; 12],
            sealed: vec![value; 40],
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
            last_used_ms: None,
        }
    }

    #[test]
    fn a_second_put_replaces_the_value_and_keeps_history() {
        a_second_put_replaces_the_value_and_keeps_history_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn a_second_put_replaces_the_value_and_keeps_history_on(s: &Store) {
        s.put_secret(&sample(1, 10)).unwrap();
        s.secret_used("p", "KEY", 15).unwrap();
        s.put_secret(&sample(2, 20)).unwrap();
        let got = s.secret("p", "KEY").unwrap().unwrap();
        assert_eq!(got.sealed, vec![2; 40]);
        assert_eq!((got.created_at_ms, got.updated_at_ms), (10, 20));
        assert_eq!(got.last_used_ms, Some(15));
        s.secret_used("p", "KEY", 12).unwrap();
        assert_eq!(
            s.secret("p", "KEY").unwrap().unwrap().last_used_ms,
            Some(15),
            "never moves back"
        );
        assert_eq!(s.secrets(Some("p")).unwrap().len(), 1);
        assert!(s.secrets(Some("q")).unwrap().is_empty());
        assert!(s.delete_secret("p", "KEY").unwrap());
        assert!(!s.delete_secret("p", "KEY").unwrap());
        assert!(s.secret("p", "KEY").unwrap().is_none());
    }
}
