//! Where names are resolved: resolvers of paddock's own choosing
//! (`[egress] resolvers`, else the host's `/etc/resolv.conf`), asked only
//! once a rule or a person has allowed the name — a lookup is itself a
//! message to whoever serves the name, so asking before deciding would let
//! a box send data out in the names it asks for.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::EgressError;

/// How long one name may take, all resolvers and retries included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Resolver {
    /// `[egress.hosts]`: answered here, asking nobody.
    fixed: HashMap<String, Vec<IpAddr>>,
    dns: Option<TokioResolver>,
    /// Why there is no resolver (no servers configured or found).
    missing: String,
}

/// `ip:port` or a bare `ip` (port 53); IPv6 as `[ip]:port`.
pub fn parse_resolver(text: &str) -> Result<SocketAddr, EgressError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            EgressError::Invalid(format!(
                "egress.resolvers: {text:?} is not an address (ip or ip:port)"
            ))
        })
}

/// The `nameserver` lines of a resolv.conf.
fn from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|ip| ip.split('%').next())
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

impl Resolver {
    pub fn new(
        configured: &[String],
        fixed: HashMap<String, Vec<IpAddr>>,
    ) -> Result<Self, EgressError> {
        let servers = if configured.is_empty() {
            from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            configured
                .iter()
                .map(|s| parse_resolver(s))
                .collect::<Result<Vec<_>, _>>()?
        };
        if servers.is_empty() {
            return Ok(Self {
                fixed,
                dns: None,
                missing:
                    "no DNS resolver is configured ([egress] resolvers) or in /etc/resolv.conf"
                        .into(),
            });
        }
        let mut config = ResolverConfig::from_name_servers(Vec::new());
        for server in servers {
            let mut udp = ConnectionConfig::udp();
            udp.port = server.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = server.port();
            config.add_name_server(NameServerConfig::new(server.ip(), true, vec![udp, tcp]));
        }
        let mut options = ResolverOpts::default();
        options.timeout = Duration::from_secs(2);
        options.attempts = 2;
        options.ndots = 0;
        let dns = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| EgressError::Invalid(format!("cannot set up the DNS resolver: {e}")))?;
        Ok(Self {
            fixed,
            dns: Some(dns),
            missing: String::new(),
        })
    }

    /// Names `[egress.hosts]` answers without asking anyone.
    pub fn is_fixed(&self, name: &str) -> bool {
        self.fixed.contains_key(name)
    }

    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(fixed) = self.fixed.get(name) {
            return Ok(fixed.clone());
        }
        let Some(dns) = &self.dns else {
            return Err(format!("cannot resolve {name}: {}", self.missing));
        };
        // Fully qualified: no search domain gets the name appended.
        let lookup = dns.lookup_ip(format!("{name}."));
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(found)) => {
                let mut ips: Vec<IpAddr> = found.iter().collect();
                ips.dedup();
                if ips.is_empty() {
                    Err(format!("{name} has no addresses"))
                } else {
                    Ok(ips)
                }
            }
            Ok(Err(e)) => Err(format!("cannot resolve {name}: {e}")),
            Err(_) => Err(format!("resolving {name} timed out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_are_read_as_addresses_with_port_53_by_default() {
        assert_eq!(
            parse_resolver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("10.0.0.2").unwrap(),
            "10.0.0.2:53".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("[::1]:53").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert!(parse_resolver("dns.example").is_err());
        let conf = "# comment\nsearch corp.example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions ndots:2\n";
        assert_eq!(
            from_resolv_conf(conf),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
