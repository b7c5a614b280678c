//! The forward proxy a box's `HTTP_PROXY`/`HTTPS_PROXY` point at: plain
//! HTTP in absolute form, and CONNECT tunnels whose TLS ClientHello must
//! name the host that was allowed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::gateway::{BoxIdentity, Decision, Dest, Egress, Host};
use crate::intercept::BoxError;
use crate::sni::{self, Hello};
use crate::splice;

type Body = BoxBody<Bytes, BoxError>;

pub(crate) const MAX_HEAD: usize = 16 * 1024;
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn refused(
    who: &BoxIdentity,
    host: &Host,
    port: u16,
    reason: &str,
    blocked: bool,
) -> Response<Body> {
    let host = host.as_string();
    // Under a blocking shield no rule helps: the shield must come up.
    let remedy = if blocked {
        format!("paddock egress up --box {}", who.box_id)
    } else {
        format!(
            "paddock egress allow {host} --port {port} --box {}",
            who.box_id
        )
    };
    // An agent reads this body: it says what happened, what a person
    // can do, and how the agent itself can ask (with its reason).
    let ask_ahead = if blocked {
        ""
    } else {
        "An agent can ask ahead, saying why, with paddock's MCP tool request_egress; a person decides.\n"
    };
    let mut res = text(
        StatusCode::FORBIDDEN,
        format!(
            "paddock refused this connection to {host}:{port}: {reason}.\n\
             To ask for it, have a person run: {remedy}\n{ask_ahead}"
        ),
    );
    res.headers_mut()
        .insert("x-paddock-decision", HeaderValue::from_static("refused"));
    res
}

/// Whom a listener's connections speak for.
#[derive(Clone)]
pub(crate) enum Identify {
    /// A box network's listener: the box that holds the network.
    Network(Arc<str>),
    /// paddock's own listener: the project its credential was granted for.
    Own(Arc<crate::own::Grants>),
}

impl Identify {
    fn who(&self, egress: &Egress, req: &Request<Incoming>) -> Option<BoxIdentity> {
        match self {
            Self::Network(id) => egress.identify(id),
            Self::Own(grants) => grants.identify(req.headers()),
        }
    }

    /// The answer to a connection that speaks for nobody.
    fn nobody(&self) -> Response<Body> {
        match self {
            Self::Network(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "paddock: no box on this network\n".into(),
            ),
            Self::Own(_) => {
                let mut res = text(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "paddock: this listener is paddock's own\n".into(),
                );
                res.headers_mut().insert(
                    header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"paddock\""),
                );
                res
            }
        }
    }
}

/// Serves one box network's proxy listener until `stop`.
pub async fn serve(
    egress: Arc<Egress>,
    listener: TcpListener,
    network_id: String,
    stop: CancellationToken,
) {
    serve_as(egress, listener, Identify::Network(network_id.into()), stop).await
}

pub(crate) async fn serve_as(
    egress: Arc<Egress>,
    listener: TcpListener,
    identify: Identify,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "egress proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let egress = egress.clone();
        let identify = identify.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (gateway, network) = (egress.clone(), identify.clone());
            let service = hyper::service::service_fn(move |req| {
                let egress = egress.clone();
                let identify = identify.clone();
                async move { Ok::<_, Infallible>(handle(egress, &identify, peer, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_DEADLINE)
                // Our own answers (the CONNECT 200, refusals) need no Date;
                // forwarded responses keep the origin's.
                .auto_date_header(false)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                _ = stop.cancelled() => {}
                served = conn => if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "egress proxy connection ended");
                    // hyper answered a head it could not parse with its own
                    // 400: a refusal like any other, so on the record.
                    if (e.is_parse() || e.is_parse_too_large())
                        && let Identify::Network(id) = &network
                        && let Some(who) = gateway.identify(id)
                    {
                        gateway.record_malformed(&who, "", ("proxy", 6), &format!("unreadable request: {e}"));
                    }
                }
            }
        });
    }
}

async fn handle(
    egress: Arc<Egress>,
    identify: &Identify,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(who) = identify.who(&egress, &req) else {
        return identify.nobody();
    };
    tracing::trace!(box_id = %who.box_id, %peer, method = %req.method(), uri = %req.uri(), "egress request");
    if req.method() == Method::CONNECT {
        connect(egress, who, req).await
    } else {
        forward(egress, who, req).await
    }
}

/// The host and port a request names. A port that is there but is no
/// port (out of range, not a number, zero) makes no authority at all —
/// never the default port in its place.
pub(crate) fn authority_of(uri: &hyper::Uri, default_port: u16) -> Option<(Host, u16)> {
    let authority = uri.authority()?;
    let host = Host::parse(authority.host())?;
    let after_userinfo = authority.as_str().rsplit('@').next()?;
    let port = match after_userinfo.strip_prefix(authority.host())? {
        "" | ":" => default_port,
        written => written
            .strip_prefix(':')?
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)?,
    };
    Some((host, port))
}

/// A request the proxy cannot serve: answered 400, and recorded.
fn malformed(
    egress: &Egress,
    who: &BoxIdentity,
    req: &Request<Incoming>,
    reason: &str,
) -> Response<Body> {
    egress.record_malformed(who, &req.uri().to_string(), ("proxy", 6), reason);
    text(StatusCode::BAD_REQUEST, format!("paddock: {reason}\n"))
}

pub(crate) async fn dial(addrs: &[SocketAddr], timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {addr} timed out"),
                )
            }
        }
    }
    Err(last)
}

fn unreachable(host: &Host, port: u16, error: &str) -> Response<Body> {
    text(
        StatusCode::BAD_GATEWAY,
        format!(
            "paddock: cannot reach {}:{port}: {error}\n",
            host.as_string()
        ),
    )
}

/// The decision: the addresses allowed, or the refusal for the client.
async fn decide(
    egress: &Arc<Egress>,
    who: &BoxIdentity,
    host: &Host,
    port: u16,
) -> Result<Vec<SocketAddr>, Response<Body>> {
    match egress.decide(who, host, port).await {
        Decision::Allow { addrs } => Ok(addrs),
        Decision::Deny { reason } => {
            let blocked = egress.shield_of(&who.box_id) == crate::Shield::Block;
            Err(refused(who, host, port, &reason, blocked))
        }
    }
}

/// The decision, then a connection to exactly the addresses it allowed;
/// a refusal or failure comes back as the answer for the client.
async fn decide_and_dial(
    egress: &Arc<Egress>,
    who: &BoxIdentity,
    host: &Host,
    port: u16,
) -> Result<TcpStream, Response<Body>> {
    let addrs = decide(egress, who, host, port).await?;
    let timeout = Duration::from_secs(egress.config.connect_timeout_secs.max(1));
    dial(&addrs, timeout)
        .await
        .map_err(|e| unreachable(host, port, &e.to_string()))
}

fn empty() -> Response<Body> {
    Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// Whether the box's project binds a secret to this host, so its tunnel
/// is read rather than blind; an unreadable store says why.
fn intercepts(egress: &Egress, who: &BoxIdentity, host: &Host, port: u16) -> Result<bool, String> {
    let (Some(interceptor), Host::Name(name)) = (egress.interceptor(), host) else {
        return Ok(false);
    };
    if egress.reads_http(who, name, port) {
        return Ok(true);
    }
    interceptor.secrets(who).map(|s| s.binds(name, port))
}

async fn connect(egress: Arc<Egress>, who: BoxIdentity, req: Request<Incoming>) -> Response<Body> {
    let Some((host, port)) = authority_of(req.uri(), 0).filter(|(_, p)| *p != 0) else {
        return malformed(&egress, &who, &req, "CONNECT needs host:port");
    };
    let intercept = match intercepts(&egress, &who, &host, port) {
        Ok(intercept) => intercept,
        Err(why) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("paddock: {why}\n")),
    };
    if intercept {
        let addrs = match decide(&egress, &who, &host, port).await {
            Ok(addrs) => addrs,
            Err(response) => return response,
        };
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => {
                    crate::intercept::serve(egress, who, host.as_string(), port, addrs, upgraded)
                        .await
                }
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        return empty();
    }
    let upstream = match decide_and_dial(&egress, &who, &host, port).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "CONNECT upgrade failed");
                return;
            }
        };
        // hyper gives the socket back with whatever it read past the head.
        let (client, early) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (parts.io.into_inner(), parts.read_buf.to_vec()),
            Err(_) => {
                tracing::error!("a CONNECT upgrade is not a TCP stream; dropped");
                return;
            }
        };
        tunnel(egress, who, host, port, client, early, upstream).await;
    });
    empty()
}

/// Checks the ClientHello (for named hosts), then joins the two sockets.
async fn tunnel(
    egress: Arc<Egress>,
    who: BoxIdentity,
    host: Host,
    port: u16,
    mut client: TcpStream,
    mut first: Vec<u8>,
    mut upstream: TcpStream,
) {
    if let Host::Name(name) = &host {
        let verdict = tokio::time::timeout(HELLO_DEADLINE, async {
            loop {
                match sni::parse(&first) {
                    Hello::Incomplete if first.len() < sni::MAX_HELLO => {}
                    other => return other,
                }
                match client.read_buf(&mut first).await {
                    Ok(0) | Err(_) => return Hello::Incomplete,
                    Ok(_) => {}
                }
            }
        })
        .await
        .unwrap_or(Hello::Incomplete);
        let refusal = match verdict {
            Hello::Sni(sni) if &sni == name => None,
            Hello::Sni(sni) => Some(format!("the TLS ClientHello names {sni}, not {name}")),
            Hello::NoSni => Some("the TLS ClientHello names no server".to_owned()),
            Hello::NotTls => Some("the tunnel does not start with a TLS ClientHello".to_owned()),
            Hello::Malformed(why) => Some(format!("the TLS ClientHello is malformed: {why}")),
            // The client left before saying anything: nothing to report.
            Hello::Incomplete if first.is_empty() => return,
            Hello::Incomplete => Some("no complete TLS ClientHello in time".to_owned()),
        };
        if let Some(reason) = refusal {
            let dest = Dest::tcp(name, port, name);
            egress.refuse(
                &who,
                dest,
                crate::audit::AuditDecision::Denied,
                "sni",
                &reason,
            );
            return;
        }
    }
    if !first.is_empty() && upstream.write_all(&first).await.is_err() {
        return;
    }
    if let Err(e) = splice::tunnel(&client, &upstream).await {
        tracing::debug!(error = %e, "tunnel ended with an error");
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        headers.remove(name);
    }
}

async fn forward(egress: Arc<Egress>, who: BoxIdentity, req: Request<Incoming>) -> Response<Body> {
    match req.uri().scheme_str() {
        Some("http") => {}
        Some(_) => {
            return malformed(
                &egress,
                &who,
                &req,
                "use CONNECT for anything but plain http",
            );
        }
        None => {
            return malformed(
                &egress,
                &who,
                &req,
                "this is an egress proxy; send absolute-form requests (http://host/…) or CONNECT",
            );
        }
    }
    let Some((host, port)) = authority_of(req.uri(), 80) else {
        return malformed(
            &egress,
            &who,
            &req,
            "the request names no valid host and port",
        );
    };
    // Plain HTTP is read by anyone on the way: no placeholder may leave
    // in it, to any host.
    let secrets = match egress.interceptor().map(|i| i.secrets(&who)) {
        None => None,
        Some(Ok(secrets)) => Some(secrets).filter(|s| !s.is_empty()),
        Some(Err(why)) => {
            return text(StatusCode::SERVICE_UNAVAILABLE, format!("paddock: {why}\n"));
        }
    };
    let (mut parts, body) = req.into_parts();
    if let Some(secrets) = &secrets
        && let Err(refusal) = crate::intercept::scan_head(&parts, secrets, &Default::default())
    {
        egress.secret_refused(&who, &host.as_string(), port, &refusal);
        return crate::intercept::refused(&refusal, &host.as_string());
    }
    // The connection's decision, then the HTTP rules' on this request,
    // then the dial: nothing is opened for a request that is refused.
    let addrs = match decide(&egress, &who, &host, port).await {
        Ok(addrs) => addrs,
        Err(response) => return response,
    };
    let body: Body = body.map_err(|e| Box::new(e) as BoxError).boxed();
    let body =
        match crate::intercept::gate_request(&egress, &who, &host.as_string(), port, &parts, body)
            .await
        {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
    let unreachable = |e: String| unreachable(&host, port, &e);
    let timeout = Duration::from_secs(egress.config.connect_timeout_secs.max(1));
    let stream = match dial(&addrs, timeout).await {
        Ok(stream) => stream,
        Err(e) => return unreachable(e.to_string()),
    };
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => return unreachable(e.to_string()),
        };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let found = Arc::new(std::sync::OnceLock::new());
    let body: Body = match &secrets {
        Some(secrets) => {
            crate::intercept::ScannedBody::new(body, secrets.clone(), found.clone()).boxed()
        }
        None => body,
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    parts.uri = match path.parse() {
        Ok(uri) => uri,
        Err(_) => {
            egress.record_malformed(&who, &host.as_string(), ("proxy", 6), "bad request path");
            return text(
                StatusCode::BAD_REQUEST,
                "paddock: bad request path\n".into(),
            );
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST)
        && let Ok(value) = HeaderValue::from_str(&authority)
    {
        parts.headers.insert(header::HOST, value);
    }
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed())
        }
        Err(e) => match found.get() {
            Some(refusal) => {
                egress.secret_refused(&who, &host.as_string(), port, refusal);
                crate::intercept::refused(refusal, &host.as_string())
            }
            None => unreachable(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests;
