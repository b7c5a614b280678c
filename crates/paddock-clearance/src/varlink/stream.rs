//! A subscriber's socket once it streams events.
//!
//! The socket is watched for reading only: a hang-up, or a message a
//! streaming peer must not send, ends the stream. Watched for writing as
//! well, every frame a subscriber read would wake this process's event
//! loop once (its socket has room again): with a hundred subscribers, a
//! hundred wake-ups per event on a machine whose cores the subscribers
//! need, which nearly doubled what fan-out to them cost. The publisher
//! writes each frame straight to the socket ([`DirectSink`]); only a
//! subscriber too slow to take a frame whole is watched for writing, on
//! a duplicate of its descriptor, until its backlog is written.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::codec::FrameReader;
use super::server::WRITE_STALL;
use crate::queue::{DirectSink, Subscription};

/// Bytes a streaming peer may send without ending its message (it has no
/// business sending any).
const MAX_UNFINISHED: usize = 64 * 1024;

struct SocketSink(Arc<UnixStream>);

impl DirectSink for SocketSink {
    fn try_write(&self, bytes: &[u8]) -> Option<usize> {
        // Non-blocking: the socket left tokio in that mode.
        (&*self.0).write(bytes).ok()
    }
}

/// Streams until the peer hangs up (or sends a message: a streaming
/// connection takes no further calls) or the hub closes.
pub(super) async fn stream_events(
    subscription: Subscription,
    reader: FrameReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
) {
    let (read, unread) = reader.into_parts();
    if unread.contains(&0) {
        return;
    }
    let stream = match read.reunite(write).map(|s| s.into_std()) {
        Ok(Ok(stream)) => Arc::new(stream),
        _ => return,
    };
    // SAFETY: the Arc it owns keeps the descriptor open for its life.
    let Ok(hang_up) =
        (unsafe { AsyncFd::register_with_interest(stream.clone(), Interest::READABLE) })
    else {
        return;
    };
    subscription.attach(Arc::new(SocketSink(stream.clone())));
    let mut unfinished = unread.len();
    loop {
        tokio::select! {
            chunk = subscription.next_chunk() => {
                let Some(chunk) = chunk else { return };
                let bytes = &chunk.event.varlink_frame[chunk.offset..];
                let sent = tokio::time::timeout(WRITE_STALL, write_all(&stream, bytes)).await;
                subscription.written();
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::info!("a clearance subscriber stopped reading; cut it off");
                        return;
                    }
                }
            }
            ended = peer_spoke(&hang_up, &mut unfinished) => {
                let _ = ended;
                return;
            }
        }
    }
}

/// Writes all of `bytes`, waiting for room only when there is none.
async fn write_all(stream: &UnixStream, mut bytes: &[u8]) -> std::io::Result<()> {
    let mut room: Option<AsyncFd<UnixStream>> = None;
    while !bytes.is_empty() {
        match (&*stream).write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let watch = match room.as_mut() {
                    Some(watch) => watch,
                    None => {
                        let duplicate = stream.try_clone()?;
                        // SAFETY: it owns the duplicate, open for its life.
                        let watch = unsafe {
                            AsyncFd::register_with_interest(duplicate, Interest::WRITABLE)
                        };
                        room.insert(watch.map_err(|e| e.into_parts().1)?)
                    }
                };
                watch.writable().await?.clear_ready();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Returns once the peer hangs up, fails, finishes a message, or sends
/// more than a message may hold. Cancel-safe: bytes read are counted in
/// `unfinished`, which outlives the call.
async fn peer_spoke(
    watch: &AsyncFd<Arc<UnixStream>>,
    unfinished: &mut usize,
) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let mut ready = watch.readable().await?;
        match ready.try_io(|s| s.get_ref().as_ref().read(&mut buf)) {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => {
                *unfinished += n;
                if buf[..n].contains(&0) || *unfinished > MAX_UNFINISHED {
                    return Ok(());
                }
            }
            Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}
