//! A gate that serves no repository itself: on a spoke, the project's
//! repository lives at the hub, so once a box's token has been checked
//! here the request is handed on, whole and streaming, to whatever
//! reaches the hub's gate. The hub runs the push policy and the audit.

use std::future::Future;
use std::pin::Pin;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::answers::Body;

/// Who a forwarded request is for, as this gate's token check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub project: String,
    /// The box the token belongs to.
    pub principal: String,
}

/// Carries a request checked here to the gate that holds the repository.
pub trait Forward: Send + Sync {
    /// The answer to give git: the other gate's, or a refusal of this
    /// side's making when it cannot be reached.
    fn forward<'a>(
        &'a self,
        to: Forwarded,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;
}
