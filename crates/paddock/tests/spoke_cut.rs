//! The network between hub and spoke cut and mended. A cut that closes
//! nothing — a pulled cable, a NAT entry dropped — is the hard one: both
//! sockets stay open and TCP would notice only after a quarter of an
//! hour. The spoke reaches the hub through a relay this test owns on
//! loopback, which cuts the way such a network does: nothing is closed,
//! nothing more arrives.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::common::egress_site::{UPSTREAM_BODY, Upstream, exec, exec_later};
use crate::common::wait_for;
use crate::spoke_boxes::{asking_box_on, first_pending};
use crate::spokes::{hub_and_an_enrolled_spoke, run_spoke, until_connected};

/// A TCP relay that can be cut and mended. Cut, every connection through
/// it goes silent both ways and stays open; mended, those connections
/// close (their ends, meeting again, would find each other gone) and
/// new ones are carried.
struct Cable {
    port: u16,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Cable {
    async fn to(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, is_cut) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((near, _)) = listener.accept().await {
                let Ok(far) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                else {
                    continue;
                };
                let (near_read, near_write) = near.into_split();
                let (far_read, far_write) = far.into_split();
                tokio::spawn(carry(near_read, far_write, is_cut.clone()));
                tokio::spawn(carry(far_read, near_write, is_cut.clone()));
            }
        });
        Self { port, cut, task }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn mend(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Carries one direction until the cable is cut; then holds both halves,
/// reading and writing nothing, until it is mended.
async fn carry(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut is_cut: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            biased;
            _ = cut_now(&mut is_cut, true) => break,
            read = from.read(&mut buf) => read,
        };
        match read {
            Ok(n) if n > 0 => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
    cut_now(&mut is_cut, false).await;
}

/// Waits until the cable is (`true`) or is not (`false`) cut.
async fn cut_now(is_cut: &mut watch::Receiver<bool>, wanted: bool) {
    let _ = is_cut.wait_for(|cut| *cut == wanted).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_cut_is_noticed_at_both_ends_and_mending_it_loses_nothing() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let (p, dir, hub_port) = hub_and_an_enrolled_spoke("edge-f", "ping_secs = 1\n");
    let cable = Cable::to(hub_port).await;
    let spoke_toml = "[spokes]\nping_secs = 1\n\
                      [egress]\nhold_timeout_secs = 120\n\
                      [egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n";
    let spoke = run_spoke(
        &format!("https://127.0.0.1:{}", cable.port),
        dir.path(),
        spoke_toml,
    );
    until_connected(&p, "edge-f", true).await;
    asking_box_on(&p, &spoke, "edge-f", "wire").await;
    // Held on the spoke, asked for through the spoke's own API so the
    // asking does not cross the cut.
    let fetching = exec_later(
        &spoke,
        "wire",
        &format!("wget -q -O - http://upstream.test:{}/cut", upstream.port),
    );
    let before = wait_for(
        "the held request at the hub",
        Duration::from_secs(30),
        || first_pending(&p),
    )
    .await;

    cable.cut();
    // A call sent into the cut ends once the hub counts the link dead (a
    // few pings), not when TCP would give up.
    let into_the_cut = tokio::time::timeout(
        Duration::from_secs(60),
        p.post("/api/v1/boxes/wire/exec", json!({"command": "echo lost"})),
    )
    .await
    .expect("a call into a cut link still waits after a minute");
    assert_eq!(
        (into_the_cut.0, into_the_cut.1["error"]["code"].as_str()),
        (503, Some("spoke_unreachable")),
        "{}",
        into_the_cut.1
    );
    until_connected(&p, "edge-f", false).await;
    let (_, got) = p.get("/api/v1/boxes/wire").await;
    assert_eq!(got["unreachable"], true, "kept, shown unreachable: {got}");
    // Nobody at the hub can decide what the spoke holds while cut off.
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    assert_eq!(pending["requests"], json!([]), "{pending}");
    assert!(p.log().contains("a spoke went silent"), "{}", p.log());
    wait_for("the spoke to notice", Duration::from_secs(30), || async {
        spoke
            .log()
            .contains("nothing heard from the hub")
            .then_some(())
    })
    .await;
    assert!(!fetching.is_finished(), "the held connection still waits");

    // Mended: the spoke links again by itself, its box is reached, and
    // the connection it held is announced again and decided at the hub.
    cable.mend();
    until_connected(&p, "edge-f", true).await;
    let again = wait_for(
        "the request announced again",
        Duration::from_secs(30),
        || first_pending(&p),
    )
    .await;
    assert_eq!(again["container"], "wire", "{again}");
    assert_ne!(again["request_id"], before["request_id"]);
    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "wire", "request_id": again["request_id"], "dest": again["dest"], "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
    let out = fetching.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
    let out = exec(&p, "wire", "echo mended").await;
    assert_eq!(out["stdout"], "mended\n", "{out}");
    let (_, got) = p.get("/api/v1/boxes/wire").await;
    assert_eq!(got["unreachable"], Value::Null, "{got}");
}
