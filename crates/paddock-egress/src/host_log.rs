//! The host fence's refusals, reported as the raw attempts of the box
//! whose bridge they came in on. For a box under runc its own firewall
//! refuses first and this stays quiet; for a box whose runtime has its own
//! network stack (gVisor) this is where its raw attempts are seen.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::gateway::{BoxIdentity, Egress};
use crate::host_guard::bridge;
use crate::nflog::{NflogSocket, relay_attempts};

impl Egress {
    /// The box whose network has the bridge called `name`.
    pub fn identity_on_bridge(&self, name: &str) -> Option<BoxIdentity> {
        self.identities
            .lock()
            .iter()
            .find(|(network_id, _)| bridge(network_id) == name)
            .map(|(_, who)| who.clone())
    }
}

/// The name of interface `index` in paddock's own namespace.
fn interface_name(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires.
    let named = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if named.is_null() {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// Reads the host group until `stop`, reporting each refusal as its box's.
pub async fn report_host_attempts(
    egress: Arc<Egress>,
    socket: NflogSocket,
    stop: CancellationToken,
) {
    relay_attempts(socket, stop, "the host fence", |a| {
        let who = a
            .indev
            .and_then(interface_name)
            .and_then(|name| egress.identity_on_bridge(&name));
        match who {
            Some(who) => egress.raw_attempt(&who, a.dest, a.port, a.proto),
            None => {
                tracing::debug!(dest = %a.dest, port = a.port, "a refusal on no known box's bridge")
            }
        }
    })
    .await;
}
