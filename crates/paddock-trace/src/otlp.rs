//! Finished spans as an OTLP/JSON `ExportTraceServiceRequest`: ids in hex
//! (as OTLP/JSON has them, unlike protobuf's own JSON), times as strings
//! of nanoseconds since the epoch, attributes as typed values.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::span::Finished;

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

fn any_value(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n.as_f64() }),
        Value::String(s) => json!({ "stringValue": s }),
        other => json!({ "stringValue": other.to_string() }),
    }
}

fn attributes(pairs: &[(&str, Value)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": any_value(v) }))
        .collect()
}

fn span(f: &Finished) -> Value {
    let mut span = json!({
        "traceId": hex::encode(f.context.trace_id),
        "spanId": hex::encode(f.context.span_id),
        "name": f.name,
        "kind": f.kind as i32,
        "startTimeUnixNano": nanos(f.start),
        "endTimeUnixNano": nanos(f.end),
        "attributes": attributes(&f.attributes),
        "status": match &f.error {
            // STATUS_CODE_ERROR, with why; STATUS_CODE_OK otherwise.
            Some(message) => json!({ "code": 2, "message": message }),
            None => json!({ "code": 1 }),
        },
    });
    if let Some(parent) = f.parent {
        span["parentSpanId"] = json!(hex::encode(parent));
    }
    span
}

/// One export request for `spans`, from `service`.
pub(crate) fn request(service: &str, spans: &[Finished]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": attributes(&[
                ("service.name", json!(service)),
                ("service.version", json!(env!("CARGO_PKG_VERSION"))),
            ]) },
            "scopeSpans": [{
                "scope": { "name": "paddock", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{SpanContext, SpanKind};

    #[test]
    fn a_span_reads_as_otlp_json() {
        let start = UNIX_EPOCH + std::time::Duration::from_nanos(1_000);
        let f = Finished {
            context: SpanContext {
                trace_id: [1; 16],
                span_id: [2; 8],
            },
            parent: Some([3; 8]),
            name: "box.create".into(),
            kind: SpanKind::Internal,
            start,
            end: start + std::time::Duration::from_nanos(500),
            attributes: vec![
                ("box.id", json!("b1")),
                ("ok", json!(true)),
                ("n", json!(3)),
            ],
            error: Some("engine gone".into()),
        };
        let body = request("paddock", &[f]);
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "01".repeat(16));
        assert_eq!(span["spanId"], "02".repeat(8));
        assert_eq!(span["parentSpanId"], "03".repeat(8));
        assert_eq!(span["startTimeUnixNano"], "1000");
        assert_eq!(span["endTimeUnixNano"], "1500");
        assert_eq!(span["kind"], 1);
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(
            span["attributes"],
            json!([
                {"key": "box.id", "value": {"stringValue": "b1"}},
                {"key": "ok", "value": {"boolValue": true}},
                {"key": "n", "value": {"intValue": "3"}},
            ])
        );
    }
}
