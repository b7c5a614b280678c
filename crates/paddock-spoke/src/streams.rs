//! Byte streams on the link — a terminal's output and what its person
//! types — beside the calls. Each end keeps the streams it delivers to by
//! the id the hub gave; bytes travel base64 in JSON frames. A reader that
//! cannot keep up has its stream ended rather than the link's memory
//! grow, and every stream ends with the link.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Chunks a stream's reader may be behind by before the stream is ended.
pub(crate) const STREAM_BUFFER: usize = 256;
/// The most one frame carries.
pub(crate) const FRAME_BYTES: usize = 16 * 1024;

#[derive(Clone, Default)]
pub(crate) struct Streams {
    open: Arc<Mutex<HashMap<u64, mpsc::Sender<Bytes>>>>,
}

impl Streams {
    pub(crate) fn insert(&self, id: u64, deliver_to: mpsc::Sender<Bytes>) {
        self.open.lock().insert(id, deliver_to);
    }

    /// Hands `data` to stream `id`. False when the stream is no more or
    /// had to end here (unreadable frame, a reader too far behind): the
    /// other end should be told.
    pub(crate) fn deliver(&self, id: u64, data: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(data) else {
            self.end(id);
            return false;
        };
        let mut open = self.open.lock();
        let Some(reader) = open.get(&id) else {
            return false;
        };
        if reader.try_send(Bytes::from(bytes)).is_err() {
            open.remove(&id);
            return false;
        }
        true
    }

    pub(crate) fn end(&self, id: u64) {
        self.open.lock().remove(&id);
    }

    pub(crate) fn clear(&self) {
        self.open.lock().clear();
    }
}

pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_whole_and_a_reader_too_far_behind_is_let_go() {
        let streams = Streams::default();
        let (tx, mut rx) = mpsc::channel(2);
        streams.insert(7, tx);
        assert!(streams.deliver(7, &encode(b"hello")));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"hello"));
        assert!(streams.deliver(7, &encode(b"a")));
        assert!(streams.deliver(7, &encode(b"b")));
        assert!(
            !streams.deliver(7, &encode(b"c")),
            "a full reader ends the stream"
        );
        assert!(!streams.deliver(7, &encode(b"d")), "and it stays ended");
        assert!(!streams.deliver(8, &encode(b"x")), "no such stream");
        let (tx, _rx) = mpsc::channel(2);
        streams.insert(9, tx);
        assert!(!streams.deliver(9, "not base64!"));
    }
}
