//! The box service's side of boxes on spokes: placing a create, and
//! routing get, list, exec, logs, power, shield and destroy of a spoke's
//! box to it. The hub's row of a remote box is written before the spoke
//! is asked and goes only once the spoke no longer has the box, so a cut
//! link loses nothing: the box is shown as last seen, marked unreachable, and
//! reconciled when its spoke returns.

use std::sync::Arc;

use paddock_store::{BoxState, SpokeBoxRow};

use crate::model::{BoxView, CreateBox, CreatedBox, ExecResult, now_ms};
use crate::remote::{RemoteCall, RemoteReply, SpokeCallError, Spokes, place};
use crate::{BoxService, CoreError, Result, validate};

impl BoxService {
    /// Links the hub's spokes: from now on a create may be placed on one.
    /// Set once, at start-up.
    pub fn set_spokes(&self, spokes: Arc<dyn Spokes>) {
        let _ = self.spokes.set(spokes);
    }

    /// The spoke row of a box that is not this machine's.
    pub(crate) fn remote_box(&self, id: &str) -> Result<Option<SpokeBoxRow>> {
        if validate::box_id(id).is_err() {
            return Ok(None);
        }
        if self.store.get_box(id)?.is_some() {
            return Ok(None);
        }
        Ok(self.store.get_spoke_box(id)?)
    }

    /// How the box looked when its spoke last said, tagged with it.
    pub(crate) fn stored_view(&self, row: &SpokeBoxRow) -> BoxView {
        let mut view =
            serde_json::from_str::<BoxView>(&row.view_json).unwrap_or_else(|_| BoxView {
                box_id: row.id.clone(),
                project: row.project.clone(),
                image: String::new(),
                description: String::new(),
                state: BoxState::Creating,
                error: None,
                exit_code: None,
                created_at: String::new(),
                expires_at: None,
                container: String::new(),
                runtime: None,
                read_only: false,
                usage: None,
                spoke: None,
                unreachable: false,
                shield: None,
                shield_until_ms: None,
            });
        // The hub's record decides whose and which box it is.
        view.box_id = row.id.clone();
        view.project = row.project.clone();
        view.spoke = Some(row.spoke.clone());
        view.unreachable = !self.spoke_connected(&row.spoke);
        view.usage = None;
        view
    }

    fn spoke_connected(&self, spoke: &str) -> bool {
        self.spokes.get().is_some_and(|s| s.is_connected(spoke))
    }

    /// Where a create goes: `None` is here.
    pub(crate) fn placement(&self, req: &CreateBox) -> Result<Option<String>> {
        let named = req.spoke.as_deref().filter(|s| !s.is_empty());
        let Some(spokes) = self.spokes.get() else {
            return match named {
                None | Some(crate::remote::LOCAL) => Ok(None),
                Some(name) => Err(CoreError::SpokeUnreachable(name.to_owned())),
            };
        };
        if spokes.boxes_here() {
            let local = (self.store.count_boxes()?, self.config().boxes.max_boxes);
            return place(named, local, &spokes.loads());
        }
        // This machine counts as full: only a spoke with room takes it.
        match place(named, (0, 0), &spokes.loads())? {
            Some(spoke) => Ok(Some(spoke)),
            None if named.is_some() => Err(CoreError::Invalid(
                "this hub runs no boxes itself ([spokes] boxes_here = false): name a spoke".into(),
            )),
            None => Err(CoreError::Conflict(
                "no linked spoke has room for another box, and this hub runs none itself ([spokes] boxes_here = false)".into(),
            )),
        }
    }

    async fn ask(&self, spoke: &str, id: &str, call: RemoteCall) -> Result<RemoteReply> {
        let Some(spokes) = self.spokes.get() else {
            return Err(CoreError::SpokeUnreachable(spoke.to_owned()));
        };
        spokes
            .call(spoke, call)
            .await
            .map_err(|e| e.for_box(id, spoke))
    }

    /// Makes the box on `spoke`, its row here first.
    pub(crate) async fn create_on_spoke(
        &self,
        spoke: String,
        req: CreateBox,
    ) -> Result<CreatedBox> {
        validate::project(&req.project)?;
        let id = crate::lifecycle::box_id_or_new(req.box_id.as_deref())?;
        let now = now_ms();
        let mut row = SpokeBoxRow {
            id: id.clone(),
            spoke: spoke.clone(),
            project: req.project.clone(),
            view_json: String::new(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        row.view_json = serde_json::to_string(&self.stored_view(&row)).unwrap_or_default();
        if !self.store.insert_spoke_box(&row)? {
            return Err(CoreError::Conflict(format!("a box {id:?} exists already")));
        }
        let request = CreateBox {
            box_id: Some(id.clone()),
            spoke: None,
            ..req
        };
        let asked = {
            let _on_its_way = OnItsWay::mark(self, &id);
            self.ask(&spoke, &id, RemoteCall::Create { request }).await
        };
        match asked {
            Ok(RemoteReply::Created(created)) => {
                let mut created = *created;
                created.view = self.record_view(&row, created.view)?;
                tracing::info!(box_id = %id, %spoke, "box created on a spoke");
                Ok(created)
            }
            // The link went mid-create, or the spoke answered something
            // else: the box may exist there. The row stays; the spoke's
            // list settles it.
            Ok(_) => Err(garbled(&row)),
            Err(e @ CoreError::SpokeUnreachable(_)) => Err(e),
            Err(e) => {
                self.store.delete_spoke_box(&id, &spoke)?;
                Err(e)
            }
        }
    }

    /// Keeps what the spoke said of its box (never its id or project).
    fn record_view(&self, row: &SpokeBoxRow, mut view: BoxView) -> Result<BoxView> {
        view.box_id = row.id.clone();
        view.project = row.project.clone();
        view.spoke = Some(row.spoke.clone());
        view.unreachable = false;
        let mut kept = view.clone();
        kept.usage = None;
        let json = serde_json::to_string(&kept).unwrap_or_default();
        self.store
            .update_spoke_box(&row.id, &row.spoke, &json, now_ms())?;
        Ok(view)
    }

    /// The box as its spoke sees it now, or as last seen when the spoke
    /// is away.
    pub(crate) async fn remote_view(&self, row: &SpokeBoxRow) -> Result<BoxView> {
        let call = RemoteCall::Get {
            box_id: row.id.clone(),
        };
        match self.ask(&row.spoke, &row.id, call).await {
            Ok(RemoteReply::View(view)) => self.record_view(row, *view),
            Ok(_) => Err(garbled(row)),
            Err(CoreError::NotFound(_)) => {
                self.store.delete_spoke_box(&row.id, &row.spoke)?;
                Err(CoreError::NotFound(row.id.clone()))
            }
            Err(CoreError::SpokeUnreachable(_)) => Ok(self.stored_view(row)),
            Err(e) => Err(e),
        }
    }

    /// The boxes on every spoke: fresh from the connected ones, as last
    /// seen from the others.
    pub(crate) async fn remote_views(&self) -> Result<Vec<BoxView>> {
        let rows = self.store.list_spoke_boxes()?;
        let mut spokes: Vec<&str> = rows.iter().map(|r| r.spoke.as_str()).collect();
        spokes.sort_unstable();
        spokes.dedup();
        let asked = spokes.iter().map(|spoke| async move {
            if self.spoke_connected(spoke) {
                let _ = self.reconcile_spoke(spoke).await;
            }
        });
        futures_util::future::join_all(asked).await;
        Ok(self
            .store
            .list_spoke_boxes()?
            .iter()
            .map(|row| self.stored_view(row))
            .collect())
    }

    /// Brings the hub's rows of `spoke`'s boxes in line with its list:
    /// each view is kept, a row the spoke does not list (and that was
    /// not just written) goes. Boxes the spoke lists that the hub never
    /// placed there are not taken in: a spoke speaks only for its own.
    pub async fn reconcile_spoke(&self, spoke: &str) -> Result<()> {
        let asked_at = now_ms();
        let listed = match self.ask(spoke, "", RemoteCall::List).await? {
            RemoteReply::Views(views) => views,
            _ => return Err(SpokeCallError::Garbled(spoke.to_owned()).for_box("", spoke)),
        };
        let rows: Vec<SpokeBoxRow> = self
            .store
            .list_spoke_boxes()?
            .into_iter()
            .filter(|r| r.spoke == spoke)
            .collect();
        let listed_ids: Vec<String> = listed.iter().map(|v| v.box_id.clone()).collect();
        for view in listed {
            match rows.iter().find(|r| r.id == view.box_id) {
                Some(row) => {
                    self.record_view(row, view)?;
                }
                None => {
                    tracing::warn!(%spoke, box_id = %view.box_id, "a spoke listed a box the hub did not place there; ignored");
                }
            }
        }
        // A row written after the list was asked for, or whose create is
        // still on its way to the spoke, is not a box it lost.
        for row in rows {
            let in_flight = self.creating_on_spokes.lock().contains(&row.id);
            if row.updated_at_ms < asked_at && !listed_ids.contains(&row.id) && !in_flight {
                tracing::info!(%spoke, box_id = %row.id, "a box its spoke no longer has is forgotten");
                self.store.delete_spoke_box(&row.id, spoke)?;
            }
        }
        Ok(())
    }

    pub(crate) async fn remote_exec(
        &self,
        row: &SpokeBoxRow,
        argv: Vec<String>,
    ) -> Result<ExecResult> {
        let call = RemoteCall::Exec {
            box_id: row.id.clone(),
            argv,
        };
        match self.ask(&row.spoke, &row.id, call).await? {
            RemoteReply::Exec(out) => Ok(out),
            _ => Err(garbled(row)),
        }
    }

    pub(crate) async fn remote_logs(&self, row: &SpokeBoxRow, tail: Option<u32>) -> Result<String> {
        let call = RemoteCall::Logs {
            box_id: row.id.clone(),
            tail,
        };
        match self.ask(&row.spoke, &row.id, call).await? {
            RemoteReply::Logs(text) => Ok(text),
            _ => Err(garbled(row)),
        }
    }

    /// A new activation link for a spoke's box waiting for its login.
    pub(crate) async fn remote_renew_activation(&self, row: &SpokeBoxRow) -> Result<String> {
        let call = RemoteCall::RenewActivation {
            box_id: row.id.clone(),
        };
        match self.ask(&row.spoke, &row.id, call).await? {
            RemoteReply::ActivationUrl(url) => Ok(url),
            _ => Err(garbled(row)),
        }
    }

    /// The spoke a box runs on; `None` for a box of this machine (or none).
    pub fn spoke_of(&self, id: &str) -> Result<Option<String>> {
        Ok(self.remote_box(id)?.map(|row| row.spoke))
    }

    /// Stops or starts (`start`) a spoke's box there.
    pub(crate) async fn remote_power(&self, row: &SpokeBoxRow, start: bool) -> Result<BoxView> {
        let box_id = row.id.clone();
        let call = if start {
            RemoteCall::Start { box_id }
        } else {
            RemoteCall::Stop { box_id }
        };
        match self.ask(&row.spoke, &row.id, call).await? {
            RemoteReply::View(view) => self.record_view(row, *view),
            _ => Err(garbled(row)),
        }
    }

    /// Sets the shield of a box on a spoke, there (its gateway holds its
    /// connections).
    pub async fn shield_on_spoke(
        &self,
        id: &str,
        state: &str,
        ttl_secs: Option<u64>,
        by: &str,
    ) -> Result<crate::remote::ShieldSet> {
        let row = self
            .remote_box(id)?
            .ok_or_else(|| CoreError::NotFound(id.to_owned()))?;
        let call = RemoteCall::Shield {
            box_id: row.id.clone(),
            state: state.to_owned(),
            ttl_secs,
            by: by.to_owned(),
        };
        match self.ask(&row.spoke, &row.id, call).await? {
            RemoteReply::Shield(set) => {
                // The hub's view of the box shows the new shield.
                if let Ok(mut view) = serde_json::from_str::<BoxView>(&row.view_json) {
                    view.shield = Some(set.state.clone());
                    view.shield_until_ms = set.until_ms;
                    self.record_view(&row, view)?;
                }
                Ok(set)
            }
            _ => Err(garbled(&row)),
        }
    }

    /// Destroys the box on its spoke; its row goes once the spoke has
    /// no such box. An unreachable spoke keeps both.
    pub(crate) async fn remote_destroy(&self, row: &SpokeBoxRow) -> Result<()> {
        let call = RemoteCall::Destroy {
            box_id: row.id.clone(),
        };
        match self.ask(&row.spoke, &row.id, call).await {
            Ok(RemoteReply::Done) | Err(CoreError::NotFound(_)) => {
                self.store.delete_spoke_box(&row.id, &row.spoke)?;
                tracing::info!(box_id = %row.id, spoke = %row.spoke, "box destroyed on its spoke");
                Ok(())
            }
            Ok(_) => Err(garbled(row)),
            Err(e) => Err(e),
        }
    }
}

/// A spoke answered a call about `row`'s box with the wrong kind of reply.
pub(crate) fn garbled(row: &SpokeBoxRow) -> CoreError {
    SpokeCallError::Garbled(row.spoke.clone()).for_box(&row.id, &row.spoke)
}

/// A create on its way to a spoke, for as long as this lives (a caller
/// that gives up mid-create drops it too).
struct OnItsWay<'a> {
    service: &'a BoxService,
    id: String,
}

impl<'a> OnItsWay<'a> {
    fn mark(service: &'a BoxService, id: &str) -> Self {
        service.creating_on_spokes.lock().insert(id.to_owned());
        Self {
            service,
            id: id.to_owned(),
        }
    }
}

impl Drop for OnItsWay<'_> {
    fn drop(&mut self) {
        self.service.creating_on_spokes.lock().remove(&self.id);
    }
}
