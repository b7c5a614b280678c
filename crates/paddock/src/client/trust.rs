//! Which servers a client of paddock's API trusts over https:// and
//! wss://: the system's roots, and the certificates in `--ca-file` (or
//! `PADDOCK_CA_FILE`), for a paddock whose certificate a private CA
//! issued.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub const CA_FILE_ENV: &str = "PADDOCK_CA_FILE";

/// The certificates in `ca_file`; a file that holds none is an error, not
/// a silent fall-back to the system's roots alone.
fn extra_roots(ca_file: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("cannot read the CA file {}", ca_file.display()))?;
    let roots: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("the CA file {} is not PEM: {e}", ca_file.display()))?;
    if roots.is_empty() {
        return Err(anyhow!(
            "the CA file {} holds no certificate",
            ca_file.display()
        ));
    }
    Ok(roots)
}

/// An HTTP client for `url`, trusting `ca_file` besides the system.
pub fn http_client(
    mut builder: reqwest::ClientBuilder,
    url: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<reqwest::Client> {
    if url.starts_with("http://") {
        // No TLS to verify: spare every CLI process reading the system's
        // certificate store (a few milliseconds, paid twice by
        // `id=$(paddock box create …); paddock box exec $id …`).
        builder = builder.tls_certs_only([]);
    } else if let Some(ca_file) = ca_file {
        for root in extra_roots(ca_file)? {
            let root = reqwest::Certificate::from_der(&root)
                .with_context(|| format!("a certificate in {}", ca_file.display()))?;
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().context("cannot build the HTTP client")
}

/// What a WebSocket client connects with: `None` (the library's own
/// roots) unless a CA file is given.
pub fn websocket_connector(
    ca_file: Option<&Path>,
) -> anyhow::Result<Option<tokio_tungstenite::Connector>> {
    let Some(ca_file) = ca_file else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    // The system's roots as well: a CA file adds to them, as for HTTP.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for root in extra_roots(ca_file)? {
        roots
            .add(root)
            .with_context(|| format!("a certificate in {}", ca_file.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS for the WebSocket")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
}

/// Opens a WebSocket with `connector` (see [`websocket_connector`]).
pub async fn connect_websocket(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    connector: Option<tokio_tungstenite::Connector>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
        .await
        .map(|(socket, _)| socket)
}

/// The TLS failure behind a request's error, if that is what it was: a
/// certificate this client does not trust reads otherwise as "cannot
/// reach", which sends a person looking in the wrong place.
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // An io::Error's source() skips the error it wraps (often another
        // io::Error wrapping rustls's): go into it instead.
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        next = match wrapped {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_failure_is_found_however_deep_it_is_wrapped() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        let found = tls_failure(&outer).expect("found");
        assert!(found.contains("UnknownIssuer"), "{found}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_failure(&refused), None);
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_an_error_not_the_system_roots() {
        // As main does before any client is built.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let Err(e) = websocket_connector(Some(&empty)) else {
            panic!("a CA file without a certificate was taken");
        };
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let e = http_client(
            reqwest::Client::builder(),
            "https://127.0.0.1:1",
            Some(&dir.path().join("missing.pem")),
        )
        .expect_err("refused");
        assert!(e.to_string().contains("cannot read the CA file"), "{e}");
        // Plain HTTP needs no CA, so a CA file is not even read.
        assert!(
            http_client(
                reqwest::Client::builder(),
                "http://127.0.0.1:1",
                Some(&empty)
            )
            .is_ok()
        );
    }
}
