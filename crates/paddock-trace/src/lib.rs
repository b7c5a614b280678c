//! Traces, optional: spans for requests, box operations and held
//! connections, exported over OTLP/HTTP (JSON) to a collector when
//! `[traces] endpoint` names one.
//!
//! A span is a value: made by [`span`] (a child of the task's current
//! span, if any), given attributes, and sent when dropped. Without a
//! configured collector every span is a no-op. Finished spans go to a
//! bounded queue that an exporter task drains in batches; a full queue
//! drops its oldest span and counts it, so a slow or absent collector
//! delays nothing it traces.

mod export;
mod otlp;
mod span;

pub use export::{TraceConfig, TraceError, Tracer};
pub use span::{Span, SpanContext, SpanKind, current, enabled, in_span, span};

#[cfg(test)]
mod tests;
