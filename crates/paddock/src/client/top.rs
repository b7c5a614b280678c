//! `paddock box top`: two readings of every running box's usage, the CPU
//! share taken from the CPU time spent between them (as `docker stats`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use super::http::Client;
use super::table;

const MIB: f64 = 1024.0 * 1024.0;

async fn reading(client: &Client) -> anyhow::Result<(Instant, Vec<Value>)> {
    let list: Value = client
        .call(Method::GET, "/api/v1/boxes?usage=true", None)
        .await?;
    let at = Instant::now();
    Ok((at, list["boxes"].as_array().cloned().unwrap_or_default()))
}

/// CPU share in percent of one CPU (a box using two CPUs shows 200).
fn cpu_percent(before_ns: u64, after_ns: u64, interval: Duration) -> f64 {
    let spent = after_ns.saturating_sub(before_ns) as f64;
    let interval = interval.as_nanos().max(1) as f64;
    (spent / interval * 1000.0).round() / 10.0
}

pub async fn top(client: &Client, interval_secs: f64, json_out: bool) -> anyhow::Result<()> {
    if !(interval_secs.is_finite() && (0.1..=60.0).contains(&interval_secs)) {
        bail!("--interval must be between 0.1 and 60 seconds");
    }
    let (first_at, first) = reading(client).await?;
    let before: HashMap<String, u64> = first
        .iter()
        .filter_map(|b| {
            Some((
                b["box_id"].as_str()?.to_owned(),
                b["usage"]["cpu_ns"].as_u64()?,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(interval_secs)).await;
    let (second_at, second) = reading(client).await?;
    let interval = second_at - first_at;
    let rows: Vec<Value> = second
        .iter()
        .filter(|b| b["usage"].is_object())
        .map(|b| {
            let id = b["box_id"].as_str().unwrap_or_default();
            let usage = &b["usage"];
            let cpu = before
                .get(id)
                .zip(usage["cpu_ns"].as_u64())
                .map(|(before, after)| cpu_percent(*before, after, interval));
            json!({
                "box_id": id,
                "project": b["project"],
                "cpu_percent": cpu,
                "memory_bytes": usage["memory_bytes"],
                "memory_limit_bytes": usage["memory_limit_bytes"],
                "pids": usage["pids"],
            })
        })
        .collect();
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mib = |v: &Value| format!("{:.1} MiB", v.as_u64().unwrap_or(0) as f64 / MIB);
            vec![
                table::cell(&r["box_id"]),
                table::cell(&r["project"]),
                r["cpu_percent"]
                    .as_f64()
                    .map_or("-".to_owned(), |c| format!("{c:.1}%")),
                mib(&r["memory_bytes"]),
                mib(&r["memory_limit_bytes"]),
                r["pids"].to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["ID", "PROJECT", "CPU", "MEMORY", "LIMIT", "PIDS"], &cells)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_is_of_one_cpu() {
        let second = Duration::from_secs(1);
        assert_eq!(cpu_percent(0, 500_000_000, second), 50.0);
        assert_eq!(cpu_percent(0, 2_000_000_000, second), 200.0);
        assert_eq!(
            cpu_percent(10, 5, second),
            0.0,
            "a restart resets the counter"
        );
    }
}
