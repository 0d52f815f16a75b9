//! The retry horizon, and everything derived from it in one place.
//!
//! A retryable failure (SES or DynamoDB throttling, a network blip, an outage of the mail
//! server) must keep being retried for as long as such an outage plausibly lasts, and only
//! then be dead-lettered. That duration is the **retry horizon** (`RETRY_HORIZON_SECONDS`,
//! default [`DEFAULT_HORIZON`]). From it and the consumer's timeout, [`RetryPlan::derive`]
//! computes:
//!
//! - the [`Backoff`] the batch processor applies with `ChangeMessageVisibility` after each
//!   retryable failure;
//! - the queue's `maxReceiveCount`: the receives needed so that, even when every wait is as
//!   short as the jitter allows, the last attempt comes no earlier than the horizon after the
//!   first failure;
//! - the queue's `VisibilityTimeout`: at least 6x the function timeout (Lambda's advice for
//!   SQS sources), and long enough that `maxReceiveCount` invocations that crash or time out
//!   (so no backoff is set and the message returns after the visibility timeout) span the
//!   horizon too.
//!
//! The SAM template carries the results as literals (CloudFormation cannot compute them);
//! `tests/it/infra.rs` fails when they disagree with [`RetryPlan::derive`].

use std::time::Duration;

/// Variable holding the retry horizon in seconds.
pub const RETRY_HORIZON_SECONDS: &str = "RETRY_HORIZON_SECONDS";

/// The default retry horizon: one hour, longer than the typical regional throttling episode or
/// a deployment of a downstream service.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(3600);

/// Highest `maxReceiveCount` SQS accepts.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue.html>
pub const SQS_MAX_RECEIVE_COUNT: u32 = 1000;

/// Longest visibility timeout SQS accepts: 12 hours.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html>
pub const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Lambda recommends a source queue's visibility timeout of at least six times the function
/// timeout. <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html>
pub const VISIBILITY_PER_FUNCTION_TIMEOUT: u32 = 6;

/// Visibility timeouts are rounded up to a multiple of this, so the template reads cleanly.
const VISIBILITY_STEP_SECONDS: u64 = 30;

/// Exponential backoff with jitter for retryable failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first receive (before jitter).
    pub base: Duration,
    /// Upper bound of a delay (SQS allows up to 12 h).
    pub max: Duration,
}

impl Default for Backoff {
    /// 10 s, doubling up to 15 minutes: a blip is retried within seconds, an outage is probed
    /// every 7.5-15 minutes instead of burning receives.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(15 * 60),
        }
    }
}

impl Backoff {
    /// The full delay after the `receive_count`-th receive: `base × 2^(n−1)` capped at `max`.
    pub fn ceiling(&self, receive_count: u32) -> Duration {
        let exp = receive_count.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The shortest delay [`Backoff::delay`] can return after the `receive_count`-th receive.
    pub fn floor(&self, receive_count: u32) -> Duration {
        self.ceiling(receive_count) / 2
    }

    /// The visibility timeout after the `receive_count`-th receive, with "equal jitter" (a
    /// random point in the upper half of [`Backoff::ceiling`]) so that a burst of failures
    /// does not come back as a burst.
    pub fn delay(&self, receive_count: u32, rng: &mut fastrand::Rng) -> Duration {
        let full = self.ceiling(receive_count);
        let half = full / 2;
        half + Duration::from_millis(rng.u64(0..=(full - half).as_millis() as u64))
    }

    /// The least time from the first failure to the `attempts`-th attempt: the sum of the
    /// shortest waits between them.
    pub fn least_span(&self, attempts: u32) -> Duration {
        (1..attempts).map(|n| self.floor(n)).sum()
    }
}

/// The horizon cannot be honoured within SQS's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPlanError {
    /// Zero, or so long that SQS cannot keep retrying that long.
    #[error(
        "retry horizon of {horizon_s} s needs more than {SQS_MAX_RECEIVE_COUNT} receives or a visibility timeout over 12 h"
    )]
    Unreachable {
        /// The horizon asked for, in seconds.
        horizon_s: u64,
    },
    /// A zero horizon retries nothing.
    #[error("retry horizon must be at least 1 second")]
    Zero,
}

/// What a retry horizon means for one queue and its consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPlan {
    /// How long retryable failures are retried before dead-lettering.
    pub horizon: Duration,
    /// The backoff between retries.
    pub backoff: Backoff,
    /// The queue's `RedrivePolicy.maxReceiveCount`.
    pub max_receive_count: u32,
    /// The queue's `VisibilityTimeout`.
    pub visibility_timeout: Duration,
}

impl RetryPlan {
    /// The plan for `horizon` with the default [`Backoff`], for a consumer whose timeout is
    /// `function_timeout`.
    pub fn derive(horizon: Duration, function_timeout: Duration) -> Result<Self, RetryPlanError> {
        let backoff = Backoff::default();
        let max_receive_count = receives_for(horizon, &backoff)?;
        let retries = u64::from(max_receive_count.saturating_sub(1).max(1));
        let spread = horizon.as_secs().div_ceil(retries);
        let advised = function_timeout.as_secs() * u64::from(VISIBILITY_PER_FUNCTION_TIMEOUT);
        let secs = spread
            .max(advised)
            .div_ceil(VISIBILITY_STEP_SECONDS)
            .saturating_mul(VISIBILITY_STEP_SECONDS);
        let visibility_timeout = Duration::from_secs(secs);
        if visibility_timeout > SQS_MAX_VISIBILITY {
            return Err(RetryPlanError::Unreachable {
                horizon_s: horizon.as_secs(),
            });
        }
        Ok(RetryPlan {
            horizon,
            backoff,
            max_receive_count,
            visibility_timeout,
        })
    }

    /// The consumer's side of the plan (backoff and `maxReceiveCount`), which does not depend
    /// on the function timeout.
    pub fn for_consumer(horizon: Duration) -> Result<Self, RetryPlanError> {
        RetryPlan::derive(horizon, Duration::ZERO)
    }
}

impl Default for RetryPlan {
    fn default() -> Self {
        RetryPlan::for_consumer(DEFAULT_HORIZON).expect("the default horizon is reachable")
    }
}

/// The smallest receive count whose shortest retry span reaches `horizon`.
fn receives_for(horizon: Duration, backoff: &Backoff) -> Result<u32, RetryPlanError> {
    if horizon.is_zero() {
        return Err(RetryPlanError::Zero);
    }
    let mut span = Duration::ZERO;
    for attempts in 1..=SQS_MAX_RECEIVE_COUNT {
        if span >= horizon {
            return Ok(attempts);
        }
        span += backoff.floor(attempts);
    }
    Err(RetryPlanError::Unreachable {
        horizon_s: horizon.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_in_the_upper_half() {
        let b = Backoff::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for (count, full) in [(1, 10), (2, 20), (3, 40), (7, 640), (8, 900), (100, 900)] {
            for _ in 0..50 {
                let d = b.delay(count, &mut rng);
                let full = Duration::from_secs(full);
                assert!(d >= full / 2 && d <= full, "count {count}: {d:?}");
            }
        }
    }

    #[test]
    fn the_default_hour_holds_even_with_the_shortest_waits() {
        let plan = RetryPlan::derive(DEFAULT_HORIZON, Duration::from_secs(30)).unwrap();
        // 5+10+20+40+80+160+320 then 450 s waits: 14 waits reach 3,785 s ≥ 3,600 s.
        assert_eq!(plan.max_receive_count, 15);
        let b = plan.backoff;
        assert!(b.least_span(plan.max_receive_count) >= DEFAULT_HORIZON);
        assert!(b.least_span(plan.max_receive_count - 1) < DEFAULT_HORIZON);
        // 3600 / 14 retries = 258 s > 6 × 30 s, rounded up to 270 s.
        assert_eq!(plan.visibility_timeout, Duration::from_secs(270));
        assert_eq!(RetryPlan::default().max_receive_count, 15);
    }

    #[test]
    fn long_timeouts_keep_lambdas_six_times_advice() {
        let plan = RetryPlan::derive(Duration::from_secs(600), Duration::from_secs(120)).unwrap();
        assert_eq!(plan.visibility_timeout, Duration::from_secs(720));
        assert_eq!(plan.max_receive_count, 8);
    }

    #[test]
    fn impossible_horizons_are_errors() {
        assert_eq!(
            RetryPlan::for_consumer(Duration::ZERO),
            Err(RetryPlanError::Zero)
        );
        let forever = Duration::from_secs(1000 * 12 * 3600);
        assert!(matches!(
            RetryPlan::derive(forever, Duration::from_secs(30)),
            Err(RetryPlanError::Unreachable { .. })
        ));
    }
}
