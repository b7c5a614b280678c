//! What the gateway tests that read requests stand on: a real proxy
//! listener, a real TLS server of the test's own (its own CA, made here
//! with rcgen) standing in for the API, and a client that trusts only the
//! instance CA, speaking HTTP/1.1 and HTTP/2 through CONNECT.

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

pub const REAL_KEY: &str = "sk-real-0123456789";

/// What the stand-in API saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: hyper::Version,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Result<Vec<u8>, String>,
}

pub struct Api {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

/// A CA of the test's own, and a server certificate for `names` from it.
pub fn test_ca(names: &[&str]) -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
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
    pub async fn start(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
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
                    let service = hyper::service::service_fn(
                        move |mut req: Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            async move {
                                // An upgrade: switch, then echo what comes.
                                let upgrade = req.headers().get("upgrade").cloned();
                                let on_upgrade =
                                    upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
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
                                if let (Some(protocol), Some(on_upgrade)) = (upgrade, on_upgrade) {
                                    tokio::spawn(async move {
                                        if let Ok(upgraded) = on_upgrade.await {
                                            let (mut r, mut w) =
                                                tokio::io::split(TokioIo::new(upgraded));
                                            let _ = tokio::io::copy(&mut r, &mut w).await;
                                        }
                                    });
                                    let mut res = hyper::Response::new(Full::new(Bytes::new()));
                                    *res.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                                    res.headers_mut().insert("upgrade", protocol);
                                    res.headers_mut().insert(
                                        "connection",
                                        hyper::header::HeaderValue::from_static("upgrade"),
                                    );
                                    return Ok::<_, std::convert::Infallible>(res);
                                }
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"hello from the api"),
                                )))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }
}

pub fn who() -> BoxIdentity {
    BoxIdentity {
        box_id: "b1".into(),
        project: "p".into(),
    }
}

pub struct Gateway {
    pub egress: Arc<Egress>,
    pub vault: Arc<Vault>,
    pub store: Arc<Store>,
    pub proxy: SocketAddr,
    pub instance_ca: String,
    pub api: Api,
    pub _dir: tempfile::TempDir,
    pub stop: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn gateway() -> Gateway {
    gateway_trusting(true).await
}

pub async fn gateway_trusting(trust_test_ca: bool) -> Gateway {
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
    pub fn placeholder(&self, name: &str) -> String {
        self.vault.placeholder("b1", "p", name)
    }

    pub fn port(&self) -> u16 {
        self.api.addr.port()
    }

    /// CONNECT, then TLS naming `sni`, trusting only the instance CA.
    pub async fn tls(
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
    pub async fn h1(&self, host: &str, req: Request<Full<Bytes>>) -> (u16, String) {
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

    pub fn decisions(&self, decision: &str) -> Vec<paddock_store::AuditRow> {
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
    pub async fn wait_for_decision(&self, decision: &str) -> Vec<paddock_store::AuditRow> {
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

pub fn get(host: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .uri(path)
        .header("host", format!("{host}:{port}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}
