//! Reaper, restore and reconcile, including after SIGKILL.

use std::time::Duration;

use crate::common::egress_site::{create_box, exec};
use crate::common::{GOOD_CODE, Options, Paddock, docker, wait_for};
use serde_json::{Value, json};

#[tokio::test]
async fn boxes_nobody_activates_are_reaped() {
    // Long enough that the activation always arrives first, even on a
    // loaded machine; short enough to wait for.
    let p = Paddock::start(Options {
        ttl_secs: 8,
        ..Options::default()
    });
    let (_, keep) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "keep"}),
        )
        .await;
    let r = p
        .http
        .post(crate::common::activation_url(&keep))
        .form(&[("code", GOOD_CODE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "idle"}),
        )
        .await;
    assert_eq!(s, 201);
    // An activated box with a time to live of its own goes when it runs
    // out, however busy it is.
    let (_, brief) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "brief", "ttl_secs": 2}),
        )
        .await;
    assert!(brief["expires_at"].is_string(), "{brief}");
    let r = p
        .http
        .post(crate::common::activation_url(&brief))
        .form(&[("code", GOOD_CODE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for id in ["idle", "brief"] {
        wait_for(
            &format!("the box {id} to be reaped"),
            Duration::from_secs(40),
            || async { (p.get(&format!("/api/v1/boxes/{id}")).await.0 == 404).then_some(()) },
        )
        .await;
    }
    assert_eq!(
        p.get("/api/v1/boxes/keep").await.0,
        200,
        "an activated box stays"
    );
    assert_eq!(
        p.docker_objects(),
        (vec![p.container("keep")], vec![p.container("keep")])
    );
    let log = p.log();
    assert!(log.contains("it was not activated in time"), "{log}");
    assert!(log.contains("its time to live ran out"), "{log}");
}

#[tokio::test]
async fn restart_restores_drops_vanished_and_reports_strays() {
    let mut p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    for id in ["r-1", "r-2"] {
        assert_eq!(
            p.post("/api/v1/boxes", json!({"project": "demo", "box_id": id}))
                .await
                .0,
            201
        );
    }
    assert!(p.stop().success(), "a clean stop exits 0");
    // While paddock is down: one box's container vanishes, and a stray
    // container with this instance's label appears.
    docker(&["rm", "-f", &p.container("r-2")]);
    let stray = format!("paddock-stray-{}", p.instance);
    let run = docker(&[
        "run",
        "-d",
        "--name",
        &stray,
        "--label",
        &format!("paddock.instance={}", p.instance),
        "--label",
        "paddock.box=stray",
        crate::common::TEST_IMAGE,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    p.restart();
    let (_, list) = p.get("/api/v1/boxes").await;
    let ids: Vec<&str> = list["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["box_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r-1"]);
    assert_eq!(
        p.post("/api/v1/boxes/r-1/exec", json!({"command": "true"}))
            .await
            .1["exit_code"],
        0
    );
    let (containers, networks) = p.docker_objects();
    assert_eq!(
        containers,
        vec![stray.clone(), p.container("r-1")],
        "a stray is only reported by default"
    );
    assert_eq!(
        networks,
        vec![p.container("r-1")],
        "the vanished box's network went with it"
    );
    assert!(p.log().contains("unknown to the store"));
    assert!(
        p.idle_networks() <= 4,
        "no networks leak beyond the spare pool"
    );

    p.kill9();
    p.options
        .env
        .push(("PADDOCK_RECONCILE__REMOVE_UNKNOWN".into(), "true".into()));
    p.restart();
    assert_eq!(
        p.docker_objects().0,
        vec![p.container("r-1")],
        "remove_unknown removes the stray"
    );
}

/// Creates and destroys sent at once, each on its own task; their answers
/// do not matter (the server is killed under them).
fn in_flight(
    p: &Paddock,
    creates: &[String],
    destroys: &[String],
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut work = Vec::new();
    for id in creates {
        let (url, http, id) = (p.url.clone(), p.http.clone(), id.clone());
        work.push(tokio::spawn(async move {
            let _ = http
                .post(format!("{url}/api/v1/boxes"))
                .json(&json!({"project": "demo", "box_id": id}))
                .send()
                .await;
        }));
    }
    for id in destroys {
        let (url, http, id) = (p.url.clone(), p.http.clone(), id.clone());
        work.push(tokio::spawn(async move {
            let _ = http.delete(format!("{url}/api/v1/boxes/{id}")).send().await;
        }));
    }
    work
}

/// Creates and destroys in flight when paddock is SIGKILLed: after the
/// restart, store and Docker agree.
#[tokio::test]
async fn sigkill_mid_creates_and_destroys_leaves_store_and_docker_agreeing() {
    let mut p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    for i in 0..3 {
        assert_eq!(
            p.post(
                "/api/v1/boxes",
                json!({"project": "demo", "box_id": format!("old-{i}")})
            )
            .await
            .0,
            201
        );
    }
    let creates: Vec<String> = (0..6).map(|i| format!("new-{i}")).collect();
    let destroys: Vec<String> = (0..3).map(|i| format!("old-{i}")).collect();
    let work = in_flight(&p, &creates, &destroys);
    // Kill once Docker is visibly mid-way: some new container exists.
    wait_for("a create to reach docker", Duration::from_secs(30), || {
        let (containers, _) = p.docker_objects();
        let prefix = p.container("new-");
        async move {
            containers
                .iter()
                .any(|c| c.starts_with(&prefix))
                .then_some(())
        }
    })
    .await;
    p.kill9();
    for w in work {
        let _ = w.await;
    }
    p.restart();

    let (_, list) = p.get("/api/v1/boxes").await;
    let boxes = list["boxes"].as_array().unwrap();
    let mut ids: Vec<String> = boxes
        .iter()
        .map(|b| b["box_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    for b in boxes {
        assert_eq!(b["state"], "ready", "no ghost in a journal state: {b}");
    }
    let expected: Vec<String> = ids.iter().map(|id| p.container(id)).collect();
    let (containers, networks) = p.docker_objects();
    assert_eq!(
        containers, expected,
        "every container has a box and every box a container"
    );
    assert_eq!(networks, expected, "each box has its network");
    // Docker may finish a network paddock asked for just before it was
    // killed; the collector adopts or removes it on its next pass.
    wait_for(
        "orphaned networks to be collected",
        Duration::from_secs(20),
        || {
            let idle = p.idle_networks();
            async move { (idle <= 4).then_some(()) }
        },
    )
    .await;
    for id in &ids {
        let (s, out) = p
            .post(
                &format!("/api/v1/boxes/{id}/exec"),
                json!({"command": "echo ok"}),
            )
            .await;
        assert_eq!(
            (s, out["stdout"].clone()),
            (200, Value::from("ok\n")),
            "{id}"
        );
    }
}

/// Round after round of SIGKILL in the middle of concurrent creates and
/// destroys, then a restart: on the quiet server every create succeeds.
/// The pool hands out only networks the extensions have equipped (the
/// egress listeners and fence are there) and that still exist, and a
/// network that failed a create leaves the pool.
#[tokio::test]
async fn after_sigkill_mid_work_every_later_create_succeeds() {
    let mut p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let mut serial = 0;
    // The first round kills a paddock that started fresh, the second one
    // that restored what the first left.
    for round in 0..2 {
        let destroys: Vec<String> = (0..4).map(|i| format!("keep-{round}-{i}")).collect();
        for id in &destroys {
            create_box(&p, id, "demo").await;
        }
        let creates: Vec<String> = (0..8).map(|i| format!("busy-{round}-{i}")).collect();
        let work = in_flight(&p, &creates, &destroys);
        wait_for("a create to reach docker", Duration::from_secs(30), || {
            let (containers, _) = p.docker_objects();
            let prefix = p.container(&format!("busy-{round}-"));
            async move {
                containers
                    .iter()
                    .any(|c| c.starts_with(&prefix))
                    .then_some(())
            }
        })
        .await;
        p.kill9();
        for w in work {
            let _ = w.await;
        }
        p.restart();

        // Quiet now: more creates than the pool keeps spare (two), so
        // recycled networks are handed out too; each must make a guarded
        // box.
        for _ in 0..4 {
            serial += 1;
            let id = format!("after-{serial}");
            create_box(&p, &id, "demo").await;
            let out = exec(&p, &id, "echo ok").await;
            assert_eq!(out["stdout"], "ok\n", "round {round}, {id}: {out}");
        }
        // Keep the machine's load bounded: destroy all but a few.
        let (_, list) = p.get("/api/v1/boxes").await;
        for b in list["boxes"].as_array().unwrap() {
            let id = b["box_id"].as_str().unwrap();
            let (s, _) = p.delete(&format!("/api/v1/boxes/{id}")).await;
            assert_eq!(s, 204, "{id}");
        }
    }
}
