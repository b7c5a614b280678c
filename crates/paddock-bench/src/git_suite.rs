//! The git gate against `git daemon` serving the same repository, in the
//! same run: clone and fetch of a ~10k-commit history, and a 1k-commit push.
//! Beside them, for reference, git's documented smart-HTTP set-up (`git
//! http-backend` under Debian's lighttpd, mod_cgi), which pays the same
//! HTTP client as the gate does.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::stats::{Samples, ratio_row};

const PUSHES_PER_ITERATION: usize = 3;
const TOKEN: &str = "bench-token-aaaaaaaaaaaaaaaaaaaaaaaa";

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        // As boxes are configured: the token goes with the first request
        // (git >= 2.46) instead of after a 401. No effect on git://.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.proactiveAuth")
        .env("GIT_CONFIG_VALUE_0", "basic")
        .output()
        .with_context(|| format!("git {args:?}"))?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A history of `commits` commits, each rewriting one of 100 source-like
/// files (~2 KB of varied text, so packs compress like code rather than
/// like a repeated byte), built with fast-import in seconds.
fn make_history(dir: &Path, commits: usize) -> anyhow::Result<()> {
    const WORDS: [&str; 16] = [
        "fn", "let", "match", "impl", "struct", "return", "self", "Some", "None", "Ok", "Err",
        "async", "await", "pub", "use", "mod",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    git(dir, &["init", "-q", "--bare", "-b", "main"])?;
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stream = String::new();
    for i in 0..commits {
        let mut content = format!("// revision {i}\n");
        while content.len() < 2048 {
            let n = next();
            content.push_str(WORDS[(n % 16) as usize]);
            content.push_str(if n % 7 == 0 { "\n" } else { " " });
            content.push_str(&format!("v{} ", n % 10_000));
        }
        content.push('\n');
        let msg = format!("commit {i}");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{}\ncommitter bench <b@example.invalid> {} +0000\ndata {}\n{msg}\n",
            i + 1,
            1_700_000_000 + i,
            msg.len()
        ));
        if i > 0 {
            stream.push_str(&format!("from :{i}\n"));
        }
        stream.push_str(&format!(
            "M 644 inline file-{}.txt\ndata {}\n{content}\n",
            i % 100,
            content.len()
        ));
        if stream.len() > 1 << 20 {
            stdin.write_all(stream.as_bytes())?;
            stream.clear();
        }
    }
    stdin.write_all(stream.as_bytes())?;
    drop(stdin);
    if !child.wait()?.success() {
        bail!("fast-import failed");
    }
    git(dir, &["repack", "-adq"])?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Servers {
    gate_pid: i32,
    daemon: Child,
    gate_url: String,
    daemon_url: String,
    /// None where lighttpd is not installed.
    lighttpd: Option<(Child, String)>,
}

const LIGHTTPD: &str = "/usr/sbin/lighttpd";

/// git-http-backend(1)'s lighttpd example, plus pushes without auth (the
/// gate's bench token is checked; this reference checks nothing).
fn start_lighttpd(base: &Path, work: &Path) -> anyhow::Result<Option<(Child, String)>> {
    if !Path::new(LIGHTTPD).is_file() {
        return Ok(None);
    }
    let backend = Path::new(&git(work, &["--exec-path"])?).join("git-http-backend");
    let root = work.join("www");
    std::fs::create_dir_all(&root)?;
    let port = free_port()?;
    let conf = work.join("lighttpd.conf");
    std::fs::write(
        &conf,
        format!(
            r#"server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ("mod_alias", "mod_cgi", "mod_setenv")
server.errorlog = "{work}/lighttpd.log"
alias.url = ("/git" => "{backend}")
$HTTP["url"] =~ "^/git" {{
    cgi.assign = ("" => "")
    setenv.add-environment = (
        "GIT_PROJECT_ROOT" => "{base}",
        "GIT_HTTP_EXPORT_ALL" => "",
        "GIT_CONFIG_COUNT" => "1",
        "GIT_CONFIG_KEY_0" => "http.receivepack",
        "GIT_CONFIG_VALUE_0" => "true",
    )
}}
"#,
            root = root.display(),
            work = work.display(),
            backend = backend.display(),
            base = base.display(),
        ),
    )?;
    let child = Command::new(LIGHTTPD)
        .arg("-D")
        .arg("-f")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_listening(port)?;
    Ok(Some((
        child,
        // A user name as the gate gets one: git sends Basic auth up front
        // (`http.proactiveAuth`) instead of prompting; lighttpd ignores it.
        format!("http://bench:@127.0.0.1:{port}/git/bench.git"),
    )))
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some((lighttpd, _)) = &mut self.lighttpd {
            let _ = lighttpd.kill();
            let _ = lighttpd.wait();
        }
        let _ = Command::new("kill").arg(self.gate_pid.to_string()).status();
        // `git daemon` runs `git-daemon` as its child: end the group.
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.daemon.id()))
            .status();
        let _ = self.daemon.wait();
    }
}

fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

fn start(paddock: &str, base: &Path, work: &Path) -> anyhow::Result<Servers> {
    std::fs::write(
        work.join("tokens.json"),
        format!(r#"{{"{TOKEN}": {{"project": "bench"}}}}"#),
    )?;
    let (gp, dp) = (free_port()?, free_port()?);
    let pid_file = work.join("gate.pid");
    let out = Command::new(paddock)
        .args(["gate", "--detach", "--port", &gp.to_string(), "--pid-file"])
        .arg(&pid_file)
        .arg("--base-path")
        .arg(base)
        .arg("--token-file")
        .arg(work.join("tokens.json"))
        .env("TMPDIR", work)
        .output()?;
    if !out.status.success() {
        bail!("paddock gate: {}", String::from_utf8_lossy(&out.stderr));
    }
    let gate_pid: i32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    let daemon = Command::new("git")
        .args([
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            "--reuseaddr",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={dp}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut servers = Servers {
        gate_pid,
        daemon,
        gate_url: format!("http://{TOKEN}:@127.0.0.1:{gp}/bench.git"),
        daemon_url: format!("git://127.0.0.1:{dp}/bench.git"),
        lighttpd: None,
    };
    wait_listening(gp)?;
    wait_listening(dp)?;
    servers.lighttpd = start_lighttpd(base, work)?;
    Ok(servers)
}

fn timed(f: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<std::time::Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

pub fn run(paddock: &str, iterations: usize, commits: usize, pushed: usize) -> anyhow::Result<()> {
    // In memory where the machine has it: both servers write the same packs
    // and fsync them, and a shared disk's stalls would swamp what the figure
    // is about (the transport), differently from one push to the next.
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let work = work.path();
    let base = work.join("base");
    std::fs::create_dir(&base)?;
    let history = work.join("history.git");
    std::fs::create_dir(&history)?;
    make_history(&history, commits)?;
    let served = base.join("bench.git");
    let older = format!("main~{pushed}");
    // The served repository stops `pushed` commits short, so the push
    // benchmark has exactly that many to send.
    git(
        work,
        &[
            "clone",
            "-q",
            "--bare",
            history.to_str().unwrap(),
            served.to_str().unwrap(),
        ],
    )?;
    let full_tip = git(&served, &["rev-parse", "main"])?;
    git(
        &served,
        &[
            "update-ref",
            "refs/heads/main",
            &git(&served, &["rev-parse", &older])?,
        ],
    )?;
    let servers = start(paddock, &base, work)?;
    let servers = &servers;

    // Index 0: the gate; 1: git daemon; 2: lighttpd + git http-backend.
    let mut sides = vec![
        (servers.gate_url.as_str(), 0),
        (servers.daemon_url.as_str(), 1),
    ];
    if let Some((_, url)) = &servers.lighttpd {
        sides.push((url.as_str(), 2));
    }
    let sides = &sides;
    let mut clone: [Samples; 3] = Default::default();
    let mut fetch: [Samples; 3] = Default::default();
    let mut push: [Samples; 3] = Default::default();
    for i in 0..=iterations {
        for &(url, side) in sides {
            let dest = work.join(format!("clone-{i}-{side}"));
            let t = timed(|| {
                git(
                    work,
                    &["clone", "-q", "--bare", url, dest.to_str().unwrap()],
                )
            })?;
            std::fs::remove_dir_all(&dest)?;

            // Fetch: a repository `pushed` commits behind fetches them.
            let behind = work.join(format!("behind-{i}-{side}"));
            git(
                work,
                &[
                    "clone",
                    "-q",
                    "--bare",
                    "--no-local",
                    history.to_str().unwrap(),
                    behind.to_str().unwrap(),
                ],
            )?;
            let back = format!("main~{}", 2 * pushed);
            git(
                &behind,
                &[
                    "update-ref",
                    "refs/heads/main",
                    &git(&behind, &["rev-parse", &back])?,
                ],
            )?;
            git(&behind, &["repack", "-adq"])?;
            git(&behind, &["prune", "--expire=now"])?;
            let tf = timed(|| {
                git(
                    &behind,
                    &["fetch", "-q", url, "main:refs/remotes/origin/main"],
                )
            })?;
            std::fs::remove_dir_all(&behind)?;
            if i > 0 {
                clone[side].push(t);
                fetch[side].push(tf);
            }
        }
        // Push: the full history to a new agent branch; the server has all
        // but the last `pushed` commits. A push is short, so each iteration
        // takes a few of them, alternating sides, for a steadier median.
        for round in 0..PUSHES_PER_ITERATION {
            for &(url, side) in sides {
                let branch = format!("refs/heads/agent/bench-{i}-{round}-{side}");
                let tp = timed(|| {
                    git(
                        &history,
                        &["push", "-q", url, &format!("{full_tip}:{branch}")],
                    )
                })?;
                git(&served, &["update-ref", "-d", &branch])?;
                git(&served, &["prune", "--expire=now"])?;
                if i > 0 {
                    push[side].push(tp);
                }
            }
        }
    }
    println!();
    println!(
        "git: {} commits served, {pushed} fetched and pushed, {iterations} iterations \
         ({} pushes a side)",
        commits - pushed,
        iterations * PUSHES_PER_ITERATION
    );
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>8}",
        "operation (median)", "gate", "git daemon", "ratio", "goal"
    );
    ratio_row(
        &format!("clone --bare ({} commits)", commits - pushed),
        &clone[0],
        &clone[1],
        "<= 1.20",
    );
    ratio_row(
        &format!("fetch ({pushed} commits behind)"),
        &fetch[0],
        &fetch[1],
        "<= 1.20",
    );
    ratio_row(
        &format!("push ({pushed} new commits)"),
        &push[0],
        &push[1],
        "<= 1.20",
    );
    if servers.lighttpd.is_none() {
        println!("(no {LIGHTTPD}: the reference set-up is left out)");
        return Ok(());
    }
    println!(
        "{:<44} {:>12} {:>14} {:>16}",
        "reference: http-backend under lighttpd", "lighttpd", "gate/lighttpd", "lighttpd/daemon"
    );
    for (label, samples) in [("clone --bare", &clone), ("fetch", &fetch), ("push", &push)] {
        let [gate, daemon, lighttpd] = samples.each_ref().map(|s| s.percentile_ms(50.0));
        println!(
            "{label:<44} {lighttpd:>9.1} ms {:>13.2}x {:>15.2}x",
            gate / lighttpd,
            lighttpd / daemon
        );
    }
    Ok(())
}
