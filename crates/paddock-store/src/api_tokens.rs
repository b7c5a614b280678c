//! API tokens of the built-in IAM regime: rows keyed by id, found by hash.

use crate::db::{OptionalExtension, Row, params};

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    pub id: String,
    pub token_hash: String,
    pub name: String,
    pub capabilities: Vec<String>,
    /// `None`: every project.
    pub projects: Option<Vec<String>>,
    pub created_at_secs: i64,
    pub expires_at_secs: Option<i64>,
    pub revoked_at_secs: Option<i64>,
    /// When the token was first used over MCP.
    pub mcp_seen_at_secs: Option<i64>,
}

const COLUMNS: &str = "id, token_hash, name, capabilities, projects, created_at_secs, expires_at_secs, \
                       revoked_at_secs, mcp_seen_at_secs";

fn json_list(text: &str) -> crate::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("not a JSON list: {e}")))
}

fn from_row(r: &Row) -> crate::Result<ApiTokenRow> {
    let capabilities: String = r.get(3)?;
    let projects: Option<String> = r.get(4)?;
    Ok(ApiTokenRow {
        id: r.get(0)?,
        token_hash: r.get(1)?,
        name: r.get(2)?,
        capabilities: json_list(&capabilities)?,
        projects: projects.as_deref().map(json_list).transpose()?,
        created_at_secs: r.get(5)?,
        expires_at_secs: r.get(6)?,
        revoked_at_secs: r.get(7)?,
        mcp_seen_at_secs: r.get(8)?,
    })
}

impl Store {
    pub fn insert_api_token(&self, row: &ApiTokenRow) -> Result<()> {
        let capabilities = serde_json::to_string(&row.capabilities)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let projects = row
            .projects
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted = self.conn().execute(
            &format!(
                "INSERT INTO api_tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            params![
                row.id,
                row.token_hash,
                row.name,
                capabilities,
                projects,
                row.created_at_secs,
                row.expires_at_secs,
                row.revoked_at_secs,
                row.mcp_seen_at_secs
            ],
        );
        match inserted {
            Err(e) if e.is_conflict() => Err(StoreError::Duplicate(row.id.clone())),
            other => other.map(|_| ()),
        }
    }

    /// The token whose hash this is, revoked or not (the caller decides).
    pub fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiTokenRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = ?1"),
                params![token_hash],
                from_row,
            )
            .optional()
    }

    pub fn api_token(&self, id: &str) -> Result<Option<ApiTokenRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1"),
                params![id],
                from_row,
            )
            .optional()
    }

    pub fn list_api_tokens(&self) -> Result<Vec<ApiTokenRow>> {
        self.conn().query_map(
            &format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at_secs, id"),
            params![],
            from_row,
        )
    }

    /// Marks a token revoked; false when there is no such token or it was
    /// revoked already (the first revocation time stays).
    pub fn revoke_api_token(&self, id: &str, now: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE api_tokens SET revoked_at_secs = ?2 WHERE id = ?1 AND revoked_at_secs IS NULL",
            params![id, now],
        )? == 1)
    }

    /// Records the first use of a token over MCP (later uses change
    /// nothing); true when this call recorded it.
    pub fn mark_api_token_mcp(&self, id: &str, now: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE api_tokens SET mcp_seen_at_secs = ?2 WHERE id = ?1 AND mcp_seen_at_secs IS NULL",
            params![id, now],
        )? == 1)
    }

    /// Whether any token was ever made here (revoked ones count): first
    /// start mints an admin token only into an empty table.
    pub fn any_api_token(&self) -> Result<bool> {
        self.conn()
            .query_row("SELECT EXISTS (SELECT 1 FROM api_tokens)", params![], |r| {
                r.get(0)
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::ApiTokenRow;
    use crate::{Store, StoreError};

    fn row(id: &str, hash: &str) -> ApiTokenRow {
        ApiTokenRow {
            id: id.into(),
            token_hash: hash.into(),
            name: "ci".into(),
            capabilities: vec!["box:read".into()],
            projects: Some(vec!["p".into()]),
            created_at_secs: 5,
            expires_at_secs: None,
            revoked_at_secs: None,
            mcp_seen_at_secs: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_revoke_once() {
        tokens_round_trip_and_revoke_once_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn tokens_round_trip_and_revoke_once_on(s: &Store) {
        assert!(!s.any_api_token().unwrap());
        s.insert_api_token(&row("t1", "h1")).unwrap();
        assert!(s.any_api_token().unwrap());
        assert_eq!(s.api_token_by_hash("h1").unwrap().unwrap(), row("t1", "h1"));
        assert!(s.api_token_by_hash("h2").unwrap().is_none());
        assert!(matches!(
            s.insert_api_token(&row("t2", "h1")),
            Err(StoreError::Duplicate(_))
        ));
        assert!(s.revoke_api_token("t1", 9).unwrap());
        assert!(!s.revoke_api_token("t1", 10).unwrap());
        assert!(!s.revoke_api_token("nope", 10).unwrap());
        assert_eq!(s.api_token("t1").unwrap().unwrap().revoked_at_secs, Some(9));
        assert_eq!(s.list_api_tokens().unwrap().len(), 1);
        assert!(s.mark_api_token_mcp("t1", 11).unwrap());
        assert!(!s.mark_api_token_mcp("t1", 12).unwrap());
        assert_eq!(
            s.api_token("t1").unwrap().unwrap().mcp_seen_at_secs,
            Some(11)
        );
    }
}
