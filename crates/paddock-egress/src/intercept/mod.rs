//! Reading the requests of the hosts a secret is bound to: the box's TLS
//! is terminated with a leaf of the instance CA (`ca.rs`), each request is
//! checked and given its bound values (`inject.rs`, its body scanned on
//! the way by `body.rs`), and sent on over TLS verified against the
//! host's real certificate (`upstream.rs`). Every other host stays a
//! blind tunnel: only where a binding needs it is anything read.

mod body;
pub mod ca;
mod inject;
mod upstream;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use paddock_vault::{BoxSecrets, Vault};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use rustls::server::Acceptor;
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};

use crate::audit::AuditDecision;
use crate::gateway::{BoxIdentity, Dest, Egress};
pub(crate) use body::{BoxError, ScannedBody};
pub use ca::{CA_CERT_FILE, CA_KEY_FILE, InstanceCa};
pub(crate) use inject::{Refusal, scan_head};
pub use upstream::client_config;
use upstream::{UpstreamConnector, UpstreamError};

pub(crate) type Body = BoxBody<Bytes, BoxError>;

const HELLO_DEADLINE: Duration = Duration::from_secs(10);
const HEAD_DEADLINE: Duration = Duration::from_secs(30);
/// Concurrent HTTP/2 streams one box connection may open; more wait.
const MAX_STREAMS: u32 = 64;
const MAX_HEADER_BYTES: u32 = 64 * 1024;
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);

/// What the gateway needs to read bound hosts: the project's secrets, the
/// CA that vouches for it to the box, and whom it trusts upstream.
pub struct Interceptor {
    vault: Arc<Vault>,
    ca: InstanceCa,
    upstream: Arc<ClientConfig>,
    /// The host file every box sees as its trust bundle.
    box_bundle: Option<std::path::PathBuf>,
}

/// What the gateway gives a new box: `KEY=value` variables and host files
/// shown read-only (host path, path inside).
pub struct BoxEquipment {
    pub env: Vec<String>,
    pub read_only_binds: Vec<(String, String)>,
}

/// Where a box finds its trust bundle, and the variables that name it.
pub const BOX_BUNDLE_PATH: &str = "/etc/paddock/ca-bundle.pem";
pub const BUNDLE_VARIABLES: [&str; 5] = [
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

impl Interceptor {
    pub fn new(vault: Arc<Vault>, ca: InstanceCa, upstream: Arc<ClientConfig>) -> Self {
        Self {
            vault,
            ca,
            upstream,
            box_bundle: None,
        }
    }

    /// Writes the boxes' trust bundle to `path` (on the host) and hands it
    /// to every box from now on.
    pub fn with_box_bundle(mut self, path: &std::path::Path) -> Result<Self, crate::EgressError> {
        self.ca.write_box_bundle(path)?;
        self.box_bundle = Some(path.to_owned());
        Ok(self)
    }

    /// What a box of `project` is given: its placeholders, and the trust
    /// bundle shown read-only with the variables that name it.
    pub fn box_equipment(
        &self,
        box_id: &str,
        project: &str,
    ) -> Result<BoxEquipment, crate::EgressError> {
        let mut env = self
            .vault
            .box_env(box_id, project)
            .map_err(|e| crate::EgressError::Invalid(format!("the project's secrets: {e}")))?;
        let mut binds = Vec::new();
        if let Some(bundle) = &self.box_bundle {
            binds.push((bundle.display().to_string(), BOX_BUNDLE_PATH.to_owned()));
            env.extend(
                BUNDLE_VARIABLES
                    .iter()
                    .map(|v| format!("{v}={BOX_BUNDLE_PATH}")),
            );
        }
        Ok(BoxEquipment {
            env,
            read_only_binds: binds,
        })
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    pub fn ca(&self) -> &InstanceCa {
        &self.ca
    }

    /// The box's secrets now; an unreadable store refuses (fail closed).
    pub(crate) fn secrets(&self, who: &BoxIdentity) -> Result<Arc<BoxSecrets>, String> {
        self.vault
            .for_box(&who.box_id, &who.project)
            .map_err(|e| format!("the project's secrets cannot be read: {e}"))
    }
}

fn answer(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl Egress {
    /// A request refused for a secret: on the record, announced
    /// (`secret_misuse` when it would have carried a secret elsewhere).
    pub(crate) fn secret_refused(
        &self,
        who: &BoxIdentity,
        host: &str,
        port: u16,
        refusal: &Refusal,
    ) {
        let reason = refusal.reason(host);
        let dest = Dest::tcp(host, port, host);
        if refusal.is_misuse() {
            self.record(
                who,
                dest,
                AuditDecision::SecretMisuse,
                "secrets",
                "",
                &reason,
            );
            let mut e =
                self.destination_event(paddock_clearance::EventKind::SecretMisuse, who, dest);
            e.action = "deny".into();
            e.reason = reason;
            self.hub().publish(e);
        } else {
            self.refuse(who, dest, AuditDecision::Denied, "secrets", &reason);
        }
    }

    /// Secrets put on the wire: each use on the record, with its host.
    fn secrets_used(&self, who: &BoxIdentity, host: &str, port: u16, used: &[String]) {
        let Some(interceptor) = self.interceptor() else {
            return;
        };
        let now = crate::gateway::now_ms();
        for name in used {
            let dest = Dest::tcp(host, port, host);
            self.record(
                who,
                dest,
                AuditDecision::Injected,
                "secrets",
                "",
                &format!("secret {name}"),
            );
            interceptor.vault.used(&who.project, name, now);
        }
    }
}

/// The HTTP rules' word on a request the gateway reads (allowed, refused,
/// or held for a person), and its body back whole for sending on.
pub(crate) async fn gate_request(
    egress: &Arc<Egress>,
    who: &BoxIdentity,
    host: &str,
    port: u16,
    parts: &hyper::http::request::Parts,
    body: Body,
) -> Result<Body, Response<Body>> {
    if !egress.reads_http(who, host, port) {
        return Ok(body);
    }
    let Some(path) = crate::http_rules::normalise_path(parts.uri.path()) else {
        let why = "a path that reads more than one way (an encoded / or \\, a NUL)";
        egress.record_malformed(who, host, ("proxy", 6), why);
        return Err(answer(
            StatusCode::BAD_REQUEST,
            format!("paddock: {why}: the rules for {host} cannot judge it\n"),
        ));
    };
    let is_push = parts.method == hyper::Method::POST && path.ends_with("/git-receive-pack");
    let (refs, body) = if is_push && egress.reads_push_refs(who, host, port) {
        match body::push_head(body).await {
            (Some(refs), body) => (refs, body),
            (None, _) => {
                let why = "a push whose commands cannot be read";
                egress.record_malformed(who, host, ("proxy", 6), why);
                return Err(answer(StatusCode::BAD_REQUEST, format!("paddock: {why}\n")));
            }
        }
    } else {
        (Vec::new(), body)
    };
    let view = crate::http_rules::HttpRequestView {
        method: parts.method.as_str().to_owned(),
        path,
        refs,
    };
    match egress.decide_request(who, host, port, &view).await {
        Ok(()) => Ok(body),
        Err(reason) => {
            let mut res = answer(
                StatusCode::FORBIDDEN,
                format!("paddock refused this request to {host}: {reason}.\n"),
            );
            res.headers_mut()
                .insert("x-paddock-decision", HeaderValue::from_static("refused"));
            Err(res)
        }
    }
}

/// A refusal as the box reads it.
pub(crate) fn refused(refusal: &Refusal, host: &str) -> Response<Body> {
    let mut res = answer(
        StatusCode::FORBIDDEN,
        format!(
            "paddock refused this request to {host}: {}.\n",
            refusal.reason(host)
        ),
    );
    res.headers_mut()
        .insert("x-paddock-decision", HeaderValue::from_static("refused"));
    res
}

struct Terminated {
    egress: Arc<Egress>,
    who: BoxIdentity,
    host: String,
    port: u16,
    client: Client<UpstreamConnector, Body>,
    /// HTTP/1.1 only, for upgrades (HTTP/2 has no `Upgrade`).
    client_h1: Client<UpstreamConnector, Body>,
}

/// Terminates the box's TLS for `host` (allowed to `addrs`) and serves its
/// requests until the box hangs up.
pub(crate) async fn serve(
    egress: Arc<Egress>,
    who: BoxIdentity,
    host: String,
    port: u16,
    addrs: Vec<SocketAddr>,
    upgraded: Upgraded,
) {
    let Some(interceptor) = egress.interceptor() else {
        return;
    };
    let deny = |reason: String| {
        egress.refuse(
            &who,
            Dest::tcp(&host, port, &host),
            AuditDecision::Denied,
            "sni",
            &reason,
        );
    };
    let acceptor = LazyConfigAcceptor::new(Acceptor::default(), TokioIo::new(upgraded));
    let start = match tokio::time::timeout(HELLO_DEADLINE, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            return deny(format!(
                "the tunnel does not start with a TLS ClientHello paddock accepts: {e}"
            ));
        }
        Err(_) => return deny("no complete TLS ClientHello in time".into()),
    };
    match start.client_hello().server_name() {
        Some(sni) if sni.eq_ignore_ascii_case(&host) => {}
        Some(sni) => return deny(format!("the TLS ClientHello names {sni}, not {host}")),
        None => return deny("the TLS ClientHello names no server".into()),
    }
    let config = match interceptor.ca.server_config(&host) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(%host, error = %e, "cannot mint a certificate");
            return;
        }
    };
    let tls = match start.into_stream(config).await {
        Ok(tls) => tls,
        Err(e) => {
            return deny(format!(
                "the box did not complete TLS with paddock's certificate for {host} ({e}); does it trust the bundle in SSL_CERT_FILE?"
            ));
        }
    };
    let Ok(name) = ServerName::try_from(host.clone()) else {
        return;
    };
    let connector = UpstreamConnector {
        addrs: addrs.into(),
        name,
        tls: TlsConnector::from(interceptor.upstream.clone()),
        timeout: Duration::from_secs(egress.config.connect_timeout_secs.max(1)),
    };
    let h1_only = {
        let mut config = (*interceptor.upstream).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        UpstreamConnector {
            tls: TlsConnector::from(Arc::new(config)),
            ..connector.clone()
        }
    };
    let pooled = |connector| {
        Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(UPSTREAM_IDLE)
            .build(connector)
    };
    let (client, client_h1) = (pooled(connector), pooled(h1_only));
    let ctx = Arc::new(Terminated {
        egress,
        who,
        host,
        port,
        client,
        client_h1,
    });
    let service = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(ctx.handle(req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_buf_size(crate::proxy::MAX_HEAD);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES)
        .max_pending_accept_reset_streams(Some(32))
        .max_local_error_reset_streams(Some(64));
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(error = %e, "a terminated connection ended with an error");
    }
}

/// Joins an upgraded connection's two ends once both have switched. What
/// flows after the handshake is the protocol's own (frames, not requests):
/// it is relayed, not read — the secret went in the handshake, and a
/// placeholder there is worthless.
fn relay_upgraded(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
            return;
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
}

impl Terminated {
    /// The authority a request names must be the host its TLS was for: a
    /// different `Host` on the same connection would hand the secret to
    /// another site behind the same address.
    fn names_this_host(&self, req: &Request<Incoming>) -> bool {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let Some(authority) = authority else {
            return false;
        };
        // A port, when named, must be the connection's; none names it too
        // (clients leave the default out, and some leave any out).
        let (name, port_ok) = match authority.rsplit_once(':') {
            Some((name, port)) => (name, port.parse::<u16>().ok() == Some(self.port)),
            None => (authority.as_str(), true),
        };
        name.eq_ignore_ascii_case(&self.host) && port_ok
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let egress = &self.egress;
        let Some(interceptor) = egress.interceptor() else {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "paddock: secrets are off\n".into(),
            );
        };
        if !self.names_this_host(&req) {
            egress.record_malformed(
                &self.who,
                &self.host,
                ("proxy", 6),
                "a request naming another host on a terminated connection",
            );
            return answer(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "paddock: this connection is for {}:{}; name that host\n",
                    self.host, self.port
                ),
            );
        }
        let secrets = match interceptor.secrets(&self.who) {
            Ok(s) => s,
            Err(why) => {
                return answer(StatusCode::SERVICE_UNAVAILABLE, format!("paddock: {why}\n"));
            }
        };
        // An HTTP/1.1 upgrade (a WebSocket) is relayed once both ends agree;
        // its handshake is checked and injected like any request.
        let mut req = req;
        let upgrade = (req.version() == Version::HTTP_11)
            .then(|| req.headers().get(header::UPGRADE).cloned())
            .flatten();
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let used = match inject::prepare(&mut parts, &secrets, &self.host, self.port) {
            Ok(used) => used,
            Err(refusal) => {
                egress.secret_refused(&self.who, &self.host, self.port, &refusal);
                return refused(&refusal, &self.host);
            }
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match format!("https://{}:{}{path}", self.host, self.port).parse() {
            Ok(uri) => uri,
            Err(_) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    "paddock: bad request path\n".into(),
                );
            }
        };
        parts.version = Version::HTTP_11;
        crate::proxy::strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = &upgrade {
            parts.headers.insert(header::UPGRADE, protocol.clone());
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        let body = body.map_err(|e| Box::new(e) as BoxError).boxed();
        let body = match gate_request(egress, &self.who, &self.host, self.port, &parts, body).await
        {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let found = Arc::new(OnceLock::new());
        let body: Body = if secrets.is_empty() {
            body
        } else {
            body::ScannedBody::new(body, secrets.clone(), found.clone()).boxed()
        };
        egress.secrets_used(&self.who, &self.host, self.port, &used);
        let client = if upgrade.is_some() {
            &self.client_h1
        } else {
            &self.client
        };
        match client.request(Request::from_parts(parts, body)).await {
            Ok(mut res) => {
                if res.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client) = client_upgrade
                {
                    relay_upgraded(client, hyper::upgrade::on(&mut res));
                    let (parts, body) = res.into_parts();
                    return Response::from_parts(
                        parts,
                        body.map_err(|e| Box::new(e) as BoxError).boxed(),
                    );
                }
                let (mut parts, body) = res.into_parts();
                crate::proxy::strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed())
            }
            Err(e) => {
                if let Some(refusal) = found.get() {
                    egress.secret_refused(&self.who, &self.host, self.port, refusal);
                    return refused(refusal, &self.host);
                }
                self.upstream_failed(&e)
            }
        }
    }

    fn upstream_failed(&self, e: &hyper_util::client::legacy::Error) -> Response<Body> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(UpstreamError::Certificate(why)) = err.downcast_ref::<UpstreamError>() {
                let reason = format!("{}'s certificate is not trusted: {why}", self.host);
                self.egress.refuse(
                    &self.who,
                    Dest::tcp(&self.host, self.port, &self.host),
                    AuditDecision::Denied,
                    "upstream-tls",
                    &reason,
                );
                return answer(
                    StatusCode::BAD_GATEWAY,
                    format!("paddock refused to send this request: {reason}\n"),
                );
            }
            if let Some(upstream) = err.downcast_ref::<UpstreamError>() {
                return answer(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "paddock: cannot reach {}:{}: {upstream}\n",
                        self.host, self.port
                    ),
                );
            }
            source = err.source();
        }
        answer(
            StatusCode::BAD_GATEWAY,
            format!("paddock: {}:{} failed: {e}\n", self.host, self.port),
        )
    }
}
