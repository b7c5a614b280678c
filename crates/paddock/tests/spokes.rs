//! Spoke enrolment end to end: an admin mints a single-use token, the
//! spoke's `paddock spoke enroll` trades it for a client certificate that
//! OpenSSL verifies against the hub's CA, and the token never works twice.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Options, Paddock, paddock_bin};

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

fn enroll(p: &Paddock, token: &str, dir: &Path) -> std::process::Output {
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
