//! The kubelet's crash-loop back-off (client-go `flowcontrol.Backoff` as the kubelet uses it).
//!
//! Per container: the first restart after an exit is immediate; each later one waits
//! `initial`, then doubles up to `max` (10 s, 20 s, 40 s … 300 s). An exit that comes more
//! than `2 × max` after the previous restart resets the sequence ("10 minutes without
//! trouble").

use std::time::{Duration, Instant};

/// Back-off constants. [`BackoffConfig::scaled`] shrinks them for demos and tests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffConfig {
    /// The kubelet's values multiplied by `factor` (e.g. 0.01: 100 ms … 3 s).
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
        if let Some(at) = self.last_restart {
            if now.duration_since(at) > config.max * 2 {
                self.last = None;
            }
        }
        let delay = match self.last {
            None => Duration::ZERO,
            Some(d) if d.is_zero() => config.initial,
            Some(d) => (d * 2).min(config.max),
        };
        self.last = Some(delay);
        delay
    }

    /// Note that a restart happened at `now`.
    pub fn restarted(&mut self, now: Instant) {
        self.last_restart = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn scaling_shrinks_every_step() {
        let c = BackoffConfig::scaled(0.01);
        assert_eq!(c.initial, Duration::from_millis(100));
        assert_eq!(c.max, Duration::from_secs(3));
    }
}
