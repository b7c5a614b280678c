//! Spoke enrolment end to end: an admin mints a single-use token, the
//! spoke's `paddock spoke enroll` trades it for a client certificate that
//! OpenSSL verifies against the hub's CA, and the token never works twice.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Options, Paddock, SpokeOf, paddock_bin};

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub(crate) fn enroll(p: &Paddock, token: &str, dir: &Path) -> std::process::Output {
    Command::new(paddock_bin())
        .args(["spoke", "enroll", "--hub", &p.url, "--dir"])
        .arg(dir)
        .env("PADDOCK_SPOKE_TOKEN", token)
        .env_remove("PADDOCK_TOKEN")
        .output()
        .unwrap()
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_spoke_enrols_once_with_its_token_and_can_be_revoked() {
    let p = Paddock::start(Options::default());
    let minted = p.cli(&["spoke", "token", "create", "--name", "gpu-1", "--json"]);
    assert!(minted.status.success(), "{}", said(&minted));
    let minted: Value = serde_json::from_slice(&minted.stdout).unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pdk_spoke_"));

    // Only with admin:spokes.
    let (_, viewer) = p.mint(&["viewer"], None).await;
    let refused = p.cli_as(&viewer, &["spoke", "token", "create", "--name", "x"]);
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("admin:spokes"),
        "{}",
        said(&refused)
    );
    let bad_name = p.cli(&["spoke", "token", "create", "--name", "local"]);
    assert!(said(&bad_name).contains("not valid"), "{}", said(&bad_name));

    let spoke = tempfile::tempdir().unwrap();
    let dir = spoke.path().join("spoke");
    let done = enroll(&p, &token, &dir);
    assert!(done.status.success(), "{}", said(&done));
    assert!(said(&done).contains("enrolled as spoke gpu-1"));
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("spoke-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);

    // A client certificate of the hub's CA, for the token's name, for the
    // key that never left the spoke.
    let (cert, ca, key) = (
        dir.join("spoke.pem"),
        dir.join("hub-ca.pem"),
        dir.join("spoke-key.pem"),
    );
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(ok && text.contains(": OK"), "{text}");
    let (_, subject) = openssl(&["x509", "-noout", "-subject", "-in", cert.to_str().unwrap()]);
    assert!(
        subject.contains("CN = gpu-1") || subject.contains("CN=gpu-1"),
        "{subject}"
    );
    let (_, cert_key) = openssl(&["x509", "-noout", "-pubkey", "-in", cert.to_str().unwrap()]);
    let (_, own_key) = openssl(&["pkey", "-pubout", "-in", key.to_str().unwrap()]);
    assert_eq!(cert_key, own_key);

    // Used up: the same token again changes nothing.
    let before = std::fs::read(&cert).unwrap();
    let again = enroll(&p, &token, &dir);
    assert!(!again.status.success());
    assert!(
        said(&again).contains("unknown, used or expired"),
        "{}",
        said(&again)
    );
    assert_eq!(std::fs::read(&cert).unwrap(), before);

    // A request that is not one uses a token up too.
    let leaked = p.cli(&["spoke", "token", "create", "--name", "gpu-2", "--json"]);
    let leaked: Value = serde_json::from_slice(&leaked.stdout).unwrap();
    let leaked = leaked["token"].as_str().unwrap().to_owned();
    let (status, body) = p
        .post(
            "/api/v1/spokes/enroll",
            json!({"token": leaked, "csr": "nonsense"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = p
        .post(
            "/api/v1/spokes/enroll",
            json!({"token": leaked, "csr": "nonsense"}),
        )
        .await;
    assert_eq!(status, 401);

    let listed = p.cli(&["spoke", "ls", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let spokes = listed["spokes"].as_array().unwrap();
    assert_eq!(spokes.len(), 1, "{listed}");
    assert_eq!(
        (spokes[0]["name"].as_str(), spokes[0]["revoked"].as_bool()),
        (Some("gpu-1"), Some(false))
    );
    let revoked = p.cli(&["spoke", "revoke", "gpu-1"]);
    assert!(revoked.status.success(), "{}", said(&revoked));
    let table = said(&p.cli(&["spoke", "ls"]));
    assert!(
        table.contains("gpu-1") && table.contains("revoked"),
        "{table}"
    );
    let unknown = p.cli(&["spoke", "revoke", "nobody"]);
    assert!(
        said(&unknown).contains("no spoke named"),
        "{}",
        said(&unknown)
    );

    let log = p.log();
    assert!(
        !log.contains(&token) && !log.contains(&leaked),
        "no enrolment token in the log"
    );
}

/// Waits until the hub has logged `n` failed spoke handshakes: the
/// refusal was TLS's, before any WebSocket.
async fn refused_handshakes(p: &Paddock, n: usize) {
    crate::common::wait_for(
        &format!("{n} refused handshakes in the log"),
        std::time::Duration::from_secs(10),
        || async { (p.log().matches("TLS handshake failed").count() >= n).then_some(()) },
    )
    .await;
}

/// `paddock spoke` run against `hub`: a whole paddock of its own (its
/// instance, store and hub socket; the same Docker engine as the hub, as
/// no second engine can be started here, kept apart by its instance
/// label), killed and swept when the test ends however it ends.
pub(crate) fn run_spoke(hub: &str, dir: &Path, extra_toml: &str) -> Paddock {
    Paddock::start(Options {
        extra_toml: extra_toml.to_owned(),
        login_profile: false,
        spoke_of: Some(SpokeOf {
            hub: hub.to_owned(),
            dir: dir.to_owned(),
            max_boxes: 7,
        }),
        ..Options::default()
    })
}

/// `spoke ls --json`'s entry for `name`.
fn listed(p: &Paddock, name: &str) -> Value {
    let out = p.cli(&["spoke", "ls", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all["spokes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

pub(crate) async fn until_connected(p: &Paddock, name: &str, connected: bool) -> Value {
    crate::common::wait_for(
        &format!("spoke {name} connected={connected}"),
        std::time::Duration::from_secs(30),
        || async {
            let spoke = listed(p, name);
            (spoke["connected"] == connected).then_some(spoke)
        },
    )
    .await
}

#[tokio::test]
async fn an_enrolled_spoke_links_over_mutual_tls_and_a_revoked_one_is_refused() {
    let p = Paddock::start(Options {
        extra_toml: "[spokes]\nlisten = \"127.0.0.1:0\"\n".into(),
        ..Options::default()
    });
    let hub = crate::common::wait_for(
        "the spoke listener's address in the log",
        std::time::Duration::from_secs(10),
        || async {
            p.log()
                .lines()
                .find_map(|l| l.split("spokes dial in on ").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        },
    )
    .await;
    assert!(hub.starts_with("https://127.0.0.1:"), "{hub}");

    let token = p.cli(&["spoke", "token", "create", "--name", "edge-1", "--json"]);
    let token: Value = serde_json::from_slice(&token.stdout).unwrap();
    let spoke = tempfile::tempdir().unwrap();
    let done = enroll(&p, token["token"].as_str().unwrap(), spoke.path());
    assert!(done.status.success(), "{}", said(&done));

    // Linked: the hub lists it with what it offered.
    let mut first = run_spoke(&hub, spoke.path(), "");
    let linked = until_connected(&p, "edge-1", true).await;
    assert_eq!(linked["link"]["max_boxes"], 7, "{linked}");
    assert_eq!(linked["link"]["version"], env!("CARGO_PKG_VERSION"));
    let (_, view) = p.get("/api/v1/worldview").await;
    assert_eq!(view["spokes"][0]["connected"], true, "{view}");
    let status = said(&p.cli(&["status"]));
    assert!(status.contains("spokes: 1 enrolled, 1 linked"), "{status}");
    let (_, limited) = p.mint(&["viewer"], Some(&["alpha"])).await;
    let (_, limited_view) = p.get_as(&limited, "/api/v1/worldview").await;
    assert!(limited_view["spokes"].is_null(), "{limited_view}");

    // Only a certificate of the hub's CA gets a handshake: none, or one
    // of another CA, is refused before anything is said.
    let port = hub.rsplit(':').next().unwrap();
    let url = format!("https://127.0.0.1:{port}/spoke/connect");
    let ca = spoke.path().join("hub-ca.pem");
    let bare = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        !bare.status.success(),
        "no client certificate, no handshake"
    );
    refused_handshakes(&p, 1).await;
    let (foreign_key, foreign_csr) = paddock_tls::spoke_request("edge-1").unwrap();
    let other_ca_dir = tempfile::tempdir().unwrap();
    let other_ca = paddock_tls::SpokeCa::open_or_create(other_ca_dir.path(), "other").unwrap();
    let foreign = other_ca
        .issue_client(&foreign_csr, "edge-1", std::time::Duration::from_secs(3600))
        .unwrap();
    std::fs::write(other_ca_dir.path().join("c.pem"), &foreign.cert_pem).unwrap();
    std::fs::write(other_ca_dir.path().join("k.pem"), &foreign_key).unwrap();
    let impostor = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .arg("--cert")
        .arg(other_ca_dir.path().join("c.pem"))
        .arg("--key")
        .arg(other_ca_dir.path().join("k.pem"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        !impostor.status.success(),
        "another CA's certificate, no handshake"
    );
    refused_handshakes(&p, 2).await;
    assert_eq!(
        listed(&p, "edge-1")["connected"],
        true,
        "the real one stays"
    );

    // Killed: shown as gone; back: linked again.
    first.kill9();
    until_connected(&p, "edge-1", false).await;
    let mut second = run_spoke(&hub, spoke.path(), "");
    until_connected(&p, "edge-1", true).await;

    // Revoked while linked: hung up on, refused when it dials again, and
    // the spoke stops saying why.
    assert!(p.cli(&["spoke", "revoke", "edge-1"]).status.success());
    until_connected(&p, "edge-1", false).await;
    let status = crate::common::wait_for(
        "the revoked spoke to stop",
        std::time::Duration::from_secs(60),
        || {
            let exited = second.exited();
            async move { exited }
        },
    )
    .await;
    assert!(!status.success());
    let said = second.log();
    assert!(said.contains("was revoked"), "{said}");
    assert!(
        p.log().contains("refused a spoke"),
        "the hub logged the refusal"
    );
}

/// A hub whose spoke listener is on a fixed loopback port (so a restarted
/// hub is where its spoke dials; a port taken between this probe and the
/// bind fails the start loudly), a spoke `name` enrolled with it, and that
/// spoke running and linked. The spoke's directory and process go with
/// the returned values.
pub(crate) async fn hub_with_a_linked_spoke(
    name: &str,
    hub_toml: &str,
    spoke_toml: &str,
) -> (Paddock, tempfile::TempDir, Paddock) {
    let (p, spoke, port) = hub_and_an_enrolled_spoke(name, hub_toml);
    let running = run_spoke(
        &format!("https://127.0.0.1:{port}"),
        spoke.path(),
        spoke_toml,
    );
    (p, spoke, running)
}

/// A hub with a spoke listener, and a spoke enrolled with it (its
/// directory) but not yet running; the listener's port.
pub(crate) fn hub_and_an_enrolled_spoke(
    name: &str,
    hub_toml: &str,
) -> (Paddock, tempfile::TempDir, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Paddock::start(Options {
        extra_toml: format!("[spokes]\nlisten = \"127.0.0.1:{port}\"\n{hub_toml}"),
        ..Options::default()
    });
    let token = p.cli(&["spoke", "token", "create", "--name", name, "--json"]);
    let token: Value = serde_json::from_slice(&token.stdout).unwrap();
    let spoke = tempfile::tempdir().unwrap();
    let done = enroll(&p, token["token"].as_str().unwrap(), spoke.path());
    assert!(done.status.success(), "{}", said(&done));
    (p, spoke, port)
}

#[tokio::test]
async fn a_spoke_links_again_by_itself_after_the_hub_restarts() {
    let (mut p, _spoke, _running) = hub_with_a_linked_spoke("edge-2", "", "").await;
    let before = until_connected(&p, "edge-2", true).await;

    // A new process, a new listener certificate from the same CA: the
    // spoke trusts it and links again without anyone's help.
    assert!(p.stop().success());
    p.restart();
    let after = until_connected(&p, "edge-2", true).await;
    assert!(
        after["link"]["connected_since_secs"].as_i64()
            >= before["link"]["connected_since_secs"].as_i64(),
        "{before} {after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spokes_page_shows_a_linked_spoke_and_revokes_it_from_a_real_browser() {
    use crate::common::console::{Browsers, console_link, screenshots_dir, session};
    let (p, _spoke, _running) = hub_with_a_linked_spoke("edge-3", "", "").await;
    until_connected(&p, "edge-3", true).await;

    // Over HTTP with a session: the row says where it is linked from; a
    // viewer may not look; a post without the session's CSRF token
    // changes nothing.
    let admin = session(&p, &p.admin_token).await;
    let get = |s: &crate::common::console::Session| {
        crate::common::raw_http()
            .get(format!("{}/console/spokes", p.url))
            .header("cookie", &s.cookie)
            .send()
    };
    let page = get(&admin).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("id=\"spoke-edge-3\"") && page.contains("linked</span> from 127.0.0.1:"),
        "{page}"
    );
    let (_, viewer) = p.mint(&["viewer"], None).await;
    let watching = session(&p, &viewer).await;
    assert_eq!(get(&watching).await.unwrap().status(), 403);
    let forged = crate::common::raw_http()
        .post(format!("{}/console/spokes/edge-3/revoke", p.url))
        .header("cookie", &admin.cookie)
        .header("origin", &p.url)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(listed(&p, "edge-3")["connected"], true, "nothing changed");

    // A box on the spoke, on the Boxes page: said to be there; its
    // terminal and shield buttons go to the spoke.
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            serde_json::json!({"project": "alpha", "box_id": "yonder", "spoke": "edge-3"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let boxes_page = crate::common::raw_http()
        .get(format!("{}/console/boxes", p.url))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        boxes_page.contains("on spoke</span> edge-3")
            && boxes_page.contains("id=\"terminal-yonder\"")
            && boxes_page.contains("/console/boxes/yonder/shield"),
        "{boxes_page}"
    );

    // In Chromium: the pages, then the Revoke button.
    let mut browsers = Browsers::start(&p);
    let link = console_link(&p, &p.admin_token).await;
    browsers.ask(&format!("open ada {link}"));
    if let Some(dir) = screenshots_dir() {
        browsers.ask("get ada /console/boxes");
        browsers.ask(&format!(
            "shot ada {}/console-boxes-spoke.png 1100 480",
            dir.display()
        ));
    }
    // The spoke's box's terminal, in the page: typed here, run there.
    browsers.ask("terminal ada /console/boxes/yonder/terminal");
    browsers.ask("line ada echo $((6*7))far");
    browsers.ask("screen ada 42far");
    if let Some(dir) = screenshots_dir() {
        browsers.ask(&format!(
            "shot ada {}/console-terminal-spoke.png 1100 480",
            dir.display()
        ));
    }
    browsers.ask("line ada exit 4");
    browsers.ask("termstatus ada exit code 4");
    browsers.ask("get ada /console/spokes");
    if let Some(dir) = screenshots_dir() {
        browsers.ask(&format!(
            "shot ada {}/console-spokes.png 1100 640",
            dir.display()
        ));
        browsers.ask(&format!(
            "shot ada {}/console-spokes-phone.png 390 760",
            dir.display()
        ));
    }
    let after = browsers.ask("click ada revoke-edge-3");
    assert!(
        after["title"].as_str().unwrap().starts_with("Spokes"),
        "{after}"
    );
    until_connected(&p, "edge-3", false).await;
    assert_eq!(listed(&p, "edge-3")["revoked"], true);
}
