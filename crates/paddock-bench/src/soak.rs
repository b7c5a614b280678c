//! `scripts/bench --soak`: paddock driven at a steady rate for a long
//! while — a box made, used and destroyed, connections through the
//! gateway, a held connection decided — while its resident memory, open
//! descriptors, threads, tokio tasks and child processes are sampled. The
//! goal is flat: after the warm-up (the first quarter), the last quarter
//! may not be above the second by more than a tenth (memory) or by more
//! than a handful (descriptors, tasks).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use paddock_clearance::varlink::VarlinkClient;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::egress_suite::{Clearance, Route, bench_box, echo_at, held_round, open, rest};
use crate::{Args, Server};

/// One cycle's work every this long.
const CYCLE: Duration = Duration::from_secs(5);
/// Connections through the gateway per cycle.
const CONNECTIONS_PER_CYCLE: usize = 20;

/// One sample of the server's footprint.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Footprint {
    pub at_secs: u64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    pub tasks: u64,
    pub children: u64,
    /// Memory SQLite holds (its page cache grows with the store, to a cap).
    pub store_kib: u64,
    /// Anonymous memory (the heap; RSS also counts the binary's pages).
    pub anon_kib: u64,
}

fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A gauge's value from `/metrics` text (summed over its label sets).
fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn sample(
    server: &Server,
    http: &reqwest::Client,
    started: Instant,
) -> anyhow::Result<Footprint> {
    let pid = server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await?
        .text()
        .await?;
    Ok(Footprint {
        at_secs: started.elapsed().as_secs(),
        rss_kib: status_field(&status, "VmRSS:"),
        fds,
        threads: status_field(&status, "Threads:"),
        tasks: gauge(&metrics, "paddock_runtime_alive_tasks"),
        children: gauge(&metrics, "paddock_children_running"),
        store_kib: gauge(&metrics, "paddock_store_memory_bytes") / 1024,
        anon_kib: status_field(&rollup, "Anonymous:"),
    })
}

/// What every cycle drives: the long-lived box's gateway, the targets
/// behind it, and the subscriber and client that decide its holds.
struct SteadyLoad {
    proxy: SocketAddr,
    echo_addr: SocketAddr,
    held_target: SocketAddr,
    rx: crate::subscribers::Arrivals,
    calls: VarlinkClient,
}

/// The long-lived box every cycle goes through.
const STEADY_BOX: &str = "soak-steady";

/// One cycle: a box made, used and destroyed; connections through the
/// long-lived box's gateway; one held connection allowed.
async fn cycle(
    n: u64,
    server: &Server,
    http: &reqwest::Client,
    load: &mut SteadyLoad,
) -> anyhow::Result<()> {
    let churn = format!("soak-{n}");
    let boxes = format!("{}/api/v1/boxes", server.url);
    rest(
        http,
        reqwest::Method::POST,
        boxes.clone(),
        json!({"project": "bench", "box_id": churn}),
    )
    .await?;
    rest(
        http,
        reqwest::Method::POST,
        format!("{boxes}/{churn}/exec"),
        json!({"command": "true"}),
    )
    .await?;
    for _ in 0..CONNECTIONS_PER_CYCLE {
        let mut s = open(Route::Proxy(load.proxy), load.echo_addr).await?;
        s.write_all(b"x").await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
    }
    held_round(
        load.proxy,
        load.held_target,
        STEADY_BOX,
        1,
        &mut load.rx,
        &mut load.calls,
    )
    .await?;
    rest(
        http,
        reqwest::Method::DELETE,
        format!("{boxes}/{churn}"),
        serde_json::Value::Null,
    )
    .await?;
    Ok(())
}

fn mean(samples: &[Footprint], field: impl Fn(&Footprint) -> u64) -> f64 {
    samples.iter().map(|s| field(s) as f64).sum::<f64>() / samples.len().max(1) as f64
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let minutes = args.soak_minutes;
    let server = Server::start(args, "[egress]\nhold_timeout_secs = 60\n")?;
    let http = crate::http_client();
    let proxy = bench_box(&http, &server.url, STEADY_BOX).await?;
    let socket = server.dir().join("run/clearance.sock");
    let clearance = Clearance {
        server_url: server.url.clone(),
        socket: socket.clone(),
        http: http.clone(),
        box_id: STEADY_BOX.into(),
    };
    let (_subscribers, rx) = clearance.subscribers(1).await?;
    let mut load = SteadyLoad {
        proxy,
        echo_addr: echo_at("127.0.0.1:0").await?,
        held_target: echo_at("127.0.0.2:0").await?,
        rx,
        calls: VarlinkClient::connect(&socket).await?,
    };

    println!(
        "\nsoak: {minutes} min; each {} s a box made, used and destroyed, {CONNECTIONS_PER_CYCLE} connections, one hold decided",
        CYCLE.as_secs()
    );
    println!(
        "{:>7} {:>10} {:>6} {:>8} {:>7} {:>9}",
        "t", "rss", "fds", "threads", "tasks", "children"
    );
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let sample_every = Duration::from_secs((minutes * 60 / 40).clamp(10, 90));
    let mut next_sample = started;
    let mut samples = Vec::new();
    let mut n = 0u64;
    while Instant::now() < end {
        let due = started + CYCLE * n as u32;
        tokio::time::sleep_until(due.into()).await;
        cycle(n, &server, &http, &mut load).await?;
        n += 1;
        if Instant::now() >= next_sample {
            let s = sample(&server, &http, started).await?;
            println!(
                "{:>6}s {:>6.1} MiB {:>6} {:>8} {:>7} {:>9}",
                s.at_secs,
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.threads,
                s.tasks,
                s.children
            );
            samples.push(s);
            next_sample += sample_every;
        }
    }
    samples.push(sample(&server, &http, started).await?);
    let quarter = (samples.len() / 4).max(1);
    let second = &samples[quarter..(2 * quarter).min(samples.len())];
    let last = &samples[samples.len().saturating_sub(quarter)..];
    println!("soak: {n} cycles; second quarter vs last quarter (means):");
    let rss = (mean(second, |s| s.rss_kib), mean(last, |s| s.rss_kib));
    println!(
        "  rss {:.1} MiB -> {:.1} MiB = {:.3}x  (goal <= 1.10x)",
        rss.0 / 1024.0,
        rss.1 / 1024.0,
        rss.1 / rss.0
    );
    // Where a climb comes from: the heap, and how much of it is SQLite's
    // cache filling as the store grows (to its cap) rather than a leak.
    let heap = (mean(second, |s| s.anon_kib), mean(last, |s| s.anon_kib));
    let cache = (mean(second, |s| s.store_kib), mean(last, |s| s.store_kib));
    println!(
        "  heap {:.2} MiB -> {:.2} MiB, of which SQLite's cache {:.2} MiB -> {:.2} MiB; the rest {:.2} MiB -> {:.2} MiB = {:.3}x",
        heap.0 / 1024.0,
        heap.1 / 1024.0,
        cache.0 / 1024.0,
        cache.1 / 1024.0,
        (heap.0 - cache.0) / 1024.0,
        (heap.1 - cache.1) / 1024.0,
        (heap.1 - cache.1) / (heap.0 - cache.0)
    );
    for (label, field) in [
        ("fds", (|s: &Footprint| s.fds) as fn(&Footprint) -> u64),
        ("threads", |s| s.threads),
        ("tasks", |s| s.tasks),
        ("children", |s| s.children),
    ] {
        let (a, b) = (mean(second, field), mean(last, field));
        println!("  {label:<8} {a:.1} -> {b:.1}  (goal: within +5)");
    }
    crate::record::soak(&samples, n);
    Ok(())
}
