//! A collector that accepts connections and never answers: spans keep
//! being made, the queue stays bounded, and what does not fit is dropped
//! and counted — the traced paths never wait on it.

use tokio_util::sync::CancellationToken;

use crate::export::DROPPED;
use crate::{SpanKind, TraceConfig, Tracer, span};

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_never_answers_delays_no_span() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accepts, reads nothing, answers nothing.
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let config = TraceConfig {
        endpoint: Some(endpoint),
        queue_capacity: 16,
        batch: 8,
        flush_ms: 10,
        timeout_secs: 60,
        ..TraceConfig::default()
    };
    let stop = CancellationToken::new();
    Tracer::install(&config, stop.clone()).unwrap().unwrap();
    // The exporter takes at most one batch (8), and hangs on it; the
    // queue keeps 16; the rest must be dropped, not waited for.
    for n in 0..101 {
        let mut s = span("busy", SpanKind::Internal);
        s.attr("n", n);
    }
    let queued = Tracer::installed().unwrap().queue.lock().len();
    assert!(queued <= 16, "the queue is bounded: {queued}");
    assert!(
        DROPPED.get(&["queue_full"]) >= 101 - 16 - 8,
        "dropped {}",
        DROPPED.get(&["queue_full"])
    );
    // A second tracer in one process is refused.
    assert!(Tracer::install(&config, CancellationToken::new()).is_err());
    stop.cancel();
    held.abort();
}
