//! paddock's own traffic through the gateway — the gate fetching a
//! project's upstream and pushing to it — decided, injected and recorded as
//! a box's is, for the project it speaks for. The listener is on loopback,
//! and a connection speaks for a project only with a credential paddock
//! minted for one of its own processes (`Proxy-Authorization`, found by
//! hash; handed over in the environment, never on a command line).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use hyper::header::{HeaderMap, PROXY_AUTHORIZATION};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::EgressError;
use crate::gateway::{BoxIdentity, Egress};

/// The box id paddock's own requests carry in the decision log and events.
pub const OWN_BOX: &str = "paddock-gate";
/// The user name of an own credential (the password is the secret).
const OWN_USER: &str = "paddock";

#[derive(Default)]
pub(crate) struct Grants {
    by_hash: Mutex<HashMap<String, BoxIdentity>>,
}

impl Grants {
    /// The project a request's credential was granted for.
    pub fn identify(&self, headers: &HeaderMap) -> Option<BoxIdentity> {
        let value = headers.get(PROXY_AUTHORIZATION)?.to_str().ok()?;
        let encoded = value.strip_prefix("Basic ")?.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, token) = decoded.split_once(':')?;
        if user != OWN_USER {
            return None;
        }
        self.by_hash
            .lock()
            .get(&paddock_secret::hash(token))
            .cloned()
    }
}

/// A credential for one of paddock's own processes; it lapses when
/// dropped.
pub struct OwnGrant {
    /// `http://paddock:<token>@127.0.0.1:<port>`, for `http.proxy`.
    pub proxy_url: String,
    hash: String,
    grants: Arc<Grants>,
}

impl Drop for OwnGrant {
    fn drop(&mut self) {
        self.grants.by_hash.lock().remove(&self.hash);
    }
}

impl std::fmt::Debug for OwnGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnGrant([redacted])")
    }
}

pub struct OwnProxy {
    addr: SocketAddr,
    grants: Arc<Grants>,
}

impl OwnProxy {
    pub async fn start(
        egress: Arc<Egress>,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, EgressError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let grants = Arc::new(Grants::default());
        tokio::spawn(crate::proxy::serve_as(
            egress,
            listener,
            crate::proxy::Identify::Own(grants.clone()),
            stop,
        ));
        Ok(Arc::new(Self { addr, grants }))
    }

    /// A credential speaking for `project` until dropped.
    pub fn grant(&self, project: &str) -> OwnGrant {
        let token = paddock_secret::mint();
        let hash = paddock_secret::hash(&token);
        self.grants.by_hash.lock().insert(
            hash.clone(),
            BoxIdentity {
                box_id: OWN_BOX.to_owned(),
                project: project.to_owned(),
            },
        );
        OwnGrant {
            proxy_url: format!("http://{OWN_USER}:{token}@{}", self.addr),
            hash,
            grants: self.grants.clone(),
        }
    }
}
