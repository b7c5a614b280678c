//! Bad input on connections the gateway reads (the harness in `common/`):
//! request smuggling, folded and oversized headers, a flood of HTTP/2
//! streams, a tunnel that is not TLS. Each is refused or contained, the
//! API never sees a request it was not meant to, and the gateway keeps
//! serving a well-behaved connection afterwards.

#[allow(dead_code)]
mod common;

use common::*;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `raw` on a fresh terminated connection to api.test and reads
/// what comes back until the gateway closes or goes quiet.
async fn raw_exchange(g: &Gateway, raw: &[u8]) -> String {
    let mut tls = g.tls("api.test", "api.test", b"http/1.1").await.unwrap();
    tls.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A request that must work after whatever came before.
async fn still_serving(g: &Gateway) {
    let ph = g.placeholder("api");
    let (status, _) = g
        .h1(
            "api.test",
            get("api.test", g.port(), "/after", &[("x-api-key", &ph)]),
        )
        .await;
    assert_eq!(status, 200, "the gateway keeps serving");
    assert_eq!(g.api.last().unwrap().path, "/after");
}

#[tokio::test]
async fn a_smuggled_request_never_reaches_the_api() {
    let g = gateway().await;
    let port = g.port();
    let raw = format!(
        "POST /first HTTP/1.1\r\nHost: api.test:{port}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.test:{port}\r\n\r\n"
    );
    let answer = raw_exchange(&g, raw.as_bytes()).await;
    let paths: Vec<String> = g
        .api
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert!(
        !paths.iter().any(|p| p == "/smuggled"),
        "{paths:?}; answer: {answer}"
    );
    // Conflicting framing on the way out would be the gateway's own doing:
    // whatever reached the API carries one framing header at most.
    for seen in g.api.seen.lock().unwrap().iter() {
        assert!(
            !(seen.headers.contains_key("content-length")
                && seen.headers.contains_key("transfer-encoding")),
            "{seen:?}"
        );
    }
    still_serving(&g).await;
}

#[tokio::test]
async fn folded_and_oversized_headers_are_refused() {
    let g = gateway().await;
    let port = g.port();
    let folded =
        format!("GET /folded HTTP/1.1\r\nHost: api.test:{port}\r\nX-A: one\r\n two\r\n\r\n");
    let answer = raw_exchange(&g, folded.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let huge = format!(
        "GET /huge HTTP/1.1\r\nHost: api.test:{port}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let answer = raw_exchange(&g, huge.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    let paths: Vec<String> = g
        .api
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert!(paths.is_empty(), "nothing reached the API: {paths:?}");
    still_serving(&g).await;
}

#[tokio::test]
async fn a_flood_of_http2_streams_is_held_to_the_limit_and_not_fatal() {
    let g = gateway().await;
    let ph = g.placeholder("api");
    let tls = g.tls("api.test", "api.test", b"h2").await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut waiting = Vec::new();
    for i in 0..300 {
        let mut send = send.clone();
        let req = Request::builder()
            .uri(format!("https://api.test:{}/flood/{i}", g.port()))
            .header("x-api-key", ph.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        waiting.push(tokio::spawn(async move {
            send.send_request(req).await.map(|r| r.status().as_u16())
        }));
    }
    // Streams past the limit that the client opened before it learnt the
    // limit are refused (REFUSED_STREAM: not processed, safe to retry);
    // the rest complete. Nothing refused reached the API.
    let (mut ok, mut refused) = (0, 0);
    for w in waiting {
        match w.await.unwrap() {
            Ok(200) => ok += 1,
            Err(e) if format!("{e:?}").contains("REFUSED_STREAM") => refused += 1,
            other => panic!("a stream ended otherwise: {other:?}"),
        }
    }
    assert_eq!(ok + refused, 300);
    assert!(ok >= 64, "at least the limit's worth completes: {ok}");
    let reached = g
        .api
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.starts_with("/flood/"))
        .count();
    assert_eq!(reached, ok, "refused streams reached nobody");
    still_serving(&g).await;
}

#[tokio::test]
async fn a_bound_host_that_gets_no_tls_is_refused_on_the_record() {
    let g = gateway().await;
    let port = g.port();
    let mut tcp = TcpStream::connect(g.proxy).await.unwrap();
    tcp.write_all(format!("CONNECT api.test:{port} HTTP/1.1\r\nHost: api.test:{port}\r\n\r\nGET / HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    let denied = g.wait_for_decision("denied").await;
    assert!(denied.iter().any(|r| r.decided_by == "sni"), "{denied:?}");
    assert!(g.api.last().is_none());
    still_serving(&g).await;
}
