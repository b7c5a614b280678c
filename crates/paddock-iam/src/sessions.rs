//! Browser sessions, however a person got one: through OIDC sign-in
//! (`[iam.signin]`) or a one-time console link minted with an API token
//! (`paddock console`). A session is a 256-bit id in an HttpOnly cookie,
//! kept here only as its hash, with the identity it acts as and a CSRF
//! token every form and the console's socket must present.
//!
//! A session made from a token carries exactly that token's capabilities
//! and projects, never more, ends with the token's expiry at the latest,
//! and ends the moment the token is revoked ([`crate::Iam::revoke`]).
//!
//! Sessions and links live in memory: a restart signs everyone out, which
//! is the safe direction.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use crate::builtin::hash;
use crate::identity::{Identity, Source, Surface};

const MAX_SESSIONS: usize = 10_000;
const MAX_LINKS: usize = 1_000;
/// How long a console link may wait to be opened.
pub const LINK_TTL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("too many sessions; try again later")]
    TooManySessions,
    #[error("too many unopened console links; try again shortly")]
    TooManyLinks,
    #[error("this sign-in link is unknown, used or expired; run `paddock console` again")]
    LinkInvalid,
    #[error("the credential expires too soon to open a session")]
    Expiring,
}

#[derive(Clone)]
struct Session {
    identity: Identity,
    csrf: String,
    until: Instant,
}

struct Link {
    identity: Identity,
    session_ttl: Duration,
    until: Instant,
}

/// A session just opened: the cookie's value (shown once) and whose it is.
pub struct OpenedSession {
    pub id: String,
    pub principal: String,
    pub ttl: Duration,
}

#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    links: Mutex<HashMap<String, Link>>,
}

/// How long from now until `expires_at` (seconds since the epoch).
fn left_of(expires_at: Option<i64>) -> Option<Duration> {
    let at = expires_at?;
    Some(Duration::from_secs(
        at.saturating_sub(crate::now()).max(0) as u64
    ))
}

impl Sessions {
    /// Opens a session acting as `identity` (on pages, as a session) for
    /// `ttl`, or until the identity's own credential expires if sooner.
    pub fn open(&self, identity: Identity, ttl: Duration) -> Result<OpenedSession, SessionError> {
        let ttl = left_of(identity.expires_at).map_or(ttl, |left| left.min(ttl));
        if ttl.is_zero() {
            return Err(SessionError::Expiring);
        }
        // The grants found when the credential was authenticated travel
        // with the session and decide alone (no regime is asked again).
        let identity = Identity {
            source: Source::Session,
            via: Surface::Page,
            regime: usize::MAX,
            ..identity
        };
        let principal = identity.principal.to_string();
        let id = paddock_secret::mint();
        let mut sessions = self.sessions.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.until > now);
        if sessions.len() >= MAX_SESSIONS {
            return Err(SessionError::TooManySessions);
        }
        sessions.insert(
            hash(&id),
            Session {
                identity,
                csrf: paddock_secret::mint(),
                until: now + ttl,
            },
        );
        Ok(OpenedSession { id, principal, ttl })
    }

    fn live(&self, id: &str) -> Option<Session> {
        self.sessions
            .lock()
            .get(&hash(id))
            .filter(|s| s.until > Instant::now())
            .cloned()
    }

    /// The identity behind a session cookie, and the session's CSRF token.
    pub fn get(&self, id: &str) -> Option<(Identity, String)> {
        self.live(id).map(|s| (s.identity, s.csrf))
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, id: &str, presented: &str) -> bool {
        self.live(id)
            .is_some_and(|s| bool::from(s.csrf.as_bytes().ct_eq(presented.as_bytes())))
    }

    pub fn end(&self, id: &str) {
        self.sessions.lock().remove(&hash(id));
    }

    /// Ends every session acting as `principal` (its token was revoked).
    pub fn end_principal(&self, principal: &str) -> usize {
        let mut sessions = self.sessions.lock();
        let before = sessions.len();
        sessions.retain(|_, s| &*s.identity.principal != principal);
        before - sessions.len()
    }

    /// A one-time link's secret: opening it within [`LINK_TTL`] makes a
    /// session of `session_ttl` acting as `identity`. Kept only hashed.
    pub fn mint_link(
        &self,
        identity: Identity,
        session_ttl: Duration,
    ) -> Result<String, SessionError> {
        let secret = paddock_secret::mint();
        let mut links = self.links.lock();
        let now = Instant::now();
        links.retain(|_, l| l.until > now);
        if links.len() >= MAX_LINKS {
            return Err(SessionError::TooManyLinks);
        }
        links.insert(
            hash(&secret),
            Link {
                identity,
                session_ttl,
                until: now + LINK_TTL,
            },
        );
        Ok(secret)
    }

    /// Spends a link: the first call within its lifetime opens a session,
    /// every other call is refused (the link is gone either way).
    pub fn redeem_link(&self, secret: &str) -> Result<OpenedSession, SessionError> {
        let link = self
            .links
            .lock()
            .remove(&hash(secret))
            .filter(|l| l.until > Instant::now())
            .ok_or(SessionError::LinkInvalid)?;
        self.open(link.identity, link.session_ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::Capabilities;
    use crate::identity::ProjectScope;

    fn token_identity(expires_at: Option<i64>) -> Identity {
        Identity {
            principal: "token:abc".into(),
            projects: ProjectScope::only(["demo"]),
            source: Source::Token("abc".into()),
            via: Surface::Rest,
            expires_at,
            regime: 0,
            grants: Capabilities::parse(["viewer"]).unwrap(),
            used_over_mcp: false,
        }
    }

    #[test]
    fn a_link_opens_one_session_with_exactly_the_tokens_grants() {
        let sessions = Sessions::default();
        let link = sessions
            .mint_link(token_identity(None), Duration::from_secs(60))
            .unwrap();
        let opened = sessions.redeem_link(&link).unwrap();
        assert_eq!(opened.principal, "token:abc");
        let (identity, csrf) = sessions.get(&opened.id).unwrap();
        assert_eq!(identity.grants, Capabilities::parse(["viewer"]).unwrap());
        assert_eq!(identity.projects, ProjectScope::only(["demo"]));
        assert_eq!(identity.source, Source::Session, "forms must carry CSRF");
        assert!(sessions.csrf_ok(&opened.id, &csrf));
        assert!(!sessions.csrf_ok(&opened.id, "forged"));
        assert_eq!(
            sessions.redeem_link(&link).err(),
            Some(SessionError::LinkInvalid),
            "single use"
        );
        assert_eq!(
            sessions.redeem_link("never-minted").err(),
            Some(SessionError::LinkInvalid)
        );
    }

    #[test]
    fn revoking_the_principal_ends_its_sessions_only() {
        let sessions = Sessions::default();
        let mine = sessions
            .open(token_identity(None), Duration::from_secs(60))
            .unwrap();
        let mut other = token_identity(None);
        other.principal = "token:other".into();
        let theirs = sessions.open(other, Duration::from_secs(60)).unwrap();
        assert_eq!(sessions.end_principal("token:abc"), 1);
        assert!(sessions.get(&mine.id).is_none());
        assert!(sessions.get(&theirs.id).is_some());
    }

    #[test]
    fn a_session_never_outlives_its_credential() {
        let sessions = Sessions::default();
        let soon = crate::now() + 30;
        let opened = sessions
            .open(token_identity(Some(soon)), Duration::from_secs(3600))
            .unwrap();
        assert!(opened.ttl <= Duration::from_secs(30), "{:?}", opened.ttl);
        assert_eq!(
            sessions
                .open(
                    token_identity(Some(crate::now() - 1)),
                    Duration::from_secs(60)
                )
                .err(),
            Some(SessionError::Expiring)
        );
    }
}
