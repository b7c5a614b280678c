//! A varlink subscriber's stream over a real unix socket: what the
//! publisher cannot write at once waits for room without tearing a frame
//! or losing one, and a peer that hangs up or speaks again is let go.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_clearance::varlink::VarlinkServer;
use paddock_clearance::{ClearanceEvent, EventKind, Hub, HubConfig};
use tokio_util::sync::CancellationToken;

const SUBSCRIBE: &[u8] = b"{\"method\":\"org.terok.Clearance1.Subscribe\",\"more\":true}\0";

struct Served {
    hub: Arc<Hub>,
    path: PathBuf,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn serve(queue_capacity: usize) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub/clearance.sock");
    let hub = Hub::new(HubConfig {
        queue_capacity,
        terok_discovery: false,
    });
    let server = VarlinkServer::bind(&path, hub.clone(), "test").unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(stop.clone()));
    Served {
        hub,
        path,
        stop,
        _dir: dir,
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn subscriber(served: &Served, count_after: usize) -> UnixStream {
    let mut s = UnixStream::connect(&served.path).unwrap();
    s.write_all(SUBSCRIBE).unwrap();
    until("the subscription", || {
        served.hub.subscriber_count() == count_after
    })
    .await;
    s
}

fn event(i: usize, reason_bytes: usize) -> ClearanceEvent {
    let mut e = ClearanceEvent::new(EventKind::ConnectionBlocked, "box").with_dossier("p", "c");
    e.request_id = format!("r{i}");
    e.dest = "203.0.113.9".into();
    e.reason = "x".repeat(reason_bytes);
    e
}

/// Reads frames off a blocking socket until `n` are in (or it ends).
fn read_frames(s: &mut UnixStream, n: usize) -> Vec<serde_json::Value> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut frames, mut buf, mut chunk) = (Vec::new(), Vec::new(), vec![0u8; 64 * 1024]);
    while frames.len() < n {
        let got = s.read(&mut chunk).expect("frames within 10 s");
        if got == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..got]);
        while let Some(end) = buf.iter().position(|&b| b == 0) {
            frames.push(serde_json::from_slice(&buf[..end]).expect("a whole JSON frame"));
            buf.drain(..=end);
        }
    }
    frames
}

fn ids(frames: &[serde_json::Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            f["parameters"]["event"]["request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_gets_every_frame_whole_once_it_reads() {
    let served = serve(1000).await;
    let mut slow = subscriber(&served, 1).await;
    let mut other = subscriber(&served, 2).await;
    // 200 frames of 8 KiB: far more than a unix socket buffers, so the
    // publisher's writes stop part-way through a frame and the rest waits
    // for room.
    let (rounds, reason_bytes) = (200, 8 * 1024);
    let reader = std::thread::spawn(move || read_frames(&mut other, rounds));
    for i in 0..rounds {
        served.hub.publish(event(i, reason_bytes));
    }
    let others = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(others.len(), rounds, "the reading subscriber got them all");
    // Only now does the slow one read.
    let frames = tokio::task::spawn_blocking(move || {
        let frames = read_frames(&mut slow, rounds);
        (frames, slow)
    })
    .await
    .unwrap();
    let (frames, mut slow) = frames;
    let expected: Vec<String> = (0..rounds).map(|i| format!("r{i}")).collect();
    assert_eq!(ids(&frames), expected, "in order, none lost, none torn");
    assert_eq!(served.hub.subscriber_queues()[0].dropped, 0);
    // Its backlog written, it is served as before.
    served.hub.publish(event(rounds, 16));
    let next = tokio::task::spawn_blocking(move || read_frames(&mut slow, 1))
        .await
        .unwrap();
    assert_eq!(ids(&next), vec![format!("r{rounds}")]);
    served.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_hangs_up_is_let_go() {
    let served = serve(16).await;
    let gone = subscriber(&served, 1).await;
    let _stays = subscriber(&served, 2).await;
    drop(gone);
    until("the hung-up subscriber to go", || {
        served.hub.subscriber_count() == 1
    })
    .await;
    served.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_after_subscribing_ends_the_stream_but_half_of_one_does_not() {
    let served = serve(16).await;
    let mut s = subscriber(&served, 1).await;
    // Half a message: the stream goes on.
    s.write_all(b"{\"method\":").unwrap();
    served.hub.publish(event(1, 16));
    let (frames, mut s) = tokio::task::spawn_blocking(move || (read_frames(&mut s, 1), s))
        .await
        .unwrap();
    assert_eq!(ids(&frames), vec!["r1".to_owned()]);
    // Its end: a streaming connection takes no further calls.
    s.write_all(b"\"org.varlink.service.GetInfo\"}\0").unwrap();
    until("the subscriber that spoke to go", || {
        served.hub.subscriber_count() == 0
    })
    .await;
    let ended = tokio::task::spawn_blocking(move || read_frames(&mut s, 1))
        .await
        .unwrap();
    assert!(ended.is_empty(), "the socket was closed: {ended:?}");
    served.stop.cancel();
}
