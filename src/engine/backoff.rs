//! The kubelet's crash-loop back-off (client-go `flowcontrol.Backoff` as the kubelet uses it),
//! and its image pull back-off ([`PullBackoff`]; the same 10 s … 300 s, keyed by pod and image).
//!
//! Per container: the first restart after an exit is immediate; each later one waits
//! `initial`, then doubles up to `max` (10 s, 20 s, 40 s … 300 s). An exit that comes more
//! than `2 × max` after the previous restart resets the sequence ("10 minutes without
//! trouble").

use std::time::{Duration, Instant};

/// Back-off constants. [`BackoffConfig::scaled`] shrinks them for demos and tests;
/// [`BackoffConfig::try_scaled`] is where a user-given factor is checked.
///
/// Defaults: the kubelet's, 10 s doubling to 300 s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// The wait before the second restart (the first is immediate). Default: 10 s.
    pub initial: Duration,
    /// The cap of the doubling; twice this without an exit resets the sequence.
    /// Default: 300 s.
    pub max: Duration,
}

/// A back-off scale that is not a positive finite number (or makes the delays overflow).
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("must be a positive number, not {0}")]
pub struct InvalidScale(pub f64);

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffConfig {
    /// The kubelet's values multiplied by `factor`, which must be positive and finite, e.g.
    /// 0.01: 100 ms … 3 s. `Err` otherwise (and for a factor so large that the delays do
    /// not fit a [`Duration`]).
    pub fn try_scaled(factor: f64) -> Result<Self, InvalidScale> {
        let d = BackoffConfig::default();
        let ok = factor > 0.0 && factor.is_finite();
        match (
            ok.then(|| Duration::try_from_secs_f64(d.initial.as_secs_f64() * factor)),
            ok.then(|| Duration::try_from_secs_f64(d.max.as_secs_f64() * factor)),
        ) {
            (Some(Ok(initial)), Some(Ok(max))) => Ok(BackoffConfig { initial, max }),
            _ => Err(InvalidScale(factor)),
        }
    }

    /// The wait after one of `previous`: `initial` after none (zero), else double, up to
    /// `max` (`flowcontrol.Backoff.Next`).
    fn after(&self, previous: Duration) -> Duration {
        if previous.is_zero() {
            self.initial
        } else {
            (previous * 2).min(self.max)
        }
    }

    /// Whether a sequence whose last step was at `last` starts over at `now`: more than
    /// `2 × max` went by without trouble.
    fn expired(&self, last: Option<Instant>, now: Instant) -> bool {
        last.is_some_and(|at| now.duration_since(at) > self.max * 2)
    }

    /// The kubelet's values multiplied by `factor` (e.g. 0.01: 100 ms … 3 s).
    ///
    /// # Panics
    /// When `factor` is negative, not finite, or too large; check a user-given factor with
    /// [`BackoffConfig::try_scaled`].
    pub fn scaled(factor: f64) -> Self {
        let d = BackoffConfig::default();
        BackoffConfig {
            initial: d.initial.mul_f64(factor),
            max: d.max.mul_f64(factor),
        }
    }
}

/// The back-off state of one container.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    /// The delay the last restart waited; `None` before the first restart.
    last: Option<Duration>,
    last_restart: Option<Instant>,
}

impl Backoff {
    /// How long to wait before restarting after an exit at `now`.
    pub fn next_delay(&mut self, config: &BackoffConfig, now: Instant) -> Duration {
        if config.expired(self.last_restart, now) {
            self.last = None;
        }
        let delay = match self.last {
            None => Duration::ZERO,
            Some(d) => config.after(d),
        };
        self.last = Some(delay);
        delay
    }

    /// Note that a restart happened at `now`.
    pub fn restarted(&mut self, now: Instant) {
        self.last_restart = Some(now);
    }
}

/// The image pull back-off of one container's image (`flowcontrol.Backoff.Next` and
/// `IsInBackOffSinceUpdate` as the kubelet's image manager uses them): after a failed pull
/// the next one waits `initial`; each further failure doubles the wait up to `max`. A
/// failure more than `2 × max` after the previous one starts again at `initial`; a
/// successful pull resets it.
#[derive(Clone, Debug, Default)]
pub struct PullBackoff {
    delay: Option<Duration>,
    last_failure: Option<Instant>,
}

impl PullBackoff {
    /// Note a failed pull at `now`.
    pub fn failed(&mut self, config: &BackoffConfig, now: Instant) {
        let previous = self
            .delay
            .filter(|_| !config.expired(self.last_failure, now));
        self.delay = Some(config.after(previous.unwrap_or(Duration::ZERO)));
        self.last_failure = Some(now);
    }

    /// How long until the next pull may start, after the failures so far; `None` when it
    /// may start at `now`.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        let until = self.last_failure? + self.delay?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Note a successful pull.
    pub fn succeeded(&mut self) {
        *self = PullBackoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_back_off_waits_after_the_first_failure_and_doubles() {
        let c = BackoffConfig::default();
        let mut b = PullBackoff::default();
        let t = Instant::now();
        assert_eq!(b.remaining(t), None);
        let waits: Vec<u64> = (0..7)
            .map(|_| {
                b.failed(&c, t);
                b.remaining(t).unwrap().as_secs()
            })
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.remaining(t + Duration::from_secs(300)), None);
        b.failed(&c, t + Duration::from_secs(601));
        assert_eq!(
            b.remaining(t + Duration::from_secs(601)).unwrap().as_secs(),
            10
        );
        b.succeeded();
        assert_eq!(b.remaining(t), None);
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let c = BackoffConfig::default();
        let mut b = Backoff::default();
        let t = Instant::now();
        let delays: Vec<u64> = (0..8)
            .map(|_| {
                let d = b.next_delay(&c, t);
                b.restarted(t);
                d.as_secs()
            })
            .collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn resets_after_twice_the_cap_without_trouble() {
        let c = BackoffConfig::default();
        let mut b = Backoff::default();
        let t = Instant::now();
        for _ in 0..4 {
            b.next_delay(&c, t);
            b.restarted(t);
        }
        assert_eq!(b.next_delay(&c, t + Duration::from_secs(599)).as_secs(), 80);
        b.restarted(t + Duration::from_secs(599));
        let later = t + Duration::from_secs(599 + 601);
        assert_eq!(b.next_delay(&c, later), Duration::ZERO);
    }

    #[test]
    fn a_scale_must_be_positive_and_finite() {
        assert_eq!(
            BackoffConfig::try_scaled(0.01),
            Ok(BackoffConfig::scaled(0.01))
        );
        assert_eq!(BackoffConfig::try_scaled(1.0), Ok(BackoffConfig::default()));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(BackoffConfig::try_scaled(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scaling_shrinks_every_step() {
        let c = BackoffConfig::scaled(0.01);
        assert_eq!(c.initial, Duration::from_millis(100));
        assert_eq!(c.max, Duration::from_secs(3));
    }
}
