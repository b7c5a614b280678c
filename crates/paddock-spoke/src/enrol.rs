//! Minting enrolment tokens and trading them for certificates.

use std::sync::Arc;
use std::time::Duration;

use paddock_store::clock::now_secs;
use paddock_store::{SpokeRow, Store};
use paddock_tls::SpokeCa;
use serde::Serialize;

use crate::SpokeError;
use crate::link::{LinkStatus, SpokeLinks};

/// Enrolment tokens start with this, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "pdk_spoke_";

/// A spoke's name: what routes boxes to it, what its certificate names.
pub fn check_name(name: &str) -> Result<(), SpokeError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name != "local"
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(SpokeError::BadName(name.to_owned()))
    }
}

/// What an enrolled spoke takes home.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    pub name: String,
    /// Its client certificate (PEM).
    pub certificate: String,
    /// The hub's spoke CA (PEM): what the spoke trusts the hub by.
    pub hub_ca: String,
    pub not_after_secs: i64,
}

/// A spoke as the admin sees it: enrolled, and linked now or not.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SpokeStatus {
    pub name: String,
    pub enrolled_at_secs: i64,
    pub cert_serial: String,
    pub cert_not_after_secs: i64,
    pub revoked: bool,
    pub connected: bool,
    /// While connected: since when, from where, its version and load.
    pub link: Option<LinkStatus>,
}

pub struct Enrolment {
    store: Arc<Store>,
    ca: SpokeCa,
    /// How long a spoke's certificate is valid; it enrols again before.
    cert_life: Duration,
    links: Arc<SpokeLinks>,
}

impl Enrolment {
    pub fn new(
        store: Arc<Store>,
        ca: SpokeCa,
        cert_life: Duration,
        links: Arc<SpokeLinks>,
    ) -> Self {
        Self {
            store,
            ca,
            cert_life,
            links,
        }
    }

    /// The hub's CA for spokes (its listener's TLS comes from it).
    pub fn ca(&self) -> &SpokeCa {
        &self.ca
    }

    pub fn links(&self) -> &Arc<SpokeLinks> {
        &self.links
    }

    /// A single-use token for `name`, valid for `valid_for`; shown once,
    /// only its hash kept.
    pub fn mint(&self, name: &str, valid_for: Duration) -> Result<String, SpokeError> {
        check_name(name)?;
        let token = paddock_secret::mint_prefixed(TOKEN_PREFIX);
        let now = now_secs();
        self.store.insert_spoke_token(
            &paddock_secret::hash(&token),
            name,
            now,
            now + valid_for.as_secs() as i64,
        )?;
        Ok(token)
    }

    /// Trades a token and a signing request for a client certificate.
    /// The token is used up even when the request is not usable: a token
    /// that leaked with a bad request must not be tried again.
    pub fn enrol(&self, token: &str, csr_pem: &str) -> Result<Enrolled, SpokeError> {
        let now = now_secs();
        let name = self
            .store
            .redeem_spoke_token(&paddock_secret::hash(token), now)?
            .ok_or(SpokeError::BadToken)?;
        let issued = self.ca.issue_client(csr_pem, &name, self.cert_life)?;
        self.store.enroll_spoke(&SpokeRow {
            name: name.clone(),
            enrolled_at_secs: now,
            cert_serial: issued.serial_hex,
            cert_not_after_secs: issued.not_after_secs,
            revoked_at_secs: None,
        })?;
        Ok(Enrolled {
            name,
            certificate: issued.cert_pem,
            hub_ca: self.ca.cert_pem().to_owned(),
            not_after_secs: issued.not_after_secs,
        })
    }

    pub fn list(&self) -> Result<Vec<SpokeStatus>, SpokeError> {
        let linked = self.links.status();
        Ok(self
            .store
            .spokes()?
            .into_iter()
            .map(|row| {
                let link = linked.iter().find(|l| l.name == row.name).cloned();
                SpokeStatus {
                    name: row.name,
                    enrolled_at_secs: row.enrolled_at_secs,
                    cert_serial: row.cert_serial,
                    cert_not_after_secs: row.cert_not_after_secs,
                    revoked: row.revoked_at_secs.is_some(),
                    connected: link.is_some(),
                    link,
                }
            })
            .collect())
    }

    /// Refuses the spoke's certificate from now on, and hangs up on it.
    pub fn revoke(&self, name: &str) -> Result<(), SpokeError> {
        if self.store.revoke_spoke(name, now_secs())? {
            self.links.disconnect(name);
            Ok(())
        } else {
            Err(SpokeError::NotFound(name.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolment() -> (tempfile::TempDir, Enrolment) {
        let dir = tempfile::tempdir().unwrap();
        let ca = SpokeCa::open_or_create(&dir.path().join("ca"), "test").unwrap();
        let store = Arc::new(Store::open_in_memory().unwrap());
        let links = SpokeLinks::new(store.clone(), "test");
        (
            dir,
            Enrolment::new(store, ca, Duration::from_secs(3600), links),
        )
    }

    #[test]
    fn names_are_checked_before_anything_is_minted() {
        for bad in ["", "local", "-x", "GPU", "a b", "ä", &"x".repeat(64)] {
            assert!(
                matches!(check_name(bad), Err(SpokeError::BadName(_))),
                "{bad:?}"
            );
        }
        for good in ["gpu-1", "a", "0", &"x".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        let (_dir, e) = enrolment();
        assert!(matches!(
            e.mint("local", Duration::from_secs(60)),
            Err(SpokeError::BadName(_))
        ));
    }

    #[test]
    fn a_token_enrols_once_and_a_bad_request_uses_it_up() {
        let (_dir, e) = enrolment();
        let token = e.mint("gpu-1", Duration::from_secs(600)).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        let (_key, csr) = paddock_tls::spoke_request("gpu-1").unwrap();
        let enrolled = e.enrol(&token, &csr).unwrap();
        assert_eq!(enrolled.name, "gpu-1");
        assert!(enrolled.hub_ca.contains("BEGIN CERTIFICATE"));
        assert!(matches!(e.enrol(&token, &csr), Err(SpokeError::BadToken)));

        let leaked = e.mint("gpu-2", Duration::from_secs(600)).unwrap();
        let bad = e.enrol(&leaked, "not a request").unwrap_err();
        assert!(matches!(bad, SpokeError::Csr(_)), "{bad}");
        assert!(!bad.to_string().contains(&leaked));
        assert!(matches!(e.enrol(&leaked, &csr), Err(SpokeError::BadToken)));
        assert_eq!(e.list().unwrap().len(), 1, "gpu-2 never enrolled");
    }

    #[test]
    fn revoking_marks_the_spoke_and_enrolling_again_issues_a_new_serial() {
        let (_dir, e) = enrolment();
        let (_key, csr) = paddock_tls::spoke_request("gpu-1").unwrap();
        e.enrol(&e.mint("gpu-1", Duration::from_secs(600)).unwrap(), &csr)
            .unwrap();
        let first = e.list().unwrap()[0].clone();
        e.revoke("gpu-1").unwrap();
        assert!(e.list().unwrap()[0].revoked);
        assert!(matches!(e.revoke("nobody"), Err(SpokeError::NotFound(_))));
        e.enrol(&e.mint("gpu-1", Duration::from_secs(600)).unwrap(), &csr)
            .unwrap();
        let second = e.list().unwrap()[0].clone();
        assert!(!second.revoked);
        assert_ne!(first.cert_serial, second.cert_serial);
    }
}
