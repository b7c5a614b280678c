//! `/metrics` against a real server and a real box: what Prometheus would
//! scrape, checked by Debian's promtool; counts that move with what
//! happened; `metrics:read` needed; no secret or token in it.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::egress_site::{add_rule, create_box, exec};
use crate::common::{Options, Paddock};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_what_promtool_accepts_and_count_what_happened() {
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[egress.hosts]\n\"denied.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    });
    let (status, _) = p
        .put(
            "/api/v1/projects/proj/secrets/key",
            json!({"value": "sk-metrics-secret", "env": "API_KEY"}),
        )
        .await;
    assert_eq!(status, 200);
    create_box(&p, "counted", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "denied.test", "action": "deny"}),
    )
    .await;
    let out = exec(
        &p,
        "counted",
        "wget -q -O - http://denied.test:8080/ 2>&1; echo done",
    )
    .await;
    assert!(out["stdout"].as_str().unwrap().contains("403"), "{out}");
    // One refused credential, on REST.
    let refused = crate::common::authorised_client("not-a-token")
        .get(format!("{}/api/v1/boxes", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let (_, viewer) = p.mint(&["viewer"], None).await;
    let (_, agent) = p.mint(&["agent"], None).await;
    let scrape = |token: String| {
        let url = format!("{}/metrics", p.url);
        async move {
            crate::common::authorised_client(&token)
                .get(url)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(scrape(agent).await.status(), 403, "metrics:read is needed");
    let res = scrape(viewer).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();

    assert_eq!(value(&text, "paddock_boxes{state=\"ready\"}"), 1.0);
    assert_eq!(
        value(&text, "paddock_box_creates_total{outcome=\"ok\"}"),
        1.0
    );
    assert!(value(&text, "paddock_box_create_seconds_count") >= 1.0);
    assert!(
        value(&text, "paddock_egress_decisions_total{decision=\"denied\"}") >= 1.0,
        "{text}"
    );
    assert_eq!(value(&text, "paddock_held_requests"), 0.0);
    assert!(value(&text, "paddock_auth_failures_total{surface=\"rest\"}") >= 1.0);
    for secret in ["sk-metrics-secret", &p.admin_token, "pdk_ph_"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // Debian's promtool reads it as Prometheus would.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus) is installed by scripts/ensure-env");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
