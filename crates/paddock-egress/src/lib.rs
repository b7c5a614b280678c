//! The egress gateway: nothing leaves a box except through here.
//!
//! Per box network: an HTTP forward proxy with CONNECT on the gateway
//! address, a DNS responder beside it, and a firewall in the box's own
//! network namespace that lets the box reach only those two (and the git
//! gate) and reports everything else through NFLOG. Decisions come from
//! rules; what the rules leave open is held while the clearance hub asks a
//! person.

mod address;
mod ahead;
mod audit;
mod boxes;
mod config;
pub mod dns;
pub mod firewall;
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod hold;
pub mod host_guard;
pub mod host_log;
mod http_gate;
pub mod http_rules;
pub mod intercept;
pub mod metrics;
mod netlink;
pub mod nflog;
mod nft;
pub mod own;
pub mod policy;
pub mod proxy;
mod resolver;
mod shield;
pub mod sni;
mod splice;
mod verdicts;

pub use address::restricted;
pub use ahead::{Ahead, EgressStatus, MAX_REASON_CHARS, agent_reason};
pub use audit::AuditDecision;
pub use config::EgressConfig;
pub use gateway::{BoxIdentity, Decision, Egress, Host, now_ms};
pub use host_guard::HostFence;
pub use http_gate::HttpRuleSpec;
pub use http_rules::{HttpRule, HttpRuleError};
pub use policy::{Action, PolicyError, PortRange, Rule, Scope, Target};
pub use shield::Shield;

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Http(#[from] HttpRuleError),
    #[error(transparent)]
    Store(#[from] paddock_store::StoreError),
    #[error("egress: {0}")]
    Io(#[from] std::io::Error),
    #[error("egress firewall: {0}")]
    Firewall(String),
    /// The box's main process ended before its firewall could be applied
    /// (its namespace is gone with it).
    #[error("the box's main process has exited")]
    BoxExited,
    /// The gateway cannot do its job right now (see `Egress::health`).
    #[error("{0}")]
    Unhealthy(String),
}
