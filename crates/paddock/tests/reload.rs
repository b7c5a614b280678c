//! SIGHUP: a changed hook applies from the next box on, a connection held
//! across the reload still proceeds on its verdict, and a configuration
//! that does not load changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::egress_site::{Held, create_box, exec};
use crate::common::{Options, Paddock, wait_for};

/// A hook that puts `/etc/paddock/version.txt` with `version` in a box.
fn hook(dir: &std::path::Path, version: &str) -> String {
    let path = dir.join(format!("hook-{version}.sh"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ncat >/dev/null\necho '{{\"files\":[{{\"path\":\"/etc/paddock/version.txt\",\"content\":\"{version}\"}}]}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

async fn version_in(p: &Paddock, box_id: &str) -> String {
    create_box(p, box_id, "proj").await;
    let out = exec(p, box_id, "cat /etc/paddock/version.txt").await;
    out["stdout"].as_str().unwrap().to_owned()
}

async fn logged(p: &Paddock, what: &str, times: usize) {
    wait_for(what, Duration::from_secs(20), || async {
        (p.log().matches(what).count() >= times).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_takes_new_hooks_without_dropping_a_held_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (hook(dir.path(), "v1"), hook(dir.path(), "v2"));
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!(
            "[egress.hosts]\n\"asked.test\" = [\"127.0.0.1\"]\n\
             [[hooks]]\nname = \"version\"\ncommand = [\"{v1}\"]\n"
        ),
        ..Options::default()
    });
    assert_eq!(version_in(&p, "before").await, "v1");

    // A connection held while the configuration changes.
    let held = Held::open(&p, "before", "proj", "asked.test").await;

    let config = p.dir.path().join("paddock.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&v1, &v2)).unwrap();
    p.signal("HUP");
    logged(&p, "configuration reloaded", 1).await;
    assert_eq!(version_in(&p, "after").await, "v2");

    // The held connection outlived the reload: its verdict lets it through.
    let out = held.allow(&p).await;
    assert_eq!(out["exit_code"], 0, "{out}");

    // A configuration that does not load: refused, the one in force stays.
    std::fs::write(&config, "this is = not [toml").unwrap();
    p.signal("HUP");
    logged(&p, "reload refused", 1).await;
    assert_eq!(version_in(&p, "still").await, "v2");
    assert_eq!(p.get("/healthz").await.0, 200);
}
