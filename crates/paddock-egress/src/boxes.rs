//! What the gateway learns about boxes from whoever runs them (the box
//! extension in the `paddock` binary): which box holds which network, when
//! a box is guarded, starts, exits or goes, and what its firewall caught.
//! The gateway itself knows nothing of Docker or of paddock's box service.

use std::net::IpAddr;

use paddock_clearance::EventKind;

use crate::audit::AuditDecision;
use crate::gateway::{BoxIdentity, Dest, Egress};

impl Egress {
    /// Connections arriving on `network_id` are `who`'s from now on.
    pub fn bind_network(&self, network_id: &str, who: BoxIdentity) {
        self.identities.lock().insert(network_id.to_owned(), who);
    }

    /// The network no longer speaks for any box.
    pub fn unbind_network(&self, network_id: &str) {
        self.forget_network(network_id);
    }

    /// The box's guards are in place: its shield is announced.
    pub fn box_guarded(&self, who: &BoxIdentity) {
        let mut shield = self.event(EventKind::ShieldUp, who);
        shield.action = self.shield_of(&who.box_id).as_str().into();
        shield.ok = true;
        self.hub().publish(shield);
    }

    /// Docker started the box's container.
    pub fn container_started(&self, who: &BoxIdentity) {
        let mut e = self.event(EventKind::ContainerStarted, who);
        e.ok = true;
        self.hub().publish(e);
    }

    /// The box's container ended: nothing held for it can proceed.
    pub fn container_exited(&self, who: &BoxIdentity, exit_code: Option<i64>) {
        let reason = match exit_code {
            Some(code) => format!("the box's container exited with code {code}"),
            None => "the box's container exited".to_owned(),
        };
        self.forget_box(who, &reason);
        let mut e = self.event(EventKind::ContainerExited, who);
        e.reason = reason;
        self.hub().publish(e);
    }

    /// A packet the box's firewall rejected (it bypassed the proxy):
    /// recorded and announced.
    pub fn raw_attempt(&self, who: &BoxIdentity, dest: IpAddr, port: u16, proto: u8) {
        let host = dest.to_string();
        let dest = Dest::raw(&host, port, proto);
        self.refuse(
            who,
            dest,
            AuditDecision::RawBlock,
            "firewall",
            "a direct connection that bypassed the proxy",
        );
    }
}
