//! The Python clients we did not write (`varlink`, `websockets`,
//! `pexpect`), run from `fixtures/clearance_client.py`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::egress_site::poke;
use super::{Paddock, python};

pub fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clearance_client.py")
        .display()
        .to_string()
}

/// A fixture run that prints JSON lines while the test goes on.
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Streaming {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(python())
            .arg(fixture())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Self { child, lines }
    }

    /// Pokes the hub with shield events until this client reports one:
    /// then its subscription is certainly live.
    pub async fn until_live(&self, p: &Paddock, box_id: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            poke(p, box_id).await;
            while let Ok(v) = self.lines.recv_timeout(Duration::from_millis(200)) {
                if v["type"] == "shield_up" {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the client never saw an event"
            );
        }
    }

    pub fn next_where(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the Python client printed no {what} within 30 s"));
            if pred(&v) {
                return v;
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_fixture(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(fixture())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
