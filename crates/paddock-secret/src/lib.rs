//! Every bearer secret paddock hands out — API tokens, activation links,
//! git tokens, session and CSRF values — is minted, hashed and scrubbed
//! here, so there is one answer to "how random" and "how stored".
//!
//! Secrets are shown once and kept only as SHA-256 hashes. Looking a
//! secret up by its hash means no comparison ever touches the secret
//! itself, so timing reveals nothing about it.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// How many random bytes a secret carries: 256 bits, well past guessing.
pub const SECRET_BYTES: usize = 32;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new secret: 256 random bits, URL-safe base64 (43 characters).
pub fn mint() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(SECRET_BYTES))
}

/// A new secret with a recognisable prefix (`pdk_…`), so a leaked one can
/// be found by secret scanners.
pub fn mint_prefixed(prefix: &str) -> String {
    format!("{prefix}{}", mint())
}

/// A random identifier of `bytes` bytes, hex: names and ids, not secrets.
pub fn random_id(bytes: usize) -> String {
    hex::encode(random_bytes(bytes))
}

/// The SHA-256 digest of a secret, as stored and looked up.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The stored form of a secret: its SHA-256 digest, hex.
pub fn hash(secret: &str) -> String {
    hex::encode(digest(secret))
}

/// Replaces every occurrence of `secret` so the text can be shown or
/// logged.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    text.replace(secret, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_distinct_and_stored_only_hashed() {
        let (a, b) = (mint(), mint());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(hash(&a), hash(&a));
        assert_eq!(hash(&a).len(), 64);
        assert!(!hash(&a).contains(&a));
        assert!(mint_prefixed("pdk_").starts_with("pdk_"));
        assert_eq!(random_id(6).len(), 12);
    }

    #[test]
    fn scrub_hides_every_occurrence() {
        assert_eq!(scrub("x s y s", "s"), "x [redacted] y [redacted]");
        assert_eq!(scrub("abc", ""), "abc");
    }
}
