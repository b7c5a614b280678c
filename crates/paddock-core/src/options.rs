//! How a box is made beyond its image: the OCI runtime it runs under and
//! whether its root filesystem is read-only. A create's own choice wins
//! over the image's profile, which wins over `[boxes]`.
//!
//! A runtime with its own network stack (gVisor's `runsc`) sends through a
//! packet socket, past the nftables rules paddock writes in the box's
//! namespace, and cannot reach Docker's embedded resolver: such a box is
//! guarded by the host fence alone and resolves through the gateway
//! directly. Both are decided here, from the runtime's name, so every path
//! that starts a box treats it the same way.

use crate::config::{CoreConfig, PullPolicy};
use crate::{CoreError, Result};

/// What a box's container is made with, resolved for one create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoxOptions {
    /// None: the engine's default runtime.
    pub runtime: Option<String>,
    pub read_only: bool,
}

impl BoxOptions {
    /// Resolves a create's choices against the image's profile and
    /// `[boxes]`, checking the runtime's name.
    pub fn resolve(
        config: &CoreConfig,
        image: &str,
        runtime: Option<String>,
        read_only: Option<bool>,
    ) -> Result<Self> {
        let profile = config.any_profile_for(image);
        let runtime = runtime
            .or_else(|| profile.and_then(|p| p.runtime.clone()))
            .unwrap_or_else(|| config.boxes.runtime.clone());
        let runtime = (!runtime.is_empty()).then_some(runtime);
        if let Some(name) = &runtime {
            runtime_name(name)?;
        }
        let read_only = read_only
            .or_else(|| profile.and_then(|p| p.read_only))
            .unwrap_or(config.boxes.read_only);
        Ok(Self { runtime, read_only })
    }
}

/// When `image` is pulled for a create that asked for `asked`.
pub fn pull_policy(config: &CoreConfig, image: &str, asked: Option<PullPolicy>) -> PullPolicy {
    asked
        .or_else(|| config.any_profile_for(image).and_then(|p| p.pull))
        .unwrap_or(config.boxes.pull)
}

/// The registry an image reference names: its first component when that
/// looks like a host (a dot, a port, or `localhost`), else Docker Hub.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Whether boxes under `runtime` bring their own network stack, so the
/// rules in their namespace do not see their traffic and Docker's
/// embedded resolver is out of their reach.
pub fn own_network_stack(runtime: Option<&str>) -> bool {
    runtime.is_some_and(|r| r == "runsc" || r.starts_with("runsc-"))
}

/// The pids limit the engine is given for a box meant to run `limit`
/// processes. A runtime with its own kernel (gVisor) runs that kernel's
/// threads, and under its ptrace platform about ten host threads per
/// process in the box, inside the container's pids cgroup: held to the
/// box's own figure, the sandbox dies at its tenth process ("error
/// initializing first thread: resource temporarily unavailable"). Such a
/// runtime gets room for its kernel; the figure still bounds a fork bomb.
pub fn engine_pids_limit(limit: i64, runtime: Option<&str>) -> i64 {
    if own_network_stack(runtime) {
        limit.saturating_mul(12).saturating_add(64)
    } else {
        limit
    }
}

/// Runtime names as Docker registers them: short, no path, no options.
fn runtime_name(value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !value.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(
            "runtime must be the name of a runtime registered with Docker (letters, digits, '-', '_', '.')"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImageProfile;

    fn config() -> CoreConfig {
        let mut c = CoreConfig::default();
        c.boxes.runtime = "runc".into();
        c.profiles.push(ImageProfile {
            image: "agent".into(),
            login_command: Vec::new(),
            url_pattern: String::new(),
            login: Default::default(),
            user_code_pattern: None,
            login_destinations: Vec::new(),
            command: Vec::new(),
            runtime: Some("runsc".into()),
            read_only: Some(true),
            pull: Some(PullPolicy::Always),
        });
        c
    }

    #[test]
    fn the_create_wins_over_the_profile_which_wins_over_boxes() {
        let c = config();
        let plain = BoxOptions::resolve(&c, "other", None, None).unwrap();
        assert_eq!(plain.runtime.as_deref(), Some("runc"));
        assert!(!plain.read_only);
        let profiled = BoxOptions::resolve(&c, "agent", None, None).unwrap();
        assert_eq!(profiled.runtime.as_deref(), Some("runsc"));
        assert!(profiled.read_only);
        let asked = BoxOptions::resolve(&c, "agent", Some("kata".into()), Some(false)).unwrap();
        assert_eq!(asked.runtime.as_deref(), Some("kata"));
        assert!(!asked.read_only);
        let default = BoxOptions::resolve(&CoreConfig::default(), "x", None, None).unwrap();
        assert_eq!(default, BoxOptions::default());
    }

    #[test]
    fn pulls_follow_the_create_then_the_profile_then_boxes() {
        let c = config();
        assert_eq!(pull_policy(&c, "other", None), PullPolicy::Missing);
        assert_eq!(pull_policy(&c, "agent", None), PullPolicy::Always);
        assert_eq!(
            pull_policy(&c, "agent", Some(PullPolicy::Never)),
            PullPolicy::Never
        );
        assert_eq!(registry_of("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/i"), "ghcr.io");
        assert_eq!(registry_of("localhost/i"), "localhost");
        assert_eq!(registry_of("library/debian:12"), "docker.io");
        assert_eq!(registry_of("debian"), "docker.io");
    }

    #[test]
    fn a_runtime_name_is_a_name_not_a_path_or_an_option() {
        let c = CoreConfig::default();
        for bad in [
            "/usr/bin/runsc",
            "--runtime=x",
            "run sc",
            ".hidden",
            &"r".repeat(65),
        ] {
            assert!(
                matches!(
                    BoxOptions::resolve(&c, "x", Some(bad.to_owned()), None),
                    Err(CoreError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert!(own_network_stack(Some("runsc")));
        assert!(own_network_stack(Some("runsc-kvm")));
        assert!(!own_network_stack(Some("runc")));
        assert!(!own_network_stack(None));
        assert_eq!(engine_pids_limit(64, None), 64);
        assert_eq!(engine_pids_limit(64, Some("runsc")), 64 * 12 + 64);
    }
}
