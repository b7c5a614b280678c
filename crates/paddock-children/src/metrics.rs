//! The children's families in `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use paddock_metrics::{CounterVec, ReadFn};

use crate::Supervisor;

/// Ends by kind and how they ended: `ok`, `failed` (an exit code),
/// `stopped` (a signal paddock sent, or during shutdown), `crashed` (any
/// other signal), `lost`.
pub(crate) fn exits() -> &'static CounterVec {
    static EXITS: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
        paddock_metrics::counter(
            "paddock_child_exits_total",
            "Child processes that ended, by kind and how they ended.",
            &["kind", "ending"],
        )
    });
    &EXITS
}

/// The running children by kind, read from `supervisor` when scraped.
pub(crate) fn register_running(supervisor: Supervisor) {
    exits();
    paddock_metrics::global().register(Arc::new(ReadFn::gauge(
        "paddock_children_running",
        "Child processes running now, by kind.",
        &["kind"],
        move || {
            let mut by_kind: BTreeMap<&'static str, f64> = BTreeMap::new();
            for child in supervisor.running() {
                *by_kind.entry(child.kind).or_default() += 1.0;
            }
            by_kind
                .into_iter()
                .map(|(kind, n)| (vec![kind.to_owned()], n))
                .collect()
        },
    )));
}
