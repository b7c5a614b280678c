//! Identity and access for every surface: one contract (authenticate a
//! credential, authorise a capability on a resource), the regimes behind it,
//! the operation registry, and a decision cache.
//!
//! Surfaces hold no policy: they find their operation in [`registry`], ask
//! [`Iam`] per request, and refuse what it refuses. A regime error is a
//! refusal, never an allow.

mod builtin;
mod cache;
mod capability;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod introspect;
mod oidc;
mod regime;
pub mod registry;
mod relying_party;
mod remote;
mod sessions;
mod signin;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

pub use builtin::{NewToken, TokenBook, TokenInfo, TokenRegime, hash as hash_token};
pub use capability::{Capabilities, Capability, UnknownCapability};
pub use error::{AuthError, Denied, IamError};
pub use identity::{Identity, ProjectScope, Resource, Source, Surface};
pub use introspect::{IntrospectionConfig, IntrospectionRegime};
pub use oidc::{OidcConfig, OidcRegime};
pub use regime::{Credential, Decision, Regime, grant_decision};
pub use registry::{Access, Operation, RegistryError, Target};
pub use sessions::{LINK_TTL, OpenedSession, SessionError, Sessions};
pub use signin::{LoginStart, SignIn, SignedIn, SigninConfig, SigninError, SigninGrant, safe_next};

use cache::DecisionCache;

pub(crate) use paddock_store::clock::now_secs as now;

/// Three base64url segments separated by dots: a JWS compact JWT.
pub(crate) fn looks_like_jwt(secret: &str) -> bool {
    let mut parts = 0;
    for part in secret.split('.') {
        parts += 1;
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

/// Settings of the IAM layer itself (the regimes have their own).
#[derive(Debug, Clone)]
pub struct IamSettings {
    /// Off: every caller is let in as the local admin. Only for a paddock
    /// bound to loopback (`serve` refuses otherwise).
    pub enabled: bool,
    /// Upper bound on how long any decision is reused.
    pub max_decision_ttl: Duration,
    /// Whether a credential used over MCP may decide egress. Off by
    /// default: the agent may ask, only a person decides.
    pub mcp_may_decide_egress: bool,
}

impl Default for IamSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_decision_ttl: Duration::from_secs(60),
            mcp_may_decide_egress: false,
        }
    }
}

pub struct Iam {
    settings: IamSettings,
    regimes: Vec<Arc<dyn Regime>>,
    cache: DecisionCache,
    tokens: Option<TokenBook>,
    revoked: broadcast::Sender<Arc<str>>,
    sessions: Sessions,
}

impl Iam {
    /// `regimes` are asked in order; the first that claims a credential's
    /// shape decides it. Each regime was built knowing its own index.
    pub fn new(
        settings: IamSettings,
        regimes: Vec<Arc<dyn Regime>>,
        tokens: Option<TokenBook>,
    ) -> Self {
        let (revoked, _) = broadcast::channel(64);
        Self {
            cache: DecisionCache::new(settings.max_decision_ttl),
            settings,
            regimes,
            tokens,
            revoked,
            sessions: Sessions::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub fn tokens(&self) -> Option<&TokenBook> {
        self.tokens.as_ref()
    }

    /// Browser sessions (sign-in and console links); a revoked token's
    /// sessions end with it.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The identity of a caller when IAM is off.
    fn anonymous(via: Surface) -> Identity {
        Identity {
            principal: "anonymous".into(),
            projects: ProjectScope::All,
            source: Source::Session,
            via,
            expires_at: None,
            regime: usize::MAX,
            grants: Capabilities::all(),
            used_over_mcp: false,
        }
    }

    pub async fn authenticate(
        &self,
        secret: Option<&str>,
        via: Surface,
    ) -> Result<Identity, AuthError> {
        if !self.settings.enabled {
            return Ok(Self::anonymous(via));
        }
        let secret = secret.filter(|s| !s.is_empty()).ok_or(AuthError::Missing)?;
        if secret.len() > 8192 {
            return Err(AuthError::Rejected("credential too long".into()));
        }
        let credential = Credential { secret, via };
        for regime in self.regimes.iter().filter(|r| r.claims(secret)) {
            match regime.authenticate(&credential).await {
                Err(AuthError::Unknown) => continue,
                other => return other,
            }
        }
        Err(AuthError::Rejected("unknown credential".into()))
    }

    /// Whether `identity` may use `capability` on `resource`; decisions are
    /// reused for the regime's TTL (clamped), refusals included.
    pub async fn authorise(
        &self,
        identity: &Identity,
        capability: Capability,
        resource: &Resource,
    ) -> Result<(), Denied> {
        if !self.settings.enabled {
            return Ok(());
        }
        if capability.decides_egress() && !self.settings.mcp_may_decide_egress {
            if identity.via == Surface::Mcp {
                return Err(Denied(format!(
                    "{capability} is a person's, not to be used over MCP: the agent may ask, `paddock clearance` or the events socket decides"
                )));
            }
            if identity.used_over_mcp {
                return Err(Denied(format!(
                    "this token was used over MCP — it is the chatbot's, and {capability} is a person's; use a person's token"
                )));
            }
        }
        if let Some(cached) =
            self.cache
                .get(&identity.principal, identity.via, capability, resource)
        {
            return cached.map_err(Denied);
        }
        let decision = match self.regime_of(identity) {
            Some(regime) => regime
                .authorise(identity, capability, resource)
                .await
                .unwrap_or_else(|e| Decision::deny(e.to_string(), Duration::ZERO)),
            // Identities no regime made (a local user of the socket) carry
            // their grants from the transport.
            None => grant_decision(
                identity,
                capability,
                resource,
                self.settings.max_decision_ttl,
            ),
        };
        self.cache.put(
            &identity.principal,
            identity.via,
            capability,
            resource,
            &decision,
        );
        if decision.allow {
            Ok(())
        } else {
            Err(Denied(decision.reason.unwrap_or_else(|| "refused".into())))
        }
    }

    fn regime_of(&self, identity: &Identity) -> Option<&Arc<dyn Regime>> {
        self.regimes.get(identity.regime)
    }

    /// Revokes a built-in token: its cached decisions go, and every
    /// long-lived socket it opened hears of it and closes.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo, IamError> {
        let book = self
            .tokens
            .as_ref()
            .ok_or_else(|| IamError::Invalid("built-in tokens are not enabled".into()))?;
        let info = book.revoke(id)?;
        let principal: Arc<str> = format!("token:{id}").into();
        self.cache.forget(&principal);
        self.sessions.end_principal(&principal);
        let _ = self.revoked.send(principal);
        Ok(info)
    }

    /// Principals whose credentials were revoked, as it happens.
    pub fn revocations(&self) -> broadcast::Receiver<Arc<str>> {
        self.revoked.subscribe()
    }
}

#[cfg(test)]
mod tests;
