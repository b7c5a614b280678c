//! Boxes as people use them, on the real engine: made from a shell image,
//! stopped and started (across a paddock restart) and guarded again, a
//! main process that dies on its own.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::egress_site::{Subscriber, Upstream, exec, gateway_of, subscribed};
use crate::common::{Options, Paddock, docker, inspect, shell_image, wait_for};

fn options() -> Options {
    Options {
        login_profile: false,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shell_image_stays_up_and_comes_back_guarded_after_a_stop_and_a_restart() {
    let image = shell_image();
    let mut p = Paddock::start(options());
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "shell", "image": image}),
        )
        .await;
    assert_eq!(status, 201, "{created}; log:\n{}", p.log());
    assert_eq!(created["state"], "ready");
    // `sh` would have ended at once; the box sleeps instead, as
    // `docker run -d IMAGE sleep infinity` would.
    assert_eq!(
        inspect(&p.container("shell"), "{{json .Config.Cmd}}"),
        r#"["sleep","2147483647"]"#
    );
    let out = exec(&p, "shell", "echo kept > /tmp/kept && echo up").await;
    assert_eq!(out["stdout"], "up\n", "{out}");

    let stopped = p.cli_json(&["box", "stop", "shell", "--json"]);
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert_eq!(
        inspect(&p.container("shell"), "{{.State.Running}}"),
        "false"
    );
    let (status, refused) = p
        .post("/api/v1/boxes/shell/exec", json!({"command": "true"}))
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("wrong_state")),
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start it first"),
        "{refused}"
    );
    let (status, _) = p.get("/api/v1/boxes/shell/logs").await;
    assert_eq!(status, 200, "a stopped box's logs can still be read");

    // A stopped box survives a paddock restart, still stopped.
    p.stop();
    p.restart();
    let (_, got) = p.get("/api/v1/boxes/shell").await;
    assert_eq!(got["state"], "stopped", "{got}");
    assert!(
        got.get("usage").is_none(),
        "a stopped box uses nothing: {got}"
    );
    assert_eq!(
        inspect(&p.container("shell"), "{{.State.Running}}"),
        "false"
    );

    let (status, started) = p.post("/api/v1/boxes/shell/start", json!({})).await;
    assert_eq!(
        (status, &started["state"]),
        (200, &json!("ready")),
        "{started}"
    );
    let out = exec(&p, "shell", "cat /tmp/kept").await;
    assert_eq!(out["stdout"], "kept\n", "the box kept its files: {out}");

    // What it uses, in get and in `box top` (the harness caps memory at
    // 256 MiB).
    let (_, got) = p.get("/api/v1/boxes/shell").await;
    assert_eq!(
        got["usage"]["memory_limit_bytes"],
        256 * 1024 * 1024,
        "{got}"
    );
    assert!(got["usage"]["pids"].as_u64().unwrap() >= 1, "{got}");
    let top = p.cli_json(&["box", "top", "--interval", "0.2", "--json"]);
    assert_eq!(top[0]["box_id"], "shell", "{top}");
    assert!(top[0]["cpu_percent"].as_f64().is_some(), "{top}");
    assert!(top[0]["memory_bytes"].as_u64().unwrap() > 0, "{top}");

    // Guarded again before start returned: a connection that bypasses
    // the proxy is dropped in the box's namespace and reported.
    let host_service = Upstream::start("0.0.0.0:0").await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "shell").await;
    let gw = gateway_of(&p, "shell").await;
    let out = exec(
        &p,
        "shell",
        &format!("echo hi | nc -w 3 {gw} {}", host_service.port),
    )
    .await;
    assert_ne!(out["exit_code"], 0, "{out}");
    let port = i64::from(host_service.port);
    sub.next_where("the raw attempt after the start", |e| {
        e.kind == "connection_refused" && e.container == "shell" && e.port == port
    })
    .await;
    assert!(host_service.connections().is_empty());

    // Starting a running box, stopping a stopped one: no error, no change.
    let again = p.cli_json(&["box", "start", "shell", "--json"]);
    assert_eq!(again["state"], "ready");
    let (status, _) = p.delete("/api/v1/boxes/shell").await;
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_whose_main_process_dies_says_exited_with_its_code() {
    let p = Paddock::start(options());
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "dies"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "dies").await;

    // Killed behind paddock's back.
    let killed = docker(&["kill", "--signal", "KILL", &p.container("dies")]);
    assert!(killed.status.success());
    let got = wait_for(
        "the box to say it exited",
        Duration::from_secs(20),
        || async {
            let (_, got) = p.get("/api/v1/boxes/dies").await;
            (got["state"] == "exited").then_some(got)
        },
    )
    .await;
    assert_eq!(got["exit_code"], 137, "{got}");
    assert!(
        got["error"]
            .as_str()
            .unwrap()
            .contains("exited with code 137"),
        "{got}"
    );
    let exited = sub
        .next_where("container_exited", |e| {
            e.kind == "container_exited" && e.container == "dies"
        })
        .await;
    assert!(exited.reason.contains("137"), "{}", exited.reason);
    let listed = p.cli_json(&["box", "ls", "--json"]);
    assert_eq!(listed[0]["exit_code"], 137, "{listed}");
    let table = p.cli(&["box", "ls"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("exited (137)"),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );

    let (status, started) = p.post("/api/v1/boxes/dies/start", json!({})).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["state"], "ready");
    assert!(started.get("exit_code").is_none(), "{started}");
    let out = exec(&p, "dies", "echo back").await;
    assert_eq!(out["stdout"], "back\n");
}

/// A person at a terminal: `paddock box shell` under a real
/// pseudo-terminal — the box's terminal has this window's size and
/// follows it, Ctrl-C interrupts what runs, the shell's exit code is the
/// command's; a client that vanishes leaves nothing running.
#[tokio::test(flavor = "multi_thread")]
async fn a_shell_through_a_pseudo_terminal() {
    let p = Paddock::start(options());
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "term"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let steps = json!([
        ["wait_for", "#"],
        ["type", "stty size; echo TERM=$TERM\r"],
        ["wait_for", "30 100"],
        ["resize", 120, 40],
        ["retype_until", "stty size\r", "40 120"],
        ["type", "echo started; sleep 300; echo slept\r"],
        ["wait_for", "started\r\n"],
        ["type", "\u{3}"],
        ["type", "echo after-interrupt\r"],
        ["wait_for", "after-interrupt\r\n"],
        ["type", "exit 7\r"],
    ]);
    let out = crate::common::run_python(
        "pty_shell.py",
        &json!({
            "argv": [crate::common::paddock_bin(), "box", "shell", "term"],
            "env": {"PADDOCK_URL": p.url, "PADDOCK_TOKEN": p.admin_token, "TERM": "xterm-test"},
            "steps": steps,
        }),
    );
    let text = out["output"].as_str().unwrap();
    assert_eq!(out["failed"], Value::Null, "{text}");
    assert!(text.contains("TERM=xterm-test"), "{text}");
    // Once where the line was typed; never as the sleep's end.
    assert_eq!(
        text.matches("slept").count(),
        1,
        "Ctrl-C did not reach the sleep: {text}"
    );
    assert_eq!(out["exit_code"], 7, "{text}");

    // A client that goes away mid-command: the command is hung up.
    let mut child = std::process::Command::new(crate::common::paddock_bin())
        .args(["box", "shell", "term", "-c", "sleep 300"])
        .env("PADDOCK_URL", &p.url)
        .env("PADDOCK_TOKEN", &p.admin_token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the sleep to run", Duration::from_secs(20), || async {
        let out = exec(&p, "term", "ps -o args | grep -c '^sleep 300' || true").await;
        (out["stdout"] == "1\n").then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(
        "the vanished client's command to end",
        Duration::from_secs(20),
        || async {
            let out = exec(&p, "term", "ps -o args | grep -c '^sleep 300' || true").await;
            (out["stdout"] == "0\n").then_some(())
        },
    )
    .await;

    // A stopped box takes no shell; the CLI says why.
    let stopped = p.cli_json(&["box", "stop", "term", "--json"]);
    assert_eq!(stopped["state"], "stopped");
    let out = p.cli(&["box", "shell", "term", "-c", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("start it first") && stderr.contains("409"),
        "{stderr}"
    );
}
