//! Every process paddock starts goes through its supervisor. With a real
//! hook command: a crash is reported at once (log, worldview, `/metrics`);
//! a stop ends a running hook SIGTERM-first; a SIGKILLed paddock orphans
//! nothing (its hook dies with it, and what the hook started is ended by
//! the next start); a second paddock on the same data dir is refused.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Options, Paddock, paddock_bin, wait_for, wait_for_sync};
use serde_json::{Value, json};

/// A create-only hook running `script` (after reading its request).
fn hook(script: &str, extra_toml: &str) -> Options {
    Options {
        login_profile: false,
        extra_toml: format!(
            "{extra_toml}[[hooks]]\nname = \"slow\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; {script}\"]\n\
             events = [\"box.create\"]\ntimeout_secs = 120\n"
        ),
        ..Options::default()
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

async fn pid_in(file: &Path) -> u32 {
    wait_for("the hook to write its pid", Duration::from_secs(30), || {
        let pid = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        async move { pid }
    })
    .await
}

fn create_in_background(p: &Paddock, box_id: &str) -> tokio::task::JoinHandle<(u16, Value)> {
    let url = format!("{}/api/v1/boxes", p.url);
    let http = p.http.clone();
    let body = json!({"project": "demo", "box_id": box_id});
    tokio::spawn(async move {
        match http.post(url).json(&body).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    })
}

#[tokio::test]
async fn a_hook_that_crashes_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = Paddock::start(hook(
        &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
        "",
    ));
    let create = create_in_background(&p, "c-1");
    let pid = pid_in(&pidfile).await;

    let (status, view) = p.get("/api/v1/worldview").await;
    assert_eq!(status, 200, "{view}");
    let running = view["children"]["running"].as_array().unwrap();
    assert!(
        running
            .iter()
            .any(|c| c["pid"] == pid && c["kind"] == "hook" && c["name"] == "slow (box.create)"),
        "{running:?}"
    );

    let killed = Command::new("kill")
        .args(["-SEGV", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, err) = create.await.unwrap();
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["error"]["code"], "hook_failed");

    let (_, view) = p.get("/api/v1/worldview").await;
    let crashes = view["children"]["recent_crashes"].as_array().unwrap();
    assert!(
        crashes
            .iter()
            .any(|c| c["pid"] == pid && c["signal"] == 11 && c["kind"] == "hook"),
        "{crashes:?}"
    );
    let metrics = p.get_text("/metrics").await;
    assert!(
        metrics.contains("paddock_child_exits_total{kind=\"hook\",ending=\"crashed\"} 1"),
        "{metrics}"
    );
    assert!(p.log().contains("child crashed"));
    let status = p.cli(&["status"]);
    let printed = String::from_utf8_lossy(&status.stdout);
    assert!(
        printed.contains(&format!(
            "crashed: hook slow (box.create) (pid {pid}, signal 11)"
        )),
        "{printed}"
    );
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}

#[tokio::test]
async fn a_stop_ends_a_running_hook_sigterm_first() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let said = dir.path().join("said");
    let mut p = hook_paddock_that_traps(&pidfile, &said);
    let create = create_in_background(&p, "c-2");
    let pid = pid_in(&pidfile).await;

    let stopping = Instant::now();
    let exit = p.stop();
    assert!(exit.success(), "{exit}");
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "the stop took {:?}",
        stopping.elapsed()
    );
    assert_eq!(std::fs::read_to_string(&said).unwrap(), "terminated\n");
    assert!(!alive(pid));
    let _ = create.await;

    // The interrupted create is undone at the next start.
    p.restart();
    wait_for(
        "the interrupted create to be undone",
        Duration::from_secs(30),
        || {
            let p = &p;
            async move { (p.get("/api/v1/boxes/c-2").await.0 == 404).then_some(()) }
        },
    )
    .await;
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}

fn hook_paddock_that_traps(pidfile: &Path, said: &Path) -> Paddock {
    Paddock::start(hook(
        &format!(
            "trap 'echo terminated > {}; exit 1' TERM; echo $$ > {}; while :; do sleep 0.1; done",
            said.display(),
            pidfile.display()
        ),
        "[server]\nshutdown_timeout_secs = 2\n",
    ))
}

#[tokio::test]
async fn a_sigkilled_paddock_orphans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let grandchild_file = dir.path().join("grandchild");
    let mut p = Paddock::start(hook(
        &format!(
            "sleep 300 & echo $! > {}; echo $$ > {}; wait",
            grandchild_file.display(),
            pidfile.display()
        ),
        "",
    ));
    let create = create_in_background(&p, "c-3");
    let pid = pid_in(&pidfile).await;
    let grandchild = pid_in(&grandchild_file).await;
    assert!(alive(grandchild));

    p.kill9();
    let _ = create.await;
    wait_for_sync(
        "the hook to die with paddock",
        Duration::from_secs(10),
        || !alive(pid),
    );
    // What the hook started outlives it until paddock comes back.
    assert!(alive(grandchild));
    p.restart();
    wait_for_sync(
        "the next paddock to end what the hook started",
        Duration::from_secs(10),
        || !alive(grandchild),
    );
    assert!(
        p.log()
            .contains("ended a process a killed paddock left behind")
    );
    wait_for(
        "the interrupted create to be undone",
        Duration::from_secs(30),
        || {
            let p = &p;
            async move { (p.get("/api/v1/boxes/c-3").await.0 == 404).then_some(()) }
        },
    )
    .await;
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}

#[tokio::test]
async fn a_second_paddock_on_one_data_dir_is_refused() {
    let p = Paddock::start(Options::default());
    let out = Command::new(paddock_bin())
        .arg("serve")
        .arg("--config")
        .arg(p.dir.path().join("paddock.toml"))
        .arg("--data-dir")
        .arg(p.dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env("PADDOCK_ADMIN_TOKEN", &p.admin_token)
        .env_remove("PADDOCK_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another paddock (pid "), "{stderr}");
    assert!(stderr.contains("serves the data dir"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(p.get("/api/v1/boxes").await.0, 200, "the first serves on");
}
