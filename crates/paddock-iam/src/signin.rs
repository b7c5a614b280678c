//! Sign-in for people: OIDC authorization code flow with PKCE (S256), a
//! `state` bound to the browser that started it, a `nonce` bound to the ID
//! token, a verified email on an allow-list of addresses and domains (a
//! grant naming an address or domain lets it in too). The protocol itself
//! (discovery, the authorization URL, the code exchange, the ID token's
//! checks) is `openidconnect`'s, in `relying_party`. A signed-in person
//! gets the identity its grants name (per address, then per domain, then
//! the default), which the caller opens a session for
//! ([`crate::Sessions`]).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::capability::Capabilities;
use crate::identity::{Identity, ProjectScope, Source, Surface};
use crate::relying_party::{RelyingParty, RelyingPartyError};

/// A login must come back within this.
const LOGIN_WINDOW: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 1_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigninConfig {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Addresses let in (compared without case).
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    /// Domains whose addresses are let in (`example.com`).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// What a signed-in person may do (capability and role names) when
    /// no entry of `grants` names them.
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<String>,
    /// Capabilities and projects per address or domain, so a viewer and a
    /// decider can share one provider: the first entry naming the address
    /// wins, then the first naming its domain.
    #[serde(default)]
    pub grants: Vec<SigninGrant>,
    #[serde(default = "default_session_ttl")]
    pub session_ttl_secs: u64,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// One `[[iam.signin.grants]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigninGrant {
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
    pub capabilities: Vec<String>,
    /// Only these projects; every project when absent.
    #[serde(default)]
    pub projects: Option<Vec<String>>,
}

/// A grant with its capabilities parsed (at start-up, so a typo stops
/// paddock rather than a person).
struct Grant {
    emails: Vec<String>,
    domains: Vec<String>,
    capabilities: Capabilities,
    projects: ProjectScope,
}

fn default_capabilities() -> Vec<String> {
    vec!["admin".into()]
}
fn default_session_ttl() -> u64 {
    8 * 3600
}
fn default_timeout() -> u64 {
    5
}

#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    #[error("the identity provider cannot be reached: {0}")]
    Unavailable(String),
    /// Said to the person on the page; never names a secret.
    #[error("{0}")]
    Refused(String),
    /// `[iam.signin]` cannot work as written.
    #[error("{0}")]
    Config(String),
}

impl From<RelyingPartyError> for SigninError {
    fn from(e: RelyingPartyError) -> Self {
        match e {
            RelyingPartyError::Unavailable(m) => Self::Unavailable(m),
            RelyingPartyError::Refused(m) => Self::Refused(m),
        }
    }
}

struct Pending {
    nonce: String,
    verifier: String,
    next: String,
    started: Instant,
}

/// Where to send the browser, and the state to bind to it (cookie).
pub struct LoginStart {
    pub redirect: String,
    pub state: String,
}

/// A person whose sign-in succeeded, as the grants see them.
pub struct SignedIn {
    pub email: String,
    pub identity: Identity,
    /// Where to send the browser now.
    pub next: String,
}

pub struct SignIn {
    config: SigninConfig,
    party: RelyingParty,
    grants: Capabilities,
    per_person: Vec<Grant>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// Only paths of this paddock: `/x`, never `//host` or `/\host`.
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && !next.chars().any(char::is_control);
    if ok { next.to_owned() } else { "/admin".into() }
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

impl SignIn {
    pub fn new(config: SigninConfig, redirect_uri: String) -> Result<Self, SigninError> {
        let grants = Capabilities::parse(config.capabilities.iter().map(String::as_str))
            .map_err(|e| SigninError::Config(format!("iam.signin.capabilities: {e}")))?;
        let per_person = config
            .grants
            .iter()
            .enumerate()
            .map(|(i, g)| {
                if g.emails.is_empty() && g.domains.is_empty() {
                    return Err(SigninError::Config(format!(
                        "iam.signin.grants[{i}]: name emails or domains"
                    )));
                }
                Ok(Grant {
                    emails: g.emails.clone(),
                    domains: g.domains.clone(),
                    capabilities: Capabilities::parse(g.capabilities.iter().map(String::as_str))
                        .map_err(|e| {
                            SigninError::Config(format!("iam.signin.grants[{i}].capabilities: {e}"))
                        })?,
                    projects: g
                        .projects
                        .clone()
                        .map_or(ProjectScope::All, ProjectScope::only),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if config.allowed_emails.is_empty()
            && config.allowed_domains.is_empty()
            && config.grants.is_empty()
        {
            return Err(SigninError::Config(
                "iam.signin: name allowed_emails or allowed_domains or grants (nobody would be let in)"
                    .into(),
            ));
        }
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(SigninError::Config(
                    "iam.signin: give client_secret or client_secret_file, not both".into(),
                ));
            }
            (Some(s), None) => Some(s.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        SigninError::Config(format!(
                            "iam.signin.client_secret_file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let party = RelyingParty::new(
            &config.issuer,
            &config.client_id,
            secret,
            &redirect_uri,
            Duration::from_secs(config.timeout_secs.max(1)),
        )
        .map_err(SigninError::Config)?;
        Ok(Self {
            config,
            party,
            grants,
            per_person,
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.config.session_ttl_secs)
    }

    /// Begins a login: remembers a fresh state, nonce and PKCE verifier and
    /// names the identity provider's page to send the browser to.
    pub async fn start(&self, next: &str) -> Result<LoginStart, SigninError> {
        let authorization = self.party.authorize().await?;
        let mut pending = lock(&self.pending);
        pending.retain(|_, p| p.started.elapsed() < LOGIN_WINDOW);
        if pending.len() >= MAX_PENDING {
            return Err(SigninError::Refused(
                "too many sign-ins under way; try again shortly".into(),
            ));
        }
        pending.insert(
            authorization.state.clone(),
            Pending {
                nonce: authorization.nonce,
                verifier: authorization.pkce_verifier,
                next: safe_next(next),
                started: Instant::now(),
            },
        );
        Ok(LoginStart {
            redirect: authorization.url,
            state: authorization.state,
        })
    }

    /// Finishes a login: the state must be one we issued to this very
    /// browser (`bound_state`, from its cookie), the code is exchanged with
    /// the PKCE verifier, and the ID token must carry our nonce and a
    /// verified email on the allow-list.
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        bound_state: Option<&str>,
    ) -> Result<SignedIn, SigninError> {
        if !bound_state.is_some_and(|b| bool::from(b.as_bytes().ct_eq(state.as_bytes()))) {
            return Err(SigninError::Refused(
                "this sign-in was not started in this browser; start again".into(),
            ));
        }
        let pending = lock(&self.pending)
            .remove(state)
            .filter(|p| p.started.elapsed() < LOGIN_WINDOW)
            .ok_or_else(|| SigninError::Refused("this sign-in has expired; start again".into()))?;
        let verified = self
            .party
            .exchange(code, pending.verifier, &pending.nonce)
            .await?;
        let email = verified
            .email
            .ok_or_else(|| SigninError::Refused("the identity provider named no email".into()))?;
        if !verified.email_verified {
            return Err(SigninError::Refused(format!(
                "{email} is not verified by the identity provider"
            )));
        }
        if !self.allowed(&email) {
            return Err(SigninError::Refused(format!(
                "{email} may not use this paddock"
            )));
        }
        Ok(SignedIn {
            identity: self.identity_for(&email),
            email,
            next: pending.next,
        })
    }

    fn allowed(&self, email: &str) -> bool {
        names(&self.config.allowed_emails, &[], email)
            || names(&[], &self.config.allowed_domains, email)
            || self.grant_of(email).is_some()
    }

    /// The first grant naming the address, else the first naming its domain.
    fn grant_of(&self, email: &str) -> Option<&Grant> {
        let grants = &self.per_person;
        grants
            .iter()
            .find(|g| names(&g.emails, &[], email))
            .or_else(|| grants.iter().find(|g| names(&[], &g.domains, email)))
    }

    /// The identity a signed-in address acts as: its grant's, else the
    /// default capabilities on every project.
    pub fn identity_for(&self, email: &str) -> Identity {
        let grant = self.grant_of(email);
        let (grants, projects) = grant.map_or((self.grants, ProjectScope::All), |g| {
            (g.capabilities, g.projects.clone())
        });
        Identity {
            principal: format!("person:{email}").into(),
            projects,
            source: Source::Session,
            via: Surface::Page,
            expires_at: None,
            regime: usize::MAX,
            grants,
            used_over_mcp: false,
        }
    }
}

/// Whether `email` is one of `emails` or in one of `domains` (no case).
fn names(emails: &[String], domains: &[String], email: &str) -> bool {
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    emails.iter().any(|e| e.eq_ignore_ascii_case(email))
        || domains
            .iter()
            .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/activate/x"), "/activate/x");
        for bad in [
            "//evil.example/",
            "/\\evil",
            "https://evil.example",
            "",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), "/admin", "{bad:?}");
        }
    }
}
