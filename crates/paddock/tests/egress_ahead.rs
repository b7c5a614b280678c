//! Agents that say why: through the official Python MCP SDK the agent's
//! token files a request ahead with its reason (`request_egress`), sees it
//! pending in `egress_status`, and a connection the box makes meanwhile
//! waits on that very request and completes when a person allows it. The
//! reason is untrusted text: it arrives as one bounded line, and the
//! console shows it as "agent says", as text. A pre-filed request counts
//! against `max_held_per_box`; what the rules already decide is answered
//! at once; the agent decides nothing.

use crate::common::egress_site::*;
use std::time::Duration;

use crate::common::{Options, Paddock, run_python, wait_for};
use serde_json::{Value, json};

fn mcp(p: &Paddock, token: &str, calls: Value) -> Vec<Value> {
    let out = run_python(
        "mcp_client.py",
        &json!({"url": format!("{}/mcp", p.url), "token": token, "calls": calls}),
    );
    out["results"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_asks_ahead_and_a_person_decides() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[egress]\nhold_timeout_secs = 120\nmax_held_per_box = 1\n\
                     [egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n"
            .into(),
        ..Options::default()
    });
    create_box(&p, "ah", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "denied.test", "action": "deny"}),
    )
    .await;
    let (_, agent) = p.mint(&["agent"], Some(&["proj"])).await;
    let port = upstream.port;
    let reason = "<b>need</b> the\nAPI docs @channel";
    let r = mcp(
        &p,
        &agent,
        json!([
            ["request_egress", {"box_id": "ah", "destination": "upstream.test", "port": port, "reason": reason}],
            ["request_egress", {"box_id": "ah", "destination": "other.test", "port": 443, "reason": "second"}],
            ["request_egress", {"box_id": "ah", "destination": "denied.test", "reason": "x"}],
            ["request_egress", {"box_id": "ah", "destination": "not a host", "reason": "x"}],
            ["egress_status", {"box_id": "ah"}],
        ]),
    );
    let filed = &r[0]["structured"];
    assert_eq!(filed["status"], "pending", "{}", r[0]);
    let request_id = filed["request_id"].as_str().unwrap().to_owned();
    assert!(filed["deadline_ms"].as_i64().unwrap() > 0);
    // One held request per box here: the second is refused, not queued.
    assert_eq!(r[1]["structured"]["status"], "refused", "{}", r[1]);
    assert!(
        r[1]["structured"]["detail"]
            .as_str()
            .unwrap()
            .contains("waits on 1"),
        "{}",
        r[1]
    );
    assert_eq!(r[2]["structured"]["status"], "refused", "{}", r[2]);
    assert_eq!(r[3]["is_error"], true, "{}", r[3]);
    assert!(
        r[3]["text"].as_str().unwrap().starts_with("invalid: "),
        "{}",
        r[3]
    );
    let status = &r[4]["structured"];
    assert_eq!(status["pending"][0]["request_id"], request_id.as_str());
    assert_eq!(
        status["pending"][0]["agent_reason"], "<b>need</b> the API docs @channel",
        "one line, kept as text"
    );
    assert_eq!(status["denied"][0]["target"], "denied.test", "{status}");

    // The box connects meanwhile: it waits on the same request.
    let run = exec_later(
        &p,
        "ah",
        &format!("wget -q -O - http://upstream.test:{port}/"),
    );
    let joined = wait_for(
        "the box's connection joining the request",
        Duration::from_secs(30),
        || async {
            let (_, pending) = p.get("/api/v1/egress/pending").await;
            let first = pending["requests"][0].clone();
            (first["times_blocked"] == 2).then_some(first)
        },
    )
    .await;
    assert_eq!(joined["request_id"], request_id.as_str());
    assert_eq!(joined["agent_reason"], "<b>need</b> the API docs @channel");

    // The agent's token decides nothing, however it asks.
    let denied = p
        .client_as(&agent)
        .post(format!("{}/api/v1/egress/verdicts", p.url))
        .json(&json!({"container": "ah", "request_id": request_id, "dest": "upstream.test", "action": "allow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "ah", "request_id": request_id, "dest": "upstream.test", "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = run.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
    let entries = audit(&p, "ah").await;
    assert!(
        entries
            .iter()
            .any(|e| e["decision"] == "held" && e["decided_by"] == "agent asked ahead"),
        "{entries:#?}"
    );
}
