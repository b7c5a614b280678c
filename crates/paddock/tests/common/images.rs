//! The box images the tests build offline from this machine's own files
//! (busybox from Debian's busybox-static, Debian's git), and the fake
//! login's configurations.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::{docker, fixtures};

pub const TEST_IMAGE: &str = "paddock-test-box:test";
/// `bin/` with Debian's static busybox and a link per applet, and `tmp/`.
fn busybox_rootfs(root: &Path) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox exists (Debian package busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
}

/// Builds the busybox test image once per test binary (offline: busybox
/// comes from Debian's busybox-static on this machine).
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ctx = tempfile::tempdir().unwrap();
        busybox_rootfs(ctx.path());
        for f in ["Dockerfile", "fake-login", "fake-device-login"] {
            std::fs::copy(fixtures().join("box-image").join(f), ctx.path().join(f)).unwrap();
        }
        let out = docker(&[
            "build",
            "-q",
            "-t",
            TEST_IMAGE,
            ctx.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    TEST_IMAGE
}

pub const GIT_IMAGE: &str = "paddock-test-git:test";

/// A box image with Debian's git (and the shared libraries it loads) on top
/// of busybox, built offline from this machine's own files.
pub fn git_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        programs_image(
            GIT_IMAGE,
            &[
                "/usr/bin/git",
                "/usr/lib/git-core/git",
                "/usr/lib/git-core/git-remote-http",
                "/usr/lib/git-core/git-remote-https",
            ],
        )
    });
    GIT_IMAGE
}

pub const CURL_IMAGE: &str = "paddock-test-curl:test";

/// A box image with Debian's curl, a client that verifies certificates
/// (busybox wget does not) and reads `CURL_CA_BUNDLE`/`SSL_CERT_FILE`;
/// no trust store of its own, so only paddock's bundle makes TLS work.
pub fn curl_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| programs_image(CURL_IMAGE, &["/usr/bin/curl"]));
    CURL_IMAGE
}

/// Builds `tag`: busybox, `programs` and every shared library they load,
/// copied from this machine (offline).
fn programs_image(tag: &str, programs: &[&str]) {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path().join("rootfs");
    busybox_rootfs(&root);
    let ldd = Command::new("ldd").args(programs).output().unwrap();
    let mut files: Vec<String> = programs.iter().map(|p| p.to_string()).collect();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split("=>").nth(1) {
            Some(rest) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/') && !p.ends_with(':')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(p.to_owned());
        }
    }
    files.sort();
    files.dedup();
    for f in files {
        let dest = root.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap_or_else(|e| panic!("copying {f}: {e}"));
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs /\nENV PATH=/usr/bin:/bin HOME=/tmp\nCMD [\"/bin/sleep\", \"2147483647\"]\n",
    )
    .unwrap();
    let out = docker(&["build", "-q", "-t", tag, ctx.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Configuration for a login that trades its code over the network, as a
/// real agent's does: the fake login fetches
/// `http://idp.test:<port>/token` (the test's own server on loopback)
/// through the box's proxy. `destinations` is the profile's
/// `login_destinations` list, as TOML items.
pub fn networked_login_toml(idp_port: u16, destinations: &str) -> String {
    let image = test_image();
    format!(
        "[egress]\nhold_timeout_secs = 30\n[egress.hosts]\n\"idp.test\" = [\"127.0.0.1\"]\n\
         [[profiles]]\nimage = \"{image}\"\n\
         login_command = [\"/bin/sh\", \"-c\", \"FAKE_LOGIN_TOKEN_URL=http://idp.test:{idp_port}/token exec /usr/local/bin/fake-login\"]\n\
         url_pattern = 'https://auth\\.paddock\\.test/\\S+'\nlogin_destinations = [{destinations}]\n"
    )
}

pub const SHELL_IMAGE: &str = "paddock-test-shell:test";

/// A shell image as Docker Hub's busybox, Debian and Ubuntu are: its only
/// command is an interactive shell (`sh`), which ends at once without a
/// terminal.
pub fn shell_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM {}\nCMD [\"sh\"]\n", test_image()),
        )
        .unwrap();
        let out = docker(&[
            "build",
            "-q",
            "-t",
            SHELL_IMAGE,
            ctx.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    SHELL_IMAGE
}

/// The agent image (`scripts/build-agent-image`: Debian, Claude Code and
/// Codex from the npm registry), built once if this machine lacks it —
/// the one test image that needs the package registries.
pub fn agent_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let present = ["paddock-agent:claude", "paddock-agent:codex"]
            .iter()
            .all(|tag| docker(&["image", "inspect", tag]).status.success());
        if present {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-agent-image");
        let out = Command::new(script).output().unwrap();
        assert!(
            out.status.success(),
            "scripts/build-agent-image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    "paddock-agent"
}

/// The profiles paddock ships for the agent image, as configuration with
/// nothing allowed for the logins: what they reach is held (and a test
/// denies it), so nothing ever leaves this machine.
pub fn agent_profiles_held_toml() -> String {
    let shipped: toml::Table =
        toml::from_str(include_str!("../../src/agent_profiles.toml")).unwrap();
    let mut profiles = shipped["profiles"].as_array().unwrap().clone();
    for p in &mut profiles {
        p.as_table_mut()
            .unwrap()
            .insert("login_destinations".into(), toml::Value::Array(Vec::new()));
    }
    let mut table = toml::Table::new();
    table.insert("profiles".into(), toml::Value::Array(profiles));
    toml::to_string(&table).unwrap()
}
