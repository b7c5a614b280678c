//! `--suite approvals`: how fast a held request reaches the people who
//! decide it, on one real paddock with one real box.
//!
//! - block → row: the agent asks ahead (`request_egress` over MCP), and
//!   the measured Chromium console's card for it enters the DOM (a
//!   MutationObserver stamps it with the page's high-resolution clock,
//!   which shares the epoch with ours). The MCP call itself is inside
//!   every figure; its round trip is printed as the floor.
//! - the same with 99 more feed clients speaking the console's protocol
//!   (sessions from links, the page's socket), run in this process.
//! - block → `Notify`: `paddock notify` on a private session bus with
//!   dunst, and `dbus-monitor` stamping each `Notify` call as the bus
//!   delivers it.
//! - the pending page holding 500 requests: from navigation start to the
//!   console's "paddock:snapshot-rendered" mark (every card in the DOM,
//!   its buttons live).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::lines::Lines;
use crate::stats::Samples;
use crate::{Args, Server, console_clients, http_client, mcp};

const BOX: &str = "appr";
const FEED_CLIENTS: usize = 99;
const LOAD_HELD: usize = 500;

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn ms(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0) / 1000.0)
}

/// Everything one measurement needs.
struct Bench {
    server: Server,
    http: reqwest::Client,
    agent: mcp::Client,
    round: usize,
}

impl Bench {
    /// Files one request ahead: it, when it was asked, and how long the
    /// call took.
    async fn block(&mut self) -> anyhow::Result<(Filed, f64, Duration)> {
        self.round += 1;
        let dest = format!("r{}.bench.example", self.round);
        let started = Instant::now();
        let asked_at = epoch_ms();
        let filed = self
            .agent
            .call(
                "request_egress",
                json!({"box_id": BOX, "destination": dest, "port": 443, "reason": "benchmark"}),
            )
            .await?;
        let took = started.elapsed();
        let id = filed["request_id"]
            .as_str()
            .with_context(|| format!("nothing was held: {filed}"))?
            .to_owned();
        Ok((Filed { id, dest }, asked_at, took))
    }

    /// Ends a request (deny, once), so the box never holds many.
    async fn end(&self, filed: &Filed) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/api/v1/egress/verdicts", self.server.url))
            .json(&json!({"container": BOX, "request_id": filed.id, "dest": filed.dest, "action": "deny", "scope": "once"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("ending {}: {}", filed.id, r.text().await?);
        }
        Ok(())
    }
}

/// A request filed ahead.
struct Filed {
    id: String,
    dest: String,
}

/// Block → card in the measured console, `n` times.
async fn rows(
    bench: &mut Bench,
    browser: &mut Lines,
    n: usize,
) -> anyhow::Result<(Samples, Samples)> {
    let (mut latency, mut floor) = (Samples::default(), Samples::default());
    for i in 0..=n {
        let (filed, asked_at, took) = bench.block().await?;
        let shown = browser.ask(&format!("shown {}", filed.id))?;
        let shown = shown.as_f64().context("no time for the card")?;
        bench.end(&filed).await?;
        if i > 0 {
            latency.push(ms(shown - asked_at));
            floor.push(took);
        }
    }
    Ok((latency, floor))
}

fn python() -> String {
    std::env::var("PADDOCK_BENCH_PYTHON").unwrap_or_else(|_| ".venv/bin/python3".into())
}

fn print_row(label: &str, samples: &Samples, goal: &str) {
    println!(
        "{label:<58} p50 {:>7.2} ms  p99 {:>7.2} ms  {goal}",
        samples.percentile_ms(50.0),
        samples.percentile_ms(99.0)
    );
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let server = Server::start(
        args,
        "[egress]\nhold_timeout_secs = 900\nmax_held_per_box = 2000\n",
    )?;
    let http = http_client();
    let r = http
        .post(format!("{}/api/v1/boxes", server.url))
        .json(&json!({"project": "bench", "box_id": BOX}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("creating the box: {}", r.text().await?);
    }
    let minted: Value = http
        .post(format!("{}/api/v1/tokens", server.url))
        .json(&json!({"name": "bench-agent", "capabilities": ["agent"]}))
        .send()
        .await?
        .json()
        .await?;
    let agent_token = minted["secret"].as_str().context("no agent token")?;
    let agent = mcp::Client::connect(&format!("{}/mcp", server.url), agent_token).await?;
    let mut bench = Bench {
        server,
        http,
        agent,
        round: 0,
    };
    let n = args.iterations.max(10) * 4;
    println!("paddock-bench approvals: {n} held requests per figure, box {BOX}");

    let mut cmd = Command::new(python());
    cmd.arg("crates/paddock-bench/console_timing.py");
    let mut browser = Lines::spawn(cmd)?;
    browser.wait_for("the browser", Duration::from_secs(60), |l| {
        l.contains("ready")
    })?;
    let link = console_clients::link(&bench.http, &bench.server.url).await?;
    browser.ask(&format!("open {link}"))?;

    let (alone, floor) = rows(&mut bench, &mut browser, n).await?;

    let mut feeds = Vec::new();
    for _ in 0..FEED_CLIENTS {
        let session = console_clients::session(&bench.http, &bench.server.url).await?;
        feeds.push(console_clients::feed(&bench.server.url, &session).await?);
    }
    let (crowded, _) = rows(&mut bench, &mut browser, n).await?;
    for feed in feeds {
        feed.abort();
    }

    let notify = notify_figures(&mut bench, &args.paddock, n).await?;

    for _ in 0..LOAD_HELD {
        bench.block().await?;
    }
    let mut load = Samples::default();
    for i in 0..=args.iterations.max(10) {
        let took = browser.ask(&format!("load /console {LOAD_HELD}"))?;
        if i > 0 {
            load.push(ms(took.as_f64().context("no load time")?));
        }
    }
    drop(browser);

    println!();
    print_row(
        "block -> row in the console (Chromium), alone",
        &alone,
        "goal p99 <= 50 ms",
    );
    print_row(
        &format!("block -> row, with {FEED_CLIENTS} more feed clients"),
        &crowded,
        "",
    );
    println!(
        "{:<58} {:.2}x (p99 with / p99 alone; goal <= 2x)",
        "  ratio",
        crowded.percentile_ms(99.0) / alone.percentile_ms(99.0)
    );
    print_row(
        "block -> Notify on the session bus (paddock notify)",
        &notify,
        "goal p99 <= 20 ms",
    );
    print_row(
        &format!("pending page with {LOAD_HELD} held: load to usable"),
        &load,
        "goal <= 300 ms",
    );
    print_row(
        "floor: the agent's request_egress round trip (MCP)",
        &floor,
        "inside every block figure",
    );
    bench.agent.close().await;
    Ok(())
}

/// Block → `Notify`, stamped by `dbus-monitor` on the bus.
async fn notify_figures(bench: &mut Bench, paddock: &str, n: usize) -> anyhow::Result<Samples> {
    let work = tempfile::tempdir()?;
    let session = Path::new("crates/paddock/tests/fixtures/desktop_session.sh");
    let socket = bench.server.dir().join("run/clearance.sock");
    let inner = format!(
        "dbus-monitor --session \"type='method_call',interface='org.freedesktop.Notifications',member='Notify'\" & \
         exec {} notify --socket {}",
        std::fs::canonicalize(paddock)?.display(),
        socket.display()
    );
    let mut cmd = Command::new("dbus-run-session");
    cmd.arg("--")
        .arg(session)
        .args(["sh", "-c", &inner])
        .env("DESKTOP_WORK", work.path());
    let desktop = Lines::spawn(cmd)?;
    desktop.wait_for("paddock notify", Duration::from_secs(60), |l| {
        l.contains("showing held requests")
    })?;
    let mut samples = Samples::default();
    for i in 0..=n {
        let (filed, asked_at, _) = bench.block().await?;
        let line = desktop.wait_for("a Notify call", Duration::from_secs(30), |l| {
            l.starts_with("method call time=") && l.contains("member=Notify")
        })?;
        let at: f64 = line
            .trim_start_matches("method call time=")
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .with_context(|| format!("no time in {line:?}"))?;
        bench.end(&filed).await?;
        // Its pop-up closing is not a Notify; nothing else is in between.
        if i > 0 {
            samples.push(ms(at * 1000.0 - asked_at));
        }
    }
    Ok(samples)
}
