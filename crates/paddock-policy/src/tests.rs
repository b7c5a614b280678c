use std::sync::Arc;
use std::time::Duration;

use paddock_clearance::{Hub, HubConfig};
use paddock_egress::{Action, Egress, EgressConfig, Scope, Target};
use paddock_store::Store;
use paddock_vault::{SecretUpdate, Vault, VaultKey};

use crate::*;

fn parts() -> (Arc<Egress>, Vault) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let egress = Egress::new(
        EgressConfig {
            firewall: false,
            ..EgressConfig::default()
        },
        store.clone(),
        Hub::new(HubConfig::default()),
    )
    .unwrap();
    let vault = Vault::new(store, VaultKey::from_bytes([1; 32]));
    vault
        .set(
            "p",
            "GITHUB",
            SecretUpdate {
                value: Some(zeroize_free(b"ghp_x")),
                ..SecretUpdate::default()
            },
            1,
        )
        .unwrap();
    (egress, vault)
}

fn zeroize_free(v: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(v.to_vec())
}

const DOC: &str = r#"
presets = ["npm"]

[[rules]]
target = "api.anthropic.com"
ports = "443"
action = "allow"

[[http_rules]]
host = "github.com"
request = "post /*.git/git-receive-pack"
refs = ["refs/heads/main"]
action = "deny"

[secrets.GITHUB]
env = "GITHUB_TOKEN"
bindings = [{ hosts = ["api.github.com"], header = "Authorization: Bearer {secret}" }]
"#;

fn doc() -> PolicyDoc {
    toml::from_str(DOC).unwrap()
}

#[test]
fn applying_twice_changes_nothing_the_second_time() {
    let (egress, vault) = parts();
    let first = plan("p", &doc(), &egress, &vault).unwrap();
    let lines: Vec<String> = first.changes.iter().map(ToString::to_string).collect();
    assert!(
        lines.contains(&"+ rule allow api.anthropic.com port 443".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"+ rule allow registry.npmjs.org port 443".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "+ http rule deny github.com POST /*.git/git-receive-pack refs refs/heads/main"
        )),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("~ secret GITHUB: env GITHUB_TOKEN")),
        "{lines:?}"
    );
    assert!(first.touches_secrets());
    apply(&first, &egress, &vault, "test", 2).unwrap();
    let second = plan("p", &doc(), &egress, &vault).unwrap();
    assert_eq!(second.changes, vec![], "idempotent");
    assert_eq!(
        vault.list(Some("p")).unwrap()[0].env.as_deref(),
        Some("GITHUB_TOKEN")
    );
}

#[test]
fn export_round_trips_through_apply() {
    let (egress, vault) = parts();
    apply(
        &plan("p", &doc(), &egress, &vault).unwrap(),
        &egress,
        &vault,
        "t",
        2,
    )
    .unwrap();
    let exported = export("p", &egress, &vault).unwrap();
    let text = toml::to_string(&exported).unwrap();
    let read: PolicyDoc = toml::from_str(&text).unwrap();
    assert_eq!(read, exported);
    assert_eq!(
        plan("p", &read, &egress, &vault).unwrap().changes,
        vec![],
        "{text}"
    );
    assert!(!text.contains("ghp_x"), "no value in a policy: {text}");
}

#[test]
fn what_the_document_does_not_own_is_left_alone() {
    let (egress, vault) = parts();
    egress
        .put_rule(
            Scope::Project("p".into()),
            Target::Domain("old.example".into()),
            None,
            Action::Allow,
            None,
            "t",
        )
        .unwrap();
    egress
        .put_rule(
            Scope::Project("p".into()),
            Target::Domain("hour.example".into()),
            None,
            Action::Allow,
            Some(Duration::from_secs(3600)),
            "t",
        )
        .unwrap();
    egress
        .put_rule(
            Scope::Box("b".into()),
            Target::Domain("box.example".into()),
            None,
            Action::Allow,
            None,
            "t",
        )
        .unwrap();
    egress
        .put_rule(
            Scope::Project("q".into()),
            Target::Domain("other.example".into()),
            None,
            Action::Allow,
            None,
            "t",
        )
        .unwrap();
    let plan = plan("p", &PolicyDoc::default(), &egress, &vault).unwrap();
    let lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("- rule #") && lines[0].ends_with("allow old.example"),
        "{lines:?}"
    );
}

#[test]
fn a_document_that_would_not_apply_whole_changes_nothing() {
    let (egress, vault) = parts();
    let bad = [
        "presets = [\"nope\"]",
        "[[rules]]\ntarget = \"a.example\"\naction = \"allow\"\n[[rules]]\ntarget = \"A.example\"\naction = \"deny\"",
        "[[rules]]\ntarget = \"not a host\"\naction = \"allow\"",
        "[[http_rules]]\nhost = \"a.example\"\nrequest = \"GET nopath\"\naction = \"allow\"",
        "[secrets.MISSING]\nenv = \"X\"",
        "[secrets.GITHUB]\nbindings = [{ hosts = [\"10.0.0.1\"], header = \"x: {secret}\" }]",
    ];
    for text in bad {
        let doc: PolicyDoc = toml::from_str(text).unwrap();
        assert!(plan("p", &doc, &egress, &vault).is_err(), "{text}");
    }
    assert!(toml::from_str::<PolicyDoc>("surprise = 1").is_err());
    assert!(egress.rules().is_empty() && egress.http_rules().is_empty());
}

#[test]
fn every_shipped_preset_reads_and_applies() {
    let (egress, vault) = parts();
    let names: Vec<String> = presets().unwrap().iter().map(|p| p.name.clone()).collect();
    for wanted in [
        "npm",
        "pypi",
        "crates-io",
        "debian",
        "github-read",
        "model-apis",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    let doc = PolicyDoc {
        presets: names,
        ..PolicyDoc::default()
    };
    let plan = plan("p", &doc, &egress, &vault).unwrap();
    apply(&plan, &egress, &vault, "t", 1).unwrap();
    assert!(egress.rules().len() > 10 && egress.http_rules().len() > 5);
}
