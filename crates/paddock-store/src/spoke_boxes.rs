//! Boxes placed on spokes, as the hub keeps them.

use crate::db::{OptionalExtension, params};

use crate::{Result, Store};

/// A box on a spoke: where it is, whose it is, and how it last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokeBoxRow {
    pub id: String,
    pub spoke: String,
    pub project: String,
    /// The last view of the box the spoke gave (JSON the box service
    /// reads); opaque here.
    pub view_json: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const COLUMNS: &str = "id, spoke, project, view_json, created_at_ms, updated_at_ms";

fn from_row(r: &crate::db::Row) -> crate::Result<SpokeBoxRow> {
    Ok(SpokeBoxRow {
        id: r.get(0)?,
        spoke: r.get(1)?,
        project: r.get(2)?,
        view_json: r.get(3)?,
        created_at_ms: r.get(4)?,
        updated_at_ms: r.get(5)?,
    })
}

impl Store {
    /// Records a box about to be made on a spoke; false (and nothing
    /// written) when the id is taken, here or by a box of this machine.
    pub fn insert_spoke_box(&self, row: &SpokeBoxRow) -> Result<bool> {
        let conn = self.conn();
        let written = conn.execute(
            "INSERT INTO spoke_boxes (id, spoke, project, view_json, created_at_ms, updated_at_ms) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
             WHERE NOT EXISTS (SELECT 1 FROM boxes WHERE id = ?1) \
               AND NOT EXISTS (SELECT 1 FROM spoke_boxes WHERE id = ?1)",
            params![
                row.id,
                row.spoke,
                row.project,
                row.view_json,
                row.created_at_ms,
                row.updated_at_ms
            ],
        )?;
        Ok(written == 1)
    }

    pub fn get_spoke_box(&self, id: &str) -> Result<Option<SpokeBoxRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM spoke_boxes WHERE id = ?1"),
                params![id],
                from_row,
            )
            .optional()
    }

    /// Every box on every spoke, oldest first.
    pub fn list_spoke_boxes(&self) -> Result<Vec<SpokeBoxRow>> {
        self.conn().query_map(
            &format!("SELECT {COLUMNS} FROM spoke_boxes ORDER BY created_at_ms, id"),
            params![],
            from_row,
        )
    }

    /// The latest view of a box, from the spoke it is on; false when the
    /// hub has no such box on that spoke (a spoke speaks only for its own).
    pub fn update_spoke_box(
        &self,
        id: &str,
        spoke: &str,
        view_json: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let written = self.conn().execute(
            "UPDATE spoke_boxes SET view_json = ?3, updated_at_ms = ?4 WHERE id = ?1 AND spoke = ?2",
            params![id, spoke, view_json, now_ms],
        )?;
        Ok(written == 1)
    }

    /// Forgets a box of `spoke` (destroyed there, or never made).
    pub fn delete_spoke_box(&self, id: &str, spoke: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM spoke_boxes WHERE id = ?1 AND spoke = ?2",
            params![id, spoke],
        )?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn row(id: &str, spoke: &str) -> SpokeBoxRow {
        SpokeBoxRow {
            id: id.into(),
            spoke: spoke.into(),
            project: "alpha".into(),
            view_json: "{}".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn an_id_is_one_boxs_wherever_it_runs() {
        an_id_is_one_boxs_wherever_it_runs_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn an_id_is_one_boxs_wherever_it_runs_on(store: &Store) {
        assert!(store.insert_spoke_box(&row("b1", "gpu-1")).unwrap());
        assert!(
            !store.insert_spoke_box(&row("b1", "gpu-2")).unwrap(),
            "taken by another spoke's box"
        );
        assert_eq!(store.get_spoke_box("b1").unwrap().unwrap().spoke, "gpu-1");
    }

    #[test]
    fn a_spoke_updates_and_forgets_only_its_own_boxes() {
        a_spoke_updates_and_forgets_only_its_own_boxes_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn a_spoke_updates_and_forgets_only_its_own_boxes_on(store: &Store) {
        store.insert_spoke_box(&row("b1", "gpu-1")).unwrap();
        assert!(
            !store
                .update_spoke_box("b1", "gpu-2", "{\"x\":1}", 2)
                .unwrap()
        );
        store.delete_spoke_box("b1", "gpu-2").unwrap();
        assert_eq!(store.get_spoke_box("b1").unwrap().unwrap().view_json, "{}");
        assert!(
            store
                .update_spoke_box("b1", "gpu-1", "{\"x\":1}", 2)
                .unwrap()
        );
        store.delete_spoke_box("b1", "gpu-1").unwrap();
        assert!(store.list_spoke_boxes().unwrap().is_empty());
    }
}
