use super::*;

fn vault() -> (Vault, Arc<Store>) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    (
        Vault::new(store.clone(), VaultKey::from_bytes([9; 32])),
        store,
    )
}

fn value(v: &str) -> Option<Zeroizing<Vec<u8>>> {
    Some(Zeroizing::new(v.as_bytes().to_vec()))
}

fn github() -> Vec<BindingSpec> {
    vec![BindingSpec::parse_cli("api.github.com=header:Authorization: Bearer {secret}").unwrap()]
}

#[test]
fn the_store_holds_no_value_in_the_clear_and_listings_show_none() {
    let (vault, store) = vault();
    let update = SecretUpdate {
        value: value("ghp_realvalue123"),
        env: Some(Some("GITHUB_TOKEN".into())),
        bindings: Some(github()),
    };
    vault.set("p", "gh", update, 10).unwrap();
    let row = store.secret("p", "gh").unwrap().unwrap();
    assert!(!row.sealed.windows(6).any(|w| w == b"ghp_re"));
    let listed = vault.list(None).unwrap();
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains("realvalue"), "{shown}");
    assert!(shown.contains("GITHUB_TOKEN") && shown.contains("api.github.com"));
}

#[test]
fn placeholders_are_per_box_and_rotation_keeps_them() {
    let (vault, _) = vault();
    let set = |v: &str| SecretUpdate {
        value: value(v),
        env: Some(Some("GITHUB_TOKEN".into())),
        bindings: Some(github()),
    };
    vault.set("p", "gh", set("first"), 1).unwrap();
    let a = vault.for_box("box-a", "p").unwrap();
    let b = vault.for_box("box-b", "p").unwrap();
    assert_ne!(a.secrets[0].placeholder, b.secrets[0].placeholder);
    assert_eq!(a.secrets[0].placeholder.len(), PLACEHOLDER_LEN);
    assert_eq!(
        vault.box_env("box-a", "p").unwrap(),
        vec![format!("GITHUB_TOKEN={}", a.secrets[0].placeholder)]
    );
    vault.set("p", "gh", set("second"), 2).unwrap();
    let a2 = vault.for_box("box-a", "p").unwrap();
    assert_eq!(a2.secrets[0].placeholder, a.secrets[0].placeholder);
    assert_eq!(a2.secrets[0].value().unwrap().expose(), b"second");
    // Only a value or only bindings: the rest stays.
    vault
        .set(
            "p",
            "gh",
            SecretUpdate {
                bindings: Some(vec![]),
                ..Default::default()
            },
            3,
        )
        .unwrap();
    let a3 = vault.for_box("box-a", "p").unwrap();
    assert_eq!(a3.secrets[0].value().unwrap().expose(), b"second");
    assert!(!a3.binds("api.github.com", 443));
}

#[test]
fn bound_hosts_and_found_placeholders() {
    let (vault, _) = vault();
    let update = SecretUpdate {
        value: value("v"),
        env: None,
        bindings: Some(github()),
    };
    vault.set("p", "gh", update, 1).unwrap();
    let view = vault.for_box("b", "p").unwrap();
    assert!(view.binds("api.github.com", 443));
    assert!(!view.binds("api.github.com", 80));
    assert!(!view.binds("github.com", 443));
    let ph = view.secrets[0].placeholder.clone();
    assert_eq!(
        view.find(format!("token {ph} here").as_bytes())
            .unwrap()
            .name,
        "gh"
    );
    assert!(view.find(b"pdk_ph_0000").is_none());
    let other = vault.for_box("c", "p").unwrap();
    assert!(
        other.find(ph.as_bytes()).is_none(),
        "another box's placeholder is just text"
    );
}

#[test]
fn a_stream_scan_finds_a_placeholder_cut_anywhere() {
    let (vault, _) = vault();
    vault
        .set(
            "p",
            "k",
            SecretUpdate {
                value: value("v"),
                ..Default::default()
            },
            1,
        )
        .unwrap();
    let view = vault.for_box("b", "p").unwrap();
    let body = format!(
        "{}{}{}",
        "x".repeat(100),
        view.secrets[0].placeholder,
        "y".repeat(50)
    );
    let bytes = body.as_bytes();
    for chunk in [1, 2, 3, 7, 30, 46, 47, 48, 200] {
        let mut scan = StreamScan::default();
        let found = bytes.chunks(chunk).any(|c| scan.feed(&view, c).is_some());
        assert!(found, "chunks of {chunk}");
    }
    let mut scan = StreamScan::default();
    assert!(
        "z".repeat(500)
            .as_bytes()
            .chunks(13)
            .all(|c| scan.feed(&view, c).is_none())
    );
}

#[test]
fn bad_input_changes_nothing() {
    let (vault, store) = vault();
    let bad = [
        SecretUpdate {
            value: value("a b"),
            ..Default::default()
        },
        SecretUpdate {
            value: value("ok"),
            env: Some(Some("HTTPS_PROXY".into())),
            ..Default::default()
        },
        SecretUpdate {
            value: value("ok"),
            bindings: Some(vec![BindingSpec {
                hosts: vec!["10.0.0.1".into()],
                header: Some("x: {secret}".into()),
                ..Default::default()
            }]),
            ..Default::default()
        },
        SecretUpdate::default(),
    ];
    for update in bad {
        assert!(vault.set("p", "k", update, 1).is_err());
    }
    assert!(
        vault
            .set(
                "p",
                "a/b",
                SecretUpdate {
                    value: value("ok"),
                    ..Default::default()
                },
                1
            )
            .is_err()
    );
    assert!(store.secrets(None).unwrap().is_empty());
    assert!(matches!(
        vault.remove("p", "k"),
        Err(VaultError::NotFound { .. })
    ));
}

#[test]
fn a_removed_secret_is_known_and_worthless() {
    let (vault, _) = vault();
    vault
        .set(
            "p",
            "k",
            SecretUpdate {
                value: value("v"),
                bindings: Some(github()),
                ..Default::default()
            },
            1,
        )
        .unwrap();
    let before = vault.for_box("b", "p").unwrap();
    vault.remove("p", "k").unwrap();
    let after = vault.for_box("b", "p").unwrap();
    let found = after
        .find(before.secrets[0].placeholder.as_bytes())
        .unwrap();
    assert!(found.removed && found.value().is_none());
    assert!(!after.binds("api.github.com", 443));
}

#[test]
fn a_value_sealed_under_another_key_does_not_open() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    Vault::new(store.clone(), VaultKey::from_bytes([1; 32]))
        .set(
            "p",
            "k",
            SecretUpdate {
                value: value("v"),
                ..Default::default()
            },
            1,
        )
        .unwrap();
    let other = Vault::new(store, VaultKey::from_bytes([2; 32]));
    let view = other.for_box("b", "p").unwrap();
    assert!(view.secrets[0].value().is_none());
}

#[test]
fn use_is_written_at_most_every_ten_seconds() {
    let (vault, store) = vault();
    vault
        .set(
            "p",
            "k",
            SecretUpdate {
                value: value("v"),
                ..Default::default()
            },
            1,
        )
        .unwrap();
    vault.used("p", "k", 1_000);
    vault.used("p", "k", 2_000);
    assert_eq!(
        store.secret("p", "k").unwrap().unwrap().last_used_ms,
        Some(1_000)
    );
    vault.used("p", "k", 11_000);
    assert_eq!(
        store.secret("p", "k").unwrap().unwrap().last_used_ms,
        Some(11_000)
    );
}
