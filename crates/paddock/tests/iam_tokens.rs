//! Built-in tokens over their life: the admin token printed once at first
//! start (or handed in by environment or file), tokens minted offline
//! against the data dir while paddock serves, and the token CLI through the
//! server.

use std::time::Duration;

use crate::common::{Options, Paddock};
use serde_json::Value;

fn options() -> Options {
    Options {
        login_profile: false,
        ..Options::default()
    }
}

/// Removes an instance's Docker objects however the test ends.
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        crate::common::sweep(&self.0);
    }
}

/// Reads `paddock serve`'s stdout lines until the listening line and the
/// token lines after it, with a deadline.
fn serve_lines(child: &mut std::process::Child) -> Vec<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // The listening line comes first; the admin token, when there is one,
    // is printed by the same thread right after it.
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("paddock announced it was listening");
    let mut lines = vec![first];
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_an_admin_token_once_and_tokens_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let instance = format!("test-iam-first-{}", std::process::id());
    let _sweep = Sweep(instance.clone());
    let config = dir.path().join("paddock.toml");
    std::fs::write(
        &config,
        format!("instance = \"{instance}\"\n[egress]\nenabled = false\n[git]\nenabled = false\n"),
    )
    .unwrap();
    let start = || {
        let mut child = std::process::Command::new(crate::common::paddock_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--clearance-socket")
            .arg(dir.path().join("run/clearance.sock"))
            .env_remove("PADDOCK_ADMIN_TOKEN")
            .env_remove("PADDOCK_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let lines = serve_lines(&mut child);
        (child, lines)
    };
    let stop = |mut child: std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };

    let (child, lines) = start();
    let url = lines[0]
        .strip_prefix("paddock: listening on ")
        .unwrap()
        .to_owned();
    let token = lines
        .iter()
        .find_map(|l| l.split("keep it): ").nth(1))
        .unwrap_or_else(|| panic!("no admin token printed: {lines:?}"))
        .trim()
        .to_owned();
    let whoami = crate::common::authorised_client(&token)
        .get(format!("{url}/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(!log.contains(&token), "the admin token reached the log");

    // Offline, against the data dir, while it runs: the new token works.
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args([
            "token",
            "create",
            "--name",
            "ci",
            "-c",
            "box:read",
            "--project",
            "alpha",
            "--json",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ci = created["secret"].as_str().unwrap().to_owned();
    let listed = crate::common::authorised_client(&ci)
        .get(format!("{url}/api/v1/boxes"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args(["token", "ls", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ci") && table.contains("alpha"), "{table}");
    assert!(
        !table.contains(&ci) && !table.contains(&token),
        "a listing shows no secret"
    );
    stop(child);

    // Second start: nothing printed, the first token still works.
    let (child, lines) = start();
    assert!(
        !lines.iter().any(|l| l.contains("admin token")),
        "{lines:?}"
    );
    let url = lines[0]
        .strip_prefix("paddock: listening on ")
        .unwrap()
        .to_owned();
    let again = crate::common::authorised_client(&token)
        .get(format!("{url}/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    stop(child);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_cli_administers_through_the_server() {
    let p = Paddock::start(options());
    let out = p.cli(&[
        "token", "create", "--name", "people", "-c", "operator", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let out = p.cli_as(&secret, &["token", "ls"]);
    assert_eq!(out.status.code(), Some(1), "an operator cannot list tokens");
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin:tokens"));
    let out = p.cli(&["token", "revoke", &id]);
    assert!(out.status.success());
    let out = p.cli_as(&secret, &["box", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
    let out = p.cli(&["token", "create", "--name", "x", "-c", "root"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown capability"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_initial_admin_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    let supplied = "an-admin-token-from-a-file-0123456789";
    std::fs::write(&file, format!("{supplied}\n")).unwrap();
    let mut p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!("[iam]\nadmin_token_file = \"{}\"\n", file.display()),
        // The file wins only when the environment names none.
        env: vec![("PADDOCK_ADMIN_TOKEN".into(), String::new())],
        ..Options::default()
    });
    let me = p
        .client_as(supplied)
        .get(format!("{}/api/v1/whoami", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // A short one is refused at start, with the reason.
    std::fs::write(&file, "short").unwrap();
    p.kill9();
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(p.dir.path().join("paddock.toml"))
        .arg("--data-dir")
        .arg(p.dir.path().join("data"))
        .arg("--clearance-socket")
        .arg(p.clearance_socket())
        .env_remove("PADDOCK_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
    assert!(
        !stderr.contains("short"),
        "the token itself is not echoed: {stderr}"
    );
}
