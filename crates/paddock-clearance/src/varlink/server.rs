//! The accept loop and one task per connection. A connection is either a
//! sequence of calls or, after `Subscribe`, a stream of events; a slow or
//! stuck peer only ever holds up its own task.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::codec::{Call, FrameReader, Reply, write_frame};
use super::service::{Outcome, dispatch};
use super::socket::{SocketError, bind_private, effective_uid};
use crate::hub::Hub;
use paddock_iam::{Capabilities, Identity};

/// Requests are small; anything bigger is not a clearance client.
const MAX_MESSAGE: usize = 64 * 1024;
/// A message once started must be complete within this.
const FINISH_MESSAGE_WITHIN: Duration = Duration::from_secs(10);
/// A peer whose socket takes no bytes for this long is cut off.
pub(super) const WRITE_STALL: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 512;

pub struct VarlinkServer {
    listener: UnixListener,
    path: PathBuf,
    hub: Arc<Hub>,
    version: String,
}

impl VarlinkServer {
    /// Binds now, so a bad path or a running hub is an error at start-up.
    pub fn bind(path: &Path, hub: Arc<Hub>, version: &str) -> Result<Self, SocketError> {
        paddock_iam::registry::check_served(
            &[paddock_iam::Surface::Varlink],
            super::interfaces::methods()
                .iter()
                .map(|m| (paddock_iam::Surface::Varlink, m.as_str())),
        )?;
        Ok(Self {
            listener: bind_private(path)?,
            path: path.to_owned(),
            hub,
            version: version.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `stop`; then closes every connection and removes the
    /// socket file.
    pub async fn serve(self, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let me = effective_uid();
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "clearance socket accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // The same-uid rule stands; the uid becomes the identity the
            // registry's checks and the audit see.
            let caller = match stream.peer_cred() {
                Ok(cred) if cred.uid() == me => Identity::local_user(me, Capabilities::all()),
                Ok(cred) => {
                    tracing::warn!(
                        peer_uid = cred.uid(),
                        "refused a clearance client of another user"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell who connected to the clearance socket; refused");
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!("too many clearance clients; refused one");
                continue;
            };
            let hub = self.hub.clone();
            let version = self.version.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = serve_connection(stream, hub, version, caller) => {}
                }
                drop(slot);
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_connection(stream: UnixStream, hub: Arc<Hub>, version: String, caller: Identity) {
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read, MAX_MESSAGE, FINISH_MESSAGE_WITHIN);
    loop {
        let call: Call = match reader.next_message().await {
            Ok(Some(call)) => call,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "dropped a clearance client");
                return;
            }
        };
        match dispatch(&hub, &version, &call, &caller).await {
            Outcome::Reply(reply) => {
                if call.oneway {
                    continue;
                }
                if send(&mut write, &reply).await.is_err() {
                    return;
                }
            }
            Outcome::Subscribe => {
                super::stream::stream_events(hub.subscribe(), reader, write).await;
                return;
            }
        }
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> Result<(), ()> {
    let json = serde_json::to_vec(reply).map_err(|_| ())?;
    send_raw(write, &json).await
}

async fn send_raw(write: &mut tokio::net::unix::OwnedWriteHalf, json: &[u8]) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_STALL, write_frame(write, json)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            tracing::info!("a clearance subscriber stopped reading; cut it off");
            Err(())
        }
    }
}
