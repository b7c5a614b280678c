use thiserror::Error;

/// Why a caller was not let in. The text goes to the caller and the log,
/// so it never contains the credential.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("no credential: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("credential refused: {0}")]
    Rejected(String),
    /// A regime does not know this credential: the next one that claims
    /// its shape may. Only when none does is it refused.
    #[error("unknown credential")]
    Unknown,
    /// The regime could not decide (an endpoint down or slow, a key set
    /// unreachable); a refusal, never an allow.
    #[error("cannot verify the credential: {0}")]
    Unavailable(String),
    /// paddock's own store could not be read (its database is down, say):
    /// nothing is known about the credential, good or bad, so the
    /// caller is told to try again rather than that it was refused.
    #[error("cannot verify the credential now: the store is unavailable ({0}); try again")]
    StoreUnavailable(String),
}

/// Why an authenticated caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Denied(pub String);

#[derive(Debug, Error)]
pub enum IamError {
    #[error(transparent)]
    Store(#[from] paddock_store::StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("no token with id {0:?}")]
    NoSuchToken(String),
}
