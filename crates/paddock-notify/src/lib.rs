//! Desktop pop-ups for held requests (`paddock notify`): each request a
//! person may decide is shown through the session's notification server
//! with Allow, Deny and Allow for the project; another attempt replaces
//! its pop-up, and the request's end — a verdict given anywhere, the
//! deadline, the box exiting — closes it.
//!
//! [`Tracker`] is the bookkeeping (pure, tested without a bus);
//! [`Desktop`] is the bus. Where the events come from (the clearance
//! socket or the WebSocket) is the binary's business.

mod desktop;
mod tracker;

pub use desktop::{Desktop, DesktopError, Signal, body_text, describe};
pub use tracker::{ACTIONS, Held, Step, Tracker};
