//! Git for a box on a spoke: the repository is the hub's. Real git in a
//! real box on the spoke clones and pushes through the spoke's gate,
//! which hands each request to the hub over the spoke's mutual TLS; the
//! hub lets the spoke reach only the projects of boxes it placed there.

use std::process::Command;

use serde_json::json;

use crate::common::git_image;
use crate::git_in_box::{ID, host_git, sh};
use crate::spokes::{hub_with_a_linked_spoke, until_connected};

/// curl as the spoke: its enrolled certificate, trusting the hub's CA.
fn curl_as_spoke(spoke_dir: &std::path::Path, url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cert"])
        .arg(spoke_dir.join("spoke.pem"))
        .arg("--key")
        .arg(spoke_dir.join("spoke-key.pem"))
        .arg("--cacert")
        .arg(spoke_dir.join("hub-ca.pem"))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_box_on_a_spoke_clones_and_pushes_the_hubs_repository() {
    let upstream = tempfile::tempdir().unwrap();
    host_git(upstream.path(), &["init", "-q", "-b", "main"]);
    host_git(
        upstream.path(),
        &["commit", "-q", "--allow-empty", "-m", "imported history"],
    );
    let hub_toml = format!(
        "[[git.projects]]\nproject = \"demo\"\nimport = \"{}\"\n",
        upstream.path().display()
    );
    let (p, spoke_dir, spoke) = hub_with_a_linked_spoke("edge-git", &hub_toml, "").await;
    until_connected(&p, "edge-git", true).await;
    let image = git_image();
    for (id, project) in [("sg-a", "demo"), ("sg-b", "other")] {
        let (status, created) = p
            .post(
                "/api/v1/boxes",
                json!({"project": project, "box_id": id, "image": image, "spoke": "edge-git"}),
            )
            .await;
        assert_eq!(status, 201, "{created}\nspoke log:\n{}", spoke.log());
    }

    // Real git in the box: the hub's imported history, a branch pushed,
    // main refused by the hub's push policy with git's own message.
    let out = sh(
        &p,
        "sg-a",
        &format!(
            "cd /tmp && git clone -q \"$PADDOCK_GIT_URL\" w && cd w && git log --format=%s && \
         git checkout -q -b agent/far-work && {ID} commit -q --allow-empty -m 'from the spoke' && \
         git push -q origin agent/far-work 2>&1 && echo pushed"
        ),
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}\nspoke log:\n{}", spoke.log());
    assert_eq!(out["stdout"], "imported history\npushed\n", "{out}");
    let out = sh(&p, "sg-a", "cd /tmp/w && git push origin HEAD:main 2>&1").await;
    assert_ne!(out["exit_code"], 0, "{out}");
    assert!(
        out["stdout"]
            .as_str()
            .unwrap()
            .contains("refs/heads/main is not writable from here"),
        "{out}"
    );

    // The push is at the hub, done by that box; the spoke keeps no copy.
    let repo = p.dir.path().join("data/git/demo.git");
    assert_eq!(
        host_git(&repo, &["log", "--format=%s", "-1", "agent/far-work"]),
        "from the spoke"
    );
    assert_eq!(
        host_git(&repo, &["log", "--format=%s", "main"]),
        "imported history"
    );
    assert!(!spoke.dir.path().join("data/git/demo.git").exists());
    let audit = std::fs::read_to_string(p.dir.path().join("data/git-audit.jsonl")).unwrap();
    assert!(
        audit.contains("sg-a") && audit.contains("agent/far-work"),
        "{audit}"
    );

    // The other project's box has its own repository and cannot name demo's.
    let out = sh(
        &p,
        "sg-b",
        "cd /tmp && git ls-remote paddock:demo.git 2>&1; echo rc=$?",
    )
    .await;
    assert!(
        out["stdout"].as_str().unwrap().contains("not found"),
        "{out}"
    );

    // As the spoke itself (its certificate, no box token): the hub serves
    // a box's own project only, for a box it placed on this spoke.
    let hub = &spoke.options.spoke_of.as_ref().unwrap().hub;
    let at = |path: &str| format!("{hub}/spoke/git/{path}/info/refs?service=git-upload-pack");
    assert_eq!(curl_as_spoke(spoke_dir.path(), &at("sg-a/demo.git")), "200");
    for refused in ["sg-b/demo.git", "nobody/demo.git", "sg-a/other.git"] {
        assert_eq!(
            curl_as_spoke(spoke_dir.path(), &at(refused)),
            "404",
            "{refused}"
        );
    }
    assert!(
        p.log()
            .contains("a spoke asked for git for a box the hub did not place on it"),
        "{}",
        p.log()
    );
}
