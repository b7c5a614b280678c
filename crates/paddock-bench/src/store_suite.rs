//! REST get of one box on a hub whose store is PostgreSQL, against the
//! same on a hub on SQLite, rounds alternating so whatever else the
//! machine does falls on both alike. PostgreSQL is a server of the
//! bench's own on loopback (Debian's, started in a temporary directory),
//! so the difference is a loopback round trip per statement and the
//! server's work. The box read is one of the seeded spoke-box rows: its
//! spoke is not linked, so the answer is the store's row and the REST
//! layer alone (a local box's get also asks Docker for its usage).

use std::time::Instant;

use anyhow::Context;
use paddock_store::Store;
use paddock_store::testing::TempPostgres;

use crate::egress_suite::latency_row;
use crate::stats::{Samples, ratio_row};
use crate::{Args, Server, http_client};

const ROUNDS: usize = 500;
const BOX: &str = "seeded-0500";

pub(crate) async fn rest_get(args: &Args, sqlite_hub: &Server) -> anyhow::Result<()> {
    let Some(pg) = TempPostgres::start() else {
        println!("REST get, PostgreSQL vs SQLite: not measured (PostgreSQL is not installed)");
        return Ok(());
    };
    let url = pg.database("bench");
    // The rows go in on a thread of its own: the store's client blocks.
    let seeding = url.clone();
    tokio::task::spawn_blocking(move || {
        crate::scale_suite::seed_into(&Store::open_postgres(&seeding)?)
    })
    .await
    .context("seeding PostgreSQL")??;
    let pg_hub = Server::start_with_instance(args, &format!("[store]\nurl = \"{url}\"\n"), "pg")?;
    let http = http_client();
    let (mut on_pg, mut on_sqlite) = (Samples::default(), Samples::default());
    for round in 0..=ROUNDS {
        for (hub, into) in [(&pg_hub, &mut on_pg), (sqlite_hub, &mut on_sqlite)] {
            let started = Instant::now();
            let answer = http
                .get(format!("{}/api/v1/boxes/{BOX}", hub.url))
                .send()
                .await?;
            let status = answer.status();
            answer.bytes().await?;
            let took = started.elapsed();
            anyhow::ensure!(status.is_success(), "GET {BOX} on {}: {status}", hub.url);
            if round > 0 {
                into.push(took);
            }
        }
    }
    latency_row("REST get of a box, PostgreSQL store", &on_pg, "reported");
    latency_row("REST get of a box, SQLite store", &on_sqlite, "reported");
    ratio_row(
        "REST get, PostgreSQL vs SQLite (p50)",
        &on_pg,
        &on_sqlite,
        "reported",
    );
    // What one statement costs on each: the difference above is a few of
    // these (the credential's lookup, the box's row) per request.
    let probe = url.clone();
    let (pg_ping, sqlite_ping) = tokio::task::spawn_blocking(move || {
        let on_pg = Store::open_postgres(&probe)?;
        let on_sqlite = Store::open_in_memory()?;
        let (mut pg_ping, mut sqlite_ping) = (Samples::default(), Samples::default());
        for _ in 0..ROUNDS {
            for (store, into) in [(&on_pg, &mut pg_ping), (&on_sqlite, &mut sqlite_ping)] {
                let started = Instant::now();
                store.ping()?;
                into.push(started.elapsed());
            }
        }
        Ok::<_, anyhow::Error>((pg_ping, sqlite_ping))
    })
    .await
    .context("timing one statement")??;
    latency_row(
        "  floor: one statement, PostgreSQL (loopback)",
        &pg_ping,
        "",
    );
    latency_row("  floor: one statement, SQLite", &sqlite_ping, "");
    drop(pg_hub);
    drop(pg);
    Ok(())
}
