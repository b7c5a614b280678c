//! Fan-out on its own: paddock's hub publishing to `n` varlink
//! subscribers, from the call to [`Hub::publish`] (which serialises the
//! event) to each arrival, against the barest publisher there is writing
//! the hub's own frame for the event to `n` unix sockets in turn. Both
//! are read by the same harness ([`Subscribers`]), and their rounds
//! alternate, so whatever else the machine does falls on both alike.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use paddock_clearance::varlink::VarlinkServer;
use paddock_clearance::{ClearanceEvent, EventKind, Hub, HubConfig, Published};
use tokio_util::sync::CancellationToken;

use crate::stats::Samples;
use crate::subscribers::{Arrivals, Subscribers};

/// What each publisher's subscribers waited, round by round.
#[derive(Default)]
pub struct Waits {
    /// Every subscriber's wait, every round.
    pub each: Samples,
    /// Per round, the wait of the last subscriber: when the event had
    /// reached them all. One round preempted on a small machine puts all
    /// of its subscribers in `each`'s tail; here it is one sample.
    pub all: Samples,
}

pub struct Fanout {
    pub hub: Waits,
    pub bare: Waits,
}

/// `rounds` events to `n` subscribers from each publisher in turn.
pub async fn compare(dir: &Path, n: usize, rounds: usize) -> anyhow::Result<Fanout> {
    let mut hub = HubRig::start(dir, n).await?;
    let mut bare = BareRig::start(dir, n)?;
    let mut unmeasured = Waits::default();
    // Every subscriber's task past its set-up before anything counts.
    for round in 0..10 {
        hub.round(round, &mut unmeasured).await?;
        bare.round(round, &mut unmeasured).await?;
    }
    let mut out = Fanout {
        hub: Waits::default(),
        bare: Waits::default(),
    };
    for round in 0..rounds {
        hub.round(round, &mut out.hub).await?;
        bare.round(round, &mut out.bare).await?;
    }
    hub.stop().await;
    bare.stop();
    Ok(out)
}

/// The fan-out rows of the egress suite. Its rows before these start at
/// the box's CONNECT, so they also carry the gateway's path, which one
/// subscriber costs as much as a hundred.
pub(crate) async fn rows(dir: &std::path::Path, rounds: usize) -> anyhow::Result<()> {
    // The hub serves only from a directory closed to others.
    let dir = dir.join("fanout");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let one = compare(&dir, 1, rounds).await?;
    let hundred = compare(&dir, 100, rounds).await?;
    let (hub, bare) = (
        hundred.hub.all.percentile_ms(50.0),
        hundred.bare.all.percentile_ms(50.0),
    );
    crate::record::figure(
        "fan-out to 100 subscribers, all reached (median), hub vs bare writes",
        "ms",
        hub,
        Some(bare),
        None,
        "<= 1.2x",
    );
    let row = |label: &str,
               p: f64,
               hub: &crate::stats::Samples,
               bare: &crate::stats::Samples,
               goal: &str| {
        let (h, b) = (hub.percentile_ms(p), bare.percentile_ms(p));
        println!(
            "{label:<44} p{p:<2} {h:>6.3} ms vs {b:>6.3} ms = {:>5.2}x {goal:>8}",
            h / b
        );
    };
    row(
        "fan-out to 100, all reached: hub vs bare",
        50.0,
        &hundred.hub.all,
        &hundred.bare.all,
        "<= 1.2x",
    );
    row(
        "  all reached, p99 of rounds",
        99.0,
        &hundred.hub.all,
        &hundred.bare.all,
        "",
    );
    row(
        "  each subscriber",
        50.0,
        &hundred.hub.each,
        &hundred.bare.each,
        "",
    );
    row(
        "  each subscriber",
        99.0,
        &hundred.hub.each,
        &hundred.bare.each,
        "",
    );
    row(
        "  to 1: hub vs bare write",
        50.0,
        &one.hub.all,
        &one.bare.all,
        "",
    );
    row("  to 1", 99.0, &one.hub.all, &one.bare.all, "");
    Ok(())
}

/// The event both publishers send in `round`: what a held connection
/// announces, with the dossier a box carries.
fn bench_event(round: usize) -> ClearanceEvent {
    let mut event = ClearanceEvent::new(EventKind::ConnectionBlocked, "fanout-bench")
        .with_dossier("bench", "paddock-fanout-bench");
    event.request_id = format!("round-{round}");
    event.dest = "203.0.113.7".into();
    event.port = 443;
    event.proto = 6;
    event
}

/// Waits for `n` arrivals of one round; what each waited since `sent`.
async fn collect(
    arrivals: &mut Arrivals,
    n: usize,
    sent: Instant,
    waits: &mut Waits,
) -> anyhow::Result<()> {
    let mut last = std::time::Duration::ZERO;
    for _ in 0..n {
        let (at, _, _) = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await
            .context("no frame within 10 s")?
            .context("the reader ended")?;
        let waited = at - sent;
        last = last.max(waited);
        waits.each.push(waited);
    }
    waits.all.push(last);
    // Rounds apart, as held requests are: each starts with the reader asleep.
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

struct BareRig {
    path: PathBuf,
    sockets: Vec<UnixStream>,
    subscribers: Subscribers,
    arrivals: Arrivals,
}

impl BareRig {
    fn start(dir: &Path, n: usize) -> anyhow::Result<Self> {
        let path = dir.join(format!("bare-{n}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        // The listener's backlog (128) holds the subscribers' connections
        // until they are accepted here.
        let (subscribers, arrivals) = Subscribers::start(&path, n)?;
        let sockets = (0..n)
            .map(|_| listener.accept().map(|(s, _)| s))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            path,
            sockets,
            subscribers,
            arrivals,
        })
    }

    async fn round(&mut self, round: usize, waits: &mut Waits) -> anyhow::Result<()> {
        let frame = Published::new(bench_event(round)).varlink_frame;
        let sent = Instant::now();
        for s in &mut self.sockets {
            s.write_all(&frame)?;
        }
        collect(&mut self.arrivals, self.sockets.len(), sent, waits).await
    }

    fn stop(self) {
        drop(self.subscribers);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// paddock's hub and its varlink server, in this process on a socket in
/// the bench's directory.
struct HubRig {
    hub: Arc<Hub>,
    n: usize,
    stop: CancellationToken,
    serving: tokio::task::JoinHandle<()>,
    subscribers: Subscribers,
    arrivals: Arrivals,
}

impl HubRig {
    async fn start(dir: &Path, n: usize) -> anyhow::Result<Self> {
        let path = dir.join(format!("hub-{n}.sock"));
        let hub = Hub::new(HubConfig {
            queue_capacity: 128,
            terok_discovery: false,
        });
        let server = VarlinkServer::bind(&path, hub.clone(), env!("CARGO_PKG_VERSION"))?;
        let stop = CancellationToken::new();
        let serving = tokio::spawn(server.serve(stop.clone()));
        let (subscribers, arrivals) = Subscribers::start(&path, n)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while hub.subscriber_count() < n {
            if Instant::now() > deadline {
                anyhow::bail!("{} of {n} subscribers after 10 s", hub.subscriber_count());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Self {
            hub,
            n,
            stop,
            serving,
            subscribers,
            arrivals,
        })
    }

    async fn round(&mut self, round: usize, waits: &mut Waits) -> anyhow::Result<()> {
        let event = bench_event(round);
        let sent = Instant::now();
        self.hub.publish(event);
        collect(&mut self.arrivals, self.n, sent, waits).await
    }

    async fn stop(self) {
        drop(self.subscribers);
        self.stop.cancel();
        let _ = self.serving.await;
    }
}
