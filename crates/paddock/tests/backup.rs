//! `paddock backup` while paddock serves, then `paddock restore` into an
//! empty data dir (a fresh machine, as far as paddock can tell): tokens,
//! rules, secrets that still open, the same CA, the git repositories; and
//! archives that are not what they should be, refused with nothing
//! written.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::json;

use crate::common::egress_site::add_rule;
use crate::common::gate_site::{git, ok};
use crate::common::{Options, Paddock, paddock_bin};

fn paddock(p: &Paddock, data: &Path, args: &[&str]) -> Output {
    Command::new(paddock_bin())
        .args(args)
        .arg("--config")
        .arg(p.dir.path().join("paddock.toml"))
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What the secrets of `proj` look like to a vault opened on `data`: the
/// placeholder a box `b1` gets (derived from the key), and whether the
/// sealed values open.
fn vault_view(data: &Path) -> (String, bool) {
    let store = Arc::new(paddock_store::Store::open(&data.join("paddock.db")).unwrap());
    let key = paddock_vault::VaultKey::load(data).unwrap();
    let vault = paddock_vault::Vault::new(store, key);
    (
        vault.placeholder("b1", "proj", "key"),
        vault.for_box("b1", "proj").is_ok(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_serving_restores_onto_an_empty_data_dir() {
    let mut p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let data = p.dir.path().join("data");
    let (status, _) = p
        .put(
            "/api/v1/projects/proj/secrets/key",
            json!({"value": "sk-backup-secret", "env": "API_KEY"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, viewer) = p.mint(&["viewer"], None).await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "example.test", "action": "allow"}),
    )
    .await;
    // The project's repository at the gate, with a commit.
    let work = tempfile::tempdir().unwrap();
    ok(git(
        &data.join("git"),
        &["init", "-q", "--bare", "-b", "main", "proj.git"],
    ));
    ok(git(work.path(), &["init", "-q", "-b", "main"]));
    ok(git(
        work.path(),
        &["commit", "-q", "--allow-empty", "-m", "kept"],
    ));
    let repo = data.join("git/proj.git");
    ok(git(
        work.path(),
        &["push", "-q", repo.to_str().unwrap(), "main"],
    ));
    let ca = std::fs::read(data.join("tls/egress-ca.pem")).unwrap();
    let spoke_ca = std::fs::read(data.join("spoke-ca/ca.pem")).unwrap();
    let (placeholder, opens) = vault_view(&data);
    assert!(opens);

    // Taken live, 0600, never over an existing file.
    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("paddock.tar");
    let archive_arg = archive.to_str().unwrap();
    let made = paddock(&p, &data, &["backup", "-o", archive_arg]);
    assert!(made.status.success(), "{}", said(&made));
    assert!(
        said(&made).contains("1 git repositories"),
        "{}",
        said(&made)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&archive).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let again = paddock(&p, &data, &["backup", "-o", archive_arg]);
    assert!(!again.status.success());
    assert!(
        said(&again).contains("never overwritten"),
        "{}",
        said(&again)
    );

    // The machine is lost; a fresh data dir gets the archive.
    assert!(p.stop().success());
    std::fs::rename(&data, p.dir.path().join("data.lost")).unwrap();
    let restored = paddock(&p, &data, &["restore", "-i", archive_arg]);
    assert!(restored.status.success(), "{}", said(&restored));
    let twice = paddock(&p, &data, &["restore", "-i", archive_arg]);
    assert!(
        said(&twice).contains("already holds a store"),
        "{}",
        said(&twice)
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("secrets.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    assert_eq!(
        vault_view(&data),
        (placeholder, true),
        "the same key, and the secrets open"
    );
    assert_eq!(std::fs::read(data.join("tls/egress-ca.pem")).unwrap(), ca);
    assert_eq!(
        std::fs::read(data.join("spoke-ca/ca.pem")).unwrap(),
        spoke_ca,
        "enrolled spokes still trust the hub, and it them"
    );
    let spoke_key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("spoke-ca/ca-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(spoke_key_mode & 0o777, 0o600);
    let clone = tempfile::tempdir().unwrap();
    ok(git(
        clone.path(),
        &["clone", "-q", repo.to_str().unwrap(), "c"],
    ));
    assert_eq!(
        ok(git(&clone.path().join("c"), &["log", "--format=%s"])),
        "kept"
    );

    p.restart();
    let whoami = p
        .client_as(&viewer)
        .get(format!("{}/api/v1/whoami", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200, "the viewer's token came back");
    let (_, rules) = p.get("/api/v1/egress/rules").await;
    assert!(rules.to_string().contains("example.test"), "{rules}");
    let (_, secrets) = p.get("/api/v1/secrets").await;
    assert!(secrets.to_string().contains("\"key\""), "{secrets}");
    assert!(!secrets.to_string().contains("sk-backup-secret"));
}

/// An archive with one doctored entry, the rest a real backup's shape.
fn doctored(path: &Path, name: &[u8], kind: tar::EntryType) {
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    let manifest =
        br#"{"format":1,"paddock_version":"0.1.0","created_at":"now","secrets_key":"file"}"#;
    for (entry, body) in [
        (&b"paddock-backup/manifest.json"[..], &manifest[..]),
        (&b"paddock-backup/paddock.db"[..], &b"not a database"[..]),
        (name, &b"payload"[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        // Written by hand: tar's own setters refuse `..`, as they should.
        header.as_gnu_mut().unwrap().name[..entry.len()].copy_from_slice(entry);
        header.set_size(body.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(if entry == name {
            kind
        } else {
            tar::EntryType::Regular
        });
        if kind == tar::EntryType::Symlink && entry == name {
            header.set_link_name("/etc/shadow").unwrap();
            header.set_size(0);
        }
        header.set_cksum();
        let body: &[u8] = if header.size().unwrap() == 0 {
            &[]
        } else {
            body
        };
        tar.append(&header, body).unwrap();
    }
    tar.finish().unwrap();
}

/// `paddock restore` of `archive` into `data`.
fn restore_from(config: &Path, data: &Path, archive: &Path) -> Output {
    Command::new(paddock_bin())
        .args(["restore", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("-i")
        .arg(archive)
        .output()
        .unwrap()
}

#[test]
fn archives_that_are_not_backups_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paddock.toml");
    std::fs::write(&config, "").unwrap();
    let data = dir.path().join("fresh/data");
    for (name, kind, says) in [
        (
            &b"paddock-backup/../escaped"[..],
            tar::EntryType::Regular,
            "outside paddock-backup/",
        ),
        (
            &b"/etc/cron.d/escaped"[..],
            tar::EntryType::Regular,
            "outside paddock-backup/",
        ),
        (
            &b"paddock-backup/link"[..],
            tar::EntryType::Symlink,
            "only files are restored",
        ),
    ] {
        let archive = dir.path().join("bad.tar");
        doctored(&archive, name, kind);
        let out = restore_from(&config, &data, &archive);
        assert!(!out.status.success());
        assert!(said(&out).contains(says), "{}", said(&out));
        assert!(!data.exists(), "nothing was written");
        assert!(!dir.path().join("fresh/escaped").exists());
    }
    // Well formed, but its store is not a database: undone, files gone.
    let archive = dir.path().join("no-store.tar");
    doctored(
        &archive,
        b"paddock-backup/tls/egress-ca.pem",
        tar::EntryType::Regular,
    );
    let out = restore_from(&config, &data, &archive);
    assert!(
        said(&out).contains("the restore was undone"),
        "{}",
        said(&out)
    );
    assert!(!data.join("paddock.db").exists() && !data.join("tls/egress-ca.pem").exists());
    // A file that is not a tar archive at all.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![0x42u8; 4096]).unwrap();
    let out = restore_from(&config, &data, &junk);
    assert!(!out.status.success(), "{}", said(&out));
    assert!(!data.join("paddock.db").exists());
}
