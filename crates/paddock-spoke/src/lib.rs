//! Spokes: other machines that run boxes for this hub. This crate is the
//! hub's side of who a spoke is — enrolment (a single-use token an admin
//! mints for a name, traded with a signing request for a client
//! certificate from the hub's spoke CA), the list of spokes, and
//! revocation.
//!
//! It is also both ends of the link: the hub's ([`SpokeLinks`]: calls
//! to a spoke's boxes, the mirror of its held connections) and the
//! spoke's (`dial`, [`Local`]: the calls done by its own box service,
//! the hub's verdicts applied in its own clearance hub).
//!
//! And it carries git for a spoke's boxes between the spoke's gate and
//! the hub's ([`HubGit`], [`GitForSpokes`]): the repositories stay at
//! the hub.
//!
//! Must not: know the public API's HTTP or the command line (surfaces
//! map themselves onto it), serve a repository itself, or ever hold a
//! spoke's private key.

mod calls;
pub mod dial;
mod enrol;
mod forward;
mod front;
mod git;
mod link;
pub mod liveness;
mod local;
mod mirror;
mod streams;
mod talk;
pub mod wire;

pub use enrol::{Enrolled, Enrolment, SpokeStatus, TOKEN_PREFIX, check_name};
pub use forward::HubGit;
pub use git::GitForSpokes;
pub use link::{LinkStatus, SpokeLinks};
pub use local::Local;

/// Why an enrolment step was refused. None of them carries a token.
#[derive(Debug, thiserror::Error)]
pub enum SpokeError {
    #[error(
        "spoke name {0:?} is not valid: 1-63 of a-z, 0-9 and '-', starting with a letter or digit (\"local\" is the hub's own)"
    )]
    BadName(String),
    #[error("the enrolment token is unknown, used or expired: ask an admin for a new one")]
    BadToken,
    #[error("{0}")]
    Csr(String),
    #[error("no spoke named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] paddock_store::StoreError),
    #[error("the spoke CA: {0}")]
    Ca(paddock_tls::TlsError),
    #[error("{0}")]
    Files(String),
    #[error("the hub refused this spoke: {0}")]
    Refused(String),
}

impl From<paddock_tls::TlsError> for SpokeError {
    fn from(e: paddock_tls::TlsError) -> Self {
        match e {
            paddock_tls::TlsError::Csr(why) => {
                Self::Csr(format!("not a usable certificate signing request: {why}"))
            }
            other => Self::Ca(other),
        }
    }
}
