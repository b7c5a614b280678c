//! `paddock-bench`: paddock against plain `docker`, measured in one run.
//!
//! Every figure is printed next to its baseline from the same run, as a
//! ratio of medians, so machine speed cancels out. Operations alternate
//! between paddock and the baseline to spread drift over both.

mod approvals_suite;
mod boxes_more;
mod console_clients;
mod credentials_suite;
mod egress_suite;
mod fanout;
mod git_suite;
mod iam_suite;
mod lines;
mod mcp;
mod ops_suite;
mod record;
mod relay;
mod report;
mod scale_suite;
mod soak;
mod stats;
mod store_suite;
mod subscribers;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::stats::Samples;

struct Args {
    paddock: String,
    image: String,
    iterations: usize,
    list_boxes: usize,
    /// `boxes`, `git`, `egress`, `credentials`, `iam`, `approvals`, `ops` or `all`.
    suite: String,
    git_commits: usize,
    git_pushed: usize,
    /// How long `--suite soak` runs.
    soak_minutes: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        paddock: "target/release/paddock".into(),
        image: "paddock-bench-box:latest".into(),
        iterations: 15,
        list_boxes: 200,
        suite: "all".into(),
        git_commits: 10_000,
        git_pushed: 1_000,
        soak_minutes: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--paddock" => args.paddock = value,
            "--image" => args.image = value,
            "--iterations" => args.iterations = value.parse()?,
            "--list-boxes" => args.list_boxes = value.parse()?,
            "--suite" => args.suite = value,
            "--git-commits" => args.git_commits = value.parse()?,
            "--git-pushed" => args.git_pushed = value.parse()?,
            "--soak-minutes" => args.soak_minutes = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// A paddock under measurement, on its own data dir and instance label.
/// The admin token every benchmarked paddock is started with.
pub(crate) const BENCH_TOKEN: &str = "paddock-bench-admin-token-0123456789abcdef";

/// A client that sends the bench's admin token.
fn http_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {BENCH_TOKEN}"))
            .expect("a valid header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

struct Server {
    child: Child,
    url: String,
    instance: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    fn start(args: &Args, extra_toml: &str) -> anyhow::Result<Self> {
        Self::start_with_instance(args, extra_toml, "main")
    }

    /// A second paddock in the same run needs its own instance label.
    fn start_with_instance(args: &Args, extra_toml: &str, tag: &str) -> anyhow::Result<Self> {
        Self::launch(args, extra_toml, tag, false)
    }

    /// One whose log (with the warm pools' news) goes to `log_path`.
    fn start_logging(args: &Args, extra_toml: &str, tag: &str) -> anyhow::Result<Self> {
        Self::launch(args, extra_toml, tag, true)
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir().join("paddock.log")
    }

    fn launch(args: &Args, extra_toml: &str, tag: &str, logged: bool) -> anyhow::Result<Self> {
        Self::launch_as(args, extra_toml, tag, logged, &["serve".to_owned()])
    }

    /// `role` is the subcommand and its own arguments: `serve`, or
    /// `spoke --hub … --dir …`.
    fn launch_as(
        args: &Args,
        extra_toml: &str,
        tag: &str,
        logged: bool,
        role: &[String],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (log_level, stderr) = if logged {
            let file = std::fs::File::create(dir.path().join("paddock.log"))?;
            ("warn,paddock_core::pools=debug", Stdio::from(file))
        } else {
            ("warn", Stdio::inherit())
        };
        let instance = format!("test-bench-{}-{tag}", std::process::id());
        let config = format!(
            "instance = \"{instance}\"\n[boxes]\ndefault_image = \"{}\"\nmax_boxes = {}\n{extra_toml}",
            args.image,
            args.list_boxes + 10
        );
        std::fs::write(dir.path().join("paddock.toml"), config)?;
        let mut child = Command::new(&args.paddock)
            .args(role)
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(dir.path().join("paddock.toml"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--clearance-socket")
            .arg(dir.path().join("run/clearance.sock"))
            .env("PADDOCK_LOG", log_level)
            .env("PADDOCK_ADMIN_TOKEN", BENCH_TOKEN)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("starting paddock")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("paddock: listening on ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Self {
            child,
            url,
            instance,
            _dir: dir,
        })
    }
}

impl Drop for Server {
    /// Stops paddock and removes what its instance left (spare networks).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let filter = format!("label=paddock.instance={}", self.instance);
        let lists: [(&[&str], &[&str]); 2] = [
            (&["ps", "-aq", "--filter"], &["rm", "-f"]),
            (&["network", "ls", "-q", "--filter"], &["network", "rm"]),
        ];
        for (list, remove) in lists {
            let Ok(out) = Command::new("docker").args(list).arg(&filter).output() else {
                continue;
            };
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(remove).arg(id).output();
            }
        }
    }
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).output()?;
    if !out.status.success() {
        bail!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(Duration, T)> {
    let start = Instant::now();
    let v = f()?;
    Ok((start.elapsed(), v))
}

async fn timed_async<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(Duration, T)> {
    let start = Instant::now();
    let v = f.await?;
    Ok((start.elapsed(), v))
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    if args.suite == "report" {
        return record::report();
    }
    if !matches!(
        args.suite.as_str(),
        "all"
            | "boxes"
            | "git"
            | "egress"
            | "fanout"
            | "credentials"
            | "iam"
            | "approvals"
            | "ops"
            | "scale"
            | "soak"
    ) {
        bail!(
            "--suite must be all, boxes, git, egress, fanout, credentials, iam, approvals, ops, scale, soak or report"
        );
    }
    record::begin(&args.suite)?;
    let runtime = tokio::runtime::Runtime::new()?;
    if args.suite == "soak" {
        return runtime.block_on(soak::run(&args));
    }
    if matches!(args.suite.as_str(), "all" | "boxes") {
        record::section("boxes");
        runtime.block_on(boxes_suite(&args))?;
    }
    if matches!(args.suite.as_str(), "all" | "egress") {
        record::section("egress");
        runtime.block_on(egress_suite::run(&args))?;
    }
    if args.suite == "fanout" {
        // The hub's fan-out alone (part of egress): no engine, no paddock.
        record::section("egress");
        let dir = tempfile::tempdir()?;
        // The hub's socket must be in a private directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        runtime.block_on(fanout::rows(dir.path(), 500))?;
    }
    if matches!(args.suite.as_str(), "all" | "credentials") {
        record::section("credentials");
        runtime.block_on(credentials_suite::run(&args))?;
    }
    if matches!(args.suite.as_str(), "all" | "approvals") {
        record::section("approvals");
        runtime.block_on(approvals_suite::run(&args))?;
    }
    if matches!(args.suite.as_str(), "all" | "iam") {
        record::section("iam");
        runtime.block_on(iam_suite::run(&args))?;
    }
    if matches!(args.suite.as_str(), "all" | "ops") {
        record::section("ops");
        runtime.block_on(ops_suite::run(&args))?;
    }
    if matches!(args.suite.as_str(), "all" | "scale") {
        record::section("scale");
        runtime.block_on(scale_suite::run(&args))?;
    }
    if matches!(args.suite.as_str(), "all" | "git") {
        record::section("git");
        git_suite::run(
            &args.paddock,
            args.iterations.min(7),
            args.git_commits,
            args.git_pushed,
        )?;
    }
    Ok(())
}

async fn boxes_suite(args: &Args) -> anyhow::Result<()> {
    let server = Server::start(args, "")?;
    let client = mcp::Client::connect(&format!("{}/mcp", server.url), BENCH_TOKEN).await?;
    println!(
        "paddock-bench: {} iterations, list_boxes with {} boxes, image {}",
        args.iterations, args.list_boxes, args.image
    );

    let mut create_exec = (Samples::default(), Samples::default());
    let mut destroy = (Samples::default(), Samples::default());
    // One warm-up round each, not recorded: first image and network use.
    for i in 0..=args.iterations {
        let id = format!("bench-{i}");
        let (ours, _) = timed_async(async {
            client
                .call("create_box", json!({"project": "bench", "box_id": id}))
                .await?;
            client
                .call("exec_box", json!({"box_id": id, "command": "true"}))
                .await
        })
        .await?;
        let name = format!("paddock-bench-base-{}-{i}", std::process::id());
        let (theirs, _) = timed(|| {
            docker(&[
                "run",
                "-d",
                "--label",
                "paddock.bench=1",
                "--name",
                &name,
                &args.image,
            ])?;
            docker(&["exec", &name, "true"])
        })?;
        let (ours_rm, _) = timed_async(client.call("destroy_box", json!({"box_id": id}))).await?;
        let (theirs_rm, _) = timed(|| docker(&["rm", "-f", &name]))?;
        if i > 0 {
            create_exec.0.push(ours);
            create_exec.1.push(theirs);
            destroy.0.push(ours_rm);
            destroy.1.push(theirs_rm);
        }
    }

    let mut exec = (Samples::default(), Samples::default());
    client
        .call(
            "create_box",
            json!({"project": "bench", "box_id": "bench-exec"}),
        )
        .await?;
    let name = format!("paddock-bench-exec-{}", std::process::id());
    docker(&[
        "run",
        "-d",
        "--label",
        "paddock.bench=1",
        "--name",
        &name,
        &args.image,
    ])?;
    for i in 0..=(args.iterations * 2) {
        let (ours, _) = timed_async(client.call(
            "exec_box",
            json!({"box_id": "bench-exec", "command": "true"}),
        ))
        .await?;
        let (theirs, _) = timed(|| docker(&["exec", &name, "true"]))?;
        if i > 0 {
            exec.0.push(ours);
            exec.1.push(theirs);
        }
    }
    client
        .call("destroy_box", json!({"box_id": "bench-exec"}))
        .await?;
    docker(&["rm", "-f", &name])?;

    // list_boxes against a full house.
    let http = http_client();
    let mut made = Vec::new();
    for i in 0..args.list_boxes {
        let id = format!("list-{i}");
        let r = http
            .post(format!("{}/api/v1/boxes", server.url))
            .json(&json!({"project": "bench", "box_id": id}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating {id}: {}", r.text().await?);
        }
        made.push(id);
    }
    let mut list = Samples::default();
    for _ in 0..args.iterations.max(10) * 10 {
        let (t, result) = timed_async(client.call("list_boxes", json!({}))).await?;
        let n = result["boxes"].as_array().map_or(0, Vec::len);
        if n != args.list_boxes {
            bail!(
                "list_boxes returned {n} boxes, expected {}",
                args.list_boxes
            );
        }
        list.push(t);
    }
    for id in &made {
        http.delete(format!("{}/api/v1/boxes/{id}", server.url))
            .send()
            .await?;
    }

    println!();
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>8}",
        "operation (median)", "paddock", "baseline", "ratio", "goal"
    );
    stats::ratio_row(
        "create -> first exec: MCP vs docker run+exec",
        &create_exec.0,
        &create_exec.1,
        "<= 1.10",
    );
    stats::ratio_row(
        "destroy: MCP vs docker rm -f",
        &destroy.0,
        &destroy.1,
        "<= 1.20",
    );
    stats::ratio_row(
        "exec round trip: MCP vs docker exec",
        &exec.0,
        &exec.1,
        "<= 1.10",
    );
    println!();
    println!(
        "list_boxes with {} boxes over MCP: p50 {:.2} ms, p99 {:.2} ms ({} calls)",
        args.list_boxes,
        list.percentile_ms(50.0),
        list.percentile_ms(99.0),
        list.len()
    );
    for (label, ours, theirs) in [
        ("create->exec", &create_exec.0, &create_exec.1),
        ("destroy", &destroy.0, &destroy.1),
        ("exec", &exec.0, &exec.1),
    ] {
        println!(
            "{label:<13} p99: paddock {:.1} ms, baseline {:.1} ms",
            ours.percentile_ms(99.0),
            theirs.percentile_ms(99.0)
        );
    }
    client.close().await;
    drop(server);
    boxes_more::run(args).await
}
