//! Percentiles and ratio rows.

use std::time::Duration;

#[derive(Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    /// Each sample less the same round's sample of `floor` (rounds
    /// paired by order).
    pub fn minus(&self, floor: &Samples) -> Samples {
        Samples(
            self.0
                .iter()
                .zip(&floor.0)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.0.clone();
        sorted.sort();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
    }
}

pub fn ratio_row(label: &str, ours: &Samples, theirs: &Samples, goal: &str) {
    let (a, b) = (ours.percentile_ms(50.0), theirs.percentile_ms(50.0));
    crate::record::figure(label, "ms", a, Some(b), None, goal);
    println!(
        "{label:<44} {:>9.1} ms {:>9.1} ms {:>7.2}x {goal:>8}",
        a,
        b,
        a / b
    );
}
