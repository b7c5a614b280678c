//! The standalone git gate with real git: tokens and the push policy.

use std::time::Duration;

use crate::common::gate_site::*;

#[test]
fn clone_fetch_and_push_under_the_default_policy() {
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let a = site.checkout(&gate.url(Some(ALPHA), "alpha"));
    assert_eq!(ok(git(&a, &["log", "--format=%s"])), "first");

    // Someone with the admin token moves main on; the box fetches it.
    ok(git(
        &site.path("src"),
        &["commit", "-q", "--allow-empty", "-m", "second"],
    ));
    ok(git(
        &site.path("src"),
        &["push", "-q", &gate.url(Some(ADMIN), "alpha"), "main"],
    ));
    ok(git(&a, &["fetch", "-q", "origin"]));
    assert_eq!(
        ok(git(&a, &["log", "--format=%s", "origin/main"])),
        "second\nfirst"
    );

    // main is not the box's to write (even fast-forward); agent/* is.
    ok(git(&a, &["merge", "-q", "--ff-only", "origin/main"]));
    ok(git(
        &a,
        &["commit", "-q", "--allow-empty", "-m", "agent work"],
    ));
    let refused = git(&a, &["push", "origin", "HEAD:main"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refs/heads/main is not writable from here"),
        "{}",
        stderr(&refused)
    );
    ok(git(&a, &["push", "-q", "origin", "HEAD:agent/fix"]));

    // No rewriting and no deleting under the default policy.
    ok(git(
        &a,
        &[
            "commit",
            "-q",
            "--amend",
            "--allow-empty",
            "-m",
            "rewritten",
        ],
    ));
    let forced = git(&a, &["push", "-f", "origin", "HEAD:agent/fix"]);
    assert!(
        stderr(&forced).contains("force-pushing refs/heads/agent/fix is not allowed"),
        "{}",
        stderr(&forced)
    );
    let deleted = git(&a, &["push", "origin", ":agent/fix"]);
    assert!(
        stderr(&deleted).contains("deleting refs/heads/agent/fix is not allowed"),
        "{}",
        stderr(&deleted)
    );

    let outcomes: Vec<(String, String)> = site
        .audit()
        .iter()
        .map(|r| {
            (
                r["ref"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("refs/heads/main", "accepted"),
            ("refs/heads/main", "refused"),
            ("refs/heads/agent/fix", "accepted"),
            ("refs/heads/agent/fix", "refused"),
            ("refs/heads/agent/fix", "refused"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let audit = site.audit();
    assert_eq!(audit[0]["principal"], "admin");
    assert!(
        audit[2]["principal"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    assert_eq!(audit[2]["old"], "0000000000000000000000000000000000000000");
    assert_eq!(audit[2]["project"], "alpha");
    assert!(
        !std::fs::read_to_string(site.path("audit.jsonl"))
            .unwrap()
            .contains(ALPHA),
        "no token in the audit"
    );
}

#[test]
fn force_and_delete_with_backups_when_allowed() {
    let site = Site::new();
    let gate = Daemon::start(&site, &["--force", "backup", "--delete", "backup"]);
    let a = site.checkout(&gate.url(Some(ALPHA), "alpha"));
    ok(git(&a, &["commit", "-q", "--allow-empty", "-m", "v1"]));
    ok(git(&a, &["push", "-q", "origin", "HEAD:agent/x"]));
    let v1 = ok(git(&a, &["rev-parse", "HEAD"]));
    ok(git(
        &a,
        &["commit", "-q", "--amend", "--allow-empty", "-m", "v2"],
    ));
    let forced = git(&a, &["push", "-f", "origin", "HEAD:agent/x"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(
        stderr(&forced)
            .contains("saved the old refs/heads/agent/x as refs/paddock/backup/heads/agent/x/")
    );
    let v2 = ok(git(&a, &["rev-parse", "HEAD"]));
    ok(git(&a, &["push", "-q", "origin", ":agent/x"]));

    let bare = site.path("base/alpha.git");
    let backups = ok(git(
        &bare,
        &[
            "for-each-ref",
            "--format=%(objectname)",
            "refs/paddock/backup/",
        ],
    ));
    let mut backups: Vec<&str> = backups.lines().collect();
    backups.sort();
    let mut expected = vec![v1.as_str(), v2.as_str()];
    expected.sort();
    assert_eq!(
        backups, expected,
        "the old tips of the force push and the deletion"
    );
    assert!(
        git(
            &bare,
            &["rev-parse", "--verify", "-q", "refs/heads/agent/x"]
        )
        .stdout
        .is_empty()
    );
    let outcomes: Vec<String> = site
        .audit()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes,
        ["accepted", "backed_up", "accepted", "backed_up", "accepted"]
    );
}

#[test]
fn tokens_decide_who_sees_what() {
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let refs = "/alpha.git/info/refs?service=git-upload-pack";

    let (code, answer) = get(&gate.addr, refs, None);
    assert_eq!(code, 401);
    assert!(
        answer.contains("www-authenticate: Basic realm=\"paddock git gate\""),
        "{answer}"
    );
    assert_eq!(
        get(&gate.addr, refs, Some("tok-wrong-dddddddddddddddddddddd")).0,
        401
    );
    assert_eq!(get(&gate.addr, refs, Some(ALPHA)).0, 200);
    // Another project's repository looks exactly like a missing one.
    let (other, other_body) = get(&gate.addr, refs, Some(BETA));
    let (missing, missing_body) = get(
        &gate.addr,
        "/gamma.git/info/refs?service=git-upload-pack",
        Some(BETA),
    );
    assert_eq!((other, missing), (404, 404));
    assert_eq!(
        other_body.split("\r\n\r\n").nth(1),
        missing_body.split("\r\n\r\n").nth(1)
    );
    assert_eq!(
        get(
            &gate.addr,
            "/beta.git/info/refs?service=git-upload-pack",
            Some(ADMIN)
        )
        .0,
        200
    );
    assert_eq!(get(&gate.addr, refs, Some(ADMIN)).0, 200);
    assert_eq!(
        get(
            &gate.addr,
            "/gamma.git/info/refs?service=git-upload-pack",
            Some(ADMIN)
        )
        .0,
        404
    );
    // Each refusal is on the record with its reason (a request with no
    // token at all is git's usual first try, and is not).
    let refusals: Vec<(u64, String)> = site
        .audit()
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .map(|r| {
            (
                r["status"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refusals,
        vec![
            (401, "unknown token".to_owned()),
            (404, "the token is for project beta".to_owned()),
            (404, "the token is for project beta".to_owned()),
            (404, "no such repository".to_owned()),
        ]
    );

    // git itself: no credentials → it is asked for some (and cannot prompt).
    let denied = git(site.dir.path(), &["ls-remote", &gate.url(None, "alpha")]);
    assert!(
        stderr(&denied).contains("could not read Username"),
        "{}",
        stderr(&denied)
    );

    // The token file changes while the gate runs.
    let new = "tok-alpha-new-eeeeeeeeeeeeeeeeeeee";
    site.write_tokens(&[(new, "alpha")]);
    crate::common::wait_for_sync("the new token", Duration::from_secs(10), || {
        get(&gate.addr, refs, Some(new)).0 == 200
    });
    assert_eq!(
        get(&gate.addr, refs, Some(ALPHA)).0,
        401,
        "a removed token stops working"
    );
}

/// Without an audit log, a push that only creates allowed branches skips
/// the hook process; everything else still meets the policy.
#[test]
fn the_policy_holds_without_an_audit_log() {
    let site = Site::new();
    let mut args = site.base_args();
    let at = args.iter().position(|a| a == "--audit-log").unwrap();
    args.drain(at..at + 2);
    let gate = Daemon::launch(&site, args, &[]);

    let a = site.checkout(&gate.url(Some(ALPHA), "alpha"));
    ok(git(&a, &["commit", "-q", "--allow-empty", "-m", "new"]));
    ok(git(&a, &["push", "-q", "origin", "HEAD:agent/new"]));
    let main = git(&a, &["push", "origin", "HEAD:main"]);
    assert!(
        stderr(&main).contains("refs/heads/main is not writable from here"),
        "{}",
        stderr(&main)
    );
    let mixed = git(&a, &["push", "origin", "HEAD:agent/other", "HEAD:main"]);
    assert!(!mixed.status.success(), "one refused ref refuses the push");
    ok(git(
        &a,
        &[
            "commit",
            "-q",
            "--amend",
            "--allow-empty",
            "-m",
            "rewritten",
        ],
    ));
    let forced = git(&a, &["push", "-f", "origin", "HEAD:agent/new"]);
    assert!(
        stderr(&forced).contains("force-pushing refs/heads/agent/new is not allowed"),
        "{}",
        stderr(&forced)
    );
    let bare = site.path("base/alpha.git");
    let refs = ok(git(&bare, &["for-each-ref", "--format=%(refname)"]));
    assert_eq!(refs, "refs/heads/agent/new\nrefs/heads/main");
    assert!(!site.path("audit.jsonl").exists());
}

/// git's probe before a large push (a lone flush packet) is answered as
/// receive-pack would, after authentication, and changes nothing.
#[test]
fn the_push_probe_is_answered_after_authentication() {
    use base64::Engine as _;
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let probe = |auth: Option<&str>| {
        let auth = auth
            .map(|t| {
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{t}:x"));
                format!("Authorization: Basic {b}\r\n")
            })
            .unwrap_or_default();
        raw(
            &gate.addr,
            &format!(
                "POST /alpha.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/x-git-receive-pack-request\r\nContent-Length: 4\r\nConnection: close\r\n\r\n0000"
            ),
        )
    };
    assert_eq!(probe(None).0, 401);
    assert_eq!(probe(Some(BETA)).0, 404);
    let (code, answer) = probe(Some(ALPHA));
    assert_eq!(code, 200, "{answer}");
    assert!(
        answer.contains("content-type: application/x-git-receive-pack-result"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\n") || answer.contains("content-length: 0"),
        "an empty result: {answer}"
    );
    let bare = site.path("base/alpha.git");
    assert_eq!(
        ok(git(&bare, &["for-each-ref", "--format=%(refname)"])),
        "refs/heads/main"
    );
}

/// git skips a hook it cannot run, silently; a rebuild or a package upgrade
/// moving the binary under a running gate must not turn the policy off.
#[test]
fn the_policy_holds_when_the_binary_is_moved_and_replaced_under_the_gate() {
    let site = Site::new();
    let bin = own_copy_of_paddock(&site.path("bin"));
    let gate = Daemon::launch_bin(&site, &bin, site.base_args(), &[]);
    let a = site.checkout(&gate.url(Some(ALPHA), "alpha"));
    ok(git(
        &a,
        &["commit", "-q", "--allow-empty", "-m", "agent work"],
    ));

    upgrade_under_it(&bin);
    let refused = git(&a, &["push", "origin", "HEAD:main"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refs/heads/main is not writable from here"),
        "the policy ran: {}",
        stderr(&refused)
    );
    let deleted = git(&a, &["push", "origin", ":main"]);
    assert!(!deleted.status.success(), "{}", stderr(&deleted));
    ok(git(
        &a,
        &["push", "-q", "origin", "HEAD:agent/after-upgrade"],
    ));
    let refusals = site
        .audit()
        .into_iter()
        .filter(|r| r["ref"] == "refs/heads/main" && r["outcome"] == "refused")
        .count();
    assert_eq!(refusals, 2, "{:?}", site.audit());

    // Should git ever be unable to run the hooks, no push starts at all.
    let hooks = std::fs::read_dir(site.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("paddock-gate-hooks-")
        })
        .expect("the gate's hooks directory");
    std::fs::remove_file(hooks.join("full/pre-receive")).unwrap();
    let refused = git(&a, &["push", "origin", "HEAD:main"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("the push policy cannot run"),
        "{}",
        stderr(&refused)
    );
    let main = ok(git(&a, &["ls-remote", "origin", "refs/heads/main"]));
    let before = ok(git(&a, &["rev-parse", "origin/main"]));
    assert!(main.starts_with(&before), "main did not move: {main}");
}
