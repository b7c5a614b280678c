//! The hub through its public API and over a real unix socket.

use std::time::Duration;

use paddock_clearance::varlink::{ClientError, VarlinkClient, VarlinkServer};
use paddock_clearance::{
    ClearanceEvent, Ending, EventKind, Hold, Hub, HubConfig, NotApplied, Ticket, Verdict,
    VerdictError, VerdictScope,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// How long the tests' held requests would wait for a verdict.
const HOLD: Duration = Duration::from_secs(60);

fn blocked(container: &str, dest: &str) -> ClearanceEvent {
    let mut e = ClearanceEvent::new(EventKind::ConnectionBlocked, container)
        .with_dossier("proj", &format!("paddock-{container}"));
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

fn ticket(hub: &Hub, container: &str, dest: &str) -> Ticket {
    match hub.hold(blocked(container, dest), 32, HOLD) {
        Hold::Held(t) => t,
        Hold::TooMany => panic!("over the limit"),
    }
}

/// Stands in for the gateway: waits on the ticket and answers a verdict
/// with `applied`.
fn holder(mut t: Ticket, applied: Result<(), NotApplied>) -> tokio::task::JoinHandle<Ending> {
    tokio::spawn(async move {
        let ending = t.ending().await;
        if let Ending::Decided { ack, .. } = &ending {
            ack.answer(applied);
        }
        ending
    })
}

#[tokio::test]
async fn a_verdict_must_cite_the_emitted_triple_and_counts_once() {
    let hub = Hub::new(HubConfig::default());
    let t = ticket(&hub, "box-a", "example.com");
    let id = t.request_id.clone();
    assert!(t.fresh);
    let held = holder(t, Ok(()));

    let wrong = hub
        .verdict(verdict("box-b", &id, "example.com", "allow"))
        .await;
    assert!(matches!(
        wrong,
        Err(VerdictError::VerdictTupleMismatch { ref expected_container, .. }) if expected_container == "box-a"
    ));
    assert!(matches!(
        hub.verdict(verdict("box-a", &id, "example.com", "maybe"))
            .await,
        Err(VerdictError::InvalidAction { .. })
    ));
    assert!(matches!(
        hub.verdict(verdict("box-a", "r2", "example.com", "allow"))
            .await,
        Err(VerdictError::UnknownRequest { .. })
    ));
    assert_eq!(hub.pending().len(), 1, "refusals change nothing");

    assert_eq!(
        hub.verdict(verdict("box-a", &id, "example.com", "deny"))
            .await,
        Ok(true)
    );
    // A late verdict hears how the request ended.
    assert_eq!(
        hub.verdict(verdict("box-a", &id, "example.com", "allow"))
            .await,
        Err(VerdictError::AlreadyEnded {
            request_id: id.clone(),
            how: "denied by test".into()
        })
    );
    match held.await.unwrap() {
        Ending::Decided { verdict, .. } => assert!(!verdict.allow),
        other => panic!("{other:?}"),
    }
    assert!(hub.pending().is_empty());
}

#[tokio::test]
async fn a_verdict_may_name_the_domain_as_teroks_clients_do() {
    let hub = Hub::new(HubConfig::default());
    let mut e = blocked("box-a", "203.0.113.7");
    e.domain = "api.example.com".into();
    let Hold::Held(t) = hub.hold(e, 32, HOLD) else {
        panic!("over the limit")
    };
    let id = t.request_id.clone();
    let held = holder(t, Ok(()));
    // Neither another name nor another address stands for it…
    for other in ["other.example.com", "203.0.113.8", ""] {
        assert!(
            matches!(
                hub.verdict(verdict("box-a", &id, other, "allow")).await,
                Err(VerdictError::VerdictTupleMismatch { .. })
            ),
            "{other:?}"
        );
    }
    // …its domain does (`domain or dest`, as terok's clients send).
    assert_eq!(
        hub.verdict(verdict("box-a", &id, "api.example.com", "allow"))
            .await,
        Ok(true)
    );
    assert!(matches!(held.await.unwrap(), Ending::Decided { .. }));
}

#[tokio::test]
async fn every_connection_blocked_carries_a_request_to_decide() {
    let hub = Hub::new(HubConfig::default());
    let sub = hub.subscribe();
    // A refusal published under the held kind by mistake is still not
    // offered for a decision: it travels as paddock's own type.
    hub.publish(blocked("box-a", "evil.example"));
    let t = ticket(&hub, "box-a", "api.example.com");
    let refused = sub.next().await.unwrap();
    assert_eq!(refused.event.kind, "connection_refused");
    let held = sub.next().await.unwrap();
    assert_eq!(held.event.kind, "connection_blocked");
    assert_eq!(held.event.request_id, t.request_id);
}

#[tokio::test]
async fn attempts_on_one_destination_share_a_request_and_a_box_has_a_limit() {
    let hub = Hub::new(HubConfig::default());
    let first = ticket(&hub, "box-a", "a.example");
    let again = ticket(&hub, "box-a", "a.example");
    assert!(first.fresh && !again.fresh);
    assert_eq!(first.request_id, again.request_id);
    assert_eq!(hub.pending()[0].times_blocked, 2);
    assert!(matches!(
        hub.hold(blocked("box-a", "b.example"), 1, HOLD),
        Hold::TooMany
    ));
    assert!(matches!(
        hub.hold(blocked("box-b", "b.example"), 1, HOLD),
        Hold::Held(_)
    ));
    // Both waiters see the one ending.
    let (one, two) = (holder(first, Ok(())), holder(again, Ok(())));
    let id = hub
        .pending()
        .iter()
        .find(|p| p.event.container == "box-a")
        .unwrap()
        .event
        .request_id
        .clone();
    hub.verdict(verdict("box-a", &id, "a.example", "allow"))
        .await
        .unwrap();
    for waiter in [one, two] {
        assert!(matches!(waiter.await.unwrap(), Ending::Decided { .. }));
    }
}

#[tokio::test]
async fn every_ending_ends_a_request_once_and_leaves_nothing() {
    let hub = Hub::new(HubConfig::default());
    // The deadline (the holder withdraws it).
    let t = ticket(&hub, "box-a", "a.example");
    let id = t.request_id.clone();
    let waiter = holder(t, Ok(()));
    assert!(
        hub.withdraw(&id, "timeout", "no verdict within 1 s")
            .is_some()
    );
    assert!(hub.withdraw(&id, "timeout", "again").is_none(), "once");
    assert!(matches!(waiter.await.unwrap(), Ending::Withdrawn { ref by, .. } if by == "timeout"));
    // The box went, or its shield changed: all of its requests, no other's.
    let gone = [
        ticket(&hub, "box-a", "b.example"),
        ticket(&hub, "box-a", "c.example"),
    ];
    let kept = ticket(&hub, "box-b", "b.example");
    let waiters: Vec<_> = gone.into_iter().map(|t| holder(t, Ok(()))).collect();
    assert_eq!(
        hub.withdraw_container("box-a", "paddock", "the box exited")
            .len(),
        2
    );
    for w in waiters {
        assert!(
            matches!(w.await.unwrap(), Ending::Withdrawn { ref reason, .. } if reason == "the box exited")
        );
    }
    assert_eq!(hub.pending().len(), 1);
    assert!(matches!(
        hub.verdict(verdict("box-a", &id, "a.example", "allow"))
            .await,
        Err(VerdictError::AlreadyEnded { ref how, .. }) if how == "withdrawn (no verdict within 1 s)"
    ));
    // A holder that cannot apply the verdict's scope: the sender hears it.
    let kept_id = kept.request_id.clone();
    let _waiter = holder(kept, Err(NotApplied("the store is read-only".into())));
    assert!(matches!(
        hub.verdict(verdict("box-b", &kept_id, "b.example", "allow")).await,
        Err(VerdictError::ApplyFailed { ref stderr, .. }) if stderr.contains("read-only")
    ));
    // Nobody holds it any more: the sender hears that too.
    let orphan = ticket(&hub, "box-c", "c.example");
    let orphan_id = orphan.request_id.clone();
    drop(orphan);
    assert!(matches!(
        hub.verdict(verdict("box-c", &orphan_id, "c.example", "allow"))
            .await,
        Err(VerdictError::ApplyFailed { .. })
    ));
    assert!(hub.pending().is_empty(), "nothing left behind");
}

/// Verdict, deadline and box exit racing for one request: exactly one
/// wins, every waiter sees that one, and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endings_racing_for_one_request_end_it_once() {
    for round in 0..200 {
        let hub = Hub::new(HubConfig::default());
        let t = ticket(&hub, "box", "race.example");
        let id = t.request_id.clone();
        let waiter = holder(t, Ok(()));
        let (h1, h2, h3) = (hub.clone(), hub.clone(), hub.clone());
        let (i1, i2) = (id.clone(), id.clone());
        let by_verdict = tokio::spawn(async move {
            h1.verdict(verdict("box", &i1, "race.example", "allow"))
                .await
                .is_ok()
        });
        let by_deadline =
            tokio::spawn(async move { h2.withdraw(&i2, "timeout", "deadline").is_some() });
        let by_exit =
            tokio::spawn(
                async move { !h3.withdraw_container("box", "paddock", "exited").is_empty() },
            );
        let wins = [
            by_verdict.await.unwrap(),
            by_deadline.await.unwrap(),
            by_exit.await.unwrap(),
        ];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "round {round}: {wins:?}"
        );
        let ending = waiter.await.unwrap();
        match (&ending, wins) {
            (Ending::Decided { .. }, [true, false, false]) => {}
            (Ending::Withdrawn { by, .. }, [false, true, false]) if by == "timeout" => {}
            (Ending::Withdrawn { by, .. }, [false, false, true]) if by == "paddock" => {}
            other => panic!("round {round}: {other:?}"),
        }
        assert!(hub.pending().is_empty());
    }
}

#[tokio::test]
async fn a_slow_subscriber_loses_its_oldest_events_and_nobody_else_waits() {
    let hub = Hub::new(HubConfig {
        queue_capacity: 4,
        ..HubConfig::default()
    });
    let slow = hub.subscribe();
    let fast = hub.subscribe();
    for i in 0..10 {
        let mut e = blocked("box", "x");
        e.request_id = format!("r{i}");
        hub.publish(e);
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
    let t = ticket(&hub, "box-a", "example.com");
    let r1 = t.request_id.clone();
    let _held = holder(t, Ok(()));
    let event = events.next().await.unwrap();
    assert_eq!(
        (event.kind.as_str(), event.request_id.as_str()),
        ("connection_blocked", r1.as_str())
    );

    let mut calls = VarlinkClient::connect(&path).await.unwrap();
    let pending = calls
        .call("org.paddock.Clearance1.Pending", json!({}))
        .await
        .unwrap();
    assert_eq!(pending["requests"][0]["times_blocked"], 1);
    // One shape on every surface (REST serves the same PendingView).
    let view: paddock_clearance::PendingView =
        serde_json::from_value(pending["requests"][0].clone()).unwrap();
    assert_eq!(
        (view.container.as_str(), view.port, view.proto),
        ("box-a", 443, 6)
    );
    assert!(
        view.first_seen_ms > 0 && view.first_seen.ends_with('Z'),
        "{view:?}"
    );
    let refused = calls
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "box-b", "request_id": r1, "dest": "example.com", "action": "allow"}),
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
            json!({"container": "box-a", "request_id": r1, "dest": "example.com", "action": "allow", "scope": "once"}),
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
