//! The hooks directory: links to the paddock binary, which knows from
//! its name which hook it is (no shell in between). Three sets, so a
//! push runs only the hooks it needs: `full` (policy or refusals to
//! audit, plus accepted updates to audit), `pre` (policy, no audit),
//! `none` (admin, no audit).
//!
//! The directory's name is derived from the user and the binary, so
//! every gate process of one binary shares it (an inetd gate is one
//! process per connection) and a killed process leaves nothing new
//! behind. Because the name is predictable, an existing directory is
//! used only if it is ours, private, and its links point at our binary.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hook::HookKind;

const SETS: [(&str, &[HookKind]); 3] = [
    ("full", &[HookKind::PreReceive, HookKind::PostReceive]),
    ("pre", &[HookKind::PreReceive]),
    ("none", &[]),
];

pub struct HooksDir(PathBuf);

fn refuse(what: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("refusing hooks directory {}: {why}", what.display()),
    )
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(refuse(dir, "not a private directory of this user"));
    }
    Ok(())
}

fn link(target: &Path, at: &Path) -> std::io::Result<()> {
    match std::os::unix::fs::symlink(target, at) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if std::fs::read_link(at)? != target {
        return Err(refuse(at, "a hook link points elsewhere"));
    }
    Ok(())
}

impl HooksDir {
    pub fn create(command: &Path, under: Option<&Path>) -> std::io::Result<Self> {
        let parent = under.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let tag = hex::encode(&crate::tokens::hash_token(&command.display().to_string())[..6]);
        // SAFETY: geteuid has no preconditions.
        let dir = parent.join(format!("paddock-gate-hooks-{}-{tag}", unsafe {
            libc::geteuid()
        }));
        private_dir(&dir)?;
        for (set, kinds) in SETS {
            let set = dir.join(set);
            private_dir(&set)?;
            for kind in kinds {
                link(command, &set.join(kind.name()))?;
            }
        }
        private_dir(&dir.join("spare"))?;
        let hooks = Self(dir);
        hooks.sweep_spares();
        Ok(hooks)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The hook set a push needs.
    pub fn set(&self, policy: bool, audit: bool) -> PathBuf {
        self.0.join(match (policy, audit) {
            (_, true) => "full",
            (true, false) => "pre",
            (false, false) => "none",
        })
    }
}

/// Where a spare backend (see `spare`) finds its hooks: a link under
/// `spare/` to one of the sets. It is made before the backend starts,
/// pointing at the set the push gets when its commands are not read, so a
/// link never re-pointed errs on the side of running the hooks; it is
/// re-pointed once the commands are known. receive-pack follows it only
/// when it runs a hook, after the whole request has arrived.
pub struct SpareLink(PathBuf);

static SPARE_LINKS: AtomicU64 = AtomicU64::new(0);

/// Far past any push (and past how long a dropped spare's output is
/// watched for its end).
const STALE_SPARE_LINK: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

fn process_gone(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<libc::pid_t>() else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0
        && unsafe { libc::kill(pid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

impl HooksDir {
    fn spares(&self) -> PathBuf {
        self.0.join("spare")
    }

    /// Removes the links of gate processes that died without removing
    /// their own (the directory is shared by every gate of this binary).
    /// Only old ones: a `receive-pack` orphaned by a gate that died may
    /// still be running through its link.
    fn sweep_spares(&self) {
        let Ok(entries) = std::fs::read_dir(self.spares()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_string_lossy();
            let old = std::fs::symlink_metadata(entry.path())
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_SPARE_LINK);
            if old && pid.split('-').next().is_some_and(process_gone) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    pub fn spare_link(&self, set: &Path) -> std::io::Result<SpareLink> {
        let n = SPARE_LINKS.fetch_add(1, Ordering::Relaxed);
        let path = self.spares().join(format!("{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(set, &path)?;
        Ok(SpareLink(path))
    }
}

impl SpareLink {
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Re-points the link in one step (a new link renamed over it), so
    /// receive-pack never finds it missing.
    pub fn point(&self, set: &Path) -> std::io::Result<()> {
        let mut next = self.0.clone().into_os_string();
        next.push(".next");
        let next = PathBuf::from(next);
        let _ = std::fs::remove_file(&next);
        std::os::unix::fs::symlink(set, &next)?;
        std::fs::rename(&next, &self.0)
    }

    /// Only ever called once nothing can run a hook through the link: a
    /// link merely dropped stays (and is swept when old and its process
    /// is gone), since a missing link would mean no hooks at all.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
