//! Sign-in for people: OIDC authorization code flow with PKCE (S256), a
//! `state` bound to the browser that started it, a `nonce` bound to the ID
//! token, a verified email on an allow-list of addresses and domains. The
//! protocol itself (discovery, the authorization URL, the code exchange,
//! the ID token's checks) is `openidconnect`'s, in `relying_party`. A
//! signed-in person gets a session: a 256-bit id in an HttpOnly cookie
//! (kept here only as its hash) and a CSRF token every form must carry.
//!
//! Sessions live in memory: a restart signs everyone out, which is the safe
//! direction.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::builtin::hash;
use crate::capability::Capabilities;
use crate::identity::{Identity, ProjectScope, Source, Surface};
use crate::relying_party::{RelyingParty, RelyingPartyError};

/// A login must come back within this.
const LOGIN_WINDOW: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 1_000;
const MAX_SESSIONS: usize = 10_000;

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
    /// What a signed-in person may do (capability and role names).
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<String>,
    #[serde(default = "default_session_ttl")]
    pub session_ttl_secs: u64,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
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

#[derive(Clone)]
struct Session {
    email: String,
    csrf: String,
    until: Instant,
}

/// Where to send the browser, and the state to bind to it (cookie).
pub struct LoginStart {
    pub redirect: String,
    pub state: String,
}

pub struct NewSession {
    /// The cookie value; shown once, kept here only hashed.
    pub id: String,
    pub email: String,
    pub next: String,
}

pub struct SignIn {
    config: SigninConfig,
    party: RelyingParty,
    grants: Capabilities,
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Session>>,
}

use paddock_secret::mint as random;

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
        if config.allowed_emails.is_empty() && config.allowed_domains.is_empty() {
            return Err(SigninError::Config(
                "iam.signin: name allowed_emails or allowed_domains (nobody would be let in)"
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
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
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
    ) -> Result<NewSession, SigninError> {
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
        let id = random();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.until > Instant::now());
        if sessions.len() >= MAX_SESSIONS {
            return Err(SigninError::Refused(
                "too many sessions; try again later".into(),
            ));
        }
        sessions.insert(
            hash(&id),
            Session {
                email: email.clone(),
                csrf: random(),
                until: Instant::now() + self.session_ttl(),
            },
        );
        Ok(NewSession {
            id,
            email,
            next: pending.next,
        })
    }

    fn allowed(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.config
            .allowed_emails
            .iter()
            .any(|e| e.eq_ignore_ascii_case(email))
            || self
                .config
                .allowed_domains
                .iter()
                .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain))
    }

    fn live(&self, id: &str) -> Option<Session> {
        lock(&self.sessions)
            .get(&hash(id))
            .filter(|s| s.until > Instant::now())
            .cloned()
    }

    /// The person behind a session cookie, and the session's CSRF token.
    pub fn session(&self, id: &str) -> Option<(Identity, String)> {
        let s = self.live(id)?;
        Some((
            Identity {
                principal: format!("person:{}", s.email).into(),
                projects: ProjectScope::All,
                source: Source::Session,
                via: Surface::Page,
                expires_at: None,
                regime: usize::MAX,
                grants: self.grants,
                used_over_mcp: false,
            },
            s.csrf,
        ))
    }

    /// Whether a form's CSRF token is this session's.
    pub fn csrf_ok(&self, id: &str, presented: &str) -> bool {
        self.live(id)
            .is_some_and(|s| bool::from(s.csrf.as_bytes().ct_eq(presented.as_bytes())))
    }

    pub fn end(&self, id: &str) {
        lock(&self.sessions).remove(&hash(id));
    }
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
