//! The embedded SQLite store: the only place paddock keeps state that must
//! survive a restart.
//!
//! Every method is synchronous and short (single-row statements behind one
//! mutex); callers on the async runtime use it directly because a statement
//! costs microseconds, far less than a hop to a blocking pool.

mod api_tokens;
mod backup;
mod boxes;
pub mod clock;
mod egress;
mod export;
mod git_tokens;
mod http_rules;
mod migrate;
mod ports;
mod secrets;
mod spoke_boxes;
mod spokes;
mod warm;

use parking_lot::{Mutex, MutexGuard};
use std::path::Path;

use rusqlite::Connection;

pub use api_tokens::ApiTokenRow;
pub use backup::backup;
pub use boxes::{ActivationRow, BoxRow, BoxState};
pub use egress::{AuditQuery, AuditRow, RuleRow};
pub use git_tokens::GitGrant;
pub use http_rules::HttpRuleRow;
pub use secrets::SecretRow;
pub use spoke_boxes::SpokeBoxRow;
pub use spokes::SpokeRow;
pub use warm::WarmClaim;

/// Memory SQLite holds in this process (its page cache, prepared
/// statements), in bytes: what a growing store adds to paddock's
/// footprint, up to the cache's cap (SQLite's default, 2 MiB).
pub fn sqlite_memory_bytes() -> u64 {
    // SAFETY: reads SQLite's own counter; no arguments, safe from any thread.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    used.max(0) as u64
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("store: a box with id {0:?} already exists")]
    Duplicate(String),
    #[error("store: corrupt row: {0}")]
    Corrupt(String),
    #[error(
        "store: database schema version {found} is newer than this binary knows ({known}): a newer paddock wrote it; run that version, or restore a backup this one made"
    )]
    TooNew { found: i64, known: i64 },
}

impl StoreError {
    /// Whether the store could not be written for a reason outside it
    /// that may pass — the disk is full, another process holds its lock,
    /// the disk failed an I/O — rather than a fault of paddock or of the
    /// request. Nothing was changed; a retry may succeed.
    pub fn unavailable(&self) -> bool {
        use rusqlite::ErrorCode as Code;
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    Code::DiskFull | Code::DatabaseBusy | Code::DatabaseLocked | Code::SystemIoFailure
                )
        )
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database file and brings its schema up
    /// to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate::run(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// The lock does not poison: a thread that panicked mid-statement had
    /// that statement rolled back by SQLite, so the connection is still
    /// consistent and the next caller keeps using it.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock()
    }

    /// The database's size in bytes (its pages; the write-ahead log is
    /// folded in at checkpoints), for `/metrics` and retention.
    pub fn size_bytes(&self) -> Result<u64> {
        let conn = self.conn();
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok((pages.max(0) as u64) * (page_size.max(0) as u64))
    }

    /// Cheap liveness probe for `/healthz`.
    pub fn ping(&self) -> Result<()> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Returns the stored value for `key`, storing `make()` first if absent.
    pub fn meta_or_insert(&self, key: &str, make: impl FnOnce() -> String) -> Result<String> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES (?1, ?2)",
            (key, make()),
        )?;
        Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
    }
}
