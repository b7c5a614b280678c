//! The key secrets are sealed with. It never lives in the database: it
//! comes from a systemd credential, the environment, or a 0600 file in the
//! data directory made on first start — so a copy of the store alone opens
//! nothing.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::VaultError;

/// The systemd credential (`LoadCredential=paddock-secrets-key:…`) read
/// from `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL_NAME: &str = "paddock-secrets-key";
/// The environment variable that may carry the key (base64 or hex of 32
/// bytes).
pub const KEY_ENV: &str = "PADDOCK_SECRETS_KEY";
/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secrets.key";

const KEY_BYTES: usize = 32;
pub(crate) const NONCE_BYTES: usize = 12;

/// Where the key came from, for `doctor` and the log (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Credential(PathBuf),
    Environment,
    File(PathBuf),
}

pub struct VaultKey {
    bytes: Zeroizing<[u8; KEY_BYTES]>,
    pub source: KeySource,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn invalid_key(where_: &str, why: &str) -> VaultError {
    VaultError::Key(format!("{where_}: {why}"))
}

/// 32 bytes written as base64 (either alphabet, padded or not) or hex.
fn decode_key(text: &str, where_: &str) -> Result<[u8; KEY_BYTES], VaultError> {
    let text = text.trim();
    let decoded = if text.len() == KEY_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        engines.iter().find_map(|e| e.decode(text).ok())
    };
    let decoded = Zeroizing::new(decoded.ok_or_else(|| {
        invalid_key(
            where_,
            "not base64 or hex (make one with: head -c 32 /dev/urandom | base64)",
        )
    })?);
    decoded
        .as_slice()
        .try_into()
        .map_err(|_| invalid_key(where_, &format!("{} bytes, not {KEY_BYTES}", decoded.len())))
}

impl VaultKey {
    /// The key from, in order: the systemd credential, `PADDOCK_SECRETS_KEY`,
    /// `<data_dir>/secrets.key` (made, 0600, when none exists).
    pub fn load(data_dir: &Path) -> Result<Self, VaultError> {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join(CREDENTIAL_NAME);
            if path.exists() {
                let text = Zeroizing::new(
                    std::fs::read_to_string(&path)
                        .map_err(|e| invalid_key(&path.display().to_string(), &e.to_string()))?,
                );
                return Ok(Self {
                    bytes: Zeroizing::new(decode_key(&text, &path.display().to_string())?),
                    source: KeySource::Credential(path),
                });
            }
        }
        if let Ok(text) = std::env::var(KEY_ENV) {
            let text = Zeroizing::new(text);
            return Ok(Self {
                bytes: Zeroizing::new(decode_key(&text, KEY_ENV)?),
                source: KeySource::Environment,
            });
        }
        Self::from_file(&data_dir.join(KEY_FILE))
    }

    /// The key in `path`, made there first if there is none. A key file
    /// others can read is refused, not used: it would be a secret shared.
    pub fn from_file(path: &Path) -> Result<Self, VaultError> {
        let where_ = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(invalid_key(
                        &where_,
                        &format!(
                            "readable by others (mode {:o}); run: chmod 600 {where_}",
                            meta.permissions().mode() & 0o777
                        ),
                    ));
                }
                let text = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| invalid_key(&where_, &e.to_string()))?,
                );
                Ok(Self {
                    bytes: Zeroizing::new(decode_key(&text, &where_)?),
                    source: KeySource::File(path.to_owned()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(invalid_key(&where_, &e.to_string())),
        }
    }

    fn create(path: &Path) -> Result<Self, VaultError> {
        let where_ = path.display().to_string();
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(bytes.as_mut());
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| invalid_key(&where_, &e.to_string()))?;
        }
        // create_new: two paddocks starting at once never each write a key.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()
            });
        match written {
            Ok(()) => Ok(Self {
                bytes,
                source: KeySource::File(path.to_owned()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
            Err(e) => Err(invalid_key(&where_, &e.to_string())),
        }
    }

    /// A key from raw bytes (tests).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
            source: KeySource::Environment,
        }
    }

    /// A key derived for one purpose, so the sealing key itself is used for
    /// nothing else.
    pub(crate) fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        use hmac::{Mac as _, SimpleHmac};
        let mut mac = SimpleHmac::<sha2::Sha256>::new_from_slice(self.bytes.as_ref())
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    fn aead(&self) -> LessSafeKey {
        let key = self.derive("paddock secret sealing v1");
        LessSafeKey::new(
            UnboundKey::new(&aead::CHACHA20_POLY1305, key.as_ref())
                .expect("a 32-byte ChaCha20-Poly1305 key"),
        )
    }

    /// Seals `value` for the row it belongs to: the nonce and the sealed
    /// bytes.
    pub(crate) fn seal(&self, context: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = value.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .expect("sealing a buffer of any size up to 256 GiB");
        (nonce.to_vec(), sealed)
    }

    /// The value, if `sealed` was sealed with this key for this row.
    pub(crate) fn open(
        &self,
        context: &[u8],
        nonce: &[u8],
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let len = self
            .aead()
            .open_in_place(nonce, Aad::from(context), buffer.as_mut_slice())
            .ok()?
            .len();
        buffer.truncate(len);
        Some(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_made_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let made = VaultKey::from_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = VaultKey::from_file(&path).unwrap();
        assert_eq!(made.bytes.as_ref(), again.bytes.as_ref());
        let (nonce, sealed) = made.seal(b"p\0n", b"value");
        assert_eq!(
            again.open(b"p\0n", &nonce, &sealed).unwrap().as_slice(),
            b"value"
        );
        assert!(
            again.open(b"p\0m", &nonce, &sealed).is_none(),
            "bound to its row"
        );
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        VaultKey::from_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = VaultKey::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn keys_are_read_as_base64_or_hex_of_32_bytes() {
        let raw = [7u8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(decode_key(&b64, "t").unwrap(), raw);
        assert_eq!(decode_key(&hex::encode(raw), "t").unwrap(), raw);
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(
            decode_key(&short, "t")
                .unwrap_err()
                .to_string()
                .contains("16 bytes")
        );
        assert!(decode_key("not a key!", "t").is_err());
    }

    #[test]
    fn the_debug_form_shows_no_key() {
        let key = VaultKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(
            !shown.contains("171") && !shown.contains("ab, ab"),
            "{shown}"
        );
    }
}
