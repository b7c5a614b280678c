//! terok's own clearance clients against paddock, unchanged
//! (terok-clearance 0.8.1 from PyPI): they find paddock's hub by the socket
//! glob they use for terok's hubs, and every `connection_blocked` they are
//! shown is one they can decide. Its terminal client, typed into; its
//! desktop pop-ups on a real session bus with Debian's dunst showing them,
//! an action picked from dunst's menu as a person would.

use crate::common::egress_site::*;
use crate::common::terok::{TerokClient, dunstctl};
use crate::common::{Options, Paddock};
use serde_json::json;

fn options() -> Options {
    Options {
        login_profile: false,
        extra_toml: "[egress]\nhold_timeout_secs = 60\n[egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn teroks_terminal_client_finds_the_hub_and_allows_a_held_request() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options());
    create_box(&p, "tk", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let hub = p
        .runtime_dir()
        .join(format!("terok/clearance/paddock-{}/hub.sock", p.instance));
    assert!(hub.exists(), "no hub socket at {}", hub.display());

    let mut client = TerokClient::start(&["clearance"], &p);
    client.until_live(&p, "tk").await;

    // A refusal nobody can overrule (a raw packet past the proxy) is not
    // offered for a decision. The hub publishes in one order to everyone:
    // once the test's own subscriber has the refusal, a shield change
    // after it is a marker, and terok's client shows nothing BLOCKED
    // before it.
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "tk").await;
    let gw = gateway_of(&p, "tk").await;
    let out = exec(&p, "tk", &format!("echo hi | nc -w 2 {gw} 1")).await;
    assert_ne!(out["exit_code"], 0, "{out}");
    sub.next_where("the raw refusal", |e| {
        e.kind == "connection_refused" && e.container == "tk" && e.port == 1
    })
    .await;
    let (status, _) = p
        .put(
            "/api/v1/boxes/tk/shield",
            json!({"state": "down", "ttl_secs": 600}),
        )
        .await;
    assert_eq!(status, 200);
    let before_marker =
        client.lines_until("the marker", |l| l.to_lowercase().contains("shield down"));
    assert!(
        !before_marker.iter().any(|l| l.contains("BLOCKED")),
        "terok's client was offered a refusal: {before_marker:#?}"
    );
    poke(&p, "tk").await;

    // A held connection: shown, allowed by typing as a person would, and
    // the very connection completes.
    let run = exec_later(
        &p,
        "tk",
        &format!("wget -q -O - http://upstream.test:{}/", upstream.port),
    );
    let blocked = client.line_where("a blocked request", |l| l.contains("BLOCKED"));
    assert!(blocked.contains("upstream.test"), "{blocked}");
    let nid = blocked
        .split('[')
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("[N] before BLOCKED")
        .to_owned();
    client.type_line(&format!("a {nid}"));
    let applied = client.line_where("the verdict's outcome", |l| {
        l.to_lowercase().contains("allowed")
    });
    assert!(applied.contains("upstream.test"), "{applied}");
    let out = run.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
}

#[tokio::test(flavor = "multi_thread")]
async fn teroks_desktop_pop_up_allows_a_held_request() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options());
    create_box(&p, "pop", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let desktop = TerokClient::desktop(&p);
    let bus = desktop
        .line_where("the session bus", |l| l.starts_with("bus="))
        .trim_start_matches("bus=")
        .to_owned();
    let ready = desktop.line_where("ready", |l| l.starts_with("ready"));
    assert_eq!(ready, "ready DbusNotifier", "terok fell back to no pop-ups");
    desktop.until_live(&p, "pop").await;
    dunstctl(&bus, &["close-all"]);

    let run = exec_later(
        &p,
        "pop",
        &format!("wget -q -O - http://upstream.test:{}/", upstream.port),
    );
    let blocked = desktop.line_where("the pop-up", |l| l.starts_with("Blocked:"));
    assert!(blocked.contains("upstream.test"), "{blocked}");
    // The pop-up is on dunst's screen; picking Allow from its menu is the
    // click.
    crate::common::wait_for(
        "the pop-up on screen",
        std::time::Duration::from_secs(20),
        || {
            let shown = dunstctl(&bus, &["count", "displayed"]);
            async move { (shown.trim() != "0").then_some(()) }
        },
    )
    .await;
    dunstctl(&bus, &["action", "0"]);
    let out = run.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
}
