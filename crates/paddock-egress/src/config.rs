//! `[egress]` settings.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    pub enabled: bool,
    /// The proxy's port on every box network's gateway address.
    pub proxy_port: u16,
    /// The DNS responder's port on every gateway address (boxes ask port 53
    /// through Docker's resolver, which forwards here).
    pub dns_port: u16,
    /// How long a held connection waits for a verdict.
    pub hold_timeout_secs: u64,
    /// Pending requests one box may have at a time; more are refused.
    pub max_held_per_box: usize,
    /// Upper bound on `egress down --ttl`.
    pub max_down_secs: u64,
    pub connect_timeout_secs: u64,
    /// Names resolved without DNS (air-gapped sites, and tests that need a
    /// name for a server of their own).
    pub hosts: HashMap<String, Vec<IpAddr>>,
    /// DNS servers paddock asks (`ip` or `ip:port`), once a name is
    /// allowed; empty: the host's `/etc/resolv.conf`.
    pub resolvers: Vec<String>,
    /// NFLOG group used inside every box's network namespace.
    pub nflog_group: u16,
    /// Apply the firewall in each box's namespace (needs root or
    /// CAP_NET_ADMIN + CAP_SYS_ADMIN). Off only where a box's traffic is
    /// contained some other way.
    pub firewall: bool,
    /// Certificates (PEM) trusted upstream beside the host's roots, for
    /// hosts the gateway reads because a secret is bound to them (a site's
    /// own CA; a test's server).
    pub upstream_ca_file: Option<std::path::PathBuf>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            proxy_port: 3128,
            dns_port: 53,
            hold_timeout_secs: 60,
            max_held_per_box: 32,
            max_down_secs: 3600,
            connect_timeout_secs: 10,
            hosts: HashMap::new(),
            resolvers: Vec::new(),
            nflog_group: 7,
            firewall: true,
            upstream_ca_file: None,
        }
    }
}

impl EgressConfig {
    pub fn hold_timeout(&self) -> Duration {
        Duration::from_secs(self.hold_timeout_secs.max(1))
    }
}
