//! The exporter: one task per sink, each going through the decision log
//! from its cursor in batches, delivering, and only then moving the
//! cursor. A failing sink is tried again with a doubling pause (up to
//! five minutes) and holds back nobody else: every sink has its own
//! cursor and task.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use paddock_metrics::{CounterVec, ReadFn};
use paddock_store::{AuditRow, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{AuditConfig, Format, Sink, Target};
use crate::file::FileSink;
use crate::webhook::WebhookSink;
use crate::{ExportError, record};

/// The longest pause between two tries of a failing sink.
const LONGEST_PAUSE: Duration = Duration::from_secs(300);

static EXPORTED: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_audit_exported_total",
        "Decision log entries delivered, by sink.",
        &["sink"],
    )
});

static FAILURES: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_audit_export_failures_total",
        "Deliveries that failed and will be tried again, by sink.",
        &["sink"],
    )
});

/// Where a sink's batches go.
enum Deliver {
    File(Arc<FileSink>),
    Webhook(WebhookSink),
}

impl Deliver {
    async fn batch(&self, name: &str, rows: &[AuditRow], body: Vec<u8>) -> Result<(), String> {
        match self {
            Self::File(file) => {
                let writer = file.clone();
                tokio::task::spawn_blocking(move || writer.append(&body))
                    .await
                    .map_err(|e| format!("the writer stopped: {e}"))?
                    .map_err(|e| format!("cannot write {}: {e}", file.path.display()))
            }
            Self::Webhook(hook) => {
                let first = rows.first().map_or(0, |r| r.id);
                let last = rows.last().map_or(0, |r| r.id);
                hook.post(&format!("audit_{name}_{first}_{last}"), body)
                    .await
            }
        }
    }
}

fn render(rows: &[AuditRow], format: Format) -> Vec<u8> {
    let mut body = Vec::new();
    for row in rows {
        let record = match format {
            Format::Jsonl => record::jsonl(row),
            Format::Ocsf => record::ocsf(row),
        };
        body.extend_from_slice(record.to_string().as_bytes());
        body.push(b'\n');
    }
    body
}

/// The running sinks.
pub struct Exporter {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Exporter {
    /// Starts a task per configured sink; refuses a bad configuration
    /// before starting any.
    pub fn start(config: &AuditConfig, store: Arc<Store>) -> Result<Self, ExportError> {
        config.check()?;
        let sinks = config.sinks()?;
        let mut http: Option<reqwest::Client> = None;
        let mut deliverers = Vec::with_capacity(sinks.len());
        for sink in &sinks {
            deliverers.push(match &sink.target {
                Target::File {
                    path,
                    rotate_bytes,
                    keep_files,
                } => Deliver::File(Arc::new(FileSink {
                    path: path.clone(),
                    rotate_bytes: *rotate_bytes,
                    keep_files: *keep_files,
                })),
                Target::Webhook { url, key, timeout } => {
                    let client = match &http {
                        Some(client) => client.clone(),
                        None => WebhookSink::client().map_err(ExportError::Config)?,
                    };
                    http = Some(client.clone());
                    Deliver::Webhook(WebhookSink {
                        http: client,
                        url: url.clone(),
                        key: key.clone(),
                        timeout: *timeout,
                    })
                }
            });
        }
        register_lag(&store, &sinks);
        let stop = CancellationToken::new();
        let tasks = sinks
            .into_iter()
            .zip(deliverers)
            .map(|(sink, deliver)| {
                EXPORTED.add(&[&sink.name], 0);
                FAILURES.add(&[&sink.name], 0);
                tokio::spawn(run(sink, deliver, store.clone(), stop.clone()))
            })
            .collect();
        Ok(Self { stop, tasks })
    }

    /// Stops the sinks once each has delivered what the log holds now (or
    /// failed to), waiting `within` at most; what is left goes on the next
    /// start.
    pub async fn finish(self, within: Duration) {
        self.stop.cancel();
        let all = futures_join(self.tasks);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!(
                "audit export did not finish in time; it goes on from its cursors at the next start"
            );
        }
    }

    /// What every configured sink has delivered: the smallest cursor, 0
    /// for a sink that has delivered nothing; `None` with no sinks (then
    /// retention goes by age alone).
    pub fn delivered_up_to(
        config: &AuditConfig,
        store: &Store,
    ) -> Result<Option<i64>, ExportError> {
        let mut least: Option<i64> = None;
        for sink in &config.sinks {
            let cursor = store.audit_cursor(&sink.name)?.unwrap_or(0);
            least = Some(least.map_or(cursor, |l| l.min(cursor)));
        }
        Ok(least)
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// How far behind each sink is, read from the store when scraped.
fn register_lag(store: &Arc<Store>, sinks: &[Sink]) {
    let names: Vec<String> = sinks.iter().map(|s| s.name.clone()).collect();
    let store = Arc::downgrade(store);
    paddock_metrics::global().register(Arc::new(ReadFn::gauge(
        "paddock_audit_export_lag",
        "Decision log entries a sink has still to deliver.",
        &["sink"],
        move || {
            let Some(store) = store.upgrade() else {
                return Vec::new();
            };
            let Ok(last) = store.egress_audit_last_id() else {
                return Vec::new();
            };
            names
                .iter()
                .filter_map(|name| {
                    let cursor = store.audit_cursor(name).ok()?.unwrap_or(0);
                    Some((vec![name.clone()], (last - cursor).max(0) as f64))
                })
                .collect()
        },
    )));
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> paddock_store::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the store's reader stopped: {e}")),
    }
}

/// One sink's loop: from its cursor through the log, batch by batch.
async fn run(sink: Sink, deliver: Deliver, store: Arc<Store>, stop: CancellationToken) {
    let name = sink.name.clone();
    let mut cursor: Option<i64> = None;
    let mut pause = sink.poll;
    let mut failing = false;
    loop {
        let stopping = stop.is_cancelled();
        match pass(&sink, &deliver, &store, &mut cursor).await {
            Ok(0) => {
                if stopping {
                    return;
                }
                if failing {
                    tracing::info!(sink = %name, "audit export delivers again");
                    failing = false;
                }
                pause = sink.poll;
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(sink.poll) => {}
                }
            }
            Ok(_) => {
                if failing {
                    tracing::info!(sink = %name, "audit export delivers again");
                    failing = false;
                }
                pause = sink.poll;
            }
            Err(why) => {
                FAILURES.inc(&[&name]);
                if !failing {
                    tracing::warn!(sink = %name, error = %why, "audit export failed; it is tried again and loses nothing");
                }
                failing = true;
                if stopping {
                    return;
                }
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

/// Delivers one batch after the cursor; how many entries it held.
async fn pass(
    sink: &Sink,
    deliver: &Deliver,
    store: &Arc<Store>,
    cursor: &mut Option<i64>,
) -> Result<usize, String> {
    // Hubs on one database share the log and the cursors: one of them,
    // the leader, delivers. Another reads the cursor afresh when it
    // comes to lead.
    if !store.leads() {
        *cursor = None;
        return Ok(0);
    }
    let after = match *cursor {
        Some(after) => after,
        None => {
            let (store, name) = (store.clone(), sink.name.clone());
            let found = blocking(move || store.audit_cursor(&name))
                .await?
                .unwrap_or(0);
            *cursor = Some(found);
            found
        }
    };
    let (reader, batch) = (store.clone(), sink.batch);
    let rows = blocking(move || reader.egress_audit_after(after, batch)).await?;
    let Some(last) = rows.last().map(|r| r.id) else {
        return Ok(0);
    };
    deliver
        .batch(&sink.name, &rows, render(&rows, sink.format))
        .await?;
    *cursor = Some(last);
    EXPORTED.add(&[&sink.name], rows.len() as u64);
    let (writer, name) = (store.clone(), sink.name.clone());
    if let Err(why) = blocking(move || writer.set_audit_cursor(&name, last)).await {
        // Delivered, but a restart would not know: it delivers again.
        tracing::warn!(sink = %sink.name, error = %why, "cannot store the audit export cursor");
    }
    Ok(rows.len())
}
