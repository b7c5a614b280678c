//! The `paddock box` CLI as a client of a running paddock.

use crate::common::{Options, Paddock};

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn lifecycle_over_the_cli() {
    let p = Paddock::start(Options::default());
    let out = p.cli(&[
        "box",
        "create",
        "--project",
        "demo",
        "--id",
        "cli-1",
        "--description",
        "via cli",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // Not a terminal: only the id on stdout, as `docker run -d` prints,
    // and the link a script cannot follow on stderr.
    assert_eq!(stdout, "cli-1\n");
    assert!(stderr.contains("activate it at http://"), "{stderr}");

    let out = p.cli(&["box", "ls"]);
    let (stdout, _) = text(&out);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ID") && header.contains("PROJECT") && header.contains("STATE"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("cli-1") && row.contains("demo") && row.contains("via cli"),
        "{row}"
    );

    let out = p.cli(&["box", "ls", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["box_id"], "cli-1");

    let out = p.cli(&["box", "get", "cli-1", "--json"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["state"], "pending_activation");

    // The words arrive as words, as with `docker exec`: no shell joins
    // them or reads their quotes.
    let out = p.cli(&[
        "box",
        "exec",
        "cli-1",
        "--",
        "printf",
        "%s|",
        "one",
        "two three",
        "$HOME;",
    ]);
    assert_eq!(text(&out).0, "one|two three|$HOME;|");
    let out = p.cli(&[
        "box",
        "exec",
        "cli-1",
        "--",
        "sh",
        "-c",
        "echo a; echo b >&2; exit 4",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("a\n", "b\n"));
    assert_eq!(
        out.status.code(),
        Some(4),
        "the box's exit code is the CLI's"
    );
    // Over REST, `command` stays a shell command line; `argv` is words;
    // both or neither is refused.
    let (status, out) = p
        .post(
            "/api/v1/boxes/cli-1/exec",
            serde_json::json!({"command": "echo $((1+2))"}),
        )
        .await;
    assert_eq!(
        (status, out["stdout"].as_str()),
        (200, Some("3\n")),
        "{out}"
    );
    let (status, out) = p
        .post(
            "/api/v1/boxes/cli-1/exec",
            serde_json::json!({"argv": ["echo", "$((1+2))"]}),
        )
        .await;
    assert_eq!(
        (status, out["stdout"].as_str()),
        (200, Some("$((1+2))\n")),
        "{out}"
    );
    for bad in [
        serde_json::json!({"command": "true", "argv": ["true"]}),
        serde_json::json!({}),
        serde_json::json!({"argv": []}),
        serde_json::json!({"argv": ["echo", "nul\u{0}"]}),
    ] {
        let (status, out) = p.post("/api/v1/boxes/cli-1/exec", bad.clone()).await;
        assert_eq!(
            (status, out["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{bad}: {out}"
        );
    }

    let out = p.cli(&["box", "logs", "cli-1", "--tail", "10"]);
    assert!(out.status.success(), "{}", text(&out).1);

    let out = p.cli(&["box", "rm", "cli-1"]);
    assert!(out.status.success());
    assert_eq!(text(&out).0, "destroyed box cli-1\n");

    for args in [
        &["box", "get", "cli-1"][..],
        &["box", "rm", "cli-1"],
        &["box", "exec", "cli-1", "true"],
    ] {
        let out = p.cli(args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr.contains("no box with id \"cli-1\""), "{stderr}");
    }
}

#[test]
fn an_unreachable_paddock_is_a_clear_error() {
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args(["box", "ls", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach paddock at http://127.0.0.1:9")
            && stderr.contains("is `paddock serve` running there?"),
        "{stderr}"
    );

    // A URL without a scheme is named as the mistake it is.
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args(["box", "ls", "--url", "127.0.0.1:7878"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("must start with http:// or https://"),
        "{stderr}"
    );

    // `egress up` and `block` take no --ttl; `down` says what it is for.
    let help = std::process::Command::new(crate::common::paddock_bin())
        .args(["egress", "up", "--help"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("--ttl"));
    let help = std::process::Command::new(crate::common::paddock_bin())
        .args(["egress", "down", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--ttl"));
    // No env value is shown, set or empty.
    let help = std::process::Command::new(crate::common::paddock_bin())
        .args(["box", "ls", "--help"])
        .env("PADDOCK_URL", "")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains("PADDOCK_URL="),
        "{}",
        String::from_utf8_lossy(&help.stdout)
    );
}

#[tokio::test]
async fn the_cli_says_what_a_token_is_and_the_api_answers_json_to_a_miss() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args(["box", "ls"])
        .env("PADDOCK_URL", &p.url)
        .env_remove("PADDOCK_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token or PADDOCK_TOKEN"), "{stderr}");

    let (status, body) = p.get("/api/v1/no-such-thing").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

/// The completion script works in a real bash: `paddock box st<TAB>`
/// offers start and stop.
#[test]
fn bash_completes_paddock_commands() {
    let script = std::process::Command::new(crate::common::paddock_bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paddock.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(paddock box st); COMP_CWORD=2; _paddock paddock st box; echo \"${{COMPREPLY[@]}}\"",
            path.display()
        ))
        .output()
        .unwrap();
    let offered = String::from_utf8_lossy(&out.stdout);
    let mut words: Vec<&str> = offered.split_whitespace().collect();
    words.sort();
    assert_eq!(
        words,
        ["start", "stop"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
