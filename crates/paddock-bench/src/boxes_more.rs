//! The boxes figures beyond MCP create/exec/destroy, each against plain
//! `docker` in the same run:
//!
//! - create → first exec as a user scripts it, each step a fresh CLI
//!   process (`paddock box create` + `paddock box exec` against `docker run
//!   -d` + `docker exec`), with the floor that explains the gap over MCP:
//!   what starting each CLI process costs (`paddock --version` against
//!   `docker --version`), and what the engine alone costs for a container
//!   set up as a box (`docker run` on an internal network with a box's
//!   limits, no capabilities and no new privileges);
//! - the same under gVisor (`runtime = "runsc"` against `docker run
//!   --runtime=runsc`), reported;
//! - create → first exec claiming a warm box (`[[pools]]`), against the
//!   same `docker run` + `docker exec`;
//! - stop + start against `docker stop` + `docker start`;
//! - `paddock box cp` of 100 MiB into a box against `docker cp`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::stats::{Samples, ratio_row};
use crate::{Args, BENCH_TOKEN, Server, docker, mcp, timed, timed_async};

/// `paddock <args>` against `server`, as a user runs it; its stdout.
fn cli(args: &Args, server: &Server, words: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(&args.paddock)
        .args(words)
        .env("PADDOCK_URL", &server.url)
        .env("PADDOCK_TOKEN", BENCH_TOKEN)
        .output()
        .context("running the paddock CLI")?;
    if !out.status.success() {
        bail!(
            "paddock {words:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn baseline_name(what: &str, i: usize) -> String {
    format!("paddock-bench-{what}-{}-{i}", std::process::id())
}

/// One baseline round, `docker run -d` + `docker exec` timed, its
/// container removed after the clock stops.
fn timed_baseline(
    args: &Args,
    what: &str,
    i: usize,
    runtime: Option<&str>,
) -> anyhow::Result<Duration> {
    let name = baseline_name(what, i);
    let (took, _) = timed(|| docker_run_exec(args, &name, runtime))?;
    docker(&["rm", "-f", &name])?;
    Ok(took)
}

/// `docker run -d` (with docker's init, as boxes have) then `docker exec`.
fn docker_run_exec(args: &Args, name: &str, runtime: Option<&str>) -> anyhow::Result<()> {
    let flag = runtime.map(|r| format!("--runtime={r}"));
    docker_run_exec_with(args, name, flag.as_deref().into_iter().collect())
}

/// `docker run -d --init` with `flags`, then `docker exec`.
fn docker_run_exec_with(args: &Args, name: &str, flags: Vec<&str>) -> anyhow::Result<()> {
    let mut words = vec![
        "run",
        "-d",
        "--init",
        "--label",
        "paddock.bench=1",
        "--name",
        name,
    ];
    words.extend(flags);
    words.push(&args.image);
    docker(&words)?;
    docker(&["exec", name, "true"])?;
    Ok(())
}

/// `docker run -d` + `docker exec` of a container set up as a box is: on
/// an internal network of its own, with a box's default limits, no
/// capabilities and no new privileges — what the engine itself costs for
/// a box, before anything paddock does.
fn timed_box_spec(args: &Args, network: &str, i: usize) -> anyhow::Result<Duration> {
    let name = baseline_name("boxspec", i);
    let (took, _) = timed(|| {
        docker_run_exec_with(
            args,
            &name,
            vec![
                "--network",
                network,
                "--memory",
                "2048m",
                "--cpus",
                "2",
                "--pids-limit",
                "512",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges:true",
            ],
        )
    })?;
    docker(&["rm", "-f", &name])?;
    Ok(took)
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let server = Server::start_with_instance(args, "", "more")?;
    let client = mcp::Client::connect(&format!("{}/mcp", server.url), BENCH_TOKEN).await?;
    println!();
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>8}",
        "operation (median)", "paddock", "baseline", "ratio", "goal"
    );

    // The CLI, a fresh process per step, and what a process start costs;
    // and the engine's own cost for a container set up as a box.
    let (mut ours, mut theirs) = (Samples::default(), Samples::default());
    let (mut cli_floor, mut docker_floor) = (Samples::default(), Samples::default());
    let mut box_spec = Samples::default();
    let spec_network = format!("paddock-bench-boxspec-{}", std::process::id());
    docker(&[
        "network",
        "create",
        "--internal",
        "--label",
        "paddock.bench=1",
        &spec_network,
    ])?;
    for i in 0..=args.iterations {
        let (t, id) = timed(|| {
            let id = cli(args, &server, &["box", "create", "--project", "bench"])?;
            cli(args, &server, &["box", "exec", &id, "--", "true"])?;
            Ok(id)
        })?;
        let b = timed_baseline(args, "cli", i, None)?;
        let (f, _) = timed(|| cli(args, &server, &["--version"]).map(drop))?;
        let (g, _) = timed(|| docker(&["--version"]).map(drop))?;
        let s = timed_box_spec(args, &spec_network, i)?;
        cli(args, &server, &["box", "rm", &id])?;
        if i > 0 {
            ours.push(t);
            theirs.push(b);
            cli_floor.push(f);
            docker_floor.push(g);
            box_spec.push(s);
        }
    }
    docker(&["network", "rm", &spec_network])?;
    ratio_row(
        "create -> first exec: CLI vs docker run+exec",
        &ours,
        &theirs,
        "<= 1.10",
    );
    ratio_row(
        "floor: one CLI process start (x2 per figure)",
        &cli_floor,
        &docker_floor,
        "",
    );
    ratio_row(
        "floor: docker run+exec set up as a box is",
        &box_spec,
        &theirs,
        "",
    );
    ratio_row(
        "create -> first exec: CLI vs that floor",
        &ours,
        &box_spec,
        "reported",
    );

    // gVisor, reported (no goal).
    let runsc = docker(&["info", "--format", "{{json .Runtimes}}"])?.contains("\"runsc\"");
    if runsc {
        let (mut ours, mut theirs) = (Samples::default(), Samples::default());
        for i in 0..=args.iterations {
            let id = format!("gvisor-{i}");
            let (t, _) = timed_async(async {
                client
                    .call(
                        "create_box",
                        json!({"project": "bench", "box_id": id, "runtime": "runsc"}),
                    )
                    .await?;
                client
                    .call("exec_box", json!({"box_id": id, "command": "true"}))
                    .await
            })
            .await?;
            let b = timed_baseline(args, "runsc", i, Some("runsc"))?;
            client.call("destroy_box", json!({"box_id": id})).await?;
            if i > 0 {
                ours.push(t);
                theirs.push(b);
            }
        }
        ratio_row(
            "gVisor create -> exec: MCP vs docker runsc",
            &ours,
            &theirs,
            "reported",
        );
    } else {
        println!("gVisor: runsc is not registered with Docker (scripts/ensure-env --runsc)");
    }

    stop_start(args, &client).await?;
    copy_in(args, &server, &client).await?;
    client.close().await;
    drop(server);
    warm_pool(args).await
}

async fn stop_start(args: &Args, client: &mcp::Client) -> anyhow::Result<()> {
    client
        .call("create_box", json!({"project": "bench", "box_id": "power"}))
        .await?;
    let name = baseline_name("power", 0);
    docker_run_exec(args, &name, None)?;
    let (mut ours, mut theirs) = (Samples::default(), Samples::default());
    for i in 0..=args.iterations {
        let (t, _) = timed_async(async {
            client.call("stop_box", json!({"box_id": "power"})).await?;
            client.call("start_box", json!({"box_id": "power"})).await
        })
        .await?;
        let (b, _) = timed(|| {
            docker(&["stop", &name])?;
            docker(&["start", &name])
        })?;
        if i > 0 {
            ours.push(t);
            theirs.push(b);
        }
    }
    client
        .call("destroy_box", json!({"box_id": "power"}))
        .await?;
    docker(&["rm", "-f", &name])?;
    ratio_row(
        "stop + start: MCP vs docker stop+start",
        &ours,
        &theirs,
        "<= 1.20",
    );
    Ok(())
}

async fn copy_in(args: &Args, server: &Server, client: &mcp::Client) -> anyhow::Result<()> {
    let file = server.dir().join("payload.bin");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..100 {
            out.write_all(&block)?;
        }
    }
    let file = file.to_str().context("a UTF-8 temporary path")?;
    client
        .call("create_box", json!({"project": "bench", "box_id": "copy"}))
        .await?;
    let name = baseline_name("copy", 0);
    docker_run_exec(args, &name, None)?;
    let (mut ours, mut theirs) = (Samples::default(), Samples::default());
    let mut spool_floor = Samples::default();
    let spooled = server.dir().join("spooled.bin");
    for i in 0..=args.iterations {
        let (t, _) = timed(|| cli(args, server, &["box", "cp", file, "copy:/tmp/payload"]))?;
        let (b, _) = timed(|| docker(&["cp", file, &format!("{name}:/tmp/payload")]))?;
        // What checking an upload whole before anything changes costs at
        // least: writing it to a file and reading it back once (the server
        // spools it; its check reads headers only, the unpack reads it).
        let (f, _) = timed(|| {
            std::fs::copy(file, &spooled)?;
            std::io::copy(&mut std::fs::File::open(&spooled)?, &mut std::io::sink())?;
            Ok(())
        })?;
        if i > 0 {
            ours.push(t);
            theirs.push(b);
            spool_floor.push(f);
        }
    }
    client
        .call("destroy_box", json!({"box_id": "copy"}))
        .await?;
    docker(&["rm", "-f", &name])?;
    ratio_row("cp 100 MiB in: CLI vs docker cp", &ours, &theirs, "<= 1.20");
    ratio_row(
        "floor: spooling 100 MiB once vs docker cp",
        &spool_floor,
        &theirs,
        "",
    );
    let beyond_floor = ours.minus(&spool_floor);
    ratio_row(
        "cp 100 MiB minus that floor vs docker cp",
        &beyond_floor,
        &theirs,
        "reported",
    );
    Ok(())
}

/// Waits until the log says `count` warm boxes were made ready.
fn warm_boxes_made(server: &Server, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
        if log.matches("a warm box is ready").count() >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the warm pool did not fill within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn warm_pool(args: &Args) -> anyhow::Result<()> {
    let server = Server::start_logging(args, "[[pools]]\nproject = \"warm\"\nsize = 1\n", "warm")?;
    let client = mcp::Client::connect(&format!("{}/mcp", server.url), BENCH_TOKEN).await?;
    let (mut ours, mut theirs) = (Samples::default(), Samples::default());
    for i in 0..=args.iterations {
        // The pool is full again before each claim, as it is for a person
        // who does not create boxes back to back.
        warm_boxes_made(&server, i + 1)?;
        let (t, id) = timed_async(async {
            let made = client
                .call("create_box", json!({"project": "warm"}))
                .await?;
            let id = made["box_id"].as_str().unwrap_or_default().to_owned();
            client
                .call("exec_box", json!({"box_id": id, "command": "true"}))
                .await?;
            Ok(id)
        })
        .await?;
        let b = timed_baseline(args, "warm", i, None)?;
        client.call("destroy_box", json!({"box_id": id})).await?;
        if i > 0 {
            ours.push(t);
            theirs.push(b);
        }
    }
    ratio_row(
        "warm pool create -> exec: MCP vs docker",
        &ours,
        &theirs,
        "<= 0.30",
    );
    client.close().await;
    Ok(())
}
