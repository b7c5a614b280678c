//! `[traces]` against an OTLP receiver the test runs: a request's span
//! with its box operation as a child, and a held connection's span from
//! hold to verdict. Every body is parsed by the OpenTelemetry project's
//! own protobuf definitions (Python's opentelemetry-proto).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::egress_site::{Held, create_box};
use crate::common::run_python;
use crate::common::{Options, Paddock, wait_for};

type Bodies = Arc<Mutex<Vec<String>>>;

async fn collector() -> (String, Bodies) {
    let bodies: Bodies = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(b): State<Bodies>, body: String| async move {
                b.lock().push(body);
                "{}"
            }),
        )
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

fn spans(bodies: &Bodies) -> Vec<Value> {
    bodies
        .lock()
        .iter()
        .flat_map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            v["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_box_operations_and_holds_reach_an_otlp_collector() {
    let (endpoint, bodies) = collector().await;
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!(
            "[traces]\nendpoint = \"{endpoint}\"\nflush_ms = 100\n\
             [egress.hosts]\n\"asked.test\" = [\"127.0.0.1\"]\n"
        ),
        ..Options::default()
    });
    create_box(&p, "traced", "proj").await;
    let held = Held::open(&p, "traced", "proj", "asked.test").await;
    let request_id = held.event.request_id.clone();
    assert_eq!(held.allow(&p).await["exit_code"], 0);

    // The create: a server span for the request, the box operation its child.
    let (request, create) = wait_for("the create's spans", Duration::from_secs(20), || async {
        let all = spans(&bodies);
        let create = all.iter().find(|s| {
            s["name"] == "box.create"
                && attr(s, "box.id") == Some(&json!({"stringValue": "traced"}))
        })?;
        let request = all.iter().find(|s| s["spanId"] == create["parentSpanId"])?;
        Some((request.clone(), create.clone()))
    })
    .await;
    assert_eq!(request["name"], "POST /api/v1/boxes");
    assert_eq!(request["kind"], 2);
    assert_eq!(request["traceId"], create["traceId"]);
    assert_eq!(
        attr(&request, "http.response.status_code"),
        Some(&json!({"intValue": "201"}))
    );
    for id in [&request["traceId"], &request["spanId"]] {
        let id = id.as_str().unwrap();
        assert!(
            (id.len() == 32 || id.len() == 16) && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
    // The held connection: from hold to the person's allow.
    let hold = wait_for("the hold's span", Duration::from_secs(20), || async {
        spans(&bodies)
            .into_iter()
            .find(|s| s["name"] == "egress.hold")
    })
    .await;
    assert_eq!(
        attr(&hold, "egress.ending"),
        Some(&json!({"stringValue": "allowed"}))
    );
    assert_eq!(
        attr(&hold, "egress.request_id"),
        Some(&json!({"stringValue": request_id}))
    );
    let nanos = |k: &str| hold[k].as_str().unwrap().parse::<u128>().unwrap();
    assert!(nanos("endTimeUnixNano") > nanos("startTimeUnixNano"));

    // Valid OTLP, as the OpenTelemetry project's definitions read it; and
    // no credential in any of it.
    let all: Vec<String> = bodies.lock().clone();
    for body in &all {
        assert!(!body.contains(&p.admin_token));
    }
    let checked = run_python("otlp_check.py", &json!(all));
    let counted: u64 = checked["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(counted >= 3, "{checked}");
}
