//! Held requests and what ends them: a person's verdict (which may leave a
//! rule behind), the deadline, a shield change or the box going away.

use std::time::Duration;

use paddock_clearance::{CheckedVerdict, EventKind, VerdictScope};

use crate::EgressError;
use crate::gateway::rule_from_row;
use crate::gateway::{BoxIdentity, Dest, Egress, Host, now_ms};
use crate::hold::{HoldKey, Joined, Outcome};
use crate::policy::{Action, Cidr, PortRange, Rule, Scope, Target};
use paddock_store::RuleRow;

impl Egress {
    /// Holds a connection until a verdict; `by` is what made it `ask` (a
    /// rule, or the default for destinations no rule names).
    pub(crate) async fn hold(
        &self,
        who: &BoxIdentity,
        host: &Host,
        port: u16,
        by: &str,
    ) -> Outcome {
        let host_text = host.as_string();
        let key = HoldKey {
            box_id: who.box_id.clone(),
            host: host_text.clone(),
            port,
        };
        let limit = self.config.max_held_per_box.max(1);
        let held = match self.holds.join(key, &who.project, limit) {
            Joined::TooMany => {
                let reason = format!("the box already waits on {limit} undecided destinations");
                let dest = Dest {
                    host: &host_text,
                    port,
                    proto: 6,
                    domain: match host {
                        Host::Name(n) => n,
                        Host::Ip(_) => "",
                    },
                };
                self.refuse(who, dest, "denied", "hold limit", &reason);
                return Outcome::Denied {
                    by: "hold limit".into(),
                    reason,
                };
            }
            Joined::Existing(held) => {
                self.hub.blocked_again(&held.request_id);
                held
            }
            Joined::New(held) => {
                let mut e = self.event(EventKind::ConnectionBlocked, who);
                e.request_id = held.request_id.clone();
                e.dest = host_text.clone();
                e.port = port as i64;
                e.proto = 6;
                e.domain = match host {
                    Host::Name(n) => n.clone(),
                    Host::Ip(_) => String::new(),
                };
                e.action = "ask".into();
                e.reason = "held until a person allows or denies it".into();
                self.record(
                    who,
                    Dest {
                        host: &host_text,
                        port,
                        proto: 6,
                        domain: &e.domain,
                    },
                    "held",
                    by,
                    &held.request_id,
                    "",
                );
                self.hub.hold(e);
                self.expire_later(who.clone(), held.request_id.clone());
                held
            }
        };
        held.wait().await
    }

    fn expire_later(&self, who: BoxIdentity, request_id: String) {
        let timeout = self.config.hold_timeout();
        let hub = self.hub.clone();
        // The timer must not keep a stopped gateway alive.
        let egress = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(egress) = egress.upgrade() else {
                return;
            };
            let reason = format!("no verdict within {} s", timeout.as_secs());
            let Some(held) = egress.holds.resolve(
                &request_id,
                Outcome::Denied {
                    by: "timeout".into(),
                    reason: reason.clone(),
                },
            ) else {
                return;
            };
            hub.withdraw(&request_id);
            let mut e = egress.event(EventKind::VerdictApplied, &who);
            e.request_id = request_id.clone();
            e.dest = held.key.host.clone();
            e.port = held.key.port as i64;
            e.action = "deny".into();
            e.ok = true;
            e.reason = reason.clone();
            hub.publish(e);
            egress.record(
                &who,
                Dest {
                    host: &held.key.host,
                    port: held.key.port,
                    proto: 6,
                    domain: "",
                },
                "timeout",
                "timeout",
                &request_id,
                &reason,
            );
        });
    }

    pub(crate) fn apply_verdict(&self, v: &CheckedVerdict) -> Result<(), String> {
        if v.allow
            && let Some(why) = self.audit_failure()
        {
            // An allow that cannot be recorded is not given: the held
            // connection is refused (fail closed), and the person told.
            let reason = format!("paddock cannot record decisions right now ({why})");
            self.holds.resolve(
                &v.verdict.request_id,
                Outcome::Denied {
                    by: "decision log".into(),
                    reason: reason.clone(),
                },
            );
            return Err(format!("{reason}; the connection was refused instead"));
        }
        let by = format!("person via {}", v.verdict.decided_by);
        let outcome = if v.allow {
            Outcome::Allowed { by: by.clone() }
        } else {
            Outcome::Denied {
                by: by.clone(),
                reason: format!("denied by a person ({})", v.verdict.decided_by),
            }
        };
        let held = self
            .holds
            .resolve(&v.verdict.request_id, outcome)
            .ok_or_else(|| "the request is no longer held".to_owned())?;
        let who = BoxIdentity {
            box_id: held.key.box_id.clone(),
            project: held.project.clone(),
        };
        let action = if v.allow { "allow" } else { "deny" };
        self.record(
            &who,
            Dest {
                host: &held.key.host,
                port: held.key.port,
                proto: 6,
                domain: &v.event.domain,
            },
            &format!("verdict_{action}"),
            &by,
            &held.request_id,
            v.verdict.scope.as_str(),
        );
        let scope = match v.verdict.scope {
            VerdictScope::Once => return Ok(()),
            VerdictScope::Box => Scope::Box(who.box_id.clone()),
            VerdictScope::Project => Scope::Project(who.project.clone()),
        };
        let target = match Host::parse(&held.key.host) {
            Some(Host::Name(n)) => Target::Domain(n),
            Some(Host::Ip(ip)) => Target::Cidr(Cidr::host(ip)),
            None => return Ok(()),
        };
        let port = held.key.port;
        self.put_rule(
            scope,
            target,
            Some(PortRange { lo: port, hi: port }),
            if v.allow { Action::Allow } else { Action::Deny },
            v.verdict.ttl,
            &by,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    pub fn put_rule(
        &self,
        scope: Scope,
        target: Target,
        ports: Option<PortRange>,
        action: Action,
        ttl: Option<Duration>,
        created_by: &str,
    ) -> Result<Rule, EgressError> {
        let now = now_ms();
        let row = self.store.put_egress_rule(&RuleRow {
            id: 0,
            scope: scope.kind().into(),
            subject: scope.subject().into(),
            target: target.to_string(),
            ports: ports.map(|p| (p.lo, p.hi)),
            action: action.as_str().into(),
            expires_at: ttl.map(|t| now + t.as_millis() as i64),
            created_by: created_by.into(),
            created_at: now,
        })?;
        self.reload_rules()?;
        let rule = rule_from_row(&row)?;
        self.announce_rule(
            EventKind::RuleAdded,
            &rule,
            &format!("rule #{} by {created_by}", rule.id),
        );
        Ok(rule)
    }

    /// Removes a rule; `by` is who did (for the event).
    pub fn delete_rule(&self, id: i64, by: &str) -> Result<bool, EgressError> {
        let before = self.rules().iter().find(|r| r.id == id).cloned();
        let gone = self.store.delete_egress_rule(id)?;
        self.reload_rules()?;
        if let (true, Some(rule)) = (gone, before) {
            self.announce_rule(
                EventKind::RuleRemoved,
                &rule,
                &format!("rule #{id} removed by {by}"),
            );
        }
        Ok(gone)
    }

    /// Every rule change is an event: the box (for a box rule) or the
    /// project it applies to, its target, first port and action.
    fn announce_rule(&self, kind: EventKind, rule: &Rule, reason: &str) {
        let (box_id, project) = match &rule.scope {
            Scope::Box(b) => (b.clone(), self.project_of_box(b).unwrap_or_default()),
            Scope::Project(p) => (String::new(), p.clone()),
        };
        let who = BoxIdentity { box_id, project };
        let mut e = self.event(kind, &who);
        e.dest = rule.target.to_string();
        e.domain = match &rule.target {
            Target::Cidr(_) => String::new(),
            other => other.to_string(),
        };
        e.port = rule.ports.map_or(0, |p| i64::from(p.lo));
        e.action = rule.action.as_str().to_owned();
        e.ok = true;
        e.reason = reason.to_owned();
        self.hub().publish(e);
    }

    /// The project of a box this gateway has seen (from its network).
    fn project_of_box(&self, box_id: &str) -> Option<String> {
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|who| who.box_id == box_id)
            .map(|who| who.project.clone())
    }

    /// The box's network no longer speaks for it.
    pub(crate) fn forget_identity(&self, box_id: &str) {
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, who| who.box_id != box_id);
    }

    pub(crate) fn forget_network(&self, network_id: &str) {
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(network_id);
    }

    /// The box is gone: its held requests are refused and forgotten.
    pub fn forget_box(&self, who: &BoxIdentity, reason: &str) {
        for request_id in self.holds.of_box(&who.box_id) {
            if let Some(held) = self.holds.resolve(
                &request_id,
                Outcome::Denied {
                    by: "paddock".into(),
                    reason: reason.to_owned(),
                },
            ) {
                self.record(
                    who,
                    Dest {
                        host: &held.key.host,
                        port: held.key.port,
                        proto: 6,
                        domain: "",
                    },
                    "dropped",
                    "paddock",
                    &request_id,
                    reason,
                );
            }
        }
        self.hub.forget_container(&who.box_id);
    }
}
