//! The activation page as a person's browser uses it, and the held
//! connections a login waits on, for the activation tests.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Paddock, wait_for};

/// A created box's activation link (its token is the last path segment).
pub fn activation_url(created: &Value) -> String {
    created["activation_url"]
        .as_str()
        .expect("an activation_url")
        .to_owned()
}

/// Posts a code to an activation link, as the page's form does.
pub async fn send_code(p: &Paddock, url: &str, code: &str) -> reqwest::Response {
    p.http
        .post(url)
        .form(&[("code", code)])
        .send()
        .await
        .unwrap()
}

/// An activation page as the browser gets it: status, its `Refresh`
/// header if any, and the HTML.
pub async fn page(p: &Paddock, url: &str) -> (u16, Option<String>, String) {
    let r = p.http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let refresh = r
        .headers()
        .get("refresh")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, refresh, r.text().await.unwrap())
}

/// The box's connection to `host` held for a person, once there is one.
pub async fn held_to(p: &Paddock, box_id: &str, host: &str) -> Value {
    wait_for(
        &format!("a connection to {host} held"),
        Duration::from_secs(60),
        || async {
            let (_, pending) = p.get("/api/v1/egress/pending").await;
            pending["requests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["container"] == box_id && r["domain"] == host)
                .cloned()
        },
    )
    .await
}

/// A person's verdict, once, on a held connection.
pub async fn decide(p: &Paddock, box_id: &str, held: &Value, action: &str) {
    let (s, b) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": box_id, "request_id": held["request_id"], "dest": held["dest"], "action": action, "scope": "once"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}
