//! The wall clock every stored time is written in. Columns say their unit
//! (`_ms`, `_secs`); these are the only two readings of the clock paddock
//! stores, so the two cannot be confused at a call site.

use std::time::{SystemTime, UNIX_EPOCH};

fn since_epoch() -> std::time::Duration {
    // A clock set before 1970 reads as the epoch rather than failing.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix time in milliseconds (boxes, activations, egress).
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}

/// Unix time in seconds (API tokens, whose expiries people write and JWTs
/// carry in seconds).
pub fn now_secs() -> i64 {
    since_epoch().as_secs() as i64
}
