//! Command-line clients of the REST API. They hold no box logic: every
//! command is one request, and every failure is the server's message.

mod boxes;
mod console;
mod copy;
mod create;
mod egress;
mod egress_http;
mod git;
mod http;
mod policy;
mod secrets;
mod shell;
mod spokes;
mod status;
mod table;
mod tokens;
mod top;
pub(crate) mod trust;

pub use boxes::{BoxArgs, run_box};
pub use console::{ConsoleArgs, run_console};
pub use egress::{EgressArgs, run_egress};
pub use git::{GitArgs, run_git};
pub use policy::{PolicyArgs, run_policy};
pub use secrets::{SecretArgs, run_secret};
pub use spokes::{SpokeArgs, run_spoke};
pub use status::{StatusArgs, VersionArgs, run_status, run_version};
pub use table::render as render_table;
pub use tokens::{TokenArgs, run_token};
