//! The clearance hub: every egress event fans out to every subscriber, and a
//! verdict is accepted only when it cites a (box, request_id, dest) triple
//! the hub itself emitted.
//!
//! The hub knows nothing of proxies or firewalls. Whoever holds connections
//! (the egress gateway) publishes events here and registers a
//! [`VerdictSink`] that the hub calls once a verdict has passed its checks.
//! Surfaces (varlink here, WebSocket in `paddock-http`) only subscribe and
//! forward verdicts.

mod event;
mod hub;
mod queue;
pub mod varlink;

pub use event::{ClearanceEvent, EventKind, Published};
pub use hub::{
    CheckedVerdict, Hub, HubConfig, PendingRequest, Verdict, VerdictError, VerdictScope,
    VerdictSink,
};
pub use queue::{Chunk, DirectSink, Subscription};
