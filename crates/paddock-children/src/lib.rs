//! Every process paddock starts — `box.create`/`box.destroy` hooks, `git
//! http-backend` and its spares, git for imports and upstream pushes,
//! `nft` for the host guard — goes through one [`Supervisor`]:
//!
//! - registered while it runs, so the worldview and `/metrics` can say
//!   what is running, since when;
//! - watched from the moment it starts: a child that dies by a signal
//!   nobody in paddock sent is a crash, logged and counted at once and
//!   announced to [`Supervisor::crashes`] subscribers, whether or not its
//!   caller is still waiting for it;
//! - tied to paddock's life: it gets SIGKILL from the kernel if the
//!   thread that started it — a runtime worker, so in effect paddock —
//!   dies (`PR_SET_PDEATHSIG`), and what it started in turn is ended by
//!   the next paddock of the instance ([`sweep_leftovers`]), so a
//!   SIGKILLed paddock orphans nothing for long;
//! - signalled through a pidfd, never a bare pid that may have been
//!   recycled;
//! - ended when its caller lets go of it before it ended (SIGTERM, then
//!   SIGKILL after a grace), so no caller can leave one behind;
//! - stopped at shutdown newest first, SIGTERM then SIGKILL, each under a
//!   deadline and all under an overall one, so a child that ignores
//!   SIGTERM or crashes while stopping cannot hang the stop.
//!
//! Long-lived helpers wait for health with [`wait_healthy`]; none of
//! today's children lives long enough to need it.
//!
//! The supervisor is one per process ([`global`]): pids, signals and the
//! parent-death tie are properties of the process, not of a component.

mod child;
mod health;
mod metrics;
mod signal;
mod supervisor;
mod sweep;

pub use child::Child;
pub use health::wait_healthy;
pub use supervisor::{Crash, Running, StopReport, Supervisor};
pub use sweep::{MARKER, sweep_leftovers};

use std::sync::LazyLock;

/// Why a child could not be started or waited for.
#[derive(Debug, thiserror::Error)]
pub enum ChildrenError {
    #[error("paddock is stopping; {kind} {name:?} was not started")]
    Stopping { kind: &'static str, name: String },
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the child's output: {0}")]
    Io(#[from] std::io::Error),
    #[error("lost track of the child: {0}")]
    Lost(String),
    #[error("{name:?} ended before it was healthy: {status}")]
    EndedBeforeHealthy { name: String, status: String },
    #[error("{name:?} was not healthy within {timeout_ms} ms")]
    NotHealthy { name: String, timeout_ms: u64 },
}

/// The process's supervisor.
pub fn global() -> &'static Supervisor {
    static GLOBAL: LazyLock<Supervisor> = LazyLock::new(|| {
        let supervisor = Supervisor::new();
        metrics::register_running(supervisor.clone());
        supervisor
    });
    &GLOBAL
}

#[cfg(test)]
mod tests;
