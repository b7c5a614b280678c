//! A request body passed on as it arrives, looked through for the box's
//! placeholders on the way (never buffered whole). Finding one ends the
//! body with an error, so the upstream never receives a complete request,
//! and leaves the reason where the request's handler finds it.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use paddock_vault::{BoxSecrets, StreamScan};

use super::inject::Refusal;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct ScannedBody {
    inner: super::Body,
    secrets: Arc<BoxSecrets>,
    scan: StreamScan,
    found: Arc<OnceLock<Refusal>>,
}

impl ScannedBody {
    pub fn new(
        inner: super::Body,
        secrets: Arc<BoxSecrets>,
        found: Arc<OnceLock<Refusal>>,
    ) -> Self {
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
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
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

/// The most of a push's body read before deciding on its refs.
const MAX_PUSH_HEAD: usize = 64 * 1024;

/// Reads a git push's command list off the front of its body: the refs
/// it updates (None when they cannot be read within
/// [`MAX_PUSH_HEAD`] bytes), and the body whole again for sending on.
pub(crate) async fn push_head(mut body: super::Body) -> (Option<Vec<String>>, super::Body) {
    let mut head = Vec::new();
    let mut ended = false;
    let refs = loop {
        if let Some(refs) = crate::http_rules::push_refs(&head) {
            break Some(refs);
        }
        if ended || head.len() > MAX_PUSH_HEAD {
            break None;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    head.extend_from_slice(data);
                }
            }
            Some(Err(_)) | None => ended = true,
        }
    };
    let prefix = Some(Bytes::from(head)).filter(|h| !h.is_empty());
    (refs, Prefixed { prefix, rest: body }.boxed())
}

/// A body whose first bytes were read already: those, then the rest.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: super::Body,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}
