//! The decision log keeps its promise on a full disk: while decisions
//! cannot be recorded, the gateway refuses (fail closed) and its health
//! names the log; once there is room again, what was kept is stored and
//! decisions resume without a restart. A real SQLite store on a real,
//! small tmpfs this test mounts (and unmounts, even when it fails).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_clearance::{Hub, HubConfig};
use paddock_egress::policy::Cidr;
use paddock_egress::{Action, BoxIdentity, Decision, Egress, EgressConfig, Host, Scope, Target};
use paddock_store::{AuditQuery, Store};

/// A 1 MiB tmpfs of the test's own.
struct SmallDisk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m,mode=0700",
                "paddock-test-disk",
            ])
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a small tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { _dir: dir, path }
    }

    /// Writes zeros until the filesystem refuses.
    fn fill(&self) -> PathBuf {
        let fill = self.path.join("fill");
        let mut file = std::fs::File::create(&fill).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        // Whatever is left is smaller than a chunk: take it byte by byte.
        while file.write_all(&[0]).and_then(|()| file.flush()).is_ok() {}
        fill
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn who() -> BoxIdentity {
    BoxIdentity {
        box_id: "b1".into(),
        project: "p".into(),
    }
}

fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn decisions(store: &Store) -> Vec<(String, String)> {
    store
        .egress_audit(&AuditQuery {
            box_id: Some("b1".into()),
            limit: 10_000,
            ..AuditQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| (r.decision, r.reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_decisions_and_they_resume_when_there_is_room() {
    let disk = SmallDisk::mount();
    let store = Arc::new(Store::open(&disk.path.join("paddock.db")).unwrap());
    let config = EgressConfig {
        resolvers: vec!["127.0.0.1:9".into()],
        ..EgressConfig::default()
    };
    let egress = Egress::new(config, store.clone(), Hub::new(HubConfig::default())).unwrap();
    let allowed: IpAddr = "198.51.100.7".parse().unwrap();
    egress
        .put_rule(
            Scope::Project("p".into()),
            Target::Cidr(Cidr::host(allowed)),
            None,
            Action::Allow,
            None,
            "test",
        )
        .unwrap();
    let target = Host::Ip(allowed);
    assert!(matches!(
        egress.decide(&who(), &target, 443).await,
        Decision::Allow { .. }
    ));
    assert!(egress.health().await.is_ok());

    let fill = disk.fill();
    // Decisions go on until the writer meets the full disk…
    let deadline = Instant::now() + Duration::from_secs(20);
    while egress.health().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the log never noticed the full disk"
        );
        let _ = egress.decide(&who(), &target, 443).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = egress.health().await.unwrap_err().to_string();
    assert!(health.contains("decision log"), "{health}");
    // …and from then on nothing goes through.
    match egress.decide(&who(), &target, 443).await {
        Decision::Deny { reason } => {
            assert!(reason.contains("cannot record decisions"), "{reason}")
        }
        other => panic!("decided off the record: {other:?}"),
    }

    // Room again: what was kept is stored, and decisions resume.
    std::fs::remove_file(&fill).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(why) = egress.health().await {
        assert!(Instant::now() < deadline, "the log stayed down: {why}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        egress.decide(&who(), &target, 443).await,
        Decision::Allow { .. }
    ));
    until("the refusal made during the outage to be stored", || {
        decisions(&store)
            .iter()
            .any(|(d, r)| d == "denied" && r.contains("cannot record decisions"))
    });
}
