//! Secrets injected at the gateway, end to end on loopback: a real proxy
//! listener, a real TLS server of the test's own (its own CA, made here
//! with rcgen) standing in for the API, and a client that trusts only the
//! instance CA, speaking HTTP/1.1 and HTTP/2 through CONNECT. The server
//! sees the real value; the client only ever holds the placeholder.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use paddock_clearance::{Hub, HubConfig};
use paddock_egress::intercept::{InstanceCa, Interceptor, client_config};
use paddock_egress::policy::Cidr;
use paddock_egress::{Action, BoxIdentity, Egress, EgressConfig, PortRange, Scope, Target, proxy};
use paddock_store::{AuditQuery, Store};
use paddock_vault::{BindingSpec, SecretUpdate, Vault, VaultKey};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const REAL_KEY: &str = "sk-real-0123456789";

/// What the stand-in API saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: hyper::Version,
    path: String,
    headers: HashMap<String, String>,
    body: Result<Vec<u8>, String>,
}

struct Api {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A CA of the test's own, and a server certificate for `names` from it.
fn test_ca(names: &[&str]) -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (
        ca_cert.pem(),
        leaf.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

impl Api {
    async fn start(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes().to_vec())
                                    .map_err(|e| e.to_string());
                                let headers = parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect();
                                log.lock().unwrap().push(Seen {
                                    version: parts.version,
                                    path: parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    headers,
                                    body,
                                });
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"hello from the api"),
                                )))
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }
}

fn who() -> BoxIdentity {
    BoxIdentity {
        box_id: "b1".into(),
        project: "p".into(),
    }
}

struct Gateway {
    egress: Arc<Egress>,
    vault: Arc<Vault>,
    store: Arc<Store>,
    proxy: SocketAddr,
    instance_ca: String,
    api: Api,
    _dir: tempfile::TempDir,
    stop: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn gateway() -> Gateway {
    gateway_trusting(true).await
}

async fn gateway_trusting(trust_test_ca: bool) -> Gateway {
    let (api_ca, cert, key) = test_ca(&["api.test", "other.test", "evil.test"]);
    let api = Api::start(cert, key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("api-ca.pem");
    std::fs::write(&ca_file, api_ca).unwrap();
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let config = EgressConfig {
        hosts: ["api.test", "other.test", "evil.test"]
            .iter()
            .map(|h| (h.to_string(), vec![loopback]))
            .collect(),
        firewall: false,
        ..EgressConfig::default()
    };
    let store = Arc::new(Store::open_in_memory().unwrap());
    let egress = Egress::new(config, store.clone(), Hub::new(HubConfig::default())).unwrap();
    let port = api.addr.port();
    for target in [
        Target::Domain("api.test".into()),
        Target::Domain("other.test".into()),
        Target::Domain("evil.test".into()),
        Target::Cidr(Cidr::host(loopback)),
    ] {
        egress
            .put_rule(
                Scope::Project("p".into()),
                target,
                Some(PortRange { lo: port, hi: port }),
                Action::Allow,
                None,
                "test",
            )
            .unwrap();
    }
    let vault = Arc::new(Vault::new(store.clone(), VaultKey::from_bytes([5; 32])));
    let bind =
        |spec: &str| BindingSpec::parse_cli(&spec.replace("PORT", &port.to_string())).unwrap();
    vault
        .set(
            "p",
            "api",
            SecretUpdate {
                value: Some(zeroize::Zeroizing::new(REAL_KEY.as_bytes().to_vec())),
                env: Some(Some("API_KEY".into())),
                bindings: Some(vec![bind("api.test:PORT=header:x-api-key: {secret}")]),
            },
            1,
        )
        .unwrap();
    vault
        .set(
            "p",
            "other",
            SecretUpdate {
                value: Some(zeroize::Zeroizing::new(b"other-value".to_vec())),
                env: None,
                bindings: Some(vec![bind(
                    "other.test:PORT=header:authorization: Bearer {secret}",
                )]),
            },
            1,
        )
        .unwrap();
    let ca = InstanceCa::load_or_create(&dir.path().join("tls"), "test").unwrap();
    let instance_ca = ca.cert_pem().to_owned();
    let upstream = client_config(trust_test_ca.then_some(ca_file.as_path())).unwrap();
    egress.intercept_with(Arc::new(Interceptor::new(vault.clone(), ca, upstream)));
    egress.bind_network("net-1", who());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(proxy::serve(
        egress.clone(),
        listener,
        "net-1".into(),
        stop.clone(),
    ));
    Gateway {
        egress,
        vault,
        store,
        proxy,
        instance_ca,
        api,
        _dir: dir,
        stop,
    }
}

impl Gateway {
    fn placeholder(&self, name: &str) -> String {
        self.vault.placeholder("b1", "p", name)
    }

    fn port(&self) -> u16 {
        self.api.addr.port()
    }

    /// CONNECT, then TLS naming `sni`, trusting only the instance CA.
    async fn tls(
        &self,
        host: &str,
        sni: &str,
        alpn: &[u8],
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let mut tcp = TcpStream::connect(self.proxy).await.unwrap();
        let port = self.port();
        tcp.write_all(
            format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            if tcp.read(&mut byte).await.unwrap() == 0 {
                return Err("the proxy hung up".into());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head);
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
                self.instance_ca.as_bytes(),
            )
        {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())
    }

    /// One HTTP/1.1 request over a fresh terminated connection.
    async fn h1(&self, host: &str, req: Request<Full<Bytes>>) -> (u16, String) {
        let tls = self.tls(host, host, b"http/1.1").await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let res = send.send_request(req).await.unwrap();
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn decisions(&self, decision: &str) -> Vec<paddock_store::AuditRow> {
        let rows = self
            .store
            .egress_audit(&AuditQuery {
                limit: 1000,
                ..AuditQuery::default()
            })
            .unwrap();
        rows.into_iter()
            .filter(|r| r.decision == decision)
            .collect()
    }

    /// The decision log is written by its own thread, in batches.
    async fn wait_for_decision(&self, decision: &str) -> Vec<paddock_store::AuditRow> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = self.decisions(decision);
            if !rows.is_empty() {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "no {decision} in the decision log"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn get(host: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .uri(path)
        .header("host", format!("{host}:{port}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

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
