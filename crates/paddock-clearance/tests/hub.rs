//! The hub through its public API and over a real unix socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_clearance::varlink::{ClientError, VarlinkClient, VarlinkServer};
use paddock_clearance::{
    CheckedVerdict, ClearanceEvent, EventKind, Hub, HubConfig, Verdict, VerdictError, VerdictScope,
    VerdictSink,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<(String, bool)>>,
}

impl VerdictSink for Recorder {
    fn apply(&self, v: &CheckedVerdict) -> Result<(), String> {
        self.applied
            .lock()
            .unwrap()
            .push((v.verdict.request_id.clone(), v.allow));
        Ok(())
    }
}

fn blocked(container: &str, request_id: &str, dest: &str) -> ClearanceEvent {
    let mut e = ClearanceEvent::new(EventKind::ConnectionBlocked, container)
        .with_dossier("proj", &format!("paddock-{container}"));
    e.request_id = request_id.into();
    e.dest = dest.into();
    e.port = 443;
    e.proto = 6;
    e.domain = dest.into();
    e
}

fn verdict(container: &str, request_id: &str, dest: &str, action: &str) -> Verdict {
    Verdict {
        container: container.into(),
        request_id: request_id.into(),
        dest: dest.into(),
        action: action.into(),
        scope: VerdictScope::Once,
        ttl: None,
        decided_by: "test".into(),
    }
}

#[tokio::test]
async fn a_verdict_must_cite_the_emitted_triple_and_counts_once() {
    let hub = Hub::new(HubConfig::default());
    let sink = Arc::new(Recorder::default());
    hub.set_sink(sink.clone());
    hub.hold(blocked("box-a", "r1", "example.com"));

    let wrong = hub.verdict(verdict("box-b", "r1", "example.com", "allow"));
    assert!(matches!(
        wrong,
        Err(VerdictError::VerdictTupleMismatch { ref expected_container, .. }) if expected_container == "box-a"
    ));
    assert!(matches!(
        hub.verdict(verdict("box-a", "r1", "example.com", "maybe")),
        Err(VerdictError::InvalidAction { .. })
    ));
    assert!(matches!(
        hub.verdict(verdict("box-a", "r2", "example.com", "allow")),
        Err(VerdictError::UnknownRequest { .. })
    ));
    assert!(
        sink.applied.lock().unwrap().is_empty(),
        "refusals change nothing"
    );

    assert_eq!(
        hub.verdict(verdict("box-a", "r1", "example.com", "deny")),
        Ok(true)
    );
    assert!(matches!(
        hub.verdict(verdict("box-a", "r1", "example.com", "allow")),
        Err(VerdictError::UnknownRequest { .. })
    ));
    assert_eq!(
        *sink.applied.lock().unwrap(),
        vec![("r1".to_owned(), false)]
    );
}

#[tokio::test]
async fn forgetting_a_box_drops_its_requests() {
    let hub = Hub::new(HubConfig::default());
    hub.hold(blocked("box-a", "r1", "a.example"));
    hub.hold(blocked("box-b", "r2", "b.example"));
    assert_eq!(hub.forget_container("box-a"), vec!["r1".to_owned()]);
    assert_eq!(hub.pending().len(), 1);
    assert!(matches!(
        hub.verdict(verdict("box-a", "r1", "a.example", "allow")),
        Err(VerdictError::UnknownRequest { .. })
    ));
}

#[tokio::test]
async fn a_slow_subscriber_loses_its_oldest_events_and_nobody_else_waits() {
    let hub = Hub::new(HubConfig { queue_capacity: 4 });
    let slow = hub.subscribe();
    let fast = hub.subscribe();
    for i in 0..10 {
        hub.publish(blocked("box", &format!("r{i}"), "x"));
        let got = tokio::time::timeout(Duration::from_secs(1), fast.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.event.request_id, format!("r{i}"));
    }
    assert_eq!(slow.dropped(), 6);
    let first_left = slow.next().await.unwrap();
    assert_eq!(first_left.event.request_id, "r6");
    drop(slow);
    assert_eq!(
        hub.subscriber_count(),
        1,
        "a dropped subscription unsubscribes"
    );
}

#[tokio::test]
async fn varlink_subscribe_and_verdict_over_a_unix_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub/clearance.sock");
    let hub = Hub::new(HubConfig::default());
    hub.set_sink(Arc::new(Recorder::default()));
    let server = VarlinkServer::bind(&path, hub.clone(), "test").unwrap();
    let stop = CancellationToken::new();
    let served = tokio::spawn(server.serve(stop.clone()));

    let mut events = VarlinkClient::connect(&path)
        .await
        .unwrap()
        .subscribe()
        .await
        .unwrap();
    // Subscribing is asynchronous on the server; wait until it counts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.subscriber_count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriber never registered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hub.hold(blocked("box-a", "r1", "example.com"));
    let event = events.next().await.unwrap();
    assert_eq!(
        (event.kind.as_str(), event.request_id.as_str()),
        ("connection_blocked", "r1")
    );

    let mut calls = VarlinkClient::connect(&path).await.unwrap();
    let pending = calls
        .call("org.paddock.Clearance1.Pending", json!({}))
        .await
        .unwrap();
    assert_eq!(pending["requests"][0]["times_blocked"], 1);
    let refused = calls
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "box-b", "request_id": "r1", "dest": "example.com", "action": "allow"}),
        )
        .await;
    assert!(
        matches!(refused, Err(ClientError::Remote { ref error, .. }) if error == "org.terok.Clearance1.VerdictTupleMismatch")
    );
    let missing = calls
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "box-a"}),
        )
        .await;
    assert!(
        matches!(missing, Err(ClientError::Remote { ref error, ref parameters }) if error == "org.varlink.service.InvalidParameter" && parameters["parameter"] == "request_id")
    );
    let ok = calls
        .call(
            "org.paddock.Clearance1.Verdict",
            json!({"container": "box-a", "request_id": "r1", "dest": "example.com", "action": "allow", "scope": "once"}),
        )
        .await
        .unwrap();
    assert_eq!(ok["ok"], true);
    let applied = events.next().await.unwrap();
    assert_eq!(
        (applied.kind.as_str(), applied.action.as_str(), applied.ok),
        ("verdict_applied", "allow", true)
    );

    stop.cancel();
    served.await.unwrap();
    assert!(!path.exists(), "the socket file goes with the server");
}
