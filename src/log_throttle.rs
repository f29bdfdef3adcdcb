//! Thinning of log lines that a failure repeats for every request or batch
//! (a full disk under a provider's retries would otherwise write one line per
//! webhook): the first occurrence is logged, then at most one per interval,
//! saying how many were folded into it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeated failure is logged at most, by default.
pub const EVERY: Duration = Duration::from_secs(10);

/// One kind of repeated failure; a `static` beside the line it thins.
pub struct Throttle {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the last line was logged.
    last: Option<Instant>,
    /// Occurrences not logged since then.
    skipped: u64,
    /// Occurrences since the last [`Throttle::recovered`].
    failures: u64,
}

impl Throttle {
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new(State {
                last: None,
                skipped: 0,
                failures: 0,
            }),
        }
    }

    /// `Some(skipped)` when this occurrence is to be logged, with the number
    /// of occurrences not logged since the previous line; `None` otherwise.
    pub fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    /// `Some(failures)` the first time things work again after failing,
    /// with how many failures there were; `None` when nothing failed.
    pub fn recovered(&self) -> Option<u64> {
        let mut state = self.lock();
        (state.failures > 0).then(|| std::mem::take(&mut *state).failures)
    }

    fn check_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.lock();
        state.failures += 1;
        if state
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            state.skipped += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.skipped))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_logged_then_one_per_interval_with_the_count_skipped() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(throttle.check_at(t0), Some(0));
        for s in 1..=9 {
            assert_eq!(throttle.check_at(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(throttle.check_at(t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(throttle.check_at(t0 + Duration::from_secs(11)), None);
        assert_eq!(throttle.check_at(t0 + Duration::from_secs(60)), Some(1));
        assert_eq!(throttle.recovered(), Some(13));
        assert_eq!(throttle.recovered(), None);
        assert_eq!(throttle.check_at(t0 + Duration::from_secs(61)), Some(0));
    }
}
