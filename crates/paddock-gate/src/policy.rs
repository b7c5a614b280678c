//! Which ref updates a pusher may make.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefAction {
    /// Refuse the update.
    Refuse,
    /// Allow it, saving the old tip under `refs/paddock/backup/…` first.
    Backup,
}

/// Applies to project tokens; the admin token is not limited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushPolicy {
    /// Ref patterns a push may update; `*` matches any run of characters.
    pub allowed_refs: Vec<String>,
    /// Non-fast-forward updates.
    pub force: RefAction,
    /// Ref deletions.
    pub delete: RefAction,
}

impl Default for PushPolicy {
    fn default() -> Self {
        Self {
            allowed_refs: vec!["refs/heads/agent/*".into()],
            force: RefAction::Refuse,
            delete: RefAction::Refuse,
        }
    }
}

impl PushPolicy {
    pub fn allows_ref(&self, name: &str) -> bool {
        self.allowed_refs
            .iter()
            .any(|p| wildcard(p.as_bytes(), name.as_bytes()))
    }
}

/// `*` matches any sequence, everything else itself.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| wildcard(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && wildcard(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_allows_only_agent_branches() {
        let p = PushPolicy::default();
        assert!(p.allows_ref("refs/heads/agent/fix-1"));
        assert!(p.allows_ref("refs/heads/agent/a/b"));
        assert!(!p.allows_ref("refs/heads/main"));
        assert!(!p.allows_ref("refs/heads/agentx"));
        assert!(!p.allows_ref("refs/tags/v1"));
    }
}
