//! Drain to zero (`paddock serve --exit-when-idle SECS`): a paddock started
//! on demand (socket activation) exits cleanly once no box has existed for
//! that long, and the next connection starts it again.
//!
//! The count is polled. It drains only when the last `MISSES_NEEDED` polls
//! all found no box, no box has been seen for the idle period, and the
//! idle period has passed since start (so a paddock started a moment
//! before its first box is created does not leave at once). It fires at
//! most once. A count that cannot be read `ERROR_CEILING` times in a row
//! stops the server with that error rather than leaving it blind for good.

use std::time::{Duration, Instant};

/// Consecutive polls that must find no box.
const MISSES_NEEDED: u32 = 2;
/// Consecutive failed counts after which the watcher gives up.
const ERROR_CEILING: u32 = 20;

/// What a poll leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Wait,
    Drain,
    GiveUp(String),
}

/// The watcher's state between polls; fed instants, so tests need no clock.
#[derive(Debug)]
pub struct IdleWatch {
    idle_for: Duration,
    started: Instant,
    /// When a poll last found a box (start counts as one).
    last_busy: Instant,
    misses: u32,
    errors: u32,
    fired: bool,
}

impl IdleWatch {
    pub fn new(idle_for: Duration, now: Instant) -> Self {
        Self {
            idle_for,
            started: now,
            last_busy: now,
            misses: 0,
            errors: 0,
            fired: false,
        }
    }

    /// How often to poll: a quarter of the idle period, between 1 and 30 s.
    pub fn poll_interval(&self) -> Duration {
        (self.idle_for / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// One poll's count (or why there was none) at `now`.
    pub fn observe(&mut self, now: Instant, count: Result<usize, String>) -> Next {
        if self.fired {
            return Next::Wait;
        }
        match count {
            Err(why) => {
                self.errors += 1;
                if self.errors >= ERROR_CEILING {
                    return Next::GiveUp(format!(
                        "the box count could not be read {ERROR_CEILING} times in a row: {why}"
                    ));
                }
                Next::Wait
            }
            Ok(boxes) => {
                self.errors = 0;
                if boxes > 0 {
                    self.misses = 0;
                    self.last_busy = now;
                    return Next::Wait;
                }
                self.misses += 1;
                let quiet = now.duration_since(self.last_busy) >= self.idle_for
                    && now.duration_since(self.started) >= self.idle_for;
                if self.misses >= MISSES_NEEDED && quiet {
                    self.fired = true;
                    Next::Drain
                } else {
                    Next::Wait
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn drains_once_after_the_idle_period_with_enough_misses() {
        let t0 = Instant::now();
        let mut w = IdleWatch::new(IDLE, t0);
        assert_eq!(w.poll_interval(), Duration::from_secs(15));
        // Empty from the start, but the idle period has not passed.
        assert_eq!(w.observe(at(t0, 15), Ok(0)), Next::Wait);
        assert_eq!(w.observe(at(t0, 30), Ok(0)), Next::Wait);
        assert_eq!(w.observe(at(t0, 45), Ok(0)), Next::Wait);
        assert_eq!(w.observe(at(t0, 60), Ok(0)), Next::Drain);
        // At most once.
        assert_eq!(w.observe(at(t0, 75), Ok(0)), Next::Wait);
    }

    #[test]
    fn a_box_starts_the_idle_period_again() {
        let t0 = Instant::now();
        let mut w = IdleWatch::new(IDLE, t0);
        assert_eq!(w.observe(at(t0, 50), Ok(1)), Next::Wait);
        assert_eq!(w.observe(at(t0, 70), Ok(0)), Next::Wait);
        assert_eq!(w.observe(at(t0, 100), Ok(0)), Next::Wait);
        assert_eq!(w.observe(at(t0, 110), Ok(0)), Next::Drain);
    }

    #[test]
    fn one_empty_poll_is_not_enough() {
        let t0 = Instant::now();
        let mut w = IdleWatch::new(IDLE, t0);
        assert_eq!(w.observe(at(t0, 120), Ok(0)), Next::Wait);
        assert_eq!(w.observe(at(t0, 121), Ok(0)), Next::Drain);
    }

    #[test]
    fn errors_do_not_drain_and_too_many_give_up() {
        let t0 = Instant::now();
        let mut w = IdleWatch::new(IDLE, t0);
        for n in 1..ERROR_CEILING {
            assert_eq!(
                w.observe(at(t0, 100 + u64::from(n)), Err("locked".into())),
                Next::Wait
            );
        }
        // A good count in between starts the tally again.
        assert_eq!(w.observe(at(t0, 130), Ok(1)), Next::Wait);
        for n in 1..ERROR_CEILING {
            assert_eq!(
                w.observe(at(t0, 130 + u64::from(n)), Err("locked".into())),
                Next::Wait
            );
        }
        match w.observe(at(t0, 200), Err("locked".into())) {
            Next::GiveUp(why) => assert!(why.contains("locked"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_periods_poll_each_second() {
        let w = IdleWatch::new(Duration::from_secs(2), Instant::now());
        assert_eq!(w.poll_interval(), Duration::from_secs(1));
    }
}
