//! Which held request each pop-up shows, and what each hub event does to
//! the pop-ups: a new hold shows one, another attempt replaces it (its
//! count goes up, it does not stack), its end — a verdict from anywhere,
//! the deadline, the box exiting — closes it. Pure bookkeeping: the D-Bus
//! calls are the caller's, so every rule here is tested without a bus.

use std::collections::HashMap;

use paddock_clearance::{AGENT_REASON, ClearanceEvent, EventKind, PendingView, VerdictRequest};

/// The actions every pop-up offers (key, label).
pub const ACTIONS: [(&str, &str); 3] = [
    ("allow", "Allow"),
    ("deny", "Deny"),
    ("allow_project", "Allow for the project"),
];

/// A held request as a pop-up shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub container: String,
    pub request_id: String,
    pub dest: String,
    pub domain: String,
    pub port: i64,
    pub project: String,
    pub attempts: u64,
    pub agent_reason: String,
}

impl From<&PendingView> for Held {
    fn from(p: &PendingView) -> Self {
        Self {
            container: p.container.clone(),
            request_id: p.request_id.clone(),
            dest: p.dest.clone(),
            domain: p.domain.clone(),
            port: p.port,
            project: p.project.clone(),
            attempts: p.times_blocked,
            agent_reason: p.agent_reason.clone(),
        }
    }
}

impl Held {
    fn from_event(e: &ClearanceEvent, attempts: u64) -> Self {
        Self {
            container: e.container.clone(),
            request_id: e.request_id.clone(),
            dest: e.dest.clone(),
            domain: e.domain.clone(),
            port: e.port,
            project: e.dossier.get("project").cloned().unwrap_or_default(),
            attempts,
            agent_reason: e.dossier.get(AGENT_REASON).cloned().unwrap_or_default(),
        }
    }

    /// The name a person knows the destination by.
    pub fn destination(&self) -> &str {
        if self.domain.is_empty() {
            &self.dest
        } else {
            &self.domain
        }
    }
}

/// What the caller must do on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Show (or, with `replaces`, replace) the pop-up of this request.
    Show { held: Held, replaces: Option<u32> },
    /// Close this pop-up: its request ended.
    Close { notification: u32 },
}

#[derive(Default)]
pub struct Tracker {
    held: HashMap<String, (Held, Option<u32>)>,
    by_notification: HashMap<u32, String>,
}

impl Tracker {
    /// Starts over from the hub's pending list (after a (re)connect): what
    /// is no longer held closes, what is shows.
    pub fn resync(&mut self, pending: &[PendingView]) -> Vec<Step> {
        let mut steps: Vec<Step> = self
            .held
            .iter()
            .filter(|(id, _)| !pending.iter().any(|p| &p.request_id == *id))
            .filter_map(|(_, (_, n))| *n)
            .map(|notification| Step::Close { notification })
            .collect();
        self.held
            .retain(|id, _| pending.iter().any(|p| &p.request_id == id));
        self.by_notification
            .retain(|_, id| pending.iter().any(|p| &p.request_id == id));
        for p in pending {
            let held = Held::from(p);
            let replaces = self.held.get(&p.request_id).and_then(|(_, n)| *n);
            self.held
                .insert(p.request_id.clone(), (held.clone(), replaces));
            steps.push(Step::Show { held, replaces });
        }
        steps
    }

    /// What one hub event does to the pop-ups.
    pub fn on_event(&mut self, e: &ClearanceEvent) -> Vec<Step> {
        let kind = e.kind.as_str();
        if kind == EventKind::ConnectionBlocked.as_str() && !e.request_id.is_empty() {
            let held = Held::from_event(e, 1);
            self.held.insert(e.request_id.clone(), (held.clone(), None));
            return vec![Step::Show {
                held,
                replaces: None,
            }];
        }
        if kind == EventKind::ConnectionHeldAgain.as_str() {
            let attempts = e
                .reason
                .strip_prefix("attempt ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(2);
            let replaces = self.held.get(&e.request_id).and_then(|(_, n)| *n);
            let held = Held::from_event(e, attempts);
            self.held
                .insert(e.request_id.clone(), (held.clone(), replaces));
            return vec![Step::Show { held, replaces }];
        }
        if kind == EventKind::VerdictApplied.as_str() {
            return self.end(&e.request_id).into_iter().collect();
        }
        if kind == EventKind::ContainerExited.as_str() {
            let ids: Vec<String> = self
                .held
                .values()
                .filter(|(h, _)| h.container == e.container)
                .map(|(h, _)| h.request_id.clone())
                .collect();
            return ids.iter().filter_map(|id| self.end(id)).collect();
        }
        Vec::new()
    }

    fn end(&mut self, request_id: &str) -> Option<Step> {
        let (_, notification) = self.held.remove(request_id)?;
        let notification = notification?;
        self.by_notification.remove(&notification);
        Some(Step::Close { notification })
    }

    /// The bus gave the request's pop-up this id.
    pub fn shown(&mut self, request_id: &str, notification: u32) {
        if let Some((_, n)) = self.held.get_mut(request_id) {
            if let Some(old) = n.replace(notification)
                && old != notification
            {
                self.by_notification.remove(&old);
            }
            self.by_notification
                .insert(notification, request_id.to_owned());
        }
    }

    /// The person dismissed a pop-up (or the server dropped it): the
    /// request is still held, it just has no pop-up now.
    pub fn closed(&mut self, notification: u32) {
        if let Some(id) = self.by_notification.remove(&notification)
            && let Some((_, n)) = self.held.get_mut(&id)
        {
            *n = None;
        }
    }

    /// The verdict an action on a pop-up asks for; `None` for a pop-up or
    /// action that is not ours.
    pub fn action(&self, notification: u32, key: &str) -> Option<VerdictRequest> {
        let id = self.by_notification.get(&notification)?;
        let (held, _) = self.held.get(id)?;
        let (action, scope) = match key {
            "allow" => ("allow", "once"),
            "deny" => ("deny", "once"),
            "allow_project" => ("allow", "project"),
            _ => return None,
        };
        Some(VerdictRequest {
            container: held.container.clone(),
            request_id: held.request_id.clone(),
            dest: held.dest.clone(),
            action: action.into(),
            scope: Some(scope.into()),
            ttl_secs: None,
        })
    }

    /// Forgets every pop-up id (a fresh notification server knows none of
    /// them); the next `resync` shows every request anew.
    pub fn forget_popups(&mut self) {
        self.by_notification.clear();
        for (_, n) in self.held.values_mut() {
            *n = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, id: &str) -> ClearanceEvent {
        let mut e = ClearanceEvent::new(kind, "box-a").with_dossier("proj", "c");
        e.request_id = id.into();
        e.dest = "api.example".into();
        e.domain = "api.example".into();
        e.port = 443;
        e
    }

    #[test]
    fn a_repeat_attempt_replaces_its_pop_up_and_the_end_closes_it() {
        let mut t = Tracker::default();
        let steps = t.on_event(&event(EventKind::ConnectionBlocked, "r1"));
        assert!(matches!(&steps[..], [Step::Show { replaces: None, .. }]));
        t.shown("r1", 7);
        let mut again = event(EventKind::ConnectionHeldAgain, "r1");
        again.reason = "attempt 3".into();
        let steps = t.on_event(&again);
        let [Step::Show { held, replaces }] = &steps[..] else {
            panic!("{steps:?}")
        };
        assert_eq!((held.attempts, *replaces), (3, Some(7)));
        t.shown("r1", 7);
        assert_eq!(
            t.on_event(&event(EventKind::VerdictApplied, "r1")),
            vec![Step::Close { notification: 7 }]
        );
        assert!(
            t.on_event(&event(EventKind::VerdictApplied, "r1"))
                .is_empty()
        );
    }

    #[test]
    fn actions_become_verdicts_only_for_our_pop_ups() {
        let mut t = Tracker::default();
        t.on_event(&event(EventKind::ConnectionBlocked, "r1"));
        t.shown("r1", 3);
        let v = t.action(3, "allow_project").unwrap();
        assert_eq!(
            (v.action.as_str(), v.scope.as_deref(), v.request_id.as_str()),
            ("allow", Some("project"), "r1")
        );
        assert_eq!(t.action(3, "deny").unwrap().action, "deny");
        assert!(t.action(3, "default").is_none());
        assert!(t.action(99, "allow").is_none());
        t.closed(3);
        assert!(t.action(3, "allow").is_none(), "a dismissed pop-up");
    }

    #[test]
    fn a_box_exiting_closes_its_pop_ups_and_resync_drops_what_ended() {
        let mut t = Tracker::default();
        t.on_event(&event(EventKind::ConnectionBlocked, "r1"));
        t.shown("r1", 1);
        t.on_event(&event(EventKind::ConnectionBlocked, "r2"));
        t.shown("r2", 2);
        let mut exited = event(EventKind::ContainerExited, "");
        exited.request_id.clear();
        let mut closed = t.on_event(&exited);
        closed.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(closed.len(), 2);
        t.on_event(&event(EventKind::ConnectionBlocked, "r3"));
        t.shown("r3", 3);
        assert_eq!(t.resync(&[]), vec![Step::Close { notification: 3 }]);
    }
}
