//! Held requests and what ends them: a person's verdict (which may leave a
//! rule behind), the deadline, a shield change or the box going away.

use std::sync::Arc;
use std::time::Duration;

use paddock_clearance::{
    CheckedVerdict, Ending, EventKind, Hold, NotApplied, Ticket, VerdictScope,
};

use crate::EgressError;
use crate::audit::AuditDecision;
use crate::gateway::rule_from_row;
use crate::gateway::{BoxIdentity, Dest, Egress, Host, now_ms};
use crate::hold::Outcome;
use crate::policy::{Action, Cidr, PortRange, Rule, Scope, Target};
use paddock_store::RuleRow;

/// The held request a connection waits on, as the owner of its ticket
/// remembers it.
struct Request {
    who: BoxIdentity,
    host: String,
    domain: String,
    port: u16,
    request_id: String,
    /// Held at the HTTP level: this request, not the connection.
    http: Option<HttpAsk>,
}

/// One HTTP request held for a person (the method and normalised path a
/// verdict with a scope turns into an HTTP rule).
#[derive(Debug, Clone)]
pub(crate) struct HttpAsk {
    pub method: String,
    pub path: String,
}

impl HttpAsk {
    pub fn text(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Egress {
    /// Holds a connection until a verdict; `by` is what made it `ask` (a
    /// rule, or the default for destinations no rule names). The hub owns
    /// the request; the attempt that opened it also spawns the request's
    /// owner (its deadline, its record, its verdict's scope).
    pub(crate) async fn hold(
        self: &Arc<Self>,
        who: &BoxIdentity,
        host: &Host,
        port: u16,
        by: &str,
    ) -> Outcome {
        self.hold_request(who, host, port, by, None).await
    }

    /// Holds a connection, or with `http` one request on it, until a
    /// verdict.
    pub(crate) async fn hold_request(
        self: &Arc<Self>,
        who: &BoxIdentity,
        host: &Host,
        port: u16,
        by: &str,
        http: Option<HttpAsk>,
    ) -> Outcome {
        let host_text = host.as_string();
        let domain = match host {
            Host::Name(n) => n.clone(),
            Host::Ip(_) => String::new(),
        };
        let dest = Dest::tcp(&host_text, port, &domain);
        let mut e = self.held_event(who, dest);
        let asked = http.as_ref().map(HttpAsk::text).unwrap_or_default();
        if let Some(http) = &http {
            e.dossier
                .insert(paddock_clearance::HTTP_REQUEST.into(), http.text());
            e.reason = format!("held until a person allows or denies {}", http.text());
        }
        let limit = self.config.max_held_per_box.max(1);
        let mut ticket = match self.hub.hold(e, limit, self.config.hold_timeout()) {
            Hold::Held(ticket) => ticket,
            Hold::TooMany => {
                let reason = format!("the box already waits on {limit} undecided destinations");
                self.refuse(who, dest, AuditDecision::Denied, "hold limit", &reason);
                return Outcome::Denied { reason };
            }
        };
        // A span per held connection, from the hold to its end.
        let mut span = paddock_trace::span("egress.hold", paddock_trace::SpanKind::Internal);
        span.attr("box.id", who.box_id.as_str())
            .attr("box.project", who.project.as_str())
            .attr("egress.destination", host_text.as_str())
            .attr("egress.port", port)
            .attr("egress.request_id", ticket.request_id.as_str());
        if !asked.is_empty() {
            span.attr("egress.http_request", asked.as_str());
        }
        if ticket.fresh {
            self.record(
                who,
                dest,
                AuditDecision::Held,
                by,
                &ticket.request_id,
                &asked,
            );
            let request = Request {
                who: who.clone(),
                host: host_text.clone(),
                domain: domain.clone(),
                port,
                request_id: ticket.request_id.clone(),
                http,
            };
            self.own(request, ticket.another());
        }
        let (outcome, ending) = match ticket.ending().await {
            Ending::Decided { verdict, .. } if verdict.allow => match self.audit_failure() {
                // An allow that cannot be recorded is not given.
                Some(why) => (
                    Outcome::Denied {
                        reason: format!("paddock cannot record decisions right now ({why})"),
                    },
                    "denied",
                ),
                None => (Outcome::Allowed, "allowed"),
            },
            Ending::Decided { verdict, .. } => (
                Outcome::Denied {
                    reason: format!("denied by a person ({})", verdict.verdict.decided_by),
                },
                "denied",
            ),
            Ending::Withdrawn { reason, .. } => (Outcome::Denied { reason }, "withdrawn"),
        };
        span.attr("egress.ending", ending);
        outcome
    }

    /// Owns a request held without a waiting connection (asked ahead).
    pub(crate) fn own_held(
        self: &Arc<Self>,
        who: &BoxIdentity,
        host: &str,
        domain: &str,
        port: u16,
        ticket: &Ticket,
    ) {
        let request = Request {
            who: who.clone(),
            host: host.to_owned(),
            domain: domain.to_owned(),
            port,
            request_id: ticket.request_id.clone(),
            http: None,
        };
        self.own(request, ticket.another());
    }

    /// The request's owner: ends it at its deadline unless something else
    /// ends it first, then records how it ended and applies a verdict's
    /// scope. It holds the gateway weakly: a stopped gateway keeps nothing
    /// alive.
    fn own(self: &Arc<Self>, request: Request, mut ticket: Ticket) {
        let gateway = Arc::downgrade(self);
        let hub = self.hub.clone();
        let timeout = self.config.hold_timeout();
        tokio::spawn(async move {
            // Whether this task ended it at the deadline (it alone knows).
            let (ending, timed_out) = tokio::select! {
                ending = ticket.ending() => (ending, false),
                () = tokio::time::sleep(timeout) => {
                    let reason = format!("no verdict within {} s", timeout.as_secs());
                    match hub.withdraw(&request.request_id, "timeout", &reason) {
                        Some(_) => (Ending::Withdrawn { by: "timeout".into(), reason }, true),
                        // A verdict or a withdrawal got there first.
                        None => (ticket.ending().await, false),
                    }
                }
            };
            match gateway.upgrade() {
                Some(egress) => egress.settle(&request, ending, timed_out),
                None => {
                    if let Ending::Decided { ack, .. } = ending {
                        ack.answer(Err(NotApplied("the egress gateway has stopped".into())));
                    }
                }
            }
        });
    }

    /// Records how a request ended; a verdict's scope becomes a rule, and
    /// the verdict's sender hears whether it could.
    fn settle(&self, request: &Request, ending: Ending, timed_out: bool) {
        let dest = Dest::tcp(&request.host, request.port, &request.domain);
        let who = &request.who;
        match ending {
            Ending::Decided { verdict, ack } => {
                ack.answer(self.apply_verdict(who, dest, &verdict, request.http.as_ref()));
            }
            // The hub announced the withdrawal (a `verdict_applied` deny).
            Ending::Withdrawn { reason, .. } if timed_out => {
                self.record(
                    who,
                    dest,
                    AuditDecision::Timeout,
                    "timeout",
                    &request.request_id,
                    &reason,
                );
            }
            Ending::Withdrawn { by, reason } => {
                self.record(
                    who,
                    dest,
                    AuditDecision::Dropped,
                    &by,
                    &request.request_id,
                    &reason,
                );
            }
        }
    }

    fn apply_verdict(
        &self,
        who: &BoxIdentity,
        dest: Dest<'_>,
        v: &CheckedVerdict,
        http: Option<&HttpAsk>,
    ) -> Result<(), NotApplied> {
        if v.allow
            && let Some(why) = self.audit_failure()
        {
            return Err(NotApplied(format!(
                "paddock cannot record decisions right now ({why}); the connection was refused instead"
            )));
        }
        let by = format!("person via {}", v.verdict.decided_by);
        let decision = if v.allow {
            AuditDecision::VerdictAllow
        } else {
            AuditDecision::VerdictDeny
        };
        let reason = match http {
            Some(http) => format!("{} {}", v.verdict.scope.as_str(), http.text()),
            None => v.verdict.scope.as_str().to_owned(),
        };
        self.record(who, dest, decision, &by, &v.verdict.request_id, &reason);
        let scope = match v.verdict.scope {
            VerdictScope::Once => return Ok(()),
            VerdictScope::Box => Scope::Box(who.box_id.clone()),
            VerdictScope::Project => Scope::Project(who.project.clone()),
        };
        if let Some(http) = http {
            // The verdict covers this method on this path, from now on.
            let action = if v.allow { Action::Allow } else { Action::Deny };
            let spec = crate::http_gate::HttpRuleSpec {
                scope,
                host: dest.host.to_owned(),
                port: Some(dest.port),
                request: http.text(),
                refs: Vec::new(),
                action,
                ttl: v.verdict.ttl,
            };
            return self
                .put_http_rule(spec, &by)
                .map(|_| ())
                .map_err(|e| NotApplied(e.to_string()));
        }
        let target = match Host::parse(dest.host) {
            Some(Host::Name(n)) => Target::Domain(n),
            Some(Host::Ip(ip)) => Target::Cidr(Cidr::host(ip)),
            None => return Ok(()),
        };
        self.put_rule(
            scope,
            target,
            Some(PortRange {
                lo: dest.port,
                hi: dest.port,
            }),
            if v.allow { Action::Allow } else { Action::Deny },
            v.verdict.ttl,
            &by,
        )
        .map(|_| ())
        .map_err(|e| NotApplied(e.to_string()))
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
            expires_at_ms: ttl.map(|t| now + t.as_millis() as i64),
            created_by: created_by.into(),
            created_at_ms: now,
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
            .values()
            .find(|who| who.box_id == box_id)
            .map(|who| who.project.clone())
    }

    /// The box's network no longer speaks for it.
    pub(crate) fn forget_identity(&self, box_id: &str) {
        self.identities.lock().retain(|_, who| who.box_id != box_id);
    }

    pub(crate) fn forget_network(&self, network_id: &str) {
        self.identities.lock().remove(network_id);
    }

    /// The box is gone, or its shield changed: what it holds is refused
    /// (each request's owner records it).
    pub fn forget_box(&self, who: &BoxIdentity, reason: &str) {
        self.hub.withdraw_container(&who.box_id, "paddock", reason);
    }
}
