//! BENCHMARKS.md from the history: per suite, each figure's latest value
//! beside its baseline (and floor) from the same run, and an SVG of it
//! over runs; the soak's footprint over time; the machine described.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// One figure in one run.
struct Point {
    run: String,
    value: f64,
    baseline: Option<f64>,
    floor: Option<f64>,
}

#[derive(Default)]
struct Figure {
    suite: String,
    unit: String,
    goal: String,
    points: Vec<Point>,
}

const PLOTS: &str = "docs/bench";

pub(crate) fn write(history: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(history).with_context(|| {
        format!(
            "no history at {}: run scripts/bench first",
            history.display()
        )
    })?;
    let mut figures: BTreeMap<(String, String), Figure> = BTreeMap::new();
    let mut machine = Value::Null;
    let mut soak = Value::Null;
    let mut runs = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).context("a history line is not JSON")?;
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        match v["kind"].as_str() {
            Some("run") => {
                machine = v["machine"].clone();
                runs += 1;
            }
            Some("figure") => {
                let f = figures.entry((s("suite"), s("name"))).or_default();
                f.suite = s("suite");
                f.unit = s("unit");
                f.goal = s("goal");
                f.points.push(Point {
                    run: s("run"),
                    value: v["value"].as_f64().unwrap_or(f64::NAN),
                    baseline: v["baseline"].as_f64(),
                    floor: v["floor"].as_f64(),
                });
            }
            Some("soak") => soak = v,
            _ => {}
        }
    }
    std::fs::create_dir_all(PLOTS)?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmarks\n\nWritten by `scripts/bench --report` from `{}` ({runs} runs so far); every \
         `scripts/bench` run appends its figures there. Each figure stands beside its baseline \
         measured in the same run — plain Docker, a bare relay, squid, paddock with counting off — \
         and, where the suite measures one, this machine's floor, so the ratios carry across \
         machines where the absolute times do not. Each plot shows the figure (blue), its \
         baseline (grey) and floor (orange) over the runs.\n",
        history.display()
    );
    describe_machine(&mut md, &machine);
    describe_suites(&mut md, &figures)?;
    describe_soak(&mut md, &soak)?;
    std::fs::write("BENCHMARKS.md", md)?;
    println!(
        "wrote BENCHMARKS.md and {} plots in {PLOTS}/",
        figures.len()
    );
    Ok(())
}

/// Per suite: a table of each figure's latest value beside its baseline,
/// then each figure's plot over runs.
fn describe_suites(
    md: &mut String,
    figures: &BTreeMap<(String, String), Figure>,
) -> anyhow::Result<()> {
    let mut suites: BTreeMap<&str, Vec<(&str, &Figure)>> = BTreeMap::new();
    for ((suite, name), f) in figures {
        suites
            .entry(suite.as_str())
            .or_default()
            .push((name.as_str(), f));
    }
    for (suite, list) in suites {
        let _ = writeln!(md, "## {suite}\n");
        let _ = writeln!(
            md,
            "| figure | latest | baseline | ratio | goal | runs |\n|---|---:|---:|---:|---|---:|"
        );
        for (name, f) in &list {
            let last = f.points.last().expect("a figure has a point");
            let ratio = last
                .baseline
                .map_or(String::new(), |b| format!("{:.3}x", last.value / b));
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {ratio} | {} | {} |",
                number(last.value, &f.unit),
                last.baseline.map_or(String::new(), |b| number(b, &f.unit)),
                f.goal,
                f.points.len()
            );
        }
        md.push('\n');
        for (name, f) in &list {
            let file = format!("{PLOTS}/{}.svg", slug(&format!("{suite}-{name}")));
            std::fs::write(&file, figure_plot(name, f))?;
            let _ = writeln!(md, "![{name}]({file})");
        }
        md.push('\n');
    }
    Ok(())
}

fn describe_machine(md: &mut String, machine: &Value) {
    let _ = writeln!(md, "## The machine (latest run)\n");
    for (label, key) in [
        ("CPU", "cpu"),
        ("cores", "cores"),
        ("memory (GiB)", "memory_gib"),
        ("kernel", "kernel"),
        ("Docker engine", "docker"),
        ("paddock", "paddock"),
        ("commit", "commit"),
    ] {
        let value = match &machine[key] {
            Value::String(s) => s.clone(),
            Value::Null => "unknown".into(),
            other => other.to_string(),
        };
        let _ = writeln!(md, "- {label}: {value}");
    }
    md.push('\n');
}

fn describe_soak(md: &mut String, soak: &Value) -> anyhow::Result<()> {
    let Some(samples) = soak["samples"].as_array().filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let field = |k: &str| -> Vec<f64> {
        samples
            .iter()
            .map(|s| s[k].as_f64().unwrap_or(0.0))
            .collect()
    };
    let at: Vec<f64> = field("at_secs");
    let minutes = at.last().copied().unwrap_or(0.0) / 60.0;
    let _ = writeln!(
        md,
        "## Soak (latest, run {})\n\n{} cycles over {minutes:.0} min: each a box made, used and \
         destroyed, connections through the gateway and a held connection decided. Goal: flat.\n",
        soak["run"].as_str().unwrap_or(""),
        soak["cycles"]
    );
    let rss: Vec<f64> = field("rss_kib").iter().map(|k| k / 1024.0).collect();
    let rss_file = format!("{PLOTS}/soak-rss.svg");
    std::fs::write(
        &rss_file,
        plot(
            "resident memory (MiB) over seconds",
            &at,
            &[("rss", "#1f77b4", rss.iter().map(|v| Some(*v)).collect())],
        ),
    )?;
    let counts: Vec<(&str, &str, Vec<Option<f64>>)> = [
        ("fds", "#1f77b4"),
        ("threads", "#999999"),
        ("tasks", "#ff7f0e"),
        ("children", "#2ca02c"),
    ]
    .iter()
    .map(|(k, c)| (*k, *c, field(k).into_iter().map(Some).collect()))
    .collect();
    let counts_file = format!("{PLOTS}/soak-counts.svg");
    std::fs::write(
        &counts_file,
        plot(
            "open fds, threads, tokio tasks, children over seconds",
            &at,
            &counts,
        ),
    )?;
    let _ = writeln!(
        md,
        "![soak memory]({rss_file})\n![soak counts]({counts_file})\n"
    );
    Ok(())
}

fn number(v: f64, unit: &str) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.3} {unit}")
    }
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn figure_plot(name: &str, f: &Figure) -> String {
    let x: Vec<f64> = (0..f.points.len()).map(|i| i as f64 + 1.0).collect();
    let series = vec![
        (
            "figure",
            "#1f77b4",
            f.points.iter().map(|p| Some(p.value)).collect(),
        ),
        (
            "baseline",
            "#999999",
            f.points.iter().map(|p| p.baseline).collect(),
        ),
        (
            "floor",
            "#ff7f0e",
            f.points.iter().map(|p| p.floor).collect(),
        ),
    ];
    let first = f.points.first().map_or("", |p| p.run.as_str());
    plot(
        &format!("{name} ({}) over runs since {first}", f.unit),
        &x,
        &series,
    )
}

/// A line chart: `series` of (label, colour, values at `x`).
fn plot(title: &str, x: &[f64], series: &[(&str, &str, Vec<Option<f64>>)]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 30.0;
    let values = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().flatten().copied());
    let max = values.clone().fold(f64::MIN, f64::max).max(0.0) * 1.1;
    let max = if max > 0.0 { max } else { 1.0 };
    let (x0, x1) = (
        x.first().copied().unwrap_or(0.0),
        x.last().copied().unwrap_or(1.0),
    );
    let span = if x1 > x0 { x1 - x0 } else { 1.0 };
    let px = |v: f64| LEFT + (v - x0) / span * (W - LEFT - RIGHT);
    let py = |v: f64| TOP + (1.0 - v / max) * (H - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"16\" font-size=\"13\">{}</text>\n",
        escape(title)
    );
    for i in 0..=2 {
        let v = max * i as f64 / 2.0;
        let y = py(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e0e0e0\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short(v)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        H - 10.0,
        short(x0),
        W - RIGHT,
        H - 10.0,
        short(x1)
    );
    let mut legend_x = LEFT;
    for (label, colour, values) in series {
        if values.iter().all(Option::is_none) {
            continue;
        }
        let points: Vec<String> = x
            .iter()
            .zip(values)
            .filter_map(|(x, v)| v.map(|v| format!("{:.1},{:.1}", px(*x), py(v))))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"2.5\" fill=\"{colour}\"/>"
            );
        }
        let _ = writeln!(
            svg,
            "<rect x=\"{legend_x}\" y=\"24\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"33\">{}</text>",
            legend_x + 14.0,
            escape(label)
        );
        legend_x += 90.0;
    }
    svg.push_str("</svg>\n");
    svg
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_svg_with_each_series_present() {
        let svg = plot(
            "t <x>",
            &[1.0, 2.0, 3.0],
            &[
                ("figure", "#1f77b4", vec![Some(1.0), Some(2.0), Some(3.0)]),
                ("floor", "#ff7f0e", vec![None, None, None]),
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("t &lt;x&gt;"));
        assert_eq!(
            svg.matches("<polyline").count(),
            1,
            "an empty series is left out"
        );
        assert_eq!(
            slug("egress-gateway vs bare splice relay"),
            "egress-gateway-vs-bare-splice-relay"
        );
    }
}
