//! Warm boxes in the store: a box made ahead for a pool carries `warm`
//! until a create claims it, in one statement, so two creates never get the
//! same box.

use crate::db::{OptionalExtension, params};

use crate::{Result, Store};

/// What a create needs of a warm box, and what it sets on the one it gets.
pub struct WarmClaim<'a> {
    pub project: &'a str,
    pub image: &'a str,
    pub runtime: Option<&'a str>,
    pub read_only: bool,
    pub description: &'a str,
    pub expires_at_ms: Option<i64>,
}

impl Store {
    /// Hands the oldest ready warm box of `project` made from `image` with
    /// these options to a create, in one statement (two creates never get
    /// the same box, even from two hubs on one PostgreSQL: the outer
    /// `warm = 1` is checked again on the row a concurrent claim changed):
    /// it becomes an ordinary box, made now. Returns its id.
    pub fn claim_warm_box(&self, claim: &WarmClaim<'_>, now: i64) -> Result<Option<String>> {
        let id = self
            .conn()
            .query_row(
                "UPDATE boxes SET warm = 0, description = ?5, expires_at_ms = ?6, \
                     created_at_ms = ?7, updated_at_ms = ?7, active_at_ms = ?7 \
                 WHERE warm = 1 AND id = (SELECT id FROM boxes WHERE warm = 1 AND state = 'ready' \
                     AND project = ?1 AND image = ?2 AND runtime IS NOT DISTINCT FROM CAST(?3 AS TEXT) \
                     AND read_only = ?4 ORDER BY created_at_ms, id LIMIT 1) \
                 RETURNING id",
                params![
                    claim.project,
                    claim.image,
                    claim.runtime,
                    claim.read_only,
                    claim.description,
                    claim.expires_at_ms,
                    now
                ],
                |r| r.get(0),
            )
            .optional()?;
        Ok(id)
    }

    /// The warm boxes of `project` and `image` (made or being made).
    pub fn warm_boxes(&self, project: &str, image: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let ids: Vec<String> = conn.query_map(
            "SELECT id FROM boxes WHERE warm = 1 AND project = ?1 AND image = ?2 \
             AND state IN ('creating', 'ready') ORDER BY created_at_ms, id",
            params![project, image],
            |r| r.get(0),
        )?;
        Ok(ids)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::boxes::test_row as row;
    use crate::{BoxRow, BoxState};

    #[test]
    fn a_warm_box_is_claimed_once_and_only_by_a_matching_create() {
        a_warm_box_is_claimed_once_and_only_by_a_matching_create_on(
            &Store::open_in_memory().unwrap(),
        );
    }

    pub(crate) fn a_warm_box_is_claimed_once_and_only_by_a_matching_create_on(s: &Store) {
        for (id, at) in [("w1", 1), ("w2", 2)] {
            s.insert_box(&BoxRow {
                state: BoxState::Ready,
                warm: true,
                created_at_ms: at,
                ..row(id)
            })
            .unwrap();
        }
        let claim = |image, read_only| WarmClaim {
            project: "demo",
            image,
            runtime: None,
            read_only,
            description: "mine",
            expires_at_ms: Some(99),
        };
        assert_eq!(s.claim_warm_box(&claim("other", false), 50).unwrap(), None);
        assert_eq!(s.claim_warm_box(&claim("img", true), 50).unwrap(), None);
        assert_eq!(s.warm_boxes("demo", "img").unwrap(), vec!["w1", "w2"]);
        let first = s.claim_warm_box(&claim("img", false), 50).unwrap();
        assert_eq!(first.as_deref(), Some("w1"), "the oldest first");
        let got = s.get_box("w1").unwrap().unwrap();
        assert!(!got.warm);
        assert_eq!(
            (
                got.description.as_str(),
                got.expires_at_ms,
                got.created_at_ms
            ),
            ("mine", Some(99), 50)
        );
        let second = s.claim_warm_box(&claim("img", false), 51).unwrap();
        assert_eq!(second.as_deref(), Some("w2"));
        assert_eq!(s.claim_warm_box(&claim("img", false), 52).unwrap(), None);
        assert!(s.warm_boxes("demo", "img").unwrap().is_empty());
    }
}
