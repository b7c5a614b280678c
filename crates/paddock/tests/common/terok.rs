//! terok's own clearance clients (PyPI `terok-clearance`, in the
//! `.venv-terok` scripts/ensure-env makes), run unchanged: they find
//! paddock's hub the way they find terok's, by their socket glob under
//! `XDG_RUNTIME_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Paddock;
use super::driven::Driven;

/// The directory with terok's console scripts.
pub fn terok_bin() -> PathBuf {
    let dir = std::env::var_os("PADDOCK_TEST_TEROK")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-terok"));
    let bin = dir.join("bin");
    assert!(
        bin.join("terok-clearance-hub").exists(),
        "no terok-clearance: run scripts/test (scripts/ensure-env makes .venv-terok) or set PADDOCK_TEST_TEROK"
    );
    bin
}

/// terok's clients, started as driven processes.
pub struct TerokClient;

impl TerokClient {
    /// `terok-clearance-hub <args>`, with paddock's runtime directory as
    /// its own.
    pub fn start(args: &[&str], p: &Paddock) -> Driven {
        let mut cmd = Command::new(terok_bin().join("terok-clearance-hub"));
        cmd.args(args);
        Driven::run(cmd, p)
    }

    /// terok's desktop pop-ups (its DbusNotifier fed by its
    /// MultiSocketSubscriber, as terok composes them) in a desktop session
    /// of their own: a private session bus (dbus-run-session), Xvfb, and
    /// Debian's dunst as the notification server. The first line is
    /// `bus=<address>`, for `dunstctl`.
    pub fn desktop(p: &Paddock) -> Driven {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut cmd = Command::new("dbus-run-session");
        cmd.arg("--")
            .arg(fixtures.join("desktop_session.sh"))
            .arg(terok_bin().join("python3"))
            .arg(fixtures.join("terok_desktop.py"))
            .env("DESKTOP_WORK", p.dir.path().join("desktop"));
        Driven::run(cmd, p)
    }
}

/// `dunstctl <args>` on a desktop session's bus; its stdout.
pub fn dunstctl(bus: &str, args: &[&str]) -> String {
    let out = Command::new("dunstctl")
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .expect("dunstctl runs");
    assert!(
        out.status.success(),
        "dunstctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
