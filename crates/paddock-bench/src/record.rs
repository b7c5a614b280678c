//! Every figure a run prints is also appended to the history
//! (`docs/bench/history.jsonl`, or `PADDOCK_BENCH_HISTORY`), with its
//! baseline from the same run and the machine it ran on; `--report`
//! turns the history into BENCHMARKS.md and an SVG per figure, each
//! figure beside its baseline over runs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::soak::Footprint;

struct Run {
    id: String,
}

static RUN: OnceLock<Run> = OnceLock::new();
/// The suite now running (figures are grouped by it).
static SECTION: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

pub(crate) fn section(suite: &str) {
    if let Ok(mut s) = SECTION.lock() {
        *s = suite.to_owned();
    }
}

fn current_section() -> String {
    SECTION.lock().map(|s| s.clone()).unwrap_or_default()
}

pub(crate) fn history_path() -> PathBuf {
    std::env::var_os("PADDOCK_BENCH_HISTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docs/bench/history.jsonl"))
}

fn append(line: &Value) {
    let path = history_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("paddock-bench: cannot append to {}: {e}", path.display());
    }
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// What the figures were measured on.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": command("uname", &["-r"]),
        "docker": command("docker", &["version", "--format", "{{.Server.Version}}"]),
        "paddock": env!("CARGO_PKG_VERSION"),
        "commit": command("git", &["rev-parse", "--short", "HEAD"]),
    })
}

/// Starts a run: its id and the machine go on the record first.
pub(crate) fn begin(suite: &str) -> anyhow::Result<()> {
    let id =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    append(&json!({"kind": "run", "run": id, "suite": suite, "machine": machine()}));
    let _ = RUN.set(Run { id });
    section(suite);
    Ok(())
}

/// One figure: `value` beside `baseline` (what it is measured against in
/// the same run) and, where there is one, `floor` (this machine's bound).
pub(crate) fn figure(
    name: &str,
    unit: &str,
    value: f64,
    baseline: Option<f64>,
    floor: Option<f64>,
    goal: &str,
) {
    let Some(run) = RUN.get() else {
        return;
    };
    if !value.is_finite() {
        return;
    }
    append(&json!({
        "kind": "figure", "run": run.id, "suite": current_section(), "name": name.trim(), "unit": unit,
        "value": value, "baseline": baseline, "floor": floor, "goal": goal.trim(),
    }));
}

pub(crate) fn soak(samples: &[Footprint], cycles: u64) {
    let Some(run) = RUN.get() else {
        return;
    };
    append(&json!({"kind": "soak", "run": run.id, "cycles": cycles, "samples": samples}));
}

pub(crate) fn report() -> anyhow::Result<()> {
    crate::report::write(&history_path())
}
