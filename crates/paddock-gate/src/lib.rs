//! The git gate: git smart HTTP (`git http-backend`) behind per-project
//! tokens, and the push policy its hooks enforce.
//!
//! It maps no URL path to a file itself: a request names a repository that
//! must be a plain `<project>.git` directory inside the base path and one of
//! the three smart-HTTP endpoints; everything else is 404. `git
//! http-backend` then serves it with `GIT_PROJECT_ROOT` set to the base.

mod answers;
mod audit_log;
mod cgi;
mod commands;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod hook;
mod hooks_dir;
pub mod metrics;
mod policy;
mod repos;
mod request;
mod server;
mod spare;
mod tokens;

pub use answers::{Body as GateBody, text as text_answer};
pub use audit_log::prune as prune_audit_log;
pub use forward::{Forward, Forwarded};
pub use hook::{HookKind, run_hook};
pub use policy::{PushPolicy, RefAction};
pub use repos::{Import, ensure_repository};
pub use server::{Gate, GateConfig};
pub use tokens::{Grant, TokenAuthority, TokenFile, hash_token};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("gate: {0}")]
    Io(#[from] std::io::Error),
    #[error("gate: base path {0} is not a directory")]
    BasePath(String),
    #[error("gate: {0}")]
    Config(String),
}
