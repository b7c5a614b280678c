//! The Docker engine restarted under running boxes. Against a second
//! `dockerd` this test starts — its own data-root, exec-root, socket and
//! containerd, a default bridge of its own (never `--bridge none`, with
//! which dockerd deletes the host's `docker0` from under the main
//! engine), no iptables of its own, its boxes on a subnet pool no other
//! test uses — so restarting it disturbs no other test. Every box that was running comes back by itself, guarded (seen
//! from inside: the gateway decides, a direct connection goes nowhere);
//! a box a person had stopped stays stopped; nothing is orphaned.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::egress_site::{Upstream, add_rule, exec, gateway_of};
use crate::common::{Options, Paddock, TEST_IMAGE, test_image, wait_for, wait_for_sync};
use serde_json::json;

/// A second Docker engine of the test's own.
struct SecondEngine {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    /// Its default bridge, made by the test and removed with it.
    bridge: String,
}

impl SecondEngine {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("daemon.json"), "{}").unwrap();
        let bridge = format!("pdk2e{}", std::process::id() % 1_000_000);
        let _ = Command::new("ip").args(["link", "del", &bridge]).status();
        let made = Command::new("ip")
            .args(["link", "add", "name", &bridge, "type", "bridge"])
            .status()
            .unwrap();
        assert!(made.success(), "cannot make the second engine's bridge");
        for args in [
            vec!["addr", "add", "10.198.0.1/24", "dev", &bridge],
            vec!["link", "set", &bridge, "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().unwrap().success());
        }
        let mut engine = Self {
            dir,
            daemon: None,
            bridge,
        };
        engine.run_daemon();
        engine
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn run_daemon(&mut self) {
        let root = self.dir.path();
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let daemon = Command::new("dockerd")
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .arg("-H")
            .arg(self.host())
            .args(["--bridge", &self.bridge])
            .args(["--iptables=false", "--ip6tables=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        self.daemon = Some(daemon);
        wait_for_sync(
            "the second engine to answer",
            Duration::from_secs(60),
            || {
                self.docker(&["info", "--format", "{{.ID}}"])
                    .status
                    .success()
            },
        );
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .expect("the docker CLI runs")
    }

    /// SIGTERM to the daemon (which stops its containers first), then a
    /// new daemon on the same roots.
    fn restart(&mut self) {
        self.stop_daemon();
        self.run_daemon();
    }

    fn stop_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &daemon.id().to_string()])
                .status();
            let _ = daemon.wait();
        }
    }

    /// Copies an image from the main engine.
    fn load(&self, image: &str) {
        let saved = self.dir.path().join("image.tar");
        let out = Command::new("docker")
            .args(["save", "-o"])
            .arg(&saved)
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.docker(&["load", "-i", saved.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn containers(&self, instance: &str) -> Vec<String> {
        let filter = format!("label=paddock.instance={instance}");
        let out = self.docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// The instance's networks some container is attached to.
    fn attached_networks(&self, instance: &str) -> usize {
        let filter = format!("label=paddock.instance={instance}");
        let out = self.docker(&["network", "ls", "-q", "--filter", &filter]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|id| {
                let out = self.docker(&["network", "inspect", "-f", "{{len .Containers}}", id]);
                String::from_utf8_lossy(&out.stdout).trim() != "0"
            })
            .count()
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", "-v", id]);
            }
            let _ = self.docker(&["network", "prune", "-f"]);
        }
        self.stop_daemon();
        // The data root's overlay mounts are the daemon's to undo; a
        // lazy unmount catches any it left.
        unmount_under(self.dir.path());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

fn unmount_under(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let root = root.display().to_string();
    for line in mounts.lines() {
        if let Some(point) = line.split_whitespace().nth(1)
            && point.starts_with(&root)
        {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
    }
}

async fn state_of(p: &Paddock, box_id: &str) -> String {
    let (_, view) = p.get(&format!("/api/v1/boxes/{box_id}")).await;
    view["state"].as_str().unwrap_or("").to_owned()
}

/// From inside `box_id`: through the gateway an allowed destination
/// answers; straight to a listener on the box's own gateway address,
/// nothing arrives.
async fn guarded(p: &Paddock, box_id: &str, allowed: &Upstream) {
    let out = exec(
        p,
        box_id,
        &format!("wget -q -O - http://asked.test:{}/", allowed.port),
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{box_id} through the gateway: {out}");
    let gateway = gateway_of(p, box_id).await;
    let direct = Upstream::start(&format!("{gateway}:0")).await;
    let out = exec(
        p,
        box_id,
        &format!("echo hi | nc -w 3 {gateway} {}", direct.port),
    )
    .await;
    assert_ne!(
        out["exit_code"], 0,
        "{box_id} went around the gateway: {out}"
    );
    assert!(
        direct.connections().is_empty(),
        "{box_id} reached the host directly"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn boxes_come_back_guarded_when_the_engine_restarts() {
    test_image();
    let main_bridge = || {
        Command::new("ip")
            .args(["link", "show", "docker0"])
            .output()
            .unwrap()
            .status
            .success()
    };
    let had_docker0 = main_bridge();
    let mut engine = SecondEngine::start();
    engine.load(TEST_IMAGE);
    let p = Paddock::start(Options {
        login_profile: false,
        docker_host: Some(engine.host()),
        extra_toml: "[egress.hosts]\n\"asked.test\" = [\"127.0.0.1\"]\n".into(),
        env: vec![("PADDOCK_BOXES__SUBNET_POOL".into(), "10.199.0.0/16".into())],
        ..Options::default()
    });
    let allowed = Upstream::start("127.0.0.1:0").await;
    for id in ["r1", "r2", "parked"] {
        let (status, body) = p
            .post("/api/v1/boxes", json!({"project": "demo", "box_id": id}))
            .await;
        assert_eq!(status, 201, "{body}; log:\n{}", p.log());
    }
    add_rule(
        &p,
        json!({"project": "demo", "target": "127.0.0.1/32", "action": "allow"}),
    )
    .await;
    for id in ["r1", "r2"] {
        guarded(&p, id, &allowed).await;
    }
    let (status, _) = p.post("/api/v1/boxes/parked/stop", json!({})).await;
    assert_eq!(status, 200);

    engine.restart();
    assert_eq!(
        main_bridge(),
        had_docker0,
        "the main engine's bridge is untouched"
    );

    for id in ["r1", "r2"] {
        wait_for(
            &format!("{id} to come back"),
            Duration::from_secs(60),
            || async { (state_of(&p, id).await == "ready").then_some(()) },
        )
        .await;
        guarded(&p, id, &allowed).await;
    }
    assert!(p.log().contains("box started again"));
    assert_eq!(
        state_of(&p, "parked").await,
        "stopped",
        "a person's stop holds"
    );
    let expected: Vec<String> = ["parked", "r1", "r2"]
        .iter()
        .map(|id| p.container(id))
        .collect();
    assert_eq!(engine.containers(&p.instance), expected);

    for id in ["r1", "r2", "parked"] {
        assert_eq!(p.delete(&format!("/api/v1/boxes/{id}")).await.0, 204);
    }
    assert!(engine.containers(&p.instance).is_empty());
    // Spare networks stay in the pool; none is attached to anything.
    assert_eq!(engine.attached_networks(&p.instance), 0);
}
