//! Warm pools: per `[[pools]]` entry, boxes of a project and image made
//! ahead — the same labels, environment, git token, network, fence and
//! firewall a create would give them, since Docker fixes labels and
//! environment when a container is made — but nobody's: not listed, not
//! reachable by id, never idle. A create for that project and image (and
//! the same runtime and root) claims the oldest in one store statement, so
//! it becomes an ordinary box made now; its login, if its image has one,
//! starts then. The pool is filled again in the background, one box at a
//! time, by the maintenance loop (woken at once by a claim).

use tokio::sync::{Mutex, Notify};

use crate::model::{BoxView, CreateBox, CreatedBox, expires_at_ms, now_ms};
use crate::options::BoxOptions;
use crate::{BoxService, CoreError, Result};
use paddock_store::{BoxState, WarmClaim};

/// What the service keeps for its pools.
#[derive(Default)]
pub(crate) struct PoolState {
    /// A box was claimed: fill the pools now rather than at the next tick.
    pub(crate) wanted: Notify,
    /// One filler at a time, so two never make the same missing box.
    filling: Mutex<()>,
}

/// What a create asks a warm box to be.
pub(crate) struct WarmWanted<'a> {
    pub project: &'a str,
    pub image: &'a str,
    pub options: &'a BoxOptions,
    pub description: &'a str,
    pub ttl_secs: Option<u64>,
}

impl BoxService {
    /// Claims a warm box for a create, if a pool keeps one that fits.
    pub(crate) async fn claim_warm(&self, wanted: WarmWanted<'_>) -> Result<Option<CreatedBox>> {
        let pooled =
            self.config().pools.iter().any(|p| {
                p.project == wanted.project && self.config().pool_image(p) == wanted.image
            });
        if !pooled {
            return Ok(None);
        }
        let now = now_ms();
        let claim = WarmClaim {
            project: wanted.project,
            image: wanted.image,
            runtime: wanted.options.runtime.as_deref(),
            read_only: wanted.options.read_only,
            description: wanted.description,
            expires_at_ms: expires_at_ms(now, wanted.ttl_secs),
        };
        let claimed = self.store.claim_warm_box(&claim, now)?;
        self.pools.wanted.notify_one();
        let Some(id) = claimed else {
            return Ok(None);
        };
        tracing::info!(box_id = %id, project = wanted.project, image = wanted.image, "claimed a warm box");
        let guard = self.lock_box(&id).await;
        let activation_url = match self.config().profile_for(wanted.image).cloned() {
            Some(profile) => match self.start_claimed_login(&id, &profile).await {
                Ok(url) => Some(url),
                Err(e) => {
                    // The destroy takes the box's lock itself.
                    drop(guard);
                    if let Err(gone) = self.destroy_because(&id, "its login could not start").await
                    {
                        tracing::warn!(box_id = %id, error = %gone, "cannot remove a claimed box whose login failed");
                    }
                    return Err(e);
                }
            },
            None => None,
        };
        let row = self
            .store
            .get_box(&id)?
            .ok_or_else(|| CoreError::NotFound(id.clone()))?;
        Ok(Some(CreatedBox {
            view: BoxView::from(&row),
            activation_url,
        }))
    }

    /// A claimed box whose image logs in: its login starts as a fresh
    /// box's would (the row goes back through `creating`, which the
    /// activation expects).
    async fn start_claimed_login(
        &self,
        id: &str,
        profile: &crate::config::ImageProfile,
    ) -> Result<String> {
        let container = self
            .store
            .get_box(id)?
            .and_then(|r| r.container_id)
            .ok_or_else(|| CoreError::NotFound(id.to_owned()))?;
        self.store
            .transition_box(id, BoxState::Ready, BoxState::Creating, None, now_ms())?;
        self.start_activation(id, &container, profile).await
    }

    /// Makes what each pool lacks (and removes what a smaller pool no
    /// longer wants), one box at a time. A pool that cannot grow (the box
    /// limit, an image the engine lacks) is tried again at the next tick.
    pub async fn fill_pools(&self) {
        let Ok(_one) = self.pools.filling.try_lock() else {
            return;
        };
        let config = self.config();
        for pool in &config.pools {
            let image = config.pool_image(pool);
            let have = match self.store.warm_boxes(&pool.project, image) {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the warm pools");
                    return;
                }
            };
            for extra in have.iter().skip(pool.size) {
                if let Err(e) = self
                    .destroy_because(extra, "its warm pool is smaller now")
                    .await
                {
                    tracing::warn!(box_id = %extra, error = %e, "cannot shrink a warm pool");
                }
            }
            for _ in have.len()..pool.size {
                let req = CreateBox {
                    project: pool.project.clone(),
                    image: Some(image.to_owned()),
                    ..CreateBox::default()
                };
                match self.make_box(req, &|_| {}, true).await {
                    Ok(made) => {
                        tracing::debug!(box_id = %made.view.box_id, project = %pool.project, "a warm box is ready")
                    }
                    Err(e) => {
                        tracing::warn!(project = %pool.project, image, error = %e, "cannot fill a warm pool; will retry");
                        break;
                    }
                }
            }
        }
    }
}
