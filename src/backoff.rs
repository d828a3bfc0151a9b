//! Retry pauses: capped exponential backoff with "equal jitter", the one backoff of the
//! product: event delivery retries (`notify`) and switch reconnects (`switch::asterisk`).
//!
//! The pause after the n-th failed attempt is drawn uniformly from `[base/2, base]` where
//! `base = min(retry_min * 2^(n-1), retry_max)`. The jitter spreads the retries of many
//! subscriptions that failed together (SAP restarted) so they do not come back in step.
//! Randomness is a xorshift64* generator per user, seeded from the clock and an id of the
//! user's (the subscription id): it only has to decorrelate tasks, not be unpredictable, so no crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Computes the pauses between attempts of one retrying task.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    state: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Backoff::seeded(min, max, clock ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn seeded(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            // xorshift must not start at zero.
            state: seed | 1,
        }
    }

    /// The pause after `failures` failed attempts of the same event (`failures >= 1`).
    pub(crate) fn pause(&mut self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let base = self.min.saturating_mul(1 << doublings).min(self.max);
        let half = base / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.next() % spread.saturating_add(1))
    }

    /// The pause after `failures` failed attempts when SAP's answer asked for
    /// `retry_after` (`Retry-After`): the longer of the two, but never beyond `max`, so a
    /// far-off date cannot stall the subscription longer than any other failure would.
    pub(crate) fn pause_honouring(
        &mut self,
        failures: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let pause = self.pause(failures);
        retry_after.map_or(pause, |asked| pause.max(asked.min(self.max)))
    }

    /// xorshift64* (Vigna).
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let min = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        let mut backoff = Backoff::seeded(min, max, 42);
        for failures in 1..=40u32 {
            let base = (min * 2u32.pow((failures - 1).min(10))).min(max);
            for _ in 0..50 {
                let pause = backoff.pause(failures);
                assert!(
                    pause >= base / 2 && pause <= base,
                    "failure {failures}: {pause:?} not in [{:?}, {base:?}]",
                    base / 2
                );
            }
        }
    }

    #[test]
    fn jitter_varies() {
        let mut backoff = Backoff::seeded(Duration::from_secs(1), Duration::from_secs(1), 7);
        let pauses: std::collections::HashSet<_> = (0..20).map(|_| backoff.pause(1)).collect();
        assert!(pauses.len() > 10, "{pauses:?}");
    }

    #[test]
    fn retry_after_lengthens_the_pause_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::seeded(min, max, 3);
        let asked = Duration::from_secs(2);
        assert_eq!(backoff.pause_honouring(1, Some(asked)), asked);
        let short = backoff.pause_honouring(1, Some(Duration::from_millis(1)));
        assert!(short >= min / 2 && short <= min, "{short:?}");
        let far = Duration::from_secs(3600);
        assert_eq!(backoff.pause_honouring(1, Some(far)), max);
        let plain = backoff.pause_honouring(1, None);
        assert!(plain <= min, "{plain:?}");
    }

    #[test]
    fn zero_min_does_not_panic() {
        let mut backoff = Backoff::seeded(Duration::ZERO, Duration::ZERO, 0);
        assert_eq!(backoff.pause(1), Duration::ZERO);
        assert_eq!(backoff.pause(u32::MAX), Duration::ZERO);
    }
}
