//! Deciding whether, when and where to try creating a server again.
//!
//! Pure: the caller supplies the attempt number, the jitter and the budget
//! left, and does the waiting. Rate limits and transient errors retry in the
//! same location after a jittered backoff that honours `Retry-After`; a
//! location out of capacity moves on to the next one at once; anything else
//! (auth, quota, invalid request) is the user's to fix and is not retried.

use sam_providers::{ProviderError, ProviderErrorKind, backoff_delay_ms};

/// How hard node creation tries before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateRetryPolicy {
    /// Create calls at most, the first included.
    pub max_attempts: u32,
    /// Total waiting allowed across retries; a wait that would exceed it
    /// gives up instead (the caller is an API request, not a batch job).
    pub budget_ms: u64,
}

impl Default for CreateRetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            budget_ms: 20_000,
        }
    }
}

/// The decision after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait `delay_ms`, then try in `locations[location]`.
    Retry {
        delay_ms: u64,
        location: usize,
    },
    GiveUp,
}

/// What to do after attempt number `attempt` (0-based) failed with `error`
/// in `locations[location]`, having waited `waited_ms` so far.
pub fn plan_retry(
    policy: &CreateRetryPolicy,
    error: &ProviderError,
    attempt: u32,
    location: usize,
    locations: usize,
    waited_ms: u64,
    jitter_fraction: f64,
) -> RetryDecision {
    if attempt + 1 >= policy.max_attempts {
        return RetryDecision::GiveUp;
    }
    let (delay_ms, location) = match error.kind {
        ProviderErrorKind::RateLimited | ProviderErrorKind::Transient => (
            backoff_delay_ms(attempt, error.retry_after_secs, jitter_fraction),
            location,
        ),
        ProviderErrorKind::Capacity if location + 1 < locations => (0, location + 1),
        _ => return RetryDecision::GiveUp,
    };
    if waited_ms.saturating_add(delay_ms) > policy.budget_ms {
        return RetryDecision::GiveUp;
    }
    RetryDecision::Retry { delay_ms, location }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: ProviderErrorKind, retry_after_secs: Option<u64>) -> ProviderError {
        ProviderError {
            kind,
            status: None,
            code: "x".into(),
            message: "x".into(),
            retry_after_secs,
        }
    }

    const POLICY: CreateRetryPolicy = CreateRetryPolicy {
        max_attempts: 4,
        budget_ms: 20_000,
    };

    #[test]
    fn rate_limits_wait_at_least_retry_after_in_the_same_location() {
        let d = plan_retry(
            &POLICY,
            &error(ProviderErrorKind::RateLimited, Some(3)),
            0,
            1,
            5,
            0,
            0.0,
        );
        assert_eq!(
            d,
            RetryDecision::Retry {
                delay_ms: 3_000,
                location: 1
            }
        );
        let transient = plan_retry(
            &POLICY,
            &error(ProviderErrorKind::Transient, None),
            1,
            0,
            5,
            0,
            1.0,
        );
        assert_eq!(
            transient,
            RetryDecision::Retry {
                delay_ms: 2_000,
                location: 0
            }
        );
    }

    #[test]
    fn capacity_moves_on_to_the_next_location_until_none_is_left() {
        let e = error(ProviderErrorKind::Capacity, None);
        assert_eq!(
            plan_retry(&POLICY, &e, 0, 0, 3, 0, 0.5),
            RetryDecision::Retry {
                delay_ms: 0,
                location: 1
            }
        );
        assert_eq!(
            plan_retry(&POLICY, &e, 1, 2, 3, 0, 0.5),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn user_errors_attempts_and_budget_end_the_retries() {
        for kind in [
            ProviderErrorKind::Auth,
            ProviderErrorKind::Quota,
            ProviderErrorKind::InvalidConfig,
            ProviderErrorKind::NotFound,
        ] {
            assert_eq!(
                plan_retry(&POLICY, &error(kind, None), 0, 0, 3, 0, 0.5),
                RetryDecision::GiveUp,
                "{kind:?}"
            );
        }
        let limited = error(ProviderErrorKind::RateLimited, None);
        assert_eq!(
            plan_retry(&POLICY, &limited, 3, 0, 3, 0, 0.5),
            RetryDecision::GiveUp
        );
        // A Retry-After beyond the budget is not waited for.
        let long = error(ProviderErrorKind::RateLimited, Some(60));
        assert_eq!(
            plan_retry(&POLICY, &long, 0, 0, 3, 0, 0.5),
            RetryDecision::GiveUp
        );
        assert_eq!(
            plan_retry(&POLICY, &limited, 1, 0, 3, 19_500, 0.5),
            RetryDecision::GiveUp
        );
    }
}
