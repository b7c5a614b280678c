//! OAuth2 token introspection (RFC 7662): opaque tokens are asked about at
//! a configured endpoint, with this paddock's client credentials, and the
//! answer is cached per token (by its hash) until the cache TTL or the
//! token's `exp`, whichever is first. An endpoint that is down, slow or
//! answers garbage is a refusal. Optionally the token must have been issued
//! to one client id (`require_client_id`), whatever its scope says.
//!
//! The endpoint is spared two ways: tokens it called inactive are
//! remembered (in a map of their own, so a spray of made-up tokens cannot
//! push the good answers out), and after it fails, tokens not in the cache
//! are refused for `BACKOFF` without asking it again.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::capability::Capabilities;
use crate::error::AuthError;
use crate::identity::{Identity, Source};
use crate::regime::{Credential, Regime};
use crate::remote;

const MAX_CACHED: usize = 10_000;
/// How long an inactive answer is remembered (at most `cache_ttl_secs`).
const REMEMBER_INACTIVE: Duration = Duration::from_secs(30);
/// After a failure, how long the endpoint is left alone.
const BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    pub endpoint: String,
    /// This paddock's client credentials at the endpoint (HTTP Basic).
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// A file holding the client secret (instead of `client_secret`).
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// Tokens must have been issued to this client id.
    #[serde(default)]
    pub require_client_id: Option<String>,
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_secs: u64,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub projects_claim: Option<String>,
    #[serde(default)]
    pub default_capabilities: Vec<String>,
}

fn default_cache_ttl() -> u64 {
    60
}
fn default_timeout() -> u64 {
    5
}

struct Cached {
    identity: Identity,
    until: Instant,
}

pub struct IntrospectionRegime {
    config: IntrospectionConfig,
    secret: Option<String>,
    defaults: Capabilities,
    index: usize,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    /// Hashes of tokens the endpoint called inactive, until when.
    inactive: Mutex<HashMap<String, Instant>>,
    /// When the endpoint last failed.
    failed_at: Mutex<Option<Instant>>,
}

impl IntrospectionRegime {
    /// A regime for `[iam.introspection]`; a configuration it cannot use
    /// is `IamError::Invalid`, saying why.
    pub fn new(config: IntrospectionConfig, index: usize) -> Result<Self, crate::IamError> {
        Self::build(config, index).map_err(crate::IamError::Invalid)
    }

    fn build(config: IntrospectionConfig, index: usize) -> Result<Self, String> {
        let defaults = Capabilities::parse(config.default_capabilities.iter().map(String::as_str))
            .map_err(|e| format!("iam.introspection.default_capabilities: {e}"))?;
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(
                    "iam.introspection: give client_secret or client_secret_file, not both".into(),
                );
            }
            (Some(s), None) => Some(s.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!(
                            "iam.introspection.client_secret_file {}: {e}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let http = remote::client(Duration::from_secs(config.timeout_secs.max(1)))?;
        Ok(Self {
            config,
            secret,
            defaults,
            index,
            http,
            cache: Mutex::new(HashMap::new()),
            inactive: Mutex::new(HashMap::new()),
            failed_at: Mutex::new(None),
        })
    }

    fn cached(&self, key: &str) -> Option<Identity> {
        let cache = self.cache.lock();
        cache
            .get(key)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.identity.clone())
    }

    fn remember(&self, key: String, identity: &Identity) {
        let mut ttl = Duration::from_secs(self.config.cache_ttl_secs);
        if let Some(exp) = identity.expires_at {
            ttl = ttl.min(Duration::from_secs((exp - crate::now()).max(0) as u64));
        }
        if ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                identity: identity.clone(),
                until: Instant::now() + ttl,
            },
        );
    }

    fn known_inactive(&self, key: &str) -> bool {
        let inactive = self.inactive.lock();
        inactive
            .get(key)
            .is_some_and(|until| *until > Instant::now())
    }

    fn remember_inactive(&self, key: String) {
        let ttl = REMEMBER_INACTIVE.min(Duration::from_secs(self.config.cache_ttl_secs));
        let mut inactive = self.inactive.lock();
        if inactive.len() >= MAX_CACHED {
            let now = Instant::now();
            inactive.retain(|_, until| *until > now);
            if inactive.len() >= MAX_CACHED {
                inactive.clear();
            }
        }
        inactive.insert(key, Instant::now() + ttl);
    }

    /// Asks the endpoint, unless it failed less than `BACKOFF` ago.
    async fn ask(&self, token: &str) -> Result<Value, AuthError> {
        let failed_at = *self.failed_at.lock();
        if let Some(at) = failed_at.filter(|at| at.elapsed() < BACKOFF) {
            return Err(AuthError::Unavailable(format!(
                "the introspection endpoint failed {} ms ago; not asking again yet",
                at.elapsed().as_millis()
            )));
        }
        let answer = self.introspect(token).await;
        let mut failed = self.failed_at.lock();
        *failed = match &answer {
            Err(AuthError::Unavailable(_)) => Some(Instant::now()),
            _ => None,
        };
        answer
    }

    async fn introspect(&self, token: &str) -> Result<Value, AuthError> {
        let mut request = self
            .http
            .post(&self.config.endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        if let Some(id) = &self.config.client_id {
            request = request.basic_auth(id, self.secret.as_deref());
        }
        let response = request.send().await.map_err(|e| {
            AuthError::Unavailable(format!(
                "introspection endpoint: {}",
                remote::without_url(&e)
            ))
        })?;
        remote::json(response, "introspection endpoint").await
    }
}

#[async_trait]
impl Regime for IntrospectionRegime {
    fn name(&self) -> &'static str {
        "introspection"
    }

    fn claims(&self, _: &str) -> bool {
        true
    }

    async fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        let key = crate::builtin::hash(credential.secret);
        if let Some(mut identity) = self.cached(&key) {
            identity.via = credential.via;
            return Ok(identity);
        }
        if self.known_inactive(&key) {
            return Err(AuthError::Rejected("the token is not active".into()));
        }
        let answer = self.ask(credential.secret).await?;
        if answer.get("active") != Some(&Value::Bool(true)) {
            self.remember_inactive(key);
            return Err(AuthError::Rejected("the token is not active".into()));
        }
        if let Some(required) = &self.config.require_client_id
            && answer.get("client_id").and_then(Value::as_str) != Some(required.as_str())
        {
            return Err(AuthError::Rejected(format!(
                "the token was not issued to client {required:?}"
            )));
        }
        let expires_at = answer.get("exp").and_then(Value::as_i64);
        if expires_at.is_some_and(|at| at <= crate::now()) {
            return Err(AuthError::Rejected("the token has expired".into()));
        }
        let principal = answer
            .get("sub")
            .or_else(|| answer.get("username"))
            .and_then(Value::as_str)
            .or_else(|| answer.get("client_id").and_then(Value::as_str))
            .ok_or_else(|| AuthError::Rejected("the introspection answer names nobody".into()))?;
        let identity = Identity {
            principal: format!("introspected:{principal}").into(),
            projects: match &self.config.projects_claim {
                Some(name) => remote::projects(answer.get(name)),
                None => crate::ProjectScope::All,
            },
            source: Source::Introspection,
            via: credential.via,
            expires_at,
            regime: self.index,
            grants: remote::grants(answer.get("scope"), self.defaults),
            used_over_mcp: false,
        };
        self.remember(key, &identity);
        Ok(identity)
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.config.cache_ttl_secs)
    }
}
