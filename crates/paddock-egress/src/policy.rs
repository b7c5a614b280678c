//! Rules and how one is chosen for a destination.
//!
//! The most specific rule wins: a box's own rules before its project's; an
//! exact name before a wildcard, a longer wildcard before a shorter one, a
//! longer CIDR prefix before a shorter; a rule naming ports before one that
//! does not; and among equals, `deny` before `ask` before `allow`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0:?} is not a domain, *.domain or CIDR")]
    Target(String),
    #[error("{0:?} is not a port or port range (P or P-Q, 1-65535)")]
    Ports(String),
    #[error("action must be allow, deny or ask, not {0:?}")]
    Action(String),
    #[error("scope must be box or project, not {0:?}")]
    Scope(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    Ask,
}

impl Action {
    fn severity(self) -> u8 {
        match self {
            Self::Deny => 0,
            Self::Ask => 1,
            Self::Allow => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Ask => "ask",
        }
    }
}

impl FromStr for Action {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            "ask" => Ok(Self::Ask),
            _ => Err(PolicyError::Action(s.to_owned())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

/// IPv4-mapped IPv6 addresses are their IPv4 selves, so `::ffff:10.0.0.1`
/// cannot slip past a rule about 10.0.0.0/8.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PolicyError::Target(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Exactly this name (lower case, no trailing dot).
    Domain(String),
    /// Any name strictly below this suffix: `*.example.com` holds
    /// `a.example.com`, not `example.com`.
    Wildcard(String),
    Cidr(Cidr),
}

/// A DNS name as rules and requests compare them.
pub fn normalise_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    ok.then_some(name)
}

impl FromStr for Target {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PolicyError::Target(s.to_owned());
        if let Some(suffix) = s.strip_prefix("*.") {
            return normalise_name(suffix).map(Target::Wildcard).ok_or_else(bad);
        }
        if s.contains('/') || s.parse::<IpAddr>().is_ok() {
            return s.parse().map(Target::Cidr);
        }
        normalise_name(s).map(Target::Domain).ok_or_else(bad)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Wildcard(w) => write!(f, "*.{w}"),
            Self::Cidr(c) => c.fmt(f),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PolicyError::Ports(s.to_owned());
        let port = |p: &str| -> Result<u16, PolicyError> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(bad()),
            }
        };
        let (lo, hi) = match s.split_once('-') {
            Some((lo, hi)) => (port(lo)?, port(hi)?),
            None => (port(s)?, port(s)?),
        };
        if lo > hi {
            return Err(bad());
        }
        Ok(Self { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Box(String),
    Project(String),
}

impl Scope {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Box(_) => "box",
            Self::Project(_) => "project",
        }
    }

    pub fn subject(&self) -> &str {
        match self {
            Self::Box(s) | Self::Project(s) => s,
        }
    }

    pub fn from_parts(kind: &str, subject: &str) -> Result<Self, PolicyError> {
        match kind {
            "box" => Ok(Self::Box(subject.to_owned())),
            "project" => Ok(Self::Project(subject.to_owned())),
            _ => Err(PolicyError::Scope(kind.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: i64,
    pub scope: Scope,
    pub target: Target,
    pub ports: Option<PortRange>,
    pub action: Action,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
    pub created_by: String,
}

impl Rule {
    fn applies(&self, box_id: &str, project: &str, port: u16, now_ms: i64) -> bool {
        let scoped = match &self.scope {
            Scope::Box(b) => b == box_id,
            Scope::Project(p) => p == project,
        };
        scoped
            && self.ports.is_none_or(|p| p.contains(port))
            && self.expires_at.is_none_or(|t| t > now_ms)
    }

    /// Smaller is more specific.
    fn rank(&self) -> (u8, u8, u32, u8, u8) {
        let scope = match self.scope {
            Scope::Box(_) => 0,
            Scope::Project(_) => 1,
        };
        let (kind, breadth) = match &self.target {
            Target::Domain(_) => (0, 0),
            Target::Wildcard(w) => (1, u32::MAX - w.len() as u32),
            Target::Cidr(c) => (2, 255 - c.prefix() as u32),
        };
        let ports = if self.ports.is_some() { 0 } else { 1 };
        (scope, kind, breadth, ports, self.action.severity())
    }

    pub fn describe(&self) -> String {
        let ports = self.ports.map(|p| format!(" port {p}")).unwrap_or_default();
        format!(
            "rule #{} ({} {}{} for {} {})",
            self.id,
            self.action.as_str(),
            self.target,
            ports,
            self.scope.kind(),
            self.scope.subject()
        )
    }
}

/// What the rules say about one destination of one box.
pub struct RuleSet<'a> {
    pub rules: &'a [Rule],
    pub box_id: &'a str,
    pub project: &'a str,
    pub now_ms: i64,
}

impl<'a> RuleSet<'a> {
    fn best(&self, port: u16, matches: impl Fn(&Target) -> bool) -> Option<&'a Rule> {
        self.rules
            .iter()
            .filter(|r| {
                r.applies(self.box_id, self.project, port, self.now_ms) && matches(&r.target)
            })
            .min_by_key(|r| r.rank())
    }

    /// The rule naming this host name, exactly or by wildcard.
    pub fn for_name(&self, name: &str, port: u16) -> Option<&'a Rule> {
        self.best(port, |t| Self::names(t, name))
    }

    /// For DNS, where no port is known: the rule naming this host on any port.
    pub fn for_name_any_port(&self, name: &str) -> Option<&'a Rule> {
        self.rules
            .iter()
            .filter(|r| {
                r.ports.is_some()
                    && r.applies(
                        self.box_id,
                        self.project,
                        r.ports.map_or(0, |p| p.lo),
                        self.now_ms,
                    )
            })
            .filter(|r| Self::names(&r.target, name))
            .chain(self.for_name(name, 0))
            .min_by_key(|r| r.rank())
    }

    pub fn for_address_any_port(&self, ip: IpAddr) -> Option<&'a Rule> {
        self.rules
            .iter()
            .filter(|r| {
                r.applies(
                    self.box_id,
                    self.project,
                    r.ports.map_or(0, |p| p.lo),
                    self.now_ms,
                )
            })
            .filter(|r| matches!(&r.target, Target::Cidr(c) if c.contains(ip)))
            .min_by_key(|r| r.rank())
    }

    fn names(target: &Target, name: &str) -> bool {
        match target {
            Target::Domain(d) => d == name,
            Target::Wildcard(w) => {
                name.len() > w.len() + 1
                    && name.ends_with(w.as_str())
                    && name.as_bytes()[name.len() - w.len() - 1] == b'.'
            }
            Target::Cidr(_) => false,
        }
    }

    /// The CIDR rule holding this address.
    pub fn for_address(&self, ip: IpAddr, port: u16) -> Option<&'a Rule> {
        self.best(port, |t| matches!(t, Target::Cidr(c) if c.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, scope: Scope, target: &str, ports: Option<&str>, action: Action) -> Rule {
        Rule {
            id,
            scope,
            target: target.parse().unwrap(),
            ports: ports.map(|p| p.parse().unwrap()),
            action,
            expires_at: None,
            created_by: "test".into(),
        }
    }

    #[test]
    fn parses_targets_and_ports_and_refuses_junk() {
        assert_eq!(
            "Example.COM.".parse::<Target>().unwrap(),
            Target::Domain("example.com".into())
        );
        assert_eq!(
            "*.example.com".parse::<Target>().unwrap().to_string(),
            "*.example.com"
        );
        assert_eq!(
            "10.1.2.3/8".parse::<Target>().unwrap().to_string(),
            "10.1.2.3/8"
        );
        assert_eq!(
            "::ffff:10.0.0.1".parse::<Target>().unwrap().to_string(),
            "10.0.0.1/32"
        );
        for junk in [
            "",
            "*.",
            "a..b",
            "-a.com",
            "10.0.0.0/33",
            "10.0.0.0/",
            "exa mple.com",
            "*.*.a",
        ] {
            assert!(junk.parse::<Target>().is_err(), "{junk:?} parsed");
        }
        assert_eq!(
            "443".parse::<PortRange>().unwrap(),
            PortRange { lo: 443, hi: 443 }
        );
        assert_eq!(
            "8000-8100".parse::<PortRange>().unwrap().to_string(),
            "8000-8100"
        );
        for junk in ["0", "70000", "9-1", "+1", "1-", "a"] {
            assert!(junk.parse::<PortRange>().is_err(), "{junk:?} parsed");
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let b = || Scope::Box("b1".into());
        let p = || Scope::Project("p".into());
        let rules = vec![
            rule(1, p(), "*.example.com", None, Action::Allow),
            rule(2, p(), "*.corp.example.com", None, Action::Deny),
            rule(3, b(), "api.corp.example.com", None, Action::Allow),
            rule(4, p(), "api.corp.example.com", None, Action::Deny),
            rule(5, b(), "ports.example.com", Some("443"), Action::Allow),
            rule(6, p(), "10.0.0.0/8", None, Action::Allow),
            rule(7, p(), "10.9.0.0/16", None, Action::Deny),
            rule(8, b(), "x.example.com", None, Action::Allow),
            rule(9, b(), "x.example.com", None, Action::Deny),
        ];
        let set = RuleSet {
            rules: &rules,
            box_id: "b1",
            project: "p",
            now_ms: 0,
        };
        let id = |r: Option<&Rule>| r.map(|r| r.id);
        assert_eq!(id(set.for_name("www.example.com", 80)), Some(1));
        assert_eq!(
            id(set.for_name("example.com", 80)),
            None,
            "a wildcard is strictly below"
        );
        assert_eq!(id(set.for_name("x.corp.example.com", 80)), Some(2));
        assert_eq!(
            id(set.for_name("api.corp.example.com", 80)),
            Some(3),
            "box before project"
        );
        assert_eq!(id(set.for_name("ports.example.com", 443)), Some(5));
        assert_eq!(
            id(set.for_name("ports.example.com", 22)),
            Some(1),
            "port rule only on its port"
        );
        assert_eq!(
            id(set.for_name("x.example.com", 80)),
            Some(9),
            "deny before allow"
        );
        assert_eq!(id(set.for_name("notexample.com", 80)), None);
        assert_eq!(
            id(set.for_address("10.1.1.1".parse().unwrap(), 80)),
            Some(6)
        );
        assert_eq!(
            id(set.for_address("10.9.1.1".parse().unwrap(), 80)),
            Some(7)
        );
        let other = RuleSet {
            rules: &rules,
            box_id: "b2",
            project: "q",
            now_ms: 0,
        };
        assert_eq!(id(other.for_name("api.corp.example.com", 80)), None);
    }

    #[test]
    fn expired_rules_do_not_apply() {
        let mut r = rule(1, Scope::Box("b".into()), "a.com", None, Action::Allow);
        r.expires_at = Some(1000);
        let rules = [r];
        let set = |now_ms| RuleSet {
            rules: &rules,
            box_id: "b",
            project: "p",
            now_ms,
        };
        assert!(set(999).for_name("a.com", 1).is_some());
        assert!(set(1000).for_name("a.com", 1).is_none());
    }
}
