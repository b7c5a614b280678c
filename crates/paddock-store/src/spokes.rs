//! Spokes and their enrolment tokens.

use crate::db::{OptionalExtension, params};

use crate::{Result, Store};

/// A spoke as enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokeRow {
    pub name: String,
    pub enrolled_at_secs: i64,
    /// The serial (hex) of the one client certificate accepted for it.
    pub cert_serial: String,
    pub cert_not_after_secs: i64,
    pub revoked_at_secs: Option<i64>,
}

impl Store {
    /// Keeps an enrolment token for `spoke` (by its hash) until it is
    /// used or `expires_at_secs`. Tokens minted earlier for the same
    /// name stay valid until then: each is single use.
    pub fn insert_spoke_token(
        &self,
        token_hash: &str,
        spoke: &str,
        now_secs: i64,
        expires_at_secs: i64,
    ) -> Result<()> {
        let conn = self.conn();
        // Expired tokens go whenever a new one is made: they can never be
        // redeemed, so they are only clutter.
        conn.execute(
            "DELETE FROM spoke_tokens WHERE expires_at_secs <= ?1",
            params![now_secs],
        )?;
        conn.execute(
            "INSERT INTO spoke_tokens (token_hash, spoke, created_at_secs, expires_at_secs) \
             VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, spoke, now_secs, expires_at_secs],
        )?;
        Ok(())
    }

    /// Uses up the token: the spoke name it was minted for, or `None` if
    /// there is no such token or it has expired. Either way the token is
    /// gone, so it never works twice, not even in a race.
    pub fn redeem_spoke_token(&self, token_hash: &str, now_secs: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "DELETE FROM spoke_tokens WHERE token_hash = ?1 RETURNING spoke, expires_at_secs",
                params![token_hash],
                |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
            )
            .optional()?
            .filter(|(_, expires)| *expires > now_secs)
            .map(|(spoke, _)| spoke))
    }

    /// Records the certificate just issued to `name`: the one accepted
    /// from now on (a previous one is retired, a revocation lifted).
    pub fn enroll_spoke(&self, row: &SpokeRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO spokes (name, enrolled_at_secs, cert_serial, cert_not_after_secs, revoked_at_secs) \
             VALUES (?1, ?2, ?3, ?4, NULL) \
             ON CONFLICT(name) DO UPDATE SET enrolled_at_secs = excluded.enrolled_at_secs, \
             cert_serial = excluded.cert_serial, cert_not_after_secs = excluded.cert_not_after_secs, \
             revoked_at_secs = NULL",
            params![
                row.name,
                row.enrolled_at_secs,
                row.cert_serial,
                row.cert_not_after_secs
            ],
        )?;
        Ok(())
    }

    pub fn spokes(&self) -> Result<Vec<SpokeRow>> {
        self.conn().query_map(
            "SELECT name, enrolled_at_secs, cert_serial, cert_not_after_secs, revoked_at_secs \
             FROM spokes ORDER BY name",
            params![],
            |r| {
                Ok(SpokeRow {
                    name: r.get(0)?,
                    enrolled_at_secs: r.get(1)?,
                    cert_serial: r.get(2)?,
                    cert_not_after_secs: r.get(3)?,
                    revoked_at_secs: r.get(4)?,
                })
            },
        )
    }

    /// Revokes the spoke's certificate; false if no such spoke (or it was
    /// revoked already).
    pub fn revoke_spoke(&self, name: &str, now_secs: i64) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE spokes SET revoked_at_secs = ?2 WHERE name = ?1 AND revoked_at_secs IS NULL",
            params![name, now_secs],
        )?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn row(name: &str, serial: &str) -> SpokeRow {
        SpokeRow {
            name: name.into(),
            enrolled_at_secs: 100,
            cert_serial: serial.into(),
            cert_not_after_secs: 10_000,
            revoked_at_secs: None,
        }
    }

    #[test]
    fn a_token_is_redeemed_once_and_never_after_it_expires() {
        a_token_is_redeemed_once_and_never_after_it_expires_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn a_token_is_redeemed_once_and_never_after_it_expires_on(s: &Store) {
        s.insert_spoke_token("h1", "gpu-1", 100, 200).unwrap();
        s.insert_spoke_token("h2", "gpu-1", 100, 200).unwrap();
        assert_eq!(
            s.redeem_spoke_token("h1", 150).unwrap().as_deref(),
            Some("gpu-1")
        );
        assert_eq!(s.redeem_spoke_token("h1", 150).unwrap(), None, "single use");
        assert_eq!(s.redeem_spoke_token("h2", 200).unwrap(), None, "expired");
        assert_eq!(
            s.redeem_spoke_token("h2", 150).unwrap(),
            None,
            "an expired token is gone, not kept for later"
        );
        assert_eq!(s.redeem_spoke_token("nope", 150).unwrap(), None);
    }

    #[test]
    fn enrolling_again_replaces_the_certificate_and_lifts_a_revocation() {
        enrolling_again_replaces_the_certificate_and_lifts_a_revocation_on(
            &Store::open_in_memory().unwrap(),
        );
    }

    pub(crate) fn enrolling_again_replaces_the_certificate_and_lifts_a_revocation_on(s: &Store) {
        s.enroll_spoke(&row("gpu-1", "aa")).unwrap();
        assert!(s.revoke_spoke("gpu-1", 300).unwrap());
        assert!(!s.revoke_spoke("gpu-1", 301).unwrap(), "already revoked");
        assert!(!s.revoke_spoke("nobody", 301).unwrap());
        assert_eq!(s.spokes().unwrap()[0].revoked_at_secs, Some(300));
        s.enroll_spoke(&row("gpu-1", "bb")).unwrap();
        let all = s.spokes().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].cert_serial.as_str(), all[0].revoked_at_secs),
            ("bb", None)
        );
    }
}
