//! The work goes home: a project whose repository lives on a forge (the
//! git gate behind TLS of the test's own CA). paddock imports it through
//! its own way through the gateway, a box's agent pushes a branch to
//! paddock's gate, and a person sends that branch upstream — the forge's
//! token injected at the gateway, every request on the record.

use crate::common::console::{Browsers, console_link, screenshots_dir};
use crate::common::egress_site::{audit, decisions, exec};
use crate::common::forge::Forge;
use crate::common::gate_site::{ALPHA, git, ok};
use crate::common::git_image;
use serde_json::json;

/// A forge, and a paddock whose project `proj` has it as its upstream
/// (`push_upstream` as given) with the forge's token bound to it, and a
/// git box `box_id` of the project (its repository imported).
async fn upstream_project(push_upstream: &str, box_id: &str) -> (Forge, crate::common::Paddock) {
    let forge = Forge::start().await;
    let p = forge
        .paddock(&format!(
            "[[git.projects]]\nproject = \"proj\"\nupstream = \"{}\"\npush_upstream = \"{push_upstream}\"\n",
            forge.url("alpha")
        ))
        .await;
    let binding = json!([{"hosts": [format!("forge.test:{}", forge.port)], "basic": "{secret}"}]);
    let (status, body) = p
        .put(
            "/api/v1/projects/proj/secrets/forge",
            json!({"value": ALPHA, "bindings": binding}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    p.cli_json(&[
        "box",
        "create",
        "--project",
        "proj",
        "--id",
        box_id,
        "--image",
        git_image(),
        "--json",
    ]);
    (forge, p)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_branch_goes_upstream_through_the_gateway_when_a_person_says_so() {
    // The box's project repository is imported from the forge.
    let (forge, p) = upstream_project("manual", "home").await;
    let in_box = |args: &str| {
        format!("cd /tmp && git -c user.name=agent -c user.email=agent@example.invalid {args}")
    };
    let out = exec(
        &p,
        "home",
        &in_box("clone -q \"$PADDOCK_GIT_URL\" work && git -C work log --format=%s main"),
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    assert_eq!(
        out["stdout"].as_str().unwrap().trim(),
        "first",
        "the forge's history"
    );
    let out = exec(&p, "home", &in_box("-C work commit -q --allow-empty -m 'agent work' && git -C work push -q origin HEAD:refs/heads/agent/x")).await;
    assert_eq!(out["exit_code"], 0, "{out}");

    // Nothing has left yet: a person sends it.
    let bare = forge.site.path("base").join("alpha.git");
    assert!(!ok(git(&bare, &["for-each-ref", "--format=%(refname)"])).contains("agent/x"));
    let (_, agent) = p.mint(&["agent"], None).await;
    let refused = p.cli_as(
        &agent,
        &[
            "git",
            "push-upstream",
            "--project",
            "proj",
            "--ref",
            "agent/x",
        ],
    );
    assert!(
        !refused.status.success(),
        "the agent cannot send its own work out"
    );
    let out = p.cli(&[
        "git",
        "push-upstream",
        "--project",
        "proj",
        "--ref",
        "agent/x",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ok(git(
            &bare,
            &["log", "--format=%s", "-1", "refs/heads/agent/x"]
        )),
        "agent work"
    );
    assert_eq!(
        ok(git(&bare, &["log", "--format=%s", "main"])),
        "first",
        "main untouched"
    );

    // A person in the console does the same, from the Boxes page.
    let out = exec(
        &p,
        "home",
        &in_box("-C work push -q origin HEAD:refs/heads/agent/y"),
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let mut browsers = Browsers::start(&p);
    let link = console_link(&p, &p.admin_token).await;
    browsers.ask(&format!("open ada {link}"));
    browsers.ask("get ada /console/boxes");
    if let Some(dir) = screenshots_dir() {
        browsers.ask(&format!(
            "shot ada {}/console-upstream.png 1100 640",
            dir.display()
        ));
        browsers.ask(&format!(
            "shot ada {}/console-upstream-phone.png 390 760",
            dir.display()
        ));
    }
    browsers.ask("fill ada push-ref-proj agent/y");
    let done = browsers.ask("click ada push-upstream-proj");
    assert!(
        done["result"]
            .as_str()
            .unwrap_or("")
            .contains("Pushed refs/heads/agent/y of proj"),
        "{done}"
    );
    assert_eq!(
        ok(git(
            &bare,
            &["log", "--format=%s", "-1", "refs/heads/agent/y"]
        )),
        "agent work"
    );

    // Only agent branches go home.
    let out = p.cli(&["git", "push-upstream", "--project", "proj", "--ref", "main"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a ref the gate lets agents push"));
    let out = p.cli(&[
        "git",
        "push-upstream",
        "--project",
        "proj",
        "--ref",
        "agent/none",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no refs/heads/agent/none"));

    // paddock's own requests are on the record, the token injected.
    let log = decisions(&audit(&p, "paddock-gate").await);
    assert!(log.iter().any(|d| d == "injected"), "{log:?}");
    assert!(
        !p.log().contains(ALPHA),
        "the forge's token is never logged"
    );
}

/// `push_upstream = "auto"`: an agent branch goes upstream as soon as it
/// reaches the gate, through the same gateway; main never does.
#[tokio::test(flavor = "multi_thread")]
async fn with_auto_an_agent_branch_goes_upstream_on_its_own() {
    let (forge, p) = upstream_project("auto", "auto").await;
    let out = exec(
        &p,
        "auto",
        "cd /tmp && git clone -q \"$PADDOCK_GIT_URL\" w && cd w && git -c user.name=a -c user.email=a@example.invalid commit -q --allow-empty -m auto && git push -q origin HEAD:refs/heads/agent/auto",
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let bare = forge.site.path("base").join("alpha.git");
    crate::common::wait_for_sync(
        "agent/auto upstream",
        std::time::Duration::from_secs(30),
        || {
            git(
                &bare,
                &["rev-parse", "--verify", "--quiet", "refs/heads/agent/auto"],
            )
            .status
            .success()
        },
    );
    assert_eq!(
        ok(git(
            &bare,
            &["log", "--format=%s", "-1", "refs/heads/agent/auto"]
        )),
        "auto"
    );
    assert_eq!(ok(git(&bare, &["log", "--format=%s", "main"])), "first");
}
