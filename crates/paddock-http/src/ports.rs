//! Published ports: `POST/GET /api/v1/boxes/{id}/ports`, `DELETE
//! …/ports/{port}`, and the proxy at `/ports/{id}/{port}/…` that carries
//! HTTP (and WebSocket upgrades) to what listens on that port in the box.
//!
//! paddock dials the box, never the other way round. The caller's
//! credential is for paddock alone: `Authorization` and paddock's own
//! cookies are taken off before the request goes in.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, json_body as body};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// How long the box's service has to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/boxes/{id}/ports", list)
        .bind("POST /api/v1/boxes/{id}/ports", publish)
        .bind("DELETE /api/v1/boxes/{id}/ports/{port}", unpublish)
        .bind("GET /ports/{id}/{port}", proxy)
        .bind("GET /ports/{id}/{port}/", proxy)
        .bind("GET /ports/{id}/{port}/{*rest}", proxy)
        .bind("POST /ports/{id}/{port}/", proxy)
        .bind("POST /ports/{id}/{port}/{*rest}", proxy)
        .bind("PUT /ports/{id}/{port}/", proxy)
        .bind("PUT /ports/{id}/{port}/{*rest}", proxy)
        .bind("PATCH /ports/{id}/{port}/", proxy)
        .bind("PATCH /ports/{id}/{port}/{*rest}", proxy)
        .bind("DELETE /ports/{id}/{port}/", proxy)
        .bind("DELETE /ports/{id}/{port}/{*rest}", proxy)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    port: u16,
}

#[derive(Serialize)]
struct PublishedPort {
    port: u16,
    /// Where the port is reached, with an API token that may exec in the
    /// box (`Authorization: Bearer …`).
    url: String,
}

#[derive(Serialize)]
struct Ports {
    box_id: String,
    ports: Vec<PublishedPort>,
}

fn ports(s: &AppState, id: &str, ports: Vec<u16>) -> Json<Ports> {
    let base = s.boxes.config().public_url.trim_end_matches('/').to_owned();
    Json(Ports {
        box_id: id.to_owned(),
        ports: ports
            .into_iter()
            .map(|port| PublishedPort {
                port,
                url: format!("{base}/ports/{id}/{port}/"),
            })
            .collect(),
    })
}

async fn list(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Ports>, ApiError> {
    let published = s.boxes.published_ports(&id)?;
    Ok(ports(&s, &id, published))
}

async fn publish(
    State(s): State<AppState>,
    Path(id): Path<String>,
    payload: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Ports>), ApiError> {
    let request = body(payload)?;
    let published = s.boxes.publish_port(&id, request.port)?;
    Ok((StatusCode::CREATED, ports(&s, &id, published)))
}

async fn unpublish(
    State(s): State<AppState>,
    Path((id, port)): Path<(String, u16)>,
) -> Result<Json<Ports>, ApiError> {
    let published = s.boxes.unpublish_port(&id, port)?;
    Ok(ports(&s, &id, published))
}

/// Headers that belong to one connection, or to paddock: never passed on.
fn strip(headers: &mut HeaderMap) {
    for name in [
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::COOKIE,
        header::HOST,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

fn unreachable(id: &str, port: u16, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        ErrorCode::PortUnreachable,
        format!("nothing answers on port {port} in box {id}: {why}"),
    )
}

async fn proxy(State(s): State<AppState>, mut request: Request) -> Result<Response, ApiError> {
    let (id, port, rest) = parse_path(request.uri().path())
        .ok_or_else(|| ApiError::bad_request("expected /ports/{box}/{port}/…"))?;
    let target = s.boxes.port_target(&id, port).await?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target))
        .await
        .map_err(|_| unreachable(&id, port, "no answer within 5 s"))?
        .map_err(|e| unreachable(&id, port, e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&id, port, e))?;
    tokio::spawn(connection.with_upgrades());

    let wants_upgrade = request.headers().contains_key(header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let (mut parts, body) = request.into_parts();
    let upgrade_headers = wants_upgrade.then(|| {
        (
            parts.headers.get(header::CONNECTION).cloned(),
            parts.headers.get(header::UPGRADE).cloned(),
        )
    });
    strip(&mut parts.headers);
    if !wants_upgrade {
        parts.headers.remove(header::CONNECTION);
    }
    parts.uri = format!("/{rest}{query}")
        .parse()
        .map_err(|_| ApiError::bad_request("the path cannot be passed on"))?;
    parts.headers.insert(
        header::HOST,
        HeaderValue::from_str(&format!("localhost:{port}"))
            .map_err(|_| ApiError::bad_request("bad port"))?,
    );
    if let Some((connection, upgrade)) = upgrade_headers {
        parts.headers.extend(
            [(header::CONNECTION, connection), (header::UPGRADE, upgrade)]
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?))),
        );
    }
    let mut response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| unreachable(&id, port, e))?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let box_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(client), Ok(inner)) = (client_upgrade.await, box_upgrade.await) else {
                return;
            };
            let _ =
                tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(inner))
                    .await;
        });
    }
    let (mut parts, body) = response.into_parts();
    // The box's service may not set paddock's cookies or claim its origin.
    parts.headers.remove(header::SET_COOKIE);
    Ok(Response::from_parts(parts, axum::body::Body::new(body)).into_response())
}

/// `(box, port, rest)` of `/ports/{box}/{port}/{rest}`.
fn parse_path(path: &str) -> Option<(String, u16, String)> {
    let mut parts = path.strip_prefix("/ports/")?.splitn(3, '/');
    let id = parts.next()?.to_owned();
    let port = parts.next()?.parse().ok()?;
    let rest = parts.next().unwrap_or("").to_owned();
    Some((id, port, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/ports/b-1/8080/a/b"),
            Some(("b-1".into(), 8080, "a/b".into()))
        );
        assert_eq!(
            parse_path("/ports/b-1/8080"),
            Some(("b-1".into(), 8080, String::new()))
        );
        assert_eq!(parse_path("/ports/b-1/99999/x"), None);
    }

    #[test]
    fn paddocks_credentials_never_go_in() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("paddock_session=x"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        strip(&mut headers);
        assert_eq!(headers.len(), 1);
    }
}
