//! Operations: what counting (`/metrics`) and tracing (spans to an OTLP
//! collector) cost on the hot paths. Two paddocks in one run — one
//! counting and tracing to a collector this bench runs, one with
//! `[metrics] enabled = false` and no collector — measured
//! alternately request by request on each path — a REST GET, a new
//! connection through the gateway (decided, logged, counted), and a held
//! connection from block to verdict to first byte. A third series, the
//! counting-off paddock measured again in the same alternation, is the
//! noise floor: a ratio within it is no cost this machine can see.

use std::net::SocketAddr;
use std::time::Instant;

use paddock_clearance::varlink::VarlinkClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::egress_suite::{Clearance, Route, bench_box, echo_at, held_round, open};
use crate::stats::Samples;
use crate::subscribers::{Arrivals, Subscribers};
use crate::{Args, Server};

/// One paddock under measurement: its box, the box's proxy, a subscriber
/// and a varlink client for verdicts.
struct Side {
    server: Server,
    box_id: String,
    proxy: SocketAddr,
    calls: VarlinkClient,
    rx: Arrivals,
    _subscribers: Subscribers,
}

/// A collector that takes every export and answers at once, as a
/// healthy one does.
async fn collector() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(answer_exports(s));
        }
    });
    Ok(url)
}

/// Reads each request whole (its head and the body its Content-Length
/// announces) and answers 200.
async fn answer_exports(mut s: tokio::net::TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    loop {
        let Ok(n) = s.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        let Some(head_end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if seen.len() < head_end + 4 + length {
            continue;
        }
        seen.drain(..head_end + 4 + length);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        if s.write_all(ok).await.is_err() {
            return;
        }
    }
}

async fn side(args: &Args, tag: &str, observed: Option<&str>) -> anyhow::Result<Side> {
    let observing = match observed {
        Some(collector) => {
            format!("[metrics]\nenabled = true\n[traces]\nendpoint = \"{collector}\"\n")
        }
        None => "[metrics]\nenabled = false\n".to_owned(),
    };
    let server = Server::start_with_instance(
        args,
        &format!("[egress]\nhold_timeout_secs = 60\n[git]\nenabled = false\n{observing}"),
        tag,
    )?;
    let http = crate::http_client();
    let box_id = format!("ops-{tag}");
    let proxy = bench_box(&http, &server.url, &box_id).await?;
    let socket = server.dir().join("run/clearance.sock");
    let clearance = Clearance {
        server_url: server.url.clone(),
        socket: socket.clone(),
        http,
        box_id: box_id.clone(),
    };
    let (subscribers, rx) = clearance.subscribers(1).await?;
    let calls = VarlinkClient::connect(&socket).await?;
    Ok(Side {
        server,
        box_id,
        proxy,
        calls,
        rx,
        _subscribers: subscribers,
    })
}

/// The order each round measures in: on, off, off again (the floor).
const ORDER: [usize; 3] = [0, 1, 1];

fn print_row(label: &str, series: &[Samples; 3]) {
    let [on, off, again] = series;
    crate::record::figure(
        &format!("{label} p50, on vs off"),
        "ms",
        on.percentile_ms(50.0),
        Some(off.percentile_ms(50.0)),
        Some(again.percentile_ms(50.0)),
        "<= 1.03x",
    );
    for p in [50.0, 99.0] {
        println!(
            "{:<40} p{p:<2.0} {:>8.3} ms on {:>8.3} ms off = {:>5.3}x  (noise floor {:.3}x) {:>9}",
            label,
            on.percentile_ms(p),
            off.percentile_ms(p),
            on.percentile_ms(p) / off.percentile_ms(p),
            again.percentile_ms(p) / off.percentile_ms(p),
            if p == 50.0 { "<= 1.03x" } else { "" }
        );
    }
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let collector = collector().await?;
    let mut sides = [
        side(args, "on", Some(&collector)).await?,
        side(args, "off", None).await?,
    ];
    let http = crate::http_client();
    let echo_addr = echo_at("127.0.0.1:0").await?;
    let held_target = echo_at("127.0.0.2:0").await?;
    println!(
        "\nops: counting and tracing on vs off, the same requests alternating; noise floor = off vs off again"
    );

    const WARM: usize = 200;
    const REQUESTS: usize = 3_000;
    let mut rest_series: [Samples; 3] = Default::default();
    for i in 0..WARM + REQUESTS {
        for (series, &which) in rest_series.iter_mut().zip(&ORDER) {
            let side = &sides[which];
            let start = Instant::now();
            // The list, read from the store: a box's own GET also asks the
            // engine for its usage, which would measure Docker.
            let r = http
                .get(format!("{}/api/v1/boxes", side.server.url))
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200, "GET: {}", r.status());
            r.bytes().await?;
            if i >= WARM {
                series.push(start.elapsed());
            }
        }
    }
    print_row("REST GET /api/v1/boxes", &rest_series);

    const CONNECTIONS: usize = 1_500;
    let mut conn_series: [Samples; 3] = Default::default();
    for i in 0..WARM + CONNECTIONS {
        for (series, &which) in conn_series.iter_mut().zip(&ORDER) {
            let start = Instant::now();
            let mut s = open(Route::Proxy(sides[which].proxy), echo_addr).await?;
            s.write_all(b"x").await?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await?;
            if i >= WARM {
                series.push(start.elapsed());
            }
        }
    }
    print_row("gateway: CONNECT, decided, one byte", &conn_series);

    const HOLDS: usize = 150;
    let mut hold_series: [Samples; 3] = Default::default();
    for i in 0..10 + HOLDS {
        for (series, &which) in hold_series.iter_mut().zip(&ORDER) {
            let side = &mut sides[which];
            let start = Instant::now();
            held_round(
                side.proxy,
                held_target,
                &side.box_id,
                1,
                &mut side.rx,
                &mut side.calls,
            )
            .await?;
            if i >= 10 {
                series.push(start.elapsed());
            }
        }
    }
    print_row("hold -> verdict -> first byte", &hold_series);
    Ok(())
}
