//! The exporter: a bounded queue of finished spans, drained in batches to
//! the collector's `/v1/traces`. Export is best effort by design: a batch
//! the collector refuses is dropped and counted, never retried at the
//! cost of the paths being traced.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use paddock_metrics::CounterVec;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::otlp;
use crate::span::Finished;

/// `[traces]` in paddock.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`);
    /// spans go to `<endpoint>/v1/traces`. None: no traces.
    pub endpoint: Option<String>,
    pub service_name: String,
    /// Finished spans waiting for export; past this the oldest are dropped.
    pub queue_capacity: usize,
    /// Spans per export request at most.
    pub batch: usize,
    /// How long spans may wait before a batch goes, in milliseconds.
    pub flush_ms: u64,
    pub timeout_secs: u64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "paddock".into(),
            queue_capacity: 4096,
            batch: 512,
            flush_ms: 1000,
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("[traces] {0}")]
    Config(String),
}

pub(crate) static DROPPED: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_trace_spans_dropped_total",
        "Spans not exported: the queue was full, or the collector refused or did not answer.",
        &["why"],
    )
});

/// The process's tracer, once installed.
static TRACER: OnceLock<Arc<Tracer>> = OnceLock::new();

pub struct Tracer {
    pub(crate) queue: Mutex<VecDeque<Finished>>,
    wake: Notify,
    capacity: usize,
}

impl Tracer {
    pub(crate) fn installed() -> Option<Arc<Tracer>> {
        TRACER.get().cloned()
    }

    pub(crate) fn finished(&self, span: Finished) {
        let mut queue = self.queue.lock();
        if queue.len() >= self.capacity {
            queue.pop_front();
            DROPPED.inc(&["queue_full"]);
        }
        queue.push_back(span);
        let full_batch = queue.len() >= self.capacity / 2;
        drop(queue);
        if full_batch {
            self.wake.notify_one();
        }
    }

    /// Starts exporting to the configured collector (nothing when none is
    /// configured) until `stop`, when what is queued is sent once more.
    /// One tracer per process: a second install is refused.
    pub fn install(
        config: &TraceConfig,
        stop: CancellationToken,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, TraceError> {
        let Some(endpoint) = &config.endpoint else {
            return Ok(None);
        };
        let base = reqwest::Url::parse(endpoint)
            .map_err(|e| TraceError::Config(format!("endpoint: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(TraceError::Config(
                "endpoint must be http:// or https://".into(),
            ));
        }
        let url = base
            .join("v1/traces")
            .map_err(|e| TraceError::Config(format!("endpoint: {e}")))?;
        if config.queue_capacity == 0 || config.batch == 0 {
            return Err(TraceError::Config(
                "queue_capacity and batch must be at least 1".into(),
            ));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .build()
            .map_err(|e| TraceError::Config(format!("the HTTP client: {e}")))?;
        let tracer = Arc::new(Tracer {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            capacity: config.queue_capacity,
        });
        TRACER
            .set(tracer.clone())
            .map_err(|_| TraceError::Config("a tracer is already installed".into()))?;
        LazyLock::force(&DROPPED);
        let exporter = Exporter {
            tracer,
            http,
            url,
            service: config.service_name.clone(),
            batch: config.batch,
            flush: Duration::from_millis(config.flush_ms.max(10)),
        };
        Ok(Some(tokio::spawn(exporter.run(stop))))
    }
}

struct Exporter {
    tracer: Arc<Tracer>,
    http: reqwest::Client,
    url: reqwest::Url,
    service: String,
    batch: usize,
    flush: Duration,
}

impl Exporter {
    async fn run(self, stop: CancellationToken) {
        let mut failing = false;
        loop {
            let stopping = tokio::select! {
                () = stop.cancelled() => true,
                () = self.tracer.wake.notified() => false,
                () = tokio::time::sleep(self.flush) => false,
            };
            loop {
                let batch: Vec<Finished> = {
                    let mut queue = self.tracer.queue.lock();
                    let n = queue.len().min(self.batch);
                    queue.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                match self.send(&batch).await {
                    Ok(()) if failing => {
                        tracing::info!("traces are exported again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(why) => {
                        DROPPED.add(&["export_failed"], batch.len() as u64);
                        if !failing {
                            tracing::warn!(error = %why, "cannot export traces; spans are dropped until the collector answers");
                        }
                        failing = true;
                        break;
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }

    async fn send(&self, batch: &[Finished]) -> Result<(), String> {
        let body = otlp::request(&self.service, batch);
        let answer = self
            .http
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {}", answer.status()))
        }
    }
}
