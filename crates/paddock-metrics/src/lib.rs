//! Metrics in Prometheus' text format, kept by the crates that count them
//! and read at scrape time. A leaf crate with no dependency on any other
//! part of paddock, so every part can count: counters and histograms are
//! atomics behind a label lookup (no lock on the hot path once a label set
//! exists), gauges are read by a function when scraped, and nothing here
//! allocates per observation.

mod encode;
mod family;

pub use encode::encode;
pub use family::{CounterVec, HistogramVec, ReadFn};

use parking_lot::Mutex;
use std::sync::{Arc, LazyLock};

/// One metric family as the exposition writes it.
pub trait Family: Send + Sync {
    fn name(&self) -> &str;
    fn help(&self) -> &str;
    fn kind(&self) -> &'static str;
    /// `(suffix, labels, value)` samples, each label a (name, value).
    fn samples(&self) -> Vec<Sample>;
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `_bucket`, `_sum`, `_count` or nothing.
    pub suffix: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every family of this process, in the order registered.
#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<Arc<dyn Family>>>,
}

impl Registry {
    pub fn register(&self, family: Arc<dyn Family>) {
        let mut families = self.families.lock();
        // A family registered twice (a second server in one test process)
        // is one family.
        if !families.iter().any(|f| f.name() == family.name()) {
            families.push(family);
        }
    }

    pub fn families(&self) -> Vec<Arc<dyn Family>> {
        self.families.lock().clone()
    }
}

static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns counting on or off for the whole process (`[metrics] enabled`):
/// off, every observation returns at once. What the overhead benchmark
/// compares against.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The process's registry.
pub fn global() -> &'static Registry {
    static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::default);
    &GLOBAL
}

/// A counter family registered in the global registry; its name ends in
/// `_total`, as the text format names counters.
pub fn counter(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> Arc<CounterVec> {
    let family = Arc::new(CounterVec::new(name, help, labels));
    global().register(family.clone());
    family
}

/// A histogram family registered in the global registry; `buckets` are
/// upper bounds in seconds.
pub fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
) -> Arc<HistogramVec> {
    let family = Arc::new(HistogramVec::new(name, help, labels, buckets));
    global().register(family.clone());
    family
}

/// Latency buckets for operations of a few milliseconds to a minute.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[cfg(test)]
mod tests;
