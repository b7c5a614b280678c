//! The firewall inside a box's network namespace: the box may send only to
//! loopback and to the gateway's listeners; everything else is logged to
//! NFLOG (read by `nflog`) and rejected, so the attempt fails fast and is
//! reported. Applied with `nsenter … nft`, which needs root (or
//! CAP_SYS_ADMIN to enter the namespace and CAP_NET_ADMIN to change it);
//! the box itself has neither, so it cannot undo it.

use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::EgressError;

/// The ruleset, replacing any earlier one atomically (one `nft -f` is one
/// transaction).
pub fn ruleset(gateway: Ipv4Addr, tcp_ports: &[u16], group: u16) -> String {
    let ports = tcp_ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "table inet paddock\n\
         delete table inet paddock\n\
         table inet paddock {{\n\
         \x20 chain output {{\n\
         \x20   type filter hook output priority 0; policy drop;\n\
         \x20   oifname \"lo\" accept\n\
         \x20   ct state established,related accept\n\
         \x20   ip daddr {gateway} tcp dport {{ {ports} }} accept\n\
         \x20   ip daddr {gateway} udp dport 53 accept\n\
         \x20   limit rate 100/second burst 200 packets log prefix \"paddock\" group {group}\n\
         \x20   meta l4proto tcp reject with tcp reset\n\
         \x20   reject\n\
         \x20 }}\n\
         }}\n"
    )
}

/// Applies the ruleset in the network namespace of `pid`.
pub async fn apply(pid: u32, ruleset: &str) -> Result<(), EgressError> {
    run_nft(Some(pid), ruleset).await
}

/// `nft -f -` with `ruleset` on stdin: in the network namespace of `pid`
/// (through nsenter), or in paddock's own (the host's) without one.
pub(crate) async fn run_nft(pid: Option<u32>, ruleset: &str) -> Result<(), EgressError> {
    let mut command = match pid {
        Some(pid) => {
            let mut c = tokio::process::Command::new("nsenter");
            c.args([
                format!("--net=/proc/{pid}/ns/net").as_str(),
                "--",
                "nft",
                "-f",
                "-",
            ]);
            c
        }
        None => {
            let mut c = tokio::process::Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            EgressError::Firewall(match pid {
                Some(_) => format!(
                    "cannot run nsenter (util-linux) to reach the box's network namespace: {e}"
                ),
                None => format!("cannot run nft (Debian package nftables): {e}"),
            })
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if pid.is_some() && stderr.contains("/ns/net") {
        // nsenter could not open the namespace: the process is gone.
        return Err(EgressError::BoxExited);
    }
    // nft itself missing was reported when spawning failed; "No such file
    // or directory" from nft means a table or set it was told of is gone.
    let hint = if stderr.contains("Operation not permitted") || stderr.contains("Permission denied")
    {
        "; paddock needs root, or CAP_SYS_ADMIN and CAP_NET_ADMIN, to guard boxes"
    } else if pid.is_some() && stderr.contains("failed to execute") {
        "; install nft (Debian package nftables)"
    } else {
        ""
    };
    Err(EgressError::Firewall(format!(
        "cannot apply {}: {stderr}{hint}",
        if pid.is_some() {
            "the box's firewall"
        } else {
            "the host-side guard of box networks"
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_names_only_the_gateway_listeners() {
        let rules = ruleset(Ipv4Addr::new(10, 213, 0, 1), &[3128, 9418], 7);
        assert!(rules.contains("ip daddr 10.213.0.1 tcp dport { 3128, 9418 } accept"));
        assert!(rules.contains("policy drop"));
        assert!(rules.contains("group 7"));
        assert!(
            !rules.contains("tcp dport 53"),
            "DNS is served over UDP only; TCP 53 must not reach the host"
        );
    }
}
