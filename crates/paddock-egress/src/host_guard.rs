//! The host side of a box's fence. The firewall in a box's own network
//! namespace can only be applied once its container runs, so for the first
//! milliseconds of a box's life only Docker's `internal` network stands
//! between it and every host service listening on its gateway. This closes
//! that window: one nftables table per paddock instance in the host's own
//! namespace accepts, from box bridges, only the gateway's listeners (proxy,
//! DNS, gate) and drops the rest. A network's entries are added when it
//! joins the pool — before any box can start on it — and removed with it.
//!
//! The table is made fresh at start (whatever a crashed predecessor left is
//! replaced) and deleted at a clean stop, with `nft -f` (its concatenated
//! set and lookup are written once, where a process spawn costs nothing
//! that matters). What happens per box — checking the table, adding and
//! removing a network's elements — is a netlink exchange from the process.
//! Its name carries the instance, so a sweeper can find a test instance's
//! table.
//!
//! For boxes whose runtime brings its own network stack (gVisor), this
//! fence is the only one that sees their packets: the rules in their
//! namespace never do. So what it refuses — towards the host's other
//! ports (input) and anywhere past the bridge (forward) — is logged to an
//! NFLOG group of the host's namespace (reported as the box's raw
//! attempts by `host_log`) and rejected, so the attempt fails at once.

use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::EgressError;
use crate::firewall::permission_hint;
use crate::netlink::{Netfilter, here};
use crate::nft;

/// The host table of one paddock instance (`paddock_<instance>`, other
/// characters than letters, digits and `_` written `_`).
pub fn table_name(instance: &str) -> String {
    let safe: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("paddock_{safe}")
}

/// The first NFLOG group of the host's namespace tried for an instance's
/// refusals: spread by the instance's name so two paddocks on one machine
/// start apart (and the second moves on if they meet anyway).
pub fn host_log_group(instance: &str) -> u16 {
    let hash = instance.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    4096 + (hash % 16384) as u16
}

/// Docker's name for a bridge network's interface.
pub fn bridge(network_id: &str) -> String {
    format!("br-{}", network_id.get(..12).unwrap_or(network_id))
}

/// The host-side fence of box networks.
#[derive(Clone)]
pub enum HostFence {
    /// `[egress] firewall = false`: no fences at all.
    Off,
    Ready(std::sync::Arc<HostGuard>),
    /// The table could not be made: every box fails closed with this.
    Failed(String),
}

pub struct HostGuard {
    table: String,
    tcp_ports: Vec<u16>,
    dns_port: u16,
    /// The host namespace's NFLOG group refusals are logged to.
    log_group: u16,
    /// Rebuilding a table that vanished is done by one caller at a time.
    rebuilding: tokio::sync::Mutex<()>,
}

impl HostGuard {
    pub fn new(instance: &str, tcp_ports: Vec<u16>, dns_port: u16, log_group: u16) -> Self {
        Self {
            table: table_name(instance),
            tcp_ports,
            dns_port,
            log_group,
            rebuilding: tokio::sync::Mutex::new(()),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn install_ruleset(&self) -> String {
        let t = &self.table;
        let refuse = format!(
            "limit rate 100/second burst 200 packets log group {} prefix \"paddock\"\n\
             \x20   meta l4proto tcp reject with tcp reset\n\
             \x20   counter reject",
            self.log_group
        );
        format!(
            "table inet {t}\n\
             delete table inet {t}\n\
             table inet {t} {{\n\
             \x20 set boxnets {{ type ifname; }}\n\
             \x20 set allowed {{ type ifname . ipv4_addr . inet_proto . inet_service; }}\n\
             \x20 chain input {{\n\
             \x20   type filter hook input priority -10; policy accept;\n\
             \x20   iifname != @boxnets accept\n\
             \x20   ct state established,related accept\n\
             \x20   iifname . ip daddr . meta l4proto . th dport @allowed accept\n\
             \x20   {refuse}\n\
             \x20 }}\n\
             \x20 chain forward {{\n\
             \x20   type filter hook forward priority -10; policy accept;\n\
             \x20   iifname != @boxnets accept\n\
             \x20   {refuse}\n\
             \x20 }}\n\
             }}\n"
        )
    }

    /// The set elements that fence one network: its bridge, and the
    /// (bridge, gateway, protocol, port) of every listener.
    fn elements(&self, network_id: &str, gateway: Ipv4Addr) -> Vec<(&'static str, Vec<Vec<u8>>)> {
        let br = bridge(network_id);
        let mut allowed: Vec<Vec<u8>> = self
            .tcp_ports
            .iter()
            .map(|p| nft::listener_key(&br, gateway, nft::TCP, *p))
            .collect();
        // DNS is served over UDP only: TCP to the DNS port would reach
        // whatever else listens there on the host.
        allowed.push(nft::listener_key(&br, gateway, nft::UDP, self.dns_port));
        vec![
            ("allowed", allowed),
            ("boxnets", vec![nft::interface_key(&br)]),
        ]
    }

    /// One transaction adding or deleting the elements of `networks`.
    async fn change_elements(
        &self,
        add: bool,
        networks: &[(&str, Ipv4Addr)],
    ) -> Result<(), EgressError> {
        let mut sets: Vec<(&str, Vec<Vec<u8>>)> = vec![("allowed", vec![]), ("boxnets", vec![])];
        for (id, gateway) in networks {
            for (set, keys) in self.elements(id, *gateway) {
                if let Some((_, all)) = sets.iter_mut().find(|(name, _)| *name == set) {
                    all.extend(keys);
                }
            }
        }
        let batch = nft::set_elements(&self.table, add, &sets);
        let table = self.table.clone();
        here(move || {
            Netfilter::open()?.exchange(batch)?.map_err(|refused| {
                EgressError::Firewall(format!(
                    "cannot {} the host fence's entries (nftables table inet {table}): {}{}",
                    if add { "add" } else { "remove" },
                    refused.io(),
                    permission_hint(refused.errno)
                ))
            })?;
            Ok(())
        })
        .await
    }

    /// Makes the table fresh (replacing one a crashed paddock left).
    pub async fn install(&self) -> Result<(), EgressError> {
        run_nft(&self.install_ruleset()).await
    }

    /// Fences a box network: its bridge reaches only the listeners.
    pub async fn add_network(
        &self,
        network_id: &str,
        gateway: Ipv4Addr,
    ) -> Result<(), EgressError> {
        self.change_elements(true, &[(network_id, gateway)]).await
    }

    /// Makes sure a network's entries are in place right now, and that the
    /// table holding them still exists: a spare network counts as fenced
    /// only once this succeeded, whatever happened to the table since the
    /// network joined the pool (another process may have deleted it). A
    /// vanished table is rebuilt with every network in `all`.
    pub async fn ensure_network(
        &self,
        network_id: &str,
        gateway: Ipv4Addr,
        all: &[(String, Ipv4Addr)],
    ) -> Result<(), EgressError> {
        if self.verify().await.is_ok() {
            // `add element` of an element already there changes nothing.
            return self.add_network(network_id, gateway).await;
        }
        let _one = self.rebuilding.lock().await;
        if self.verify().await.is_err() {
            tracing::warn!(table = %self.table, "the host fence's table was gone; rebuilding it");
            self.install().await?;
            let every: Vec<(&str, Ipv4Addr)> = all
                .iter()
                .map(|(id, gw)| (id.as_str(), *gw))
                .chain([(network_id, gateway)])
                .collect();
            self.change_elements(true, &every).await?;
            return Ok(());
        }
        self.add_network(network_id, gateway).await
    }

    /// Whether the table and its filtering chain are in place.
    pub async fn verify(&self) -> Result<(), EgressError> {
        let ask = nft::get_chain(&self.table, "input");
        let t = self.table.clone();
        here(move || match Netfilter::open()?.exchange(ask)? {
            Ok(()) => Ok(()),
            Err(refused) => Err(EgressError::Firewall(format!(
                "the host fence of box networks (nftables table inet {t}) is not in place: {}{}",
                refused.io(),
                permission_hint(refused.errno)
            ))),
        })
        .await
    }

    /// Forgets a removed network (its bridge is gone; nothing to fence).
    pub async fn remove_network(&self, network_id: &str, gateway: Ipv4Addr) {
        if let Err(e) = self.change_elements(false, &[(network_id, gateway)]).await {
            tracing::debug!(error = %e, network_id, "host guard: network entries already gone");
        }
    }

    /// Deletes the table (clean stop, purge); a table already gone is fine.
    pub async fn uninstall(&self) {
        let t = &self.table;
        if let Err(e) = run_nft(&format!("table inet {t}\ndelete table inet {t}\n")).await {
            tracing::warn!(error = %e, table = %t, "cannot remove the host guard table");
        }
    }
}

/// `nft -f -` with `script` on stdin, in paddock's own (the host's)
/// namespace.
async fn run_nft(script: &str) -> Result<(), EgressError> {
    let mut nft = tokio::process::Command::new("nft");
    nft.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = paddock_children::global()
        .spawn("nft", "host guard", nft)
        .map_err(|e| EgressError::Firewall(format!("{e} (Debian package nftables)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| EgressError::Firewall(format!("nft: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let hint = if stderr.contains("Operation not permitted") || stderr.contains("Permission denied")
    {
        permission_hint(libc::EPERM)
    } else {
        ""
    };
    Err(EgressError::Firewall(format!(
        "cannot apply the host-side guard of box networks: {stderr}{hint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rules_follow_the_instance_and_the_listeners() {
        assert_eq!(table_name("test-12-3"), "paddock_test_12_3");
        let guard = HostGuard::new("i", vec![3128, 9418], 53, 4242);
        let rules = guard.install_ruleset();
        assert!(rules.contains("iifname != @boxnets accept"));
        assert_eq!(
            rules.matches("log group 4242").count(),
            2,
            "input and forward refusals are both reported: {rules}"
        );
        assert!(rules.contains("chain forward"), "{rules}");
        let sets = guard.elements("0123456789abcdef", Ipv4Addr::new(10, 1, 2, 1));
        let gw = Ipv4Addr::new(10, 1, 2, 1);
        let br = "br-0123456789ab";
        assert_eq!(sets[1], ("boxnets", vec![nft::interface_key(br)]));
        let allowed = &sets[0].1;
        assert!(allowed.contains(&nft::listener_key(br, gw, nft::TCP, 3128)));
        assert!(allowed.contains(&nft::listener_key(br, gw, nft::TCP, 9418)));
        assert!(allowed.contains(&nft::listener_key(br, gw, nft::UDP, 53)));
        assert!(
            !allowed.contains(&nft::listener_key(br, gw, nft::TCP, 53)),
            "DNS is not served over TCP, so TCP 53 is not let through"
        );
    }
}
