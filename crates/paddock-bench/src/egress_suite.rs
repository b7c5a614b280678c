//! The egress gateway, measured in one run against its baselines: a direct
//! loopback connection and Debian's squid for tunnels, and a single
//! subscriber for fan-out. Latencies of the clearance path are end to end,
//! as a person's client sees them: from the box's CONNECT to the event at a
//! varlink subscriber, and from a verdict to the first byte on the held
//! connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use paddock_clearance::varlink::VarlinkClient;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::Samples;
use crate::subscribers::{Arrivals, Subscribers};
use crate::{Server, relay};

const TUNNEL_BYTES: usize = 256 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;

/// Reads the announced number of bytes, then answers one byte: the
/// sender's clock stops when the last byte has arrived, not when it left.
/// (A length, not a half-close: squid's tunnels do not carry half-closes.)
async fn sink(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let Ok(mut left) = s.read_u64().await else {
                return;
            };
            let mut buf = vec![0u8; CHUNK];
            while left > 0 {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => left = left.saturating_sub(n as u64),
                }
            }
            let _ = s.write_all(b"k").await;
        });
    }
}

/// One byte in, one byte out, close: the cheapest useful connection.
/// An echo server on `bind` (an address standing in for the outside);
/// where it listens.
pub(crate) async fn echo_at(bind: &str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(echo(listener));
    Ok(addr)
}

pub(crate) async fn echo(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).await.is_ok() {
                let _ = s.write_all(&b).await;
            }
        });
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Route {
    Direct,
    Proxy(SocketAddr),
}

/// Opens a connection to `target`, tunnelled through a proxy if asked.
pub(crate) async fn open(route: Route, target: SocketAddr) -> anyhow::Result<TcpStream> {
    match route {
        Route::Direct => {
            let s = TcpStream::connect(target).await?;
            s.set_nodelay(true)?;
            Ok(s)
        }
        Route::Proxy(proxy) => {
            let mut s = TcpStream::connect(proxy).await?;
            s.set_nodelay(true)?;
            s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
                .await?;
            read_head(&mut s).await.and_then(|head| {
                if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
                    Ok(s)
                } else {
                    bail!("CONNECT refused: {}", head.lines().next().unwrap_or(""))
                }
            })
        }
    }
}

/// Reads a response head byte by byte (so no tunnel byte is consumed).
pub(crate) async fn read_head(s: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            bail!("connection closed in the response head");
        }
        head.push(b[0]);
        if head.len() > 16 * 1024 {
            bail!("response head too long");
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn throughput(route: Route, sink: SocketAddr) -> anyhow::Result<f64> {
    let mut s = open(route, sink).await?;
    let chunk = vec![0x5au8; CHUNK];
    let start = Instant::now();
    s.write_u64(TUNNEL_BYTES as u64).await?;
    for _ in 0..TUNNEL_BYTES / CHUNK {
        s.write_all(&chunk).await?;
    }
    let mut k = [0u8; 1];
    s.read_exact(&mut k).await?;
    Ok(TUNNEL_BYTES as f64 / start.elapsed().as_secs_f64() / (1024.0 * 1024.0))
}

async fn connection_rate(route: Route, echo: SocketAddr, count: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    for _ in 0..count {
        let mut s = open(route, echo).await?;
        s.write_all(b"x").await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

struct Squid {
    child: Child,
    addr: SocketAddr,
    /// squid's service name: it names the shared-memory segments squid
    /// leaves in /dev/shm when killed, so they can be removed.
    service: String,
    _dir: tempfile::TempDir,
}

impl Squid {
    /// Debian's squid, configured as a plain forward proxy: no cache, no
    /// logs on the hot path, CONNECT to any port.
    async fn start() -> anyhow::Result<Self> {
        let bin = ["/usr/sbin/squid", "/usr/bin/squid"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("squid is not installed (scripts/bench installs Debian's squid)")?;
        let dir = tempfile::tempdir()?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let conf = dir.path().join("squid.conf");
        std::fs::write(
            &conf,
            format!(
                "http_port 127.0.0.1:{port}\nhttp_access allow all\ncache deny all\n\
                 access_log none\ncache_store_log none\ncache_log {d}/cache.log\n\
                 pid_filename none\ncoredump_dir {d}\nshutdown_lifetime 0 seconds\n\
                 forwarded_for delete\nvia off\n",
                d = dir.path().display()
            ),
        )?;
        let service = format!("paddockbench{}", std::process::id());
        let child = Command::new(bin)
            .args(["-N", "-n", &service, "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting squid")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "squid did not start; see {}",
                    dir.path().join("cache.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            addr,
            service,
            _dir: dir,
        })
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let prefix = format!("{}-", self.service);
        for entry in std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub(crate) fn rate_row(label: &str, ours: f64, theirs: f64, unit: &str, goal: &str) {
    crate::record::figure(label, unit, ours, Some(theirs), None, goal);
    println!(
        "{label:<44} {ours:>9.0} {unit} {theirs:>9.0} {unit} {:>6.2}x {goal:>8}",
        ours / theirs
    );
}

pub(crate) fn latency_row(label: &str, s: &Samples, goal: &str) {
    crate::record::figure(
        &format!("{label} p99"),
        "ms",
        s.percentile_ms(99.0),
        None,
        None,
        goal,
    );
    println!(
        "{label:<44} p50 {:>6.2} ms   p99 {:>6.2} ms   (n={}) {goal:>8}",
        s.percentile_ms(50.0),
        s.percentile_ms(99.0),
        s.len()
    );
}

pub(crate) async fn rest(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http.request(method, url).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("paddock answered {status}: {v}");
    }
    Ok(v)
}

pub(crate) struct Clearance {
    pub(crate) server_url: String,
    pub(crate) socket: PathBuf,
    pub(crate) http: reqwest::Client,
    pub(crate) box_id: String,
}

impl Clearance {
    /// Subscribes `n` clients and waits until every one has seen an event.
    pub(crate) async fn subscribers(&self, n: usize) -> anyhow::Result<(Subscribers, Arrivals)> {
        let (subscribers, mut rx) = Subscribers::start(&self.socket, n)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            rest(
                &self.http,
                reqwest::Method::PUT,
                format!("{}/api/v1/boxes/{}/shield", self.server_url, self.box_id),
                json!({"state": "up"}),
            )
            .await?;
            let mut seen = 0;
            let settle = Instant::now() + Duration::from_millis(300);
            while let Ok(Some((_, kind, _))) =
                tokio::time::timeout_at(settle.into(), rx.recv()).await
            {
                if kind == "shield_up" {
                    seen += 1;
                }
            }
            if seen >= n {
                return Ok((subscribers, rx));
            }
            if Instant::now() > deadline {
                bail!("only {seen} of {n} subscribers went live");
            }
        }
    }
}

/// One held CONNECT: returns (block → event at each subscriber, verdict →
/// first byte) after allowing it through `calls` (scope once, so the next
/// round is held again).
pub(crate) async fn held_round(
    proxy: SocketAddr,
    target: SocketAddr,
    box_id: &str,
    subscribers: usize,
    rx: &mut Arrivals,
    calls: &mut VarlinkClient,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let sent = Instant::now();
    let mut s = TcpStream::connect(proxy).await?;
    s.set_nodelay(true)?;
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
        .await?;
    let mut arrivals = Vec::new();
    let mut request_id = String::new();
    while arrivals.len() < subscribers {
        let (at, kind, id) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("no event within 10 s")?
            .context("subscribers ended")?;
        if kind == "connection_blocked" && !id.is_empty() {
            arrivals.push(at - sent);
            request_id = id;
        }
    }
    let verdict_at = Instant::now();
    calls
        .call(
            "org.paddock.Clearance1.Verdict",
            json!({"container": box_id, "request_id": request_id, "dest": target.ip().to_string(),
                   "action": "allow", "scope": "once"}),
        )
        .await?;
    let head = read_head(&mut s).await?;
    let first_byte = verdict_at.elapsed();
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "held CONNECT answered {}",
            head.lines().next().unwrap_or("")
        );
    }
    // Drain the verdict_applied events so the next round starts clean.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(5), rx.recv()).await {}
    Ok((arrivals, first_byte))
}

/// A box of project `bench` on the paddock at `url`, loopback standing in
/// for the outside — allowed outright on 127.0.0.1 for tunnels, held
/// (ask) on 127.0.0.2 for the clearance path — and its gateway's proxy.
pub(crate) async fn bench_box(
    http: &reqwest::Client,
    url: &str,
    box_id: &str,
) -> anyhow::Result<SocketAddr> {
    rest(
        http,
        reqwest::Method::POST,
        format!("{url}/api/v1/boxes"),
        json!({"project": "bench", "box_id": box_id}),
    )
    .await?;
    for (target, action) in [("127.0.0.1/32", "allow"), ("127.0.0.2/32", "ask")] {
        rest(
            http,
            reqwest::Method::POST,
            format!("{url}/api/v1/egress/rules"),
            json!({"project": "bench", "target": target, "action": action}),
        )
        .await?;
    }
    let out = rest(
        http,
        reqwest::Method::POST,
        format!("{url}/api/v1/boxes/{box_id}/exec"),
        json!({"command": "echo $HTTP_PROXY"}),
    )
    .await?;
    out["stdout"]
        .as_str()
        .unwrap_or("")
        .trim()
        .trim_start_matches("http://")
        .parse()
        .context("the box's proxy address")
}

pub async fn run(args: &crate::Args) -> anyhow::Result<()> {
    let server = Server::start(args, "[egress]\nhold_timeout_secs = 60\n")?;
    let http = crate::http_client();
    let box_id = "egress-bench".to_owned();
    let proxy = bench_box(&http, &server.url, &box_id).await?;

    let sink_listener = TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink_listener.local_addr()?;
    tokio::spawn(sink(sink_listener));
    let echo_listener = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo_listener.local_addr()?;
    tokio::spawn(echo(echo_listener));
    let squid = Squid::start().await?;

    println!(
        "\negress: tunnels of {} MiB, medians of {} rounds",
        TUNNEL_BYTES >> 20,
        args.iterations.min(7)
    );
    let rounds = args.iterations.clamp(3, 7);
    let bare_relay = relay::start(sink_addr, relay::Mode::Splice)?;
    let copy_relay = relay::start(sink_addr, relay::Mode::Copy)?;
    let (mut ours, mut direct, mut theirs, mut bare, mut copied) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(throughput(Route::Direct, sink_addr).await?);
        ours.push(throughput(Route::Proxy(proxy), sink_addr).await?);
        theirs.push(throughput(Route::Proxy(squid.addr), sink_addr).await?);
        bare.push(throughput(Route::Direct, bare_relay).await?);
        copied.push(throughput(Route::Direct, copy_relay).await?);
    }
    let (o, d, t) = (median(&mut ours), median(&mut direct), median(&mut theirs));
    rate_row(
        "tunnel throughput, gateway vs direct",
        o,
        d,
        "MiB/s",
        ">= 0.9x",
    );
    rate_row("tunnel throughput, gateway vs squid", o, t, "MiB/s", "> 1x");
    // The floor of any relay here: one more TCP hop, nothing else.
    let b = median(&mut bare);
    rate_row("  floor: bare splice relay vs direct", b, d, "MiB/s", "");
    rate_row("  gateway vs bare splice relay", o, b, "MiB/s", "");
    let c = median(&mut copied);
    rate_row("  gateway vs bare read/write relay", o, c, "MiB/s", "");

    const CONNECTIONS: usize = 500;
    let connect_relay = relay::start_connect()?;
    let (mut ours, mut direct, mut theirs, mut bare) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(connection_rate(Route::Direct, echo_addr, CONNECTIONS).await?);
        ours.push(connection_rate(Route::Proxy(proxy), echo_addr, CONNECTIONS).await?);
        theirs.push(connection_rate(Route::Proxy(squid.addr), echo_addr, CONNECTIONS).await?);
        bare.push(connection_rate(Route::Proxy(connect_relay), echo_addr, CONNECTIONS).await?);
    }
    let (o, d, t) = (median(&mut ours), median(&mut direct), median(&mut theirs));
    rate_row("new connections/s, gateway vs direct", o, d, "conn/s", "");
    rate_row(
        "new connections/s, gateway vs squid",
        o,
        t,
        "conn/s",
        "> 1x",
    );
    // The floor of any CONNECT proxy here: a round trip and a hop more.
    let b = median(&mut bare);
    rate_row("  floor: bare CONNECT relay vs direct", b, d, "conn/s", "");
    rate_row("  gateway vs bare CONNECT relay", o, b, "conn/s", ">= 0.9x");

    // The clearance path, on a listener at 127.0.0.2 (held by the rules).
    let held_target = echo_at("127.0.0.2:0").await?;
    let socket = server.dir().join("run/clearance.sock");
    let clearance = Clearance {
        server_url: server.url.clone(),
        socket: socket.clone(),
        http: http.clone(),
        box_id: box_id.clone(),
    };
    let mut calls = VarlinkClient::connect(&socket).await?;
    const HELD_ROUNDS: usize = 500;
    let mut fanout = Vec::new();
    for subs in [1usize, 100] {
        let (_subscribers, mut rx) = clearance.subscribers(subs).await?;
        let (mut to_event, mut to_byte) = (Samples::default(), Samples::default());
        for _ in 0..HELD_ROUNDS {
            let (arrivals, first_byte) =
                held_round(proxy, held_target, &box_id, subs, &mut rx, &mut calls).await?;
            for a in arrivals {
                to_event.push(a);
            }
            to_byte.push(first_byte);
        }
        if subs == 1 {
            latency_row("block -> event at a subscriber", &to_event, "p99<=5ms");
            latency_row(
                "verdict -> first byte on the held connection",
                &to_byte,
                "p99<=10ms",
            );
        }
        fanout.push(to_event);
    }
    // Context, not a goal: with the box's connection in it, one
    // subscriber pays the gateway's path as much as a hundred do; the
    // fan-out's own figure is the next rows'.
    let (one, hundred) = (&fanout[0], &fanout[1]);
    for p in [50.0, 99.0] {
        println!(
            "{:<44} p{p:<2} {:>6.2} ms vs {:>6.2} ms = {:>5.2}x",
            "through the gateway: 100 subscribers vs 1",
            hundred.percentile_ms(p),
            one.percentile_ms(p),
            hundred.percentile_ms(p) / one.percentile_ms(p),
        );
    }
    crate::fanout::rows(server.dir(), HELD_ROUNDS).await?;
    drop(calls);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_direct_copy_completes() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(sink(l));
        let rate =
            tokio::time::timeout(Duration::from_secs(20), throughput(Route::Direct, addr)).await;
        assert!(rate.is_ok(), "timed out");
    }
}
