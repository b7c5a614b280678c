//! The spoke's gate hands git on to the hub (see `git` for why a proxy).
//! Each request goes on a connection of its own over mutual TLS with the
//! spoke's certificate, to the hub's spoke listener, streaming both ways;
//! the box's own token stays on the spoke (the hub trusts the spoke's
//! certificate and its own record of where the box is).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use paddock_gate::{Forward, Forwarded, GateBody, text_answer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::SpokeError;
use crate::git::GIT_PREFIX;

const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Headers that describe one hop, not the request: never passed on. The
/// box's `authorization` is its token for this spoke's gate alone.
const NOT_PASSED_ON: [header::HeaderName; 8] = [
    header::AUTHORIZATION,
    header::HOST,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// The hub's gate, as this spoke reaches it.
pub struct HubGit {
    authority: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
}

impl HubGit {
    /// For the hub at `hub` (the `https://` address `paddock spoke` dials),
    /// with the certificate enrolled into `dir`.
    pub fn new(hub: &str, dir: &Path) -> Result<Arc<Self>, SpokeError> {
        let url = crate::dial::link_url(hub)?;
        let authority = url
            .trim_start_matches("wss://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| SpokeError::Files(format!("{host:?} is not a host name")))?;
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority
        } else {
            format!("{authority}:443")
        };
        Ok(Arc::new(Self {
            authority,
            server_name,
            tls: TlsConnector::from(crate::dial::client_config(dir)?),
        }))
    }

    async fn pass_on(
        &self,
        to: &Forwarded,
        request: Request<Incoming>,
    ) -> Result<Response<GateBody>, String> {
        let tcp = tokio::time::timeout(CONNECT_DEADLINE, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| format!("no answer from {} within 10 s", self.authority))?
            .map_err(|e| format!("{}: {e}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(
            CONNECT_DEADLINE,
            self.tls.connect(self.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| "the TLS handshake took over 10 s".to_owned())?
        .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a git connection to the hub ended with an error");
            }
        });
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = format!("{GIT_PREFIX}{}{path_and_query}", to.principal)
            .parse()
            .map_err(|_| "the request's path cannot be passed on".to_owned())?;
        for name in NOT_PASSED_ON {
            parts.headers.remove(name);
        }
        let host = header::HeaderValue::from_str(&self.authority).map_err(|e| e.to_string())?;
        parts.headers.insert(header::HOST, host);
        let answer = sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(|e| e.to_string())?;
        let (mut parts, body) = answer.into_parts();
        for name in NOT_PASSED_ON {
            parts.headers.remove(name);
        }
        Ok(Response::from_parts(
            parts,
            body.map_err(std::io::Error::other).boxed_unsync(),
        ))
    }
}

impl Forward for HubGit {
    fn forward<'a>(
        &'a self,
        to: Forwarded,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<GateBody>> + Send + 'a>> {
        Box::pin(async move {
            match self.pass_on(&to, request).await {
                Ok(answer) => answer,
                Err(why) => {
                    tracing::warn!(project = %to.project, box_id = %to.principal, error = %why, "cannot reach the hub's git");
                    text_answer(
                        StatusCode::BAD_GATEWAY,
                        &format!("the hub's git cannot be reached: {why}\n"),
                    )
                }
            }
        })
    }
}
