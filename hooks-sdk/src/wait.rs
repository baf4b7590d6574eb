//! Bounded waiting.
//!
//! Every hook runs under a wall-clock timeout set by the engine, and a preStop hook also
//! under the pod's grace period, so a hook should never wait unboundedly: it should give up
//! with a clear message first. These helpers poll with `std::thread::sleep`, which works in WASI
//! preview 1 (`poll_oneoff` on a clock) and in preview 2. Sleeps are short (at most the poll
//! interval, [`DEFAULT_POLL_INTERVAL`] unless given), so the engine can interrupt a hook between
//! them when its own timeout passes first.

use std::io;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::HookError;

/// How often [`wait_for_file`] checks: 100 ms.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A point in time `timeout` after its creation, measured on the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Deadline {
            start: Instant::now(),
            timeout,
        }
    }

    /// The timeout this deadline was created with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time since creation.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.timeout.saturating_sub(self.elapsed())
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.elapsed() >= self.timeout
    }

    /// Sleeps for `max` or until the deadline, whichever is sooner (not at all once it passed).
    /// Returns whether time is left afterwards.
    pub fn sleep(&self, max: Duration) -> bool {
        let d = max.min(self.remaining());
        if !d.is_zero() {
            thread::sleep(d);
        }
        !self.expired()
    }
}

/// Calls `check(elapsed)` until it returns `Ok(true)`, sleeping `interval` between calls, for at
/// most `timeout`. Returns the elapsed time when the condition held.
///
/// `check` runs at once, then after each sleep; the last call happens at (or just after) the
/// deadline, so a condition that becomes true in time is seen. `Err` from `check` stops the
/// wait and is returned as is. If the deadline passes first, the error is
/// `condition not met within <timeout>`; callers usually add context (see
/// [`crate::ResultExt`]). A zero `interval` is treated as 1 ms.
pub fn poll_until<F>(
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<Duration, HookError>
where
    F: FnMut(Duration) -> Result<bool, HookError>,
{
    let deadline = Deadline::after(timeout);
    let interval = interval.max(Duration::from_millis(1));
    loop {
        if check(deadline.elapsed())? {
            return Ok(deadline.elapsed());
        }
        if deadline.expired() {
            return Err(HookError::new(format!(
                "condition not met within {timeout:?}"
            )));
        }
        deadline.sleep(interval);
    }
}

/// Waits until `path` exists (file or directory), checking every [`DEFAULT_POLL_INTERVAL`] for at
/// most `timeout`. Returns the time waited.
///
/// Errors: `<path> did not appear within <timeout>` when the time is up; at once, if the path
/// cannot be checked for another reason than not existing (e.g. it is outside every volume
/// mount the hook can see).
pub fn wait_for_file(path: impl AsRef<Path>, timeout: Duration) -> Result<Duration, HookError> {
    let path = path.as_ref();
    poll_until(timeout, DEFAULT_POLL_INTERVAL, |_| file_exists(path)).map_err(|e| {
        if e.message().starts_with("condition not met") {
            HookError::new(format!(
                "{} did not appear within {timeout:?}",
                path.display()
            ))
        } else {
            e
        }
    })
}

/// `Ok(true)` if `path` exists, `Ok(false)` if it does not, `Err` if that cannot be told.
pub fn file_exists(path: &Path) -> Result<bool, HookError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(HookError::new(format!(
            "cannot check {}: {e}",
            path.display()
        ))),
    }
}

/// Parses a duration the way wasmhook's annotations write them: a sequence of
/// `<number><unit>` with units `ms`, `s`, `m`, `h` (`500ms`, `30s`, `2m`, `1m30s`, `1.5s`), or a
/// plain integer meaning seconds (`30`). Surrounding whitespace is ignored. Fractions are exact
/// to the nanosecond.
pub fn parse_duration(s: &str) -> Result<Duration, HookError> {
    let err = || {
        HookError::new(format!(
            "invalid duration {s:?}: expected e.g. 500ms, 30s, 2m, 1m30s or plain seconds"
        ))
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(err());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| err());
    }
    let is_num = |c: char| c.is_ascii_digit() || c == '.';
    let mut total_ns: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !is_num(c)).ok_or_else(err)?;
        let (num, after) = rest.split_at(num_len);
        let unit_len = after.find(is_num).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        rest = after;
        let unit_ns: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(err()),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 9 {
            return Err(err());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err())?
        };
        let frac_ns = if frac.is_empty() {
            0
        } else {
            let f: u128 = frac.parse().map_err(|_| err())?;
            f * unit_ns / 10u128.pow(frac.len() as u32)
        };
        total_ns = int
            .checked_mul(unit_ns)
            .and_then(|v| v.checked_add(frac_ns))
            .and_then(|v| v.checked_add(total_ns))
            .ok_or_else(err)?;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| err())?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("hooks-sdk-{tag}-{}", std::process::id()))
    }

    #[test]
    fn parses_annotation_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("500ms").unwrap(), ms(500));
        assert_eq!(parse_duration("30s").unwrap(), ms(30_000));
        assert_eq!(parse_duration("2m").unwrap(), ms(120_000));
        assert_eq!(parse_duration("1h").unwrap(), ms(3_600_000));
        assert_eq!(parse_duration("1m30s").unwrap(), ms(90_000));
        assert_eq!(parse_duration("1.5s").unwrap(), ms(1_500));
        assert_eq!(parse_duration("0.003s").unwrap(), ms(3));
        assert_eq!(parse_duration(".25m").unwrap(), ms(15_000));
        assert_eq!(parse_duration(" 45 ").unwrap(), ms(45_000));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "s",
            "10x",
            "1.2.3s",
            "-5s",
            "5 s",
            "1e3s",
            "1.s5",
            "10m10",
            "1.0000000001s",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.message().starts_with("invalid duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn deadline_arithmetic() {
        let d = Deadline::after(Duration::from_secs(3600));
        assert!(!d.expired());
        assert!(d.remaining() > Duration::from_secs(3590));
        assert_eq!(d.timeout(), Duration::from_secs(3600));
        let z = Deadline::after(Duration::ZERO);
        assert!(z.expired());
        assert_eq!(z.remaining(), Duration::ZERO);
        let t = Instant::now();
        assert!(!z.sleep(Duration::from_secs(5)));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "sleep past the deadline must not block"
        );
    }

    #[test]
    fn poll_until_times_out_after_checking_at_the_deadline() {
        let mut calls = 0;
        let start = Instant::now();
        let e = poll_until(
            Duration::from_millis(120),
            Duration::from_millis(50),
            |_| {
                calls += 1;
                Ok(false)
            },
        )
        .unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.message(), "condition not met within 120ms");
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!((3..=5).contains(&calls), "{calls} checks");
    }

    #[test]
    fn poll_until_returns_when_the_condition_holds_and_propagates_errors() {
        let mut n = 0;
        let waited = poll_until(Duration::from_secs(10), Duration::from_millis(1), |_| {
            n += 1;
            Ok(n == 3)
        })
        .unwrap();
        assert_eq!(n, 3);
        assert!(waited < Duration::from_secs(5));
        let e = poll_until(Duration::from_secs(10), Duration::from_millis(1), |_| {
            Err(HookError::new("broken").with_exit_code(9))
        })
        .unwrap_err();
        assert_eq!((e.message(), e.exit_code()), ("broken", 9));
        // Zero timeout still checks once.
        assert!(poll_until(Duration::ZERO, Duration::ZERO, |_| Ok(true)).is_ok());
    }

    #[test]
    fn wait_for_file_sees_a_file_created_later() {
        let p = temp_path("late");
        let _ = std::fs::remove_file(&p);
        let q = p.clone();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            std::fs::write(&q, "done").unwrap();
        });
        let waited = wait_for_file(&p, Duration::from_secs(10)).unwrap();
        writer.join().unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
    }

    #[test]
    fn wait_for_file_times_out_with_the_path_in_the_message() {
        let p = temp_path("never");
        let e = wait_for_file(&p, Duration::from_millis(50)).unwrap_err();
        assert_eq!(
            e.message(),
            format!("{} did not appear within 50ms", p.display())
        );
    }

    #[test]
    fn file_exists_reports_unexpected_errors() {
        let f = temp_path("notdir");
        std::fs::write(&f, "x").unwrap();
        // A path "inside" a regular file: ENOTDIR, not NotFound.
        let r = file_exists(&f.join("child"));
        std::fs::remove_file(&f).unwrap();
        let e = r.unwrap_err();
        assert!(e.message().starts_with("cannot check "), "{e}");
        assert!(file_exists(&std::env::temp_dir()).unwrap());
    }
}
