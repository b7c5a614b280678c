//! Signals to one child and what it started, never to another process.
//!
//! Each child leads a process group of its own, so a signal reaches the
//! shell of a hook and the `sleep` it runs alike, and a terminal's Ctrl-C
//! reaches paddock alone (which then stops its children in order). The
//! leader is signalled through a pidfd opened before anyone could reap
//! it, so a recycled pid is never hit; its group is signalled only while
//! the leader is unreaped, which keeps the group's id from being reused.
//! (The supervisor's watch marks the reap just after tokio makes it: a
//! window of microseconds in which the group's id would have to be
//! handed to a new group leader for a signal to go astray.) Kernels
//! without pidfds (before 5.3) use the pid under the same rule.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// How a child is reached, and whether paddock itself asked it to end
/// (so its death by that signal is a stop, not a crash).
#[derive(Debug)]
pub(crate) struct Signaller {
    pid: u32,
    pidfd: Option<OwnedFd>,
    asked_to_end: AtomicBool,
    reaped: AtomicBool,
}

impl Signaller {
    pub(crate) fn open(pid: u32) -> Self {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or
        // -1; the fd is owned from here on.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) });
        Self {
            pid,
            pidfd,
            asked_to_end: AtomicBool::new(false),
            reaped: AtomicBool::new(false),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal`; a child already gone is not an error.
    pub(crate) fn send(&self, signal: libc::c_int) {
        if matches!(signal, libc::SIGTERM | libc::SIGKILL | libc::SIGINT) {
            self.asked_to_end.store(true, Ordering::SeqCst);
        }
        if self.reaped.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: kill with the id of a group our unreaped child leads.
        unsafe { libc::kill(-(self.pid as libc::pid_t), signal) };
        match &self.pidfd {
            // SAFETY: the fd is a pidfd we own; a null siginfo is allowed.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            },
            // SAFETY: kill with our unreaped child's pid.
            None => unsafe {
                libc::kill(self.pid as libc::pid_t, signal);
            },
        }
    }

    pub(crate) fn asked_to_end(&self) -> bool {
        self.asked_to_end.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_reaped(&self) {
        self.reaped.store(true, Ordering::SeqCst);
    }
}
