//! OIDC bearer JWTs: the issuer's discovery document names its key set
//! (JWKS); keys are cached and refetched when a token names a key we do
//! not have (rotation), at most once per `jwks_min_refresh_secs`. Issuer,
//! audience, expiry and not-before are checked; only asymmetric algorithms
//! are accepted (no `none`, no HMAC with a public key as the secret).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell, RwLock};

use crate::capability::Capabilities;
use crate::error::AuthError;
use crate::identity::{Identity, Source};
use crate::regime::{Credential, Regime};
use crate::remote;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL exactly as tokens name it in `iss`.
    pub issuer: String,
    /// What tokens must name in `aud`.
    pub audience: String,
    /// Claim with capability and role names (space-separated or array).
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// Claim with the projects the caller may act on; absent: all.
    #[serde(default)]
    pub projects_claim: Option<String>,
    /// Claim naming the caller (`sub`, or `email`).
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// Granted to every valid token on top of its scope claim.
    #[serde(default)]
    pub default_capabilities: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    #[serde(default = "default_min_refresh")]
    pub jwks_min_refresh_secs: u64,
    #[serde(default = "default_max_age")]
    pub jwks_max_age_secs: u64,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_scope_claim() -> String {
    "scope".into()
}
fn default_principal_claim() -> String {
    "sub".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_min_refresh() -> u64 {
    10
}
fn default_max_age() -> u64 {
    3600
}
fn default_timeout() -> u64 {
    5
}

const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What a resource server needs of the issuer's discovery document.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// One OIDC issuer as a resource server sees it: its discovery document
/// and key set, and verification of the bearer JWTs it signs (people's
/// sign-in is a relying party's work: `relying_party`).
pub struct Issuer {
    issuer: String,
    http: reqwest::Client,
    leeway_secs: u64,
    min_refresh: Duration,
    max_age: Duration,
    discovery: OnceCell<Arc<Discovery>>,
    keys: RwLock<Option<Keys>>,
    /// When the key set was last fetched (or tried): refetches on unknown
    /// key ids are rate-limited so forged `kid`s cannot hammer the issuer.
    last_fetch: Mutex<Option<Instant>>,
}

impl Issuer {
    pub fn new(
        issuer: &str,
        timeout: Duration,
        leeway_secs: u64,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            issuer: issuer.to_owned(),
            http: remote::client(timeout)?,
            leeway_secs,
            min_refresh,
            max_age,
            discovery: OnceCell::new(),
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
        })
    }

    /// The discovery document, fetched once; a failure is retried on the
    /// next call.
    pub async fn discovery(&self) -> Result<Arc<Discovery>, AuthError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let response = self.http.get(&url).send().await.map_err(|e| {
                    AuthError::Unavailable(format!("OIDC discovery: {}", remote::without_url(&e)))
                })?;
                let doc: Discovery =
                    serde_json::from_value(remote::json(response, "OIDC discovery").await?)
                        .map_err(|e| {
                            AuthError::Unavailable(format!("OIDC discovery document: {e}"))
                        })?;
                if doc.issuer != self.issuer {
                    return Err(AuthError::Unavailable(format!(
                        "OIDC discovery names issuer {:?}, configured {:?}",
                        doc.issuer, self.issuer
                    )));
                }
                Ok(Arc::new(doc))
            })
            .await
            .cloned()
    }

    async fn fetch_keys(&self) -> Result<(), AuthError> {
        let jwks_uri = self.discovery().await?.jwks_uri.clone();
        let response = self.http.get(&jwks_uri).send().await.map_err(|e| {
            AuthError::Unavailable(format!("OIDC key set: {}", remote::without_url(&e)))
        })?;
        let set: JwkSet = serde_json::from_value(remote::json(response, "OIDC key set").await?)
            .map_err(|e| AuthError::Unavailable(format!("OIDC key set: {e}")))?;
        *self.keys.write().await = Some(Keys {
            set,
            fetched: Instant::now(),
        });
        Ok(())
    }

    fn find(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let usable = |jwk: &&jsonwebtoken::jwk::Jwk| {
            jwk.common
                .key_algorithm
                .is_none_or(|a| a.to_string() == format!("{alg:?}"))
        };
        let jwk = match kid {
            Some(kid) => set.find(kid).filter(usable),
            None => {
                let mut candidates = set.keys.iter().filter(usable);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }?;
        DecodingKey::from_jwk(jwk).ok()
    }

    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        if let Some(keys) = self.keys.read().await.as_ref()
            && keys.fetched.elapsed() < self.max_age
            && let Some(key) = Self::find(&keys.set, kid, alg)
        {
            return Ok(key);
        }
        {
            let mut last = self.last_fetch.lock().await;
            let stale = self
                .keys
                .read()
                .await
                .as_ref()
                .is_none_or(|k| k.fetched.elapsed() >= self.max_age);
            if stale || last.is_none_or(|t| t.elapsed() >= self.min_refresh) {
                *last = Some(Instant::now());
                self.fetch_keys().await?;
            }
        }
        let keys = self.keys.read().await;
        keys.as_ref()
            .and_then(|k| Self::find(&k.set, kid, alg))
            .ok_or_else(|| {
                AuthError::Rejected("signed with a key the issuer does not publish".into())
            })
    }

    /// Verifies a JWT this issuer signed for `audience`: signature with a
    /// published key, an asymmetric algorithm, issuer, audience, expiry and
    /// not-before. Returns its claims.
    pub async fn verify(&self, token: &str, audience: &str) -> Result<Value, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Rejected("malformed or unsupported JWT header".into()))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(AuthError::Rejected(format!(
                "JWT algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            AuthError::Rejected(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "the JWT has expired",
                    ErrorKind::ImmatureSignature => "the JWT is not valid yet",
                    ErrorKind::InvalidAudience => "the JWT is for another audience",
                    ErrorKind::InvalidIssuer => "the JWT is from another issuer",
                    ErrorKind::InvalidSignature => "the JWT's signature does not verify",
                    ErrorKind::MissingRequiredClaim(_) => "the JWT lacks a required claim",
                    _ => "the JWT is invalid",
                }
                .into(),
            )
        })?;
        Ok(data.claims)
    }
}

pub struct OidcRegime {
    config: OidcConfig,
    issuer: Issuer,
    defaults: Capabilities,
    index: usize,
}

impl OidcRegime {
    /// A regime for `[iam.oidc]`; a configuration it cannot use is
    /// `IamError::Invalid`, saying why.
    pub fn new(config: OidcConfig, index: usize) -> Result<Self, crate::IamError> {
        Self::build(config, index).map_err(crate::IamError::Invalid)
    }

    fn build(config: OidcConfig, index: usize) -> Result<Self, String> {
        let defaults = Capabilities::parse(config.default_capabilities.iter().map(String::as_str))
            .map_err(|e| format!("iam.oidc.default_capabilities: {e}"))?;
        let issuer = Issuer::new(
            &config.issuer,
            Duration::from_secs(config.timeout_secs.max(1)),
            config.leeway_secs,
            Duration::from_secs(config.jwks_min_refresh_secs),
            Duration::from_secs(config.jwks_max_age_secs),
        )?;
        Ok(Self {
            config,
            issuer,
            defaults,
            index,
        })
    }
}

fn claim_str<'a>(claims: &'a Value, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

#[async_trait]
impl Regime for OidcRegime {
    fn name(&self) -> &'static str {
        "oidc"
    }

    fn claims(&self, secret: &str) -> bool {
        crate::looks_like_jwt(secret)
    }

    async fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity, AuthError> {
        let claims = self
            .issuer
            .verify(credential.secret, &self.config.audience)
            .await?;
        let principal = claim_str(&claims, &self.config.principal_claim)
            .or_else(|| claim_str(&claims, "sub"))
            .ok_or_else(|| AuthError::Rejected("the JWT names nobody".into()))?;
        Ok(Identity {
            principal: format!("oidc:{principal}").into(),
            projects: match &self.config.projects_claim {
                Some(name) => remote::projects(claims.get(name)),
                None => crate::ProjectScope::All,
            },
            source: Source::Oidc(self.config.issuer.clone()),
            via: credential.via,
            expires_at: claims.get("exp").and_then(Value::as_i64),
            regime: self.index,
            grants: remote::grants(claims.get(&self.config.scope_claim), self.defaults),
            used_over_mcp: false,
        })
    }
}
