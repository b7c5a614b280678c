//! What the hub counts for `/metrics`: how long held requests waited and
//! how they ended, and events a subscriber's full queue lost.

use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use paddock_metrics::{CounterVec, HistogramVec};

/// A person's answer takes seconds to minutes; a hold ends at its
/// deadline (minutes) at the latest.
const HOLD_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

static HOLD_SECONDS: LazyLock<Arc<HistogramVec>> = LazyLock::new(|| {
    paddock_metrics::histogram(
        "paddock_hold_seconds",
        "From a request held to its end: a verdict (allowed, denied) or a withdrawal (deadline, box gone).",
        &["ending"],
        HOLD_BUCKETS,
    )
});

static QUEUE_DROPS: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_clearance_queue_drops_total",
        "Events a subscriber lost because its queue was full (the oldest go).",
        &[],
    )
});

/// Registers the families with every ending at zero.
pub fn register() {
    for ending in ["allowed", "denied", "withdrawn"] {
        HOLD_SECONDS.touch(&[ending]);
    }
    QUEUE_DROPS.add(&[], 0);
}

pub(crate) fn hold_ended(first_seen: SystemTime, ending: &'static str) {
    let waited = first_seen.elapsed().unwrap_or_default();
    HOLD_SECONDS.observe(&[ending], waited.as_secs_f64());
}

pub(crate) fn dropped() {
    QUEUE_DROPS.inc(&[]);
}
