//! HTTP-level rules in the gateway: kept (`reload_http_rules`, `put`,
//! `delete`, each change announced), and applied to every request on a
//! connection the gateway reads — allowed, refused, or held for a person
//! with its method and path in the event.

use std::sync::Arc;
use std::time::Duration;

use paddock_clearance::EventKind;
use paddock_store::HttpRuleRow;

use crate::EgressError;
use crate::audit::AuditDecision;
use crate::gateway::{BoxIdentity, Dest, Egress, Host, now_ms};
use crate::hold::Outcome;
use crate::http_rules::{
    HttpRequestView, HttpRule, HttpRuleSet, parse_host, parse_ref, parse_request,
};
use crate::policy::{Action, Scope};
use crate::verdicts::HttpAsk;

/// An HTTP rule as a person writes it.
#[derive(Debug, Clone)]
pub struct HttpRuleSpec {
    pub scope: Scope,
    /// A name or `*.suffix`.
    pub host: String,
    pub port: Option<u16>,
    /// `GET,HEAD /repos/acme/**`.
    pub request: String,
    /// Ref globs a push must update to match.
    pub refs: Vec<String>,
    pub action: Action,
    pub ttl: Option<Duration>,
}

fn rule_from(row: &HttpRuleRow) -> Result<HttpRule, EgressError> {
    let (methods, path) = if row.methods.is_empty() {
        parse_request(&row.path)?
    } else {
        parse_request(&format!("{} {}", row.methods, row.path))?
    };
    Ok(HttpRule {
        id: row.id,
        scope: Scope::from_parts(&row.scope, &row.subject)?,
        host: row.host.clone(),
        port: row.port,
        methods,
        path,
        refs: row
            .refs
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        action: row.action.parse()?,
        expires_at_ms: row.expires_at_ms,
        created_by: row.created_by.clone(),
    })
}

impl Egress {
    pub fn reload_http_rules(&self) -> Result<(), EgressError> {
        let now = now_ms();
        let mut rules = Vec::new();
        for row in self.store.http_rules()? {
            if row.expires_at_ms.is_some_and(|at| at <= now) {
                let _ = self.store.delete_http_rule(row.id);
                continue;
            }
            match rule_from(&row) {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    tracing::error!(rule = row.id, error = %e, "ignoring an unreadable HTTP rule")
                }
            }
        }
        *self.http_rules.write() = Arc::new(rules);
        Ok(())
    }

    pub fn http_rules(&self) -> Arc<Vec<HttpRule>> {
        self.http_rules.read().clone()
    }

    /// Adds a rule (or changes the action of the same pattern's).
    pub fn put_http_rule(&self, spec: HttpRuleSpec, by: &str) -> Result<HttpRule, EgressError> {
        let host = parse_host(&spec.host)?;
        let (methods, path) = parse_request(&spec.request)?;
        let refs = spec
            .refs
            .iter()
            .map(|r| parse_ref(r))
            .collect::<Result<Vec<_>, _>>()?;
        let now = now_ms();
        let row = self.store.put_http_rule(&HttpRuleRow {
            id: 0,
            scope: spec.scope.kind().into(),
            subject: spec.scope.subject().into(),
            host,
            port: spec.port,
            methods: methods.join(","),
            path,
            refs: refs.join(","),
            action: spec.action.as_str().into(),
            expires_at_ms: spec.ttl.map(|t| now + t.as_millis() as i64),
            created_by: by.into(),
            created_at_ms: now,
        })?;
        self.reload_http_rules()?;
        let rule = rule_from(&row)?;
        self.announce_http_rule(
            EventKind::RuleAdded,
            &rule,
            &format!("http rule #{} by {by}", rule.id),
        );
        Ok(rule)
    }

    pub fn delete_http_rule(&self, id: i64, by: &str) -> Result<bool, EgressError> {
        let before = self.http_rules().iter().find(|r| r.id == id).cloned();
        let gone = self.store.delete_http_rule(id)?;
        self.reload_http_rules()?;
        if let (true, Some(rule)) = (gone, before) {
            self.announce_http_rule(
                EventKind::RuleRemoved,
                &rule,
                &format!("http rule #{id} removed by {by}"),
            );
        }
        Ok(gone)
    }

    fn announce_http_rule(&self, kind: EventKind, rule: &HttpRule, reason: &str) {
        let (box_id, project) = match &rule.scope {
            Scope::Box(b) => (b.clone(), String::new()),
            Scope::Project(p) => (String::new(), p.clone()),
        };
        let mut e = self.event(kind, &BoxIdentity { box_id, project });
        e.dest = rule.host.clone();
        e.domain = rule.host.clone();
        e.port = rule.port.map_or(0, i64::from);
        e.action = rule.action.as_str().to_owned();
        e.ok = true;
        e.reason = format!("{reason}: {}", rule.request_text());
        e.dossier
            .insert(paddock_clearance::HTTP_REQUEST.into(), rule.request_text());
        self.hub().publish(e);
    }

    fn http_rule_set<'a>(&self, rules: &'a [HttpRule], who: &'a BoxIdentity) -> HttpRuleSet<'a> {
        HttpRuleSet {
            rules,
            box_id: &who.box_id,
            project: &who.project,
            now_ms: now_ms(),
        }
    }

    /// Whether an HTTP rule concerns connections of this box to the host
    /// (so the gateway must read them).
    pub(crate) fn reads_http(&self, who: &BoxIdentity, host: &str, port: u16) -> bool {
        let rules = self.http_rules();
        self.http_rule_set(&rules, who).covers(host, port)
    }

    /// Whether a push's refs must be read before its request is decided.
    pub(crate) fn reads_push_refs(&self, who: &BoxIdentity, host: &str, port: u16) -> bool {
        let rules = self.http_rules();
        self.http_rule_set(&rules, who).reads_refs(host, port)
    }

    /// The HTTP rules' word on one request: Ok to send it, or why not. A
    /// request a rule holds waits here for a person.
    pub(crate) async fn decide_request(
        self: &Arc<Self>,
        who: &BoxIdentity,
        host: &str,
        port: u16,
        req: &HttpRequestView,
    ) -> Result<(), String> {
        let rules = self.http_rules();
        let Some(rule) = self
            .http_rule_set(&rules, who)
            .decide(host, port, req)
            .cloned()
        else {
            return Ok(());
        };
        let asked = format!("{} {}", req.method, req.path);
        let by = format!("http rule #{}", rule.id);
        let dest = Dest::tcp(host, port, host);
        match rule.action {
            Action::Allow => {
                self.record(who, dest, AuditDecision::Allowed, &by, "", &asked);
                Ok(())
            }
            Action::Deny => {
                let reason = format!("{asked} is refused by {by} ({})", rule.request_text());
                self.refuse(who, dest, AuditDecision::Denied, &by, &reason);
                Err(reason)
            }
            Action::Ask => {
                let http = HttpAsk {
                    method: req.method.clone(),
                    path: req.path.clone(),
                };
                let host = Host::Name(host.to_owned());
                match self.hold_request(who, &host, port, &by, Some(http)).await {
                    Outcome::Allowed => Ok(()),
                    Outcome::Denied { reason } => Err(format!("{asked}: {reason}")),
                }
            }
        }
    }
}
