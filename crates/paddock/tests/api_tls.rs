//! HTTPS on the API: curl and the CLI over TLS with the test's own CA, a
//! renewed certificate taken up on SIGHUP without dropping anything, and
//! a broken renewal that changes nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::common::{Options, Paddock, paddock_bin};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own: OpenSSL (curl) takes a leaf whose subject is its
    // issuer's for a self-signed one.
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "paddock test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate for `names` and its key, written as a renewal tool
/// would: new files renamed into place.
fn issue(ca: &Ca, names: &[&str], dir: &Path) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "paddock");
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    for (name, pem) in [("cert.pem", cert.pem()), ("key.pem", key.serialize_pem())] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// curl's exit code and body for `url`, trusting `ca_file` when given;
/// `host:port` of the URL resolved to loopback.
fn curl(url: &str, ca_file: Option<&Path>, resolve: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-"]);
    if let Some(ca) = ca_file {
        cmd.arg("--cacert").arg(ca);
    }
    if let Some(r) = resolve {
        cmd.args(["--resolve", r]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_api_over_https_with_a_certificate_renewed_in_place() {
    let ca = ca();
    let certs = tempfile::tempdir().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    issue(&ca, &["127.0.0.1"], certs.path());
    let p = Paddock::start(Options {
        extra_toml: format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_reload_secs = 3600\n",
            certs.path().join("cert.pem").display(),
            certs.path().join("key.pem").display()
        ),
        ..Options::default()
    });
    assert!(p.url.starts_with("https://127.0.0.1:"), "{}", p.url);
    let port = p.url.rsplit(':').next().unwrap().to_owned();

    // curl trusts it with the CA, and only with it.
    let (code, body) = curl(&format!("{}/healthz", p.url), Some(&ca_file), None);
    assert_eq!(code, 0, "{body}");
    assert!(body.contains("ok"), "{body}");
    let (untrusted, _) = curl(&format!("{}/healthz", p.url), None, None);
    assert_eq!(untrusted, 60, "curl: the peer's certificate is not trusted");
    let plain = format!("http://127.0.0.1:{port}/healthz");
    let (code, body) = curl(&plain, None, None);
    assert!(
        code != 0 && !body.contains("ok"),
        "plain HTTP is not served: {code} {body}"
    );

    // The CLI: with --ca-file it talks; without, it says why not.
    let with_ca = Command::new(paddock_bin())
        .args(["status", "--ca-file"])
        .arg(&ca_file)
        .env("PADDOCK_URL", &p.url)
        .env("PADDOCK_TOKEN", &p.admin_token)
        .output()
        .unwrap();
    assert!(
        with_ca.status.success(),
        "{}",
        String::from_utf8_lossy(&with_ca.stderr)
    );
    let without = p.cli(&["status"]);
    assert!(!without.status.success());
    let said = String::from_utf8_lossy(&without.stderr).to_lowercase();
    assert!(
        said.contains("certificate") || said.contains("tls"),
        "{said}"
    );
    assert!(!said.contains(&p.admin_token), "no token in an error");

    // A renewal that also names paddock.test, taken up on SIGHUP.
    let by_name = format!("https://paddock.test:{port}/healthz");
    let resolve = format!("paddock.test:{port}:127.0.0.1");
    assert_eq!(curl(&by_name, Some(&ca_file), Some(&resolve)).0, 60);
    issue(&ca, &["127.0.0.1", "paddock.test"], certs.path());
    p.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while curl(&by_name, Some(&ca_file), Some(&resolve)).0 != 0 {
        assert!(Instant::now() < deadline, "the renewal was never taken up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Half a renewal (a key that is not the certificate's) changes nothing.
    let elsewhere = tempfile::tempdir().unwrap();
    issue(&ca, &["127.0.0.1"], elsewhere.path());
    std::fs::copy(
        elsewhere.path().join("key.pem"),
        certs.path().join("key.pem"),
    )
    .unwrap();
    p.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !p
        .log()
        .contains("cannot be used; still serving the previous certificate")
    {
        assert!(Instant::now() < deadline, "no word of the broken renewal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(curl(&by_name, Some(&ca_file), Some(&resolve)).0, 0);
    let key_pem = std::fs::read_to_string(certs.path().join("key.pem")).unwrap();
    assert!(
        !p.log().contains(key_pem.lines().nth(1).unwrap()),
        "no key material in the log"
    );
}
