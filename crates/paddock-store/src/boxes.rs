//! Box rows and their activation tokens.

use crate::db::{Conn, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::{Result, Store, StoreError};

/// Where a box is in its life. `Creating` and `Destroying` are journal
/// states: a row still in one of them after a restart names work that a
/// crash interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoxState {
    Creating,
    PendingActivation,
    Ready,
    Failed,
    Destroying,
    /// Stopped on request: the container and its filesystem are kept.
    Stopped,
    /// The main process ended on its own (`exit_code` says how).
    Exited,
}

impl BoxState {
    pub fn as_str(self) -> &'static str {
        match self {
            BoxState::Creating => "creating",
            BoxState::PendingActivation => "pending_activation",
            BoxState::Ready => "ready",
            BoxState::Failed => "failed",
            BoxState::Destroying => "destroying",
            BoxState::Stopped => "stopped",
            BoxState::Exited => "exited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "creating" => BoxState::Creating,
            "pending_activation" => BoxState::PendingActivation,
            "ready" => BoxState::Ready,
            "failed" => BoxState::Failed,
            "destroying" => BoxState::Destroying,
            "stopped" => BoxState::Stopped,
            "exited" => BoxState::Exited,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRow {
    pub id: String,
    pub project: String,
    pub image: String,
    pub description: String,
    pub state: BoxState,
    pub container_id: Option<String>,
    pub network_id: Option<String>,
    pub error: Option<String>,
    /// Opaque per-hook state, replayed to `box.destroy` hooks.
    pub hook_state: serde_json::Value,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The main process's exit code, once it ended on its own.
    pub exit_code: Option<i64>,
    /// When the box's time to live runs out (Unix ms); None: never.
    pub expires_at_ms: Option<i64>,
    /// When the box was last used (Unix ms): the idle timeout counts
    /// from here.
    pub active_at_ms: i64,
    /// The OCI runtime the container runs under; None: the engine's
    /// default.
    pub runtime: Option<String>,
    /// The root filesystem is read-only (a workspace volume is writable).
    pub read_only: bool,
    /// The container's name (None: a box from before names carried the
    /// instance, named `paddock-<id>`).
    pub container_name: Option<String>,
    /// Made ahead for a warm pool and not claimed yet: nobody's box, not
    /// listed, never idle.
    pub warm: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRow {
    pub box_id: String,
    pub expires_at_ms: i64,
    pub used: bool,
}

const BOX_COLUMNS: &str = "id, project, image, description, state, container_id, network_id, \
                           error, hook_state, created_at_ms, updated_at_ms, exit_code, \
                           expires_at_ms, active_at_ms, runtime, read_only, \
                           container_name, warm";

fn box_from_row(row: &Row) -> crate::Result<std::result::Result<BoxRow, String>> {
    let state: String = row.get(4)?;
    let hook_state: String = row.get(8)?;
    let Some(state) = BoxState::parse(&state) else {
        return Ok(Err(format!("unknown box state {state:?}")));
    };
    let hook_state = match serde_json::from_str(&hook_state) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("hook_state is not JSON: {e}"))),
    };
    Ok(Ok(BoxRow {
        id: row.get(0)?,
        project: row.get(1)?,
        image: row.get(2)?,
        description: row.get(3)?,
        state,
        container_id: row.get(5)?,
        network_id: row.get(6)?,
        error: row.get(7)?,
        hook_state,
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
        exit_code: row.get(11)?,
        expires_at_ms: row.get(12)?,
        active_at_ms: row.get::<Option<i64>>(13)?.unwrap_or(0),
        runtime: row.get(14)?,
        read_only: row.get(15)?,
        container_name: row.get(16)?,
        warm: row.get(17)?,
    }))
}

/// The insert itself: only while fewer than `limit` boxes exist.
fn insert_capped(conn: &Conn<'_>, b: &BoxRow, limit: i64) -> Result<bool> {
    let res = conn.execute(
        &format!(
            "INSERT INTO boxes ({BOX_COLUMNS}) SELECT ?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18 \
             WHERE (SELECT COUNT(*) FROM boxes) < ?19"
        ),
        params![
            b.id,
            b.project,
            b.image,
            b.description,
            b.state.as_str(),
            b.container_id,
            b.network_id,
            b.error,
            b.hook_state.to_string(),
            b.created_at_ms,
            b.updated_at_ms,
            b.exit_code,
            b.expires_at_ms,
            b.active_at_ms,
            b.runtime,
            b.read_only,
            b.container_name,
            b.warm,
            limit
        ],
    );
    match res {
        Ok(n) => Ok(n == 1),
        Err(e) if e.is_conflict() => Err(StoreError::Duplicate(b.id.clone())),
        Err(e) => Err(e),
    }
}

/// The advisory lock box inserts under a limit take on PostgreSQL.
const BOX_LIMIT_LOCK: i64 = 0x7064_6b01;

impl Store {
    /// Journals a new box. Fails with [`StoreError::Duplicate`] when the id
    /// is taken, so two concurrent creates of one id cannot both proceed.
    pub fn insert_box(&self, b: &BoxRow) -> Result<()> {
        self.insert_box_capped(b, i64::MAX).map(|_| ())
    }

    /// Inserts the row only while fewer than `limit` boxes exist, in one
    /// statement, so concurrent creates cannot overshoot the configured
    /// maximum. Returns false when the limit is reached.
    pub fn insert_box_within_limit(&self, b: &BoxRow, limit: u32) -> Result<bool> {
        self.insert_box_capped(b, i64::from(limit))
    }

    fn insert_box_capped(&self, b: &BoxRow, limit: i64) -> Result<bool> {
        let conn = self.conn();
        if conn.is_postgres() && limit < i64::MAX {
            // Hubs sharing the database count together: one insert at a
            // time under the limit's lock, or two could both see room.
            return conn.transaction(|tx| {
                tx.execute("SELECT pg_advisory_xact_lock(?1)", params![BOX_LIMIT_LOCK])?;
                insert_capped(tx, b, limit)
            });
        }
        insert_capped(&conn, b, limit)
    }

    pub fn get_box(&self, id: &str) -> Result<Option<BoxRow>> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {BOX_COLUMNS} FROM boxes WHERE id = ?1"),
                params![id],
                box_from_row,
            )
            .optional()?;
        row.transpose().map_err(StoreError::Corrupt)
    }

    pub fn list_boxes(&self) -> Result<Vec<BoxRow>> {
        let rows = self.conn().query_map(
            &format!("SELECT {BOX_COLUMNS} FROM boxes ORDER BY created_at_ms, id"),
            params![],
            box_from_row,
        )?;
        rows.into_iter()
            .map(|row| row.map_err(StoreError::Corrupt))
            .collect()
    }

    pub fn count_boxes(&self) -> Result<u32> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM boxes", params![], |r| r.get(0))?;
        Ok(n as u32)
    }

    /// Returns false when no such box exists.
    pub fn set_box_state(
        &self,
        id: &str,
        state: BoxState,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE boxes SET state = ?2, error = ?3, updated_at_ms = ?4 WHERE id = ?1",
            params![id, state.as_str(), error, now],
        )?;
        Ok(n == 1)
    }

    /// Moves a box from `from` to `to` only if it is still in `from`: the
    /// guard that keeps a late activation result from resurrecting a box
    /// that is being destroyed.
    pub fn transition_box(
        &self,
        id: &str,
        from: BoxState,
        to: BoxState,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE boxes SET state = ?3, error = ?4, updated_at_ms = ?5 WHERE id = ?1 AND state = ?2",
            params![id, from.as_str(), to.as_str(), error, now],
        )?;
        Ok(n == 1)
    }

    /// Moves a box to `to` only if it is in one of `from`, recording the
    /// main process's exit code (None clears it). True when it moved.
    pub fn transition_box_from(
        &self,
        id: &str,
        from: &[BoxState],
        to: BoxState,
        exit_code: Option<i64>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        // One parameter per state: the same SQL on both databases.
        let states: Vec<String> = (0..from.len()).map(|i| format!("?{}", i + 6)).collect();
        let sql = format!(
            "UPDATE boxes SET state = ?2, exit_code = ?3, error = ?4, updated_at_ms = ?5 \
             WHERE id = ?1 AND state IN ({})",
            states.join(", ")
        );
        let mut values = params![id, to.as_str(), exit_code, error, now].to_vec();
        values.extend(
            from.iter()
                .map(|s| crate::db::ToValue::to_value(s.as_str())),
        );
        Ok(self.conn().execute(&sql, &values)? == 1)
    }

    /// Records that the box was used now: the idle timeout starts over.
    pub fn touch_box(&self, id: &str, now: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE boxes SET active_at_ms = CASE WHEN COALESCE(active_at_ms, 0) > ?2 THEN active_at_ms ELSE ?2 END \
             WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// Boxes whose time to live ran out before `now`, or that nobody used
    /// since `idle_cutoff` (None: no idle timeout). Boxes on their way in
    /// or out are left to the ones making or removing them.
    pub fn boxes_expired(&self, now: i64, idle_cutoff: Option<i64>) -> Result<Vec<String>> {
        let conn = self.conn();
        let ids: Vec<String> = conn.query_map(
            "SELECT id FROM boxes WHERE state NOT IN ('creating', 'destroying') AND warm = 0 \
             AND ((expires_at_ms IS NOT NULL AND expires_at_ms <= ?1) \
                  OR (CAST(?2 AS BIGINT) IS NOT NULL AND COALESCE(active_at_ms, updated_at_ms) < ?2)) \
             ORDER BY id",
            params![now, idle_cutoff],
            |r| r.get(0),
        )?;
        Ok(ids)
    }

    pub fn set_box_network(&self, id: &str, network_id: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE boxes SET network_id = ?2 WHERE id = ?1",
            params![id, network_id],
        )?;
        Ok(())
    }

    pub fn set_box_container(&self, id: &str, container_id: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE boxes SET container_id = ?2 WHERE id = ?1",
            params![id, container_id],
        )?;
        Ok(())
    }

    pub fn set_hook_state(&self, id: &str, state: &serde_json::Value) -> Result<()> {
        self.conn().execute(
            "UPDATE boxes SET hook_state = ?2 WHERE id = ?1",
            params![id, state.to_string()],
        )?;
        Ok(())
    }

    /// Deleting a missing box is not an error: destroy is idempotent.
    pub fn delete_box(&self, id: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM boxes WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Replaces any earlier activation token of the box.
    pub fn put_activation(&self, box_id: &str, token_hash: &str, expires_at_ms: i64) -> Result<()> {
        let conn = self.conn();
        conn.execute("DELETE FROM activations WHERE box_id = ?1", params![box_id])?;
        conn.execute(
            "INSERT INTO activations (token_hash, box_id, expires_at_ms) VALUES (?1, ?2, ?3)",
            params![token_hash, box_id, expires_at_ms],
        )?;
        Ok(())
    }

    pub fn find_activation(&self, token_hash: &str) -> Result<Option<ActivationRow>> {
        self.conn()
            .query_row(
                "SELECT box_id, expires_at_ms, used FROM activations WHERE token_hash = ?1",
                params![token_hash],
                |r| {
                    Ok(ActivationRow {
                        box_id: r.get(0)?,
                        expires_at_ms: r.get(1)?,
                        used: r.get::<i64>(2)? != 0,
                    })
                },
            )
            .optional()
    }

    /// Marks the token used; true only for the one caller that flipped it,
    /// which is what makes a token single-use under concurrent submits.
    pub fn consume_activation(&self, token_hash: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE activations SET used = 1 WHERE token_hash = ?1 AND used = 0",
            params![token_hash],
        )?;
        Ok(n == 1)
    }

    /// Boxes still waiting for activation that were created before `cutoff`.
    /// Boxes whose activation did not end in `ready` (still pending, or
    /// failed) and that were made before `cutoff`: the reaper's.
    pub fn boxes_pending_since(&self, cutoff: i64) -> Result<Vec<String>> {
        let conn = self.conn();
        let ids: Vec<String> = conn.query_map("SELECT id FROM boxes WHERE state IN ('pending_activation', 'failed') AND created_at_ms < ?1", params![cutoff], |r| r.get(0))?;
        Ok(ids)
    }
}

/// A box row for the store's own tests: project `demo`, `creating`.
#[cfg(test)]
pub(crate) fn test_row(id: &str) -> BoxRow {
    BoxRow {
        id: id.into(),
        project: "demo".into(),
        image: "img".into(),
        description: String::new(),
        state: BoxState::Creating,
        container_id: None,
        network_id: None,
        error: None,
        hook_state: serde_json::json!({}),
        created_at_ms: 1,
        updated_at_ms: 1,
        exit_code: None,
        expires_at_ms: None,
        active_at_ms: 1,
        runtime: None,
        read_only: false,
        container_name: None,
        warm: false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn row(id: &str) -> BoxRow {
        test_row(id)
    }

    #[test]
    fn duplicate_ids_are_refused() {
        duplicate_ids_are_refused_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn duplicate_ids_are_refused_on(s: &Store) {
        s.insert_box(&row("a")).unwrap();
        assert!(matches!(
            s.insert_box(&row("a")),
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(s.count_boxes().unwrap(), 1);
    }

    #[test]
    fn limit_is_enforced_on_insert() {
        limit_is_enforced_on_insert_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn limit_is_enforced_on_insert_on(s: &Store) {
        assert!(s.insert_box_within_limit(&row("a"), 1).unwrap());
        assert!(!s.insert_box_within_limit(&row("b"), 1).unwrap());
        assert!(s.get_box("b").unwrap().is_none());
    }

    #[test]
    fn transition_only_from_expected_state() {
        transition_only_from_expected_state_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn transition_only_from_expected_state_on(s: &Store) {
        s.insert_box(&row("a")).unwrap();
        assert!(
            !s.transition_box("a", BoxState::PendingActivation, BoxState::Ready, None, 2)
                .unwrap()
        );
        assert!(
            s.transition_box("a", BoxState::Creating, BoxState::Ready, None, 2)
                .unwrap()
        );
        assert_eq!(s.get_box("a").unwrap().unwrap().state, BoxState::Ready);
    }

    #[test]
    fn a_transition_from_several_states_records_the_exit_code() {
        a_transition_from_several_states_records_the_exit_code_on(
            &Store::open_in_memory().unwrap(),
        );
    }

    pub(crate) fn a_transition_from_several_states_records_the_exit_code_on(s: &Store) {
        s.insert_box(&row("a")).unwrap();
        let live = [BoxState::Ready, BoxState::PendingActivation];
        assert!(
            !s.transition_box_from("a", &live, BoxState::Exited, Some(3), None, 2)
                .unwrap(),
            "a box still being created does not exit"
        );
        s.set_box_state("a", BoxState::Ready, None, 2).unwrap();
        assert!(
            s.transition_box_from("a", &live, BoxState::Exited, Some(3), None, 3)
                .unwrap()
        );
        let got = s.get_box("a").unwrap().unwrap();
        assert_eq!((got.state, got.exit_code), (BoxState::Exited, Some(3)));
    }

    #[test]
    fn expired_and_idle_boxes_are_found_but_not_those_in_motion() {
        expired_and_idle_boxes_are_found_but_not_those_in_motion_on(
            &Store::open_in_memory().unwrap(),
        );
    }

    pub(crate) fn expired_and_idle_boxes_are_found_but_not_those_in_motion_on(s: &Store) {
        for (id, state, expires, active) in [
            ("ttl-over", BoxState::Ready, Some(50), 90),
            ("ttl-ahead", BoxState::Ready, Some(500), 90),
            ("idle", BoxState::Stopped, None, 10),
            ("busy", BoxState::Ready, None, 95),
            ("leaving", BoxState::Destroying, Some(1), 1),
        ] {
            let mut r = row(id);
            r.state = state;
            r.expires_at_ms = expires;
            r.active_at_ms = active;
            s.insert_box(&r).unwrap();
        }
        assert_eq!(s.boxes_expired(100, None).unwrap(), vec!["ttl-over"]);
        assert_eq!(
            s.boxes_expired(100, Some(20)).unwrap(),
            vec!["idle", "ttl-over"]
        );
        s.touch_box("idle", 99).unwrap();
        assert_eq!(s.boxes_expired(100, Some(20)).unwrap(), vec!["ttl-over"]);
    }

    #[test]
    fn activation_is_single_use_and_cascades() {
        activation_is_single_use_and_cascades_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn activation_is_single_use_and_cascades_on(s: &Store) {
        s.insert_box(&row("a")).unwrap();
        s.put_activation("a", "h", 10).unwrap();
        assert!(s.consume_activation("h").unwrap());
        assert!(!s.consume_activation("h").unwrap());
        s.delete_box("a").unwrap();
        assert!(s.find_activation("h").unwrap().is_none());
    }

    #[test]
    fn reopening_keeps_rows_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/paddock.db");
        {
            let s = Store::open(&path).unwrap();
            s.insert_box(&row("a")).unwrap();
            s.meta_or_insert("instance", || "x".into()).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.list_boxes().unwrap().len(), 1);
        assert_eq!(s.meta_or_insert("instance", || "y".into()).unwrap(), "x");
    }
}
