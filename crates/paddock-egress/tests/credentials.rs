//! Secrets injected at the gateway, end to end on loopback (the harness
//! in `common/`): the API sees the real value; the client only ever holds
//! the placeholder.

#[allow(dead_code)]
mod common;

use common::*;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use paddock_vault::SecretUpdate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
#[tokio::test]
async fn the_api_sees_the_value_and_the_box_only_the_placeholder_over_http1() {
    let g = gateway().await;
    let ph = g.placeholder("api");
    let (status, body) = g
        .h1(
            "api.test",
            get("api.test", g.port(), "/v1/messages", &[("x-api-key", &ph)]),
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "hello from the api"));
    let seen = g.api.last().unwrap();
    assert_eq!(seen.headers["x-api-key"], REAL_KEY);
    assert_eq!(seen.path, "/v1/messages");
    let used = g.wait_for_decision("injected").await;
    assert_eq!(used[0].reason, "secret api");
    assert_eq!(used[0].domain, "api.test");
    assert!(
        g.store
            .secret("p", "api")
            .unwrap()
            .unwrap()
            .last_used_ms
            .is_some()
    );
}

#[tokio::test]
async fn http2_end_to_end_and_a_rotation_needs_no_reconnect() {
    let g = gateway().await;
    let ph = g.placeholder("api");
    let tls = g.tls("api.test", "api.test", b"h2").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = |ph: &str| {
        Request::builder()
            .uri(format!("https://api.test:{}/v1/models", g.port()))
            .header("x-api-key", ph)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let res = send.send_request(request(&ph)).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = g.api.last().unwrap();
    assert_eq!(seen.headers["x-api-key"], REAL_KEY);
    assert_eq!(seen.version, hyper::Version::HTTP_2, "h2 upstream too");

    g.vault
        .set(
            "p",
            "api",
            SecretUpdate {
                value: Some(zeroize::Zeroizing::new(b"sk-rotated".to_vec())),
                ..SecretUpdate::default()
            },
            2,
        )
        .unwrap();
    let res = send.send_request(request(&ph)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(g.api.last().unwrap().headers["x-api-key"], "sk-rotated");
}

#[tokio::test]
async fn a_placeholder_sent_where_it_is_not_bound_is_refused_and_reported() {
    let g = gateway().await;
    let events = g.egress.hub().subscribe();
    let api = g.placeholder("api");
    // The api secret's placeholder in a header of another bound host.
    let (status, body) = g
        .h1(
            "other.test",
            get("other.test", g.port(), "/", &[("x-leak", &api)]),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("secret api") && !body.contains(&api),
        "{body}"
    );
    assert!(g.api.last().is_none(), "nothing reached the api");
    let misuse = g.wait_for_decision("secret_misuse").await;
    assert_eq!(misuse[0].box_id, "b1");
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        let events = events;
        loop {
            let published = events.next().await.unwrap();
            if published.event.kind == "secret_misuse" {
                return published.event.clone();
            }
        }
    })
    .await
    .expect("a secret_misuse event");
    assert_eq!(event.container, "b1");
    assert!(!event.reason.contains(&api) && !event.reason.contains(REAL_KEY));
}

#[tokio::test]
async fn a_placeholder_in_a_body_is_refused_streaming() {
    let g = gateway().await;
    let api = g.placeholder("api");
    let mut body = vec![b'x'; 256 * 1024];
    body.extend_from_slice(api.as_bytes());
    body.extend_from_slice(&[b'y'; 1024]);
    let req = Request::builder()
        .method("POST")
        .uri("/upload")
        .header("host", format!("api.test:{}", g.port()))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (status, text) = g.h1("api.test", req).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("the body"), "{text}");
    g.wait_for_decision("secret_misuse").await;
    if let Some(seen) = g.api.last() {
        assert!(seen.body.is_err(), "the api never got a complete body");
    }
}

#[tokio::test]
async fn plain_http_carries_no_placeholder_anywhere() {
    let g = gateway().await;
    let api = g.placeholder("api");
    let mut tcp = TcpStream::connect(g.proxy).await.unwrap();
    let port = g.port();
    tcp.write_all(format!("GET http://api.test:{port}/?k={api} HTTP/1.1\r\nHost: api.test:{port}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    g.wait_for_decision("secret_misuse").await;
}

#[tokio::test]
async fn a_bound_host_with_another_sni_or_host_is_refused() {
    let g = gateway().await;
    let Err(err) = g.tls("api.test", "evil.test", b"http/1.1").await else {
        panic!("a ClientHello naming another host is refused");
    };
    assert!(!err.is_empty());
    let denied = g.wait_for_decision("denied").await;
    assert!(
        denied.iter().any(|r| r.reason.contains("names evil.test")),
        "{denied:?}"
    );
    // The right SNI, then a Host naming another site behind the address.
    let ph = g.placeholder("api");
    let (status, _) = g
        .h1(
            "api.test",
            get("evil.test", g.port(), "/", &[("x-api-key", &ph)]),
        )
        .await;
    assert_eq!(status, 421);
    assert!(g.api.last().is_none());
}

#[tokio::test]
async fn an_upstream_with_an_untrusted_certificate_is_refused() {
    // This gateway trusts only the system's roots: the test's CA is unknown.
    let g = gateway_trusting(false).await;
    let ph = g.placeholder("api");
    let (status, body) = g
        .h1(
            "api.test",
            get("api.test", g.port(), "/", &[("x-api-key", &ph)]),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("not trusted"), "{body}");
    assert!(g.api.last().is_none());
    let denied = g.wait_for_decision("denied").await;
    assert!(
        denied.iter().any(|r| r.decided_by == "upstream-tls"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn a_secret_removed_while_a_box_uses_it_is_refused_saying_so() {
    let g = gateway().await;
    let ph = g.placeholder("api");
    let tls = g.tls("api.test", "api.test", b"http/1.1").await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = send
        .send_request(get("api.test", g.port(), "/before", &[("x-api-key", &ph)]))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    g.vault.remove("p", "api").unwrap();
    let res = send
        .send_request(get("api.test", g.port(), "/after", &[("x-api-key", &ph)]))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("secret api was removed"),
        "{body:?}"
    );
    assert_eq!(
        g.api.last().unwrap().path,
        "/before",
        "nothing more reached the API"
    );
}

/// paddock's own listener speaks for a project only with a credential
/// paddock minted, and only while it is held.
#[tokio::test]
async fn paddocks_own_listener_needs_its_credential() {
    use base64::Engine as _;
    let g = gateway().await;
    let own = paddock_egress::own::OwnProxy::start(g.egress.clone(), g.stop.clone())
        .await
        .unwrap();
    let grant = own.grant("p");
    let url: hyper::Uri = grant.proxy_url.parse().unwrap();
    let authority = url.authority().unwrap().as_str().to_owned();
    let (userinfo, addr) = authority.rsplit_once('@').unwrap();
    let connect = |auth: Option<String>| {
        let (addr, port) = (addr.to_owned(), g.port());
        async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let auth = auth
                .map(|a| format!("Proxy-Authorization: Basic {a}\r\n"))
                .unwrap_or_default();
            tcp.write_all(
                format!(
                    "CONNECT tunnel.test:{port} HTTP/1.1\r\nHost: tunnel.test:{port}\r\n{auth}\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            let mut head = vec![0u8; 12];
            tcp.read_exact(&mut head).await.unwrap();
            String::from_utf8_lossy(&head).into_owned()
        }
    };
    let good = base64::engine::general_purpose::STANDARD.encode(userinfo);
    let wrong = base64::engine::general_purpose::STANDARD.encode("paddock:guess");
    assert_eq!(connect(None).await, "HTTP/1.1 407");
    assert_eq!(connect(Some(wrong)).await, "HTTP/1.1 407");
    // tunnel.test is denied to the project: decided as the project's.
    g.egress
        .put_rule(
            paddock_egress::Scope::Project("p".into()),
            paddock_egress::Target::Domain("tunnel.test".into()),
            None,
            paddock_egress::Action::Deny,
            None,
            "test",
        )
        .unwrap();
    assert_eq!(connect(Some(good.clone())).await, "HTTP/1.1 403");
    let denied = g.wait_for_decision("denied").await;
    assert!(
        denied
            .iter()
            .any(|r| r.box_id == paddock_egress::own::OWN_BOX && r.project == "p"),
        "{denied:?}"
    );
    drop(grant);
    assert_eq!(
        connect(Some(good)).await,
        "HTTP/1.1 407",
        "a dropped credential lapses"
    );
}

/// A WebSocket-style upgrade to a bound host: the handshake is injected
/// like any request, then the two ends are joined.
#[tokio::test]
async fn an_upgrade_to_a_bound_host_is_injected_then_relayed() {
    let g = gateway().await;
    let ph = g.placeholder("api");
    let mut tls = g.tls("api.test", "api.test", b"http/1.1").await.unwrap();
    let port = g.port();
    tls.write_all(
        format!(
            "GET /v1/realtime HTTP/1.1\r\nHost: api.test:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-api-key: {ph}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tls.read(&mut byte).await.unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert_eq!(g.api.last().unwrap().headers["x-api-key"], REAL_KEY);
    tls.write_all(b"ping through the tunnel").await.unwrap();
    let mut echoed = vec![0u8; 23];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut echoed))
        .await
        .expect("echoed in time")
        .unwrap();
    assert_eq!(echoed, b"ping through the tunnel");
}
