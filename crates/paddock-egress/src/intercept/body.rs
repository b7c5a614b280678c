//! A request body passed on as it arrives, looked through for the box's
//! placeholders on the way (never buffered whole). Finding one ends the
//! body with an error, so the upstream never receives a complete request,
//! and leaves the reason where the request's handler finds it.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use paddock_vault::{BoxSecrets, StreamScan};

use super::inject::Refusal;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct ScannedBody {
    inner: Incoming,
    secrets: Arc<BoxSecrets>,
    scan: StreamScan,
    found: Arc<OnceLock<Refusal>>,
}

impl ScannedBody {
    pub fn new(inner: Incoming, secrets: Arc<BoxSecrets>, found: Arc<OnceLock<Refusal>>) -> Self {
        Self {
            inner,
            secrets,
            scan: StreamScan::default(),
            found,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body carries a secret's placeholder")]
struct PlaceholderInBody;

impl Body for ScannedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref()
            && let Some(secret) = this.scan.feed(&this.secrets, data)
        {
            let refusal = if secret.removed {
                Refusal::Removed {
                    secret: secret.name.clone(),
                }
            } else {
                Refusal::Misuse {
                    secret: secret.name.clone(),
                    place: "the body".into(),
                }
            };
            let _ = this.found.set(refusal);
            return Poll::Ready(Some(Err(Box::new(PlaceholderInBody))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
