//! `paddock status`: the worldview for a person — health, boxes, networks,
//! held requests, subscribers — from one request. Exits 1 when a
//! component is down, so a script or a timer can alert on it.

use std::fmt::Write as _;
use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use super::http::{Client, Connection};
use super::table::{cell, render};

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Connection,
    /// Print the worldview as JSON, as `GET /api/v1/worldview` answers it.
    #[arg(long)]
    json: bool,
}

pub async fn run_status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    let view: Value = client
        .call(Method::GET, "/api/v1/worldview", None::<&Value>)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", describe(&view));
    }
    Ok(if view["status"] == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn uptime(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// The worldview as a person reads it.
fn describe(view: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "paddock {} · instance {} · up {} · {}",
        cell(&view["version"]),
        cell(&view["instance"]),
        uptime(view["uptime_secs"].as_u64().unwrap_or(0)),
        cell(&view["status"])
    );
    let components: Vec<String> = view["components"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, c)| match c["error"].as_str() {
            Some(error) => format!("{name} DOWN ({error})"),
            None => format!("{name} ok"),
        })
        .collect();
    let _ = writeln!(out, "components: {}", components.join(" · "));

    let boxes = list(&view["boxes"]);
    let _ = writeln!(out, "\nboxes: {}", boxes.len());
    if !boxes.is_empty() {
        let network_of = |id: &str| {
            list(&view["networks"]["held"])
                .iter()
                .find(|n| n["box_id"] == id)
                .map(|n| cell(&n["gateway"]))
                .unwrap_or_default()
        };
        let rows: Vec<Vec<String>> = boxes
            .iter()
            .map(|b| {
                let id = cell(&b["box_id"]);
                vec![
                    id.clone(),
                    cell(&b["project"]),
                    cell(&b["state"]),
                    cell(&b["shield"]),
                    network_of(&id),
                    cell(&b["image"]),
                ]
            })
            .collect();
        let headers = ["BOX", "PROJECT", "STATE", "SHIELD", "GATEWAY", "IMAGE"];
        let _ = writeln!(out, "{}", render(&headers, &rows));
    }
    let networks = &view["networks"];
    let held = list(&networks["held"]).len();
    match networks.get("spare") {
        Some(spare) => {
            let _ = writeln!(
                out,
                "networks: {held} held, {} spare, {} being made",
                list(spare).len(),
                networks["making"].as_u64().unwrap_or(0)
            );
        }
        None => {
            let _ = writeln!(out, "networks: {held} held");
        }
    }

    let pending = list(&view["pending"]);
    let _ = writeln!(out, "\nheld requests: {}", pending.len());
    if !pending.is_empty() {
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|p| {
                vec![
                    cell(&p["request_id"]),
                    cell(&p["container"]),
                    format!("{}:{}", cell(&p["dest"]), cell(&p["port"])),
                    cell(&p["times_blocked"]),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            render(&["REQUEST", "BOX", "DESTINATION", "ATTEMPTS"], &rows)
        );
    }

    let subscribers = list(&view["subscribers"]);
    let queued: u64 = subscribers
        .iter()
        .filter_map(|s| s["queued"].as_u64())
        .sum();
    let dropped: u64 = subscribers
        .iter()
        .filter_map(|s| s["dropped"].as_u64())
        .sum();
    let _ = writeln!(
        out,
        "subscribers: {} (events queued {queued}, lost to full queues {dropped})",
        subscribers.len()
    );
    describe_children(&mut out, &view["children"]);
    describe_spokes(&mut out, &view["spokes"]);
    out
}

/// Enrolled spokes and whether they are linked (shown to callers who see
/// every project).
fn describe_spokes(out: &mut String, spokes: &Value) {
    let spokes = list(spokes);
    if spokes.is_empty() {
        return;
    }
    let linked = spokes.iter().filter(|s| s["connected"] == true).count();
    let _ = writeln!(out, "spokes: {} enrolled, {linked} linked", spokes.len());
    let rows: Vec<Vec<String>> = spokes
        .iter()
        .map(|s| {
            let state = if s["revoked"] == true {
                "revoked".to_owned()
            } else if s["connected"] == true {
                format!(
                    "linked from {} (v{}, {}/{} boxes)",
                    cell(&s["link"]["peer"]),
                    cell(&s["link"]["version"]),
                    cell(&s["link"]["boxes"]),
                    cell(&s["link"]["max_boxes"])
                )
            } else {
                "not linked".to_owned()
            };
            vec![cell(&s["name"]), state]
        })
        .collect();
    let _ = writeln!(out, "{}", render(&["SPOKE", "STATE"], &rows));
}

/// The processes paddock runs, and the crashes among them lately (shown
/// to callers who see every project).
fn describe_children(out: &mut String, children: &Value) {
    if children.is_null() {
        return;
    }
    let running = list(&children["running"]);
    let _ = writeln!(out, "child processes: {}", running.len());
    if !running.is_empty() {
        let rows: Vec<Vec<String>> = running
            .iter()
            .map(|c| {
                vec![
                    cell(&c["pid"]),
                    cell(&c["kind"]),
                    cell(&c["name"]),
                    format!("{}s", cell(&c["age_secs"])),
                ]
            })
            .collect();
        let _ = writeln!(out, "{}", render(&["PID", "KIND", "NAME", "AGE"], &rows));
    }
    for crash in list(&children["recent_crashes"]) {
        let _ = writeln!(
            out,
            "crashed: {} {} (pid {}, signal {}) at {}",
            cell(&crash["kind"]),
            cell(&crash["name"]),
            cell(&crash["pid"]),
            cell(&crash["signal"]),
            cell(&crash["at"])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_worldview_reads_as_a_person_expects() {
        let view = json!({
            "version": "0.1.0", "instance": "i1", "uptime_secs": 3725, "status": "unavailable",
            "components": {"docker": {"ok": false, "error": "no socket"}, "store": {"ok": true}},
            "boxes": [{"box_id": "b1", "project": "p", "state": "ready", "shield": "up", "image": "busybox"}],
            "networks": {"held": [{"box_id": "b1", "network": "n1", "gateway": "10.0.0.1"}], "spare": ["n2"], "making": 0},
            "pending": [{"request_id": "r1", "container": "b1", "dest": "example.test", "port": 443, "times_blocked": 2}],
            "subscribers": [{"subscriber": 1, "queued": 3, "dropped": 1}],
            "children": {
                "running": [{"pid": 42, "kind": "hook", "name": "seed (create)", "age_secs": 3}],
                "recent_crashes": [{"kind": "git", "name": "import p", "pid": 7, "signal": 11, "at": "2026-12-03T10:00:00Z"}],
            },
            "spokes": [
                {"name": "gpu-1", "revoked": false, "connected": true,
                 "link": {"peer": "10.1.2.3:5000", "version": "0.1.0", "boxes": 2, "max_boxes": 8}},
                {"name": "old", "revoked": true, "connected": false, "link": null},
            ],
        });
        let text = describe(&view);
        assert!(
            text.starts_with("paddock 0.1.0 · instance i1 · up 1h 2m · unavailable\n"),
            "{text}"
        );
        assert!(
            text.contains("docker DOWN (no socket) · store ok"),
            "{text}"
        );
        assert!(
            text.contains("b1   p        ready  up      10.0.0.1  busybox"),
            "{text}"
        );
        assert!(
            text.contains("networks: 1 held, 1 spare, 0 being made"),
            "{text}"
        );
        assert!(text.contains("r1       b1   example.test:443  2"), "{text}");
        assert!(
            text.contains("subscribers: 1 (events queued 3, lost to full queues 1)"),
            "{text}"
        );
        assert!(text.contains("child processes: 1"), "{text}");
        assert!(text.contains("42   hook  seed (create)  3s"), "{text}");
        assert!(
            text.contains("crashed: git import p (pid 7, signal 11) at 2026-12-03T10:00:00Z"),
            "{text}"
        );
        assert!(text.contains("spokes: 2 enrolled, 1 linked"), "{text}");
        assert!(
            text.contains("gpu-1  linked from 10.1.2.3:5000 (v0.1.0, 2/8 boxes)"),
            "{text}"
        );
        assert!(text.contains("old    revoked"), "{text}");
    }

    #[test]
    fn uptime_carries_its_largest_units() {
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(61), "1m 1s");
        assert_eq!(uptime(90_000), "1d 1h");
    }
}

#[derive(clap::Args)]
pub struct VersionArgs {
    #[command(flatten)]
    conn: Connection,
}

/// `paddock version`: this CLI's version and API, and the server's, from
/// `/healthz`'s headers (which need no token).
pub async fn run_version(args: VersionArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.conn)?;
    println!(
        "client: paddock {} (API {})",
        env!("CARGO_PKG_VERSION"),
        paddock_http::version::API_VERSION
    );
    let response = client
        .request(Method::GET, "/healthz")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach paddock at {}: {e}", args.conn.url))?;
    let api = super::http::server_api(&response, &args.conn.url)?;
    let version = response
        .headers()
        .get(&paddock_http::version::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    println!("server: paddock {version} (API {api}) at {}", args.conn.url);
    Ok(ExitCode::SUCCESS)
}
