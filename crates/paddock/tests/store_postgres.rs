//! Several hubs on one PostgreSQL (a server this test starts from
//! Debian's packages): two `paddock serve` processes, each with its own
//! data dir, listener and clearance socket, share tokens, boxes, rules and
//! the audit log; one leads (reconcile, reaper) and the other takes over
//! when it is killed; a hub that names another instance is refused.

use std::process::Command;
use std::time::Duration;

use paddock_store::testing::TempPostgres;
use serde_json::json;

use crate::common::egress_site::exec;
use crate::common::{Options, Paddock, paddock_bin, wait_for};

fn on(url: &str, default_instance: bool) -> Paddock {
    Paddock::start(Options {
        extra_toml: format!("[store]\nurl = \"{url}\"\n"),
        default_instance,
        login_profile: false,
        ..Options::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hubs_on_one_postgres_share_what_they_keep_and_one_takes_over_from_the_other() {
    let pg = TempPostgres::start().expect("PostgreSQL is installed (scripts/test installs it)");
    let url = pg.database("hubs");
    let mut a = on(&url, false);
    let b = on(&url, true);
    assert_eq!(
        b.instance, a.instance,
        "hubs on one database are one instance"
    );
    assert!(
        b.log().contains("another hub on this database leads"),
        "{}",
        b.log()
    );

    // A token minted at one hub is good at the other.
    let (_, token) = a.mint(&["agent"], Some(&["alpha"])).await;
    let (status, me) = b.get_as(&token, "/api/v1/whoami").await;
    assert_eq!(status, 200, "{me}");

    // A box made through B is A's to list and reach (one engine here).
    let (status, made) = b
        .post(
            "/api/v1/boxes",
            json!({"project": "alpha", "box_id": "both"}),
        )
        .await;
    assert_eq!(status, 201, "{made}\n{}", b.log());
    let (status, seen) = a.get("/api/v1/boxes/both").await;
    assert_eq!((status, &seen["state"]), (200, &json!("ready")), "{seen}");
    let out = exec(&a, "both", "echo through a").await;
    assert_eq!(out["stdout"], "through a\n", "{out}");

    let (status, made) = a
        .post(
            "/api/v1/boxes",
            json!({"project": "alpha", "box_id": "from-a"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");

    // A rule written at A is one B lists; the audit is one log.
    let rule = a.cli(&["egress", "allow", "--project", "alpha", "example.test"]);
    assert!(
        rule.status.success(),
        "{}",
        String::from_utf8_lossy(&rule.stderr)
    );
    let listed = b.cli(&["egress", "rules", "--json"]);
    let rules: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["target"] == "example.test"),
        "{rules}"
    );

    // A, the leader, is killed: B takes over and reconciles, and both
    // boxes are still there, reached through B.
    a.kill9();
    wait_for(
        "B to take over and reconcile",
        Duration::from_secs(20),
        || async {
            b.log()
                .contains("reconciled with the docker engine")
                .then_some(())
        },
    )
    .await;
    let out = exec(&b, "both", "echo through b").await;
    assert_eq!(out["stdout"], "through b\n", "{out}\n{}", b.log());
    // A's own box too: B guards it now, and it still reaches the gateway.
    let out = exec(&b, "from-a", "echo still here").await;
    assert_eq!(out["stdout"], "still here\n", "{out}\n{}", b.log());
    let (_, all) = b.get("/api/v1/boxes").await;
    assert_eq!(all["boxes"].as_array().map(Vec::len), Some(2), "{all}");

    // A hub configured as another instance is refused, naming the
    // store's: it would take the others' boxes for a crash's leftovers.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paddock.toml");
    std::fs::write(
        &config,
        format!("instance = \"test-other\"\n[store]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let refused = Command::new(paddock_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--clearance-socket"])
        .arg(dir.path().join("c.sock"))
        .env(
            "PADDOCK_ADMIN_TOKEN",
            "test-admin-other-aaaaaaaaaaaaaaaaaaaaaaaa",
        )
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!("belongs to instance \"{}\"", a.instance)),
        "{said}"
    );
    assert!(
        !said.contains("postgres://"),
        "the URL stays out of errors: {said}"
    );
    // The client's statement parameters (token hashes, sealed values)
    // never reach the log, though the hubs log at debug.
    assert!(!b.log().contains("executing statement"), "{}", b.log());
    drop(b);
    drop(pg);
}
