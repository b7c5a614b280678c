//! `[audit]` end to end: a real box's decisions reach a JSONL file and a
//! signed OCSF webhook this test runs on loopback, and a SIGKILL loses
//! none of them; retention prunes old decisions and git audit records,
//! but never what a sink has still to deliver.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::egress_site::{add_rule, create_box, exec};
use crate::common::{Options, Paddock, wait_for};

type Lines = Arc<Mutex<Vec<Value>>>;

/// A receiver on `listener` that keeps every NDJSON line it is sent.
fn receive(listener: tokio::net::TcpListener) -> Lines {
    let lines: Lines = Arc::default();
    let app = Router::new()
        .route(
            "/ingest",
            post(|State(l): State<Lines>, body: String| async move {
                let mut kept = l.lock();
                for line in body.lines() {
                    kept.push(serde_json::from_str(line).unwrap());
                }
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(lines.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    lines
}

fn file_ids(path: &std::path::Path) -> BTreeSet<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["id"].as_i64())
        .collect()
}

async fn logged_ids(p: &Paddock) -> BTreeSet<i64> {
    let (status, body) = p.get("/api/v1/egress/log?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect()
}

const SECRET: &str = "an-audit-sink-secret-of-some-length";

#[tokio::test(flavor = "multi_thread")]
async fn decisions_reach_a_file_and_a_webhook_and_a_kill_loses_none() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let received = receive(listener);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("decisions.jsonl");
    let mut p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!(
            "[egress.hosts]\n\"denied.test\" = [\"127.0.0.1\"]\n\
             [audit]\nretain_days = 30\n\
             [[audit.sinks]]\nname = \"file\"\nfile = \"{}\"\npoll_ms = 50\n\
             [[audit.sinks]]\nname = \"siem\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nformat = \"ocsf\"\npoll_ms = 50\n",
            file.display()
        ),
        ..Options::default()
    });
    create_box(&p, "audited", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "denied.test", "action": "deny"}),
    )
    .await;
    let wget = "wget -q -O - http://denied.test:8080/ 2>&1; echo done";
    assert!(
        exec(&p, "audited", wget).await["stdout"]
            .as_str()
            .unwrap()
            .contains("403")
    );
    let denied_in_file = || async {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let denied = text
            .lines()
            .filter(|l| l.contains("\"decision\":\"denied\""))
            .count();
        (denied > 0).then_some(denied)
    };
    wait_for(
        "the denial in the file",
        Duration::from_secs(20),
        denied_in_file,
    )
    .await;
    let ocsf_denial = || async {
        received
            .lock()
            .iter()
            .find(|r| r["unmapped"]["decision"] == "denied")
            .cloned()
    };
    let event = wait_for(
        "the denial at the webhook",
        Duration::from_secs(20),
        ocsf_denial,
    )
    .await;
    assert_eq!(event["class_uid"], 4001);
    assert_eq!(event["action"], "Denied");
    assert_eq!(event["src_endpoint"]["name"], "audited");
    assert_eq!(event["dst_endpoint"]["hostname"], "denied.test");

    // Killed with no chance to flush anything, started again, more
    // decisions: every entry of the log reaches both sinks.
    p.kill9();
    p.restart();
    exec(&p, "audited", wget).await;
    wait_for(
        "the second denial in the file",
        Duration::from_secs(20),
        || async { denied_in_file().await.filter(|n| *n >= 2) },
    )
    .await;
    let logged = logged_ids(&p).await;
    wait_for(
        "every logged entry in both sinks",
        Duration::from_secs(20),
        || async {
            let in_file = file_ids(&file);
            let at_webhook: BTreeSet<i64> = received
                .lock()
                .iter()
                .filter_map(|r| r["metadata"]["uid"].as_str()?.parse().ok())
                .collect();
            (logged.is_subset(&in_file) && logged.is_subset(&at_webhook)).then_some(())
        },
    )
    .await;
    // /metrics says how far behind each is.
    let metrics = p.get_text("/metrics").await;
    assert!(
        metrics.contains("paddock_audit_exported_total{sink=\"siem\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains(SECRET));
}

fn old_entry(days_ago: i64, dest: &str) -> paddock_store::AuditRow {
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    paddock_store::AuditRow {
        id: 0,
        at_ms: now_ms - days_ago * 86_400_000,
        box_id: "gone".into(),
        project: "proj".into(),
        dest: dest.into(),
        port: 443,
        proto: 6,
        domain: String::new(),
        decision: "denied".into(),
        decided_by: "default".into(),
        request_id: String::new(),
        reason: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_prunes_old_records_but_not_what_a_sink_still_owes() {
    // A sink whose receiver is not up yet: its port is taken from a
    // listener the test holds, and serves only later.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!(
            "[audit]\nretain_days = 7\n\
             [[audit.sinks]]\nname = \"late\"\nurl = \"http://127.0.0.1:{port}/ingest\"\nsecret = \"{SECRET}\"\npoll_ms = 50\n"
        ),
        ..Options::default()
    });
    p.stop();
    // Ten days old and yesterday's, in the store and in the git audit.
    let data = p.dir.path().join("data");
    let store = paddock_store::Store::open(&data.join("paddock.db")).unwrap();
    store
        .append_egress_audit(&[old_entry(10, "old.test"), old_entry(1, "recent.test")])
        .unwrap();
    drop(store);
    let git_audit = data.join("git-audit.jsonl");
    let day = |days_ago: i64| {
        (time::OffsetDateTime::now_utc() - time::Duration::days(days_ago))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    std::fs::write(
        &git_audit,
        format!(
            "{{\"time\":\"{}\",\"outcome\":\"accepted\",\"ref\":\"old\"}}\n\
             {{\"time\":\"{}\",\"outcome\":\"accepted\",\"ref\":\"recent\"}}\n",
            day(10),
            day(1)
        ),
    )
    .unwrap();

    p.restart();
    // The git audit has no sink: its old record goes at once.
    wait_for(
        "the old git record pruned",
        Duration::from_secs(20),
        || async {
            let text = std::fs::read_to_string(&git_audit).unwrap_or_default();
            (!text.contains("\"old\"")).then_some(())
        },
    )
    .await;
    assert!(
        std::fs::read_to_string(&git_audit)
            .unwrap()
            .contains("\"recent\"")
    );
    // The sink has delivered nothing: the old decision stays.
    let (_, log) = p.get("/api/v1/egress/log?limit=100").await;
    assert!(log.to_string().contains("old.test"), "{log}");

    // The receiver comes up; the sink delivers; the next prune (at the
    // next start here, hourly in service) takes the old decision.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let received = receive(listener);
    wait_for(
        "both decisions delivered",
        Duration::from_secs(30),
        || async {
            let dests: Vec<String> = received
                .lock()
                .iter()
                .filter_map(|r| r["dest"].as_str().map(str::to_owned))
                .collect();
            (dests.contains(&"old.test".to_owned()) && dests.contains(&"recent.test".to_owned()))
                .then_some(())
        },
    )
    .await;
    p.stop();
    p.restart();
    wait_for(
        "the old decision pruned",
        Duration::from_secs(20),
        || async {
            let (_, log) = p.get("/api/v1/egress/log?limit=100").await;
            let text = log.to_string();
            (!text.contains("old.test") && text.contains("recent.test")).then_some(())
        },
    )
    .await;
}
