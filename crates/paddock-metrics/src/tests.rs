use std::sync::Arc;

use crate::*;

#[test]
fn the_exposition_is_what_prometheus_reads() {
    let registry = Registry::default();
    let decisions = Arc::new(CounterVec::new(
        "paddock_test_decisions_total",
        "Decisions by outcome.",
        &["decision"],
    ));
    let latency = Arc::new(HistogramVec::new(
        "paddock_test_seconds",
        "How long.",
        &[],
        &[0.1, 1.0],
    ));
    let gauge = Arc::new(ReadFn::gauge(
        "paddock_test_boxes",
        "Boxes by \"state\".",
        &["state"],
        || vec![(vec!["ready".into()], 2.0), (vec!["odd\"\\\n".into()], 1.0)],
    ));
    registry.register(decisions.clone());
    registry.register(latency.clone());
    registry.register(gauge);
    decisions.inc(&["allowed"]);
    decisions.add(&["allowed"], 2);
    decisions.inc(&["denied"]);
    latency.observe(&[], 0.05);
    latency.observe(&[], 0.5);
    latency.observe(&[], 5.0);
    let text = encode(&registry);
    let expected = "\
# HELP paddock_test_decisions_total Decisions by outcome.
# TYPE paddock_test_decisions_total counter
paddock_test_decisions_total{decision=\"allowed\"} 3
paddock_test_decisions_total{decision=\"denied\"} 1
# HELP paddock_test_seconds How long.
# TYPE paddock_test_seconds histogram
paddock_test_seconds_bucket{le=\"0.1\"} 1
paddock_test_seconds_bucket{le=\"1\"} 2
paddock_test_seconds_bucket{le=\"+Inf\"} 3
paddock_test_seconds_sum 5.55
paddock_test_seconds_count 3
# HELP paddock_test_boxes Boxes by \"state\".
# TYPE paddock_test_boxes gauge
paddock_test_boxes{state=\"ready\"} 2
paddock_test_boxes{state=\"odd\\\"\\\\\\n\"} 1
";
    assert_eq!(text, expected);
}

#[test]
fn a_family_registered_twice_is_one() {
    let registry = Registry::default();
    registry.register(Arc::new(CounterVec::new("paddock_twice", "h", &[])));
    registry.register(Arc::new(CounterVec::new("paddock_twice", "h", &[])));
    assert_eq!(registry.families().len(), 1);
}
