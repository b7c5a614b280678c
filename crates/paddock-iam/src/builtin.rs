//! The built-in regime: API tokens in the store. A token is `pdk_` and 256
//! random bits; only its SHA-256 is stored, the presented token is hashed
//! and looked up by that hash, and the stored hash is compared to it in
//! constant time, so timing reveals nothing about any stored token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use paddock_store::{ApiTokenRow, Store};
use subtle::ConstantTimeEq;

use crate::capability::Capabilities;
use crate::error::{AuthError, IamError};
use crate::identity::{Identity, ProjectScope, Source, Surface};
use crate::regime::{Credential, Regime};

pub const TOKEN_PREFIX: &str = "pdk_";
/// Supplied admin tokens (`PADDOCK_ADMIN_TOKEN`) must be at least this
/// long: 32 characters of anything is well past guessing.
pub const MIN_SUPPLIED_LEN: usize = 32;

pub use paddock_secret::hash;

pub fn new_secret() -> String {
    paddock_secret::mint_prefixed(TOKEN_PREFIX)
}

/// What to mint.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub capabilities: Capabilities,
    pub projects: ProjectScope,
    pub ttl: Option<Duration>,
}

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub projects: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When it was first used over MCP (it then decides no egress).
    pub mcp_seen_at: Option<i64>,
}

impl From<ApiTokenRow> for TokenInfo {
    fn from(r: ApiTokenRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            capabilities: r.capabilities,
            projects: r.projects,
            created_at: r.created_at_secs,
            expires_at: r.expires_at_secs,
            revoked_at: r.revoked_at_secs,
            mcp_seen_at: r.mcp_seen_at_secs,
        }
    }
}

/// Token administration against a store; usable without a running server
/// (`paddock token create` against the data dir).
pub struct TokenBook {
    store: Arc<Store>,
}

impl TokenBook {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Mints a token; the secret is returned here and never again.
    pub fn create(&self, new: &NewToken) -> Result<(TokenInfo, String), IamError> {
        let secret = new_secret();
        let info = self.insert(new, &secret)?;
        Ok((info, secret))
    }

    /// Stores a token whose secret the operator chose (an initial admin
    /// token handed in by automation); nothing happens if it is stored.
    pub fn adopt(&self, new: &NewToken, secret: &str) -> Result<Option<TokenInfo>, IamError> {
        if secret.len() < MIN_SUPPLIED_LEN || secret.chars().any(|c| c.is_whitespace()) {
            return Err(IamError::Invalid(format!(
                "a supplied token must be at least {MIN_SUPPLIED_LEN} characters without spaces"
            )));
        }
        if self.store.api_token_by_hash(&hash(secret))?.is_some() {
            return Ok(None);
        }
        self.insert(new, secret).map(Some)
    }

    fn insert(&self, new: &NewToken, secret: &str) -> Result<TokenInfo, IamError> {
        if new.name.trim().is_empty() || new.name.len() > 100 {
            return Err(IamError::Invalid(
                "a token needs a name of 1 to 100 characters".into(),
            ));
        }
        if new.capabilities == Capabilities::default() {
            return Err(IamError::Invalid(
                "a token needs at least one capability or role".into(),
            ));
        }
        let now = crate::now();
        let row = ApiTokenRow {
            id: format!("tok_{}", paddock_secret::random_id(6)),
            token_hash: hash(secret),
            name: new.name.clone(),
            capabilities: new.capabilities.names(),
            projects: new.projects.to_list(),
            created_at_secs: now,
            expires_at_secs: new.ttl.map(|t| now + t.as_secs() as i64),
            revoked_at_secs: None,
            mcp_seen_at_secs: None,
        };
        self.store.insert_api_token(&row)?;
        Ok(row.into())
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>, IamError> {
        Ok(self
            .store
            .list_api_tokens()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revokes; an unknown id is an error, revoking twice is not.
    pub fn revoke(&self, id: &str) -> Result<TokenInfo, IamError> {
        self.store.revoke_api_token(id, crate::now())?;
        self.store
            .api_token(id)?
            .map(Into::into)
            .ok_or_else(|| IamError::NoSuchToken(id.to_owned()))
    }

    /// First start: an empty token table gets one admin token, returned
    /// for printing once.
    pub fn first_admin(&self) -> Result<Option<String>, IamError> {
        if self.store.any_api_token()? {
            return Ok(None);
        }
        let (_, secret) = self.create(&NewToken {
            name: "admin (first start)".into(),
            capabilities: Capabilities::all(),
            projects: ProjectScope::All,
            ttl: None,
        })?;
        Ok(Some(secret))
    }
}

pub struct TokenRegime {
    store: Arc<Store>,
    index: usize,
    ttl: Duration,
}

impl TokenRegime {
    pub fn new(store: Arc<Store>, index: usize, ttl: Duration) -> Self {
        Self { store, index, ttl }
    }
}

#[async_trait]
impl Regime for TokenRegime {
    fn name(&self) -> &'static str {
        "tokens"
    }

    /// Every credential that is not a JWT: the store is local and cheap,
    /// and supplied admin tokens need not carry the prefix.
    fn claims(&self, secret: &str) -> bool {
        !crate::looks_like_jwt(secret)
    }

    async fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        let digest = hash(credential.secret);
        let row = self
            .store
            .api_token_by_hash(&digest)
            .map_err(store_failure)?
            .filter(|r| bool::from(r.token_hash.as_bytes().ct_eq(digest.as_bytes())))
            .ok_or(AuthError::Unknown)?;
        if row.revoked_at_secs.is_some() {
            return Err(AuthError::Rejected(format!("token {} was revoked", row.id)));
        }
        if row.expires_at_secs.is_some_and(|at| at <= crate::now()) {
            return Err(AuthError::Rejected(format!("token {} has expired", row.id)));
        }
        let mut used_over_mcp = row.mcp_seen_at_secs.is_some();
        if credential.via == Surface::Mcp && !used_over_mcp {
            // Remembered, so the chatbot's token cannot decide egress
            // through another surface either.
            self.store
                .mark_api_token_mcp(&row.id, crate::now())
                .map_err(store_failure)?;
            used_over_mcp = true;
        }
        // Stored names the binary no longer knows grant nothing.
        let grants = row
            .capabilities
            .iter()
            .filter_map(|c| Capabilities::parse([c.as_str()]).ok())
            .fold(Capabilities::default(), |a, b| {
                a.iter().chain(b.iter()).collect()
            });
        Ok(Identity {
            principal: format!("token:{}", row.id).into(),
            projects: row.projects.map_or(ProjectScope::All, ProjectScope::only),
            source: Source::Token(row.id),
            via: credential.via,
            expires_at: row.expires_at_secs,
            regime: self.index,
            grants,
            used_over_mcp,
        })
    }

    fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// A store that failed for a reason that may pass says "try again"; any
/// other failure is a refusal.
fn store_failure(e: paddock_store::StoreError) -> AuthError {
    if e.unavailable() {
        AuthError::StoreUnavailable(e.to_string())
    } else {
        AuthError::Unavailable(e.to_string())
    }
}
