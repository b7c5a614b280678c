//! Standard Webhooks signatures (standardwebhooks.com): HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`, sent as `webhook-id`, `webhook-timestamp`
//! and `webhook-signature: v1,<base64>`. The timestamp bounds replays; the
//! id stays the same across a delivery's retries so receivers can drop
//! duplicates.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key a configured secret stands for: the bytes after `whsec_`
/// (base64, as Standard Webhooks hands them out), or the text itself.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD
            .decode(encoded)
            .map_err(|_| "a whsec_ secret must be base64 after its prefix".to_owned())?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < 16 {
        return Err("the secret is too short (16 bytes at least)".into());
    }
    Ok(key)
}

/// `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`; `None` only for a
/// key HMAC refuses (it takes keys of any length).
pub fn signature(key: &[u8], id: &str, timestamp_secs: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_example() {
        // The specification's own example.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn short_or_garbled_secrets_are_refused() {
        assert!(key_of("short").is_err());
        assert!(key_of("whsec_!!!").is_err());
        assert_eq!(
            key_of("a-long-enough-secret").unwrap(),
            b"a-long-enough-secret"
        );
    }
}
