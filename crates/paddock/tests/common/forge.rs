//! A forge over HTTPS for paddock to reach through its gateway: the
//! standalone git gate (`gate_site`) behind TLS of the test's own CA
//! (`tls_site`), and a paddock that trusts that CA upstream, resolves
//! `forge.test` to it and allows the project `proj` to reach it.

use serde_json::json;

use super::egress_site::add_rule;
use super::gate_site::{Daemon, Site};
use super::tls_site::TlsRelay;
use super::{Options, Paddock};

pub struct Forge {
    pub site: Site,
    /// The relay's port: what `forge.test` is reached on.
    pub port: u16,
    relay: TlsRelay,
    _gate: Daemon,
}

impl Forge {
    pub async fn start() -> Self {
        let site = Site::new();
        let gate = Daemon::start(&site, &[]);
        let relay = TlsRelay::start(&["forge.test"], gate.addr.clone()).await;
        Self {
            site,
            port: relay.port,
            relay,
            _gate: gate,
        }
    }

    /// `repo` on the forge, as git in paddock names it.
    pub fn url(&self, repo: &str) -> String {
        format!("https://forge.test:{}/{repo}.git", self.port)
    }

    /// A paddock whose gateway reaches the forge for `proj`; `extra_toml`
    /// is appended to its configuration.
    pub async fn paddock(&self, extra_toml: &str) -> Paddock {
        let p = Paddock::start(Options {
            login_profile: false,
            extra_toml: format!(
                "[egress]\nupstream_ca_file = \"{}\"\n[egress.hosts]\n\"forge.test\" = [\"127.0.0.1\"]\n{extra_toml}",
                self.relay.ca_file.display()
            ),
            ..Options::default()
        });
        for target in ["forge.test", "127.0.0.1/32"] {
            add_rule(
                &p,
                json!({"project": "proj", "target": target, "action": "allow"}),
            )
            .await;
        }
        p
    }
}
