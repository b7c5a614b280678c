//! Builds the IAM layer `serve` runs with: the regimes its config names,
//! and the first admin token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use paddock_iam::{
    Capabilities, Iam, IamSettings, IntrospectionConfig, IntrospectionRegime, NewToken, OidcConfig,
    OidcRegime, ProjectScope, Regime, SignIn, SigninConfig, TokenBook, TokenRegime,
};
use paddock_store::Store;
use serde::Deserialize;

pub const ADMIN_TOKEN_ENV: &str = "PADDOCK_ADMIN_TOKEN";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IamConfig {
    /// Off lets every caller in as the admin; only on a loopback address.
    pub enabled: bool,
    /// Upper bound on how long an authorisation decision is reused.
    pub decision_ttl_secs: u64,
    /// Whether a credential used over MCP may decide egress (off: the
    /// agent may ask, only a person decides).
    pub mcp_may_decide_egress: bool,
    /// A file holding the initial admin token (instead of
    /// `PADDOCK_ADMIN_TOKEN`, or of one minted and printed at first start).
    pub admin_token_file: Option<PathBuf>,
    /// How often a WebSocket re-checks its credential.
    pub session_recheck_secs: u64,
    /// Accept OIDC bearer JWTs from this issuer.
    pub oidc: Option<OidcConfig>,
    /// Ask an RFC 7662 endpoint about opaque tokens paddock did not mint.
    pub introspection: Option<IntrospectionConfig>,
    /// Sign-in for people (OIDC authorization code + PKCE) on the pages.
    pub signin: Option<SigninConfig>,
}

impl Default for IamConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            decision_ttl_secs: 60,
            mcp_may_decide_egress: false,
            admin_token_file: None,
            session_recheck_secs: 30,
            oidc: None,
            introspection: None,
            signin: None,
        }
    }
}

impl IamConfig {
    pub fn check(&self, listen: std::net::SocketAddr) -> anyhow::Result<()> {
        if !self.enabled && !listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {listen} with authentication off ([iam] enabled = false): \
                 anyone who can reach it could run commands in every box; turn [iam] back on \
                 or bind 127.0.0.1"
            );
        }
        if self.session_recheck_secs == 0 {
            bail!("iam.session_recheck_secs must be positive");
        }
        Ok(())
    }
}

/// The operator's initial admin token, if one was supplied.
fn supplied_admin_token(config: &IamConfig) -> anyhow::Result<Option<String>> {
    if let Some(token) = std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(token));
    }
    let Some(path) = &config.admin_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read iam.admin_token_file {}", path.display()))?;
    Ok(Some(text.trim().to_owned()))
}

/// People's sign-in, when configured; `public_url` is where the identity
/// provider sends them back (`/auth/callback`).
pub fn signin(config: &IamConfig, public_url: &str) -> anyhow::Result<Option<Arc<SignIn>>> {
    let Some(signin) = &config.signin else {
        return Ok(None);
    };
    let redirect = format!("{}/auth/callback", public_url.trim_end_matches('/'));
    let built = SignIn::new(signin.clone(), redirect)
        .map_err(|e| anyhow::anyhow!("invalid [iam.signin]: {e}"))?;
    tracing::info!(issuer = %signin.issuer, "people sign in through OIDC");
    Ok(Some(Arc::new(built)))
}

pub struct Built {
    pub iam: Arc<Iam>,
    /// A token minted at first start, to be printed once.
    pub first_admin: Option<String>,
}

pub fn build(config: &IamConfig, store: Arc<Store>) -> anyhow::Result<Built> {
    let book = TokenBook::new(store.clone());
    let mut first_admin = None;
    if config.enabled {
        match supplied_admin_token(config)? {
            Some(token) => {
                let adopted = book
                    .adopt(
                        &NewToken {
                            name: "admin (supplied)".into(),
                            capabilities: Capabilities::all(),
                            projects: ProjectScope::All,
                            ttl: None,
                        },
                        &token,
                    )
                    .context("the supplied admin token")?;
                if let Some(info) = adopted {
                    tracing::info!(token = %info.id, "stored the supplied admin token");
                }
            }
            None => first_admin = book.first_admin()?,
        }
    } else {
        tracing::warn!("authentication is off ([iam] enabled = false): every caller is the admin");
    }
    let ttl = Duration::from_secs(config.decision_ttl_secs);
    // Asked in this order; each knows its index.
    let mut regimes: Vec<Arc<dyn Regime>> = vec![Arc::new(TokenRegime::new(store.clone(), 0, ttl))];
    if let Some(oidc) = &config.oidc {
        let regime = OidcRegime::new(oidc.clone(), regimes.len())
            .map_err(|e| anyhow::anyhow!("invalid [iam.oidc]: {e}"))?;
        tracing::info!(issuer = %oidc.issuer, "accepting OIDC bearer tokens");
        regimes.push(Arc::new(regime));
    }
    if let Some(introspection) = &config.introspection {
        let regime = IntrospectionRegime::new(introspection.clone(), regimes.len())
            .map_err(|e| anyhow::anyhow!("invalid [iam.introspection]: {e}"))?;
        tracing::info!(endpoint = %introspection.endpoint, "introspecting other tokens");
        regimes.push(Arc::new(regime));
    }
    let iam = Iam::new(
        IamSettings {
            enabled: config.enabled,
            max_decision_ttl: Duration::from_secs(config.decision_ttl_secs),
            mcp_may_decide_egress: config.mcp_may_decide_egress,
        },
        regimes,
        Some(TokenBook::new(store)),
    );
    Ok(Built {
        iam: Arc::new(iam),
        first_admin,
    })
}
