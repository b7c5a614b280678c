//! Keys the hubs on one database must hold alike (the egress CA: a box
//! made at one hub has to trust what another hub's gateway shows it once
//! that hub has taken over). The private key is sealed under the secrets
//! key, which those hubs share already; the first hub's key is everyone's.

use paddock_store::SharedKeyRow;
use zeroize::Zeroizing;

use crate::{Vault, VaultError};

/// A shared key, opened: its certificate and its private key (PEM).
pub struct SharedKey {
    pub certificate: String,
    pub private_key: Zeroizing<String>,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKey")
            .field("certificate", &self.certificate)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

fn context(name: &str) -> Vec<u8> {
    format!("paddock-shared-key\0{name}").into_bytes()
}

impl Vault {
    /// The key `name` every hub on this store shares: the one stored, or
    /// — the first time — the one `make` gives (a hub moving onto the
    /// database offers the key its boxes already trust), kept unless
    /// another hub's got there first.
    pub fn shared_key<E: std::fmt::Display>(
        &self,
        name: &str,
        now_ms: i64,
        make: impl FnOnce() -> Result<SharedKey, E>,
    ) -> Result<SharedKey, VaultError> {
        if let Some(row) = self.store.shared_key(name)? {
            return self.open_shared(&row);
        }
        let made = make().map_err(|e| VaultError::Invalid(format!("{name}: {e}")))?;
        let (nonce, sealed) = self.key.seal(&context(name), made.private_key.as_bytes());
        let row = SharedKeyRow {
            name: name.to_owned(),
            certificate: made.certificate,
            nonce,
            sealed,
            created_at_ms: now_ms,
        };
        if self.store.add_shared_key(&row)? {
            tracing::info!(
                key = name,
                "this hub's key is now the one every hub on the database uses"
            );
            return self.open_shared(&row);
        }
        let kept = self
            .store
            .shared_key(name)?
            .ok_or_else(|| VaultError::Invalid(format!("{name}: gone while being read")))?;
        self.open_shared(&kept)
    }

    fn open_shared(&self, row: &SharedKeyRow) -> Result<SharedKey, VaultError> {
        let opened = self
            .key
            .open(&context(&row.name), &row.nonce, &row.sealed)
            .ok_or_else(|| {
                VaultError::Key(format!(
                    "the hubs' shared {} does not open with this hub's secrets key: every hub on one database needs the same key",
                    row.name
                ))
            })?;
        let private_key = String::from_utf8(opened.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Invalid(format!("{}: not PEM", row.name)))?;
        Ok(SharedKey {
            certificate: row.certificate.clone(),
            private_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use paddock_store::Store;

    use super::*;
    use crate::key::VaultKey;

    fn made(tag: &str) -> Result<SharedKey, VaultError> {
        Ok(SharedKey {
            certificate: format!("cert {tag}"),
            private_key: Zeroizing::new(format!("-----PRIVATE {tag}-----")),
        })
    }

    #[test]
    fn the_first_hubs_key_is_everyones_and_is_stored_sealed() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let key = [7u8; 32];
        let first = Vault::new(store.clone(), VaultKey::from_bytes(key));
        let second = Vault::new(store.clone(), VaultKey::from_bytes(key));
        let a = first.shared_key("egress-ca", 1, || made("a")).unwrap();
        let b = second
            .shared_key("egress-ca", 2, || -> Result<SharedKey, VaultError> {
                panic!("a key is there: nothing is made")
            })
            .unwrap();
        assert_eq!(a.certificate, "cert a");
        assert_eq!(
            (b.certificate.as_str(), b.private_key.as_str()),
            ("cert a", "-----PRIVATE a-----")
        );
        let row = store.shared_key("egress-ca").unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&row.sealed).contains("PRIVATE"),
            "sealed in the store"
        );
        assert!(!format!("{b:?}").contains("PRIVATE"), "{b:?}");
    }

    #[test]
    fn a_hub_with_another_secrets_key_is_told_so() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let first = Vault::new(store.clone(), VaultKey::from_bytes([1; 32]));
        first.shared_key("egress-ca", 1, || made("a")).unwrap();
        let other = Vault::new(store, VaultKey::from_bytes([2; 32]));
        let said = other
            .shared_key("egress-ca", 2, || made("b"))
            .unwrap_err()
            .to_string();
        assert!(said.contains("same key"), "{said}");
    }
}
