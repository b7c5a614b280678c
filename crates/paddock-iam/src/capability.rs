//! Capabilities: what an operation needs. The names are the public
//! vocabulary of tokens, roles and the registry, so they never change
//! meaning once shipped.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    BoxCreate,
    BoxRead,
    BoxLogs,
    BoxExec,
    BoxDestroy,
    EgressRead,
    EgressRules,
    EgressShield,
    EgressVerdict,
    EventsSubscribe,
    AdminTokens,
    /// Asking ahead for a destination, with a reason, for a person to
    /// decide (the agent's; it decides nothing).
    EgressRequest,
    /// Stopping and starting a box (its filesystem is kept).
    BoxControl,
    /// Setting and removing a project's secrets and their bindings (no
    /// capability reads a value back).
    SecretWrite,
    /// Pushing a project's agent branch to its upstream forge: the work
    /// leaves the machine, so a person's to say.
    GitUpstream,
    /// Reading `/metrics` (counts and states; never a secret or a token).
    MetricsRead,
    /// Minting spokes' enrolment tokens, listing and revoking spokes:
    /// which machines run boxes for this hub.
    AdminSpokes,
}

impl Capability {
    pub const ALL: [Capability; 17] = [
        Self::BoxCreate,
        Self::BoxRead,
        Self::BoxLogs,
        Self::BoxExec,
        Self::BoxDestroy,
        Self::EgressRead,
        Self::EgressRules,
        Self::EgressShield,
        Self::EgressVerdict,
        Self::EventsSubscribe,
        Self::AdminTokens,
        Self::EgressRequest,
        Self::BoxControl,
        Self::SecretWrite,
        Self::GitUpstream,
        Self::MetricsRead,
        Self::AdminSpokes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BoxCreate => "box:create",
            Self::BoxRead => "box:read",
            Self::BoxLogs => "box:logs",
            Self::BoxExec => "box:exec",
            Self::BoxDestroy => "box:destroy",
            Self::EgressRead => "egress:read",
            Self::EgressRules => "egress:rules",
            Self::EgressShield => "egress:shield",
            Self::EgressVerdict => "egress:verdict",
            Self::EventsSubscribe => "events:subscribe",
            Self::AdminTokens => "admin:tokens",
            Self::EgressRequest => "egress:request",
            Self::BoxControl => "box:control",
            Self::SecretWrite => "secret:write",
            Self::GitUpstream => "git:upstream",
            Self::MetricsRead => "metrics:read",
            Self::AdminSpokes => "admin:spokes",
        }
    }

    /// Capabilities that let through something a box would send: a
    /// person's to use, never the chatbot's (see `Iam::authorise`). A
    /// binding decides where a secret goes, so writing secrets is one.
    pub fn decides_egress(self) -> bool {
        matches!(
            self,
            Self::EgressVerdict
                | Self::EgressRules
                | Self::EgressShield
                | Self::SecretWrite
                | Self::GitUpstream
        )
    }

    /// Capabilities over paddock itself rather than over projects: a
    /// caller limited to some projects never has them.
    pub fn needs_every_project(self) -> bool {
        matches!(self, Self::AdminTokens | Self::AdminSpokes)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {0:?} (known: {known})", known = Capability::ALL.map(Capability::as_str).join(", "))]
pub struct UnknownCapability(pub String);

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCapability(s.to_owned()))
    }
}

/// A set of capabilities, as granted to one identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u32);

impl Capabilities {
    pub fn all() -> Self {
        Capability::ALL.into_iter().collect()
    }

    pub fn contains(self, c: Capability) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn without(self, c: Capability) -> Self {
        Self(self.0 & !c.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Names as stored and shown; every capability is written `*`, so a
    /// token made today also gets capabilities added later.
    pub fn names(self) -> Vec<String> {
        if self == Self::all() {
            return vec!["*".into()];
        }
        self.iter().map(|c| c.as_str().to_owned()).collect()
    }

    /// Parses names and role names (`admin`, `operator`, `agent`,
    /// `viewer`) and `*`.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownCapability> {
        let mut set = Self::default();
        for name in names {
            set = Self(set.0 | Self::named(name)?.0);
        }
        Ok(set)
    }

    fn named(name: &str) -> Result<Self, UnknownCapability> {
        use Capability::*;
        let role: &[Capability] = match name {
            "*" | "admin" => return Ok(Self::all()),
            // Operators run boxes; which tokens exist and which machines
            // may join are an admin's.
            "operator" => return Ok(Self::all().without(AdminTokens).without(AdminSpokes)),
            "agent" => &[
                BoxCreate,
                BoxRead,
                BoxLogs,
                BoxExec,
                BoxDestroy,
                BoxControl,
                EgressRead,
                EgressRequest,
            ],
            "viewer" => &[BoxRead, EgressRead, EventsSubscribe, MetricsRead],
            other => return other.parse::<Capability>().map(|c| Self(c.bit())),
        };
        Ok(role.iter().copied().collect())
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, c| acc | c.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Capability::ALL {
            assert_eq!(c.as_str().parse::<Capability>().unwrap(), c);
        }
        assert!("box:fly".parse::<Capability>().is_err());
    }

    #[test]
    fn roles_expand_and_the_agent_cannot_decide_egress() {
        let agent = Capabilities::parse(["agent"]).unwrap();
        assert!(agent.contains(Capability::BoxExec));
        assert!(!agent.contains(Capability::EgressVerdict));
        assert_eq!(Capabilities::parse(["*"]).unwrap().names(), vec!["*"]);
        let two = Capabilities::parse(["box:read", "viewer"]).unwrap();
        assert!(two.contains(Capability::EventsSubscribe));
        let operator = Capabilities::parse(["operator"]).unwrap();
        assert!(!operator.contains(Capability::AdminTokens));
        assert!(!operator.contains(Capability::AdminSpokes));
        assert!(Capabilities::parse(["root"]).is_err());
    }
}
