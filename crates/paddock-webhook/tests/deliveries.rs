//! Webhooks against receivers this test runs on loopback, fed by a real
//! hub: every hold and its end arrives, signed (verified here with the
//! Standard Webhooks recipe); a receiver that fails gets everything once it
//! recovers; one that is slow delays nobody else; a redirect is a failed
//! delivery and is never followed; a full queue drops its oldest and says
//! how many; an agent's words cannot mention or link in a chat payload; a
//! request another hub holds is left to that hub's webhooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use paddock_clearance::{AGENT_REASON, ClearanceEvent, EventKind, Hold, Hub, HubConfig};
use paddock_webhook::{Format, WebhookConfig, Webhooks, key_of, signature};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Default)]
struct Seen {
    /// (path, headers, body) of every request that was answered 2xx.
    accepted: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    flaky_calls: AtomicUsize,
    redirected_to: AtomicUsize,
}

async fn accept(path: &str, seen: &Seen, headers: HeaderMap, body: Bytes) {
    seen.accepted.lock().push((path.to_owned(), headers, body));
}

async fn receiver() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/ok",
            post(
                |State(s): State<Arc<Seen>>, h: HeaderMap, b: Bytes| async move {
                    accept("/ok", &s, h, b).await;
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/flaky",
            post(
                |State(s): State<Arc<Seen>>, h: HeaderMap, b: Bytes| async move {
                    if s.flaky_calls.fetch_add(1, Ordering::SeqCst) < 3 {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    accept("/flaky", &s, h, b).await;
                    StatusCode::OK
                },
            ),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::OK
            }),
        )
        .route(
            "/redirect",
            post(|| async {
                (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response()
            }),
        )
        .route(
            "/elsewhere",
            post(|State(s): State<Arc<Seen>>| async move {
                s.redirected_to.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn endpoint(url: String, format: Format, queue: usize, attempts: u32) -> WebhookConfig {
    WebhookConfig {
        url,
        secret: Some(SECRET.into()),
        secret_file: None,
        format,
        queue_capacity: queue,
        max_attempts: attempts,
        timeout_secs: 1,
        backoff_ms: 20,
    }
}

fn held(hub: &Hub, dest: &str, reason: &str) -> String {
    let mut e =
        ClearanceEvent::new(EventKind::ConnectionBlocked, "box-w").with_dossier("proj", "c");
    e.dest = dest.into();
    e.domain = dest.into();
    e.port = 443;
    e.proto = 6;
    e.dossier.insert(AGENT_REASON.into(), reason.into());
    match hub.hold(e, 1000, Duration::from_secs(60)) {
        Hold::Held(t) => t.request_id,
        Hold::TooMany => panic!("held too many"),
    }
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn accepted_at(seen: &Seen, path: &str) -> Vec<(HeaderMap, serde_json::Value, String)> {
    seen.accepted
        .lock()
        .iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, h, b)| {
            let text = String::from_utf8_lossy(b).into_owned();
            (
                h.clone(),
                serde_json::from_str(&text).unwrap_or_default(),
                text,
            )
        })
        .collect()
}

#[tokio::test]
async fn holds_and_their_ends_reach_every_endpoint_signed_and_nothing_waits() {
    let (base, seen) = receiver().await;
    let hub = Hub::new(HubConfig::default());
    let stop = CancellationToken::new();
    let webhooks = Webhooks::start(
        &[
            endpoint(format!("{base}/ok"), Format::Json, 100, 5),
            endpoint(format!("{base}/flaky"), Format::Slack, 100, 10),
            endpoint(format!("{base}/slow"), Format::Ntfy, 100, 3),
            endpoint(format!("{base}/redirect"), Format::Json, 100, 2),
        ],
        &hub,
        "https://paddock.example/",
        stop.clone(),
    )
    .unwrap();
    let said = "<!channel> @here see https://evil.example";
    let started = Instant::now();
    let id = held(&hub, "api.example", said);
    hub.withdraw(&id, "timeout", "no verdict within 60 s");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "the hub waited on webhooks"
    );

    // The healthy endpoint has both, in order, while the slow one hangs.
    until("both at /ok", || accepted_at(&seen, "/ok").len() == 2).await;
    let ok = accepted_at(&seen, "/ok");
    assert_eq!(ok[0].1["type"], "held");
    assert_eq!(ok[0].1["request"]["request_id"], id.as_str());
    assert_eq!(ok[0].1["request"]["agent_reason"], said);
    assert_eq!(
        ok[0].1["console_url"],
        format!("https://paddock.example/console#req-{id}")
    );
    assert_eq!(ok[1].1["type"], "ended");
    assert_eq!(ok[1].1["outcome"]["action"], "deny");
    assert_eq!(ok[1].1["outcome"]["reason"], "no verdict within 60 s");
    // Signed as Standard Webhooks says; the receiver can check it.
    let key = key_of(SECRET).unwrap();
    for (headers, _, text) in &ok {
        let h = |n: &str| headers[n].to_str().unwrap().to_owned();
        let expected = signature(
            &key,
            &h("webhook-id"),
            h("webhook-timestamp").parse().unwrap(),
            text.as_bytes(),
        )
        .unwrap();
        assert_eq!(h("webhook-signature"), expected);
    }

    // The failing endpoint loses nothing once it recovers; the chat text
    // cannot ping or link.
    until("both at /flaky", || accepted_at(&seen, "/flaky").len() == 2).await;
    let flaky = accepted_at(&seen, "/flaky");
    let text = flaky[0].1["text"].as_str().unwrap();
    assert!(text.contains("box-w"), "{text}");
    assert!(
        !text.contains("<!channel>") && !text.contains("@here"),
        "{text}"
    );
    assert!(!text.contains("https://evil"), "{text}");
    assert!(
        text.contains(&format!(
            "<https://paddock.example/console#req-{id}|Open the console>"
        )),
        "{text}"
    );
    assert!(
        webhooks.counters()[1]
            .failed_attempts
            .load(Ordering::Relaxed)
            >= 3
    );

    // A redirect is a failure, never followed.
    let redirect = &webhooks.counters()[3];
    until("the redirect's deliveries given up", || {
        redirect.given_up.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(seen.redirected_to.load(Ordering::SeqCst), 0);
    stop.cancel();
}

#[tokio::test]
async fn a_request_another_hub_holds_is_told_by_that_hub_alone() {
    let (base, seen) = receiver().await;
    let hub = Hub::new(HubConfig::default());
    let stop = CancellationToken::new();
    let _webhooks = Webhooks::start(
        &[endpoint(format!("{base}/ok"), Format::Json, 100, 5)],
        &hub,
        "https://paddock.example/",
        stop.clone(),
    )
    .unwrap();
    // Mirrored from the hub that holds it (hubs on one database), then
    // one of this hub's own: one queue, in order, so the mirrored one
    // would have come first had it been sent.
    let mut mirrored =
        ClearanceEvent::new(EventKind::ConnectionBlocked, "box-m").with_dossier("proj", "c");
    mirrored.dest = "mirrored.example".into();
    mirrored
        .dossier
        .insert(paddock_clearance::HELD_AT.into(), "other-hub".into());
    let Hold::Held(_) = hub.hold(mirrored, 1000, Duration::from_secs(60)) else {
        panic!("held too many")
    };
    let own = held(&hub, "own.example", "");
    until("a delivery at /ok", || {
        !accepted_at(&seen, "/ok").is_empty()
    })
    .await;
    let first = &accepted_at(&seen, "/ok")[0].1;
    assert_eq!(first["request"]["request_id"], own.as_str(), "{first}");
    stop.cancel();
}

#[tokio::test]
async fn a_full_queue_drops_its_oldest_and_counts_them() {
    let (base, _seen) = receiver().await;
    let hub = Hub::new(HubConfig::default());
    let stop = CancellationToken::new();
    let webhooks = Webhooks::start(
        &[endpoint(format!("{base}/slow"), Format::Json, 2, 1)],
        &hub,
        "http://127.0.0.1:7878",
        stop.clone(),
    )
    .unwrap();
    for n in 0..10 {
        held(&hub, &format!("d{n}.example"), "");
    }
    let counters = &webhooks.counters()[0];
    // Two wait (and at most one is in flight at the slow receiver): the
    // rest were dropped, oldest first, and counted.
    until("drops counted", || {
        counters.dropped.load(Ordering::Relaxed) >= 7
    })
    .await;
    assert!(counters.dropped.load(Ordering::Relaxed) <= 8);
    stop.cancel();
}

#[test]
fn bad_endpoints_are_refused_at_start() {
    let mut bad = endpoint("ftp://x".into(), Format::Json, 1, 1);
    assert!(bad.check(0).unwrap_err().to_string().contains("http"));
    bad.url = "http://127.0.0.1:1/".into();
    bad.secret = Some("short".into());
    assert!(bad.check(0).unwrap_err().to_string().contains("too short"));
    bad.secret = None;
    assert!(bad.check(0).unwrap_err().to_string().contains("secret"));
}
