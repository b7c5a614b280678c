//! The spoke's side of the work: what the hub asks of its boxes, done by
//! the spoke's own box service (its engine, gateway, firewall and DNS),
//! and the hub's verdicts applied in the spoke's own clearance hub, which
//! holds the connections.

use std::sync::Arc;
use std::time::Duration;

use paddock_clearance::{ClearanceEvent, Hub, Subscription, Verdict, VerdictScope};
use paddock_core::remote::{FailureKind, LOCAL, RemoteCall, RemoteFailure, RemoteReply, ShieldSet};
use paddock_core::{BoxService, CoreError, CreateBox};
use paddock_egress::{BoxIdentity, Egress};

use crate::wire::SpokeVerdict;

pub struct Local {
    boxes: Arc<BoxService>,
    hub: Arc<Hub>,
    /// The spoke's gateway (its boxes' shields), when egress is on.
    egress: Option<Arc<Egress>>,
}

impl Local {
    pub fn new(boxes: Arc<BoxService>, hub: Arc<Hub>, egress: Option<Arc<Egress>>) -> Arc<Self> {
        Arc::new(Self { boxes, hub, egress })
    }

    /// How many boxes the spoke has now.
    pub(crate) fn box_count(&self) -> u32 {
        self.boxes
            .list()
            .map(|b| u32::try_from(b.len()).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }

    pub(crate) async fn handle(&self, call: RemoteCall) -> Result<RemoteReply, RemoteFailure> {
        let failure = |e: CoreError| RemoteFailure::from(&e);
        match call {
            RemoteCall::Create { request } => {
                // Always here: a spoke places nothing further.
                let request = CreateBox {
                    spoke: Some(LOCAL.to_owned()),
                    ..request
                };
                let created = self.boxes.create(request).await.map_err(failure)?;
                Ok(RemoteReply::Created(Box::new(created)))
            }
            RemoteCall::Get { box_id } => {
                let view = self.boxes.get_with_usage(&box_id).await.map_err(failure)?;
                Ok(RemoteReply::View(Box::new(self.with_shield(view))))
            }
            RemoteCall::List => {
                let views = self.boxes.list_with_usage().await.map_err(failure)?;
                Ok(RemoteReply::Views(
                    views.into_iter().map(|v| self.with_shield(v)).collect(),
                ))
            }
            RemoteCall::Exec { box_id, argv } => Ok(RemoteReply::Exec(
                self.boxes.exec_argv(&box_id, argv).await.map_err(failure)?,
            )),
            RemoteCall::Logs { box_id, tail } => Ok(RemoteReply::Logs(
                self.boxes.logs(&box_id, tail).await.map_err(failure)?,
            )),
            RemoteCall::Destroy { box_id } => {
                self.boxes.destroy(&box_id).await.map_err(failure)?;
                Ok(RemoteReply::Done)
            }
            RemoteCall::Stop { box_id } => Ok(RemoteReply::View(Box::new(
                self.boxes.stop(&box_id).await.map_err(failure)?,
            ))),
            RemoteCall::Start { box_id } => Ok(RemoteReply::View(Box::new(
                self.boxes.start(&box_id).await.map_err(failure)?,
            ))),
            RemoteCall::Shield {
                box_id,
                state,
                ttl_secs,
                by,
            } => self.shield(&box_id, &state, ttl_secs, &by),
        }
    }

    /// The view with the shield this spoke's gateway has for the box.
    fn with_shield(&self, mut view: paddock_core::BoxView) -> paddock_core::BoxView {
        if let Some(egress) = &self.egress {
            let shield = egress.shield_of(&view.box_id);
            view.shield = Some(shield.as_str().to_owned());
            view.shield_until_ms = shield.until_ms();
        }
        view
    }

    fn shield(
        &self,
        box_id: &str,
        state: &str,
        ttl_secs: Option<u64>,
        by: &str,
    ) -> Result<RemoteReply, RemoteFailure> {
        let refused = |message: String| RemoteFailure {
            kind: FailureKind::Invalid,
            message,
        };
        let egress = self
            .egress
            .as_ref()
            .ok_or_else(|| refused("egress is disabled on this spoke".into()))?;
        let view = self
            .boxes
            .get_here(box_id)
            .map_err(|e| RemoteFailure::from(&e))?;
        let who = BoxIdentity {
            box_id: view.box_id,
            project: view.project,
        };
        let set = egress
            .set_shield(&who, state, ttl_secs.map(Duration::from_secs), by)
            .map_err(|e| refused(e.to_string()))?;
        Ok(RemoteReply::Shield(ShieldSet {
            state: set.as_str().to_owned(),
            until_ms: set.until_ms(),
        }))
    }

    /// Applies the hub's verdict to the request the spoke holds; the
    /// spoke's hub checks it as any other (the request must be held and
    /// the box and destination must be the ones it announced).
    pub(crate) async fn verdict(&self, v: SpokeVerdict) -> Result<(), String> {
        let scope = VerdictScope::parse(&v.scope)
            .ok_or_else(|| format!("unknown verdict scope {:?}", v.scope))?;
        let verdict = Verdict {
            container: v.container,
            request_id: v.request_id,
            dest: v.dest,
            action: v.action,
            scope,
            ttl: v.ttl_secs.map(Duration::from_secs),
            decided_by: format!("hub: {}", v.decided_by),
        };
        match self.hub.verdict(verdict).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the verdict was not applied".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        self.hub.subscribe()
    }

    /// The requests the spoke holds now, as announced (a hub that
    /// reconnects learns of them again).
    pub(crate) fn held(&self) -> Vec<ClearanceEvent> {
        self.hub.pending().into_iter().map(|p| p.event).collect()
    }
}
