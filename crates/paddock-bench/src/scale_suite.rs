//! `--suite scale`: a hub and a spoke as two paddock processes on this
//! machine, linked over mutual TLS. There is one Docker engine here, so
//! the spoke's boxes run on the same engine under the spoke's own
//! instance label; the hop measured is the link, not a network between
//! machines.
//!
//! - create → first exec through the hub on the spoke, against the same
//!   on the spoke's own API (goal ≤ 1.1×);
//! - a verdict at the hub → the first byte on the connection the spoke
//!   holds (goal p99 ≤ 10 ms), beside the same verdict given at the spoke
//!   itself — the floor, with no hop;
//! - 1,000 box rows across ten spokes, listed over the hub's REST (goal
//!   p99 ≤ 20 ms), beside a REST round trip that reads nothing as the
//!   floor. The rows are seeded into the hub's store, not made: a
//!   thousand real boxes do not fit on this machine. Their spokes are not
//!   linked, so the listing is the store's and the REST layer's alone.
//!
//! - REST get of one box on a hub whose store is PostgreSQL (a server the
//!   bench starts), against the same on the SQLite hub (reported).

use std::path::Path;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use paddock_clearance::varlink::VarlinkClient;
use paddock_store::{SpokeBoxRow, Store};
use serde_json::{Value, json};

use crate::egress_suite::{Clearance, echo_at, held_round, latency_row, rest};
use crate::stats::{Samples, ratio_row};
use crate::{Args, Server, http_client, timed_async};

const SPOKE: &str = "bench-spoke";
const SEEDED_ROWS: usize = 1_000;
const SEEDED_SPOKES: usize = 10;
const LIST_ROUNDS: usize = 300;
const HELD_ROUNDS: usize = 200;

/// A free loopback port (a race with another process taking it between
/// this probe and the hub's bind fails the start loudly).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The hub, and a spoke enrolled with it and linked.
struct Pair {
    hub: Server,
    spoke: Server,
    _spoke_dir: tempfile::TempDir,
}

async fn pair(args: &Args) -> anyhow::Result<Pair> {
    let port = free_port()?;
    let egress = "[egress]\nhold_timeout_secs = 60\n";
    let hub = Server::start_with_instance(
        args,
        &format!("[spokes]\nlisten = \"127.0.0.1:{port}\"\n{egress}"),
        "hub",
    )?;
    let http = http_client();
    let token = rest(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/spokes/tokens", hub.url),
        json!({"name": SPOKE}),
    )
    .await?;
    let token = token["token"].as_str().context("no enrolment token")?;
    let spoke_dir = tempfile::tempdir()?;
    let enrolled = Command::new(&args.paddock)
        .args([
            "spoke", "enroll", "--hub", &hub.url, "--token", token, "--dir",
        ])
        .arg(spoke_dir.path())
        .env_remove("PADDOCK_TOKEN")
        .output()?;
    if !enrolled.status.success() {
        bail!(
            "enrolling the spoke: {}",
            String::from_utf8_lossy(&enrolled.stderr)
        );
    }
    let role: Vec<String> = [
        "spoke",
        "--hub",
        &format!("https://127.0.0.1:{port}"),
        "--max-boxes",
        "64",
        "--dir",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([spoke_dir.path().display().to_string()])
    .collect();
    let spoke = Server::launch_as(args, egress, "spoke", false, &role)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: Value = http
            .get(format!("{}/api/v1/spokes", hub.url))
            .send()
            .await?
            .json()
            .await?;
        let linked = listed["spokes"].as_array().is_some_and(|all| {
            all.iter()
                .any(|s| s["name"] == SPOKE && s["connected"] == true)
        });
        if linked {
            break;
        }
        if Instant::now() > deadline {
            bail!("the spoke did not link within 30 s: {listed}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Pair {
        hub,
        spoke,
        _spoke_dir: spoke_dir,
    })
}

async fn create_and_exec(
    http: &reqwest::Client,
    url: &str,
    body: Value,
    box_id: &str,
) -> anyhow::Result<()> {
    rest(
        http,
        reqwest::Method::POST,
        format!("{url}/api/v1/boxes"),
        body,
    )
    .await?;
    rest(
        http,
        reqwest::Method::POST,
        format!("{url}/api/v1/boxes/{box_id}/exec"),
        json!({"command": "true"}),
    )
    .await?;
    Ok(())
}

async fn destroy(http: &reqwest::Client, url: &str, box_id: &str) -> anyhow::Result<()> {
    let r = http
        .delete(format!("{url}/api/v1/boxes/{box_id}"))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("destroying {box_id}: {}", r.text().await?);
    }
    Ok(())
}

/// Create → first exec, through the hub and on the spoke directly, in
/// alternating rounds (one warm-up round each, not recorded).
async fn create_exec(args: &Args, p: &Pair) -> anyhow::Result<()> {
    let http = http_client();
    let (mut through, mut direct) = (Samples::default(), Samples::default());
    for i in 0..=args.iterations {
        let (h, d) = (format!("via-hub-{i}"), format!("direct-{i}"));
        let (took_hub, ()) = timed_async(create_and_exec(
            &http,
            &p.hub.url,
            json!({"project": "bench", "box_id": h, "spoke": SPOKE}),
            &h,
        ))
        .await?;
        let (took_direct, ()) = timed_async(create_and_exec(
            &http,
            &p.spoke.url,
            json!({"project": "bench", "box_id": d}),
            &d,
        ))
        .await?;
        destroy(&http, &p.hub.url, &h).await?;
        destroy(&http, &p.spoke.url, &d).await?;
        if i > 0 {
            through.push(took_hub);
            direct.push(took_direct);
        }
    }
    ratio_row(
        "create -> first exec, hub -> spoke vs spoke",
        &through,
        &direct,
        "<=1.1x",
    );
    Ok(())
}

/// A verdict at the hub against one at the spoke, each to the first
/// byte on the connection the spoke holds.
async fn verdicts(p: &Pair) -> anyhow::Result<()> {
    let http = http_client();
    let box_id = "held-far";
    rest(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/boxes", p.hub.url),
        json!({"project": "bench", "box_id": box_id, "spoke": SPOKE}),
    )
    .await?;
    // The rules are the spoke's: its gateway holds the connection.
    rest(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/egress/rules", p.spoke.url),
        json!({"project": "bench", "target": "127.0.0.2/32", "action": "ask"}),
    )
    .await?;
    let out = rest(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/boxes/{box_id}/exec", p.hub.url),
        json!({"command": "echo $HTTP_PROXY"}),
    )
    .await?;
    let proxy = out["stdout"]
        .as_str()
        .unwrap_or("")
        .trim()
        .trim_start_matches("http://")
        .parse()
        .context("the box's proxy address")?;
    let target = echo_at("127.0.0.2:0").await?;
    let mut rows = Vec::new();
    for (label, server) in [("at the hub", &p.hub), ("at the spoke (floor)", &p.spoke)] {
        // Events are poked on the spoke (a shield raised there): the hub
        // sees them as the spoke forwards them.
        let socket = server.dir().join("run/clearance.sock");
        let clearance = Clearance {
            server_url: p.spoke.url.clone(),
            socket: socket.clone(),
            http: http.clone(),
            box_id: box_id.to_owned(),
        };
        let (_subscribers, mut rx) = clearance.subscribers(1).await?;
        let mut calls = VarlinkClient::connect(&socket).await?;
        let mut to_byte = Samples::default();
        for _ in 0..HELD_ROUNDS {
            let (_, first_byte) = held_round(proxy, target, box_id, 1, &mut rx, &mut calls).await?;
            to_byte.push(first_byte);
        }
        rows.push((label, to_byte));
    }
    for (label, samples) in &rows {
        let goal = if label.starts_with("at the hub") {
            "p99<=10ms"
        } else {
            ""
        };
        latency_row(
            &format!("verdict {label} -> first byte on the spoke"),
            samples,
            goal,
        );
    }
    Ok(())
}

/// `SEEDED_ROWS` rows of boxes on `SEEDED_SPOKES` spokes, written into
/// the hub's store as the hub writes them.
fn seed(data_dir: &Path) -> anyhow::Result<()> {
    seed_into(&Store::open(&data_dir.join("paddock.db"))?)
}

/// The seeded spoke-box rows (`seeded-0000` …), into any store.
pub(crate) fn seed_into(store: &Store) -> anyhow::Result<()> {
    for i in 0..SEEDED_ROWS {
        let id = format!("seeded-{i:04}");
        let spoke = format!("seed-{}", i % SEEDED_SPOKES);
        let view = json!({
            "box_id": id, "project": format!("p{}", i % 20), "image": "paddock-bench-box:latest",
            "description": "", "state": "ready", "created_at": "2026-12-03T00:00:00Z",
            "container": format!("paddock-seeded-{i}"), "spoke": spoke,
        });
        let written = store.insert_spoke_box(&SpokeBoxRow {
            id,
            spoke,
            project: format!("p{}", i % 20),
            view_json: view.to_string(),
            created_at_ms: i as i64,
            updated_at_ms: i as i64,
        })?;
        if !written {
            bail!("seeded row {i} was refused");
        }
    }
    Ok(())
}

async fn listing(p: &Pair) -> anyhow::Result<()> {
    seed(&p.hub.dir().join("data"))?;
    let http = http_client();
    let (mut list, mut floor) = (Samples::default(), Samples::default());
    for round in 0..=LIST_ROUNDS {
        let started = Instant::now();
        let listed: Value = http
            .get(format!("{}/api/v1/boxes", p.hub.url))
            .send()
            .await?
            .json()
            .await?;
        let took = started.elapsed();
        let started = Instant::now();
        http.get(format!("{}/api/v1/whoami", p.hub.url))
            .send()
            .await?
            .bytes()
            .await?;
        let floor_took = started.elapsed();
        let n = listed["boxes"].as_array().map_or(0, Vec::len);
        if n < SEEDED_ROWS {
            bail!("the hub listed {n} boxes, not {SEEDED_ROWS}");
        }
        if round > 0 {
            list.push(took);
            floor.push(floor_took);
        }
    }
    latency_row(
        &format!("list {SEEDED_ROWS} boxes on {SEEDED_SPOKES} spokes (seeded)"),
        &list,
        "p99<=20ms",
    );
    latency_row("  floor: REST round trip (whoami)", &floor, "");
    Ok(())
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let p = pair(args).await?;
    println!(
        "\nscale: hub and spoke on one machine and one Docker engine, {} rounds",
        args.iterations
    );
    create_exec(args, &p).await?;
    verdicts(&p).await?;
    listing(&p).await?;
    crate::store_suite::rest_get(args, &p.hub).await?;
    Ok(())
}
