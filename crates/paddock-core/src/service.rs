//! [`BoxService`]: the one door to boxes for every front-end.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::BoxEngine;
use paddock_store::{BoxRow, BoxState, Store};

use crate::BoxExtension;
use crate::activation::Logins;
use crate::model::{BoxView, ExecResult, now_ms};
use crate::networks::NetworkPool;
use crate::subnet::SubnetPool;
use crate::{CoreConfig, CoreError, Result, validate};

pub struct BoxService {
    pub(crate) store: Arc<Store>,
    pub(crate) engine: Arc<dyn BoxEngine>,
    /// Swapped whole by [`BoxService::reload`]; readers take the current
    /// one for the length of an operation.
    config: parking_lot::RwLock<Arc<CoreConfig>>,
    /// Value of the `paddock.instance` label on everything this paddock makes.
    pub(crate) instance: String,
    /// One lock per box id: create, destroy and login relaunch of the same
    /// box never interleave.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) logins: Logins,
    pub(crate) networks: NetworkPool,
    pub(crate) extensions: Vec<Arc<dyn BoxExtension>>,
    /// Warm pools: woken when a box was claimed, filled one at a time.
    pub(crate) pools: crate::pools::PoolState,
    /// The hub's spokes, when it has any ([`BoxService::set_spokes`]).
    pub(crate) spokes: std::sync::OnceLock<Arc<dyn crate::remote::Spokes>>,
    /// Ids of boxes whose create is on its way to a spoke: a spoke's list
    /// that does not have them yet says nothing about them.
    pub(crate) creating_on_spokes: Mutex<std::collections::HashSet<String>>,
}

/// Whether each dependency answered; `Err` holds what went wrong.
#[derive(Debug, Clone)]
pub struct Health {
    pub store: std::result::Result<(), Unavailable>,
    pub docker: std::result::Result<(), Unavailable>,
}

/// A dependency that did not answer as it should, and what it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl Health {
    pub fn is_up(&self) -> bool {
        self.store.is_ok() && self.docker.is_ok()
    }
}

/// The instance this paddock is: the configured one, or else the one
/// generated on its store's first start and kept there. Everything named
/// after the instance (labels, the host fence's table) must take it from
/// here, never from the configuration alone: two paddocks at their
/// defaults share an empty configured instance, never a store.
pub fn resolve_instance(store: &Store, configured: &str) -> Result<String> {
    if store.is_shared() {
        // Hubs on one database are one paddock: their containers carry
        // one instance's labels and names, or each would take the other's
        // boxes for leftovers of a crash.
        let recorded = store.meta_or_insert("instance", || {
            if configured.is_empty() {
                format!("p{}", paddock_secret::random_id(6))
            } else {
                configured.to_owned()
            }
        })?;
        if !configured.is_empty() && recorded != configured {
            return Err(CoreError::Invalid(format!(
                "instance {configured:?} is configured, but the shared store belongs to instance {recorded:?}: every hub on one database is the same instance (configure {recorded:?}, or none)"
            )));
        }
        return Ok(recorded);
    }
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    Ok(store.meta_or_insert("instance", || format!("p{}", paddock_secret::random_id(6)))?)
}

impl BoxService {
    /// Whether this hub does the work one hub at a time does (see
    /// `paddock_store::Store::leads`).
    pub fn leads(&self) -> bool {
        self.store.leads()
    }

    pub fn new(
        store: Arc<Store>,
        engine: Arc<dyn BoxEngine>,
        config: CoreConfig,
        extensions: Vec<Arc<dyn BoxExtension>>,
    ) -> Result<Arc<Self>> {
        config.check()?;
        let subnets = SubnetPool::parse(&config.boxes.subnet_pool, config.boxes.subnet_prefix)
            .map_err(CoreError::Invalid)?;
        let networks = NetworkPool::new(subnets, config.boxes.spare_networks);
        let instance = resolve_instance(&store, &config.instance)?;
        Ok(Arc::new(Self {
            store,
            engine,
            config: parking_lot::RwLock::new(Arc::new(config)),
            instance,
            locks: Mutex::new(HashMap::new()),
            logins: Logins::default(),
            networks,
            extensions,
            pools: Default::default(),
            spokes: std::sync::OnceLock::new(),
            creating_on_spokes: Mutex::new(Default::default()),
        }))
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The configuration in force now (a reload swaps it whole).
    pub fn config(&self) -> Arc<CoreConfig> {
        self.config.read().clone()
    }

    /// Takes a new configuration's hooks, profiles, registry logins and
    /// pools, which apply from the next box on; boxes, held requests and
    /// connections are untouched. Returns the sections that changed but
    /// take effect only at a restart (the box limits, networks, the
    /// instance, activation). A configuration that does not check out
    /// changes nothing.
    pub fn reload(&self, new: CoreConfig) -> Result<Vec<&'static str>> {
        new.check()?;
        let mut current = self.config.write();
        let mut needs_restart = Vec::new();
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        if differs(&current.boxes, &new.boxes) {
            needs_restart.push("[boxes]");
        }
        if differs(&current.activation, &new.activation) {
            needs_restart.push("[activation]");
        }
        if differs(&current.reconcile, &new.reconcile) {
            needs_restart.push("[reconcile]");
        }
        if current.instance != new.instance || current.public_url != new.public_url {
            needs_restart.push("instance / public_url");
        }
        let mut next = (**current).clone();
        next.hooks = new.hooks;
        next.profiles = new.profiles;
        next.registries = new.registries;
        next.pools = new.pools;
        *current = Arc::new(next);
        drop(current);
        // A pool that grew is filled now, not at the next claim.
        self.pools.wanted.notify_one();
        Ok(needs_restart)
    }

    pub(crate) async fn lock_box(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock();
            locks.entry(id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    pub(crate) fn forget_lock(&self, id: &str) {
        let mut locks = self.locks.lock();
        if locks.get(id).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(id);
        }
    }

    /// A box a person or agent may name: a warm box nobody claimed yet is
    /// nobody's, so it is as absent as a box that does not exist.
    /// A box on a spoke is named as such, never looked for here.
    pub(crate) fn user_box(&self, id: &str) -> Result<BoxRow> {
        validate::box_id(id).map_err(|_| CoreError::NotFound(id.to_owned()))?;
        if let Some(row) = self.store.get_box(id)?.filter(|row| !row.warm) {
            return Ok(row);
        }
        match self.store.get_spoke_box(id)? {
            Some(remote) => Err(CoreError::OnSpoke {
                id: id.to_owned(),
                spoke: remote.spoke,
            }),
            None => Err(CoreError::NotFound(id.to_owned())),
        }
    }

    /// The boxes people and agents see (warm ones are nobody's yet).
    fn user_boxes(&self) -> Result<Vec<BoxRow>> {
        let mut rows = self.store.list_boxes()?;
        rows.retain(|row| !row.warm);
        Ok(rows)
    }

    /// The box as stored (a spoke's as it last said).
    pub fn get(&self, id: &str) -> Result<BoxView> {
        if let Some(remote) = self.remote_box(id)? {
            return Ok(self.stored_view(&remote));
        }
        Ok(BoxView::from(&self.user_box(id)?))
    }

    /// A box of this machine, for what acts on it here (its shield, its
    /// rules, its ports): one on a spoke is refused by name.
    pub fn get_here(&self, id: &str) -> Result<BoxView> {
        Ok(BoxView::from(&self.user_box(id)?))
    }

    /// This machine's boxes, then the spokes' as they last said.
    pub fn list(&self) -> Result<Vec<BoxView>> {
        let mut views: Vec<BoxView> = self.user_boxes()?.iter().map(BoxView::from).collect();
        for remote in self.store.list_spoke_boxes()? {
            views.push(self.stored_view(&remote));
        }
        Ok(views)
    }

    /// The box and what it uses now (nothing when it does not run).
    pub async fn get_with_usage(&self, id: &str) -> Result<BoxView> {
        if let Some(remote) = self.remote_box(id)? {
            return self.remote_view(&remote).await;
        }
        let row = self.user_box(id)?;
        let mut views = self.with_usage(std::slice::from_ref(&row)).await;
        views
            .pop()
            .ok_or_else(|| CoreError::NotFound(id.to_owned()))
    }

    /// Every box and what each uses now, read from the engine at once.
    pub async fn list_with_usage(&self) -> Result<Vec<BoxView>> {
        let rows = self.user_boxes()?;
        let (mut views, remote) =
            futures_util::future::join(self.with_usage(&rows), self.remote_views()).await;
        views.extend(remote?);
        Ok(views)
    }

    /// The rows' views, with the engine asked about the running ones
    /// together; a box the engine cannot answer for shows no usage rather
    /// than failing the listing.
    async fn with_usage(&self, rows: &[BoxRow]) -> Vec<BoxView> {
        let asked = rows.iter().map(|row| async move {
            let running = matches!(row.state, BoxState::Ready | BoxState::PendingActivation);
            match (&row.container_id, running) {
                (Some(c), true) => self.engine.usage(c).await.ok().flatten(),
                _ => None,
            }
        });
        let usage = futures_util::future::join_all(asked).await;
        rows.iter()
            .zip(usage)
            .map(|(row, usage)| BoxView {
                usage: usage.map(Into::into),
                ..BoxView::from(row)
            })
            .collect()
    }

    /// The container of a box, or why there is none; `running` asks for
    /// one whose processes run (an exec's), as opposed to one whose
    /// output can be read (a stopped box's logs say why it stopped).
    pub(crate) fn container_of(&self, id: &str, running: bool) -> Result<String> {
        let row = self.user_box(id)?;
        let wrong = |hint| CoreError::WrongState {
            id: id.to_owned(),
            state: row.state.as_str(),
            hint,
        };
        match (row.state, &row.container_id) {
            (BoxState::Creating | BoxState::Destroying, _) => {
                Err(wrong("try again once that has finished"))
            }
            (BoxState::Stopped | BoxState::Exited, _) if running => {
                Err(wrong("start it first (paddock box start)"))
            }
            (_, Some(container)) => Ok(container.clone()),
            (_, None) => Err(CoreError::Conflict(format!("box {id:?} has no container"))),
        }
    }

    /// Runs `command` with `/bin/sh -c` in the box.
    pub async fn exec(&self, id: &str, command: &str) -> Result<ExecResult> {
        validate::command(command)?;
        let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()];
        if let Some(remote) = self.remote_box(id)? {
            return self.remote_exec(&remote, argv).await;
        }
        self.run_in_box(id, argv).await
    }

    /// Runs `argv` in the box as it is, with no shell: each word arrives
    /// as the program sees it, as `docker exec` does.
    pub async fn exec_argv(&self, id: &str, argv: Vec<String>) -> Result<ExecResult> {
        validate::argv(&argv)?;
        if let Some(remote) = self.remote_box(id)? {
            return self.remote_exec(&remote, argv).await;
        }
        self.run_in_box(id, argv).await
    }

    /// Records that a person or agent used the box now (what the idle
    /// reaper goes by). Bookkeeping, not a decision: a store that cannot
    /// be written (a full disk, a lock held elsewhere) does not stop the
    /// use; it is logged, and at worst the box looks idle sooner.
    pub(crate) fn note_use(&self, id: &str) {
        if let Err(e) = self.store.touch_box(id, now_ms()) {
            tracing::warn!(box_id = id, error = %e, "cannot record the box's use");
        }
    }

    async fn run_in_box(&self, id: &str, argv: Vec<String>) -> Result<ExecResult> {
        let container = self.container_of(id, true)?;
        self.note_use(id);
        let limit = self.config().boxes.exec_output_limit;
        let timeout = self.config().boxes.exec_timeout_secs;
        let out = tokio::time::timeout(
            Duration::from_secs(timeout),
            self.engine.exec(&container, argv, limit),
        )
        .await
        .map_err(|_| CoreError::ExecTimeout(timeout))??;
        Ok(ExecResult {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
            truncated: out.truncated,
        })
    }

    /// The last `tail` lines of the box's console (capped at 10 000).
    pub async fn logs(&self, id: &str, tail: Option<u32>) -> Result<String> {
        if let Some(remote) = self.remote_box(id)? {
            return self.remote_logs(&remote, tail).await;
        }
        let container = self.container_of(id, false)?;
        let tail = tail.unwrap_or(100).min(10_000);
        Ok(self.engine.logs(&container, tail).await?)
    }

    pub async fn health(&self) -> Health {
        let store = self.store.ping().map_err(|e| Unavailable(e.to_string()));
        let docker = tokio::time::timeout(Duration::from_secs(3), self.engine.ping())
            .await
            .map_err(|_| Unavailable("no answer within 3 s".to_owned()))
            .and_then(|r| r.map_err(|e| Unavailable(e.to_string())));
        Health { store, docker }
    }
}
