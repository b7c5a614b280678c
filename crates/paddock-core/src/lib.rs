//! The box domain: what a box is, how it is created, activated, reaped,
//! restored and destroyed. Front-ends (REST, MCP, CLI, the activation page)
//! call [`BoxService`] and hold no box logic of their own.

mod activation;
pub mod config;
mod engine;
mod error;
mod extension;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
mod hooks;
mod images;
mod labels;
mod lifecycle;
mod main_process;
mod maintenance;
pub mod metrics;
mod model;
mod networks;
pub mod options;
mod pools;
mod ports;
mod power;
mod reconcile;
pub mod remote;
mod remote_boxes;
mod remote_terminal;
mod service;
mod subnet;
mod terminal;
pub mod validate;
mod watch;

pub use activation::{ActivationPage, ActivationStatus, LoginPrompt, SubmitOutcome, find_prompt};
pub use config::CoreConfig;
pub use engine::{BoxEngine, ContainerEvents, EngineFuture, LabelFilter};
pub use error::CoreError;
pub use extension::{
    BoxExtension, BoxFuture, BoxSetup, BoxStarted, Equipment, ExtensionError, LoginStarted,
};
pub use model::{BoxUsage, BoxView, CreateBox, CreatedBox, ExecResult};
pub use networks::{HeldNetwork, NetworksView};
pub use paddock_docker::{
    Chunk, ContainerChange, FileEntry, InteractiveExec, PullProgress, TerminalSignal,
};
pub use reconcile::ReconcileReport;
pub use service::{BoxService, Health, Unavailable, resolve_instance};

pub type Result<T> = std::result::Result<T, CoreError>;
