//! The served process's life after start: the watchdog's pings, and the
//! wait for its end — SIGTERM or Ctrl-C, a component that failed, or
//! `--exit-when-idle` draining — with SIGHUP reloading in between.

use std::sync::Arc;
use std::time::Duration;

use paddock_core::BoxService;
use paddock_store::Store;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use crate::ServeArgs;

/// Waits for the end; why the idle watch gave up, if that is what ended
/// it (an error exit).
pub async fn until_stopped(
    args: &ServeArgs,
    boxes: &Arc<BoxService>,
    failure: &CancellationToken,
    mut hangups: Signal,
) -> Option<String> {
    let idle = async {
        match args.exit_when_idle {
            Some(secs) => idle(boxes.clone(), Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(idle);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => tracing::info!("shutting down"),
            () = failure.cancelled() => tracing::error!("a component failed; shutting down"),
            drained = &mut idle => match drained {
                Ok(()) => tracing::info!(
                    idle_secs = args.exit_when_idle,
                    "no box for the idle period; exiting (--exit-when-idle)"
                ),
                Err(why) => {
                    tracing::error!(error = %why, "cannot tell whether boxes exist; shutting down");
                    return Some(why);
                }
            },
            _ = hangups.recv() => {
                crate::reload::reload(args, boxes);
                continue;
            }
        }
        return None;
    }
}

/// Tells systemd the server is alive while its store answers; a store
/// that does not lets the watchdog restart it.
pub async fn watchdog(store: Arc<Store>, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match store.ping() {
            Ok(()) => crate::systemd::notify("WATCHDOG=1"),
            Err(e) => {
                tracing::warn!(error = %e, "the store does not answer; not telling the watchdog all is well")
            }
        }
    }
}

/// Resolves once no box has existed for `idle_for` (Ok), or with why the
/// count could not be read for too long.
async fn idle(boxes: Arc<BoxService>, idle_for: Duration) -> Result<(), String> {
    use crate::drain::{IdleWatch, Next};
    let mut watch = IdleWatch::new(idle_for, std::time::Instant::now());
    loop {
        tokio::time::sleep(watch.poll_interval()).await;
        let count = boxes.list().map(|b| b.len()).map_err(|e| e.to_string());
        match watch.observe(std::time::Instant::now(), count) {
            Next::Wait => {}
            Next::Drain => return Ok(()),
            Next::GiveUp(why) => return Err(why),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
