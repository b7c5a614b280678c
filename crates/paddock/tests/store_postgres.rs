//! Several hubs on one PostgreSQL (a server this test starts from
//! Debian's packages): two `paddock serve` processes, each with its own
//! data dir, listener and clearance socket, share tokens, boxes, rules and
//! the audit log; one leads (reconcile, reaper) and the other takes over
//! when it is killed; a hub that names another instance is refused.

use std::process::Command;
use std::time::Duration;

use paddock_store::testing::TempPostgres;
use serde_json::json;

use paddock_clearance::varlink::VarlinkClient;

use crate::common::egress_site::{UPSTREAM_BODY, Upstream, add_rule, exec, exec_later};
use crate::common::{Options, Paddock, paddock_bin, wait_for};

fn on(url: &str, default_instance: bool) -> Paddock {
    on_with(url, default_instance, "")
}

/// The secrets key every hub on one database shares (hex of 32 bytes):
/// it seals their secrets and the CAs they share.
const SHARED_SECRETS_KEY: &str = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";

fn on_with(url: &str, default_instance: bool, toml: &str) -> Paddock {
    Paddock::start(Options {
        extra_toml: format!("[store]\nurl = \"{url}\"\n{toml}"),
        default_instance,
        login_profile: false,
        env: vec![("PADDOCK_SECRETS_KEY".into(), SHARED_SECRETS_KEY.into())],
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

    // A secret set at A is one B lists (its value sealed; the hubs share
    // the secrets key to open it, see the README).
    let (status, set) = a
        .put(
            "/api/v1/projects/alpha/secrets/shared-key",
            json!({"value": "v1", "env": "SHARED"}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let (_, listed) = b.get("/api/v1/secrets").await;
    assert!(
        listed["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "shared-key"),
        "{listed}"
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

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_held_at_one_hub_is_decided_at_another() {
    let pg = TempPostgres::start().expect("PostgreSQL is installed (scripts/test installs it)");
    let url = pg.database("held");
    let upstream = Upstream::start("127.0.0.1:0").await;
    let egress = "[egress]\nhold_timeout_secs = 60\n\
                  [egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n";
    let a = on_with(&url, false, egress);
    let b = on_with(&url, true, egress);
    let (status, made) = a
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "held-at-a"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    // The rule is written at B; A's gateway, which holds the box's
    // connections, reads it again.
    add_rule(
        &b,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let fetching = wait_for(
        "A's gateway to hold the connection",
        Duration::from_secs(30),
        || async {
            let fetching = exec_later(
                &a,
                "held-at-a",
                &format!("wget -q -O - http://upstream.test:{}/far", upstream.port),
            );
            let held = wait_for("a held request at A", Duration::from_secs(5), || async {
                let (_, pending) = a.get("/api/v1/egress/pending").await;
                pending["requests"]
                    .as_array()
                    .and_then(|r| r.first().cloned())
            });
            match tokio::time::timeout(Duration::from_secs(6), held).await {
                Ok(_) => Some(fetching),
                Err(_) => {
                    fetching.abort();
                    None
                }
            }
        },
    )
    .await;

    // B's queue shows it under B's own id.
    let held = wait_for(
        "the request mirrored at B",
        Duration::from_secs(15),
        || async {
            let (_, pending) = b.get("/api/v1/egress/pending").await;
            pending["requests"]
                .as_array()
                .and_then(|r| r.first().cloned())
        },
    )
    .await;
    let (_, at_a) = a.get("/api/v1/egress/pending").await;
    assert_eq!(held["container"], "held-at-a", "{held}");
    assert_ne!(
        held["request_id"], at_a["requests"][0]["request_id"],
        "B cites its own ids"
    );
    assert!(
        !fetching.is_finished(),
        "the connection waits for a verdict"
    );

    // Allowed over B's varlink: A's held connection goes through.
    let mut varlink = VarlinkClient::connect(&b.clearance_socket()).await.unwrap();
    let allowed = varlink
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "held-at-a", "request_id": held["request_id"], "dest": held["dest"], "action": "allow"}),
        )
        .await
        .unwrap();
    assert_eq!(allowed["ok"], true, "{allowed}\nA:\n{}", a.log());
    let out = fetching.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(
        out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY),
        "{out}"
    );
    // Decided once: again is refused, and both queues empty.
    let again = varlink
        .call(
            "org.terok.Clearance1.Verdict",
            json!({"container": "held-at-a", "request_id": held["request_id"], "dest": held["dest"], "action": "allow"}),
        )
        .await;
    assert!(again.is_err(), "{again:?}");
    for hub in [&a, &b] {
        wait_for("the queue to empty", Duration::from_secs(10), || async {
            let (_, pending) = hub.get("/api/v1/egress/pending").await;
            pending["requests"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        })
        .await;
    }
    drop((a, b));
    drop(pg);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_rides_out_its_database_restarting_under_load() {
    let mut pg = TempPostgres::start().expect("PostgreSQL is installed (scripts/test installs it)");
    let url = pg.database("restart");
    let hub = on(&url, false);
    let (status, made) = hub
        .post(
            "/api/v1/boxes",
            json!({"project": "alpha", "box_id": "kept"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");

    // Readers keep asking while the database goes away and comes back.
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(std::collections::BTreeSet::new()));
    let load = {
        let (http, url, seen) = (hub.http.clone(), hub.url.clone(), seen.clone());
        tokio::spawn(async move {
            for _ in 0..200 {
                if let Ok(answer) = http.get(format!("{url}/api/v1/boxes")).send().await {
                    seen.lock().insert(answer.status().as_u16());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    wait_for("the load under way", Duration::from_secs(10), || async {
        seen.lock().contains(&200).then_some(())
    })
    .await;
    pg.stop();
    let (status, body) = hub.get("/api/v1/boxes/kept").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    pg.launch();
    load.await.unwrap();
    let seen = seen.lock().clone();
    assert!(seen.contains(&200), "{seen:?}");
    assert!(
        seen.iter().all(|s| [200, 503].contains(s)),
        "only answers or 503: {seen:?}"
    );

    // Nothing lost; the hub works on without a restart.
    let (status, got) = hub.get("/api/v1/boxes/kept").await;
    assert_eq!((status, &got["state"]), (200, &json!("ready")), "{got}");
    let out = exec(&hub, "kept", "echo after").await;
    assert_eq!(out["stdout"], "after\n", "{out}");
    drop(hub);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread")]
async fn hubs_on_one_postgres_share_their_cas_so_boxes_and_spokes_trust_any_of_them() {
    use crate::spokes::{enroll, run_spoke, until_connected};
    let pg = TempPostgres::start().expect("PostgreSQL is installed (scripts/test installs it)");
    let url = pg.database("cas");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port_a, port_b) = (free_port(), free_port());
    let a = on_with(
        &url,
        false,
        &format!("[spokes]\nlisten = \"127.0.0.1:{port_a}\"\n"),
    );
    let b = on_with(
        &url,
        true,
        &format!("[spokes]\nlisten = \"127.0.0.1:{port_b}\"\n"),
    );

    // One egress CA: what a box made at A trusts is what B's gateway
    // signs with once B serves it.
    let bundle = |p: &Paddock| {
        std::fs::read_to_string(p.dir.path().join("data/tls/box-ca-bundle.pem")).unwrap()
    };
    assert!(bundle(&a).contains("BEGIN CERTIFICATE"));
    assert_eq!(bundle(&a), bundle(&b), "one egress CA for both hubs");
    assert!(
        a.log()
            .contains("this hub's key is now the one every hub on the database uses"),
        "{}",
        a.log()
    );

    // One spoke CA: a spoke enrolled at A links to B.
    let token = a.cli(&["spoke", "token", "create", "--name", "edge-s", "--json"]);
    let token: serde_json::Value = serde_json::from_slice(&token.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let enrolled = enroll(&a, token["token"].as_str().unwrap(), dir.path());
    assert!(enrolled.status.success(), "{enrolled:?}");
    let _spoke = run_spoke(&format!("https://127.0.0.1:{port_b}"), dir.path(), "");
    until_connected(&b, "edge-s", true).await;
}
