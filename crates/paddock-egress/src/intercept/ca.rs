//! The instance's own certificate authority, for the hosts the gateway
//! must read (a secret is bound to them): a leaf per host, minted on first
//! contact and kept in memory. The CA's key is made once, stays in a 0600
//! file in the data directory — or, when hubs share a PostgreSQL, sealed
//! in the store under the secrets key, one CA for them all — and is never
//! sent anywhere; boxes get the certificate alone.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use paddock_vault::SharedKey;

use crate::EgressError;

pub const CA_CERT_FILE: &str = "egress-ca.pem";
pub const CA_KEY_FILE: &str = "egress-ca.key";

/// A leaf is minted again after this long (it is valid for longer).
const LEAF_REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);
const LEAF_VALID_DAYS: i64 = 30;
/// Hosts whose configuration is kept; past it the cache starts again.
const MAX_CACHED_LEAVES: usize = 1024;

pub struct InstanceCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    leaves: Mutex<HashMap<String, (Instant, Arc<ServerConfig>)>>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> EgressError {
    EgressError::Invalid(format!("egress CA {}: {e}", path.display()))
}

fn write_private(path: &Path, text: &str) -> Result<(), EgressError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error(path, e))
}

impl InstanceCa {
    /// The CA in `dir`, made there on first start (`name` goes in its
    /// subject, so a person inspecting a box's certificate sees whose it is).
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Self, EgressError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let (cert_path, key_path): (PathBuf, PathBuf) =
            (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        if !key_path.exists() {
            let fresh = Self::generate(name)?;
            write_private(&key_path, &fresh.private_key)?;
            std::fs::write(&cert_path, &fresh.certificate).map_err(|e| io_error(&cert_path, e))?;
        }
        let files = Self::read(dir)?;
        Self::from_pem(&files.certificate, &files.private_key)
    }

    /// The CA `load_or_create` would use, without writing anything: the
    /// one in `dir` if there is one (its boxes trust it), else a new one.
    /// What a hub offers as the CA every hub on one database shares.
    pub fn existing_or_new(dir: &Path, name: &str) -> Result<SharedKey, EgressError> {
        if dir.join(CA_KEY_FILE).exists() {
            Self::read(dir)
        } else {
            Self::generate(name)
        }
    }

    /// The CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, EgressError> {
        let bad = |e: rcgen::Error| EgressError::Invalid(format!("egress CA: {e}"));
        let key = KeyPair::from_pem(key_pem).map_err(bad)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(bad)?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    fn generate(name: &str) -> Result<SharedKey, EgressError> {
        let bad = |e: rcgen::Error| EgressError::Invalid(format!("a new egress CA: {e}"));
        let key = KeyPair::generate().map_err(bad)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("paddock egress CA ({name})"));
        dn.push(DnType::OrganizationName, "paddock");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key).map_err(bad)?;
        Ok(SharedKey {
            certificate: cert.pem(),
            private_key: zeroize::Zeroizing::new(key.serialize_pem()),
        })
    }

    /// The CA's files in `dir`, its key only if no one else may read it.
    fn read(dir: &Path) -> Result<SharedKey, EgressError> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        let mode = std::fs::metadata(&key_path)
            .map_err(|e| io_error(&key_path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(io_error(
                &key_path,
                format!(
                    "readable by others (mode {:o}); run: chmod 600 {}",
                    mode & 0o777,
                    key_path.display()
                ),
            ));
        }
        let private_key = zeroize::Zeroizing::new(
            std::fs::read_to_string(&key_path).map_err(|e| io_error(&key_path, e))?,
        );
        let certificate =
            std::fs::read_to_string(&cert_path).map_err(|e| io_error(&cert_path, e))?;
        Ok(SharedKey {
            certificate,
            private_key,
        })
    }

    /// The CA certificate, PEM: what boxes are given to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The TLS server configuration presenting `host`'s leaf, minted now
    /// if none is cached (the only costly step of a first contact).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, EgressError> {
        if let Some((minted, config)) = self.leaves.lock().get(host)
            && minted.elapsed() < LEAF_REFRESH
        {
            return Ok(config.clone());
        }
        let config = Arc::new(self.mint(host)?);
        let mut leaves = self.leaves.lock();
        if leaves.len() >= MAX_CACHED_LEAVES {
            leaves.clear();
        }
        leaves.insert(host.to_owned(), (Instant::now(), config.clone()));
        Ok(config)
    }

    fn mint(&self, host: &str) -> Result<ServerConfig, EgressError> {
        let bad = |e: rcgen::Error| EgressError::Invalid(format!("a certificate for {host}: {e}"));
        let key = KeyPair::generate().map_err(bad)?;
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(bad)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(LEAF_VALID_DAYS);
        let cert = params.signed_by(&key, &self.issuer).map_err(bad)?;
        let chain = vec![cert.der().clone()];
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| EgressError::Invalid(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(chain, key_der)
                .map_err(|e| EgressError::Invalid(format!("a certificate for {host}: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Writes what a box trusts: the host's public roots and this CA, PEM.
    /// Those variables replace a box's own trust store, so the instance CA
    /// alone would break every host left as a blind tunnel. Written in
    /// place, so boxes that show the file already see the new one.
    pub fn write_box_bundle(&self, path: &Path) -> Result<(), EgressError> {
        use base64::Engine as _;
        let mut bundle = String::new();
        for cert in rustls_native_certs::load_native_certs().certs {
            let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
            bundle.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                bundle.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
                bundle.push('\n');
            }
            bundle.push_str("-----END CERTIFICATE-----\n");
        }
        bundle.push_str(&self.cert_pem);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        std::fs::write(path, bundle).map_err(|e| io_error(path, e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io_error(path, e))
    }

    /// The CA certificate, DER (tests and the bundle).
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, EgressError> {
        rustls::pki_types::pem::PemObject::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| EgressError::Invalid(format!("egress CA certificate: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_with_a_private_key_and_mints_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let ca = InstanceCa::load_or_create(dir.path(), "test").unwrap();
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = InstanceCa::load_or_create(dir.path(), "test").unwrap();
        assert_eq!(ca.cert_pem(), again.cert_pem(), "loaded, not made again");
        let first = again.server_config("api.example.com").unwrap();
        let cached = again.server_config("api.example.com").unwrap();
        assert!(Arc::ptr_eq(&first, &cached));
        assert_eq!(first.alpn_protocols[0], b"h2");
    }

    #[test]
    fn a_ca_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        InstanceCa::load_or_create(dir.path(), "test").unwrap();
        let key = dir.path().join(CA_KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = InstanceCa::load_or_create(dir.path(), "test")
            .err()
            .unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
