//! The store: the only place paddock keeps state that must survive a
//! restart. Embedded SQLite by default; PostgreSQL (`[store] url`) when
//! several hubs share one database. Both run the same queries (`db.rs`).
//!
//! Every method is synchronous and short (single-row statements behind one
//! mutex); callers on the async runtime use it directly because a statement
//! costs microseconds on SQLite and a loopback round trip on PostgreSQL,
//! less than a hop to a blocking pool.

mod api_tokens;
mod backup;
mod boxes;
pub mod clock;
mod db;
mod egress;
mod export;
mod git_tokens;
mod http_rules;
mod leader;
mod migrate;
mod notices;
mod pg;
#[cfg(test)]
mod pg_tests;
mod ports;
mod secrets;
mod shared_keys;
mod spoke_boxes;
mod spokes;
#[cfg(feature = "testing")]
pub mod testing;
mod warm;

use parking_lot::Mutex;
use std::path::Path;

use rusqlite::Connection;

use crate::db::{Backend, Conn, OptionalExtension, params};

pub use api_tokens::ApiTokenRow;
pub use backup::backup;
pub use boxes::{ActivationRow, BoxRow, BoxState};
pub use egress::{AuditQuery, AuditRow, RuleRow};
pub use git_tokens::GitGrant;
pub use http_rules::HttpRuleRow;
pub use notices::{MAX_NOTICE_BYTES, Notice};
pub use secrets::SecretRow;
pub use shared_keys::SharedKeyRow;
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
    #[error("store: PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("store: the PostgreSQL URL is not usable: {0}")]
    PostgresUrl(String),
    #[error("store: the PostgreSQL connection's thread is gone")]
    PostgresGone,
    #[error(
        "store: the PostgreSQL connection was lost inside a transaction; nothing of it was applied"
    )]
    PostgresLostTransaction,
    /// A query that must find a row found none (the store's own callers
    /// turn it into `None`).
    #[error("store: no such row")]
    NoRow,
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
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                Code::DiskFull | Code::DatabaseBusy | Code::DatabaseLocked | Code::SystemIoFailure
            ),
            // No answer from the server (it is down, restarting, or the
            // connection dropped), or it said it is shutting down, out of
            // resources or that the transaction should be tried again.
            StoreError::Postgres(e) => e.as_db_error().is_none_or(|db| {
                let code = db.code().code();
                ["08", "53", "57P", "40001", "40P01"]
                    .iter()
                    .any(|class| code.starts_with(class))
            }),
            StoreError::PostgresGone | StoreError::PostgresLostTransaction => true,
            _ => false,
        }
    }

    /// Whether a write broke a uniqueness or other integrity constraint.
    pub(crate) fn is_conflict(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
            }
            StoreError::Postgres(e) => e
                .as_db_error()
                .is_some_and(|db| db.code().code().starts_with("23")),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Mutex<Backend>,
    /// On PostgreSQL: whether this hub leads (see `leader`).
    leader: Option<leader::Leadership>,
    /// On PostgreSQL: how to connect again (listeners have their own).
    settings: Option<postgres::Config>,
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

    /// Connects to PostgreSQL at `url` and brings its schema up to date
    /// (under a lock, so hubs starting together migrate once).
    pub fn open_postgres(url: &str) -> Result<Self> {
        let settings = pg::settings(url)?;
        let link = pg::PgLink::connect(settings.clone())?;
        let store = Self {
            conn: Mutex::new(Backend::Postgres(link)),
            leader: None,
            settings: None,
        };
        migrate::run(&store.conn())?;
        Ok(Self {
            leader: Some(leader::Leadership::start(settings.clone())),
            settings: Some(settings),
            ..store
        })
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = Self {
            conn: Mutex::new(Backend::Sqlite(conn)),
            leader: None,
            settings: None,
        };
        migrate::run(&store.conn())?;
        Ok(store)
    }

    /// The lock does not poison: a thread that panicked mid-statement had
    /// that statement rolled back by the database, so the connection is
    /// still consistent and the next caller keeps using it.
    pub(crate) fn conn(&self) -> Conn<'_> {
        Conn(self.conn.lock())
    }

    /// A store on `conn` as it is, not migrated (for migration tests).
    #[cfg(test)]
    pub(crate) fn with_sqlite(conn: Connection) -> Self {
        Self {
            conn: Mutex::new(Backend::Sqlite(conn)),
            leader: None,
            settings: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn sqlite_for_tests(&self) -> parking_lot::MappedMutexGuard<'_, Connection> {
        parking_lot::MutexGuard::map(self.conn.lock(), |backend| match backend {
            Backend::Sqlite(conn) => conn,
            Backend::Postgres(_) => panic!("not SQLite"),
        })
    }

    /// Whether this process may do what one hub at a time does (the
    /// reconcile with the engine, the reaper): always on SQLite; on
    /// PostgreSQL, while it holds the leader's lock.
    pub fn leads(&self) -> bool {
        self.leader.as_ref().is_none_or(leader::Leadership::leading)
    }

    /// Whether this store is PostgreSQL (shared with other hubs).
    pub fn is_shared(&self) -> bool {
        self.conn().is_postgres()
    }

    /// The database's size in bytes (its pages; the write-ahead log is
    /// folded in at checkpoints), for `/metrics` and retention.
    pub fn size_bytes(&self) -> Result<u64> {
        let conn = self.conn();
        if conn.is_postgres() {
            let bytes: i64 = conn.query_row(
                "SELECT pg_database_size(current_database())",
                params![],
                |r| r.get(0),
            )?;
            return Ok(bytes.max(0) as u64);
        }
        let pages: i64 = conn.query_row("PRAGMA page_count", params![], |r| r.get(0))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", params![], |r| r.get(0))?;
        Ok((pages.max(0) as u64) * (page_size.max(0) as u64))
    }

    /// Cheap liveness probe for `/healthz`.
    pub fn ping(&self) -> Result<()> {
        self.conn().query_row("SELECT 1", params![], |_| Ok(()))?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
    }

    /// Returns the stored value for `key`, storing `make()` first if absent.
    pub fn meta_or_insert(&self, key: &str, make: impl FnOnce() -> String) -> Result<String> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![key, make()],
        )?;
        conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
    }
}
