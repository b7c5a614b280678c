//! Controlling egress: the `paddock egress` CLI, shields, and a proxy that
//! stays up under malformed, oversized, half-sent and abandoned requests.
//! Fault tests talk to a box's proxy from the host (the gateway address is
//! the host's own), so they can send what no well-behaved client would.

use std::time::Duration;

use crate::common::egress_site::*;
use crate::common::{Options, Paddock, wait_for};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(hold_timeout_secs: u64) -> Options {
    Options {
        login_profile: false,
        extra_toml: format!(
            "[egress]\nhold_timeout_secs = {hold_timeout_secs}\nmax_down_secs = 120\n\
             [egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n"
        ),
        ..Options::default()
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_rules_shields_and_reads_the_log() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options(30));
    create_box(&p, "cli", "proj").await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "cli").await;
    let port = upstream.port.to_string();
    let fetch = format!("wget -q -O - http://upstream.test:{port}/");

    let added = p.cli(&[
        "egress",
        "allow",
        "127.0.0.1/32",
        "--project",
        "proj",
        "--port",
        &port,
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(stdout(&added).contains("127.0.0.1/32"));
    // Every rule change is an event.
    let event = sub
        .next_where("the project rule's event", |e| e.kind == "rule_added")
        .await;
    assert_eq!(
        (event.dest.as_str(), event.action.as_str()),
        ("127.0.0.1/32", "allow")
    );
    assert_eq!(event.port, i64::from(upstream.port));
    assert_eq!(event.dossier["project"], "proj");
    assert!(
        event.reason.contains("token:"),
        "who added it: {}",
        event.reason
    );
    let out = exec(&p, "cli", &fetch).await;
    assert_eq!(out["exit_code"], 0, "{out}");

    let denied = p.cli(&["egress", "deny", "upstream.test", "--box", "cli"]);
    assert!(denied.status.success());
    let event = sub
        .next_where("the box rule's event", |e| e.kind == "rule_added")
        .await;
    assert_eq!(
        (event.container.as_str(), event.action.as_str()),
        ("cli", "deny")
    );
    assert_eq!(
        (event.domain.as_str(), event.dossier["project"].as_str()),
        ("upstream.test", "proj")
    );
    let out = exec(&p, "cli", &fetch).await;
    assert!(
        out["stderr"].as_str().unwrap().contains("403"),
        "the name rule wins: {out}"
    );

    let rules = p.cli(&["egress", "rules", "--json"]);
    let rules: Vec<Value> = serde_json::from_slice(&rules.stdout).unwrap();
    assert_eq!(rules.len(), 2);
    let deny_id = rules.iter().find(|r| r["action"] == "deny").unwrap()["id"].to_string();
    assert!(p.cli(&["egress", "rm", &deny_id]).status.success());
    let event = sub
        .next_where("the removal's event", |e| e.kind == "rule_removed")
        .await;
    assert_eq!(
        (event.container.as_str(), event.dest.as_str()),
        ("cli", "upstream.test")
    );
    assert!(
        event
            .reason
            .contains(&format!("rule #{deny_id} removed by token:")),
        "{}",
        event.reason
    );
    let out = exec(&p, "cli", &fetch).await;
    assert_eq!(out["exit_code"], 0, "{out}");

    // Bad input: a clear error, nothing stored.
    for bad in [
        vec!["egress", "allow", "not a name", "--box", "cli"],
        vec![
            "egress",
            "allow",
            "example.com",
            "--box",
            "cli",
            "--port",
            "0-9",
        ],
        vec!["egress", "allow", "example.com", "--box", "no-such-box"],
    ] {
        let out = p.cli(&bad);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("paddock: error:"));
    }
    let none = p.cli(&["egress", "allow", "example.com"]);
    assert!(!none.status.success(), "a rule needs --box or --project");
    let rules = p.cli(&["egress", "rules", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&rules.stdout)
            .unwrap()
            .len(),
        1
    );

    // An allow over a deny for the same target says that it replaces it.
    assert!(
        p.cli(&["egress", "deny", "example.com", "--box", "cli"])
            .status
            .success()
    );
    let replaced = p.cli(&["egress", "allow", "example.com", "--box", "cli"]);
    assert!(
        stdout(&replaced).contains("replaces the deny rule"),
        "{}",
        stdout(&replaced)
    );

    logged(&p, "cli", &["allowed", "denied"]).await;
    let log = p.cli(&["egress", "log", "--box", "cli"]);
    let log = stdout(&log);
    assert!(log.contains("allowed") && log.contains("denied"), "{log}");
    // Times a person reads, not epoch milliseconds.
    let year = time::OffsetDateTime::now_utc().year().to_string();
    assert!(
        log.contains("AT (UTC)") && log.contains(&format!("{year}-")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shields_block_everything_or_stop_asking_for_a_while() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options(30));
    create_box(&p, "sh", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "sh").await;
    let fetch = format!("wget -q -O - http://upstream.test:{}/", upstream.port);

    let down = p.cli(&["egress", "down", "--box", "sh", "--ttl", "60"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    sub.next_where("shield_down", |e| {
        e.kind == "shield_down" && e.container == "sh"
    })
    .await;
    let out = exec(&p, "sh", &fetch).await;
    assert_eq!(out["exit_code"], 0, "a lowered shield asks nobody: {out}");

    let too_long = p.cli(&["egress", "down", "--box", "sh", "--ttl", "100000"]);
    assert!(!too_long.status.success());
    assert!(String::from_utf8_lossy(&too_long.stderr).contains("120"));

    assert!(p.cli(&["egress", "block", "--box", "sh"]).status.success());
    let out = exec(&p, "sh", &fetch).await;
    assert!(out["stderr"].as_str().unwrap().contains("403"), "{out}");
    // Under a blocking shield the remedy is the shield, not a rule.
    let proxy = format!("{}:3128", gateway_of(&p, "sh").await);
    let request = format!(
        "GET http://upstream.test:{}/ HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n",
        upstream.port
    );
    let answer = raw_request(&proxy, request.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 403")
            && answer.contains("paddock egress up --box sh")
            && !answer.contains("egress allow"),
        "{answer}"
    );
    let (_, got) = p.get("/api/v1/boxes/sh").await;
    assert_eq!(got["shield"], "block", "box get shows the shield: {got}");
    let listed = p.cli(&["box", "ls"]);
    assert!(
        stdout(&listed).contains("SHIELD") && stdout(&listed).contains("block"),
        "{}",
        stdout(&listed)
    );
    let out = exec(&p, "sh", "nslookup upstream.test").await;
    assert!(out["stdout"].as_str().unwrap().contains("REFUSED") || out["exit_code"] != 0);

    assert!(p.cli(&["egress", "up", "--box", "sh"]).status.success());
    let held = exec_later(&p, "sh", &fetch);
    let e = sub
        .next_where("held again", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty()
        })
        .await;
    // A shield change drops what is held: it was asked under the old state.
    assert!(p.cli(&["egress", "block", "--box", "sh"]).status.success());
    let out = held.await.unwrap();
    assert!(out["stderr"].as_str().unwrap().contains("403"), "{out}");
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "sh", "request_id": e.request_id, "dest": e.dest, "action": "allow"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("request_already_ended"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("withdrawn"),
        "{body}"
    );
}

async fn raw_request(addr: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_refuses_bad_requests_and_leaks_no_held_request() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options(2));
    create_box(&p, "fx", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    add_rule(
        &p,
        json!({"box_id": "fx", "target": "upstream.test", "action": "allow"}),
    )
    .await;
    let proxy = format!("{}:3128", gateway_of(&p, "fx").await);
    let good = format!(
        "GET http://upstream.test:{}/ HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n",
        upstream.port
    );

    // A client that sends half a request and then nothing stays open…
    let mut half = TcpStream::connect(&proxy).await.unwrap();
    half.write_all(b"GET http://upstream.test/ HTTP/1.1\r\nHo")
        .await
        .unwrap();

    // …while garbage, origin-form requests and oversized heads are refused.
    let garbage = raw_request(&proxy, b"\x16\x03\x01garbage\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    let origin = raw_request(
        &proxy,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        origin.starts_with("HTTP/1.1 400") && origin.contains("absolute-form"),
        "{origin:?}"
    );
    let https = raw_request(
        &proxy,
        b"GET https://upstream.test/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        https.starts_with("HTTP/1.1 400") && https.contains("CONNECT"),
        "{https:?}"
    );
    let no_port = raw_request(
        &proxy,
        b"CONNECT upstream.test HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(no_port.starts_with("HTTP/1.1 400"), "{no_port:?}");
    // A port that is no port is refused, never taken for port 80.
    for bad in ["99999", "65536", "0", "x"] {
        let request = format!(
            "GET http://upstream.test:{bad}/ HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_request(&proxy, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "port {bad}: {answer:?}");
    }
    // A DNS query that is no standard query gets FORMERR.
    let dns = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let gw = proxy.trim_end_matches(":3128").to_owned();
    dns.send_to(
        &[0x12, 0x34, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0],
        format!("{gw}:53"),
    )
    .await
    .unwrap();
    let mut reply = [0u8; 512];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), dns.recv_from(&mut reply))
        .await
        .expect("FORMERR comes back")
        .unwrap();
    assert!(len >= 12 && reply[3] & 0x0f == 1, "{:?}", &reply[..len]);
    // Every one of those refusals is on the record, with its reason.
    wait_for(
        "the refusals in the log",
        Duration::from_secs(10),
        || async {
            let entries = audit(&p, "fx").await;
            let malformed: Vec<&Value> = entries
                .iter()
                .filter(|e| e["decision"] == "malformed")
                .collect();
            let by = |who: &str| malformed.iter().filter(|e| e["decided_by"] == who).count();
            (by("proxy") >= 8 && by("dns") >= 1 && malformed.iter().all(|e| e["reason"] != ""))
                .then_some(())
        },
    )
    .await;
    let huge = format!(
        "GET http://upstream.test/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let oversized = raw_request(&proxy, huge.as_bytes()).await;
    assert!(
        oversized.is_empty() || oversized.starts_with("HTTP/1.1 431"),
        "{oversized:?}"
    );

    // Everyone else is still served.
    let ok = raw_request(&proxy, good.as_bytes()).await;
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains(UPSTREAM_BODY),
        "{ok:?}"
    );

    // A client that leaves while held: the request ends at the deadline.
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "fx").await;
    let held_connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", upstream.port);
    let mut leaving = TcpStream::connect(&proxy).await.unwrap();
    leaving.write_all(held_connect.as_bytes()).await.unwrap();
    let held = sub
        .next_where("connection_blocked", |e| {
            e.kind == "connection_blocked" && !e.request_id.is_empty()
        })
        .await;
    drop(leaving);
    sub.next_where("the deadline", |e| {
        e.kind == "verdict_applied" && e.request_id == held.request_id
    })
    .await;
    wait_for("nothing held", Duration::from_secs(10), || async {
        let (_, pending) = p.get("/api/v1/egress/pending").await;
        (pending["requests"] == json!([])).then_some(())
    })
    .await;
    drop(half);
    assert_eq!(
        upstream.connections().len(),
        1,
        "only the good request got through"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_means_to_guard_a_box_creation_fails_closed() {
    // paddock finds nft on its PATH (the host fence's table is made with
    // it); this one has git only.
    let bin = tempfile::tempdir().unwrap();
    let git = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(git.trim(), bin.path().join("git")).unwrap();
    let mut opts = options(30);
    opts.env
        .push(("PATH".into(), bin.path().display().to_string()));
    let p = Paddock::start(opts);
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "bare"}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "setup_failed");
    // It names what is missing: nft for the host-side fence, before any
    // container exists.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("nftables"), "{body}");
    let (_, list) = p.get("/api/v1/boxes").await;
    assert_eq!(list["boxes"], json!([]), "nothing is left behind");
    wait_for("the container to go", Duration::from_secs(20), || async {
        p.docker_objects().0.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_cannot_bury_a_person_in_prompts() {
    let mut opts = options(30);
    opts.extra_toml = opts
        .extra_toml
        .replace("[egress]\n", "[egress]\nmax_held_per_box = 2\n");
    let p = Paddock::start(opts);
    create_box(&p, "noisy", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let proxy = format!("{}:3128", gateway_of(&p, "noisy").await);
    let mut held = Vec::new();
    for port in [1001, 1002] {
        let mut s = TcpStream::connect(&proxy).await.unwrap();
        s.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        held.push(s);
    }
    wait_for("two held requests", Duration::from_secs(10), || async {
        let (_, pending) = p.get("/api/v1/egress/pending").await;
        (pending["requests"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    let third = raw_request(
        &proxy,
        b"CONNECT 127.0.0.1:1003 HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        third.starts_with("HTTP/1.1 403") && third.contains("2 undecided destinations"),
        "{third:?}"
    );
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    assert_eq!(
        pending["requests"].as_array().unwrap().len(),
        2,
        "nothing new to answer"
    );
    drop(held);
}
