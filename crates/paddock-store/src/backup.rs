//! A consistent copy of a live store, through SQLite's online backup: the
//! server keeps running and writing, and the copy is one moment of it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::Result;

/// Copies the database at `from` to a new file `to`, page by page while
/// writers go on. The source is opened read-only and not migrated: the
/// copy is what the running server has, whatever version it is.
pub fn backup(from: &Path, to: &Path) -> Result<()> {
    let source = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_secs(5))?;
    let mut dest = Connection::open(to)?;
    let copy = rusqlite::backup::Backup::new(&source, &mut dest)?;
    // 256 pages a step, with a pause between steps so writers get in.
    copy.run_to_completion(256, Duration::from_millis(5), None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{AuditRow, Store};

    #[test]
    fn the_copy_opens_as_a_store_with_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("paddock.db");
        let store = Store::open(&live).unwrap();
        store.meta_or_insert("instance", || "i-1".into()).unwrap();
        let row = AuditRow {
            id: 0,
            at_ms: 1,
            box_id: "b".into(),
            project: "p".into(),
            dest: "d".into(),
            port: 1,
            proto: 6,
            domain: String::new(),
            decision: "allowed".into(),
            decided_by: "default".into(),
            request_id: String::new(),
            reason: String::new(),
        };
        store.append_egress_audit(&[row]).unwrap();
        // Still open and written to: the copy is taken live.
        let copy = dir.path().join("copy.db");
        super::backup(&live, &copy).unwrap();
        let restored = Store::open(&copy).unwrap();
        assert_eq!(restored.meta("instance").unwrap().as_deref(), Some("i-1"));
        assert_eq!(restored.egress_audit_last_id().unwrap(), 1);
    }
}
