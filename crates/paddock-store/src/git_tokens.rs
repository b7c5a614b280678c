//! Git gate tokens of boxes.

use crate::db::{OptionalExtension, params};

use crate::{Result, Store};

/// Who a git token belongs to, for a connection arriving on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitGrant {
    pub box_id: String,
    pub project: String,
}

impl Store {
    /// Replaces the box's git token.
    pub fn put_git_token(&self, box_id: &str, project: &str, token_hash: &str) -> Result<()> {
        let conn = self.conn();
        conn.execute("DELETE FROM git_tokens WHERE box_id = ?1", params![box_id])?;
        conn.execute(
            "INSERT INTO git_tokens (token_hash, box_id, project) VALUES (?1, ?2, ?3)",
            params![token_hash, box_id, project],
        )?;
        Ok(())
    }

    /// The grant for a token presented on `network_id`: only the box that
    /// holds that network, and only while it is not being destroyed.
    pub fn git_grant(&self, token_hash: &str, network_id: &str) -> Result<Option<GitGrant>> {
        self.conn()
            .query_row(
                "SELECT g.box_id, g.project FROM git_tokens g JOIN boxes b ON b.id = g.box_id \
                 WHERE g.token_hash = ?1 AND b.network_id = ?2 AND b.state NOT IN ('destroying')",
                params![token_hash, network_id],
                |r| {
                    Ok(GitGrant {
                        box_id: r.get(0)?,
                        project: r.get(1)?,
                    })
                },
            )
            .optional()
    }

    pub fn delete_git_token(&self, box_id: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM git_tokens WHERE box_id = ?1", params![box_id])?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::{BoxRow, BoxState, Store};

    #[test]
    fn a_token_works_only_from_its_boxs_network_and_dies_with_the_box() {
        a_token_works_only_from_its_boxs_network_and_dies_with_the_box_on(
            &Store::open_in_memory().unwrap(),
        );
    }

    pub(crate) fn a_token_works_only_from_its_boxs_network_and_dies_with_the_box_on(s: &Store) {
        s.insert_box(&BoxRow {
            state: BoxState::Ready,
            project: "p".into(),
            network_id: Some("net-1".into()),
            ..crate::boxes::test_row("b")
        })
        .unwrap();
        s.put_git_token("b", "p", "h").unwrap();
        assert_eq!(s.git_grant("h", "net-1").unwrap().unwrap().project, "p");
        assert!(s.git_grant("h", "net-2").unwrap().is_none());
        s.set_box_state("b", BoxState::Destroying, None, 1).unwrap();
        assert!(s.git_grant("h", "net-1").unwrap().is_none());
        s.delete_box("b").unwrap();
        s.set_box_state("b", BoxState::Ready, None, 1).unwrap();
        assert!(s.git_grant("h", "net-1").unwrap().is_none());
    }
}
