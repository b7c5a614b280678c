//! The decision: for one box and one destination, allow, deny or hold —
//! and, when allowed, exactly which addresses may be dialled (resolved once,
//! checked, then used as is, so a second lookup cannot rebind the name).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paddock_clearance::{
    CheckedVerdict, ClearanceEvent, EventKind, Hub, VerdictScope, VerdictSink,
};
use paddock_store::{AuditRow, RuleRow, Store};

use crate::EgressError;
use crate::address::restricted;
use crate::audit::AuditLog;
use crate::config::EgressConfig;
use crate::hold::{HoldKey, Holds, Joined, Outcome};
use crate::policy::{
    Action, Cidr, PolicyError, PortRange, Rule, RuleSet, Scope, Target, normalise_name,
};
use crate::shield::Shield;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Who is asking: the box holding the network the connection came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxIdentity {
    pub box_id: String,
    pub project: String,
}

/// Where to: a name (resolved by us) or an address literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    pub fn parse(s: &str) -> Option<Self> {
        let bare = s
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(Self::Ip(crate::policy::canonical(ip)));
        }
        normalise_name(s).map(Self::Name)
    }

    pub fn as_string(&self) -> String {
        match self {
            Self::Name(n) => n.clone(),
            Self::Ip(ip) => ip.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Decision {
    Allow { addrs: Vec<SocketAddr> },
    Deny { reason: String },
}

pub struct Egress {
    pub(crate) config: EgressConfig,
    store: Arc<Store>,
    hub: Arc<Hub>,
    rules: RwLock<Arc<Vec<Rule>>>,
    shields: Mutex<HashMap<String, Shield>>,
    holds: Holds,
    audit: Mutex<AuditLog>,
    /// network → the box on it, so a connection costs no store query.
    /// Dropped when the box goes (its network may then serve another).
    identities: Mutex<HashMap<String, BoxIdentity>>,
    me: std::sync::Weak<Egress>,
}

struct Verdicts(std::sync::Weak<Egress>);

impl VerdictSink for Verdicts {
    fn apply(&self, verdict: &CheckedVerdict) -> Result<(), String> {
        match self.0.upgrade() {
            Some(egress) => egress.apply_verdict(verdict),
            None => Err("the egress gateway has stopped".into()),
        }
    }
}

pub(crate) fn rule_from_row(row: &RuleRow) -> Result<Rule, PolicyError> {
    Ok(Rule {
        id: row.id,
        scope: Scope::from_parts(&row.scope, &row.subject)?,
        target: row.target.parse()?,
        ports: row.ports.map(|(lo, hi)| PortRange { lo, hi }),
        action: row.action.parse()?,
        expires_at: row.expires_at,
        created_by: row.created_by.clone(),
    })
}

impl Egress {
    pub fn new(
        config: EgressConfig,
        store: Arc<Store>,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>, EgressError> {
        let egress = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            identities: Mutex::new(HashMap::new()),
            config,
            audit: Mutex::new(AuditLog::start(store.clone())),
            store,
            hub: hub.clone(),
            rules: RwLock::new(Arc::new(Vec::new())),
            shields: Mutex::new(HashMap::new()),
            holds: Holds::default(),
        });
        egress.reload_rules()?;
        hub.set_sink(Arc::new(Verdicts(Arc::downgrade(&egress))));
        Ok(egress)
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn config(&self) -> &EgressConfig {
        &self.config
    }

    /// Re-reads the rules from the store (after every change, and to drop
    /// expired ones).
    pub fn reload_rules(&self) -> Result<(), EgressError> {
        self.store.delete_expired_egress_rules(now_ms())?;
        let mut rules = Vec::new();
        for row in self.store.egress_rules()? {
            match rule_from_row(&row) {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    tracing::error!(rule = row.id, error = %e, "ignoring an unreadable egress rule")
                }
            }
        }
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        Ok(())
    }

    pub fn rules(&self) -> Arc<Vec<Rule>> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn identify(&self, network_id: &str) -> Option<BoxIdentity> {
        if let Some(who) = self
            .identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(network_id)
        {
            return Some(who.clone());
        }
        match self.store.box_on_network(network_id) {
            Ok(found) => {
                let who = found.map(|(box_id, project)| BoxIdentity { box_id, project })?;
                self.identities
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(network_id.to_owned(), who.clone());
                Some(who)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot tell which box a connection came from; refusing");
                None
            }
        }
    }

    pub(crate) fn shields(&self) -> std::sync::MutexGuard<'_, HashMap<String, Shield>> {
        self.shields.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn held_count(&self) -> usize {
        self.holds.len()
    }

    pub(crate) fn record(
        &self,
        who: &BoxIdentity,
        dest: &str,
        port: u16,
        proto: u8,
        domain: &str,
        decision: &str,
        decided_by: &str,
        request_id: &str,
        reason: &str,
    ) {
        let row = AuditRow {
            id: 0,
            at: now_ms(),
            box_id: who.box_id.clone(),
            project: who.project.clone(),
            dest: dest.to_owned(),
            port,
            proto,
            domain: domain.to_owned(),
            decision: decision.to_owned(),
            decided_by: decided_by.to_owned(),
            request_id: request_id.to_owned(),
            reason: reason.to_owned(),
        };
        self.audit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(row);
    }

    /// Stores every queued decision; used at shutdown.
    pub fn flush_audit(&self) {
        let mut audit = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        audit.close();
        *audit = AuditLog::start(self.store.clone());
    }

    pub(crate) fn event(&self, kind: EventKind, who: &BoxIdentity) -> ClearanceEvent {
        ClearanceEvent::new(kind, &who.box_id)
            .with_dossier(&who.project, &format!("paddock-{}", who.box_id))
    }

    /// Announces a refusal that nobody can overrule from a prompt (no
    /// request_id): rule denials, raw attempts, DNS refusals.
    pub(crate) fn announce_refusal(
        &self,
        who: &BoxIdentity,
        dest: &str,
        port: u16,
        proto: u8,
        domain: &str,
        reason: &str,
    ) {
        let mut e = self.event(EventKind::ConnectionBlocked, who);
        e.dest = dest.to_owned();
        e.port = port as i64;
        e.proto = proto as i64;
        e.domain = domain.to_owned();
        e.action = "deny".into();
        e.reason = reason.to_owned();
        self.hub.publish(e);
    }

    async fn resolve(&self, host: &Host) -> Result<Vec<IpAddr>, String> {
        match host {
            Host::Ip(ip) => Ok(vec![*ip]),
            Host::Name(name) => self.resolve_name(name).await,
        }
    }

    pub(crate) async fn resolve_name(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        {
            {
                if let Some(fixed) = self.config.hosts.get(name) {
                    return Ok(fixed.clone());
                }
                let lookup = tokio::net::lookup_host((name, 0));
                match tokio::time::timeout(Duration::from_secs(5), lookup).await {
                    Ok(Ok(addrs)) => {
                        let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                        ips.dedup();
                        if ips.is_empty() {
                            Err(format!("{name} has no addresses"))
                        } else {
                            Ok(ips)
                        }
                    }
                    Ok(Err(e)) => Err(format!("cannot resolve {name}: {e}")),
                    Err(_) => Err(format!("resolving {name} timed out")),
                }
            }
        }
    }

    /// Decides a TCP connection, holding it for a person when the rules say
    /// `ask`. Every outcome is logged.
    pub async fn decide(&self, who: &BoxIdentity, host: &Host, port: u16) -> Decision {
        let host_text = host.as_string();
        let domain = match host {
            Host::Name(n) => n.as_str(),
            Host::Ip(_) => "",
        };
        let deny = |reason: String, by: &str| {
            self.record(who, &host_text, port, 6, domain, "denied", by, "", &reason);
            self.announce_refusal(who, &host_text, port, 6, domain, &reason);
            Decision::Deny { reason }
        };

        let shield = self.shield_of(&who.box_id);
        if shield == Shield::Block {
            return deny("the box's shield blocks all egress".into(), "shield");
        }
        let rules = self.rules();
        let set = RuleSet {
            rules: &rules,
            box_id: &who.box_id,
            project: &who.project,
            now_ms: now_ms(),
        };
        let name_rule = match host {
            Host::Name(n) => set.for_name(n, port),
            Host::Ip(_) => None,
        };
        if let Some(rule) = name_rule.filter(|r| r.action == Action::Deny) {
            return deny(
                format!("denied by {}", rule.describe()),
                &format!("rule #{}", rule.id),
            );
        }

        let ips = match self.resolve(host).await {
            Ok(ips) => ips,
            Err(reason) => return deny(reason, "resolver"),
        };
        let mut permitted = Vec::new();
        let mut address_rule = None;
        let mut refusal = None;
        for ip in ips {
            let rule = set.for_address(ip, port);
            match (rule, restricted(ip)) {
                (Some(r), _) if r.action == Action::Deny => {
                    refusal.get_or_insert((
                        format!("{ip} is denied by {}", r.describe()),
                        format!("rule #{}", r.id),
                    ));
                }
                (None, Some(why)) => {
                    refusal.get_or_insert((
                        format!("{ip} is {why}; a CIDR rule must name it"),
                        "default".to_owned(),
                    ));
                }
                (rule, _) => {
                    if address_rule.is_none() {
                        address_rule = rule;
                    }
                    permitted.push(SocketAddr::new(ip, port));
                }
            }
        }
        if permitted.is_empty() {
            let (reason, by) =
                refusal.unwrap_or_else(|| ("no address to connect to".into(), "default".into()));
            return deny(reason, &by);
        }

        let (action, by) = match name_rule.or(address_rule) {
            Some(rule) => (rule.action, format!("rule #{}", rule.id)),
            None => (Action::Ask, "default".to_owned()),
        };
        // A lowered shield asks nobody: what would be held goes through.
        // Denials and the address checks above still stand.
        let (action, by) = match (action, shield) {
            (Action::Ask, Shield::Down { .. }) => (Action::Allow, "shield down".to_owned()),
            _ => (action, by),
        };
        match action {
            Action::Allow => {
                self.record(who, &host_text, port, 6, domain, "allowed", &by, "", "");
                Decision::Allow { addrs: permitted }
            }
            Action::Deny => deny(format!("denied by {by}"), &by),
            Action::Ask => match self.hold(who, host, port).await {
                Outcome::Allowed { .. } => Decision::Allow { addrs: permitted },
                Outcome::Denied { reason, .. } => Decision::Deny { reason },
            },
        }
    }

    async fn hold(&self, who: &BoxIdentity, host: &Host, port: u16) -> Outcome {
        let host_text = host.as_string();
        let key = HoldKey {
            box_id: who.box_id.clone(),
            host: host_text.clone(),
            port,
        };
        let held = match self.holds.join(key, &who.project) {
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
                    &host_text,
                    port,
                    6,
                    &e.domain,
                    "held",
                    "default",
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
                &held.key.host,
                held.key.port,
                6,
                "",
                "timeout",
                "timeout",
                &request_id,
                &reason,
            );
        });
    }

    fn apply_verdict(&self, v: &CheckedVerdict) -> Result<(), String> {
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
            &held.key.host,
            held.key.port,
            6,
            &v.event.domain,
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
        Ok(rule_from_row(&row)?)
    }

    pub fn delete_rule(&self, id: i64) -> Result<bool, EgressError> {
        let gone = self.store.delete_egress_rule(id)?;
        self.reload_rules()?;
        Ok(gone)
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
                    &held.key.host,
                    held.key.port,
                    6,
                    "",
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
