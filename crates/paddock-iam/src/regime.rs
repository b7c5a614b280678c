//! The contract every regime implements: authenticate a credential into an
//! [`Identity`], and decide whether that identity may use a capability on a
//! resource, with how long the decision may be reused.

use std::time::Duration;

use async_trait::async_trait;

use crate::capability::Capability;
use crate::error::AuthError;
use crate::identity::{Identity, Resource, Surface};

/// A credential as it arrived. Never logged, never put in an error.
pub struct Credential<'a> {
    pub secret: &'a str,
    pub via: Surface,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    /// How long the decision may be reused (clamped by the cache).
    pub ttl: Duration,
    /// For a refusal: why, said to the caller.
    pub reason: Option<String>,
}

impl Decision {
    pub fn allow(ttl: Duration) -> Self {
        Self {
            allow: true,
            ttl,
            reason: None,
        }
    }

    pub fn deny(reason: impl Into<String>, ttl: Duration) -> Self {
        Self {
            allow: false,
            ttl,
            reason: Some(reason.into()),
        }
    }
}

#[async_trait]
pub trait Regime: Send + Sync {
    /// Short name for logs (`tokens`, `oidc`, `introspection`).
    fn name(&self) -> &'static str;

    /// Whether this regime should be asked about a credential of this
    /// shape at all; the first regime that claims it decides.
    fn claims(&self, secret: &str) -> bool;

    async fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError>;

    /// The default: the grants found at authentication, the identity's
    /// project scope and its expiry.
    async fn authorise(
        &self,
        identity: &Identity,
        capability: Capability,
        resource: &Resource,
    ) -> Result<Decision, AuthError> {
        Ok(grant_decision(identity, capability, resource, self.ttl()))
    }

    /// How long this regime's decisions stay good.
    fn ttl(&self) -> Duration {
        Duration::from_secs(60)
    }
}

/// Grants and scope, shared by the regimes that find grants at
/// authentication.
pub fn grant_decision(
    identity: &Identity,
    capability: Capability,
    resource: &Resource,
    ttl: Duration,
) -> Decision {
    let ttl = match identity.expires_at {
        Some(at) => {
            let left = at - crate::now();
            if left <= 0 {
                return Decision::deny("the credential has expired", Duration::ZERO);
            }
            ttl.min(Duration::from_secs(left as u64))
        }
        None => ttl,
    };
    if !identity.grants.contains(capability) {
        return Decision::deny(
            format!("{} lacks the capability {capability}", identity.principal),
            ttl,
        );
    }
    if capability.needs_every_project() && !identity.projects.is_all() {
        return Decision::deny(
            format!("{capability} needs a credential for every project"),
            ttl,
        );
    }
    if *resource == Resource::EveryProject && !identity.projects.is_all() {
        return Decision::deny(
            format!(
                "{} may act only on its own projects, and this belongs to none",
                identity.principal
            ),
            ttl,
        );
    }
    if let Some(project) = resource.project()
        && !identity.projects.contains(project)
    {
        return Decision::deny(
            format!("{} may not act on project {project:?}", identity.principal),
            ttl,
        );
    }
    Decision::allow(ttl)
}
