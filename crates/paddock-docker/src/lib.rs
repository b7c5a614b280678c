//! The Docker engine adaptor: the only crate that speaks to Docker.
//!
//! It knows containers, networks, execs and labels — nothing about boxes,
//! projects or activation. Every object it lists is filtered by the label the
//! caller names, so paddock never sees (let alone touches) foreign objects.

mod archive;
mod engine;
mod error;
mod events;
mod exec;
mod files;
mod image;
mod pull;
mod runtime;
mod stats;
mod terminal;

pub use archive::FileEntry;
pub use engine::{ContainerSpec, Engine, LabelledObjects};
pub use error::EngineError;
pub use events::{ContainerChange, ContainerEvent};
pub use exec::{Chunk, ExecOutput, InteractiveExec, OutputStream};
pub use files::{ArchiveBody, ArchiveStream, PathStat};
pub use image::ImageCommand;
pub use pull::{PullProgress, RegistryLogin};
pub use runtime::EngineFacts;
pub use stats::Usage;
pub use terminal::TerminalSignal;

pub type Result<T> = std::result::Result<T, EngineError>;
