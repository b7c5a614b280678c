use std::sync::Arc;

use hyper::Request;
use paddock_store::Store;
use paddock_vault::{BindingSpec, SecretUpdate, Vault, VaultKey};
use zeroize::Zeroizing;

use super::*;

fn vault() -> Vault {
    let vault = Vault::new(
        Arc::new(Store::open_in_memory().unwrap()),
        VaultKey::from_bytes([3; 32]),
    );
    let set = |name: &str, value: &str, bindings: &[&str]| {
        let update = SecretUpdate {
            value: Some(Zeroizing::new(value.as_bytes().to_vec())),
            env: None,
            bindings: Some(
                bindings
                    .iter()
                    .map(|b| BindingSpec::parse_cli(b).unwrap())
                    .collect(),
            ),
        };
        vault.set("p", name, update, 1).unwrap();
    };
    set(
        "gh",
        "ghp_REAL",
        &[
            "api.github.com=header:Authorization: Bearer {secret}",
            "github.com=basic:x-access-token",
        ],
    );
    set("maps", "MAPSKEY/+=", &["maps.example.com=query:key"]);
    set(
        "ant",
        "sk-ant-REAL",
        &["api.anthropic.com=header:x-api-key: {secret}"],
    );
    vault
}

fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(()).unwrap().into_parts().0
}

fn placeholder(secrets: &BoxSecrets, name: &str) -> String {
    secrets
        .secrets
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .placeholder
        .clone()
}

#[test]
fn a_bound_header_gets_the_value_wherever_the_placeholder_was() {
    let vault = vault();
    let secrets = vault.for_box("b", "p").unwrap();
    let ph = placeholder(&secrets, "gh");
    let mut p = parts("/user", &[("authorization", &format!("Bearer {ph}"))]);
    let used = prepare(&mut p, &secrets, "api.github.com", 443).unwrap();
    assert_eq!(used, vec!["gh".to_owned()]);
    assert_eq!(p.headers["authorization"], "Bearer ghp_REAL");
    assert!(p.headers["authorization"].is_sensitive());
    // Without any header the binding still authenticates (git sends none).
    let mut p = parts("/acme/repo.git/info/refs", &[]);
    prepare(&mut p, &secrets, "github.com", 443).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode("x-access-token:ghp_REAL");
    assert_eq!(
        p.headers["authorization"],
        format!("Basic {expected}").as_str()
    );
}

#[test]
fn a_query_binding_replaces_its_parameter_encoded() {
    let vault = vault();
    let secrets = vault.for_box("b", "p").unwrap();
    let ph = placeholder(&secrets, "maps");
    let mut p = parts(&format!("/geo?q=x&key={ph}"), &[]);
    prepare(&mut p, &secrets, "maps.example.com", 443).unwrap();
    assert_eq!(p.uri.query(), Some("q=x&key=MAPSKEY%2F%2B%3D"));
}

#[test]
fn a_placeholder_anywhere_else_is_refused_as_misuse() {
    let vault = vault();
    let secrets = vault.for_box("b", "p").unwrap();
    let gh = placeholder(&secrets, "gh");
    let ant = placeholder(&secrets, "ant");
    let cases = [
        // Another secret's placeholder to a host it is not bound to.
        (
            parts("/v1", &[("x-api-key", &gh)]),
            "api.anthropic.com",
            "the x-api-key header",
        ),
        (
            parts(&format!("/leak/{ant}"), &[]),
            "api.anthropic.com",
            "the path",
        ),
        (
            parts(&format!("/q?note={gh}"), &[]),
            "api.github.com",
            "the query",
        ),
        (
            parts("/", &[("x-forward", &format!("a {gh}"))]),
            "api.github.com",
            "the x-forward header",
        ),
    ];
    for (mut p, host, place) in cases {
        let before = p.headers.clone();
        match prepare(&mut p, &secrets, host, 443) {
            Err(Refusal::Misuse { place: got, .. }) => assert_eq!(got, place),
            other => panic!("{host} {place}: {other:?}"),
        }
        assert_eq!(p.headers, before, "nothing injected into a refused request");
    }
}

#[test]
fn plain_http_refuses_every_placeholder_and_other_boxes_ones_are_text() {
    let vault = vault();
    let secrets = vault.for_box("b", "p").unwrap();
    let ph = placeholder(&secrets, "ant");
    let p = parts("http://api.anthropic.com/", &[("x-api-key", &ph)]);
    assert!(matches!(
        scan_head(&p, &secrets, &Targets::default()),
        Err(Refusal::Misuse { .. })
    ));
    let other = vault.for_box("c", "p").unwrap();
    assert!(scan_head(&p, &other, &Targets::default()).is_ok());
}

#[test]
fn a_removed_secret_is_refused_as_worthless_not_as_misuse() {
    let vault = vault();
    let ph = placeholder(&vault.for_box("b", "p").unwrap(), "ant");
    vault.remove("p", "ant").unwrap();
    let secrets = vault.for_box("b", "p").unwrap();
    let mut p = parts("/v1", &[("x-api-key", &ph)]);
    let refusal = prepare(&mut p, &secrets, "api.anthropic.com", 443).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::Removed {
            secret: "ant".into()
        }
    );
    assert!(!refusal.reason("h").contains(&ph));
}

#[test]
fn reasons_never_carry_a_value_or_placeholder() {
    let vault = vault();
    let secrets = vault.for_box("b", "p").unwrap();
    let gh = placeholder(&secrets, "gh");
    let mut p = parts(&format!("/x/{gh}"), &[]);
    let reason = prepare(&mut p, &secrets, "api.github.com", 443)
        .unwrap_err()
        .reason("api.github.com");
    assert!(
        !reason.contains(&gh) && !reason.contains("ghp_REAL"),
        "{reason}"
    );
}
