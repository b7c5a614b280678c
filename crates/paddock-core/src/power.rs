//! Stopping and starting a box, and hearing that its main process ended.
//!
//! A stopped box keeps its container, its filesystem and its network; it
//! comes back guarded: the host fence checked before its container starts,
//! the firewall in its namespace before `start` returns. The store says
//! `stopped` before the engine is asked to stop, so the death that follows
//! is known to be paddock's doing, and a crash in between leaves a row the
//! next start finishes (see `reconcile`).

use paddock_store::BoxState;

use crate::model::{BoxView, now_ms};
use crate::{BoxService, BoxSetup, CoreError, Result};

/// States a box's main process can end in on its own.
const LIVE: [BoxState; 3] = [
    BoxState::Ready,
    BoxState::PendingActivation,
    BoxState::Failed,
];

impl BoxService {
    /// Stops the box's processes, keeping its filesystem. Stopping a
    /// stopped box is not an error.
    pub async fn stop(&self, id: &str) -> Result<BoxView> {
        let mut span = crate::metrics::operation("box.stop", Some(id));
        let stopped = match self.remote_box(id) {
            Ok(Some(remote)) => self.remote_power(&remote, false).await,
            Ok(None) => self.stop_locked(id).await,
            Err(e) => Err(e),
        };
        crate::metrics::ended(&mut span, &stopped);
        stopped
    }

    async fn stop_locked(&self, id: &str) -> Result<BoxView> {
        let (_guard, row) = self.locked_row(id).await?;
        match row.state {
            BoxState::Stopped => return Ok(BoxView::from(&row)),
            BoxState::Ready | BoxState::Exited => {}
            BoxState::PendingActivation | BoxState::Failed => {
                return Err(wrong_state(
                    id,
                    row.state,
                    "its login has not finished; destroy it instead (a stopped login cannot resume)",
                ));
            }
            BoxState::Creating | BoxState::Destroying => {
                return Err(wrong_state(
                    id,
                    row.state,
                    "try again once that has finished",
                ));
            }
        }
        let container = row
            .container_id
            .clone()
            .ok_or_else(|| CoreError::Conflict(format!("box {id:?} has no container")))?;
        let from = [BoxState::Ready, BoxState::Exited];
        self.store
            .transition_box_from(id, &from, BoxState::Stopped, None, None, now_ms())?;
        if let Err(e) = self
            .engine
            .stop_container(&container, self.config().boxes.stop_grace_secs)
            .await
        {
            // Still running, most likely: say so rather than "stopped".
            self.store.transition_box_from(
                id,
                &[BoxState::Stopped],
                row.state,
                row.exit_code,
                row.error.as_deref(),
                now_ms(),
            )?;
            return Err(e.into());
        }
        tracing::info!(box_id = %id, "box stopped");
        self.get(id)
    }

    /// Starts a stopped (or exited) box again, guarded before it returns.
    /// Starting a running box is not an error.
    pub async fn start(&self, id: &str) -> Result<BoxView> {
        let mut span = crate::metrics::operation("box.start", Some(id));
        let started = match self.remote_box(id) {
            Ok(Some(remote)) => self.remote_power(&remote, true).await,
            Ok(None) => self.start_locked(id).await,
            Err(e) => Err(e),
        };
        crate::metrics::ended(&mut span, &started);
        started
    }

    async fn start_locked(&self, id: &str) -> Result<BoxView> {
        let (_guard, row) = self.locked_row(id).await?;
        match row.state {
            BoxState::Stopped | BoxState::Exited => {}
            BoxState::Ready | BoxState::PendingActivation | BoxState::Failed => {
                return Ok(BoxView::from(&row));
            }
            BoxState::Creating | BoxState::Destroying => {
                return Err(wrong_state(
                    id,
                    row.state,
                    "try again once that has finished",
                ));
            }
        }
        let (Some(container), Some(network)) = (row.container_id.clone(), row.network_id.clone())
        else {
            return Err(CoreError::Conflict(format!(
                "box {id:?} has no container or network to start"
            )));
        };
        let gateway = self.gateway_of(&network).await?;
        for ext in &self.extensions {
            let setup = BoxSetup {
                box_id: &row.id,
                project: &row.project,
                network_id: &network,
                gateway,
            };
            ext.starting(setup).await?;
        }
        self.engine.start_container(&container).await?;
        if let Err(e) = self.announce_started(&row, &container).await {
            // Never left running unguarded.
            if let Err(stop) = self
                .engine
                .stop_container(&container, self.config().boxes.stop_grace_secs)
                .await
            {
                tracing::error!(box_id = %id, error = %stop, "cannot stop a box whose guards failed; the next start stops it");
            }
            return Err(e);
        }
        let now = now_ms();
        self.store.transition_box_from(
            id,
            &[BoxState::Stopped, BoxState::Exited],
            BoxState::Ready,
            None,
            None,
            now,
        )?;
        self.note_use(id);
        tracing::info!(box_id = %id, "box started");
        self.get(id)
    }

    /// The box's lock, and its row as it is under that lock.
    async fn locked_row(
        &self,
        id: &str,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, paddock_store::BoxRow)> {
        self.user_box(id)?;
        let guard = self.lock_box(id).await;
        Ok((guard, self.user_box(id)?))
    }

    /// The engine saw a box's main process end. Unless paddock ended it
    /// (the row already says stopped or destroying), the box is `exited`
    /// with that code, so get and list stop calling it ready.
    pub(crate) fn main_process_ended(&self, box_id: &str, exit_code: Option<i64>) {
        let error = match exit_code {
            Some(code) => format!("the box's main process exited with code {code}"),
            None => "the box's main process exited".to_owned(),
        };
        match self.store.transition_box_from(
            box_id,
            &LIVE,
            BoxState::Exited,
            exit_code,
            Some(&error),
            now_ms(),
        ) {
            Ok(true) => {
                self.logins.forget(box_id);
                tracing::warn!(box_id, ?exit_code, "a box's main process exited");
            }
            Ok(false) => {}
            Err(e) => tracing::error!(box_id, error = %e, "cannot record that a box exited"),
        }
    }
}

fn wrong_state(id: &str, state: BoxState, hint: &'static str) -> CoreError {
    CoreError::WrongState {
        id: id.to_owned(),
        state: state.as_str(),
        hint,
    }
}
