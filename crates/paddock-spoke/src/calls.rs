//! The hub's calls to one linked spoke: each gets an id, goes out on the
//! link's outbox, and waits for the answer of the same id. The session
//! owns the table: when the link ends the table goes with it, and every
//! call still waiting hears "unreachable" at once, not at its deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use paddock_core::remote::{RemoteFailure, RemoteReply, RemoteStream, SpokeCallError};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::streams::{FRAME_BYTES, STREAM_BUFFER, Streams, encode};
use crate::wire::HubMessage;

/// The longest a call waits for its answer: a create may pull an image.
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// What a spoke answers.
pub(crate) enum Answer {
    Reply(Result<RemoteReply, RemoteFailure>),
    VerdictDone(Result<(), String>),
}

/// One session's outbox and the calls waiting on it.
#[derive(Clone)]
pub(crate) struct Session {
    outbox: mpsc::Sender<HubMessage>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>,
    ids: Arc<AtomicU64>,
    /// Streams whose bytes come from the spoke (terminals' output).
    pub(crate) streams: Streams,
}

impl Session {
    pub(crate) fn new(outbox: mpsc::Sender<HubMessage>) -> Self {
        Self {
            outbox,
            waiting: Arc::default(),
            ids: Arc::new(AtomicU64::new(1)),
            streams: Streams::default(),
        }
    }

    /// Sends what `frame` makes of a fresh id and waits for its answer.
    pub(crate) async fn ask(
        &self,
        spoke: &str,
        frame: impl FnOnce(u64) -> HubMessage,
    ) -> Result<Answer, SpokeCallError> {
        let unreachable = || SpokeCallError::Unreachable(spoke.to_owned());
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        if self.outbox.send(frame(id)).await.is_err() {
            self.waiting.lock().remove(&id);
            return Err(unreachable());
        }
        match tokio::time::timeout(CALL_DEADLINE, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(unreachable()),
            Err(_) => {
                self.waiting.lock().remove(&id);
                Err(SpokeCallError::Failed(RemoteFailure {
                    kind: paddock_core::remote::FailureKind::Failed,
                    message: format!("no answer within {} s", CALL_DEADLINE.as_secs()),
                }))
            }
        }
    }

    /// Hands an answer to its call; false when no call waits under that
    /// id (answered already, timed out, or never asked — a spoke that
    /// repeats itself changes nothing).
    pub(crate) fn answer(&self, id: u64, answer: Answer) -> bool {
        match self.waiting.lock().remove(&id) {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }

    /// Ends every waiting call as unreachable, and every stream (the
    /// link went).
    pub(crate) fn end(&self) {
        self.waiting.lock().clear();
        self.streams.clear();
    }

    /// Sends a frame that needs no answer, without waiting (from the
    /// link's reader, which must not block); dropped if the outbox is full.
    pub(crate) fn tell(&self, frame: HubMessage) {
        let _ = self.outbox.try_send(frame);
    }

    /// A stream both ways: what the spoke sends on it arrives on
    /// `output`; what goes into `input` is sent, and its end told.
    pub(crate) fn open_stream(&self) -> RemoteStream {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (deliver, output) = mpsc::channel(STREAM_BUFFER);
        self.streams.insert(id, deliver);
        let (input, mut typed) = mpsc::channel::<Bytes>(16);
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            while let Some(bytes) = typed.recv().await {
                for piece in bytes.chunks(FRAME_BYTES) {
                    let frame = HubMessage::StreamData {
                        stream: id,
                        data: encode(piece),
                    };
                    if outbox.send(frame).await.is_err() {
                        return;
                    }
                }
            }
            let _ = outbox.send(HubMessage::StreamEnd { stream: id }).await;
        });
        RemoteStream { id, output, input }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `List` call to `gpu-1` on `session`, waiting on its own.
    fn list_call(session: &Session) -> tokio::task::JoinHandle<Result<Answer, SpokeCallError>> {
        let asking = session.clone();
        tokio::spawn(async move {
            asking
                .ask("gpu-1", |id| HubMessage::Call {
                    id,
                    call: paddock_core::remote::RemoteCall::List,
                })
                .await
        })
    }

    #[tokio::test]
    async fn an_answer_counts_once_and_only_for_a_call_that_waits() {
        let (tx, mut rx) = mpsc::channel(4);
        let session = Session::new(tx);
        let call = list_call(&session);
        let Some(HubMessage::Call { id, .. }) = rx.recv().await else {
            panic!("no call went out");
        };
        assert!(!session.answer(id + 100, Answer::Reply(Ok(RemoteReply::Done))));
        assert!(session.answer(id, Answer::Reply(Ok(RemoteReply::Views(vec![])))));
        assert!(
            !session.answer(id, Answer::Reply(Ok(RemoteReply::Done))),
            "a replayed answer finds nobody"
        );
        assert!(matches!(
            call.await.unwrap(),
            Ok(Answer::Reply(Ok(RemoteReply::Views(_))))
        ));
    }

    #[tokio::test]
    async fn a_link_that_ends_ends_its_calls_at_once() {
        let (tx, mut rx) = mpsc::channel(4);
        let session = Session::new(tx);
        let call = list_call(&session);
        rx.recv().await.unwrap();
        session.end();
        assert!(matches!(
            call.await.unwrap(),
            Err(SpokeCallError::Unreachable(name)) if name == "gpu-1"
        ));
    }
}
