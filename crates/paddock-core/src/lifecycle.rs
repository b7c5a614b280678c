//! Creating and destroying boxes.
//!
//! The store row is written before any Docker object exists and removed only
//! after every Docker object is gone; in between, the row's state says which
//! way the box was going. A crash anywhere leaves enough to finish the job
//! (see `reconcile`).

use std::collections::HashMap;

use paddock_docker::{ContainerSpec, EngineError, PullProgress};
use paddock_store::{BoxRow, BoxState, StoreError};
use serde_json::Value;

use crate::BoxSetup;
use crate::config::{EVENT_CREATE, EVENT_DESTROY, PullPolicy};
use crate::hooks::{self, HookBox};
use crate::main_process::MainProcess;
use crate::model::{BoxView, CreateBox, CreatedBox, expires_at_ms, now_ms};
use crate::options::{self, BoxOptions};
use crate::pools::WarmWanted;
use crate::{BoxService, CoreError, Result, labels, validate};

/// What becomes of a torn-down box's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkAfter {
    /// Back to the pool: the box ran on it.
    Recycle,
    /// Removed: the box never came up on it (a failed or interrupted
    /// create, a box whose guards could not be restored), and the network
    /// may be why.
    Discard,
}

impl BoxService {
    pub async fn create(&self, req: CreateBox) -> Result<CreatedBox> {
        self.create_reporting(req, &|_| {}).await
    }

    /// [`create`](Self::create), telling `progress` how a pull of the
    /// box's image goes.
    pub async fn create_reporting(
        &self,
        req: CreateBox,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<CreatedBox> {
        let started = std::time::Instant::now();
        let mut span = crate::metrics::operation("box.create", None);
        span.attr("box.project", req.project.as_str());
        let made = match self.placement(&req) {
            Ok(Some(spoke)) => {
                span.attr("box.spoke", spoke.as_str());
                paddock_trace::in_span(span.context(), self.create_on_spoke(spoke, req)).await
            }
            Ok(None) => {
                paddock_trace::in_span(span.context(), self.make_box(req, progress, false)).await
            }
            Err(e) => Err(e),
        };
        crate::metrics::created(&made, started.elapsed());
        crate::metrics::ended(&mut span, &made);
        if let Ok(made) = &made {
            span.attr("box.id", made.view.box_id.as_str());
        }
        made
    }

    /// A create, for a person (`warm` false: claiming a warm box of its
    /// project and image when there is one) or for a warm pool (`warm`:
    /// made ahead, nobody's, its login not started).
    pub(crate) async fn make_box(
        &self,
        req: CreateBox,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
        warm: bool,
    ) -> Result<CreatedBox> {
        validate::project(&req.project)?;
        let image = req
            .image
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| self.config().boxes.default_image.clone());
        validate::image(&image)?;
        let description = req.description.unwrap_or_default();
        validate::description(&description)?;
        let ttl_secs = validate::ttl_secs(req.ttl_secs, self.config().boxes.max_ttl_secs)?;
        let named = req.box_id.filter(|i| !i.is_empty());
        let id = box_id_or_new(named.as_deref())?;
        if self.store.get_spoke_box(&id)?.is_some() {
            return Err(CoreError::Conflict(format!(
                "a box {id:?} exists already (on a spoke)"
            )));
        }
        let options = BoxOptions::resolve(&self.config(), &image, req.runtime, req.read_only)?;
        let policy = options::pull_policy(&self.config(), &image, req.pull);

        // A warm box serves a create that names no id (a warm box's id was
        // given when it was made) and does not ask for a fresh pull.
        if !warm && named.is_none() && policy != PullPolicy::Always {
            let wanted = WarmWanted {
                project: &req.project,
                image: &image,
                options: &options,
                description: &description,
                ttl_secs,
            };
            if let Some(claimed) = self.claim_warm(wanted).await? {
                return Ok(claimed);
            }
        }

        // Before anything is made: the image, pulled as the policy says
        // (one the engine still lacks is the user's to fix), whose command
        // decides the box's main process.
        let main = self.image_for_box(&image, policy, progress).await?;
        self.check_runtime(options.runtime.as_deref()).await?;

        let _guard = self.lock_box(&id).await;
        let now = now_ms();
        let row = BoxRow {
            id: id.clone(),
            project: req.project,
            image,
            description,
            state: BoxState::Creating,
            container_id: None,
            network_id: None,
            error: None,
            hook_state: Value::Object(Default::default()),
            created_at_ms: now,
            updated_at_ms: now,
            exit_code: None,
            expires_at_ms: expires_at_ms(now, ttl_secs),
            active_at_ms: now,
            runtime: options.runtime,
            read_only: options.read_only,
            container_name: Some(labels::container_name(&self.instance, &id)),
            warm,
        };
        let max = self.config().boxes.max_boxes;
        match self.store.insert_box_within_limit(&row, max) {
            Ok(true) => {}
            Ok(false) => return Err(CoreError::LimitReached(max)),
            Err(StoreError::Duplicate(id)) => {
                return Err(CoreError::Conflict(format!(
                    "a box with id {id:?} already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        }

        match self.build(&row, main).await {
            Ok(activation_url) => {
                let row = self
                    .store
                    .get_box(&id)?
                    .ok_or_else(|| CoreError::NotFound(id.clone()))?;
                tracing::info!(box_id = %id, project = %row.project, image = %row.image, "box created");
                Ok(CreatedBox {
                    view: BoxView::from(&row),
                    activation_url,
                })
            }
            Err(err) => {
                tracing::warn!(box_id = %id, error = %err, "box creation failed; tearing down");
                if let Err(e) = self.undo_create(&id, &err).await {
                    tracing::error!(box_id = %id, error = %e, "teardown after a failed create failed; the next start finishes it");
                }
                Err(err)
            }
        }
    }

    /// Everything between the journal row and a running box. Any error
    /// leaves cleanup to the caller's teardown.
    async fn build(&self, row: &BoxRow, main: MainProcess) -> Result<Option<String>> {
        let name = row
            .container_name
            .clone()
            .unwrap_or_else(|| labels::container_name(&self.instance, &row.id));
        let object_labels = HashMap::from([
            (labels::BOX.to_owned(), row.id.clone()),
            (labels::PROJECT.to_owned(), row.project.clone()),
            (labels::INSTANCE.to_owned(), self.instance.clone()),
        ]);

        let hook_files = self.run_create_hooks(row).await?;

        let network = self.acquire_network(&row.id).await?;
        let gateway = self.gateway_of(&network).await?;
        let mut equipment_files = Vec::new();
        let mut read_only_binds = Vec::new();
        let mut dns = Vec::new();
        let mut env = vec![
            format!("PADDOCK_BOX_ID={}", row.id),
            format!("PADDOCK_PROJECT={}", row.project),
        ];
        for ext in &self.extensions {
            let setup = BoxSetup {
                box_id: &row.id,
                project: &row.project,
                network_id: &network,
                gateway,
            };
            let equipment = ext.equip(setup).await?;
            equipment_files.extend(equipment.files);
            read_only_binds.extend(equipment.read_only_binds);
            env.extend(equipment.env);
            dns.extend(equipment.dns.iter().map(ToString::to_string));
        }

        let limits = &self.config().boxes;
        let spec = ContainerSpec {
            name: name.clone(),
            image: row.image.clone(),
            hostname: row.id.clone(),
            labels: object_labels,
            env,
            cmd: main.cmd,
            entrypoint: main.entrypoint,
            runtime: row.runtime.clone(),
            read_only: row.read_only,
            read_only_binds,
            workspace: limits.workspace.clone(),
            network,
            memory_bytes: (limits.memory_mib > 0).then(|| (limits.memory_mib * 1024 * 1024) as i64),
            nano_cpus: (limits.cpus > 0.0).then_some((limits.cpus * 1e9) as i64),
            pids_limit: (limits.pids_limit > 0)
                .then(|| options::engine_pids_limit(limits.pids_limit, row.runtime.as_deref())),
            cap_drop: limits.cap_drop.clone(),
            dns,
        };
        let container = self
            .engine
            .create_container(&spec)
            .await
            .map_err(|e| image_missing(e, &row.image))?;
        self.store.set_box_container(&row.id, &container)?;
        // Hook files are in place before the box's first process runs, as
        // hooks are promised. Extension files only need to be there when
        // create returns, so they travel while the container starts.
        self.engine.upload_files(&container, &hook_files).await?;
        let (started, equipped) = tokio::join!(
            self.engine.start_container(&container),
            self.engine.upload_files(&container, &equipment_files)
        );
        started?;
        equipped?;
        self.announce_started(row, &container).await?;

        // A warm box's login starts when it is claimed: it is nobody's yet.
        match self.config().profile_for(&row.image).filter(|_| !row.warm) {
            Some(profile) => {
                let profile = profile.clone();
                let url = self.start_activation(&row.id, &container, &profile).await?;
                Ok(Some(url))
            }
            None => {
                self.store.transition_box(
                    &row.id,
                    BoxState::Creating,
                    BoxState::Ready,
                    None,
                    now_ms(),
                )?;
                Ok(None)
            }
        }
    }

    /// A runtime the engine does not know is the user's to install: said
    /// before anything is made, naming it.
    async fn check_runtime(&self, runtime: Option<&str>) -> Result<()> {
        let Some(runtime) = runtime else {
            return Ok(());
        };
        let known = self.engine.runtimes().await?;
        if known.iter().any(|r| r == runtime) {
            Ok(())
        } else {
            Err(CoreError::RuntimeNotInstalled {
                runtime: runtime.to_owned(),
                known: known.join(", "),
            })
        }
    }

    /// Tells the extensions the box runs; the first refusal fails the box.
    /// A box whose main process ended meanwhile fails with that cause, in
    /// the user's terms, rather than with whatever step noticed it.
    pub(crate) async fn announce_started(&self, row: &BoxRow, container: &str) -> Result<()> {
        match self.guard_started(row, container).await {
            Ok(()) => Ok(()),
            Err(err) => match self.exited_meanwhile(container).await {
                Some(code) => Err(CoreError::BoxExited(code)),
                None => Err(err),
            },
        }
    }

    /// The exit code of a container whose main process ended, looking for
    /// a moment: the engine records an exit a little after the process's
    /// namespace is gone, which is often what made the guard fail.
    async fn exited_meanwhile(&self, container: &str) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            match self.engine.exit_code(container).await {
                Ok(Some(code)) => return Some(code),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                _ => return None,
            }
        }
    }

    async fn guard_started(&self, row: &BoxRow, container: &str) -> Result<()> {
        if self.extensions.is_empty() {
            return Ok(());
        }
        let network = self
            .store
            .get_box(&row.id)?
            .and_then(|r| r.network_id)
            .unwrap_or_default();
        if options::own_network_stack(row.runtime.as_deref()) {
            // Docker's embedded resolver is out of such a box's reach; the
            // gateway's own is not.
            let gateway = self.gateway_of(&network).await?;
            self.engine.point_resolver(container, gateway).await?;
        }
        let pid = self.engine.container_pid(container).await?;
        for ext in &self.extensions {
            let started = crate::BoxStarted {
                box_id: &row.id,
                project: &row.project,
                container_id: container,
                pid,
                network_id: &network,
            };
            ext.started(started).await?;
        }
        Ok(())
    }

    /// Runs each `box.create` hook, journalling its state as soon as it
    /// answers so a crash mid-create still replays it to `box.destroy`.
    async fn run_create_hooks(&self, row: &BoxRow) -> Result<Vec<paddock_docker::FileEntry>> {
        let subject = HookBox {
            image: &row.image,
            box_id: &row.id,
            description: &row.description,
            project: &row.project,
        };
        let mut files = Vec::new();
        let mut state = serde_json::Map::new();
        for hook in self
            .config()
            .hooks
            .iter()
            .filter(|h| h.events.iter().any(|e| e == EVENT_CREATE))
        {
            let outcome = hooks::run(hook, EVENT_CREATE, &subject, &Value::Null).await?;
            state.insert(hook.name.clone(), outcome.state);
            self.store
                .set_hook_state(&row.id, &Value::Object(state.clone()))?;
            files.extend(outcome.files);
        }
        Ok(files)
    }

    /// When the engine could not be reached before any Docker object was
    /// made, there is nothing in Docker to look for (and no way to look):
    /// undo the hooks and drop the row now rather than leave a `destroying`
    /// row waiting for the engine.
    async fn undo_create(&self, id: &str, cause: &CoreError) -> Result<()> {
        let Some(row) = self.store.get_box(id)? else {
            return Ok(());
        };
        let untouched = row.network_id.is_none() && row.container_id.is_none();
        if untouched
            && matches!(
                cause,
                CoreError::EngineUnavailable(_) | CoreError::Hook { .. }
            )
        {
            self.run_destroy_hooks(&row).await;
            self.store.delete_box(id)?;
            return Ok(());
        }
        self.teardown(id, NetworkAfter::Discard, "its creation failed")
            .await
    }

    /// Destroys a box: container, network, hook state, row.
    pub async fn destroy(&self, id: &str) -> Result<()> {
        let mut span = crate::metrics::operation("box.destroy", Some(id));
        let done = match self.remote_box(id) {
            Ok(Some(remote)) => self.remote_destroy(&remote).await,
            Ok(None) => self.destroy_because(id, "the box was destroyed").await,
            Err(e) => Err(e),
        };
        crate::metrics::destroyed(&done);
        crate::metrics::ended(&mut span, &done);
        done
    }

    /// Destroys a box, telling the extensions why (`reason`, a person's
    /// words: the reaper's time to live, idleness, a login never done).
    pub(crate) async fn destroy_because(&self, id: &str, reason: &str) -> Result<()> {
        validate::box_id(id).map_err(|_| CoreError::NotFound(id.to_owned()))?;
        let _guard = self.lock_box(id).await;
        if self.store.get_box(id)?.is_none() {
            return Err(CoreError::NotFound(id.to_owned()));
        }
        self.teardown(id, NetworkAfter::Recycle, reason).await?;
        tracing::info!(box_id = %id, reason, "box destroyed");
        drop(_guard);
        self.forget_lock(id);
        Ok(())
    }

    /// Removes whatever exists of a box, idempotently. The caller holds the
    /// box's lock (or is the single-threaded start-up reconcile). On error
    /// the row stays in `destroying`, so the work is finished later.
    pub(crate) async fn teardown(
        &self,
        id: &str,
        network_after: NetworkAfter,
        reason: &str,
    ) -> Result<()> {
        let Some(row) = self.store.get_box(id)? else {
            return Ok(());
        };
        self.store
            .set_box_state(id, BoxState::Destroying, row.error.as_deref(), now_ms())?;
        self.logins.forget(id);
        let owned = self
            .engine
            .list_labelled(&[(labels::INSTANCE, &self.instance), (labels::BOX, id)])
            .await?;
        for (container, _) in &owned.containers {
            self.engine.remove_container(container).await?;
        }
        for ext in &self.extensions {
            ext.removed(&row.id, &row.project, reason);
        }
        if let Some(network) = row.network_id.clone() {
            match network_after {
                NetworkAfter::Recycle => self.release_network(network).await?,
                NetworkAfter::Discard => self.discard_network(&network).await?,
            }
        }
        self.run_destroy_hooks(&row).await;
        self.store.delete_box(id)?;
        Ok(())
    }

    /// A failing destroy hook is logged, not fatal: the Docker objects are
    /// already gone and keeping the row would only retry a broken hook
    /// forever.
    async fn run_destroy_hooks(&self, row: &BoxRow) {
        let subject = HookBox {
            image: &row.image,
            box_id: &row.id,
            description: &row.description,
            project: &row.project,
        };
        for hook in self
            .config()
            .hooks
            .iter()
            .filter(|h| h.events.iter().any(|e| e == EVENT_DESTROY))
        {
            let state = row
                .hook_state
                .get(&hook.name)
                .cloned()
                .unwrap_or(Value::Null);
            if let Err(e) = hooks::run(hook, EVENT_DESTROY, &subject, &state).await {
                tracing::error!(box_id = %row.id, error = %e, "box.destroy hook failed");
            }
        }
    }
}

/// The engine's "no such image" in the user's terms, naming the image.
pub(crate) fn image_missing(e: EngineError, image: &str) -> CoreError {
    match e {
        EngineError::NotFound(m) if m == image || m.contains("image") => {
            CoreError::ImageNotFound(image.to_owned())
        }
        other => other.into(),
    }
}

/// The id a create asked for, checked, or a new one.
pub(crate) fn box_id_or_new(named: Option<&str>) -> Result<String> {
    match named.filter(|i| !i.is_empty()) {
        Some(id) => {
            validate::box_id(id)?;
            Ok(id.to_owned())
        }
        None => Ok(format!("box-{}", paddock_secret::random_id(5))),
    }
}
