//! Varlink on a same-user unix socket: `org.terok.Clearance1` exactly as
//! terok's clients expect it, `org.paddock.Clearance1` for scoped verdicts
//! and the pending list, and `org.varlink.service` for introspection.
//!
//! The codec is our own: the wire format is NUL-terminated JSON, small
//! enough to own outright, and owning it lets every read and write carry a
//! size cap and a deadline.

mod client;
pub(crate) mod codec;
mod interfaces;
mod server;
pub(crate) mod service;
mod socket;
mod stream;

pub use client::{ClientError, EventStream, VarlinkClient};
pub use codec::{Call, FrameError, Reply};
pub use interfaces::{PADDOCK, SERVICE, TEROK};
pub use server::VarlinkServer;
pub use socket::{SocketError, default_socket_path, terok_socket_path};
