//! `paddock notify` on a real desktop session: a private session bus
//! (dbus-run-session), Xvfb, and Debian's dunst as the notification server
//! (fixtures/desktop_session.sh). A held request from a real box pops up;
//! another attempt replaces its pop-up rather than stacking; "Allow for
//! the project", picked from dunst's menu as a person would, lets both
//! attempts through and leaves the project's rule; a verdict given
//! elsewhere closes the pop-up. Without a bus, or when the server goes
//! away, it says so and keeps trying — it does not exit.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::driven::Driven;
use crate::common::egress_site::*;
use crate::common::terok::dunstctl;
use crate::common::{Options, Paddock, paddock_bin, wait_for};
use serde_json::json;

/// `paddock notify <source>` in a desktop session of its own.
fn notify_in_desktop(p: &Paddock, source: &[&str], pick: &str) -> (Driven, String) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cmd = Command::new("dbus-run-session");
    cmd.arg("--")
        .arg(fixtures.join("desktop_session.sh"))
        .arg(paddock_bin())
        .arg("notify")
        .args(source)
        .env("DESKTOP_WORK", p.dir.path().join("desktop"))
        .env("DUNST_PICK", pick);
    let notify = Driven::run(cmd, p);
    let bus = notify
        .line_where("the session bus", |l| l.starts_with("bus="))
        .trim_start_matches("bus=")
        .to_owned();
    notify.line_where("ready", |l| l.contains("showing held requests"));
    (notify, bus)
}

async fn displayed(bus: &str, count: &str) {
    wait_for(
        &format!("{count} pop-up(s) on screen"),
        Duration::from_secs(20),
        || {
            let shown = dunstctl(bus, &["count", "displayed"]);
            async move { (shown.trim() == count).then_some(()) }
        },
    )
    .await;
}

/// The pop-up id in a `pop-up #N: …` line.
fn popup_id(line: &str) -> String {
    line.split('#')
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn held_requests_pop_up_and_are_decided_from_the_pop_up() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[egress]\nhold_timeout_secs = 120\n[egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n\"second.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    });
    create_box(&p, "nt", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let socket = p.clearance_socket();
    let (notify, bus) =
        notify_in_desktop(&p, &["--socket", socket.to_str().unwrap()], "allow_project");

    let url = format!("http://upstream.test:{}/", upstream.port);
    let first = exec_later(&p, "nt", &format!("wget -q -O - {url}"));
    let shown = notify.line_where("the pop-up", |l| {
        l.contains("pop-up #") && l.contains("(1 attempts)")
    });
    assert!(shown.contains("box nt wants upstream.test"), "{shown}");
    displayed(&bus, "1").await;
    // Another attempt on the same destination replaces the pop-up.
    let second = exec_later(&p, "nt", &format!("wget -q -O - {url}"));
    let again = notify.line_where("the replaced pop-up", |l| l.contains("(2 attempts)"));
    assert_eq!(
        popup_id(&again),
        popup_id(&shown),
        "{again} stacked on {shown}"
    );
    displayed(&bus, "1").await;

    // "Allow for the project", picked from dunst's menu.
    dunstctl(&bus, &["action", "0"]);
    for run in [first, second] {
        let out = run.await.unwrap();
        assert_eq!(out["exit_code"], 0, "{out}");
        assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
    }
    displayed(&bus, "0").await;
    let (_, rules) = p.get("/api/v1/egress/rules").await;
    assert!(
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["target"] == "upstream.test"
                && r["scope"] == "project"
                && r["action"] == "allow"),
        "{rules}"
    );

    // Decided elsewhere: the pop-up closes.
    let third = exec_later(
        &p,
        "nt",
        &format!("wget -q -O - http://second.test:{}/", upstream.port),
    );
    let shown = notify.line_where("the second pop-up", |l| l.contains("wants second.test"));
    displayed(&bus, "1").await;
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    let request = &pending["requests"][0];
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "nt", "request_id": request["request_id"], "dest": request["dest"], "action": "deny", "scope": "once"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let closed = notify.line_where("the pop-up closing", |l| l.contains("closed"));
    assert_eq!(popup_id(&closed), popup_id(&shown));
    displayed(&bus, "0").await;
    assert_ne!(third.await.unwrap()["exit_code"], 0);

    // The notification server goes away: said, retried, no exit.
    let dunstrc = p.dir.path().join("desktop/dunstrc");
    let killed = Command::new("pkill")
        .args(["-f", &format!("dunst -config {}", dunstrc.display())])
        .status()
        .unwrap();
    assert!(killed.success(), "dunst was not running");
    let _held = exec_later(
        &p,
        "nt",
        &format!("wget -q -O - http://second.test:{}/", upstream.port),
    );
    notify.line_where("the server gone", |l| {
        l.contains("notification server went away")
    });
    notify.line_where("a retry", |l| l.contains("retrying"));
    notify.line_where("another retry", |l| l.contains("still"));
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_a_desktop_user_denies_from_the_pop_up() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[egress]\nhold_timeout_secs = 120\n[egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    });
    create_box(&p, "nw", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let (_, person) = p.mint(&["viewer", "egress:verdict"], Some(&["proj"])).await;
    let (notify, bus) = notify_in_desktop(&p, &["--url", &p.url, "--token", &person], "deny");
    let run = exec_later(
        &p,
        "nw",
        &format!("wget -S -O - http://upstream.test:{}/ 2>&1", upstream.port),
    );
    notify.line_where("the pop-up", |l| l.contains("box nw wants upstream.test"));
    displayed(&bus, "1").await;
    dunstctl(&bus, &["action", "0"]);
    let out = run.await.unwrap();
    assert_ne!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains("403"), "{out}");
    notify.line_where("the verdict", |l| {
        l.contains("deny upstream.test for box nw")
    });
    displayed(&bus, "0").await;
}

#[test]
fn without_a_session_bus_it_says_so_and_keeps_trying() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(paddock_bin())
        .args(["notify", "--socket"])
        .arg(dir.path().join("no-hub.sock"))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", dir.path().join("no-bus").display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = Vec::new();
    for line in lines.map_while(Result::ok) {
        seen.push(line);
        if seen.iter().filter(|l| l.contains("retrying")).count() >= 2 {
            break;
        }
    }
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "it exited: {seen:#?}");
    assert!(
        seen[0].contains("cannot show pop-ups: no session D-Bus"),
        "{seen:#?}"
    );
}
