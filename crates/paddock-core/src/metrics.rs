//! What the box service counts for `/metrics` — creates and destroys by
//! outcome, and how long a create takes — and the span each box
//! operation leaves in a trace.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use paddock_metrics::{CounterVec, HistogramVec, SECONDS_BUCKETS};

static CREATES: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_box_creates_total",
        "Box creates asked for by people and scripts, by outcome (ok or error).",
        &["outcome"],
    )
});

static CREATE_SECONDS: LazyLock<Arc<HistogramVec>> = LazyLock::new(|| {
    paddock_metrics::histogram(
        "paddock_box_create_seconds",
        "How long a box create took, answered or failed.",
        &[],
        SECONDS_BUCKETS,
    )
});

static DESTROYS: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_box_destroys_total",
        "Box destroys asked for, by outcome (ok or error).",
        &["outcome"],
    )
});

/// Registers the families, so a scrape shows them before the first box.
pub fn register() {
    LazyLock::force(&CREATES);
    LazyLock::force(&CREATE_SECONDS);
    LazyLock::force(&DESTROYS);
}

fn outcome<T>(result: &crate::Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(_) => "error",
    }
}

pub(crate) fn created<T>(result: &crate::Result<T>, took: Duration) {
    CREATES.inc(&[outcome(result)]);
    CREATE_SECONDS.observe(&[], took.as_secs_f64());
}

pub(crate) fn destroyed(result: &crate::Result<()>) {
    DESTROYS.inc(&[outcome(result)]);
}

/// A box operation's span, a child of the request that asked for it.
pub(crate) fn operation(name: &'static str, box_id: Option<&str>) -> paddock_trace::Span {
    let mut span = paddock_trace::span(name, paddock_trace::SpanKind::Internal);
    if let Some(id) = box_id {
        span.attr("box.id", id);
    }
    span
}

/// Ends an operation's span with its outcome.
pub(crate) fn ended<T>(span: &mut paddock_trace::Span, result: &crate::Result<T>) {
    if let Err(e) = result {
        span.error(e.to_string());
    }
}
