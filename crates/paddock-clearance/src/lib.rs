//! The clearance hub: every egress event fans out to every subscriber, and a
//! verdict is accepted only when it cites a (box, request_id, dest) triple
//! the hub itself emitted.
//!
//! The hub knows nothing of proxies or firewalls. Whoever holds connections
//! (the egress gateway) asks it to [`Hub::hold`] a request and waits on the
//! [`Ticket`] it gets; a verdict that passed the hub's checks, or a
//! withdrawal, ends the request there — the one place it lives. Surfaces
//! (varlink here, WebSocket in `paddock-http`) only subscribe and forward
//! verdicts.

mod event;
#[doc(hidden)]
pub mod fuzzing;
mod hub;
pub mod metrics;
mod mirrored;
mod queue;
mod relayed;
mod request;
pub mod varlink;
mod verdict;

pub use event::{ClearanceEvent, EventKind, Published};
pub use hub::{
    AGENT_REASON, Ack, CheckedVerdict, Ending, HELD_AT, HTTP_REQUEST, Hold, Hub, HubConfig,
    NotApplied, PendingRequest, PendingView, SubscriberQueueView, Ticket, Verdict, VerdictError,
    VerdictScope,
};
pub use mirrored::{HolderKey, Mirrored, Mirroring};
pub use queue::{Chunk, DirectSink, Subscription};
pub use relayed::RelayedVerdict;
pub use request::{VerdictRequest, VerdictRequestError};
