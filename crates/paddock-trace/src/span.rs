//! Spans and the task's current span.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::export::Tracer;

/// Where a span sits in a trace: the trace and the span's own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// OTLP's span kinds paddock uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
}

/// A span that ended, as the exporter sends it.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub context: SpanContext,
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    pub error: Option<String>,
}

/// A span being timed; sent when dropped. Without a tracer it holds
/// nothing and costs a branch.
pub struct Span {
    live: Option<(Arc<Tracer>, Box<Finished>)>,
}

tokio::task_local! {
    static CURRENT: SpanContext;
}

/// The task's current span, if it runs inside one ([`in_span`]).
pub fn current() -> Option<SpanContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// Runs `work` with `context` as the current span: spans made inside it
/// are its children.
pub async fn in_span<F: std::future::Future>(context: Option<SpanContext>, work: F) -> F::Output {
    match context {
        Some(context) => CURRENT.scope(context, work).await,
        None => work.await,
    }
}

/// Whether spans are exported: callers that would build a span's name
/// (a `format!`) skip it when they are not.
pub fn enabled() -> bool {
    Tracer::installed().is_some()
}

/// A new span, a child of the task's current span if there is one.
pub fn span(name: impl Into<String>, kind: SpanKind) -> Span {
    let Some(tracer) = Tracer::installed() else {
        return Span { live: None };
    };
    let parent = current();
    let context = SpanContext {
        trace_id: parent.map_or_else(rand::random, |p| p.trace_id),
        span_id: rand::random(),
    };
    Span {
        live: Some((
            tracer,
            Box::new(Finished {
                context,
                parent: parent.map(|p| p.span_id),
                name: name.into(),
                kind,
                start: SystemTime::now(),
                end: SystemTime::now(),
                attributes: Vec::new(),
                error: None,
            }),
        )),
    }
}

impl Span {
    /// Adds an attribute (a string, number or boolean).
    pub fn attr(&mut self, key: &'static str, value: impl Into<Value>) -> &mut Self {
        if let Some((_, f)) = &mut self.live {
            f.attributes.push((key, value.into()));
        }
        self
    }

    /// Marks the span failed, with why.
    pub fn error(&mut self, message: impl Into<String>) -> &mut Self {
        if let Some((_, f)) = &mut self.live {
            f.error = Some(message.into());
        }
        self
    }

    /// This span's place, to make it current for work it covers.
    pub fn context(&self) -> Option<SpanContext> {
        self.live.as_ref().map(|(_, f)| f.context)
    }

    /// Renames the span (a request's span takes its route once matched).
    pub fn rename(&mut self, name: impl Into<String>) -> &mut Self {
        if let Some((_, f)) = &mut self.live {
            f.name = name.into();
        }
        self
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((tracer, mut finished)) = self.live.take() {
            finished.end = SystemTime::now();
            tracer.finished(*finished);
        }
    }
}
