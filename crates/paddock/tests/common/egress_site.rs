//! What egress tests stand on: an upstream server of the test's own, a
//! hub subscriber, and helpers to run commands in a box without waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_clearance::ClearanceEvent;
use paddock_clearance::varlink::{EventStream, VarlinkClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Paddock;

pub const UPSTREAM_BODY: &str = "hello from upstream";

/// A server the test owns: answers `GET` with 200 and a fixed body, and
/// records the first bytes of every connection (so a test can tell whether
/// anything reached it, and what).
pub struct Upstream {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(bind: &str) -> Self {
        let listener = TcpListener::bind(bind).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(Vec::new());
                    log.len() - 1
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let read =
                            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                                .await;
                        let got = match read {
                            Ok(Ok(n)) if n > 0 => {
                                let mut log = log.lock().unwrap();
                                log[index].extend_from_slice(&buf[..n]);
                                log[index].clone()
                            }
                            _ => break,
                        };
                        if got.starts_with(b"GET ") && got.windows(4).any(|w| w == b"\r\n\r\n") {
                            let body = format!("{UPSTREAM_BODY}\n");
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = stream.write_all(head.as_bytes()).await;
                            let _ = stream.write_all(body.as_bytes()).await;
                            break;
                        }
                    }
                });
            }
        });
        Self {
            port,
            received,
            task,
        }
    }

    pub fn connections(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A hub subscriber over the varlink socket.
pub struct Subscriber {
    stream: EventStream,
}

impl Subscriber {
    pub async fn connect(p: &Paddock) -> Self {
        let client = VarlinkClient::connect(&p.clearance_socket()).await.unwrap();
        let stream = client.subscribe().await.unwrap();
        Self { stream }
    }

    /// The next event satisfying `pred`, skipping others.
    pub async fn next_where(
        &mut self,
        what: &str,
        pred: impl Fn(&ClearanceEvent) -> bool,
    ) -> ClearanceEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} event within 30 s"))
                .expect("the event stream stays open");
            if pred(&event) {
                return event;
            }
        }
    }
}

/// Causes one event every subscriber sees: the box's shield raised (again).
pub async fn poke(p: &Paddock, box_id: &str) {
    let (status, _) = p
        .put(
            &format!("/api/v1/boxes/{box_id}/shield"),
            json!({"state": "up"}),
        )
        .await;
    assert_eq!(status, 200);
}

/// Returns once the subscription is certainly live: the server registers
/// it asynchronously, so the test pokes the hub with shield events until
/// one arrives.
pub async fn subscribed(p: &Paddock, sub: &mut Subscriber, box_id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        poke(p, box_id).await;
        let wait = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                let e = sub
                    .stream
                    .next()
                    .await
                    .expect("the event stream stays open");
                if e.kind == "shield_up" && e.container == box_id {
                    return;
                }
            }
        });
        if wait.await.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription never went live"
        );
    }
}

pub async fn create_box(p: &Paddock, box_id: &str, project: &str) -> Value {
    create_box_under(p, box_id, project, None).await
}

/// A box under the OCI runtime `runtime` (None: the engine's default).
pub async fn create_box_under(
    p: &Paddock,
    box_id: &str,
    project: &str,
    runtime: Option<&str>,
) -> Value {
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": project, "box_id": box_id, "runtime": runtime}),
        )
        .await;
    assert_eq!(status, 201, "create: {body}; log:\n{}", p.log());
    body
}

pub async fn add_rule(p: &Paddock, rule: Value) -> Value {
    let (status, body) = p.post("/api/v1/egress/rules", rule).await;
    assert_eq!(status, 201, "rule: {body}");
    body
}

/// Runs a shell command in the box through REST; returns the JSON result.
pub fn exec_later(p: &Paddock, box_id: &str, command: &str) -> tokio::task::JoinHandle<Value> {
    let url = format!("{}/api/v1/boxes/{box_id}/exec", p.url);
    let http = p.http.clone();
    let command = command.to_owned();
    tokio::spawn(async move {
        http.post(url)
            .json(&json!({"command": command}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    })
}

pub async fn exec(p: &Paddock, box_id: &str, command: &str) -> Value {
    exec_later(p, box_id, command).await.unwrap()
}

/// The box's gateway: where its proxy, resolver and git gate listen.
pub async fn gateway_of(p: &Paddock, box_id: &str) -> String {
    let out = exec(p, box_id, "echo $HTTP_PROXY").await;
    out["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches(":3128")
        .to_owned()
}

pub async fn audit(p: &Paddock, box_id: &str) -> Vec<Value> {
    let (status, body) = p
        .get(&format!("/api/v1/egress/log?box_id={box_id}&limit=1000"))
        .await;
    assert_eq!(status, 200);
    body["entries"].as_array().cloned().unwrap_or_default()
}

/// Waits until the box's decision log holds every one of `expected` (the
/// log is written in batches, a moment after the decisions).
pub async fn logged(p: &Paddock, box_id: &str, expected: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = decisions(&audit(p, box_id).await);
        if expected.iter().all(|e| log.iter().any(|d| d == e)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{expected:?} not all in the log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn decisions(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["decision"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// A request of a box held for a person: `wget` from the box to `host`
/// (named in `[egress.hosts]` as loopback) on an upstream of the test's,
/// held by an `ask` rule for loopback in the box's project.
pub struct Held {
    pub event: ClearanceEvent,
    pub host: String,
    pub run: tokio::task::JoinHandle<Value>,
    _upstream: Upstream,
    _subscriber: Subscriber,
}

impl Held {
    pub async fn open(p: &Paddock, box_id: &str, project: &str, host: &str) -> Self {
        let upstream = Upstream::start("127.0.0.1:0").await;
        add_rule(
            p,
            json!({"project": project, "target": "127.0.0.1/32", "action": "ask"}),
        )
        .await;
        let mut subscriber = Subscriber::connect(p).await;
        subscribed(p, &mut subscriber, box_id).await;
        let run = exec_later(
            p,
            box_id,
            &format!("wget -q -O - http://{host}:{}/", upstream.port),
        );
        let event = subscriber
            .next_where("connection_blocked", |e| {
                e.kind == "connection_blocked" && !e.request_id.is_empty()
            })
            .await;
        Self {
            event,
            host: host.to_owned(),
            run,
            _upstream: upstream,
            _subscriber: subscriber,
        }
    }

    /// A person allows it, once, over REST; the box's command's answer.
    pub async fn allow(self, p: &Paddock) -> Value {
        let (status, body) = p
            .post(
                "/api/v1/egress/verdicts",
                json!({"container": self.event.container, "request_id": self.event.request_id,
                       "dest": self.host, "action": "allow", "scope": "once"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        self.run.await.unwrap()
    }
}
