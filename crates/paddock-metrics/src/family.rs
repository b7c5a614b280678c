//! Counter, histogram and read-at-scrape families.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Family, Sample};

fn labelled(names: &[&str], values: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// A value per label set, made on first use and then found under a read
/// lock.
struct Children<T> {
    by_labels: RwLock<HashMap<Vec<String>, Arc<T>>>,
}

impl<T: Default> Children<T> {
    fn new() -> Self {
        Self {
            by_labels: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, values: &[&str], make: impl FnOnce() -> T) -> Arc<T> {
        if let Some(child) = self
            .by_labels
            .read()
            .iter()
            .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
            .map(|(_, v)| v.clone())
        {
            return child;
        }
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        self.by_labels
            .write()
            .entry(key)
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    fn all(&self) -> Vec<(Vec<String>, Arc<T>)> {
        let mut all: Vec<_> = self
            .by_labels
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    children: Children<AtomicU64>,
}

impl CounterVec {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self {
            name,
            help,
            labels,
            children: Children::new(),
        }
    }

    /// Adds one for these label values (one per label name, in order).
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    pub fn add(&self, values: &[&str], n: u64) {
        if !crate::enabled() {
            return;
        }
        self.children
            .get(values, AtomicU64::default)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// The count for these label values (tests).
    pub fn get(&self, values: &[&str]) -> u64 {
        self.children
            .get(values, AtomicU64::default)
            .load(Ordering::Relaxed)
    }
}

impl Family for CounterVec {
    fn name(&self) -> &str {
        self.name
    }
    fn help(&self) -> &str {
        self.help
    }
    fn kind(&self) -> &'static str {
        "counter"
    }
    fn samples(&self) -> Vec<Sample> {
        self.children
            .all()
            .into_iter()
            .map(|(values, v)| Sample {
                suffix: "",
                labels: labelled(
                    self.labels,
                    &values.iter().map(String::as_str).collect::<Vec<_>>(),
                ),
                value: v.load(Ordering::Relaxed) as f64,
            })
            .collect()
    }
}

#[derive(Default)]
struct Buckets {
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum in microseconds (an atomic float would need a CAS loop).
    sum_micros: AtomicU64,
}

pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    children: Children<Buckets>,
}

impl HistogramVec {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            bounds,
            children: Children::new(),
        }
    }

    fn buckets(&self, values: &[&str]) -> Arc<Buckets> {
        let n = self.bounds.len();
        self.children.get(values, || Buckets {
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            ..Buckets::default()
        })
    }

    /// Makes the label set's series exist at zero, so a rate over it
    /// works from the first scrape.
    pub fn touch(&self, values: &[&str]) {
        self.buckets(values);
    }

    pub fn observe(&self, values: &[&str], seconds: f64) {
        if !crate::enabled() {
            return;
        }
        let b = self.buckets(values);
        if let Some(i) = self.bounds.iter().position(|bound| seconds <= *bound) {
            b.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        b.count.fetch_add(1, Ordering::Relaxed);
        b.sum_micros
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
}

impl Family for HistogramVec {
    fn name(&self) -> &str {
        self.name
    }
    fn help(&self) -> &str {
        self.help
    }
    fn kind(&self) -> &'static str {
        "histogram"
    }
    fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        for (values, b) in self.children.all() {
            let labels = labelled(
                self.labels,
                &values.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let mut cumulative = 0;
            for (bound, count) in self.bounds.iter().zip(&b.counts) {
                cumulative += count.load(Ordering::Relaxed);
                let mut with_le = labels.clone();
                with_le.push(("le".into(), format!("{bound}")));
                out.push(Sample {
                    suffix: "_bucket",
                    labels: with_le,
                    value: cumulative as f64,
                });
            }
            let count = b.count.load(Ordering::Relaxed);
            let mut inf = labels.clone();
            inf.push(("le".into(), "+Inf".into()));
            out.push(Sample {
                suffix: "_bucket",
                labels: inf,
                value: count as f64,
            });
            out.push(Sample {
                suffix: "_sum",
                labels: labels.clone(),
                value: b.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            });
            out.push(Sample {
                suffix: "_count",
                labels,
                value: count as f64,
            });
        }
        out
    }
}

/// A family whose samples a function gives when scraped, as (label values,
/// value): a gauge of something another part keeps (boxes by state, held
/// requests), or a counter kept elsewhere (a file other processes append
/// to), so nothing is counted twice.
pub struct ReadFn {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    #[allow(clippy::type_complexity)]
    read: Box<dyn Fn() -> Vec<(Vec<String>, f64)> + Send + Sync>,
}

impl ReadFn {
    /// A gauge: its value may go up and down.
    pub fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        read: impl Fn() -> Vec<(Vec<String>, f64)> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            help,
            kind: "gauge",
            labels,
            read: Box::new(read),
        }
    }

    /// A counter: `read` must never give a smaller value for a label set
    /// than it gave before, except when the process restarts. Its name
    /// ends in `_total`, as the text format names counters.
    pub fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        read: impl Fn() -> Vec<(Vec<String>, f64)> + Send + Sync + 'static,
    ) -> Self {
        debug_assert!(name.ends_with("_total"), "{name} is a counter");
        Self {
            name,
            help,
            kind: "counter",
            labels,
            read: Box::new(read),
        }
    }
}

impl Family for ReadFn {
    fn name(&self) -> &str {
        self.name
    }
    fn help(&self) -> &str {
        self.help
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn samples(&self) -> Vec<Sample> {
        (self.read)()
            .into_iter()
            .map(|(values, value)| Sample {
                suffix: "",
                labels: labelled(
                    self.labels,
                    &values.iter().map(String::as_str).collect::<Vec<_>>(),
                ),
                value,
            })
            .collect()
    }
}
