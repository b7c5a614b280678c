//! The hub's own CA for spokes. A spoke proves who it is with a client
//! certificate this CA issued for its name, in trade for a single-use
//! enrolment token; the hub never sees the spoke's private key (the spoke
//! sends a certificate signing request, and only its public key is used —
//! whatever names, usages or constraints it asks for are ignored).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};

use zeroize::Zeroizing;

use crate::TlsError;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
/// The files the CA keeps in its directory (what a backup must carry).
pub const SPOKE_CA_FILES: [&str; 2] = [CA_CERT, CA_KEY];
/// The CA's own life; spokes' certificates are much shorter.
const CA_LIFE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Clocks disagree: a certificate is valid from a little before it was made.
const BACKDATE: Duration = Duration::from_secs(300);

pub struct SpokeCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A client certificate as issued.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    /// Hex, lower case: how the hub's store and its checks name it.
    pub serial_hex: String,
    pub not_after_secs: i64,
}

fn ca_error(path: &Path, source: std::io::Error) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        source,
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ca_error(path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| ca_error(path, e))
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn at(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix_secs(t))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    // Positive, and never shorter than 16 bytes when encoded.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

impl SpokeCa {
    /// The CA kept in `dir` (0700, its key 0600), made on first use.
    pub fn open_or_create(dir: &Path, instance: &str) -> Result<Self, TlsError> {
        if !dir.join(CA_KEY).exists() {
            Self::create(dir, instance)?;
        }
        let (cert_pem, key_pem) = Self::read(dir)?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            TlsError::BadKey { reason, .. } => TlsError::BadKey {
                path: dir.to_owned(),
                reason,
            },
            other => other,
        })
    }

    /// The CA `open_or_create` would use, without writing anything: the
    /// one in `dir` if there is one (its spokes trust it), else a new one
    /// — certificate and key, PEM. What a hub offers as the spoke CA every
    /// hub on one database shares.
    pub fn existing_or_new(
        dir: &Path,
        instance: &str,
    ) -> Result<(String, Zeroizing<String>), TlsError> {
        if dir.join(CA_KEY).exists() {
            Self::read(dir)
        } else {
            Self::generate(instance)
        }
    }

    /// The CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let bad = |what: &str, e: rcgen::Error| TlsError::BadKey {
            path: PathBuf::from("(the spoke CA)"),
            reason: format!("{what}: {e}"),
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| bad("the spoke CA's key", e))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| bad("the spoke CA's certificate", e))?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
        })
    }

    fn read(dir: &Path) -> Result<(String, Zeroizing<String>), TlsError> {
        let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        let key_pem =
            Zeroizing::new(std::fs::read_to_string(&key_path).map_err(|e| ca_error(&key_path, e))?);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(|e| ca_error(&cert_path, e))?;
        Ok((cert_pem, key_pem))
    }

    fn generate(instance: &str) -> Result<(String, Zeroizing<String>), TlsError> {
        let key = KeyPair::generate().map_err(|e| TlsError::Config(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("paddock spoke CA ({instance})"));
        let now = SystemTime::now();
        params.not_before = at(now - BACKDATE);
        params.not_after = at(now + CA_LIFE);
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
    }

    fn create(dir: &Path, instance: &str) -> Result<(), TlsError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ca_error(dir, e))?;
        let (cert_pem, key_pem) = Self::generate(instance)?;
        // The key first: a crash between the two leaves no certificate
        // without its key (open_or_create makes both again only if the
        // key is missing).
        write_private(&dir.join(CA_KEY), &key_pem)?;
        write_private(&dir.join(CA_CERT), &cert_pem)
    }

    /// The CA's certificate, which spokes trust the hub by.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A client certificate for `name`, valid for `valid_for`, carrying
    /// the public key of `csr_pem` and nothing else it asks for.
    pub fn issue_client(
        &self,
        csr_pem: &str,
        name: &str,
        valid_for: Duration,
    ) -> Result<IssuedCert, TlsError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| TlsError::Csr(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = SystemTime::now();
        let not_after = now + valid_for;
        params.not_before = at(now - BACKDATE);
        params.not_after = at(not_after);
        let serial = random_serial();
        let serial_hex = hex(serial.as_ref());
        params.serial_number = Some(serial);
        let request = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let cert = request
            .signed_by(&self.issuer)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            serial_hex,
            not_after_secs: unix_secs(not_after),
        })
    }
}

impl SpokeCa {
    /// The certificate and key the hub's spoke listener presents, for
    /// `names` (DNS names or IP addresses), valid for `valid_for`: spokes
    /// trust it by the CA they got when they enrolled, so the listener
    /// needs no certificate from anyone else. Its key lives only in
    /// memory; each start makes a new one.
    pub fn server_key(
        &self,
        names: &[String],
        valid_for: Duration,
    ) -> Result<std::sync::Arc<rustls::sign::CertifiedKey>, TlsError> {
        let key = KeyPair::generate().map_err(|e| TlsError::Config(e.to_string()))?;
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(|e| TlsError::Config(e.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "paddock hub (spokes)");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        params.not_before = at(now - BACKDATE);
        params.not_after = at(now + valid_for);
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(vec![cert.der().clone()], key_der, &provider)
            .map(std::sync::Arc::new)
            .map_err(|e| TlsError::Config(e.to_string()))
    }

    /// A TLS configuration for the spoke listener: its certificate from
    /// [`SpokeCa::server_key`], and a client certificate of this CA
    /// required of every peer (chain and validity checked in the
    /// handshake; whether that spoke is still enrolled with that
    /// certificate is the caller's to check).
    pub fn listener_config(
        &self,
        names: &[String],
        valid_for: Duration,
    ) -> Result<std::sync::Arc<rustls::ServerConfig>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        roots.add(ca).map_err(|e| TlsError::Config(e.to_string()))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
        let key = self.server_key(names, valid_for)?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(std::sync::Arc::new(Fixed(key)));
        Ok(std::sync::Arc::new(config))
    }
}

/// One certificate, always.
#[derive(Debug)]
struct Fixed(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Who a verified client certificate says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub common_name: String,
    pub serial_hex: String,
    pub not_after_secs: i64,
}

/// Reads the name, serial and end of a client certificate the handshake
/// has already verified.
pub fn peer_cert(der: &[u8]) -> Result<PeerCert, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Config(format!("an unreadable peer certificate: {e}")))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(PeerCert {
        common_name,
        serial_hex: hex(cert.tbs_certificate.raw_serial()),
        not_after_secs: cert.validity().not_after.timestamp(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a spoke sends to enrol: a new key pair (its PEM stays with the
/// spoke) and a signing request for `name`.
pub fn spoke_request(name: &str) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate().map_err(|e| TlsError::Config(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok((key.serialize_pem(), csr))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// What the hub's spoke listener will do: verify a client
    /// certificate against the CA.
    fn verifies(ca: &SpokeCa, cert_pem: &str) -> Result<(), rustls::Error> {
        verifies_at(ca, cert_pem, UnixTime::now())
    }

    fn verifies_at(ca: &SpokeCa, cert_pem: &str, at: UnixTime) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
            .unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        verifier.verify_client_cert(&cert, &[], at).map(|_| ())
    }

    /// Whether the certificate's bytes hold `text` (a name in it).
    fn names(cert_pem: &str, text: &str) -> bool {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        der.windows(text.len()).any(|w| w == text.as_bytes())
    }

    #[test]
    fn the_ca_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("spoke-ca");
        let first = SpokeCa::open_or_create(&ca_dir, "test").unwrap();
        assert_eq!(mode(&ca_dir), 0o700);
        assert_eq!(mode(&ca_dir.join(CA_KEY)), 0o600);
        let again = SpokeCa::open_or_create(&ca_dir, "test").unwrap();
        assert_eq!(first.cert_pem(), again.cert_pem(), "the same CA");
    }

    #[test]
    fn a_spoke_gets_a_client_certificate_for_its_name_whatever_it_asks() {
        let dir = tempfile::tempdir().unwrap();
        let ca = SpokeCa::open_or_create(dir.path(), "test").unwrap();
        // It asks to be someone else; the name is the token's.
        let (_key, csr) = spoke_request("the-hub-itself").unwrap();
        let issued = ca
            .issue_client(&csr, "gpu-1", Duration::from_secs(3600))
            .unwrap();
        assert!(names(&issued.cert_pem, "gpu-1"));
        assert!(!names(&issued.cert_pem, "the-hub-itself"));
        verifies(&ca, &issued.cert_pem).expect("a client certificate of the CA");
        assert_eq!(issued.serial_hex.len(), 32);
        // What the hub reads back from the handshake is what it recorded.
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        let peer = peer_cert(&der).unwrap();
        assert_eq!(
            (peer.common_name.as_str(), peer.serial_hex.as_str()),
            ("gpu-1", issued.serial_hex.as_str())
        );
        assert!((peer.not_after_secs - issued.not_after_secs).abs() <= 1);
        let now = unix_secs(SystemTime::now());
        assert!((issued.not_after_secs - now - 3600).abs() < 5);

        // Once its time is up, the handshake refuses it.
        let later = SystemTime::now() + Duration::from_secs(2 * 3600);
        let expired = verifies_at(
            &ca,
            &issued.cert_pem,
            UnixTime::since_unix_epoch(later.duration_since(SystemTime::UNIX_EPOCH).unwrap()),
        );
        assert!(
            matches!(
                expired,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired
                        | rustls::CertificateError::ExpiredContext { .. }
                ))
            ),
            "{expired:?}"
        );

        // Another CA's certificate is not this CA's.
        let other_dir = tempfile::tempdir().unwrap();
        let other = SpokeCa::open_or_create(other_dir.path(), "other").unwrap();
        let foreign = other
            .issue_client(&csr, "gpu-1", Duration::from_secs(3600))
            .unwrap();
        assert!(verifies(&ca, &foreign.cert_pem).is_err());
    }

    #[test]
    fn what_is_not_a_signing_request_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = SpokeCa::open_or_create(dir.path(), "test").unwrap();
        for junk in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            let e = ca
                .issue_client(junk, "gpu-1", Duration::from_secs(60))
                .unwrap_err();
            assert!(matches!(e, TlsError::Csr(_)), "{e}");
        }
    }
}
