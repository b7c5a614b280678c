//! Extensions: capabilities that ride on boxes (the git gate today, the
//! egress gateway next) without the box domain knowing what they are.
//! An extension is told when a box network comes and goes, and equips each
//! new box with files and environment before its container is made.

use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;

use paddock_docker::FileEntry;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an extension refused to equip, fence or guard a box, in an
/// operator's terms (the box is then not made, or not started).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExtensionError(String);

impl ExtensionError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// What an extension knows about the box it equips.
#[derive(Debug, Clone, Copy)]
pub struct BoxSetup<'a> {
    pub box_id: &'a str,
    pub project: &'a str,
    pub network_id: &'a str,
    /// The host's address on the box's network: where host-side listeners
    /// for this box bind, and the only host address the box should reach.
    pub gateway: Ipv4Addr,
}

#[derive(Debug, Clone, Default)]
pub struct Equipment {
    /// Copied into the container before it starts.
    pub files: Vec<FileEntry>,
    /// `KEY=value` entries added to the container's environment.
    pub env: Vec<String>,
    /// Resolvers for the box (Docker's embedded DNS forwards to these).
    pub dns: Vec<Ipv4Addr>,
    /// Host files shown read-only inside (host path, path inside): there
    /// before the box's first process, whatever its root filesystem.
    pub read_only_binds: Vec<(String, String)>,
}

/// A login under way in a box, as its extensions hear of it.
#[derive(Debug, Clone, Copy)]
pub struct LoginStarted<'a> {
    pub box_id: &'a str,
    pub project: &'a str,
    /// The image whose profile runs the login (who allowed what it needs).
    pub image: &'a str,
    /// `host` or `host:port` the login must reach (the profile's
    /// `login_destinations`).
    pub destinations: &'a [String],
}

/// A box whose container has just started (or was found running at start).
#[derive(Debug, Clone, Copy)]
pub struct BoxStarted<'a> {
    pub box_id: &'a str,
    pub project: &'a str,
    pub container_id: &'a str,
    /// Host pid of the container's first process.
    pub pid: u32,
    pub network_id: &'a str,
}

pub trait BoxExtension: Send + Sync {
    /// Called once the box's network is chosen, before its container
    /// exists. The box row exists (state `creating`). An error fails the
    /// create, which is then undone.
    fn equip<'a>(&'a self, setup: BoxSetup<'a>)
    -> BoxFuture<'a, Result<Equipment, ExtensionError>>;

    /// A stopped box's container is about to start again: whatever must
    /// hold before its first process runs (the host fence) is checked
    /// here. An error keeps the box stopped.
    fn starting<'a>(&'a self, _setup: BoxSetup<'a>) -> BoxFuture<'a, Result<(), ExtensionError>> {
        Box::pin(async { Ok(()) })
    }

    /// The container runs. An error fails the create (closed: the box is
    /// torn down) or the start (the box is stopped again). Also called for
    /// boxes found running at start, so it must be idempotent.
    fn started<'a>(
        &'a self,
        _started: BoxStarted<'a>,
    ) -> BoxFuture<'a, Result<(), ExtensionError>> {
        Box::pin(async { Ok(()) })
    }

    /// Docker started or saw the end of a box's container (paddock's doing
    /// or not).
    fn container_changed(
        &self,
        _box_id: &str,
        _project: &str,
        _change: &paddock_docker::ContainerChange,
    ) {
    }

    /// The box is gone; `reason` says why in a person's terms (destroyed,
    /// its time to live ran out, its container disappeared, …).
    fn removed(&self, _box_id: &str, _project: &str, _reason: &str) {}

    /// The box's login command started; `login.destinations` (its
    /// profile's) are what the login itself needs to reach.
    fn login_started(&self, _login: LoginStarted<'_>) {}

    /// The box's login command ended, however it went.
    fn login_ended(&self, _box_id: &str) {}

    /// A box network joined paddock's pool (made, or found at start).
    fn network_up(&self, network_id: &str, gateway: Ipv4Addr);

    /// A box network was removed.
    fn network_down(&self, network_id: &str);
}
