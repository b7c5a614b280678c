//! The egress gateway from inside real boxes: held connections and their
//! verdicts, deadlines, and the decision log. Destinations are servers the
//! test starts on loopback; a CIDR rule makes loopback behave like the
//! outside (ask), as the defaults refuse it.

use std::time::Duration;

use crate::common::egress_site::*;
use crate::common::{Options, Paddock, wait_for};
use serde_json::json;

fn options(hold_timeout_secs: u64) -> Options {
    Options {
        login_profile: false,
        extra_toml: format!(
            "[egress]\nhold_timeout_secs = {hold_timeout_secs}\n\
             [egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n\"meta.test\" = [\"169.254.169.254\"]\n\
             \"rebind.test\" = [\"127.0.0.2\"]\n"
        ),
        ..Options::default()
    }
}

fn wget(port: u16, path: &str) -> String {
    format!("wget -q -O - http://upstream.test:{port}/{path}")
}

#[tokio::test(flavor = "multi_thread")]
async fn held_connections_proceed_on_allow_and_are_refused_on_deny() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options(30));
    create_box(&p, "held", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "held").await;

    // Held, then allowed once over REST: the very same request completes.
    let first = exec_later(&p, "held", &wget(upstream.port, "one"));
    let held = sub
        .next_where("connection_blocked", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty()
        })
        .await;
    assert_eq!(
        (held.container.as_str(), held.dest.as_str(), held.port),
        ("held", "upstream.test", upstream.port as i64)
    );
    assert_eq!(
        held.dossier.get("project").map(String::as_str),
        Some("proj")
    );
    assert!(!first.is_finished(), "the request waits for a verdict");
    let (status, pending) = p.get("/api/v1/egress/pending").await;
    assert_eq!(
        (status, pending["requests"][0]["request_id"].as_str()),
        (200, Some(held.request_id.as_str()))
    );
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "held", "request_id": held.request_id, "dest": "upstream.test", "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
    let out = first.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));

    // `once` left no rule: the next request is held again; denied → 403.
    let second = exec_later(&p, "held", &wget(upstream.port, "two"));
    let held = sub
        .next_where("connection_blocked", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty()
        })
        .await;
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "held", "request_id": held.request_id, "dest": "upstream.test", "action": "deny"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = second.await.unwrap();
    assert_ne!(out["exit_code"], 0);
    assert!(out["stderr"].as_str().unwrap().contains("403"), "{out}");
    // The deny was for the box (the default scope): refused at once now.
    let third = exec(&p, "held", &wget(upstream.port, "three")).await;
    assert!(third["stderr"].as_str().unwrap().contains("403"), "{third}");

    // A verdict on a request already decided is refused, saying so.
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "held", "request_id": held.request_id, "dest": "upstream.test", "action": "allow"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("request_already_ended"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("already denied by"), "{body}");

    logged(
        &p,
        "held",
        &["held", "verdict_allow", "verdict_deny", "denied"],
    )
    .await;
    let upstream_paths: Vec<String> = upstream
        .connections()
        .iter()
        .map(|c| {
            String::from_utf8_lossy(c)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        upstream_paths,
        ["GET /one HTTP/1.1"],
        "only the allowed request arrived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_verdict_lets_later_connections_through_and_attempts_share_a_request() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options(30));
    create_box(&p, "shared", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "shared").await;

    let a = exec_later(&p, "shared", &wget(upstream.port, "a"));
    let held = sub
        .next_where("connection_blocked", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty()
        })
        .await;
    let b = exec_later(&p, "shared", &wget(upstream.port, "b"));
    wait_for(
        "the second attempt to join",
        Duration::from_secs(20),
        || async {
            let (_, pending) = p.get("/api/v1/egress/pending").await;
            (pending["requests"][0]["times_blocked"] == 2).then_some(())
        },
    )
    .await;
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    assert_eq!(
        pending["requests"].as_array().unwrap().len(),
        1,
        "one pending request for both"
    );

    let (status, _) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "shared", "request_id": held.request_id, "dest": "upstream.test", "action": "allow"}),
        )
        .await;
    assert_eq!(status, 200);
    for run in [a, b] {
        let out = run.await.unwrap();
        assert_eq!(out["exit_code"], 0, "{out}");
    }
    // The verdict became a box rule: no hold, no event, straight through.
    let out = exec(&p, "shared", &wget(upstream.port, "c")).await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let (_, rules) = p.get("/api/v1/egress/rules").await;
    assert!(
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["scope"] == "box"
                && r["target"] == "upstream.test"
                && r["action"] == "allow"),
        "{rules}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_without_a_verdict_is_refused_at_the_deadline() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options(2));
    create_box(&p, "late", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "late").await;

    let run = exec_later(&p, "late", &wget(upstream.port, "late"));
    let held = sub
        .next_where("connection_blocked", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty()
        })
        .await;
    let expired = sub
        .next_where("verdict_applied", |e| {
            e.kind == "verdict_applied" && e.request_id == held.request_id
        })
        .await;
    assert_eq!(expired.action, "deny");
    assert!(
        expired.reason.contains("no verdict within 2 s"),
        "{}",
        expired.reason
    );
    let out = run.await.unwrap();
    assert!(out["stderr"].as_str().unwrap().contains("403"), "{out}");
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    assert_eq!(pending["requests"], json!([]), "nothing stays held");
    assert!(upstream.connections().is_empty());
    logged(&p, "late", &["timeout"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_rules_guards_and_holds_still_work() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let mut p = Paddock::start(options(30));
    create_box(&p, "again", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    add_rule(&p, json!({"box_id": "again", "target": "upstream.test", "ports": upstream.port.to_string(), "action": "allow"})).await;
    let gw = gateway_of(&p, "again").await;
    assert!(p.stop().success());
    p.restart();

    // The rules survived; the box's guards were put back.
    let out = exec(&p, "again", &wget(upstream.port, "kept")).await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "again").await;
    let out = exec(&p, "again", &format!("echo hi | nc -w 3 {gw} 1")).await;
    assert_ne!(out["exit_code"], 0);
    sub.next_where("raw block after restart", |e| {
        e.kind == "connection_refused" && e.request_id.is_empty() && e.port == 1
    })
    .await;
    // A hold still waits for a person.
    let run = exec_later(
        &p,
        "again",
        &wget(upstream.port.wrapping_add(1).max(1), "held"),
    );
    let held = sub
        .next_where("held", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty()
        })
        .await;
    let (status, _) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "again", "request_id": held.request_id, "dest": held.dest, "action": "deny"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_ne!(run.await.unwrap()["exit_code"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_starts_and_deaths_are_events_and_a_dead_box_holds_nothing() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options(60));
    create_box(&p, "first", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "first").await;

    create_box(&p, "doomed", "proj").await;
    let started = sub
        .next_where("container_started", |e| {
            e.kind == "container_started" && e.container == "doomed"
        })
        .await;
    assert_eq!(
        started.dossier.get("project").map(String::as_str),
        Some("proj")
    );

    let _run = exec_later(&p, "doomed", &wget(upstream.port, "never"));
    let held = sub
        .next_where("held", |e| {
            e.kind == "connection_blocked" && e.container == "doomed" && !e.request_id.is_empty()
        })
        .await;
    // Killed behind paddock's back.
    let killed = crate::common::docker(&["kill", &p.container("doomed")]);
    assert!(killed.status.success());
    let exited = sub
        .next_where("container_exited", |e| {
            e.kind == "container_exited" && e.container == "doomed"
        })
        .await;
    assert!(exited.reason.contains("137"), "{}", exited.reason);
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "doomed", "request_id": held.request_id, "dest": held.dest, "action": "allow"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("request_already_ended"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("withdrawn"),
        "{body}"
    );
    assert!(upstream.connections().is_empty());
}
