//! Real certificates (rcgen), real files, real TLS handshakes on loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{CertFiles, ReloadingCert, TlsError, TlsListener};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for `name` written as `cert.pem`/`key.pem` under `dir`;
/// returns its DER.
fn leaf(ca: &Ca, name: &str, dir: &Path) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    write_atomically(&dir.join("cert.pem"), cert.pem().as_bytes());
    write_atomically(&dir.join("key.pem"), key.serialize_pem().as_bytes());
    cert.der().clone()
}

/// As renewal tools do: a new file renamed into place.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn files(dir: &Path) -> CertFiles {
    CertFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// A server answering each TLS connection with one line.
async fn serve(cert: &Arc<ReloadingCert>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = cert.server_config(&[b"http/1.1"]).unwrap();
    let mut tls = TlsListener::new(listener, config).unwrap();
    let addr = axum::serve::Listener::local_addr(&tls).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = axum::serve::Listener::accept(&mut tls).await;
            tokio::spawn(async move {
                let _ = stream.write_all(b"hello\n").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// Connects as a client trusting `ca`; the certificate the server showed
/// and its line.
async fn fetch(addr: std::net::SocketAddr, ca: &Ca) -> (CertificateDer<'static>, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(ServerName::try_from("paddock.test").unwrap(), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    let shown = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let mut line = String::new();
    stream.read_to_string(&mut line).await.unwrap();
    (shown, line)
}

#[test]
fn files_that_cannot_serve_are_refused_with_their_reason() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let missing = files(dir.path()).load().unwrap_err();
    assert!(matches!(missing, TlsError::Read { .. }), "{missing}");

    leaf(&ca, "paddock.test", dir.path());
    let good = files(dir.path());
    assert!(good.load().is_ok());

    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let no_cert = CertFiles {
        cert: dir.path().join("empty.pem"),
        ..good.clone()
    };
    assert!(matches!(
        no_cert.load().unwrap_err(),
        TlsError::NoCertificate { .. }
    ));
    let bad_key = CertFiles {
        key: dir.path().join("empty.pem"),
        ..good.clone()
    };
    let e = bad_key.load().unwrap_err();
    assert!(matches!(e, TlsError::BadKey { .. }), "{e}");

    let other = tempfile::tempdir().unwrap();
    leaf(&ca, "other.test", other.path());
    let mismatched = CertFiles {
        key: other.path().join("key.pem"),
        ..good
    };
    let e = mismatched.load().unwrap_err();
    assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
    let key_pem = std::fs::read_to_string(other.path().join("key.pem")).unwrap();
    let body = key_pem.lines().nth(1).unwrap();
    assert!(!e.to_string().contains(body), "no key material in an error");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_and_a_broken_renewal_changes_nothing() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    let first = leaf(&ca, "paddock.test", dir.path());
    let cert = ReloadingCert::open(files(dir.path())).unwrap();
    let addr = serve(&cert).await;
    assert_eq!(fetch(addr, &ca).await, (first.clone(), "hello\n".into()));
    assert!(!cert.check().unwrap(), "unchanged files are not read again");

    let second = leaf(&ca, "paddock.test", dir.path());
    assert!(cert.check().unwrap());
    assert_eq!(fetch(addr, &ca).await.0, second);

    // Half a renewal: a key that is not the certificate's.
    let elsewhere = tempfile::tempdir().unwrap();
    leaf(&ca, "paddock.test", elsewhere.path());
    std::fs::copy(elsewhere.path().join("key.pem"), dir.path().join("key.pem")).unwrap();
    assert!(matches!(cert.check(), Err(TlsError::Mismatch { .. })));
    assert_eq!(fetch(addr, &ca).await.0, second, "the previous one stays");
    // Finished: taken up.
    std::fs::copy(
        elsewhere.path().join("cert.pem"),
        dir.path().join("cert.pem"),
    )
    .unwrap();
    assert!(cert.check().unwrap());
    assert_ne!(fetch(addr, &ca).await.0, second);
}

#[tokio::test]
async fn the_watcher_takes_up_a_renewal_when_it_looks_or_is_nudged() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    leaf(&ca, "paddock.test", dir.path());
    let cert = ReloadingCert::open(files(dir.path())).unwrap();
    let addr = serve(&cert).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let nudge = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(
        cert.clone()
            .watch(Duration::from_secs(3600), nudge.clone(), stop.clone()),
    );
    // Its hour-long look never comes in this test: the nudge does it.
    let renewed = leaf(&ca, "paddock.test", dir.path());
    nudge.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fetch(addr, &ca).await.0 != renewed {
        assert!(tokio::time::Instant::now() < deadline, "never taken up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
}

#[tokio::test]
async fn a_client_that_never_says_hello_holds_up_nobody() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    leaf(&ca, "paddock.test", dir.path());
    let cert = ReloadingCert::open(files(dir.path())).unwrap();
    let addr = serve(&cert).await;
    let _silent: Vec<TcpStream> = futures_silent(addr, 8).await;
    let served = tokio::time::timeout(Duration::from_secs(5), fetch(addr, &ca)).await;
    assert_eq!(served.expect("served beside silent clients").1, "hello\n");
    // Not TLS at all: refused, and the next client is served.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut rest)).await;
    assert!(!rest.starts_with(b"hello"), "plain HTTP got no answer");
    assert_eq!(fetch(addr, &ca).await.1, "hello\n");
}

async fn futures_silent(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(TcpStream::connect(addr).await.unwrap());
    }
    all
}
