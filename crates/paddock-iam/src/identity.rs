//! Who is calling, as a regime established it, and on what.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::capability::Capabilities;

/// The surface a request arrived on. Part of the identity because a
/// credential may be trusted less on one surface (the chatbot's MCP
/// connection) than on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    Rest,
    Mcp,
    WebSocket,
    Varlink,
    Page,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Mcp => "mcp",
            Self::WebSocket => "websocket",
            Self::Varlink => "varlink",
            Self::Page => "page",
        }
    }
}

/// The projects an identity may act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProjectScope {
    All,
    Only(Arc<BTreeSet<String>>),
}

impl ProjectScope {
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(projects: I) -> Self {
        Self::Only(Arc::new(projects.into_iter().map(Into::into).collect()))
    }

    pub fn contains(&self, project: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(project),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }

    /// Stored form: `None` is every project.
    pub fn to_list(&self) -> Option<Vec<String>> {
        match self {
            Self::All => None,
            Self::Only(set) => Some(set.iter().cloned().collect()),
        }
    }
}

/// Which regime vouched for the identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A built-in API token, by its id.
    Token(String),
    /// An OIDC bearer JWT from this issuer.
    Oidc(String),
    /// An opaque token an RFC 7662 endpoint called active.
    Introspection,
    /// A peer of the clearance socket with this uid.
    LocalUser(u32),
    /// A signed-in person's browser session.
    Session,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(id) => write!(f, "token {id}"),
            Self::Oidc(issuer) => write!(f, "oidc {issuer}"),
            Self::Introspection => f.write_str("introspection"),
            Self::LocalUser(uid) => write!(f, "local uid {uid}"),
            Self::Session => f.write_str("session"),
        }
    }
}

/// An authenticated caller. It names the caller and its project scope;
/// what it may do is the regime's to decide in `authorise` — the grants a
/// regime found at authentication travel along opaquely for that.
#[derive(Debug, Clone)]
pub struct Identity {
    pub principal: Arc<str>,
    pub projects: ProjectScope,
    pub source: Source,
    pub via: Surface,
    /// Unix seconds after which the credential is no longer good.
    pub expires_at: Option<i64>,
    pub(crate) regime: usize,
    pub(crate) grants: Capabilities,
    /// A built-in token that was once presented over MCP: the chatbot's.
    pub(crate) used_over_mcp: bool,
}

impl Identity {
    /// An identity for a caller the transport itself vouches for (a
    /// same-uid peer of the clearance socket).
    pub fn local_user(uid: u32, grants: Capabilities) -> Self {
        Self {
            principal: format!("uid:{uid}").into(),
            projects: ProjectScope::All,
            source: Source::LocalUser(uid),
            via: Surface::Varlink,
            expires_at: None,
            regime: usize::MAX,
            grants,
            used_over_mcp: false,
        }
    }

    pub fn may_see(&self, project: &str) -> bool {
        self.projects.contains(project)
    }
}

/// What an operation acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// paddock as a whole, or a listing the caller sees filtered.
    Global,
    Project(String),
    Box {
        id: String,
        project: String,
    },
    /// Something that belongs to no project a restricted credential could
    /// name (a rule of a box that is gone): only a credential for every
    /// project may act on it.
    EveryProject,
}

impl Resource {
    pub fn project(&self) -> Option<&str> {
        match self {
            Self::Global | Self::EveryProject => None,
            Self::Project(p) | Self::Box { project: p, .. } => Some(p),
        }
    }
}
