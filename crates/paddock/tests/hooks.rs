//! `box.create` / `box.destroy` hooks with a real hook command.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{Options, Paddock, wait_for};
use serde_json::{Value, json};

fn hook_script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hook.sh")
        .display()
        .to_string()
}

fn requests(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("hook request is JSON"))
        .collect()
}

fn with_hooks(log: &std::path::Path, extra: &str) -> Options {
    Options {
        login_profile: false,
        extra_toml: format!(
            "[[hooks]]\nname = \"first\"\ncommand = [\"{}\"]\n{extra}",
            hook_script()
        ),
        env: vec![("HOOK_LOG".into(), log.display().to_string())],
        ..Options::default()
    }
}

#[tokio::test]
async fn files_are_injected_and_state_is_replayed_on_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let p = Paddock::start(with_hooks(&log, ""));
    let (s, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "h-1", "description": "d"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let (_, out) = p
        .post("/api/v1/boxes/h-1/exec", json!({"command": "cat /etc/paddock/hook.txt; hello; stat -c %a /etc/paddock/hook.txt"}))
        .await;
    assert_eq!(
        out["stdout"], "injected for h-1\nhello from the hook\n644\n",
        "{out}"
    );

    let reqs = requests(&log);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["event"], "box.create");
    assert_eq!(
        reqs[0]["box"],
        json!({"image": crate::common::TEST_IMAGE, "box_id": "h-1", "description": "d", "project": "demo"})
    );
    assert_eq!(reqs[0]["state"], Value::Null);

    let (s, _) = p.delete("/api/v1/boxes/h-1").await;
    assert_eq!(s, 204);
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1]["event"], "box.destroy");
    assert_eq!(reqs[1]["state"], json!({"ticket": "t-h-1"}));
}

#[tokio::test]
async fn a_failed_create_replays_state_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let failing = "[[hooks]]\nname = \"second\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; echo quota exceeded >&2; exit 1\"]\nevents = [\"box.create\"]\n";
    let p = Paddock::start(with_hooks(&log, failing));
    let (s, err) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "h-2"}))
        .await;
    assert_eq!(s, 502, "{err}");
    assert_eq!(err["error"]["code"], "hook_failed");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota exceeded")
    );
    let reqs = requests(&log);
    let events: Vec<&str> = reqs.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["box.create", "box.destroy"]);
    assert_eq!(reqs[1]["state"], json!({"ticket": "t-h-2"}));
    assert_eq!(p.get("/api/v1/boxes/h-2").await.0, 404);
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}

#[tokio::test]
async fn a_crash_mid_create_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let marker = dir.path().join("slow-started");
    let slow = format!(
        "[[hooks]]\nname = \"slow\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; touch {}; sleep 60\"]\nevents = [\"box.create\"]\ntimeout_secs = 120\n",
        marker.display()
    );
    let mut p = Paddock::start(with_hooks(&log, &slow));
    let url = p.url.clone();
    let http = p.http.clone();
    let create = tokio::spawn(async move {
        let _ = http
            .post(format!("{url}/api/v1/boxes"))
            .json(&json!({"project": "demo", "box_id": "h-3"}))
            .send()
            .await;
    });
    wait_for("the slow hook to start", Duration::from_secs(20), || {
        let started = marker.exists();
        async move { started.then_some(()) }
    })
    .await;
    p.kill9();
    let _ = create.await;
    p.restart();
    let reqs = requests(&log);
    let events: Vec<&str> = reqs.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["box.create", "box.destroy"],
        "the interrupted create was undone"
    );
    assert_eq!(reqs[1]["state"], json!({"ticket": "t-h-3"}));
    assert_eq!(p.get("/api/v1/boxes/h-3").await.0, 404);
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}
