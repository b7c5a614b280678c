//! Keys the hubs on one database share (the egress CA), sealed by the
//! vault; the store never sees a private key in the clear.

use crate::db::{OptionalExtension, params};
use crate::{Result, Store};

/// One shared key as stored: its certificate in the clear, its private
/// key sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKeyRow {
    pub name: String,
    pub certificate: String,
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
    pub created_at_ms: i64,
}

impl Store {
    pub fn shared_key(&self, name: &str) -> Result<Option<SharedKeyRow>> {
        self.conn()
            .query_row(
                "SELECT name, certificate, nonce, sealed, created_at_ms FROM shared_keys WHERE name = ?1",
                params![name],
                |r| {
                    Ok(SharedKeyRow {
                        name: r.get(0)?,
                        certificate: r.get(1)?,
                        nonce: r.get(2)?,
                        sealed: r.get(3)?,
                        created_at_ms: r.get(4)?,
                    })
                },
            )
            .optional()
    }

    /// Keeps `key` unless one of its name is there already (another hub
    /// made it first): whether this one was kept. Never replaces: every
    /// box trusts the first.
    pub fn add_shared_key(&self, key: &SharedKeyRow) -> Result<bool> {
        Ok(self.conn().execute(
            "INSERT INTO shared_keys (name, certificate, nonce, sealed, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            params![
                key.name,
                key.certificate,
                key.nonce,
                key.sealed,
                key.created_at_ms
            ],
        )? == 1)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn key(certificate: &str) -> SharedKeyRow {
        SharedKeyRow {
            name: "egress-ca".into(),
            certificate: certificate.into(),
            nonce: vec![1; 12],
            sealed: vec![2; 48],
            created_at_ms: 5,
        }
    }

    #[test]
    fn the_first_shared_key_stays() {
        the_first_shared_key_stays_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn the_first_shared_key_stays_on(s: &Store) {
        assert_eq!(s.shared_key("egress-ca").unwrap(), None);
        assert!(s.add_shared_key(&key("first")).unwrap());
        assert!(!s.add_shared_key(&key("second")).unwrap());
        assert_eq!(s.shared_key("egress-ca").unwrap(), Some(key("first")));
    }
}
