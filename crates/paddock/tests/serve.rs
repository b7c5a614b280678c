//! `paddock serve` as a process: a failed start leaves nothing running, and
//! a stuck client cannot hold the shutdown.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Options, Paddock, paddock_bin};
use serde_json::json;

#[test]
fn a_taken_port_fails_the_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(paddock_bin())
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing announced it was serving");
}

#[test]
fn bad_configuration_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paddock.toml");
    for (toml, expected) in [
        ("[boxes]\nmax_boxs = 3\n", "max_boxs"),
        ("[boxes]\nsubnet_pool = \"10.0.0.1/16\"\n", "host bits"),
        (
            "[[profiles]]\nimage = \"x\"\nlogin_command = [\"l\"]\nurl_pattern = \"(\"\n",
            "url_pattern",
        ),
        (
            "[server]\nlisten = \"0.0.0.0:7878\"\n[iam]\nenabled = false\n",
            "refusing to listen",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let out = Command::new(paddock_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("PADDOCK_LISTEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{toml}: {stderr}");
        assert!(stderr.contains(expected), "{toml}: {stderr}");
    }
}

#[tokio::test]
async fn a_stuck_client_cannot_hold_the_shutdown() {
    let mut p = Paddock::start(Options {
        login_profile: false,
        env: vec![("PADDOCK_SERVER__SHUTDOWN_TIMEOUT_SECS".into(), "2".into())],
        ..Options::default()
    });
    assert_eq!(
        p.post("/api/v1/boxes", json!({"project": "demo", "box_id": "s-1"}))
            .await
            .0,
        201
    );
    // A client that sends half a request and then nothing, and an exec
    // that will not finish for a minute.
    let mut half = std::net::TcpStream::connect(p.url.trim_start_matches("http://")).unwrap();
    half.write_all(b"POST /api/v1/boxes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let url = p.url.clone();
    let http = p.http.clone();
    let slow = tokio::spawn(async move {
        let _ = http
            .post(format!("{url}/api/v1/boxes/s-1/exec"))
            .json(&json!({"command": "sleep 60"}))
            .send()
            .await;
    });
    crate::common::wait_for(
        "the exec to be running",
        Duration::from_secs(20),
        || async {
            let out = crate::common::docker(&["top", &p.container("s-1")]);
            String::from_utf8_lossy(&out.stdout)
                .contains("sleep 60")
                .then_some(())
        },
    )
    .await;
    let started = Instant::now();
    let status = p.stop();
    let took = started.elapsed();
    assert!(status.success(), "a clean stop exits 0: {status:?}");
    assert!(
        took < Duration::from_secs(8),
        "shutdown took {took:?} despite a 2 s per-component timeout"
    );
    slow.abort();
    drop(half);
}
