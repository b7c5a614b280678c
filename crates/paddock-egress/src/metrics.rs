//! What the gateway counts for `/metrics`: its decisions by outcome (the
//! decision log's vocabulary), and secrets put on the wire.

use std::sync::{Arc, LazyLock};

use paddock_metrics::CounterVec;

use crate::audit::AuditDecision;

static DECISIONS: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_egress_decisions_total",
        "Egress decisions by outcome, as the decision log names them.",
        &["decision"],
    )
});

/// Registers the family with every outcome at zero, so rates work from
/// the first scrape.
pub fn register() {
    for decision in AuditDecision::ALL {
        DECISIONS.add(&[decision.as_str()], 0);
    }
}

pub(crate) fn decided(decision: AuditDecision) {
    DECISIONS.inc(&[decision.as_str()]);
}
