//! The git hooks the gate installs (through `core.hooksPath`, never by
//! editing a repository): `pre-receive` enforces the push policy and writes
//! backups, `post-receive` records what was accepted. Both append to the
//! audit log. They run as `paddock gate-hook <kind>` inside `git
//! receive-pack`, with the policy and identity in the environment.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::policy::{PushPolicy, RefAction};

pub const ENV_POLICY: &str = "PADDOCK_GATE_POLICY";
pub const ENV_PRINCIPAL: &str = "PADDOCK_GATE_PRINCIPAL";
pub const ENV_PROJECT: &str = "PADDOCK_GATE_PROJECT";
pub const ENV_AUDIT: &str = "PADDOCK_GATE_AUDIT";

const ZERO: &str = "0000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    PreReceive,
    PostReceive,
}

impl HookKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pre-receive" => Some(Self::PreReceive),
            "post-receive" => Some(Self::PostReceive),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::PreReceive => "pre-receive",
            Self::PostReceive => "post-receive",
        }
    }
}

struct Update {
    old: String,
    new: String,
    name: String,
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

fn git(args: &[&str], outside_quarantine: bool) -> bool {
    let mut cmd = Command::new("git");
    cmd.args(args);
    if outside_quarantine {
        // Ref updates are refused inside receive-pack's quarantine; the old
        // tip is already in the main object store, so leave it.
        cmd.env_remove("GIT_QUARANTINE_PATH")
            .env_remove("GIT_OBJECT_DIRECTORY")
            .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES");
    }
    cmd.status().is_ok_and(|s| s.success())
}

fn backup(update: &Update) -> Option<String> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let short = update.name.strip_prefix("refs/").unwrap_or(&update.name);
    let name = format!("refs/paddock/backup/{short}/{millis}");
    git(&["update-ref", &name, &update.old, ZERO], true).then_some(name)
}

pub(crate) fn audit(path: Option<&Path>, record: serde_json::Value) {
    let Some(path) = path else { return };
    let line = format!("{record}\n");
    if let Err(e) = crate::audit_log::append(path, line.as_bytes()) {
        eprintln!("paddock: could not write the audit log: {e}");
    }
}

/// Decides one update: Ok(backup ref, if one was written) or Err(reason).
fn decide(policy: &PushPolicy, u: &Update) -> Result<Option<String>, String> {
    if !policy.allows_ref(&u.name) {
        return Err(format!(
            "{} is not writable from here (allowed: {})",
            u.name,
            policy.allowed_refs.join(", ")
        ));
    }
    let (kind, action) = if is_zero(&u.new) {
        ("deleting", policy.delete)
    } else if !is_zero(&u.old) && !git(&["merge-base", "--is-ancestor", &u.old, &u.new], false) {
        ("force-pushing", policy.force)
    } else {
        return Ok(None);
    };
    match action {
        RefAction::Refuse => Err(format!("{kind} {} is not allowed", u.name)),
        RefAction::Backup => backup(u)
            .map(Some)
            .ok_or_else(|| format!("could not back up {} before {kind} it", u.name)),
    }
}

/// Runs a hook over receive-pack's stdin; returns the exit code.
pub fn run_hook(kind: HookKind, stdin: impl BufRead, stderr: &mut impl Write) -> i32 {
    let env = |k: &str| std::env::var(k).ok();
    let audit_path = env(ENV_AUDIT).map(std::path::PathBuf::from);
    let principal = env(ENV_PRINCIPAL).unwrap_or_else(|| "unknown".into());
    let project = env(ENV_PROJECT).unwrap_or_default();
    // No policy in the environment means an admin push.
    let policy = match env(ENV_POLICY).map(|p| serde_json::from_str::<PushPolicy>(&p)) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            let _ = writeln!(stderr, "paddock: push policy unreadable ({e}); refusing");
            return 1;
        }
    };
    let mut updates = Vec::new();
    for line in stdin.lines() {
        let Ok(line) = line else { return 1 };
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(old), Some(new), Some(name)) => updates.push(Update {
                old: old.into(),
                new: new.into(),
                name: name.into(),
            }),
            _ => {
                let _ = writeln!(stderr, "paddock: unexpected hook input");
                return 1;
            }
        }
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let record = |u: &Update, outcome: &str, extra: serde_json::Value| {
        let mut r = json!({
            "time": now, "project": project, "principal": principal,
            "ref": u.name, "old": u.old, "new": u.new, "outcome": outcome,
        });
        if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(extra.clone());
        }
        r
    };
    match kind {
        HookKind::PostReceive => {
            for u in &updates {
                audit(audit_path.as_deref(), record(u, "accepted", json!({})));
            }
            0
        }
        HookKind::PreReceive => {
            let Some(policy) = policy else { return 0 };
            let mut refused = false;
            for u in &updates {
                match decide(&policy, u) {
                    Ok(Some(backup)) => {
                        let _ = writeln!(stderr, "paddock: saved the old {} as {backup}", u.name);
                        audit(
                            audit_path.as_deref(),
                            record(u, "backed_up", json!({"backup": backup})),
                        );
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        refused = true;
                        let _ = writeln!(stderr, "paddock: refused: {reason}");
                        audit(
                            audit_path.as_deref(),
                            record(u, "refused", json!({"reason": reason})),
                        );
                    }
                }
            }
            i32::from(refused)
        }
    }
}
