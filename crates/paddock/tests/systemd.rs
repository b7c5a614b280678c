//! paddock under systemd's protocols, with systemd's own tools where they
//! run without systemd as PID 1: the shipped units pass
//! `systemd-analyze verify`; readiness, the watchdog and stopping reach a
//! notify socket the test binds (systemd's side of `sd_notify` is a
//! datagram socket, nothing more); `systemd-socket-activate` starts
//! paddock on the first connection with the listener handed over, and
//! `--exit-when-idle` lets it go once no box exists.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Options, Paddock, paddock_bin, sweep, wait_for_sync};

#[test]
fn the_shipped_units_pass_systemd_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd");
    let mut copies = Vec::new();
    for unit in ["paddock.service", "paddock.socket"] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        // The unit names the installed binary; verify checks it exists.
        let text = text.replace("/usr/local/bin/paddock", paddock_bin());
        let copy = dir.path().join(unit);
        std::fs::write(&copy, text).unwrap();
        copies.push(copy);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&copies)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian's systemd) is installed by scripts/ensure-env");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// Messages on the notify socket until one contains `wanted`.
fn until_message(socket: &UnixDatagram, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "no {wanted} on the notify socket"
        );
        let n = socket
            .recv(&mut buf)
            .expect("a notification within the timeout");
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if message.contains(wanted) {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_the_watchdog_and_stopping_reach_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut p = Paddock::start(Options {
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..Options::default()
    });
    let ready = until_message(&socket, "READY=1");
    assert!(ready.contains("STATUS=serving on http://"), "{ready}");
    // Ready means serving: the API answers at once.
    assert_eq!(p.get("/healthz").await.0, 200);
    // Every 0.2 s while the store answers.
    until_message(&socket, "WATCHDOG=1");
    until_message(&socket, "WATCHDOG=1");
    assert!(p.stop().success());
    until_message(&socket, "STOPPING=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_activated_it_serves_the_first_connection_and_exits_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let instance = format!("test-sa-{}", std::process::id());
    let config = dir.path().join("paddock.toml");
    std::fs::write(
        &config,
        format!("instance = \"{instance}\"\n[boxes]\npull = \"never\"\n"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("paddock.log")).unwrap();
    let token = format!("test-admin-{instance}-{}", "s".repeat(24));
    let mut activator = Command::new("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .args([
            "--setenv=PATH",
            "--setenv=HOME",
            "--setenv=PADDOCK_LOG=info",
        ])
        .arg(format!("--setenv=PADDOCK_ADMIN_TOKEN={token}"))
        .arg(format!(
            "--setenv=XDG_RUNTIME_DIR={}",
            dir.path().join("xdg").display()
        ))
        .arg(paddock_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--clearance-socket")
        .arg(dir.path().join("run/clearance.sock"))
        .args(["--exit-when-idle", "2"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd) is installed by scripts/ensure-env");
    // Connecting before the activator listens would be refused: it says
    // when it does (no connection may ask, or it would be the first).
    wait_for_sync("the activator to listen", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.path().join("paddock.log"))
            .is_ok_and(|log| log.contains(&format!("Listening on 127.0.0.1:{port}")))
    });
    // Nothing runs paddock yet; the first connection does, and is served
    // by it from the socket's backlog.
    let health = crate::common::http()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the first connection is served once paddock has started");
    assert_eq!(health.status(), 200);
    let logged = std::fs::read_to_string(dir.path().join("paddock.log")).unwrap();
    assert!(
        logged.contains("serving the API on the socket systemd passed"),
        "{logged}"
    );
    // No box: it drains (two empty polls past 2 s) and exits cleanly.
    wait_for_sync("paddock to exit when idle", Duration::from_secs(30), || {
        activator.try_wait().unwrap().is_some()
    });
    let status = activator.wait().unwrap();
    let logged = std::fs::read_to_string(dir.path().join("paddock.log")).unwrap();
    assert!(status.success(), "{status}: {logged}");
    assert!(logged.contains("exiting (--exit-when-idle)"), "{logged}");
    sweep(&instance);
}
