//! What a paddock killed outright (SIGKILL, OOM, power) leaves behind:
//! its children die with it (the parent-death tie), but what they started
//! — the `sleep` of a hook's shell, a `receive-pack` under `http-backend`
//! — lives on, reparented to init. Each child carries its instance in its
//! environment, which everything it starts inherits; the next paddock of
//! that instance ends whatever still carries it before starting anything
//! of its own.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The variable every child (and what it starts) carries.
pub const MARKER: &str = "PADDOCK_CHILD_OF";

/// SIGKILLs every process but this one whose environment names
/// `instance` as its paddock; how many. Call once at start, before any
/// child of this process exists. Each process is pinned by a pidfd
/// before its environment is read, so a pid reused in between is never
/// signalled.
pub fn sweep_leftovers(instance: &str) -> usize {
    let needle = format!("{MARKER}={instance}\0").into_bytes();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut ended = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // SAFETY: pidfd_open takes a pid and flags; the fd is owned here.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            continue;
        }
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let carries = environ
            .split_inclusive(|b| *b == 0)
            .any(|var| var == needle.as_slice() || var == &needle[..needle.len() - 1]);
        if !carries {
            continue;
        }
        // SAFETY: a pidfd we own; a null siginfo is allowed.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if sent == 0 {
            tracing::warn!(
                pid,
                instance,
                "ended a process a killed paddock left behind"
            );
            ended += 1;
        }
    }
    ended
}
