//! The hub's spoke listener: one mutual-TLS port with two uses.
//! `/spoke/connect` opens a spoke's link (a WebSocket); `/spoke/git/…`
//! is git for the boxes the hub placed on that spoke (see `git`). Which
//! spoke is asking is its client certificate's, checked once per
//! connection before any request is read.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use paddock_gate::{GateBody, text_answer};
use paddock_tls::TlsListener;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use crate::git::GIT_PREFIX;
use crate::link::{HELLO_DEADLINE, SpokeLinks};
use crate::wire::{CONNECT_PATH, MAX_FRAME};

/// A spoke's link once its WebSocket is open.
pub(crate) type Link = WebSocketStream<TokioIo<Upgraded>>;

/// What the certificate check found: the spoke's name and when its
/// certificate runs out, or why it is not let in.
pub(crate) type Admitted = Result<(String, i64), String>;

impl SpokeLinks {
    /// Serves spokes on `listener` until `stop`.
    pub async fn serve(self: Arc<Self>, mut listener: TlsListener, stop: CancellationToken) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            };
            let (links, stop) = (self.clone(), stop.clone());
            tokio::spawn(async move { links.serve_one(stream, peer, stop).await });
        }
        let all: Vec<_> = self.connected.lock().drain().collect();
        for (_, c) in all {
            c.hang_up.cancel();
        }
    }

    /// The spoke's name if its certificate is the one on record for it.
    fn admit(&self, stream: &TlsStream<TcpStream>) -> Admitted {
        let der = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or("no client certificate")?;
        let cert = paddock_tls::peer_cert(der).map_err(|e| e.to_string())?;
        let spokes = self
            .store
            .spokes()
            .map_err(|e| format!("the store cannot be read: {e}"))?;
        let Some(row) = spokes.iter().find(|s| s.name == cert.common_name) else {
            return Err(format!("no spoke named {:?} is enrolled", cert.common_name));
        };
        if row.revoked_at_secs.is_some() {
            return Err(format!("spoke {:?} was revoked", row.name));
        }
        if row.cert_serial != cert.serial_hex {
            return Err(format!(
                "not the current certificate of spoke {:?} (it enrolled again since)",
                row.name
            ));
        }
        Ok((row.name.clone(), cert.not_after_secs))
    }

    async fn serve_one(
        self: Arc<Self>,
        stream: TlsStream<TcpStream>,
        peer: SocketAddr,
        stop: CancellationToken,
    ) {
        let _ = stream.get_ref().0.set_nodelay(true);
        let admitted = Arc::new(self.admit(&stream));
        let service = service_fn(move |request| {
            let (links, admitted, stop) = (self.clone(), admitted.clone(), stop.clone());
            async move { Ok::<_, Infallible>(links.route(request, &admitted, peer, stop).await) }
        });
        let served = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HELLO_DEADLINE)
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
        if let Err(e) = served {
            tracing::debug!(%peer, error = %e, "a spoke connection ended with an error");
        }
    }

    async fn route(
        self: Arc<Self>,
        request: Request<Incoming>,
        admitted: &Admitted,
        peer: SocketAddr,
        stop: CancellationToken,
    ) -> Response<GateBody> {
        let path = request.uri().path();
        if path == CONNECT_PATH {
            return self.open_link(request, admitted.clone(), peer, stop);
        }
        if path.starts_with(GIT_PREFIX) {
            return self.git(request, admitted, peer).await;
        }
        text_answer(StatusCode::NOT_FOUND, "not a spoke path\n")
    }

    /// Answers the WebSocket handshake and runs the link on the upgraded
    /// connection. A spoke that is not let in still gets its WebSocket:
    /// the refusal is said on it, so the spoke stops instead of retrying.
    fn open_link(
        self: Arc<Self>,
        request: Request<Incoming>,
        admitted: Admitted,
        peer: SocketAddr,
        stop: CancellationToken,
    ) -> Response<GateBody> {
        let headers = request.headers();
        let asks_websocket = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let version_13 = headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
        let key = headers.get(header::SEC_WEBSOCKET_KEY);
        let (true, true, Some(key)) = (asks_websocket, version_13, key) else {
            return text_answer(
                StatusCode::BAD_REQUEST,
                "the link is a WebSocket (version 13)\n",
            );
        };
        let accept = derive_accept_key(key.as_bytes());
        tokio::spawn(async move {
            let upgraded = match hyper::upgrade::on(request).await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "a spoke connection ended before its WebSocket opened");
                    return;
                }
            };
            let config = WebSocketConfig::default()
                .max_message_size(Some(MAX_FRAME))
                .max_frame_size(Some(MAX_FRAME));
            let link = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            self.run_link(link, admitted, peer, stop).await;
        });
        let mut switching = text_answer(StatusCode::SWITCHING_PROTOCOLS, "");
        let headers = switching.headers_mut();
        headers.remove(header::CONTENT_TYPE);
        headers.insert(
            header::UPGRADE,
            header::HeaderValue::from_static("websocket"),
        );
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("Upgrade"),
        );
        if let Ok(accept) = header::HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        switching
    }
}
