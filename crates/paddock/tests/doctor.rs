//! `paddock doctor` on this machine, and on what is broken on purpose: an
//! engine that is not there, a runtime the engine does not know, a data
//! dir that cannot be one, a secrets key others can read — each a FAIL
//! with its fix and exit 1, and nothing changed.

use std::process::Command;

use serde_json::Value;

use crate::common::paddock_bin;

fn doctor(args: &[&str], config: &str) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paddock.toml");
    std::fs::write(&path, config).unwrap();
    let run = |json: bool| {
        let mut cmd = Command::new(paddock_bin());
        cmd.arg("doctor").arg("--config").arg(&path).args(args);
        if json {
            cmd.arg("--json");
        }
        cmd.env_remove("DOCKER_HOST").output().unwrap()
    };
    let out = run(true);
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = String::from_utf8_lossy(&run(false).stdout).into_owned();
    (out.status.code().unwrap(), findings, text)
}

fn finding<'a>(findings: &'a Value, check: &str) -> &'a Value {
    findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {findings}"))
}

#[test]
fn this_machine_passes_and_every_check_is_reported() {
    let data = tempfile::tempdir().unwrap();
    let (code, findings, text) = doctor(&["--data-dir", data.path().to_str().unwrap()], "");
    assert_eq!(code, 0, "{text}");
    for check in [
        "privileges",
        "nftables",
        "docker",
        "runtimes",
        "cgroups",
        "gateway ports",
        "data dir",
    ] {
        assert_ne!(finding(&findings, check)["status"], "fail", "{text}");
    }
    assert!(
        text.contains("paddock can run") || text.ends_with("all good\n"),
        "{text}"
    );
}

#[test]
fn what_is_broken_fails_with_its_fix_and_nothing_changes() {
    let data = tempfile::tempdir().unwrap();
    let engine_dir = tempfile::tempdir().unwrap();
    let nowhere = format!("unix://{}/docker.sock", engine_dir.path().display());
    let (code, findings, text) = doctor(
        &[
            "--docker-host",
            &nowhere,
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 1, "{text}");
    let docker = finding(&findings, "docker");
    assert_eq!(docker["status"], "fail");
    assert!(
        docker["fix"]
            .as_str()
            .unwrap()
            .contains("systemctl start docker"),
        "{docker}"
    );
    assert!(text.contains("check(s) failed"), "{text}");

    // A runtime nobody registered.
    let (code, findings, _) = doctor(
        &["--data-dir", data.path().to_str().unwrap()],
        "[boxes]\nruntime = \"no-such-runtime\"\n",
    );
    assert_eq!(code, 1);
    let runtimes = finding(&findings, "runtimes");
    assert_eq!(runtimes["status"], "fail");
    assert!(
        runtimes["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-runtime")
    );

    // A data dir under a file; a secrets key others can read.
    let file = data.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (code, findings, _) = doctor(&["--data-dir", file.join("data").to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert_eq!(finding(&findings, "data dir")["status"], "fail");
    let key = data.path().join("secrets.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (code, findings, _) = doctor(&["--data-dir", data.path().to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert!(
        finding(&findings, "secrets key")["fix"]
            .as_str()
            .unwrap()
            .starts_with("chmod 600")
    );

    // Looked at, not touched: nothing was made or changed.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
    let mut made: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, ["a-file", "secrets.key"]);
}
