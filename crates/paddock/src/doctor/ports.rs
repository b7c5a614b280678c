//! The ports paddock listens on at each box network's gateway address
//! (the proxy, DNS, the git gate). paddock binds them per address, so a
//! process of another owner listening on *every* address takes them from
//! every box network to come. Found in `/proc/net`, without binding
//! anything.

use super::Finding;
use crate::config::Resolved;

/// A listening socket's port, if it listens on every address (`0.0.0.0`
/// or `::`), from one line of `/proc/net/{tcp,udp}{,6}`. TCP sockets must
/// be in LISTEN (0A); UDP has no states worth checking.
fn wildcard_port(line: &str, tcp: bool) -> Option<u16> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let state = fields.nth(1)?;
    if tcp && state != "0A" {
        return None;
    }
    let (address, port) = local.split_once(':')?;
    if !address.bytes().all(|b| b == b'0') {
        return None;
    }
    u16::from_str_radix(port, 16).ok()
}

fn wildcard_listeners(table: &str, tcp: bool) -> Vec<u16> {
    std::fs::read_to_string(format!("/proc/net/{table}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| wildcard_port(l, tcp))
        .collect()
}

pub fn gateway_ports(config: &Resolved) -> Finding {
    let mut wanted: Vec<(u16, &str, bool)> = Vec::new();
    if config.egress.enabled {
        wanted.push((config.egress.proxy_port, "the egress proxy (tcp)", true));
        wanted.push((config.egress.dns_port, "the DNS responder (udp)", false));
        wanted.push((config.egress.dns_port, "the DNS responder (tcp)", true));
    }
    if config.git.enabled {
        wanted.push((config.git.port, "the git gate (tcp)", true));
    }
    let tcp: Vec<u16> = ["tcp", "tcp6"]
        .iter()
        .flat_map(|t| wildcard_listeners(t, true))
        .collect();
    let udp: Vec<u16> = ["udp", "udp6"]
        .iter()
        .flat_map(|t| wildcard_listeners(t, false))
        .collect();
    let taken: Vec<String> = wanted
        .iter()
        .filter(|(port, _, is_tcp)| if *is_tcp { &tcp } else { &udp }.contains(port))
        .map(|(port, what, _)| format!("{port} ({what})"))
        .collect();
    if taken.is_empty() {
        let mut ports: Vec<u16> = wanted.iter().map(|(p, _, _)| *p).collect();
        ports.dedup();
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        Finding::ok(
            "gateway ports",
            format!("free on box gateways: {}", ports.join(", ")),
        )
    } else {
        Finding::fail(
            "gateway ports",
            format!("something listens on every address at {}", taken.join(", ")),
            "make it listen on the addresses it serves only, or move paddock's port ([egress] proxy_port, dns_port, [git] port)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wildcard_listeners_count() {
        // From a real /proc/net/tcp: a listener on 0.0.0.0:3128, one on
        // 127.0.0.1:7878, and an established connection from port 3128.
        let wild = "   0: 00000000:0C38 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
        let loopback = "   1: 0100007F:1EC6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0";
        let established = "   2: 00000000:0C38 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(wildcard_port(wild, true), Some(3128));
        assert_eq!(wildcard_port(loopback, true), None);
        assert_eq!(wildcard_port(established, true), None);
        // tcp6's any address, and UDP (whose state is 07).
        let wild6 = "   0: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0000000000000000 0";
        assert_eq!(wildcard_port(wild6, false), Some(53));
        assert_eq!(wildcard_port("garbage", true), None);
    }
}
