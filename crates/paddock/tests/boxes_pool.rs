//! Warm pools on the real engine: a box made ahead for a project is
//! nobody's until a create claims it; the claimed box is indistinguishable
//! from a fresh box of the same project (its container's labels, the
//! environment inside), and the pool is filled again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::egress_site::{exec, gateway_of};
use crate::common::{Options, Paddock, docker, wait_for};

fn options() -> Options {
    Options {
        login_profile: false,
        extra_toml: "[[pools]]\nproject = \"proj\"\nsize = 1\n".into(),
        ..Options::default()
    }
}

/// The id of a warm box made ready besides `besides` (a warm box is
/// nobody's, so only paddock's log says when it is ready).
async fn warm_box(p: &Paddock, besides: &[&str]) -> String {
    wait_for("a warm box", Duration::from_secs(60), || {
        let log = p.log();
        let besides: Vec<String> = besides.iter().map(|s| (*s).to_owned()).collect();
        async move {
            log.lines()
                .filter(|l| l.contains("a warm box is ready"))
                .filter_map(|l| l.split("box_id=").nth(1))
                .filter_map(|rest| rest.split_whitespace().next())
                .find(|id| !besides.iter().any(|b| b == id))
                .map(str::to_owned)
        }
    })
    .await
}

/// The container's labels, with the box's own id written `<id>`.
fn labels(p: &Paddock, id: &str) -> BTreeMap<String, String> {
    let out = docker(&["inspect", "-f", "{{json .Config.Labels}}", &p.container(id)]);
    let labels: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    labels
        .into_iter()
        .map(|(k, v)| (k, v.replace(id, "<id>")))
        .collect()
}

/// The environment inside, with what is the box's own (its id, its
/// network's gateway, its git token) written as placeholders.
async fn environment(p: &Paddock, id: &str) -> BTreeMap<String, String> {
    let gateway = gateway_of(p, id).await;
    let out = exec(p, id, "env").await;
    let text = out["stdout"].as_str().unwrap();
    let token = text
        .split("username=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("no-token")
        .to_owned();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .replace(&token, "<token>")
                .replace(&gateway, "<gateway>")
                .replace(id, "<id>");
            (k.to_owned(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claimed_warm_box_is_a_fresh_box_of_its_project() {
    let p = Paddock::start(options());
    let warm = warm_box(&p, &[]).await;
    let (status, _) = p.get(&format!("/api/v1/boxes/{warm}")).await;
    assert_eq!(status, 404, "a warm box is nobody's");
    let (_, list) = p.get("/api/v1/boxes").await;
    assert_eq!(list["boxes"], json!([]));

    let (status, claimed) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "description": "mine"}),
        )
        .await;
    assert_eq!(status, 201, "{claimed}");
    assert_eq!(
        claimed["box_id"],
        warm.as_str(),
        "the warm box was claimed; log:\n{}",
        p.log()
    );
    assert_eq!(claimed["state"], "ready");
    assert_eq!(claimed["description"], "mine");
    let out = exec(&p, &warm, "echo claimed").await;
    assert_eq!(out["stdout"], "claimed\n", "{out}");

    // A fresh box of the same project, made the ordinary way.
    let (status, fresh) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "fresh"}),
        )
        .await;
    assert_eq!(status, 201, "{fresh}");
    assert_eq!(labels(&p, &warm), labels(&p, "fresh"));
    let (claimed_env, fresh_env) = (environment(&p, &warm).await, environment(&p, "fresh").await);
    assert!(
        claimed_env.contains_key("PADDOCK_GIT_URL"),
        "{claimed_env:?}"
    );
    assert_eq!(claimed_env, fresh_env);

    // The pool is full again, with another box.
    let refill = warm_box(&p, &[&warm, "fresh"]).await;
    assert_ne!(refill, warm);
    let (_, list) = p.get("/api/v1/boxes").await;
    let ids: Vec<&str> = list["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b: &Value| b["box_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&refill.as_str()));
}
