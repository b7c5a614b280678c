//! `GET /metrics` (capability `metrics:read`): the process's families in
//! Prometheus' text format. Counters and histograms are kept where things
//! happen (box service, gateway, here); gauges are read at scrape time
//! from the box service and the hub, so a scrape costs nothing between
//! scrapes and holds no lock anyone else waits on for long.

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use paddock_metrics::{CounterVec, ReadFn};

use crate::AppState;
use crate::routes::Routes;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes.bind("GET /metrics", scrape)
}

static AUTH_FAILURES: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_auth_failures_total",
        "Requests refused for their credential, by surface.",
        &["surface"],
    )
});

/// A credential refused on `surface`.
pub(crate) fn auth_failed(surface: &str) {
    AUTH_FAILURES.inc(&[surface]);
}

/// Registers the families this surface reads at scrape time.
pub(crate) fn register(s: &AppState) {
    paddock_core::metrics::register();
    paddock_egress::metrics::register();
    paddock_clearance::metrics::register();
    LazyLock::force(&AUTH_FAILURES);
    let boxes = s.boxes.clone();
    paddock_metrics::global().register(Arc::new(ReadFn::gauge(
        "paddock_boxes",
        "Boxes by state.",
        &["state"],
        move || {
            let mut by_state = std::collections::BTreeMap::<String, f64>::new();
            for view in boxes.list().unwrap_or_default() {
                *by_state.entry(view.state.as_str().to_owned()).or_default() += 1.0;
            }
            by_state.into_iter().map(|(k, v)| (vec![k], v)).collect()
        },
    )));
    let hub = s.hub.clone();
    paddock_metrics::global().register(Arc::new(ReadFn::gauge(
        "paddock_held_requests",
        "Requests held for a person right now.",
        &[],
        move || vec![(Vec::new(), hub.pending().len() as f64)],
    )));
    let hub = s.hub.clone();
    paddock_metrics::global().register(Arc::new(ReadFn::gauge(
        "paddock_clearance_subscribers",
        "Subscribers of the clearance hub (varlink, WebSocket, console, notifiers).",
        &[],
        move || vec![(Vec::new(), hub.subscriber_count() as f64)],
    )));
}

/// Read off the runtime's threads: some families read the store or a
/// file when scraped.
async fn scrape() -> Response {
    if !paddock_metrics::enabled() {
        return crate::error::ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            code: crate::error::ErrorCode::NotFound,
            message: "metrics are off in this paddock ([metrics] enabled = false)".into(),
        }
        .into_response();
    }
    let Ok(text) =
        tokio::task::spawn_blocking(|| paddock_metrics::encode(paddock_metrics::global())).await
    else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
