//! `/metrics` against a real server and a real box: checked by Debian's
//! promtool and scraped by Debian's prometheus; counts that move with what
//! happened (a denial, a held request allowed by a person); `metrics:read`
//! needed; no secret or token in it.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::egress_site::{Held, add_rule, create_box, exec};
use crate::common::{Options, Paddock, wait_for};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_what_promtool_accepts_and_count_what_happened() {
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[egress.hosts]\n\"denied.test\" = [\"127.0.0.1\"]\n\
                     \"asked.test\" = [\"127.0.0.1\"]\n"
            .into(),
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
    // One request held and allowed by a person.
    let held = Held::open(&p, "counted", "proj", "asked.test").await;
    assert_eq!(held.allow(&p).await["exit_code"], 0);
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
        value(
            &text,
            "paddock_egress_decisions_total{decision=\"denied\",by=\"rule\"}"
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "paddock_egress_decisions_total{decision=\"verdict_allow\",by=\"person\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&text, "paddock_hold_seconds_count{ending=\"allowed\"}"),
        1.0
    );
    assert_eq!(value(&text, "paddock_clearance_queue_drops_total"), 0.0);
    assert!(value(&text, "paddock_store_bytes") > 0.0);
    assert!(
        text.lines()
            .any(|l| l.starts_with("paddock_egress_rule_decisions_total{rule=\"")),
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

/// Debian's prometheus, scraping one paddock with a bearer token every
/// second, on a loopback port of its own; killed when dropped.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn scraping(target: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token).unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: paddock\n    authorization:\n\
                 \x20     credentials_file: {}\n    static_configs:\n\
                 \x20     - targets: ['{target}']\n",
                token_file.display()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("prometheus (Debian's) is installed by scripts/ensure-env");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The value of an instant query's single series, once it has one.
    async fn query(&self, query: &str) -> Option<f64> {
        let res = crate::common::http()
            .post(format!("{}/api/v1/query", self.url))
            .form(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = res.json().await.ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_paddock_with_a_viewer_token() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    create_box(&p, "scraped", "proj").await;
    let (_, viewer) = p.mint(&["viewer"], None).await;
    let target = p.url.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::scraping(&target, &viewer);
    // up is 1 only when a scrape succeeded: authorised and parsed whole.
    wait_for(
        "prometheus scraping paddock",
        Duration::from_secs(60),
        || prometheus.query("up{job=\"paddock\"} == 1"),
    )
    .await;
    let created = wait_for(
        "the create, as prometheus stored it",
        Duration::from_secs(30),
        || prometheus.query("paddock_box_creates_total{outcome=\"ok\"}"),
    )
    .await;
    assert_eq!(created, 1.0);
    let ready = prometheus
        .query("paddock_boxes{state=\"ready\"}")
        .await
        .expect("boxes by state, stored");
    assert_eq!(ready, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_counting_off_metrics_say_so() {
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[metrics]\nenabled = false\n".into(),
        ..Options::default()
    });
    let (status, body) = p.get("/metrics").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[metrics] enabled = false"),
        "{body}"
    );
}
