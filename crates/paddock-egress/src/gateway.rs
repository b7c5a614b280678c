//! The decision: for one box and one destination, allow, deny or hold —
//! and, when allowed, exactly which addresses may be dialled (resolved once,
//! checked, then used as is, so a second lookup cannot rebind the name).

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use paddock_clearance::{ClearanceEvent, EventKind, Hub};
use paddock_store::{AuditRow, RuleRow, Store};

use crate::EgressError;
use crate::address::restricted;
use crate::audit::{AuditDecision, AuditLog};
use crate::config::EgressConfig;
use crate::hold::Outcome;
use crate::policy::{Action, PolicyError, PortRange, Rule, RuleSet, Scope, normalise_name};
use crate::shield::Shield;

pub use paddock_store::clock::now_ms;

/// Who is asking: the box holding the network the connection came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxIdentity {
    pub box_id: String,
    pub project: String,
}

/// What decides for one box right now: its shield and the rules as they
/// stand (a snapshot, so one decision sees one rule set throughout).
pub(crate) struct Policy {
    pub shield: Shield,
    rules: Arc<Vec<Rule>>,
    now_ms: i64,
}

impl Policy {
    pub fn rules<'a>(&'a self, who: &'a BoxIdentity) -> RuleSet<'a> {
        RuleSet {
            rules: &self.rules,
            box_id: &who.box_id,
            project: &who.project,
            now_ms: self.now_ms,
        }
    }
}

/// A destination as the log and events describe it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dest<'a> {
    /// The name or address asked for.
    pub host: &'a str,
    pub port: u16,
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// The name, when one was asked for.
    pub domain: &'a str,
}

impl<'a> Dest<'a> {
    /// A TCP connection to `host` (a name or an address), naming `domain`
    /// when a name was asked for.
    pub fn tcp(host: &'a str, port: u16, domain: &'a str) -> Self {
        Self {
            host,
            port,
            proto: 6,
            domain,
        }
    }

    /// A DNS question for `name`.
    pub fn dns(name: &'a str) -> Self {
        Self {
            host: name,
            port: 53,
            proto: 17,
            domain: name,
        }
    }

    /// A packet of any protocol to an address, no name known.
    pub fn raw(host: &'a str, port: u16, proto: u8) -> Self {
        Self {
            host,
            port,
            proto,
            domain: "",
        }
    }

    /// Every destination at once (a shield change).
    pub fn everywhere() -> Self {
        Self::raw("*", 0, 0)
    }
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
    pub(crate) store: Arc<Store>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) rules: RwLock<Arc<Vec<Rule>>>,
    pub(crate) http_rules: RwLock<Arc<Vec<crate::http_rules::HttpRule>>>,
    pub(crate) shields: Mutex<HashMap<String, Shield>>,
    pub(crate) audit: Mutex<AuditLog>,
    /// network → the box on it, so a connection costs no store query.
    /// Dropped when the box goes (its network may then serve another).
    pub(crate) identities: Mutex<HashMap<String, BoxIdentity>>,
    /// The host-side fence, as far as health is concerned.
    fence: std::sync::OnceLock<crate::HostFence>,
    /// Reads hosts a secret is bound to; unset, every tunnel is blind.
    interceptor: std::sync::OnceLock<Arc<crate::intercept::Interceptor>>,
    resolver: crate::resolver::Resolver,
}

pub(crate) fn rule_from_row(row: &RuleRow) -> Result<Rule, PolicyError> {
    Ok(Rule {
        id: row.id,
        scope: Scope::from_parts(&row.scope, &row.subject)?,
        target: row.target.parse()?,
        ports: row.ports.map(|(lo, hi)| PortRange { lo, hi }),
        action: row.action.parse()?,
        expires_at: row.expires_at_ms,
        created_by: row.created_by.clone(),
    })
}

impl Egress {
    pub fn new(
        config: EgressConfig,
        store: Arc<Store>,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>, EgressError> {
        let resolver = crate::resolver::Resolver::new(&config.resolvers, config.hosts.clone())?;
        let egress = Arc::new(Self {
            resolver,
            identities: Mutex::new(HashMap::new()),
            config,
            audit: Mutex::new(AuditLog::start(store.clone())),
            store,
            hub: hub.clone(),
            rules: RwLock::new(Arc::new(Vec::new())),
            http_rules: RwLock::new(Arc::new(Vec::new())),
            shields: Mutex::new(HashMap::new()),
            fence: std::sync::OnceLock::new(),
            interceptor: std::sync::OnceLock::new(),
        });
        egress.reload_rules()?;
        egress.reload_http_rules()?;
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
        *self.rules.write() = Arc::new(rules);
        Ok(())
    }

    pub fn rules(&self) -> Arc<Vec<Rule>> {
        self.rules.read().clone()
    }

    pub(crate) fn policy_of(&self, who: &BoxIdentity) -> Policy {
        Policy {
            shield: self.shield_of(&who.box_id),
            rules: self.rules(),
            now_ms: now_ms(),
        }
    }

    /// The box holding the network a connection came in on: bound when
    /// the box was equipped (or found running at start), unbound when the
    /// network is released. No store query on a connection's path.
    pub fn identify(&self, network_id: &str) -> Option<BoxIdentity> {
        self.identities.lock().get(network_id).cloned()
    }

    pub(crate) fn shields(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Shield>> {
        self.shields.lock()
    }

    pub(crate) fn record(
        &self,
        who: &BoxIdentity,
        dest: Dest<'_>,
        decision: AuditDecision,
        decided_by: &str,
        request_id: &str,
        reason: &str,
    ) {
        let row = AuditRow {
            id: 0,
            at_ms: now_ms(),
            box_id: who.box_id.clone(),
            project: who.project.clone(),
            dest: dest.host.to_owned(),
            port: dest.port,
            proto: dest.proto,
            domain: dest.domain.to_owned(),
            decision: decision.as_str().to_owned(),
            decided_by: decided_by.to_owned(),
            request_id: request_id.to_owned(),
            reason: reason.to_owned(),
        };
        self.audit.lock().record(row);
        crate::metrics::decided(decision, decided_by);
    }

    /// Records a request that could not even be read as a destination
    /// (a malformed proxy request or DNS query): refused, and on the record
    /// like every other refusal.
    /// `by` is the listener that refused it, `proto` its protocol.
    pub(crate) fn record_malformed(
        &self,
        who: &BoxIdentity,
        target: &str,
        (by, proto): (&str, u8),
        reason: &str,
    ) {
        let target: String = target.chars().take(256).collect();
        let dest = Dest::raw(&target, 0, proto);
        self.record(who, dest, AuditDecision::Malformed, by, "", reason);
    }

    /// Why decisions cannot be recorded right now (and so must not be
    /// taken); `None` while they can.
    pub(crate) fn audit_failure(&self) -> Option<String> {
        self.audit.lock().failure()
    }

    /// From now on, hosts a secret of the box's project is bound to are
    /// read (TLS terminated) and get their values; set once, at start.
    pub fn intercept_with(&self, interceptor: Arc<crate::intercept::Interceptor>) {
        let _ = self.interceptor.set(interceptor);
    }

    pub fn interceptor(&self) -> Option<&Arc<crate::intercept::Interceptor>> {
        self.interceptor.get()
    }

    /// Lets health look at the host-side fence of box networks.
    pub fn watch_fence(&self, fence: crate::HostFence) {
        let _ = self.fence.set(fence);
    }

    /// Down when decisions could no longer be recorded (and so must not be
    /// taken), or when box networks are not fenced on the host (checked in
    /// the kernel, not remembered: another process may have removed it).
    pub async fn health(&self) -> Result<(), EgressError> {
        if let Some(why) = self.audit_failure() {
            return Err(EgressError::Unhealthy(format!(
                "the decision log cannot be written ({why}); connections are refused until it can"
            )));
        }
        match self.fence.get() {
            Some(crate::HostFence::Ready(guard)) => guard
                .verify()
                .await
                .map_err(|e| EgressError::Unhealthy(e.to_string())),
            Some(crate::HostFence::Failed(reason)) => Err(EgressError::Unhealthy(format!(
                "box networks are not fenced on the host, so no box starts: {reason}"
            ))),
            Some(crate::HostFence::Off) | None => Ok(()),
        }
    }

    /// Stores every queued decision; used at shutdown.
    pub fn flush_audit(&self) {
        let mut audit = self.audit.lock();
        audit.close();
        *audit = AuditLog::start(self.store.clone());
    }

    pub(crate) fn event(&self, kind: EventKind, who: &BoxIdentity) -> ClearanceEvent {
        ClearanceEvent::new(kind, &who.box_id)
            .with_dossier(&who.project, &format!("paddock-{}", who.box_id))
    }

    /// Announces a refusal that nobody can overrule from a prompt (no
    /// request_id): rule denials, raw attempts, DNS refusals.
    /// Logs a refusal nobody can overrule from a prompt and announces it.
    pub(crate) fn refuse(
        &self,
        who: &BoxIdentity,
        dest: Dest<'_>,
        decision: AuditDecision,
        by: &str,
        reason: &str,
    ) {
        self.record(who, dest, decision, by, "", reason);
        self.announce_refusal(who, dest, reason);
    }

    pub(crate) fn announce_refusal(&self, who: &BoxIdentity, dest: Dest<'_>, reason: &str) {
        let mut e = self.destination_event(EventKind::ConnectionRefused, who, dest);
        e.action = "deny".into();
        e.reason = reason.to_owned();
        self.hub.publish(e);
    }

    /// The `connection_blocked` event of a destination held for a person;
    /// the hub gives it its request id.
    pub(crate) fn held_event(&self, who: &BoxIdentity, dest: Dest<'_>) -> ClearanceEvent {
        let mut e = self.destination_event(EventKind::ConnectionBlocked, who, dest);
        e.action = "ask".into();
        e.reason = "held until a person allows or denies it".into();
        e
    }

    pub(crate) fn destination_event(
        &self,
        kind: EventKind,
        who: &BoxIdentity,
        dest: Dest<'_>,
    ) -> ClearanceEvent {
        let mut e = self.event(kind, who);
        e.dest = dest.host.to_owned();
        e.port = i64::from(dest.port);
        e.proto = i64::from(dest.proto);
        e.domain = dest.domain.to_owned();
        e
    }

    async fn resolve(&self, host: &Host) -> Result<Vec<IpAddr>, String> {
        match host {
            Host::Ip(ip) => Ok(vec![*ip]),
            Host::Name(name) => self.resolve_name(name).await,
        }
    }

    /// Only for names already allowed: asking is telling (see `resolver`).
    pub(crate) async fn resolve_name(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        self.resolver.resolve(name).await
    }

    /// Decides a TCP connection, holding it for a person when the rules say
    /// `ask`. Every outcome is logged.
    ///
    /// A name is resolved only once it is allowed — by a name rule, a
    /// lowered shield or a person — never to decide whether to ask: the
    /// lookup itself would carry the name to whoever serves its domain.
    /// The addresses it resolves to are then checked like any others.
    /// Names fixed by `[egress.hosts]` ask nobody to resolve, so for them
    /// (and for address literals) address rules decide as well.
    pub async fn decide(self: &Arc<Self>, who: &BoxIdentity, host: &Host, port: u16) -> Decision {
        let host_text = host.as_string();
        let domain = match host {
            Host::Name(n) => n.as_str(),
            Host::Ip(_) => "",
        };
        let dest = Dest::tcp(&host_text, port, domain);
        let deny = |reason: String, by: &str| {
            self.refuse(who, dest, AuditDecision::Denied, by, &reason);
            Decision::Deny { reason }
        };

        // Nothing is decided off the record: while the log cannot be
        // written, nothing goes through (fail closed).
        if let Some(why) = self.audit_failure() {
            return deny(
                format!("paddock cannot record decisions right now ({why})"),
                "decision log",
            );
        }
        let policy = self.policy_of(who);
        let shield = policy.shield;
        if shield == Shield::Block {
            return deny("the box's shield blocks all egress".into(), "shield");
        }
        let set = policy.rules(who);
        let name_rule = match host {
            Host::Name(n) => set.for_name(n, port),
            Host::Ip(_) => None,
        };
        let clearance = clear_name(name_rule, &shield);
        if let NameClearance::Denied(rule) = clearance {
            return deny(
                format!("denied by {}", rule.describe()),
                &format!("rule #{}", rule.id),
            );
        }
        if let Host::Name(name) = host
            && !self.resolver.is_fixed(name)
        {
            // A person's allow is on the record already (as their verdict).
            let by = match clearance {
                NameClearance::Cleared { by } => Some(by),
                _ => match self
                    .hold(
                        who,
                        host,
                        port,
                        &name_rule.map_or("default".to_owned(), decided_by),
                    )
                    .await
                {
                    Outcome::Allowed => None,
                    Outcome::Denied { reason } => return Decision::Deny { reason },
                },
            };
            let ips = match self.resolve(host).await {
                Ok(ips) => ips,
                Err(reason) => return deny(reason, "resolver"),
            };
            return match permitted(&set, ips, port) {
                Ok((addrs, _)) => {
                    if let Some(by) = by {
                        self.record(who, dest, AuditDecision::Allowed, &by, "", "");
                    }
                    Decision::Allow { addrs }
                }
                Err((reason, by)) => deny(reason, &by),
            };
        }

        let ips = match self.resolve(host).await {
            Ok(ips) => ips,
            Err(reason) => return deny(reason, "resolver"),
        };
        let (addrs, address_rule) = match permitted(&set, ips, port) {
            Ok(found) => found,
            Err((reason, by)) => return deny(reason, &by),
        };
        let (action, by) = match name_rule.or(address_rule) {
            Some(rule) => (rule.action, decided_by(rule)),
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
                self.record(who, dest, AuditDecision::Allowed, &by, "", "");
                Decision::Allow { addrs }
            }
            Action::Deny => deny(format!("denied by {by}"), &by),
            Action::Ask => match self.hold(who, host, port, &by).await {
                Outcome::Allowed => Decision::Allow { addrs },
                Outcome::Denied { reason } => Decision::Deny { reason },
            },
        }
    }
}

/// Who a rule's decision is credited to: the rule, or the login profile
/// that put it there for the length of a login.
/// What the rules and the shield say about a name before anything is
/// resolved — the one decision the proxy and the DNS responder share, so
/// a box cannot learn an address it could not connect to, nor the other
/// way round. A blocked shield is refused before this is asked.
pub(crate) enum NameClearance<'r> {
    Denied(&'r Rule),
    /// Allowed by a rule or a lowered shield; `by` is who to credit.
    Cleared {
        by: String,
    },
    /// Only a person can say (the proxy holds; DNS refuses).
    Undecided,
}

pub(crate) fn clear_name<'r>(rule: Option<&'r Rule>, shield: &Shield) -> NameClearance<'r> {
    match (rule, shield) {
        (Some(r), _) if r.action == Action::Deny => NameClearance::Denied(r),
        (Some(r), _) if r.action == Action::Allow => NameClearance::Cleared { by: decided_by(r) },
        (_, Shield::Down { .. }) => NameClearance::Cleared {
            by: "shield down".to_owned(),
        },
        _ => NameClearance::Undecided,
    }
}

/// Whether an address may be reached given the address rule that matches
/// it: a deny rule refuses it, and so does the lack of a rule for a
/// restricted address (loopback, private, metadata …).
pub(crate) fn address_verdict(rule: Option<&Rule>, ip: IpAddr) -> Result<(), Refusal> {
    match (rule, restricted(ip)) {
        (Some(r), _) if r.action == Action::Deny => Err((
            format!("{ip} is denied by {}", r.describe()),
            format!("rule #{}", r.id),
        )),
        (None, Some(why)) => Err((
            format!("{ip} is {why}; a CIDR rule must name it"),
            "default".to_owned(),
        )),
        _ => Ok(()),
    }
}

fn decided_by(rule: &Rule) -> String {
    if rule.created_by.starts_with("profile:") {
        rule.created_by.clone()
    } else {
        format!("rule #{}", rule.id)
    }
}

/// Addresses that may be dialled, and the address rule that let the first
/// through (if a rule did).
type Permitted<'r> = (Vec<SocketAddr>, Option<&'r Rule>);

/// Why no address may be dialled: the reason, and who decided.
type Refusal = (String, String);

/// The addresses among `ips` that may be dialled, with the address rule
/// that let the first through; or why none may.
fn permitted<'r>(set: &RuleSet<'r>, ips: Vec<IpAddr>, port: u16) -> Result<Permitted<'r>, Refusal> {
    let mut addrs = Vec::new();
    let mut address_rule = None;
    let mut refusal = None;
    for ip in ips {
        let rule = set.for_address(ip, port);
        match address_verdict(rule, ip) {
            Err(why) => {
                refusal.get_or_insert(why);
            }
            Ok(()) => {
                if address_rule.is_none() {
                    address_rule = rule;
                }
                addrs.push(SocketAddr::new(ip, port));
            }
        }
    }
    if addrs.is_empty() {
        return Err(
            refusal.unwrap_or_else(|| ("no address to connect to".into(), "default".into()))
        );
    }
    Ok((addrs, address_rule))
}
