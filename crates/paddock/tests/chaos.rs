//! Proof under faults, with the real engine: paddock SIGKILLed at each
//! step of creates, destroys and verdicts, in a loop; the data dir full;
//! the store locked by another process. After each: no orphan (a
//! container or network no box owns), no ghost (a box without its
//! container), no held request left, nothing acknowledged lost, and the
//! boxes still guarded.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::egress_site::{Subscriber, Upstream, add_rule, exec, exec_later, subscribed};
use crate::common::{Options, Paddock, wait_for};
use paddock_clearance::ClearanceEvent;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

fn chaos_options() -> Options {
    Options {
        login_profile: false,
        extra_toml: "[egress.hosts]\n\"asked.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    }
}

/// Why the instance is not consistent, if it is not: every container is
/// a listed box's, every listed box has its container, every held
/// network is a listed box's, and nothing waits for a person.
async fn inconsistency(p: &Paddock) -> Option<String> {
    let (status, listed) = p.get("/api/v1/boxes").await;
    if status != 200 {
        return Some(format!("listing answered {status}: {listed}"));
    }
    let boxes: Vec<String> = listed["boxes"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|b| b["box_id"].as_str().map(str::to_owned))
        .collect();
    let (containers, _) = p.docker_objects();
    let prefix = format!("paddock-{}-", p.instance);
    for container in &containers {
        let owner = container.strip_prefix(&prefix).unwrap_or(container);
        if !boxes.iter().any(|b| b == owner) {
            return Some(format!("orphan container {container} (boxes {boxes:?})"));
        }
    }
    for b in &boxes {
        if !containers.contains(&p.container(b)) {
            return Some(format!("ghost box {b} (containers {containers:?})"));
        }
    }
    let (_, view) = p.get("/api/v1/worldview").await;
    for held in view["networks"]["held"].as_array().unwrap_or(&Vec::new()) {
        let owner = held["box_id"].as_str().unwrap_or("");
        if !boxes.iter().any(|b| b == owner) {
            return Some(format!("network held for no box: {held}"));
        }
    }
    let pending = view["pending"].as_array().map_or(0, Vec::len);
    (pending > 0).then(|| format!("{pending} held requests left: {}", view["pending"]))
}

async fn consistent(p: &Paddock, after: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let Some(why) = inconsistency(p).await else {
            return;
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {after}: {why}; log:\n{}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn request(p: &Paddock, method: reqwest::Method, path: &str, body: Value) -> JoinHandle<u16> {
    let url = format!("{}{path}", p.url);
    let http = p.http.clone();
    tokio::spawn(async move {
        match http.request(method, url).json(&body).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    })
}

async fn listed(p: &Paddock, box_id: &str) -> bool {
    p.get(&format!("/api/v1/boxes/{box_id}")).await.0 == 200
}

async fn container_exists(p: &Paddock, box_id: &str) -> bool {
    p.docker_objects().0.contains(&p.container(box_id))
}

/// Kills paddock, starts it again and checks the instance.
async fn crash_and_check(p: &mut Paddock, step: &str) {
    p.kill9();
    p.restart();
    consistent(p, step).await;
}

/// Where in a create paddock is killed.
#[derive(Debug, Clone, Copy)]
enum CreateStep {
    JustSent,
    RowStored,
    ContainerMade,
}

impl CreateStep {
    fn name(self) -> &'static str {
        match self {
            Self::JustSent => "sent",
            Self::RowStored => "row",
            Self::ContainerMade => "container",
        }
    }
}

async fn create_killed_at(p: &mut Paddock, id: &str, step: CreateStep) {
    let create = request(
        p,
        reqwest::Method::POST,
        "/api/v1/boxes",
        json!({"project": "demo", "box_id": id}),
    );
    match step {
        CreateStep::JustSent => {}
        CreateStep::RowStored => {
            wait_for("the box's row", Duration::from_secs(30), || async {
                listed(p, id).await.then_some(())
            })
            .await
        }
        CreateStep::ContainerMade => {
            wait_for("the box's container", Duration::from_secs(30), || async {
                container_exists(p, id).await.then_some(())
            })
            .await
        }
    }
    crash_and_check(p, &format!("a create killed at {step:?} ({id})")).await;
    let _ = create.await;
}

/// A destroy killed as soon as it is sent, then (if the box survived
/// that) once its container is gone.
async fn destroys_killed(p: &mut Paddock, id: &str) {
    let path = format!("/api/v1/boxes/{id}");
    let destroy = request(p, reqwest::Method::DELETE, &path, Value::Null);
    crash_and_check(p, &format!("a destroy just sent ({id})")).await;
    let _ = destroy.await;
    if listed(p, id).await {
        let destroy = request(p, reqwest::Method::DELETE, &path, Value::Null);
        wait_for("the container to go", Duration::from_secs(30), || async {
            (!container_exists(p, id).await).then_some(())
        })
        .await;
        crash_and_check(p, &format!("a destroy without its container ({id})")).await;
        let _ = destroy.await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_every_step_leaves_no_orphan_no_ghost_and_no_held_request() {
    let mut p = Paddock::start(chaos_options());
    for round in 0..3 {
        for step in [
            CreateStep::JustSent,
            CreateStep::RowStored,
            CreateStep::ContainerMade,
        ] {
            create_killed_at(&mut p, &format!("k{round}-{}", step.name()), step).await;
        }
        // A create that answered, then paddock killed: the box is kept.
        let id = format!("k{round}-done");
        let (status, body) = p
            .post("/api/v1/boxes", json!({"project": "demo", "box_id": id}))
            .await;
        assert_eq!(status, 201, "{body}");
        crash_and_check(&mut p, &format!("a created box ({id})")).await;
        assert!(listed(&p, &id).await, "an acknowledged create survives");
        let out = exec(&p, &id, "echo alive").await;
        assert_eq!(out["stdout"], "alive\n", "{out}");
        destroys_killed(&mut p, &id).await;
    }
    verdicts_under_sigkill(&mut p).await;

    // Everything left goes cleanly.
    let (_, listed) = p.get("/api/v1/boxes").await;
    for b in listed["boxes"].as_array().unwrap() {
        let id = b["box_id"].as_str().unwrap();
        assert_eq!(p.delete(&format!("/api/v1/boxes/{id}")).await.0, 204);
    }
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}

/// A connection from `box_id` to asked.test, held; the event announcing it.
async fn hold(
    p: &Paddock,
    box_id: &str,
    upstream: &Upstream,
) -> (JoinHandle<Value>, ClearanceEvent) {
    let mut subscriber = Subscriber::connect(p).await;
    subscribed(p, &mut subscriber, box_id).await;
    let run = exec_later(
        p,
        box_id,
        &format!("wget -q -O - http://asked.test:{}/", upstream.port),
    );
    let event = subscriber
        .next_where("connection_blocked", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty() && e.container == box_id
        })
        .await;
    (run, event)
}

/// paddock killed with a connection held, and right after a verdict was
/// acknowledged: the held connection fails (never proceeds unjudged), the
/// box stays guarded, and an acknowledged verdict is kept.
async fn verdicts_under_sigkill(p: &mut Paddock) {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let (status, created) = p
        .post("/api/v1/boxes", json!({"project": "held", "box_id": "v"}))
        .await;
    assert_eq!(status, 201, "{created}");
    add_rule(
        p,
        json!({"project": "held", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;

    let (run, _) = hold(p, "v", &upstream).await;
    crash_and_check(p, "a held connection").await;
    let out = run.await.ok();
    assert!(
        out.as_ref().is_none_or(|o| o["exit_code"] != 0),
        "a held connection went through without a verdict: {out:?}"
    );
    assert!(
        upstream.connections().is_empty(),
        "nothing reached the upstream"
    );

    // Still guarded: the next attempt is held again, and a project-wide
    // allow acknowledged just before the kill is kept.
    let (run, event) = hold(p, "v", &upstream).await;
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": event.container, "request_id": event.request_id,
                   "dest": "asked.test", "action": "allow", "scope": "project"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    crash_and_check(p, "an acknowledged verdict").await;
    let _ = run.await;
    let out = exec(
        p,
        "v",
        &format!("wget -q -O - http://asked.test:{}/", upstream.port),
    )
    .await;
    assert_eq!(
        out["exit_code"], 0,
        "the kept verdict lets it through: {out}"
    );
}

/// A tmpfs of the test's own for paddock's data dir; unmounted (lazily,
/// so a still-running paddock cannot keep it) even when the test fails.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    /// Moves `p`'s data dir (paddock stopped) onto a fresh tmpfs.
    fn under(p: &mut Paddock) -> Self {
        p.stop();
        let path = p.dir.path().join("data");
        let aside = p.dir.path().join("data.aside");
        std::fs::rename(&path, &aside).unwrap();
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=24m,mode=0700",
                "paddock-test-data",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            mounted.status.success(),
            "{}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        let disk = Self { path: path.clone() };
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", aside.display()))
            .arg(&path)
            .status()
            .unwrap();
        assert!(copied.success());
        p.restart();
        disk
    }

    /// Writes zeros until the filesystem refuses; the filler's path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let fill = self.path.join("fill");
        let mut file = std::fs::File::create(&fill).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        while file.write_all(&[0]).and_then(|()| file.flush()).is_ok() {}
        fill
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Box `box_id` of project demo, and an upstream its project may reach
/// (checked once).
async fn box_with_an_allowed_upstream(p: &Paddock, box_id: &str) -> Upstream {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": box_id}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    add_rule(
        p,
        json!({"project": "demo", "target": "127.0.0.1/32", "action": "allow"}),
    )
    .await;
    assert_eq!(allowed_wget(p, box_id, &upstream).await["exit_code"], 0);
    upstream
}

async fn allowed_wget(p: &Paddock, box_id: &str, upstream: &Upstream) -> Value {
    exec(
        p,
        box_id,
        &format!("wget -q -O - http://asked.test:{}/", upstream.port),
    )
    .await
}

/// Waits until connections from `box_id` are refused (fail closed) and
/// health names the decision log; each attempt meanwhile is a decision
/// the gateway tries to write.
async fn decisions_stop(p: &Paddock, box_id: &str, upstream: &Upstream) {
    wait_for(
        "the gateway to fail closed",
        Duration::from_secs(60),
        || async {
            let out = allowed_wget(p, box_id, upstream).await;
            let (status, health) = p.get("/healthz").await;
            (out["exit_code"] != 0 && status == 503 && health.to_string().contains("decision log"))
                .then_some(())
        },
    )
    .await;
}

async fn decisions_resume(p: &Paddock, box_id: &str, upstream: &Upstream) {
    wait_for("decisions to resume", Duration::from_secs(60), || async {
        (allowed_wget(p, box_id, upstream).await["exit_code"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_data_dir_fails_closed_and_recovers_without_a_restart() {
    let mut p = Paddock::start(chaos_options());
    let disk = SmallDisk::under(&mut p);
    let upstream = box_with_an_allowed_upstream(&p, "f1").await;

    let fill = disk.fill();
    decisions_stop(&p, "f1", &upstream).await;
    // A create either fits in what the store still has or is refused as
    // unavailable — never half made.
    let (status, body) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "f2"}))
        .await;
    assert!(
        status == 201 || (status == 503 && body["error"]["code"] == "store_unavailable"),
        "{status} {body}"
    );
    assert_eq!(p.get("/api/v1/boxes").await.0, 200, "reads go on");
    consistent(&p, "a create on a full disk").await;

    std::fs::remove_file(&fill).unwrap();
    decisions_resume(&p, "f1", &upstream).await;
    let (status, body) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "f3"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(p.get("/healthz").await.0, 200);
    // The refusals made while the disk was full are on the record.
    let (_, log) = p.get("/api/v1/egress/log?box_id=f1&limit=1000").await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["decision"] == "denied"
                && e["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("cannot record decisions")),
        "{log}"
    );
    consistent(&p, "the disk freed").await;
    p.kill9();
    drop(disk);
}

/// `BEGIN EXCLUSIVE` on paddock's store from another process (Python's
/// sqlite3), held until its stdin closes.
struct StoreLock {
    child: std::process::Child,
}

impl StoreLock {
    fn take(db: &std::path::Path) -> Self {
        let script = "import sqlite3, sys\n\
                      c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n\
                      c.execute('BEGIN EXCLUSIVE')\n\
                      print('locked', flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        Self { child }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_locked_by_another_process_fails_closed_and_recovers() {
    let p = Paddock::start(chaos_options());
    let upstream = box_with_an_allowed_upstream(&p, "l1").await;

    let lock = StoreLock::take(&p.dir.path().join("data").join("paddock.db"));
    decisions_stop(&p, "l1", &upstream).await;
    let (status, body) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "l2"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{body}"
    );
    assert!(
        !container_exists(&p, "l2").await,
        "nothing made for a refused create"
    );

    drop(lock);
    decisions_resume(&p, "l1", &upstream).await;
    let (status, body) = p
        .post("/api/v1/boxes", json!({"project": "demo", "box_id": "l2"}))
        .await;
    assert_eq!(status, 201, "{body}");
    consistent(&p, "the lock released").await;
}
