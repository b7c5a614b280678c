//! The hooks directory: links through which git runs the paddock binary,
//! which knows from its name which hook it is (no shell in between). Three
//! sets, so a push runs only the hooks it needs: `full` (policy or
//! refusals to audit, plus accepted updates to audit), `pre` (policy, no
//! audit), `none` (admin, no audit).
//!
//! The links do not name the binary's path. git skips a hook it cannot
//! run, silently, so a link to a path that a rebuild or an upgrade moved
//! or replaced would let every push through unchecked. Instead each gate
//! process keeps its own program open on a fixed descriptor
//! ([`HOOK_FD`], inherited by `http-backend`, `receive-pack` and the hook
//! they start), and the links point at `/proc/self/fd/<HOOK_FD>`: the hook
//! runs the very program the gate runs, whatever became of its path. And a
//! push is refused unless its hooks are runnable right before it starts
//! ([`HooksDir::runnable`]): the policy never fails open.
//!
//! The directory's name is derived from the user and the program, so
//! every gate process shares it (an inetd gate is one process per
//! connection) and a killed process leaves nothing new behind. Because the
//! name is predictable, an existing directory is used only if it is ours,
//! private, and its links point where ours do.

use parking_lot::Mutex;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hook::HookKind;

const SETS: [(&str, &[HookKind]); 3] = [
    ("full", &[HookKind::PreReceive, HookKind::PostReceive]),
    ("pre", &[HookKind::PreReceive]),
    ("none", &[]),
];

/// The descriptor on which a gate process keeps the hooks' program open.
/// High, so that nothing the process opens before the gate starts takes
/// it (descriptors are handed out lowest first), and fixed, so that the
/// links shared by every gate process name it.
pub const HOOK_FD: i32 = 1015;

/// Where every hook link points.
fn hook_target() -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{HOOK_FD}"))
}

fn pin_error(why: String) -> std::io::Error {
    std::io::Error::other(format!("cannot keep the git hooks' program open: {why}"))
}

/// Opens `command` on [`HOOK_FD`] (without close-on-exec, so git's
/// processes inherit it). Once per process: a second gate in the same
/// process must run the same program.
fn pin(command: &Path) -> std::io::Result<()> {
    static PINNED: Mutex<Option<(u64, u64)>> = Mutex::new(None);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(command)
        .map_err(|e| pin_error(format!("{}: {e}", command.display())))?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.mode() & 0o111 == 0 {
        return Err(pin_error(format!(
            "{} is not an executable file",
            command.display()
        )));
    }
    let id = (meta.dev(), meta.ino());
    let mut pinned = PINNED.lock();
    if let Some(have) = *pinned {
        return if have == id {
            Ok(())
        } else {
            Err(pin_error(
                "this process already runs its git hooks with another program".into(),
            ))
        };
    }
    raise_fd_limit_past(HOOK_FD)?;
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(HOOK_FD, libc::F_GETFD) } != -1 {
        // Inherited (a gate started by a gate): fine if it is the same
        // program, never clobbered otherwise.
        let held = std::fs::metadata(hook_target())?;
        if (held.dev(), held.ino()) != id {
            return Err(pin_error(format!("descriptor {HOOK_FD} is already in use")));
        }
    } else {
        // SAFETY: both descriptors are valid; dup2 leaves the new one
        // without close-on-exec, which is the point.
        if unsafe { libc::dup2(file.as_raw_fd(), HOOK_FD) } == -1 {
            return Err(pin_error(std::io::Error::last_os_error().to_string()));
        }
    }
    *pinned = Some(id);
    Ok(())
}

/// A soft limit on open files at or below `fd` would forbid it.
fn raise_fd_limit_past(fd: i32) -> std::io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let need = fd as libc::rlim_t + 1;
    if limit.rlim_cur >= need {
        return Ok(());
    }
    if limit.rlim_max < need {
        return Err(pin_error(format!(
            "the open-file limit ({}) is below {need}",
            limit.rlim_max
        )));
    }
    limit.rlim_cur = limit.rlim_max.min(65536);
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

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
    /// `command` is the program the hooks run (`/proc/self/exe` for
    /// paddock: the binary this process runs, even when its path now
    /// names another file or none).
    pub fn create(command: &Path, under: Option<&Path>) -> std::io::Result<Self> {
        pin(command)?;
        let parent = under.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let tag = hex::encode(&crate::tokens::hash_token(&command.display().to_string())[..6]);
        // SAFETY: geteuid has no preconditions.
        let dir = parent.join(format!("paddock-gate-hooks-{}-fd-{tag}", unsafe {
            libc::geteuid()
        }));
        private_dir(&dir)?;
        let target = hook_target();
        for (set, kinds) in SETS {
            let set = dir.join(set);
            private_dir(&set)?;
            for kind in kinds {
                link(&target, &set.join(kind.name()))?;
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

    /// Whether git would run every hook of `set` right now, checked the
    /// way git checks (`access(X_OK)` through the link, in a process that
    /// holds the same descriptor). A push whose hooks git would skip must
    /// not start.
    pub fn runnable(&self, set: &Path) -> Result<(), String> {
        let kinds = SETS
            .iter()
            .find(|(name, _)| {
                set.file_name()
                    .is_some_and(|n| n.as_bytes() == name.as_bytes())
            })
            .map(|(_, kinds)| *kinds)
            .ok_or_else(|| format!("{} is not a hook set", set.display()))?;
        let target = hook_target();
        for kind in kinds {
            let hook = set.join(kind.name());
            match std::fs::read_link(&hook) {
                Ok(points) if points == target => {}
                Ok(points) => {
                    return Err(format!(
                        "the {} hook points at {} instead of the gate's program",
                        kind.name(),
                        points.display()
                    ));
                }
                Err(e) => return Err(format!("the {} hook is missing: {e}", kind.name())),
            }
            let path = CString::new(hook.as_os_str().as_bytes())
                .map_err(|_| "a hook path holds a NUL byte".to_owned())?;
            // SAFETY: access reads a NUL-terminated path.
            if unsafe { libc::access(path.as_ptr(), libc::X_OK) } != 0 {
                return Err(format!(
                    "the {} hook cannot be executed: {}",
                    kind.name(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
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
