//! One hub subscriber turns holds and their ends into deliveries; each
//! endpoint has its own bounded queue and its own worker, so a receiver
//! that is down, slow or failing delays only itself — never the hub,
//! never another endpoint. A delivery is retried with a doubling pause
//! until it succeeds or runs out of attempts; while it is retried, later
//! ones wait behind it (they arrive in order). A full queue drops its
//! oldest delivery and counts it. Redirects are never followed: a 3xx is
//! a failed attempt.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use paddock_clearance::{EventKind, HELD_AT, Hub, PendingView, Published};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::WebhookError;
use crate::config::{Endpoint, WebhookConfig};
use crate::payload::{Notice, body};
use crate::sign::signature;

/// The longest pause between two attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(300);

/// How one endpoint has fared, for logs and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub given_up: AtomicU64,
    pub dropped: AtomicU64,
}

struct Delivery {
    id: String,
    notice: Notice,
}

struct Queue {
    endpoint: Endpoint,
    waiting: Mutex<VecDeque<Delivery>>,
    wake: Notify,
    counters: Arc<Counters>,
}

impl Queue {
    fn push(&self, delivery: Delivery) {
        let mut waiting = self.waiting.lock();
        if waiting.len() >= self.endpoint.queue_capacity {
            waiting.pop_front();
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(endpoint = %self.endpoint.url, "a webhook queue is full; its oldest delivery was dropped");
        }
        waiting.push_back(delivery);
        drop(waiting);
        self.wake.notify_one();
    }
}

/// The running webhooks.
pub struct Webhooks {
    counters: Vec<Arc<Counters>>,
}

impl Webhooks {
    /// Starts delivering every hold and its end to each endpoint, until
    /// `stop`. `console` is paddock's public URL (for links).
    pub fn start(
        configs: &[WebhookConfig],
        hub: &Arc<Hub>,
        console: &str,
        stop: CancellationToken,
    ) -> Result<Self, WebhookError> {
        let endpoints = configs
            .iter()
            .enumerate()
            .map(|(i, c)| c.check(i))
            .collect::<Result<Vec<_>, _>>()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebhookError::Config(format!("the HTTP client: {e}")))?;
        let queues: Vec<Arc<Queue>> = endpoints
            .into_iter()
            .map(|endpoint| {
                Arc::new(Queue {
                    endpoint,
                    waiting: Mutex::new(VecDeque::new()),
                    wake: Notify::new(),
                    counters: Arc::new(Counters::default()),
                })
            })
            .collect();
        let counters = queues.iter().map(|q| q.counters.clone()).collect();
        if queues.is_empty() {
            return Ok(Self { counters });
        }
        for queue in &queues {
            tokio::spawn(work(
                queue.clone(),
                http.clone(),
                console.trim_end_matches('/').to_owned(),
                stop.clone(),
            ));
        }
        // Subscribed before `start` returns: nothing held after it is missed.
        let subscription = hub.subscribe();
        tokio::spawn(listen(hub.clone(), subscription, queues, stop));
        Ok(Self { counters })
    }

    /// Per endpoint, in the order configured.
    pub fn counters(&self) -> &[Arc<Counters>] {
        &self.counters
    }
}

/// What a hub event means for webhooks, if anything.
fn notice_of(
    hub: &Hub,
    published: &Published,
    remembered: &Mutex<Vec<PendingView>>,
) -> Option<Notice> {
    let e = &published.event;
    // Held by another hub on this database, which tells of it: one
    // notice for one held connection, however many hubs mirror it.
    if e.dossier.contains_key(HELD_AT) {
        return None;
    }
    if e.kind == EventKind::ConnectionBlocked.as_str() && !e.request_id.is_empty() {
        // Decided before this was read, it is still announced as held.
        let held = hub
            .pending_request(&e.request_id)
            .map_or_else(|| PendingView::from_event(e), |p| PendingView::from(&p));
        let mut seen = remembered.lock();
        seen.retain(|r| r.request_id != held.request_id);
        seen.push(held.clone());
        if seen.len() > 4096 {
            seen.remove(0);
        }
        return Some(Notice::Held(held));
    }
    if e.kind == EventKind::VerdictApplied.as_str() && !e.request_id.is_empty() {
        let mut seen = remembered.lock();
        let at = seen.iter().position(|r| r.request_id == e.request_id)?;
        let request = seen.remove(at);
        return Some(Notice::Ended {
            request,
            action: e.action.clone(),
            ok: e.ok,
            reason: e.reason.clone(),
        });
    }
    None
}

async fn listen(
    hub: Arc<Hub>,
    subscription: paddock_clearance::Subscription,
    queues: Vec<Arc<Queue>>,
    stop: CancellationToken,
) {
    // Holds announced and not yet ended, so an end names what it ends.
    let remembered = Mutex::new(Vec::new());
    loop {
        let published = tokio::select! {
            () = stop.cancelled() => return,
            p = subscription.next() => match p {
                Some(p) => p,
                None => return,
            },
        };
        let Some(notice) = notice_of(&hub, &published, &remembered) else {
            continue;
        };
        for queue in &queues {
            queue.push(Delivery {
                id: format!("msg_{}", paddock_secret::random_id(12)),
                notice: notice.clone(),
            });
        }
    }
}

async fn work(queue: Arc<Queue>, http: reqwest::Client, console: String, stop: CancellationToken) {
    loop {
        let next = queue.waiting.lock().pop_front();
        let Some(delivery) = next else {
            tokio::select! {
                () = stop.cancelled() => return,
                () = queue.wake.notified() => continue,
            }
        };
        let url = format!(
            "{console}/console#req-{}",
            delivery.notice.request().request_id
        );
        let mut pause = queue.endpoint.backoff;
        for attempt in 1..=queue.endpoint.max_attempts {
            match attempt_once(&http, &queue.endpoint, &delivery, &url).await {
                Ok(()) => {
                    queue.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(why) => {
                    queue
                        .counters
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    if attempt == queue.endpoint.max_attempts {
                        queue.counters.given_up.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(endpoint = %queue.endpoint.url, delivery = %delivery.id, %why, attempts = attempt, "a webhook delivery was given up");
                        break;
                    }
                    tracing::info!(endpoint = %queue.endpoint.url, delivery = %delivery.id, %why, attempt, "a webhook delivery failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
            }
        }
    }
}

async fn attempt_once(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    delivery: &Delivery,
    console_url: &str,
) -> Result<(), String> {
    let body = body(&delivery.notice, endpoint.format, console_url);
    let timestamp = now_secs();
    let signed = signature(&endpoint.key, &delivery.id, timestamp, &body.bytes)
        .ok_or("the key cannot sign")?;
    let mut request = http
        .post(endpoint.url.clone())
        .timeout(endpoint.timeout)
        .header("content-type", body.content_type)
        .header("webhook-id", &delivery.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signed)
        .header("x-paddock-event", delivery.notice.kind());
    for (name, value) in body.headers {
        request = request.header(name, value);
    }
    let response = request
        .body(body.bytes)
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    answered(response.status())
}

/// Whether a receiver's status is a delivery: only a 2xx is; a redirect
/// is never followed.
pub fn answered(status: reqwest::StatusCode) -> Result<(), String> {
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(format!("answered {status}; redirects are not followed"))
    } else {
        Err(format!("answered {status}"))
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
