//! IAM: what a decision costs and what auth adds to a REST request.
//!
//! - `authorise` with a warm cache, ns per decision, against the same
//!   decision made by the regime every time (cache off) in the same run;
//! - a REST request (`GET /api/v1/boxes/{id}`, keep-alive) against a
//!   paddock with auth on and one with auth off, alternating.

use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_iam::{
    Capabilities, Capability, Iam, IamSettings, NewToken, ProjectScope, Regime, Resource, Surface,
    TokenBook, TokenRegime,
};
use paddock_store::Store;

use crate::stats::Samples;
use crate::{Args, Server};

fn iam(store: &Arc<Store>, cache_ttl: Duration) -> Iam {
    let regime: Arc<dyn Regime> = Arc::new(TokenRegime::new(store.clone(), 0, cache_ttl));
    Iam::new(
        IamSettings {
            max_decision_ttl: cache_ttl,
            ..IamSettings::default()
        },
        vec![regime],
        None,
    )
}

async fn ns_per_decision(iam: &Iam, secret: &str, rounds: u32) -> f64 {
    let identity = iam
        .authenticate(Some(secret), Surface::Rest)
        .await
        .expect("the bench token authenticates");
    let resource = Resource::Box {
        id: "bench-box".into(),
        project: "bench".into(),
    };
    let start = Instant::now();
    for _ in 0..rounds {
        iam.authorise(&identity, Capability::BoxExec, &resource)
            .await
            .expect("allowed");
    }
    start.elapsed().as_nanos() as f64 / f64::from(rounds)
}

async fn decisions() -> anyhow::Result<()> {
    let store = Arc::new(Store::open_in_memory()?);
    let (_, secret) = TokenBook::new(store.clone()).create(&NewToken {
        name: "bench".into(),
        capabilities: Capabilities::all(),
        projects: ProjectScope::only(["bench"]),
        ttl: None,
    })?;
    let warm = iam(&store, Duration::from_secs(60));
    let uncached = iam(&store, Duration::ZERO);
    let rounds = 1_000_000;
    // Warm both up, then measure each a few times, alternating.
    ns_per_decision(&warm, &secret, 10_000).await;
    ns_per_decision(&uncached, &secret, 10_000).await;
    let (mut w, mut u) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        w.push(ns_per_decision(&warm, &secret, rounds).await);
        u.push(ns_per_decision(&uncached, &secret, rounds).await);
    }
    w.sort_by(f64::total_cmp);
    u.sort_by(f64::total_cmp);
    println!();
    println!("iam: authorise, {rounds} decisions per round, median of 5 rounds");
    println!(
        "{:<44} {:>9.0} ns (regime every time: {:.0} ns, {:.2}x)",
        "authorise, warm cache",
        w[2],
        u[2],
        w[2] / u[2]
    );
    Ok(())
}

async fn rest_latency(args: &Args) -> anyhow::Result<()> {
    let quiet = "[egress]\nenabled = false\n[git]\nenabled = false\n";
    let on = Server::start(args, quiet)?;
    let off =
        Server::start_with_instance(args, &format!("{quiet}[iam]\nenabled = false\n"), "off")?;
    let http = crate::http_client();
    // Container names are global: each paddock gets its own box id.
    let servers = [(&on, "iam-bench-on"), (&off, "iam-bench-off")];
    for (server, id) in servers {
        let created = http
            .post(format!("{}/api/v1/boxes", server.url))
            .json(&serde_json::json!({"project": "bench", "box_id": id}))
            .send()
            .await?;
        anyhow::ensure!(
            created.status() == 201,
            "creating the box: {}",
            created.status()
        );
    }
    let requests = 3_000;
    let (mut with, mut without) = (Samples::default(), Samples::default());
    for i in 0..requests + 200 {
        for ((server, id), samples) in servers.into_iter().zip([&mut with, &mut without]) {
            let start = Instant::now();
            let r = http
                .get(format!("{}/api/v1/boxes/{id}", server.url))
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200, "GET: {}", r.status());
            r.bytes().await?;
            if i >= 200 {
                samples.push(start.elapsed());
            }
        }
    }
    for (server, id) in servers {
        http.delete(format!("{}/api/v1/boxes/{id}", server.url))
            .send()
            .await?;
    }
    let us = |s: &Samples, p| s.percentile_ms(p) * 1000.0;
    println!("iam: GET /api/v1/boxes/{{id}}, {requests} requests each, keep-alive, alternating");
    println!(
        "{:<44} {:>9} {:>9} {:>10}",
        "", "auth on", "auth off", "added"
    );
    for p in [50.0, 99.0] {
        println!(
            "{:<44} {:>6.0} us {:>6.0} us {:>7.0} us  ({:.2}x)",
            format!("REST latency p{p:.0}"),
            us(&with, p),
            us(&without, p),
            us(&with, p) - us(&without, p),
            us(&with, p) / us(&without, p)
        );
    }
    Ok(())
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    decisions().await?;
    rest_latency(args).await
}
