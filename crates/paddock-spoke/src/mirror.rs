//! The hub's mirror of its spokes' held connections. A spoke holds the
//! connection (its gateway), so the hub holds a request of its own for
//! it, in its own hub, under a request id it made: people see one
//! pending queue, and the hub's rule that a verdict must cite a request
//! it emitted holds unchanged. A verdict here is sent to the spoke under
//! the spoke's own id, and the spoke's answer is the hub's acknowledgement.
//!
//! A spoke speaks only for the boxes the hub placed on it: an event for
//! any other box is dropped, and the project an event is shown under is
//! the hub's record, never the spoke's word.

use std::sync::Arc;

use paddock_clearance::{ClearanceEvent, HolderKey, Hub, Mirrored, Mirroring, NotApplied, Ticket};
use paddock_store::Store;

use crate::calls::{Answer, Session};
use crate::wire::{HubMessage, SpokeVerdict};

pub(crate) struct Mirror {
    hub: Arc<Hub>,
    store: Arc<Store>,
    mirrored: Mirrored,
}

impl Mirror {
    pub(crate) fn new(hub: Arc<Hub>, store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self {
            mirrored: Mirrored::new(hub.clone()),
            hub,
            store,
        })
    }

    /// Takes in one event `spoke` sent.
    pub(crate) fn on_event(
        self: &Arc<Self>,
        spoke: &str,
        session: &Session,
        mut event: ClearanceEvent,
    ) {
        let row = match self.store.get_spoke_box(&event.container) {
            Ok(Some(row)) if row.spoke == spoke => row,
            Ok(Some(_)) => {
                tracing::warn!(%spoke, box_id = %event.container, kind = %event.kind, "a spoke sent an event for another spoke's box; dropped");
                return;
            }
            Ok(None)
                if self
                    .store
                    .get_box(&event.container)
                    .ok()
                    .flatten()
                    .is_some() =>
            {
                tracing::warn!(%spoke, box_id = %event.container, kind = %event.kind, "a spoke sent an event for one of the hub's own boxes; dropped");
                return;
            }
            // The spoke's own business: a box made through its own API,
            // a rule of its own. Not the hub's to show.
            Ok(None) => {
                tracing::debug!(%spoke, box_id = %event.container, kind = %event.kind, "an event for a box the hub did not place; not shown");
                return;
            }
            Err(e) => {
                tracing::warn!(%spoke, error = %e, "cannot check a spoke's event against the store; dropped");
                return;
            }
        };
        event.dossier.insert("project".into(), row.project);
        event.dossier.insert("spoke".into(), spoke.to_owned());
        match self.mirrored.take(spoke, &format!("spoke {spoke}"), event) {
            Mirroring::Fresh(key, ticket) => {
                let (mirror, session) = (self.clone(), session.clone());
                tokio::spawn(async move { mirror.until_ended(key, session, ticket).await });
            }
            Mirroring::Done => {}
            Mirroring::Other(event) => self.hub.publish(event),
        }
    }

    /// A verdict given here goes to the spoke under the spoke's id; the
    /// spoke's answer is the acknowledgement.
    async fn until_ended(&self, key: HolderKey, session: Session, ticket: Ticket) {
        let Some((verdict, ack)) = self
            .mirrored
            .decided(&key, ticket, "the spoke never ended it")
            .await
        else {
            return;
        };
        let (spoke, spoke_request) = key;
        let answer = session
            .ask(&spoke, |id| HubMessage::Verdict {
                id,
                verdict: SpokeVerdict::of(spoke_request, &verdict),
            })
            .await;
        ack.answer(match answer {
            Ok(Answer::VerdictDone(applied)) => applied.map_err(NotApplied),
            Ok(Answer::Reply(_)) => Err(NotApplied(format!(
                "spoke {spoke} answered the verdict with something else"
            ))),
            Err(e) => Err(NotApplied(e.to_string())),
        });
    }

    /// The spoke's link went: its requests leave the hub's queue. The
    /// spoke announces those it still holds when it is back.
    pub(crate) fn forget_spoke(&self, spoke: &str) {
        self.mirrored
            .withdraw_all_of(spoke, &format!("spoke {spoke} disconnected"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_clearance::{EventKind, HubConfig, Verdict, VerdictError, VerdictScope};
    use paddock_store::SpokeBoxRow;
    use tokio::sync::mpsc;

    fn with_box(store: &Store, id: &str, spoke: &str, project: &str) {
        store
            .insert_spoke_box(&SpokeBoxRow {
                id: id.into(),
                spoke: spoke.into(),
                project: project.into(),
                view_json: "{}".into(),
                created_at_ms: 1,
                updated_at_ms: 1,
            })
            .unwrap();
    }

    fn blocked(container: &str, request_id: &str, project: &str) -> ClearanceEvent {
        let mut e = ClearanceEvent::new(EventKind::ConnectionBlocked, container);
        e.request_id = request_id.into();
        e.dest = "upstream.test".into();
        e.port = 443;
        e.dossier.insert("project".into(), project.into());
        e
    }

    struct Setup {
        hub: Arc<Hub>,
        mirror: Arc<Mirror>,
        session: Session,
        outgoing: mpsc::Receiver<HubMessage>,
    }

    fn setup() -> Setup {
        let store = Arc::new(Store::open_in_memory().unwrap());
        with_box(&store, "mine", "gpu-1", "alpha");
        with_box(&store, "theirs", "gpu-2", "beta");
        let hub = Hub::new(HubConfig::default());
        let (tx, outgoing) = mpsc::channel(8);
        Setup {
            mirror: Mirror::new(hub.clone(), store),
            hub,
            session: Session::new(tx),
            outgoing,
        }
    }

    #[tokio::test]
    async fn a_spoke_speaks_only_for_its_own_boxes_and_under_the_hubs_project() {
        let s = setup();
        let events = s.hub.subscribe();
        // Another spoke's box, a box nobody placed: dropped.
        let mut lie = ClearanceEvent::new(EventKind::ShieldDown, "theirs");
        lie.dossier.insert("project".into(), "beta".into());
        s.mirror.on_event("gpu-1", &s.session, lie);
        s.mirror.on_event(
            "gpu-1",
            &s.session,
            ClearanceEvent::new(EventKind::ShieldDown, "nobodys"),
        );
        s.mirror
            .on_event("gpu-1", &s.session, blocked("theirs", "r1", "beta"));
        // Its own box, claiming another project: shown under the hub's.
        let mut own = ClearanceEvent::new(EventKind::ShieldUp, "mine");
        own.dossier.insert("project".into(), "beta".into());
        s.mirror.on_event("gpu-1", &s.session, own);
        let first = events.next().await.unwrap();
        assert_eq!(
            (first.event.kind.as_str(), first.event.container.as_str()),
            ("shield_up", "mine")
        );
        assert_eq!(first.event.dossier["project"], "alpha");
        assert_eq!(first.event.dossier["spoke"], "gpu-1");
        assert!(s.hub.pending().is_empty(), "nothing held for a lie");
    }

    #[tokio::test]
    async fn a_verdict_at_the_hub_reaches_the_spoke_once_under_the_spokes_id() {
        let mut s = setup();
        s.mirror
            .on_event("gpu-1", &s.session, blocked("mine", "spoke-req", "alpha"));
        // Announced again after a reconnect: still one request.
        s.mirror
            .on_event("gpu-1", &s.session, blocked("mine", "spoke-req", "alpha"));
        let pending = s.hub.pending();
        assert_eq!(pending.len(), 1);
        let hub_id = pending[0].event.request_id.clone();
        assert_ne!(hub_id, "spoke-req", "the hub cites its own id");

        let verdict = |request_id: &str| Verdict {
            container: "mine".into(),
            request_id: request_id.into(),
            dest: "upstream.test".into(),
            action: "allow".into(),
            scope: VerdictScope::Once,
            ttl: None,
            decided_by: "test".into(),
        };
        // The spoke's own id is not one the hub emitted.
        assert!(matches!(
            s.hub.verdict(verdict("spoke-req")).await,
            Err(VerdictError::UnknownRequest { .. })
        ));
        let hub = s.hub.clone();
        let deciding = tokio::spawn({
            let v = verdict(&hub_id);
            async move { hub.verdict(v).await }
        });
        let Some(HubMessage::Verdict { id, verdict: sent }) = s.outgoing.recv().await else {
            panic!("no verdict went to the spoke");
        };
        assert_eq!(sent.request_id, "spoke-req");
        assert!(s.session.answer(id, Answer::VerdictDone(Ok(()))));
        assert_eq!(deciding.await.unwrap(), Ok(true));
        assert!(
            !s.session.answer(id, Answer::VerdictDone(Ok(()))),
            "a replayed answer applies nothing"
        );
        assert!(matches!(
            s.hub.verdict(verdict(&hub_id)).await,
            Err(VerdictError::AlreadyEnded { .. })
        ));
        // The spoke's own report of the end is not a second one.
        let mut ended = ClearanceEvent::new(EventKind::VerdictApplied, "mine");
        ended.request_id = "spoke-req".into();
        s.mirror.on_event("gpu-1", &s.session, ended);
        assert!(s.hub.pending().is_empty());
    }

    #[tokio::test]
    async fn a_request_ended_on_the_spoke_or_a_link_gone_leaves_the_hubs_queue() {
        let s = setup();
        s.mirror
            .on_event("gpu-1", &s.session, blocked("mine", "a", "alpha"));
        let mut ended = ClearanceEvent::new(EventKind::VerdictApplied, "mine");
        ended.request_id = "a".into();
        ended.reason = "deadline".into();
        s.mirror.on_event("gpu-1", &s.session, ended);
        assert!(s.hub.pending().is_empty());

        let mut other = blocked("mine", "b", "alpha");
        other.port = 8443;
        s.mirror.on_event("gpu-1", &s.session, other);
        assert_eq!(s.hub.pending().len(), 1);
        s.mirror.forget_spoke("gpu-1");
        assert!(s.hub.pending().is_empty());
    }
}
