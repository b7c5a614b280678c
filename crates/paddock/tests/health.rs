//! `/healthz` and behaviour while the Docker engine is down.

use crate::common::{Options, Paddock};
use serde_json::json;

#[tokio::test]
async fn healthz_is_ok_when_store_and_docker_answer() {
    let p = Paddock::start(Options::default());
    let (status, body) = p.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["down"], json!([]));
    for component in ["store", "docker", "egress", "clearance"] {
        assert_eq!(body["components"][component]["ok"], true, "{body}");
    }
}

#[tokio::test]
async fn a_hub_that_cannot_be_reached_is_503_naming_clearance() {
    let p = Paddock::start(Options::default());
    // Someone removed the hub's socket: no client can reach it any more.
    std::fs::remove_file(p.clearance_socket()).unwrap();
    let (status, body) = p.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["down"], json!(["clearance"]));
}

#[tokio::test]
async fn docker_down_is_503_naming_docker_and_nothing_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = Paddock::start(Options {
        // A socket path nothing listens on: the engine is "down".
        docker_host: Some(format!("unix://{}/docker.sock", dir.path().display())),
        ..Options::default()
    });
    let (status, body) = p.get("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["down"], json!(["docker"]));
    assert_eq!(body["components"]["store"]["ok"], true);
    assert!(
        body["components"]["docker"]["error"]
            .as_str()
            .unwrap()
            .contains("unavailable")
    );

    let (status, err) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "d-1"}))
        .await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"]["code"], "engine_unavailable");
    // Nothing was made, so nothing is left: no row waits for the engine.
    let (status, list) = p.get("/api/v1/boxes").await;
    assert_eq!((status, list["boxes"].clone()), (200, json!([])));
    // `paddock status` says which, and exits 1 for a script to see.
    let status = p.cli(&["status"]);
    let said = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{said}");
    assert!(said.contains("docker DOWN ("), "{said}");
    // And the server is still serving.
    assert_eq!(p.get("/healthz").await.0, 503);
    assert!(!p.log().contains("panicked"));
}
