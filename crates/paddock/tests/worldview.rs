//! `GET /api/v1/worldview` and `paddock status` against a real server with
//! a real box, a held request and a subscriber: one answer that agrees
//! with the parts it gathers, limited to a caller's projects, and with no
//! secret or token in it.

use serde_json::{Value, json};

use crate::common::egress_site::{Held, create_box};
use crate::common::{Options, Paddock};

#[tokio::test(flavor = "multi_thread")]
async fn the_worldview_shows_boxes_networks_holds_and_subscribers_as_they_are() {
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[egress.hosts]\n\"asked.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    });
    let (status, _) = p
        .put(
            "/api/v1/projects/proj/secrets/key",
            json!({"value": "sk-worldview-secret", "env": "API_KEY"}),
        )
        .await;
    assert_eq!(status, 200);
    create_box(&p, "seen", "proj").await;
    let held = Held::open(&p, "seen", "proj", "asked.test").await;
    let request_id = held.event.request_id.clone();

    let (status, view) = p.get("/api/v1/worldview").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "ok", "{view}");
    for component in ["store", "docker", "egress", "clearance"] {
        assert_eq!(view["components"][component]["ok"], true, "{view}");
    }
    assert_eq!(view["version"], env!("CARGO_PKG_VERSION"));
    let boxes = view["boxes"].as_array().unwrap();
    assert_eq!(boxes.len(), 1, "{view}");
    assert_eq!(
        (&boxes[0]["box_id"], &boxes[0]["state"], &boxes[0]["shield"]),
        (&json!("seen"), &json!("ready"), &json!("up"))
    );
    // The network the box holds is the one Docker has it on.
    let held_networks = view["networks"]["held"].as_array().unwrap();
    assert_eq!(held_networks.len(), 1, "{view}");
    assert_eq!(held_networks[0]["box_id"], "seen");
    let network = held_networks[0]["network"].as_str().unwrap();
    let on = crate::common::inspect(
        &p.container("seen"),
        "{{range $name, $n := .NetworkSettings.Networks}}{{$name}} {{$n.NetworkID}} {{end}}",
    );
    assert!(on.contains(network), "{network} not in {on}");
    assert!(held_networks[0]["gateway"].is_string(), "{view}");
    assert!(view["networks"]["spare"].is_array(), "{view}");
    // The held request, as the pending list shows it.
    let pending = view["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{view}");
    assert_eq!(pending[0]["request_id"], request_id.as_str());
    let (_, listed) = p.get("/api/v1/egress/pending").await;
    assert_eq!(listed["requests"][0], pending[0]);
    assert!(
        !view["subscribers"].as_array().unwrap().is_empty(),
        "our subscriber: {view}"
    );
    let text = view.to_string();
    for secret in ["sk-worldview-secret", &p.admin_token, "pdk_ph_"] {
        assert!(!text.contains(secret), "{secret} in the worldview");
    }

    // paddock status prints the same, and exits 0 while all is up.
    let out = p.cli(&["status"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("· ok\n"), "{said}");
    assert!(said.contains("seen"), "{said}");
    assert!(said.contains("held requests: 1"), "{said}");
    assert!(said.contains(&request_id), "{said}");
    let as_json: Value = serde_json::from_slice(&p.cli(&["status", "--json"]).stdout).unwrap();
    assert_eq!(as_json["boxes"][0]["box_id"], "seen");

    // A caller of another project sees none of it, and not the spares.
    let (_, other) = p.mint(&["viewer"], Some(&["other"])).await;
    let (_, limited) = p.get_as(&other, "/api/v1/worldview").await;
    assert_eq!(limited["boxes"], json!([]), "{limited}");
    assert_eq!(limited["pending"], json!([]), "{limited}");
    assert_eq!(limited["networks"]["held"], json!([]), "{limited}");
    assert!(limited["networks"].get("spare").is_none(), "{limited}");
    // A token without box:read is refused.
    let (_, agentless) = p.mint(&["metrics:read"], None).await;
    let refused = p
        .client_as(&agentless)
        .get(format!("{}/api/v1/worldview", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // Decided, the request leaves the worldview.
    assert_eq!(held.allow(&p).await["exit_code"], 0);
    let (_, view) = p.get("/api/v1/worldview").await;
    assert_eq!(view["pending"], json!([]), "{view}");
}
