//! Boxes on a spoke, through the hub: hub and spoke are separate
//! `paddock` processes with their own data dirs and instances (one Docker
//! engine here, the spoke's boxes told apart by its instance label). A
//! box the hub places on the spoke runs there, is reached through the
//! hub, is kept (shown unreachable) while the spoke is away and found
//! again when it is back; a connection it holds is decided at the hub.

use std::process::Command;
use std::time::Duration;

use paddock_clearance::varlink::VarlinkClient;
use serde_json::{Value, json};

use crate::common::egress_site::{
    UPSTREAM_BODY, Upstream, add_rule, audit, exec, exec_later, logged,
};
use crate::common::{Paddock, wait_for};
use crate::spokes::{hub_with_a_linked_spoke, until_connected};

/// Containers of an instance on this engine.
fn containers_of(instance: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=paddock.instance={instance}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn listed(p: &Paddock) -> Vec<Value> {
    let (status, body) = p.get("/api/v1/boxes").await;
    assert_eq!(status, 200, "{body}");
    body["boxes"].as_array().cloned().unwrap_or_default()
}

/// A box of project `proj` placed on `spoke_name` through the hub, whose
/// connections to loopback its spoke holds for a verdict.
pub(crate) async fn asking_box_on(p: &Paddock, spoke: &Paddock, spoke_name: &str, box_id: &str) {
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": box_id, "spoke": spoke_name}),
        )
        .await;
    assert_eq!(status, 201, "{created}\nspoke log:\n{}", spoke.log());
    add_rule(
        spoke,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
}

/// The first request in the hub's pending queue.
pub(crate) async fn first_pending(p: &Paddock) -> Option<Value> {
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    pending["requests"]
        .as_array()
        .and_then(|r| r.first().cloned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_on_a_spoke_is_reached_through_the_hub_and_kept_while_the_spoke_is_away() {
    let (p, _dir, mut spoke) = hub_with_a_linked_spoke("edge-b", "", "").await;
    until_connected(&p, "edge-b", true).await;

    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "alpha", "box_id": "far", "spoke": "edge-b"}),
        )
        .await;
    assert_eq!(status, 201, "{created}\nspoke log:\n{}", spoke.log());
    assert_eq!(created["spoke"], "edge-b", "{created}");
    // It runs on the spoke's engine under the spoke's instance, and the
    // hub made nothing of its own.
    let on_spoke = containers_of(&spoke.instance);
    assert!(on_spoke.iter().any(|c| c.contains("far")), "{on_spoke:?}");
    assert!(containers_of(&p.instance).is_empty());

    // Reached through the hub: exec, logs, get, list.
    let out = exec(&p, "far", "echo hello from $(hostname)").await;
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(
        out["stdout"].as_str().unwrap().contains("hello from"),
        "{out}"
    );
    let (status, logs) = p.get("/api/v1/boxes/far/logs").await;
    assert_eq!(status, 200, "{logs}");
    let (status, got) = p.get("/api/v1/boxes/far").await;
    assert_eq!(
        (status, &got["spoke"], &got["state"]),
        (200, &json!("edge-b"), &json!("ready")),
        "{got}"
    );
    let all = listed(&p).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["spoke"], "edge-b");
    // Whose box it is, is the hub's record: a token of another project
    // neither sees it nor reaches it.
    let (_, other) = p.mint(&["agent"], Some(&["other"])).await;
    let (status, _) = p.get_as(&other, "/api/v1/boxes/far").await;
    assert_eq!(status, 404);
    let (_, theirs) = p.get_as(&other, "/api/v1/boxes").await;
    assert_eq!(theirs["boxes"], json!([]), "{theirs}");
    // The spoke's own API holds the box too, as its own.
    let (_, own) = spoke.get("/api/v1/boxes/far").await;
    assert_eq!(own["box_id"], "far", "{own}");
    // Its shield and its power are set on the spoke, through the hub.
    let (status, body) = p
        .put("/api/v1/boxes/far/shield", json!({"state": "block"}))
        .await;
    assert_eq!((status, &body["state"]), (200, &json!("block")), "{body}");
    let (_, own) = spoke.get("/api/v1/boxes/far").await;
    assert_eq!(own["shield"], "block", "{own}");
    // The hub shows the spoke's shield, not one of its own making.
    let (_, shown) = p.get("/api/v1/boxes/far").await;
    assert_eq!(shown["shield"], "block", "{shown}");
    let listed_now = listed(&p).await;
    assert_eq!(listed_now[0]["shield"], "block", "{listed_now:?}");
    let (status, _) = p
        .put("/api/v1/boxes/far/shield", json!({"state": "up"}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = p.post("/api/v1/boxes/far/stop", json!({})).await;
    assert_eq!((status, &body["state"]), (200, &json!("stopped")), "{body}");
    let (status, body) = p.post("/api/v1/boxes/far/start", json!({})).await;
    assert_eq!((status, &body["state"]), (200, &json!("ready")), "{body}");
    // What the hub does not route to spokes is refused by name, not
    // tried on the hub's engine.
    let (status, body) = p.get("/api/v1/boxes/far/ports").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("on_spoke")),
        "{body}"
    );

    // The spoke goes: its box is kept and shown unreachable; what needs
    // the spoke says so.
    spoke.kill9();
    until_connected(&p, "edge-b", false).await;
    let all = listed(&p).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (&all[0]["box_id"], &all[0]["unreachable"]),
        (&json!("far"), &json!(true))
    );
    let (status, body) = p
        .post("/api/v1/boxes/far/exec", json!({"command": "true"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("spoke_unreachable")),
        "{body}"
    );
    let (status, body) = p.delete("/api/v1/boxes/far").await;
    assert_eq!(
        status, 503,
        "a box on an absent spoke is not forgotten: {body}"
    );

    // Back (the same spoke, its same store): the box is there again.
    spoke.restart();
    until_connected(&p, "edge-b", true).await;
    let (status, got) = p.get("/api/v1/boxes/far").await;
    assert_eq!((status, &got["unreachable"]), (200, &Value::Null), "{got}");
    let out = exec(&p, "far", "echo again").await;
    assert_eq!(out["stdout"], "again\n", "{out}");

    // Destroyed through the hub: gone there and here.
    let (status, body) = p.delete("/api/v1/boxes/far").await;
    assert_eq!(status, 204, "{body}");
    assert!(listed(&p).await.is_empty());
    wait_for(
        "the spoke's container to go",
        Duration::from_secs(30),
        || async { containers_of(&spoke.instance).is_empty().then_some(()) },
    )
    .await;
    let (status, _) = spoke.get("/api/v1/boxes/far").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_held_on_a_spoke_is_allowed_over_the_hubs_varlink_and_completes() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let spoke_toml = "[egress]\nhold_timeout_secs = 60\n\
                      [egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n";
    let (p, _dir, spoke) = hub_with_a_linked_spoke("edge-c", "", spoke_toml).await;
    until_connected(&p, "edge-c", true).await;
    asking_box_on(&p, &spoke, "edge-c", "asker").await;

    // Through the hub, which routes the exec to the spoke.
    let fetching = exec_later(
        &p,
        "asker",
        &format!("wget -q -O - http://upstream.test:{}/far", upstream.port),
    );
    // The hub's queue shows it, under the hub's own request id and the
    // hub's record of the project.
    let held = wait_for(
        "the held request at the hub",
        Duration::from_secs(30),
        || first_pending(&p),
    )
    .await;
    assert_eq!(held["container"], "asker", "{held}");
    let (_, on_spoke) = spoke.get("/api/v1/egress/pending").await;
    let spoke_id = on_spoke["requests"][0]["request_id"].clone();
    assert_ne!(held["request_id"], spoke_id, "the hub cites its own ids");
    assert!(
        !fetching.is_finished(),
        "the connection waits for a verdict"
    );

    // A verdict citing the spoke's id is not one the hub emitted.
    let mut varlink = VarlinkClient::connect(&p.clearance_socket()).await.unwrap();
    let wrong = varlink
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "asker", "request_id": spoke_id, "dest": held["dest"], "action": "allow"}),
        )
        .await;
    assert!(wrong.is_err(), "{wrong:?}");
    let allowed = varlink
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "asker", "request_id": held["request_id"], "dest": held["dest"], "action": "allow"}),
        )
        .await
        .unwrap();
    assert_eq!(allowed["ok"], true, "{allowed}");
    let out = fetching.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
    // Decided once: the same verdict again is refused, and both queues
    // are empty.
    let again = varlink
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "asker", "request_id": held["request_id"], "dest": held["dest"], "action": "allow"}),
        )
        .await;
    assert!(again.is_err(), "{again:?}");
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    assert_eq!(pending["requests"], json!([]), "{pending}");
    let (_, pending) = spoke.get("/api/v1/egress/pending").await;
    assert_eq!(pending["requests"], json!([]), "{pending}");

    // One decision log: the spoke's gateway's decision is in the hub's,
    // under the hub's record of the project, said to be the hub's verdict.
    logged(&p, "asker", &["held", "verdict_allow"]).await;
    let entries = audit(&p, "asker").await;
    let allowed = entries
        .iter()
        .find(|e| e["decision"] == "verdict_allow")
        .unwrap();
    assert_eq!(allowed["project"], "proj", "{allowed}");
    assert!(
        allowed["decided_by"]
            .as_str()
            .unwrap()
            .contains("via hub: varlink"),
        "{allowed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_a_spoke_holds_through_a_hub_restart_is_decided_at_the_hub_after() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let spoke_toml = "[egress]\nhold_timeout_secs = 120\n\
                      [egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n";
    let (mut p, _dir, spoke) = hub_with_a_linked_spoke("edge-d", "", spoke_toml).await;
    until_connected(&p, "edge-d", true).await;
    asking_box_on(&p, &spoke, "edge-d", "patient").await;
    // Through the spoke's own API, so the call outlives the hub.
    let fetching = exec_later(
        &spoke,
        "patient",
        &format!("wget -q -O - http://upstream.test:{}/late", upstream.port),
    );
    let before = wait_for(
        "the held request at the hub",
        Duration::from_secs(30),
        || first_pending(&p),
    )
    .await;

    // The hub goes and comes back; the spoke links again and announces
    // what it still holds, under a new id of the hub's.
    assert!(p.stop().success());
    p.restart();
    until_connected(&p, "edge-d", true).await;
    let after = wait_for(
        "the request announced again",
        Duration::from_secs(30),
        || first_pending(&p),
    )
    .await;
    assert_eq!(after["container"], "patient", "{after}");
    assert!(!fetching.is_finished(), "the connection still waits");
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "patient", "request_id": after["request_id"], "dest": after["dest"], "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
    let out = fetching.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
    // The old id died with the old hub.
    let (status, _) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "patient", "request_id": before["request_id"], "dest": before["dest"], "action": "allow"}),
        )
        .await;
    assert_ne!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_its_spoke_reaps_leaves_the_hubs_list_without_anyone_asking() {
    let (p, _dir, spoke) = hub_with_a_linked_spoke("edge-e", "", "").await;
    until_connected(&p, "edge-e", true).await;
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "alpha", "box_id": "brief", "spoke": "edge-e", "ttl_secs": 1}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    // The spoke's reaper ends it; the spoke tells the hub its count
    // changed, and the hub's row follows (a plain list reads only rows).
    wait_for(
        "the reaped box to leave the hub's list",
        Duration::from_secs(60),
        || async {
            let (_, all) = p.get("/api/v1/boxes").await;
            all["boxes"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        },
    )
    .await;
    let (status, _) = spoke.get("/api/v1/boxes/brief").await;
    assert_eq!(status, 404);
}
