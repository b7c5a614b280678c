//! The embedded git gate, used by real git inside real boxes.

use std::process::Command;

use crate::common::{Options, Paddock, git_image};
use serde_json::{Value, json};

pub(crate) fn host_git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) async fn sh(p: &Paddock, box_id: &str, script: &str) -> Value {
    let (status, out) = p
        .post(
            &format!("/api/v1/boxes/{box_id}/exec"),
            json!({"command": script}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    out
}

pub(crate) const ID: &str = "git -c user.name=agent -c user.email=agent@example.invalid";

#[tokio::test]
async fn a_box_reaches_its_own_repository_and_nothing_else() {
    // The project's history, imported on first use.
    let upstream = tempfile::tempdir().unwrap();
    host_git(upstream.path(), &["init", "-q", "-b", "main"]);
    host_git(
        upstream.path(),
        &["commit", "-q", "--allow-empty", "-m", "imported history"],
    );
    let image = git_image();
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!(
            "[[git.projects]]\nproject = \"demo\"\nimport = \"{}\"\n",
            upstream.path().display()
        ),
        ..Options::default()
    });
    for (id, project) in [("g-a", "demo"), ("g-b", "other")] {
        let (s, b) = p
            .post(
                "/api/v1/boxes",
                json!({"project": project, "box_id": id, "image": image}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    // Clone by the URL paddock gives the box, and by the paddock: shorthand.
    let out = sh(&p, "g-a", &format!(
        "cd /tmp && git clone -q \"$PADDOCK_GIT_URL\" w && git clone -q paddock:demo.git w2 && cd w && git log --format=%s && \
         git checkout -q -b agent/box-work && {ID} commit -q --allow-empty -m 'from the box' && git push -q origin agent/box-work 2>&1 && echo pushed"
    )).await;
    assert_eq!(out["exit_code"], 0, "{out}");
    assert_eq!(out["stdout"], "imported history\npushed\n", "{out}");

    let out = sh(&p, "g-a", "cd /tmp/w && git push origin HEAD:main 2>&1").await;
    assert_ne!(out["exit_code"], 0);
    assert!(
        out["stdout"]
            .as_str()
            .unwrap()
            .contains("refs/heads/main is not writable from here"),
        "{out}"
    );

    // The repository on the host has the box's branch, and main untouched.
    let repo = p.dir.path().join("data/git/demo.git");
    assert_eq!(
        host_git(&repo, &["log", "--format=%s", "-1", "agent/box-work"]),
        "from the box"
    );
    assert_eq!(
        host_git(&repo, &["log", "--format=%s", "main"]),
        "imported history"
    );

    // The other project's box: its own (new, empty) repository only.
    let out = sh(
        &p,
        "g-b",
        "cd /tmp && git clone -q \"$PADDOCK_GIT_URL\" mine 2>&1; echo rc=$?",
    )
    .await;
    assert!(out["stdout"].as_str().unwrap().contains("rc=0"), "{out}");
    let out = sh(
        &p,
        "g-b",
        "cd /tmp && git ls-remote paddock:demo.git 2>&1; echo rc=$?",
    )
    .await;
    assert!(
        out["stdout"].as_str().unwrap().contains("not found"),
        "another project is not found: {out}"
    );

    // A's token is useless from B's network, and the hub's API is unreachable.
    // The box's credential helper (from its environment) carries its token.
    let a_helper = sh(&p, "g-a", "echo \"$GIT_CONFIG_VALUE_0\"").await["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .to_owned();
    let a_token = a_helper
        .split("username=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in the helper: {a_helper}"))
        .to_owned();
    assert!(a_token.len() >= 43, "a 256-bit token: {a_token}");
    // A box's own credential is not an API credential.
    let api = p
        .client_as(&a_token)
        .get(format!("{}/api/v1/boxes", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401, "the git token opened the control plane");
    let a_origin = sh(&p, "g-a", "echo ${PADDOCK_GIT_URL%/*}").await["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .trim_start_matches("http://")
        .to_owned();
    let b_origin = sh(&p, "g-b", "echo ${PADDOCK_GIT_URL%/*}").await["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .to_owned();
    let stolen = b_origin.replacen("http://", &format!("http://{a_token}:x@"), 1);
    let out = sh(
        &p,
        "g-b",
        &format!(
            "wget -Y off -q -O- '{stolen}/demo.git/info/refs?service=git-upload-pack' 2>&1; echo rc=$?"
        ),
    )
    .await;
    assert!(out["stdout"].as_str().unwrap().contains("401"), "{out}");
    let api_port = p.url.rsplit(':').next().unwrap().to_owned();
    let gw = b_origin
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    let out = sh(
        &p,
        "g-b",
        &format!("wget -Y off -q -T 3 -O- http://{gw}:{api_port}/healthz 2>&1; echo rc=$?"),
    )
    .await;
    assert!(
        !out["stdout"].as_str().unwrap().contains("\"status\""),
        "the API is not reachable from a box: {out}"
    );

    // Destroying A revokes its token.
    assert_eq!(p.delete("/api/v1/boxes/g-a").await.0, 204);
    let r = crate::common::http()
        .get(format!(
            "http://{a_origin}/demo.git/info/refs?service=git-upload-pack"
        ))
        .basic_auth(&a_token, Some("x"))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 401, "a destroyed box's token is revoked");
    }

    // Every push decision is audited with the box as the principal.
    let audit = std::fs::read_to_string(p.dir.path().join("data/git-audit.jsonl")).unwrap();
    let records: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(&str, &str, &str)> = records
        .iter()
        .filter(|r| r.get("ref").is_some())
        .map(|r| {
            (
                r["principal"].as_str().unwrap(),
                r["ref"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("g-a", "refs/heads/agent/box-work", "accepted"),
            ("g-a", "refs/heads/main", "refused")
        ]
    );
    // So are the requests refused before git: B asking for A's project,
    // A's token tried from B's network.
    let refusals: Vec<(u64, &str)> = records
        .iter()
        .filter(|r| r.get("ref").is_none())
        .map(|r| (r["status"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert!(
        refusals.contains(&(404, "the token is for project other")),
        "{refusals:?}"
    );
    assert!(refusals.contains(&(401, "unknown token")), "{refusals:?}");
    assert!(!audit.contains(&a_token));

    // /metrics counts the same, read from the same record.
    let metrics = p.get_text("/metrics").await;
    for (series, expected) in [
        ("paddock_gate_ref_updates_total{outcome=\"accepted\"} ", 1),
        ("paddock_gate_ref_updates_total{outcome=\"refused\"} ", 1),
        ("paddock_gate_requests_refused_total ", refusals.len()),
    ] {
        let line = format!("{series}{expected}");
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in\n{metrics}"
        );
    }
}

/// The embedded gate keeps its push policy when the binary of the running
/// server is moved and replaced (an upgrade), with no restart.
#[tokio::test]
async fn the_embedded_gate_keeps_its_policy_across_an_upgrade_of_the_binary() {
    let image = git_image();
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = crate::common::gate_site::own_copy_of_paddock(bin_dir.path());
    let p = Paddock::start(Options {
        login_profile: false,
        binary: Some(bin.clone()),
        ..Options::default()
    });
    let (s, b) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "g-up", "image": image}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let out = sh(&p, "g-up", &format!(
        "cd /tmp && git clone -q \"$PADDOCK_GIT_URL\" w 2>/tmp/clone.err || cat /tmp/clone.err; cd w && {ID} commit -q --allow-empty -m work && echo ready"
    )).await;
    assert_eq!(out["stdout"], "ready\n", "{out}");

    crate::common::gate_site::upgrade_under_it(&bin);
    let out = sh(&p, "g-up", "cd /tmp/w && git push origin HEAD:main 2>&1").await;
    assert_ne!(out["exit_code"], 0, "{out}");
    assert!(
        out["stdout"]
            .as_str()
            .unwrap()
            .contains("refs/heads/main is not writable from here"),
        "the policy ran: {out}"
    );
    let out = sh(
        &p,
        "g-up",
        "cd /tmp/w && git push -q origin HEAD:agent/up 2>&1 && echo pushed",
    )
    .await;
    assert_eq!(out["stdout"], "pushed\n", "{out}");
}
