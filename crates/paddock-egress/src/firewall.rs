//! The firewall inside a box's network namespace: the box may send only to
//! loopback and to the gateway's listeners; everything else is logged to
//! NFLOG (read by `nflog`) and rejected, so the attempt fails fast and is
//! reported. Written over netlink by a thread that entered the namespace,
//! which needs root (or CAP_SYS_ADMIN to enter the namespace and
//! CAP_NET_ADMIN to change it); the box itself has neither, so it cannot
//! undo it.

use std::net::Ipv4Addr;

use crate::EgressError;
use crate::netlink::{Netfilter, in_namespace_of};
use crate::nft;

/// The table paddock writes in every box's namespace.
pub const BOX_TABLE: &str = "paddock";

/// What a box's firewall lets through, and where it reports the rest.
#[derive(Debug, Clone)]
pub struct BoxFirewall {
    pub gateway: Ipv4Addr,
    /// The gateway's TCP listeners (proxy, git gate); DNS is UDP 53.
    pub tcp_ports: Vec<u16>,
    pub nflog_group: u16,
}

impl BoxFirewall {
    /// Applies the ruleset in the network namespace of `pid`, replacing
    /// any earlier one atomically (one netlink batch is one transaction).
    pub async fn apply(&self, pid: u32) -> Result<(), EgressError> {
        let batch = nft::replace_output_table(
            BOX_TABLE,
            &nft::box_rules(self.gateway, &self.tcp_ports, self.nflog_group),
        );
        in_namespace_of(pid, move || {
            Netfilter::open()?.exchange(batch)?.map_err(|refused| {
                EgressError::Firewall(format!(
                    "the kernel refused the box's firewall: {}{}",
                    refused.io(),
                    permission_hint(refused.errno)
                ))
            })?;
            Ok(())
        })
        .await
    }
}

/// What to do about a refusal that says paddock lacks a privilege.
pub(crate) fn permission_hint(errno: i32) -> &'static str {
    if errno == libc::EPERM || errno == libc::EACCES {
        "; paddock needs root, or CAP_SYS_ADMIN and CAP_NET_ADMIN, to guard boxes"
    } else {
        ""
    }
}
