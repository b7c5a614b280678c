//! Secrets injected at the gateway, measured against the same requests
//! through a blind tunnel in the same run: one HTTPS server of the bench's
//! own (its own CA) answers both a bound name (terminated, the secret
//! injected) and an unbound one (spliced), so the difference is what
//! reading and injecting cost. First contact with a host (its leaf
//! minted) is reported beside a new connection to a host already seen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::Server;
use crate::egress_suite::{latency_row, median, rate_row, read_head, rest};
use crate::stats::Samples;

const LARGE_BYTES: usize = 64 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;
const FRESH_HOSTS: usize = 30;

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// The bench's HTTPS server: `/small` answers two bytes, `/large` 64 MiB.
async fn site(names: Vec<String>) -> anyhow::Result<(SocketAddr, String)> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let leaf = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let chunk = Bytes::from(vec![0x5au8; CHUNK]);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, chunk) = (acceptor.clone(), chunk.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let chunk = chunk.clone();
                        async move {
                            let body: http_body_util::combinators::BoxBody<
                                Bytes,
                                std::convert::Infallible,
                            > = if req.uri().path() == "/large" {
                                let frames = futures_util::stream::iter(
                                    (0..LARGE_BYTES / CHUNK)
                                        .map(move |_| Ok(Frame::data(chunk.clone()))),
                                );
                                StreamBody::new(frames).boxed()
                            } else {
                                Full::new(Bytes::from_static(b"ok")).boxed()
                            };
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok((addr, ca_pem))
}

/// CONNECT through the box's proxy, TLS naming `host`, an HTTP/1.1
/// connection on it.
async fn open(
    proxy: SocketAddr,
    host: &str,
    port: u16,
    tls: &tokio_rustls::TlsConnector,
) -> anyhow::Result<Sender> {
    let mut tcp = TcpStream::connect(proxy).await?;
    tcp.set_nodelay(true)?;
    tcp.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").as_bytes(),
    )
    .await?;
    let head = read_head(&mut tcp).await?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "CONNECT {host} refused: {}",
            head.lines().next().unwrap_or("")
        );
    }
    let stream = tls
        .connect(ServerName::try_from(host.to_owned())?, tcp)
        .await?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// One request; the time until its whole body has arrived, and its length.
async fn get(
    send: &mut Sender,
    host: &str,
    path: &str,
    key: &str,
) -> anyhow::Result<(Duration, usize)> {
    let req = hyper::Request::builder()
        .uri(path)
        .header("host", host)
        .header("x-api-key", key)
        .body(Empty::new())?;
    let start = Instant::now();
    send.ready().await?;
    let res = send.send_request(req).await?;
    if res.status() != 200 {
        bail!("{host}{path} answered {}", res.status());
    }
    let mut body = res.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            len += data.len();
        }
    }
    Ok((start.elapsed(), len))
}

pub async fn run(args: &crate::Args) -> anyhow::Result<()> {
    let mut names = vec!["api.bench".to_owned(), "tunnel.bench".to_owned()];
    names.extend((0..FRESH_HOSTS).map(|i| format!("h{i}.fresh.bench")));
    let (site_addr, site_ca) = site(names.clone()).await?;
    let port = site_addr.port();
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("site-ca.pem");
    std::fs::write(&ca_file, &site_ca)?;
    let hosts: String = names
        .iter()
        .map(|n| format!("\"{n}\" = [\"127.0.0.1\"]\n"))
        .collect();
    let server = Server::start(
        args,
        &format!(
            "[egress]\nupstream_ca_file = \"{}\"\n[egress.hosts]\n{hosts}",
            ca_file.display()
        ),
    )?;
    let http = crate::http_client();
    let box_id = "credentials-bench";
    for target in ["api.bench", "tunnel.bench", "*.fresh.bench", "127.0.0.1/32"] {
        rest(
            &http,
            reqwest::Method::POST,
            format!("{}/api/v1/egress/rules", server.url),
            json!({"project": "bench", "target": target, "action": "allow"}),
        )
        .await?;
    }
    rest(
        &http,
        reqwest::Method::PUT,
        format!("{}/api/v1/projects/bench/secrets/key", server.url),
        json!({"value": "sk-bench-secret", "env": "API_KEY",
               "bindings": [{"hosts": [format!("api.bench:{port}"), format!("*.fresh.bench:{port}")], "header": "x-api-key: {secret}"}]}),
    )
    .await?;
    // Placeholders are given when a box is made: the secret comes first.
    rest(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/boxes", server.url),
        json!({"project": "bench", "box_id": box_id}),
    )
    .await?;
    let out = rest(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/boxes/{box_id}/exec", server.url),
        json!({"command": "echo $HTTP_PROXY $API_KEY"}),
    )
    .await?;
    let words: Vec<String> = out["stdout"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let (proxy, placeholder) = match words.as_slice() {
        [proxy, placeholder] => (
            proxy
                .trim_start_matches("http://")
                .parse::<SocketAddr>()
                .context("the box's proxy")?,
            placeholder.clone(),
        ),
        _ => bail!("the box's proxy and placeholder: {out}"),
    };
    let instance_ca = std::fs::read_to_string(server.dir().join("data/tls/egress-ca.pem"))
        .context("the instance CA")?;
    let mut roots = rustls::RootCertStore::empty();
    for pem in [&instance_ca, &site_ca] {
        for cert in
            <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
                pem.as_bytes(),
            )
        {
            roots.add(cert?)?;
        }
    }
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client));

    let requests = (args.iterations * 100).clamp(500, 5000);
    println!(
        "\ncredentials: {requests} requests on one kept-alive connection each way, interleaved"
    );
    let mut injected_conn = open(proxy, "api.bench", port, &tls).await?;
    let mut blind_conn = open(proxy, "tunnel.bench", port, &tls).await?;
    for _ in 0..50 {
        get(&mut injected_conn, "api.bench", "/small", &placeholder).await?;
        get(&mut blind_conn, "tunnel.bench", "/small", "plain").await?;
    }
    let (mut injected, mut blind) = (Samples::default(), Samples::default());
    for _ in 0..requests {
        injected.push(
            get(&mut injected_conn, "api.bench", "/small", &placeholder)
                .await?
                .0,
        );
        blind.push(
            get(&mut blind_conn, "tunnel.bench", "/small", "plain")
                .await?
                .0,
        );
    }
    latency_row("request, terminated + injected", &injected, "");
    latency_row("request, blind tunnel (floor)", &blind, "");
    println!(
        "{:<44} p50 {:>6.3} ms   p99 {:>6.3} ms   {:>8}",
        "  added by reading and injecting",
        injected.percentile_ms(50.0) - blind.percentile_ms(50.0),
        injected.percentile_ms(99.0) - blind.percentile_ms(99.0),
        "<= 1 ms p50"
    );

    let rounds = args.iterations.clamp(3, 7);
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (t, len) = get(&mut injected_conn, "api.bench", "/large", &placeholder).await?;
        ours.push(len as f64 / (1 << 20) as f64 / t.as_secs_f64());
        let (t, len) = get(&mut blind_conn, "tunnel.bench", "/large", "plain").await?;
        floor.push(len as f64 / (1 << 20) as f64 / t.as_secs_f64());
    }
    rate_row(
        "throughput, terminated vs blind tunnel",
        median(&mut ours),
        median(&mut floor),
        "MiB/s",
        ">= 0.8x",
    );

    let (mut first, mut cached) = (Samples::default(), Samples::default());
    for i in 0..FRESH_HOSTS {
        let host = format!("h{i}.fresh.bench");
        let start = Instant::now();
        let mut send = open(proxy, &host, port, &tls).await?;
        get(&mut send, &host, "/small", &placeholder).await?;
        first.push(start.elapsed());
        let start = Instant::now();
        let mut send = open(proxy, "api.bench", port, &tls).await?;
        get(&mut send, "api.bench", "/small", &placeholder).await?;
        cached.push(start.elapsed());
    }
    latency_row(
        "first contact: CONNECT + TLS + request, new host",
        &first,
        "",
    );
    latency_row("  same, a host whose leaf is cached", &cached, "");
    drop(server);
    Ok(())
}
