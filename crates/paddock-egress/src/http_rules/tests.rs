use super::*;

fn rule(scope: Scope, request: &str, refs: &[&str], action: Action) -> HttpRule {
    let (methods, path) = parse_request(request).unwrap();
    HttpRule {
        id: 1,
        scope,
        host: "github.com".into(),
        port: None,
        methods,
        path,
        refs: refs.iter().map(|r| r.to_string()).collect(),
        action,
        expires_at_ms: None,
        created_by: "t".into(),
    }
}

fn req(method: &str, path: &str, refs: &[&str]) -> HttpRequestView {
    HttpRequestView {
        method: method.into(),
        path: normalise_path(path).unwrap(),
        refs: refs.iter().map(|r| r.to_string()).collect(),
    }
}

#[test]
fn globs_keep_single_stars_inside_a_segment() {
    assert!(glob_matches("/repos/acme/**", "/repos/acme/x/y"));
    assert!(glob_matches("/repos/*/issues", "/repos/acme/issues"));
    assert!(!glob_matches("/repos/*/issues", "/repos/acme/x/issues"));
    assert!(glob_matches(
        "/*.git/git-receive-pack",
        "/x.git/git-receive-pack"
    ));
    assert!(!glob_matches("/repos/acme", "/repos/acme/x"));
}

#[test]
fn paths_are_read_the_way_a_server_reads_them() {
    assert_eq!(
        normalise_path("/repos/%61cme/../acme/x?q=1").unwrap(),
        "/repos/acme/x"
    );
    assert_eq!(normalise_path("/a/./b/%7e").unwrap(), "/a/b/~");
    assert_eq!(normalise_path("/a/%20b").unwrap(), "/a/%20b");
    assert_eq!(normalise_path("/../../etc").unwrap(), "/etc");
    for ambiguous in ["/a%2fb", "/a%5Cb", "/a\\b", "/a%00", "/a%zz", "/a%2"] {
        assert!(normalise_path(ambiguous).is_none(), "{ambiguous}");
    }
}

#[test]
fn a_read_is_allowed_and_a_push_to_main_refused() {
    let rules = vec![
        rule(
            Scope::Project("p".into()),
            "GET,HEAD /acme/**",
            &[],
            Action::Allow,
        ),
        rule(
            Scope::Project("p".into()),
            "POST /acme/*.git/git-receive-pack",
            &["refs/heads/main"],
            Action::Deny,
        ),
        rule(
            Scope::Project("p".into()),
            "POST /acme/*.git/git-receive-pack",
            &[],
            Action::Allow,
        ),
    ];
    let set = HttpRuleSet {
        rules: &rules,
        box_id: "b",
        project: "p",
        now_ms: 0,
    };
    let decide = |r: HttpRequestView| set.decide("github.com", 443, &r).map(|r| r.action);
    assert_eq!(
        decide(req("GET", "/acme/x.git/info/refs", &[])),
        Some(Action::Allow)
    );
    assert_eq!(
        decide(req(
            "POST",
            "/acme/x.git/git-receive-pack",
            &["refs/heads/agent/x"]
        )),
        Some(Action::Allow)
    );
    assert_eq!(
        decide(req(
            "POST",
            "/acme/x.git/git-receive-pack",
            &["refs/heads/agent/x", "refs/heads/main"]
        )),
        Some(Action::Deny)
    );
    assert_eq!(decide(req("DELETE", "/acme/x", &[])), None);
    assert!(set.covers("github.com", 443) && !set.covers("gitlab.com", 443));
    assert!(set.reads_refs("github.com", 443));
}

#[test]
fn the_box_before_the_project_then_the_longer_path_then_the_stricter() {
    let rules = vec![
        rule(Scope::Project("p".into()), "* /**", &[], Action::Deny),
        rule(
            Scope::Project("p".into()),
            "GET /repos/**",
            &[],
            Action::Ask,
        ),
        rule(Scope::Box("b".into()), "* /**", &[], Action::Allow),
        rule(
            Scope::Box("other".into()),
            "GET /repos/**",
            &[],
            Action::Deny,
        ),
    ];
    let set = HttpRuleSet {
        rules: &rules,
        box_id: "b",
        project: "p",
        now_ms: 0,
    };
    assert_eq!(
        set.decide("github.com", 443, &req("GET", "/repos/x", &[]))
            .unwrap()
            .action,
        Action::Allow
    );
    let project_only = HttpRuleSet {
        rules: &rules[..2],
        box_id: "b",
        project: "p",
        now_ms: 0,
    };
    assert_eq!(
        project_only
            .decide("github.com", 443, &req("GET", "/repos/x", &[]))
            .unwrap()
            .action,
        Action::Ask
    );
    assert_eq!(
        project_only
            .decide("github.com", 443, &req("PUT", "/repos/x", &[]))
            .unwrap()
            .action,
        Action::Deny
    );
}

#[test]
fn requests_and_refs_are_checked_when_written() {
    assert_eq!(
        parse_request("get,head /x/**").unwrap().0,
        vec!["GET", "HEAD"]
    );
    assert!(parse_request("/only/a/path").unwrap().0.is_empty());
    for bad in ["GET", "GET x", "G3T /x", "GET /a b", ""] {
        assert!(parse_request(bad).is_err(), "{bad}");
    }
    assert!(parse_ref("refs/heads/main").is_ok());
    assert!(parse_ref("main").is_err() && parse_ref("refs/../x").is_err());
    assert_eq!(parse_host("*.GitHub.com").unwrap(), "*.github.com");
    assert!(parse_host("*.com").is_err());
}

#[test]
fn a_push_says_which_refs_it_updates() {
    let z = "0".repeat(40);
    let n = "1".repeat(40);
    let first = format!("{z} {n} refs/heads/main\0report-status side-band-64k\n");
    let second = format!("{z} {n} refs/heads/agent/x\n");
    let mut body = format!(
        "{:04x}{first}{:04x}{second}0000",
        first.len() + 4,
        second.len() + 4
    )
    .into_bytes();
    body.extend_from_slice(b"PACK....");
    assert_eq!(
        push_refs(&body).unwrap(),
        vec!["refs/heads/main", "refs/heads/agent/x"]
    );
    assert!(push_refs(&body[..10]).is_none(), "cut short");
    assert!(push_refs(b"zzzz").is_none());
}
