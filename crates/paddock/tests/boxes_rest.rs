//! The box lifecycle through REST, against a real Docker engine.

use crate::common::{Options, Paddock, docker};
use serde_json::json;

#[tokio::test]
async fn lifecycle_over_rest() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "rest-1", "description": "first box"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["box_id"], "rest-1");
    assert_eq!(created["state"], "ready");
    assert!(created.get("activation_url").is_none());

    let (status, got) = p.get("/api/v1/boxes/rest-1").await;
    assert_eq!(status, 200);
    assert_eq!(got["project"], "demo");
    assert_eq!(got["description"], "first box");

    let (_, list) = p.get("/api/v1/boxes").await;
    assert_eq!(list["boxes"].as_array().unwrap().len(), 1);

    let (status, out) = p
        .post(
            "/api/v1/boxes/rest-1/exec",
            json!({"command": "echo out; echo err >&2; echo $PADDOCK_PROJECT; exit 7"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stdout"], "out\ndemo\n");
    assert_eq!(out["stderr"], "err\n");
    assert_eq!(out["exit_code"], 7);

    // The box sits on a network of its own, labelled as paddock's.
    let (containers, networks) = p.docker_objects();
    assert_eq!(containers, vec![p.container("rest-1")]);
    assert_eq!(networks, vec![p.container("rest-1")]);
    let inspect = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"paddock.box\"}} {{index .Config.Labels \"paddock.project\"}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}} {{.HostConfig.SecurityOpt}}",
        &p.container("rest-1"),
    ]);
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    assert_eq!(
        inspect.trim(),
        "rest-1 demo 268435456 500000000 64 [ALL] [] [no-new-privileges:true]"
    );
    let network = crate::common::network_of(&p.container("rest-1"));
    let internal = docker(&["network", "inspect", "-f", "{{.Internal}}", &network]);
    assert_eq!(String::from_utf8_lossy(&internal.stdout).trim(), "true");

    // Logs of the main process (sleep prints nothing) come back empty, not as an error.
    let (status, logs) = p.get("/api/v1/boxes/rest-1/logs?tail=5").await;
    assert_eq!(status, 200, "{logs}");
    assert_eq!(logs["logs"], "");

    let (status, _) = p.delete("/api/v1/boxes/rest-1").await;
    assert_eq!(status, 204);
    let (status, err) = p.get("/api/v1/boxes/rest-1").await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "not_found");
    assert_eq!(p.docker_objects(), (vec![], vec![]));
    assert!(
        p.idle_networks() <= 4,
        "the emptied network went back to the pool, or away"
    );
}

#[tokio::test]
async fn unknown_boxes_are_not_found_everywhere() {
    let p = Paddock::start(Options::default());
    for (method, path) in [
        ("GET", "/api/v1/boxes/nope"),
        ("DELETE", "/api/v1/boxes/nope"),
        ("GET", "/api/v1/boxes/nope/logs"),
        ("GET", "/api/v1/boxes/NOT..VALID"),
    ] {
        let r = p
            .http
            .request(method.parse().unwrap(), format!("{}{path}", p.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{method} {path}");
    }
    let (status, body) = p
        .post("/api/v1/boxes/nope/exec", json!({"command": "true"}))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn bad_input_is_refused_and_creates_nothing() {
    let p = Paddock::start(Options::default());
    let long = "x".repeat(2000);
    let cases = [
        json!({"project": "Bad Project"}),
        json!({"project": "demo", "box_id": "../etc"}),
        json!({"project": "demo", "box_id": "a".repeat(64)}),
        json!({"project": "demo", "image": "UPPER/case"}),
        json!({"project": "demo", "image": "a b"}),
        json!({"project": "demo", "description": long}),
        json!({"project": "demo", "surprise": true}),
        json!({"box_id": "no-project"}),
    ];
    for body in cases {
        let (status, err) = p.post("/api/v1/boxes", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "invalid", "{err}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    let r = p
        .http
        .post(format!("{}/api/v1/boxes", p.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (_, list) = p.get("/api/v1/boxes").await;
    assert_eq!(list["boxes"], json!([]));
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}

#[tokio::test]
async fn duplicate_ids_conflict_and_the_box_limit_holds() {
    let p = Paddock::start(Options {
        login_profile: false,
        max_boxes: 2,
        ..Options::default()
    });
    let (s, _) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "a"}))
        .await;
    assert_eq!(s, 201);
    let (s, err) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "a"}))
        .await;
    assert_eq!(s, 409, "{err}");
    // Two concurrent creates for the one remaining slot: exactly one wins.
    let (r1, r2) = tokio::join!(
        p.post("/api/v1/boxes", json!({"project": "demo", "box_id": "b"})),
        p.post("/api/v1/boxes", json!({"project": "demo", "box_id": "c"}))
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [201, 429], "{r1:?} {r2:?}");
    let loser = if r1.0 == 429 { r1.1 } else { r2.1 };
    assert_eq!(loser["error"]["code"], "limit_reached");
    assert_eq!(p.docker_objects().0.len(), 2);
}

/// Said in the user's terms, naming the image and how to get it, before
/// anything is made.
#[tokio::test]
async fn an_image_that_does_not_exist_is_named_and_nothing_is_made() {
    let p = Paddock::start(Options::default());
    let image = "paddock-no-such-image:never";
    let (status, err) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "ghost", "image": image}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("image_not_found")),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(image) && message.contains("docker pull"),
        "{message}"
    );
    let (status, _) = p.get("/api/v1/boxes/ghost").await;
    assert_eq!(status, 404);
    assert_eq!(p.docker_objects(), (vec![], vec![]));
    let out = p.cli(&["box", "create", "--project", "demo", "--image", image]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("docker pull"), "{stderr}");
}

/// An image whose command ends at once (a shell image's `sh` with no
/// terminal) makes no box, and the error says why in the user's terms —
/// not which step happened to notice, and no hint about nft.
#[tokio::test]
async fn an_image_whose_command_exits_fails_with_that_cause() {
    const EXITS: &str = "paddock-test-exits:test";
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nCMD [\"/bin/sh\", \"-c\", \"exit 3\"]\n",
            crate::common::test_image()
        ),
    )
    .unwrap();
    let built = crate::common::docker(&["build", "-q", "-t", EXITS, ctx.path().to_str().unwrap()]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let (status, err) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "quits", "image": EXITS}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("box_exited")),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("exited with code 3"), "{message}");
    assert!(!message.contains("nft"), "{message}");
    let (status, _) = p.get("/api/v1/boxes/quits").await;
    assert_eq!(status, 404);
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}

/// Docker's default address pools hold ~30 bridge networks; paddock carves
/// its own subnets so a network per box scales past that.
#[tokio::test]
async fn more_boxes_than_dockers_default_pools_hold() {
    let p = Paddock::start(Options {
        login_profile: false,
        max_boxes: 64,
        ..Options::default()
    });
    // Docker's default pools hold 31 networks; each box has its own. Four
    // creates at a time: the pool hands out distinct subnets under
    // contention too.
    let create = |i: usize| {
        p.post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": format!("many-{i}")}),
        )
    };
    for batch in 0..8 {
        let at = batch * 4;
        let (a, b, c, d) = tokio::join!(create(at), create(at + 1), create(at + 2), create(at + 3));
        for (status, body) in [a, b, c, d] {
            assert_eq!(status, 201, "{body}");
        }
    }
    let (containers, networks) = p.docker_objects();
    assert_eq!((containers.len(), networks.len()), (32, 32));
    let network = crate::common::network_of(&p.container("many-31"));
    let subnet = docker(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        &network,
    ]);
    let subnet = String::from_utf8_lossy(&subnet.stdout);
    assert!(subnet.trim().ends_with("/28"), "{subnet}");
}
