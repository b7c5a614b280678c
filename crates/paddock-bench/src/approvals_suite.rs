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

    /// When the hub held a request (its `first_seen`, to the microsecond),
    /// in epoch milliseconds: the moment the request was blocked.
    async fn held_at(&self, filed: &Filed) -> anyhow::Result<f64> {
        let pending: Value = self
            .http
            .get(format!("{}/api/v1/egress/pending", self.server.url))
            .send()
            .await?
            .json()
            .await?;
        let first_seen = pending["requests"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["request_id"] == filed.id.as_str()))
            .and_then(|r| r["first_seen"].as_str())
            .with_context(|| format!("{} is not pending", filed.id))?;
        let at = time::OffsetDateTime::parse(
            first_seen,
            &time::format_description::well_known::Rfc3339,
        )?;
        Ok(at.unix_timestamp_nanos() as f64 / 1e6)
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

/// Figures from the hub holding a request, and from the agent asking.
#[derive(Default)]
struct Figures {
    from_hold: Samples,
    from_asking: Samples,
    /// The MCP call's round trip.
    asking: Samples,
}

impl Figures {
    fn push(&mut self, seen_at: f64, held_at: f64, asked_at: f64, took: Duration) {
        self.from_hold.push(ms(seen_at - held_at));
        self.from_asking.push(ms(seen_at - asked_at));
        self.asking.push(took);
    }
}

/// Block → card in the measured console, `n` times.
async fn rows(bench: &mut Bench, browser: &mut Lines, n: usize) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    for i in 0..=n {
        let (filed, asked_at, took) = bench.block().await?;
        let shown = browser.ask(&format!("shown {}", filed.id))?;
        let shown = shown.as_f64().context("no time for the card")?;
        let held_at = bench.held_at(&filed).await?;
        bench.end(&filed).await?;
        if i > 0 {
            figures.push(shown, held_at, asked_at, took);
        }
    }
    Ok(figures)
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

    // The pop-ups first, with no browser running beside them.
    let notify = notify_figures(&mut bench, &args.paddock, n).await?;

    let mut cmd = Command::new(python());
    cmd.arg("crates/paddock-bench/console_timing.py");
    // Chromium's profile and temporary files go where the bench removes them.
    let scratch = tempfile::tempdir()?;
    cmd.env("TMPDIR", scratch.path());
    let mut browser = Lines::spawn(cmd)?;
    browser.wait_for("the browser", Duration::from_secs(60), |l| {
        l.contains("ready")
    })?;
    let link = console_clients::link(&bench.http, &bench.server.url).await?;
    browser.ask(&format!("open {link}"))?;

    let alone = rows(&mut bench, &mut browser, n).await?;

    let mut feeds = Vec::new();
    for _ in 0..FEED_CLIENTS {
        let session = console_clients::session(&bench.http, &bench.server.url).await?;
        feeds.push(console_clients::feed(&bench.server.url, &session).await?);
    }
    let crowded = rows(&mut bench, &mut browser, n).await?;
    for feed in feeds {
        feed.abort();
    }

    // The floor: the same page with nothing held (page, script, socket).
    let mut empty = Samples::default();
    for i in 0..=args.iterations.max(10) {
        let took = browser.ask("load /console 0")?;
        if i > 0 {
            empty.push(ms(took.as_f64().context("no load time")?));
        }
    }
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
    println!("from the moment the hub held the request (its first_seen):");
    print_row(
        "block -> row in the console (Chromium), alone",
        &alone.from_hold,
        "goal p99 <= 50 ms",
    );
    print_row(
        &format!("block -> row, with {FEED_CLIENTS} more feed clients"),
        &crowded.from_hold,
        "",
    );
    println!(
        "{:<58} {:.2}x (p99 with / p99 alone; goal <= 2x)",
        "  ratio",
        crowded.from_hold.percentile_ms(99.0) / alone.from_hold.percentile_ms(99.0)
    );
    print_row(
        "block -> Notify on the session bus (paddock notify)",
        &notify.from_hold,
        "goal p99 <= 20 ms",
    );
    print_row(
        &format!("pending page with {LOAD_HELD} held: load to usable"),
        &load,
        "goal <= 300 ms",
    );
    print_row("  floor: the same page with nothing held", &empty, "");
    println!("from the agent's request_egress call (the MCP round trip included):");
    print_row("  block -> row, alone", &alone.from_asking, "");
    print_row(
        &format!("  block -> row, {FEED_CLIENTS} more clients"),
        &crowded.from_asking,
        "",
    );
    print_row("  block -> Notify", &notify.from_asking, "");
    let mut asking = Samples::default();
    for f in [&alone, &crowded, &notify] {
        asking.extend(&f.asking);
    }
    print_row(
        "floor: the request_egress round trip itself (MCP)",
        &asking,
        "",
    );
    bench.agent.close().await;
    Ok(())
}

/// Block → `Notify`, stamped by `dbus-monitor` on the bus.
async fn notify_figures(bench: &mut Bench, paddock: &str, n: usize) -> anyhow::Result<Figures> {
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
    let mut figures = Figures::default();
    for i in 0..=n {
        let (filed, asked_at, took) = bench.block().await?;
        let line = desktop.wait_for("a Notify call", Duration::from_secs(30), |l| {
            l.starts_with("method call time=") && l.contains("member=Notify")
        })?;
        let at: f64 = line
            .trim_start_matches("method call time=")
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .with_context(|| format!("no time in {line:?}"))?;
        let held_at = bench.held_at(&filed).await?;
        bench.end(&filed).await?;
        // Its pop-up closing is not a Notify; nothing else is in between.
        if i > 0 {
            figures.push(at * 1000.0, held_at, asked_at, took);
        }
    }
    Ok(figures)
}
