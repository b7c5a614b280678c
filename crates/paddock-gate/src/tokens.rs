//! Who may reach which repository.
//!
//! Tokens are compared only as SHA-256 digests: a lookup hashes what the
//! client sent and finds that hash in a map, so timing says nothing about
//! any stored token; the admin token's digest is compared in constant time.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// What a valid token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// One project's repository, as `principal` (a box id or a name).
    Project { project: String, principal: String },
    /// Every repository; push policy does not apply.
    Admin,
}

pub trait TokenAuthority: Send + Sync {
    fn grant(&self, token: &str) -> Option<Grant>;
}

pub use paddock_secret::digest as hash_token;

/// Raw tokens in a file shorter than this are ignored: they cannot be the
/// ≥128 random bits a token must be.
const MIN_TOKEN_LEN: usize = 22;

#[derive(Deserialize)]
struct Entry {
    project: String,
}

/// The standalone gate's token file: `{"<token>": {"project": "<id>"}}`,
/// re-read when its modification time or size changes. A key may also be
/// `sha256:<hex>`, so the file need not hold the tokens themselves.
pub struct TokenFile {
    path: PathBuf,
    admin: Option<[u8; 32]>,
    state: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    tokens: HashMap<[u8; 32], String>,
}

impl TokenFile {
    pub fn new(path: PathBuf, admin_token: Option<&str>) -> Self {
        Self {
            path,
            admin: admin_token.filter(|t| !t.is_empty()).map(hash_token),
            state: Mutex::new(Loaded::default()),
        }
    }

    fn reload_if_changed(&self, loaded: &mut Loaded) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp.is_some() && stamp == loaded.stamp {
            return;
        }
        loaded.stamp = stamp;
        // Fail closed: an unreadable or malformed file grants nothing until
        // it is fixed.
        loaded.tokens = match self.read() {
            Ok(tokens) => {
                tracing::info!(path = %self.path.display(), tokens = tokens.len(), "token file loaded");
                tokens
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "token file unusable; refusing every project token");
                HashMap::new()
            }
        };
    }

    fn read(&self) -> Result<HashMap<[u8; 32], String>, String> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| e.to_string())?;
        let raw: HashMap<String, Entry> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut tokens = HashMap::new();
        for (key, entry) in raw {
            let hash = match key.strip_prefix("sha256:") {
                Some(hex_digest) => {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(hex_digest, &mut out)
                        .map_err(|_| "a sha256: key is not 64 hex digits".to_owned())?;
                    out
                }
                None if key.len() < MIN_TOKEN_LEN => {
                    tracing::warn!(project = %entry.project, "ignoring a token shorter than {MIN_TOKEN_LEN} characters");
                    continue;
                }
                None => hash_token(&key),
            };
            tokens.insert(hash, entry.project);
        }
        Ok(tokens)
    }
}

impl TokenAuthority for TokenFile {
    fn grant(&self, token: &str) -> Option<Grant> {
        let hash = hash_token(token);
        if let Some(admin) = &self.admin
            && bool::from(admin.ct_eq(&hash))
        {
            return Some(Grant::Admin);
        }
        let mut loaded = self.state.lock();
        self.reload_if_changed(&mut loaded);
        loaded.tokens.get(&hash).map(|project| Grant::Project {
            project: project.clone(),
            principal: format!("token:{}", hex::encode(&hash[..4])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "tok-aaaaaaaaaaaaaaaaaaaaaaaa";
    const T2: &str = "tok-bbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn file_grants_reload_on_change_and_fail_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(
            &path,
            format!(r#"{{"{T1}": {{"project": "alpha"}}, "short": {{"project": "x"}}}}"#),
        )
        .unwrap();
        let file = TokenFile::new(path.clone(), Some("admin-token-cccccccccccccccc"));
        assert!(
            matches!(file.grant(T1), Some(Grant::Project { project, .. }) if project == "alpha")
        );
        assert_eq!(file.grant("short"), None);
        assert_eq!(file.grant(T2), None);
        assert_eq!(
            file.grant("admin-token-cccccccccccccccc"),
            Some(Grant::Admin)
        );

        let hashed = hex::encode(hash_token(T2));
        std::fs::write(
            &path,
            format!(r#"{{"sha256:{hashed}": {{"project": "beta"}}}}"#),
        )
        .unwrap();
        assert!(
            matches!(file.grant(T2), Some(Grant::Project { project, .. }) if project == "beta")
        );
        assert_eq!(file.grant(T1), None, "removed tokens stop working");

        std::fs::write(&path, "{ not json").unwrap();
        assert_eq!(file.grant(T2), None, "a broken file grants nothing");
        assert_eq!(
            file.grant("admin-token-cccccccccccccccc"),
            Some(Grant::Admin)
        );
    }
}
