//! The configuration file: parsing, defaults and the checks `resolve` makes.

use super::*;

fn vars(list: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
        .into_iter()
}

#[test]
fn the_shipped_agent_profiles_hold_and_a_configured_one_replaces_its_image() {
    let shipped = with_shipped_profiles(Vec::new()).unwrap();
    let images: Vec<&str> = shipped.iter().map(|p| p.image.as_str()).collect();
    assert_eq!(images, ["paddock-agent:claude", "paddock-agent:codex"]);
    let core = CoreConfig {
        profiles: shipped.clone(),
        ..CoreConfig::default()
    };
    core.check().unwrap();

    let mut mine = shipped[0].clone();
    mine.login_destinations.clear();
    let merged = with_shipped_profiles(vec![mine]).unwrap();
    assert_eq!(merged.len(), 2);
    assert!(merged[0].login_destinations.is_empty());
    assert_eq!(merged[1].image, "paddock-agent:codex");
}

#[test]
fn the_shipped_profiles_find_what_the_agents_print() {
    use paddock_core::{LoginPrompt, find_prompt};
    let shipped = with_shipped_profiles(Vec::new()).unwrap();
    // `claude auth login` 2.1.332, on a pipe.
    let said = "Opening browser to sign in\u{2026}\nIf the browser didn't open, visit:\n\
                https://claude.ai/oauth/authorize?z-BQ9wdEhBIzinQVfMEto\nPaste code here if prompted > ";
    assert_eq!(
        find_prompt(&shipped[0], said.as_bytes()).unwrap(),
        Some(LoginPrompt::PasteCode {
            authorize_url: "https://claude.ai/oauth/authorize?z-BQ9wdEhBIzinQVfMEto".into()
        })
    );
    // `codex login --device-auth` 0.171.0, coloured as it prints.
    let said = "1. Open this link in your browser and sign in to your account\n   \
                \x1b[94mhttps://auth.openai.com/codex/device\x1b[0m\n\n2. Enter this one-time code \
                \x1b[90m(expires in 15 minutes)\x1b[0m\n   \x1b[94mQX7R-9KDP2\x1b[0m\n";
    assert_eq!(
        find_prompt(&shipped[1], said.as_bytes()).unwrap(),
        Some(LoginPrompt::DeviceCode {
            verification_url: "https://auth.openai.com/codex/device".into(),
            user_code: "QX7R-9KDP2".into()
        })
    );
}

#[test]
fn env_overrides_nested_keys_with_typed_values() {
    let mut table: toml::Table = "[boxes]\nmax_boxes = 3\n".parse().unwrap();
    apply_env(
        &mut table,
        vars(&[
            ("PADDOCK_BOXES__MAX_BOXES", "7"),
            ("PADDOCK_SERVER__LISTEN", "127.0.0.1:9"),
            ("PADDOCK_LISTEN", "ignored-here"),
            ("OTHER__X", "1"),
        ]),
    )
    .unwrap();
    let config: PaddockConfig = toml::Value::Table(table).try_into().unwrap();
    assert_eq!(config.boxes.max_boxes, 7);
    assert_eq!(config.server.listen, "127.0.0.1:9");
}

#[test]
fn unknown_keys_are_refused() {
    let table: toml::Table = "[boxes]\nmax_boxs = 3\n".parse().unwrap();
    let err = toml::Value::Table(table)
        .try_into::<PaddockConfig>()
        .unwrap_err();
    assert!(err.to_string().contains("max_boxs"), "{err}");
}

#[test]
fn https_needs_both_files_and_makes_the_public_url_https() {
    let mut config = PaddockConfig::default();
    config.server.tls_cert = Some("cert.pem".into());
    let err = resolve(config.clone()).err().unwrap().to_string();
    assert!(err.contains("go together"), "{err}");
    config.server.tls_key = Some("key.pem".into());
    let resolved = resolve(config).unwrap();
    assert_eq!(resolved.core.public_url, "https://127.0.0.1:7878");
    let files = resolved.tls.unwrap();
    assert!(files.cert.is_absolute() && files.key.is_absolute());
}

#[test]
fn non_loopback_listen_needs_authentication_on() {
    let mut config = PaddockConfig::default();
    config.server.listen = "0.0.0.0:7878".into();
    assert!(
        resolve(config.clone()).is_ok(),
        "with auth on it may bind anywhere"
    );
    config.iam.enabled = false;
    let err = resolve(config.clone()).err().unwrap().to_string();
    assert!(err.contains("refusing to listen"), "{err}");
    config.server.listen = "127.0.0.1:7878".into();
    assert!(resolve(config).is_ok(), "auth off is fine on loopback");
}

#[test]
fn public_url_host_is_allowed_for_mcp() {
    let config = PaddockConfig {
        public_url: Some("https://paddock.example:8443/base".into()),
        ..PaddockConfig::default()
    };
    let resolved = resolve(config).unwrap();
    assert!(
        resolved
            .allowed_hosts
            .contains(&"paddock.example:8443".to_owned())
    );
}

#[test]
fn relative_paths_are_made_absolute_against_the_starting_directory() {
    let mut config = PaddockConfig::default();
    config.server.data_dir = Some(PathBuf::from("data"));
    config.server.clearance_socket = Some(PathBuf::from("run/clearance.sock"));
    config.git.base_path = Some(PathBuf::from("repos"));
    let resolved = resolve(config).unwrap();
    let here = std::env::current_dir().unwrap();
    assert_eq!(resolved.data_dir, here.join("data"));
    assert_eq!(resolved.clearance_socket, here.join("run/clearance.sock"));
    assert_eq!(resolved.git.base_path, Some(here.join("repos")));
}

#[test]
fn a_ping_interval_out_of_range_is_refused_before_anything_starts() {
    let mut config = PaddockConfig::default();
    assert_eq!(config.spokes.ping_every().unwrap().as_secs(), 10);
    for bad in [0, 301] {
        config.spokes.ping_secs = bad;
        let err = resolve(config.clone()).err().unwrap().to_string();
        assert!(err.contains("spokes.ping_secs"), "{err}");
    }
    config.spokes.ping_secs = 1;
    assert!(resolve(config).is_ok());
}
