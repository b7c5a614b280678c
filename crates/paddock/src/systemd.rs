//! systemd integration without linking libsystemd: the readiness protocol
//! (`sd_notify`: `READY=1` once every component serves, `STOPPING=1` when
//! shutting down, `WATCHDOG=1` while the server is healthy) over the
//! datagram socket `NOTIFY_SOCKET` names, and socket activation (the API
//! listener passed as descriptor 3 with `LISTEN_FDS`/`LISTEN_PID`). Both
//! are plain protocols of environment variables and descriptors; outside
//! systemd nothing here does anything.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_PASSED_FD: RawFd = 3;

/// Where notifications go, if systemd is listening.
fn notify_address() -> Option<SocketAddr> {
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let bytes = path.as_encoded_bytes();
    match bytes.strip_prefix(b"@") {
        // An abstract socket.
        Some(name) => {
            <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name).ok()
        }
        None => SocketAddr::from_pathname(path).ok(),
    }
}

/// Sends one notification; without `NOTIFY_SOCKET` it does nothing.
/// Failures are logged, never fatal: systemd being gone is not paddock's.
pub fn notify(state: &str) {
    let Some(address) = notify_address() else {
        return;
    };
    if let Err(e) = notify_to(&address, state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

fn notify_to(address: &SocketAddr, state: &str) -> std::io::Result<()> {
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), address)?;
    Ok(())
}

/// `READY=1`, with a status line `systemctl status` shows.
pub fn ready(status: &str) {
    notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS={status}",
        std::process::id()
    ));
}

pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping");
}

/// How often systemd wants `WATCHDOG=1`, if it watches this process:
/// half of `WATCHDOG_USEC`, as `sd_watchdog_enabled` advises.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The listener systemd passed, if this process was socket-activated;
/// the variables are removed so no child inherits them.
pub fn passed_listener() -> anyhow::Result<Option<std::net::TcpListener>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // SAFETY: called from `main` before the runtime or any other thread
    // exists, so nothing reads the environment meanwhile.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !for_us || count == 0 {
        return Ok(None);
    }
    if count > 1 {
        anyhow::bail!(
            "systemd passed {count} sockets; paddock takes one, for its API (ListenStream= once)"
        );
    }
    // SAFETY: systemd hands this descriptor to this process alone (LISTEN_PID
    // is ours) and nothing else in it owns descriptor 3.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(FIRST_PASSED_FD) };
    // It must be a listening TCP socket: anything else is refused clearly.
    let address = listener
        .local_addr()
        .map_err(|e| anyhow::anyhow!("the socket systemd passed is not a TCP socket: {e}"))?;
    listener.set_nonblocking(true)?;
    set_cloexec(FIRST_PASSED_FD)?;
    tracing::info!(%address, "listening on the socket systemd passed");
    Ok(Some(listener))
}

fn set_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_reaches_the_socket_systemd_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        notify_to(&SocketAddr::from_pathname(&path).unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
