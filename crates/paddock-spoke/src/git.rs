//! Git for a spoke's boxes, served from the hub. A box on a spoke talks
//! to the spoke's gate, which checks the box's token and hands the
//! request on over the spoke's mutual-TLS connection (`forward`); here
//! the hub lets it through only for a box it placed on that very spoke,
//! for that box's project, and its own gate serves it — push policy,
//! hooks and audit included. The repository exists once, at the hub: a
//! proxy, not a mirror, so a push is at the hub when git says it is done,
//! and boxes on different machines never see different branches. The
//! price is that every fetch crosses the link (see the README).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use paddock_gate::{GateBody, text_answer};

use crate::front::Admitted;
use crate::link::SpokeLinks;

/// Where git for a spoke's box is asked for:
/// `/spoke/git/<box id>/<project>.git/<endpoint>`.
pub(crate) const GIT_PREFIX: &str = "/spoke/git/";

/// The hub's gate as the spoke listener uses it.
pub trait GitForSpokes: Send + Sync {
    /// Serves `request` (its path `/<project>.git/…`) for `box_id`, a box
    /// of `project` the hub placed on the spoke asking.
    fn serve<'a>(
        &'a self,
        box_id: &'a str,
        project: &'a str,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<GateBody>> + Send + 'a>>;
}

impl SpokeLinks {
    /// Lets linked spokes' boxes use the hub's git (absent: git is off).
    pub fn serve_git_with(&self, git: Arc<dyn GitForSpokes>) {
        let _ = self.git.set(git);
    }

    pub(crate) async fn git(
        &self,
        mut request: Request<Incoming>,
        admitted: &Admitted,
        peer: SocketAddr,
    ) -> Response<GateBody> {
        let spoke = match admitted {
            Ok((spoke, _)) => spoke,
            Err(reason) => {
                tracing::warn!(%peer, %reason, "refused git to a spoke");
                return text_answer(StatusCode::FORBIDDEN, "not an enrolled spoke\n");
            }
        };
        let Some(git) = self.git.get() else {
            return text_answer(StatusCode::NOT_FOUND, "git is off at the hub\n");
        };
        let Some((box_id, project, rest)) = split(request.uri()) else {
            return text_answer(StatusCode::NOT_FOUND, "not a git path\n");
        };
        match self.store.get_spoke_box(&box_id) {
            Ok(Some(row)) if row.spoke == *spoke && row.project == project => {}
            Ok(_) => {
                // A spoke speaks only for the boxes the hub put on it: any
                // other box, or another project, does not exist for it.
                tracing::warn!(%spoke, box_id = %box_id, %project, "a spoke asked for git for a box the hub did not place on it");
                return text_answer(StatusCode::NOT_FOUND, "no such repository\n");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spokes' boxes; git refused");
                return text_answer(StatusCode::SERVICE_UNAVAILABLE, "the hub's store failed\n");
            }
        }
        *request.uri_mut() = rest;
        git.serve(&box_id, &project, request).await
    }
}

/// `/spoke/git/<box>/<project>.git/<rest>?<query>` → the box, the project
/// and `/<project>.git/<rest>?<query>`; None for anything else.
fn split(uri: &Uri) -> Option<(String, String, Uri)> {
    let after = uri.path().strip_prefix(GIT_PREFIX)?;
    let (box_id, repo_path) = after.split_once('/')?;
    let well_named = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let (project, _) = repo_path.split_once(".git/")?;
    if !well_named(box_id) || !well_named(project) {
        return None;
    }
    let rest = match uri.query() {
        Some(query) => format!("/{repo_path}?{query}"),
        None => format!("/{repo_path}"),
    };
    Some((box_id.to_owned(), project.to_owned(), rest.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_box_and_a_repository_path_are_taken() {
        let uri: Uri = "/spoke/git/b-1/proj.git/info/refs?service=git-upload-pack"
            .parse()
            .unwrap();
        let (box_id, project, rest) = split(&uri).unwrap();
        assert_eq!((box_id.as_str(), project.as_str()), ("b-1", "proj"));
        assert_eq!(rest, "/proj.git/info/refs?service=git-upload-pack");
        for bad in [
            "/spoke/git/b-1",
            "/spoke/git//proj.git/info/refs",
            "/spoke/git/b-1/../x.git/info/refs",
            "/spoke/git/b.1/proj.git/info/refs",
            "/spoke/git/b-1/proj/info/refs",
            "/spoke/gitx/b-1/proj.git/info/refs",
        ] {
            assert!(split(&bad.parse().unwrap()).is_none(), "{bad}");
        }
    }
}
