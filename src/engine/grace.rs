//! Grace-period arithmetic of `killContainer` (`lifecycle-semantics.md` §5), in whole seconds
//! as the kubelet does it.

use std::time::Duration;

/// The kubelet's `minimumGracePeriodInSeconds`: the stop signal always gets at least this.
pub const MINIMUM_GRACE_SECONDS: i64 = 2;

/// The grace period of a kill: an explicit override (`--grace-period`, like `kubectl delete
/// --grace-period`) wins, then `metadata.deletionGracePeriodSeconds`, then
/// `spec.terminationGracePeriodSeconds`, else 2.
pub fn grace_period(
    override_seconds: Option<i64>,
    deletion_grace: Option<i64>,
    termination_grace: Option<i64>,
) -> i64 {
    override_seconds
        .or(deletion_grace)
        .or(termination_grace)
        .unwrap_or(MINIMUM_GRACE_SECONDS)
}

/// What is left of `grace` after `elapsed` (preStop, or the wait for a sidecar's turn):
/// whole seconds, truncated, as the kubelet subtracts them.
pub fn remaining(grace: i64, elapsed: Duration) -> i64 {
    let spent = i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX);
    grace.saturating_sub(spent)
}

/// The time the stop signal gets before SIGKILL: never less than
/// [`MINIMUM_GRACE_SECONDS`], applied unconditionally.
pub fn stop_timeout(grace: i64) -> Duration {
    Duration::from_secs(grace.max(MINIMUM_GRACE_SECONDS) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_semantics_doc_examples() {
        // Grace 30 and a preStop taking 12.7 s: the stop signal gets 18 s (truncation).
        assert_eq!(
            stop_timeout(remaining(30, Duration::from_millis(12_700))).as_secs(),
            18
        );
        // A hung preStop (runs the whole grace): still 2 s for the stop signal.
        assert_eq!(
            stop_timeout(remaining(30, Duration::from_secs(30))).as_secs(),
            2
        );
        // Grace 60, a 55 s hook: the app gets 5 s.
        assert_eq!(
            stop_timeout(remaining(60, Duration::from_secs(55))).as_secs(),
            5
        );
        // Grace 5, preStop 3 s: 2 s left.
        assert_eq!(
            stop_timeout(remaining(5, Duration::from_secs(3))).as_secs(),
            2
        );
        assert_eq!(stop_timeout(0).as_secs(), 2);
    }

    #[test]
    fn precedence_of_grace_sources() {
        assert_eq!(grace_period(Some(1), Some(5), Some(30)), 1);
        assert_eq!(grace_period(None, Some(5), Some(30)), 5);
        assert_eq!(grace_period(None, None, Some(30)), 30);
        assert_eq!(grace_period(None, None, None), 2);
    }
}
