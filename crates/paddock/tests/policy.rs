//! Policy as code through the CLI and REST against a real server: a file
//! applied (dry run first, which changes nothing), applied again (nothing
//! to change), exported and applied back unchanged; who may apply what.

use serde_json::json;

use crate::common::{Options, Paddock};

const POLICY: &str = r#"
presets = ["npm"]

[[rules]]
target = "api.anthropic.com"
ports = "443"
action = "allow"

[[http_rules]]
host = "github.com"
request = "POST /*.git/git-receive-pack"
refs = ["refs/heads/main"]
action = "deny"

[secrets.FORGE]
env = "GITHUB_TOKEN"
bindings = [{ hosts = ["github.com"], basic = "x-access-token" }]
"#;

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_file_applies_once_and_round_trips_through_export() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let file = p.dir.path().join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let file = file.to_str().unwrap();

    // The secret has no value yet: the whole file is refused.
    let out = p.cli(&["policy", "apply", "-f", file, "--project", "demo"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("paddock secret set FORGE"));
    let (status, _) = p
        .put(
            "/api/v1/projects/demo/secrets/FORGE",
            json!({"value": "tok"}),
        )
        .await;
    assert_eq!(status, 200);

    let dry = stdout(&p.cli(&[
        "policy",
        "apply",
        "-f",
        file,
        "--project",
        "demo",
        "--dry-run",
    ]));
    assert!(
        dry.contains("+ rule allow api.anthropic.com port 443"),
        "{dry}"
    );
    assert!(
        dry.contains("+ rule allow registry.npmjs.org port 443"),
        "{dry}"
    );
    assert!(
        dry.contains(
            "+ http rule deny github.com POST /*.git/git-receive-pack refs refs/heads/main"
        ),
        "{dry}"
    );
    assert!(dry.contains("~ secret FORGE"), "{dry}");
    assert!(dry.contains("dry run"), "{dry}");
    let (_, rules) = p.get("/api/v1/egress/rules").await;
    assert_eq!(rules["rules"], json!([]), "a dry run changes nothing");

    let applied = stdout(&p.cli(&["policy", "apply", "-f", file, "--project", "demo"]));
    assert!(applied.contains("changes made"), "{applied}");
    let again = stdout(&p.cli(&["policy", "apply", "-f", file, "--project", "demo"]));
    assert!(again.contains("nothing to change"), "{again}");

    let exported = stdout(&p.cli(&["policy", "export", "--project", "demo"]));
    assert!(
        exported.contains("api.anthropic.com") && exported.contains("x-access-token"),
        "{exported}"
    );
    assert!(!exported.contains("tok\""), "no value: {exported}");
    let back = p.dir.path().join("exported.toml");
    std::fs::write(&back, &exported).unwrap();
    let round = stdout(&p.cli(&[
        "policy",
        "apply",
        "-f",
        back.to_str().unwrap(),
        "--project",
        "demo",
    ]));
    assert!(round.contains("nothing to change"), "{round}");

    // An empty policy removes what the file had put there.
    let empty = p.dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let cleared = stdout(&p.cli(&[
        "policy",
        "apply",
        "-f",
        empty.to_str().unwrap(),
        "--project",
        "demo",
    ]));
    assert!(cleared.contains("- rule #"), "{cleared}");
    let (_, rules) = p.get("/api/v1/egress/http-rules").await;
    assert_eq!(rules["rules"], json!([]));

    let presets = stdout(&p.cli(&["policy", "presets"]));
    for name in [
        "npm",
        "pypi",
        "crates-io",
        "debian",
        "github-read",
        "model-apis",
    ] {
        assert!(presets.contains(name), "{presets}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn applying_bindings_takes_secret_write_and_rules_take_egress_rules() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let (status, _) = p
        .put(
            "/api/v1/projects/demo/secrets/FORGE",
            json!({"value": "tok"}),
        )
        .await;
    assert_eq!(status, 200);
    let doc = json!({"secrets": {"FORGE": {"env": "GITHUB_TOKEN", "bindings": [{"hosts": ["github.com"], "basic": "x-access-token"}]}}});
    let put = |token: String, body: serde_json::Value| {
        let p_url = p.url.clone();
        let client = p.client_as(&token);
        async move {
            client
                .put(format!("{p_url}/api/v1/projects/demo/policy"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let (_, rules_only) = p
        .mint(&["egress:rules", "egress:read"], Some(&["demo"]))
        .await;
    assert_eq!(
        put(rules_only.clone(), doc.clone()).await,
        403,
        "bindings need secret:write"
    );
    let rules_doc = json!({"rules": [{"target": "pypi.org", "action": "allow"}]});
    assert_eq!(put(rules_only, rules_doc.clone()).await, 200);
    let (_, agent) = p.mint(&["agent"], None).await;
    assert_eq!(put(agent, rules_doc).await, 403);
    let (_, other) = p.mint(&["*"], Some(&["other"])).await;
    assert_eq!(put(other, doc).await, 403, "another project's policy");
}
