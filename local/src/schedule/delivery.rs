//! delivery: the pure rules around one fire time: the flexible time window that spreads the
//! invocation, the target's retry policy (exponential backoff bounded by attempts and event
//! age), the Scheduler context attributes substituted into a target's Input, and the legacy
//! EventBridge rule envelope (`"detail-type": "Scheduled Event"`).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, TimeDelta, Timelike, Utc};

/// First retry delay, in seconds.
///
/// AWS documents only "retry attempts with exponential backoff continue until either the
/// maximum number of attempts is made or until the duration of the MaximumEventAgeInSeconds is
/// reached", not the constants. The emulator doubles from 1 s up to [`RETRY_MAX_DELAY_SECONDS`]
/// (1, 2, 4, ... 256, then 480 s), so that the 185 default retries end 84,991 s (23.6 h) after
/// the first attempt: both defaults run out at about the same time, as AWS's pairing of 185
/// attempts with 24 h suggests. AWS adds jitter; the emulator does not, so runs replay exactly.
pub const RETRY_BASE_DELAY_SECONDS: i64 = 1;
/// Cap of the retry delay, in seconds (8 minutes); see [`RETRY_BASE_DELAY_SECONDS`].
pub const RETRY_MAX_DELAY_SECONDS: i64 = 480;

/// A schedule or retry setting outside the range AWS accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The value is outside `min..=max`; `name` is the AWS property name.
    #[error("{name} {value} out of range {min}-{max}")]
    OutOfRange {
        /// `MaximumWindowInMinutes`, `MaximumEventAgeInSeconds` or `MaximumRetryAttempts`.
        name: &'static str,
        /// The value given.
        value: u32,
        /// Lowest accepted value.
        min: u32,
        /// Highest accepted value.
        max: u32,
    },
}

fn check(name: &'static str, value: u32, min: u32, max: u32) -> Result<(), PolicyError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(PolicyError::OutOfRange {
            name,
            value,
            min,
            max,
        })
    }
}

/// `FlexibleTimeWindow`: whether the invocation may happen some time after the scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlexibleWindow {
    /// `Mode: OFF`: invoke at the scheduled time.
    #[default]
    Off,
    /// `Mode: FLEXIBLE`: invoke within `maximum_window_minutes` after the scheduled time.
    Flexible {
        /// `MaximumWindowInMinutes`, 1-1440.
        maximum_window_minutes: u32,
    },
}

impl FlexibleWindow {
    /// A validated flexible window.
    pub fn flexible(maximum_window_minutes: u32) -> Result<Self, PolicyError> {
        let w = FlexibleWindow::Flexible {
            maximum_window_minutes,
        };
        w.validate()?;
        Ok(w)
    }

    /// Checks `MaximumWindowInMinutes` is 1-1440.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match *self {
            FlexibleWindow::Off => Ok(()),
            FlexibleWindow::Flexible {
                maximum_window_minutes,
            } => check("MaximumWindowInMinutes", maximum_window_minutes, 1, 1440),
        }
    }

    /// When to invoke for `scheduled_time`: the time itself when off, otherwise a uniformly
    /// random instant in `[scheduled_time, scheduled_time + window)` drawn from `rng` (seed it
    /// for deterministic runs). The context attribute `<aws.scheduler.scheduled-time>` stays
    /// the scheduled time, not this one.
    pub fn invocation_time(
        &self,
        scheduled_time: DateTime<Utc>,
        rng: &mut fastrand::Rng,
    ) -> DateTime<Utc> {
        match *self {
            FlexibleWindow::Off => scheduled_time,
            FlexibleWindow::Flexible {
                maximum_window_minutes,
            } => {
                let window_ms = u64::from(maximum_window_minutes.max(1)) * 60_000;
                scheduled_time + TimeDelta::milliseconds(rng.u64(0..window_ms) as i64)
            }
        }
    }
}

/// A target's `RetryPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `MaximumEventAgeInSeconds`, 60-86400 (default 86400): no retry later than this after
    /// the first attempt.
    pub maximum_event_age_seconds: u32,
    /// `MaximumRetryAttempts`, 0-185 (default 185): retries after the first attempt.
    pub maximum_retry_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            maximum_event_age_seconds: 86_400,
            maximum_retry_attempts: 185,
        }
    }
}

impl RetryPolicy {
    /// A validated retry policy.
    pub fn new(
        maximum_event_age_seconds: u32,
        maximum_retry_attempts: u32,
    ) -> Result<Self, PolicyError> {
        let p = RetryPolicy {
            maximum_event_age_seconds,
            maximum_retry_attempts,
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks both values against AWS's ranges.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check(
            "MaximumEventAgeInSeconds",
            self.maximum_event_age_seconds,
            60,
            86_400,
        )?;
        check("MaximumRetryAttempts", self.maximum_retry_attempts, 0, 185)
    }

    /// The delay before retry number `retry` (1-based):
    /// `min(RETRY_BASE_DELAY_SECONDS * 2^(retry-1), RETRY_MAX_DELAY_SECONDS)`.
    pub fn retry_delay(retry: u32) -> TimeDelta {
        let doubled = RETRY_BASE_DELAY_SECONDS
            .checked_shl(retry.saturating_sub(1))
            .filter(|d| *d > 0 && *d <= RETRY_MAX_DELAY_SECONDS);
        TimeDelta::seconds(doubled.unwrap_or(RETRY_MAX_DELAY_SECONDS))
    }

    /// When to make the next attempt after attempt number `attempt` (1 = the first
    /// invocation; 0 is read as 1) failed at `failed_at`, or `None` when the retries or the
    /// event age are used up and the event goes to the dead-letter queue. Both are measured on
    /// the clock: retry `n` is due `retry_delay(n)` after the failure it follows, and only if
    /// that is within `MaximumEventAgeInSeconds` of `first_attempt_at`. (When attempts take no
    /// time, retry `n` is at `first_attempt_at + retry_delay(1) + ... + retry_delay(n)`.)
    pub fn next_retry(
        &self,
        attempt: u32,
        first_attempt_at: DateTime<Utc>,
        failed_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let retry = attempt.max(1);
        if retry > self.maximum_retry_attempts {
            return None;
        }
        let at = failed_at.checked_add_signed(Self::retry_delay(retry))?;
        if at - first_attempt_at > TimeDelta::seconds(self.maximum_event_age_seconds.into()) {
            return None;
        }
        Some(at)
    }

    /// Seconds from the first attempt to retry number `retries`, when attempts take no time.
    #[cfg(test)]
    fn retry_offset_seconds(retries: u32) -> i64 {
        let mut total = 0;
        let mut delay = RETRY_BASE_DELAY_SECONDS;
        // Doubling reaches the cap within a few rounds; the rest is a multiplication.
        for r in 1..=retries {
            if delay >= RETRY_MAX_DELAY_SECONDS {
                return total + i64::from(retries - r + 1) * RETRY_MAX_DELAY_SECONDS;
            }
            total += delay;
            delay *= 2;
        }
        total
    }
}

/// The values EventBridge Scheduler substitutes into a target's Input, for every templated
/// target (the emulator's Lambda and SQS targets alike): "EventBridge Scheduler replaces each
/// keyword with its respective value when your schedule invokes the target"
/// (<https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html>,
/// which gives the four keywords and the example values quoted on the fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextAttributes<'a> {
    /// `<aws.scheduler.schedule-arn>`.
    pub schedule_arn: &'a str,
    /// `<aws.scheduler.scheduled-time>`, the time the schedule was due (not the possibly later
    /// flexible-window or retry time), rendered like `2022-03-22T18:59:43Z`.
    pub scheduled_time: DateTime<Utc>,
    /// `<aws.scheduler.execution-id>`, one per attempted invocation.
    pub execution_id: &'a str,
    /// `<aws.scheduler.attempt-number>`, 1 for the first attempt.
    pub attempt_number: u32,
}

/// Formats a time as the Scheduler does in context attributes: RFC 3339 UTC, whole seconds,
/// `Z` (`2026-11-22T02:00:00Z`).
pub fn format_scheduled_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Replaces the four `<aws.scheduler.*>` keywords in `input` in one pass; anything else,
/// including unknown `<aws.scheduler.*>` keywords, is left as is. The Input is text, not
/// necessarily JSON (an SQS message body can be anything), so values are inserted as they are,
/// without JSON quoting: the keyword is written inside quotes where a JSON string is wanted.
pub fn substitute_context(input: &str, ctx: &ContextAttributes<'_>) -> String {
    const PREFIX: &str = "<aws.scheduler.";
    let values = [
        ("<aws.scheduler.schedule-arn>", ctx.schedule_arn.to_owned()),
        (
            "<aws.scheduler.scheduled-time>",
            format_scheduled_time(ctx.scheduled_time),
        ),
        ("<aws.scheduler.execution-id>", ctx.execution_id.to_owned()),
        (
            "<aws.scheduler.attempt-number>",
            ctx.attempt_number.to_string(),
        ),
    ];
    let mut out = String::with_capacity(input.len() + 64);
    let mut rest = input;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match values.iter().find(|(k, _)| tail.starts_with(k)) {
            Some((k, v)) => {
                out.push_str(v);
                rest = &tail[k.len()..];
            }
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The ARN of a Scheduler schedule: `arn:aws:scheduler:REGION:ACCOUNT:schedule/GROUP/NAME`.
pub fn schedule_arn(region: &str, account: &str, group: &str, name: &str) -> String {
    format!("arn:aws:scheduler:{region}:{account}:schedule/{group}/{name}")
}

/// A fresh execution id shaped like the Scheduler's (`d32c5kddcf5bb8c3`: 16 characters from
/// `0-9a-z`), drawn from `rng`.
pub fn new_execution_id(rng: &mut fastrand::Rng) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..16)
        .map(|_| ALPHABET[rng.usize(0..ALPHABET.len())] as char)
        .collect()
}

/// The ARN of a rule on the default event bus: `arn:aws:events:REGION:ACCOUNT:rule/NAME`
/// (scheduled rules only exist on the default bus).
pub fn rule_arn(region: &str, account: &str, rule_name: &str) -> String {
    format!("arn:aws:events:{region}:{account}:rule/{rule_name}")
}

/// The event a legacy scheduled rule (SAM `Schedule`, `AWS::Events::Rule`) sends for one fire
/// time: `{"version":"0","id":..,"detail-type":"Scheduled Event","source":"aws.events",
/// "account":..,"time":..,"region":..,"resources":[rule ARN],"detail":{}}`. `time` is the
/// scheduled time in whole seconds.
pub fn scheduled_event(
    region: &str,
    account: &str,
    rule_name: &str,
    id: uuid::Uuid,
    scheduled_time: DateTime<Utc>,
) -> EventBridgeEvent {
    let mut event = EventBridgeEvent::default();
    event.version = Some("0".to_owned());
    event.id = Some(id.to_string());
    event.detail_type = "Scheduled Event".to_owned();
    event.source = "aws.events".to_owned();
    event.account = Some(account.to_owned());
    event.time = Some(scheduled_time.with_nanosecond(0).unwrap_or(scheduled_time));
    event.region = Some(region.to_owned());
    event.resources = Some(vec![rule_arn(region, account, rule_name)]);
    event.detail = serde_json::Value::Object(serde_json::Map::new());
    event
}

/// [`scheduled_event`] serialized the way AWS sends it (compact JSON, AWS field order).
pub fn scheduled_event_json(
    region: &str,
    account: &str,
    rule_name: &str,
    id: uuid::Uuid,
    scheduled_time: DateTime<Utc>,
) -> String {
    let event = scheduled_event(region, account, rule_name, id, scheduled_time);
    // EventBridgeEvent<Value> holds only strings, a time and a JSON object: serializing it
    // cannot fail.
    serde_json::to_string(&event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn window_validation() {
        assert!(FlexibleWindow::flexible(1).is_ok());
        assert!(FlexibleWindow::flexible(1440).is_ok());
        assert_eq!(
            FlexibleWindow::flexible(0).unwrap_err().to_string(),
            "MaximumWindowInMinutes 0 out of range 1-1440"
        );
        assert_eq!(
            FlexibleWindow::flexible(1441).unwrap_err().to_string(),
            "MaximumWindowInMinutes 1441 out of range 1-1440"
        );
        assert_eq!(FlexibleWindow::Off.validate(), Ok(()));
        assert_eq!(FlexibleWindow::default(), FlexibleWindow::Off);
    }

    #[test]
    fn window_picks_inside_and_is_deterministic() {
        let at = t("2026-01-01T10:00:00Z");
        let w = FlexibleWindow::flexible(15).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let picks: Vec<_> = (0..500).map(|_| w.invocation_time(at, &mut rng)).collect();
        assert!(
            picks
                .iter()
                .all(|p| *p >= at && *p < at + TimeDelta::minutes(15))
        );
        // Spread over the window, not stuck at one end.
        assert!(picks.iter().any(|p| *p < at + TimeDelta::minutes(5)));
        assert!(picks.iter().any(|p| *p > at + TimeDelta::minutes(10)));
        let mut again = fastrand::Rng::with_seed(7);
        assert_eq!(w.invocation_time(at, &mut again), picks[0]);
        assert_eq!(FlexibleWindow::Off.invocation_time(at, &mut rng), at);
    }

    #[test]
    fn retry_policy_validation() {
        assert_eq!(
            RetryPolicy::default(),
            RetryPolicy::new(86_400, 185).unwrap()
        );
        assert!(RetryPolicy::new(60, 0).is_ok());
        assert_eq!(
            RetryPolicy::new(59, 0).unwrap_err().to_string(),
            "MaximumEventAgeInSeconds 59 out of range 60-86400"
        );
        assert_eq!(
            RetryPolicy::new(86_401, 0).unwrap_err().to_string(),
            "MaximumEventAgeInSeconds 86401 out of range 60-86400"
        );
        assert_eq!(
            RetryPolicy::new(60, 186).unwrap_err().to_string(),
            "MaximumRetryAttempts 186 out of range 0-185"
        );
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let d: Vec<i64> = (1..=11)
            .map(|r| RetryPolicy::retry_delay(r).num_seconds())
            .collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 64, 128, 256, 480, 480]);
        assert_eq!(RetryPolicy::retry_delay(185).num_seconds(), 480);
        assert_eq!(RetryPolicy::retry_delay(u32::MAX).num_seconds(), 480);
        for n in [1, 5, 9, 10, 50, 185] {
            let sum: i64 = (1..=n)
                .map(|r| RetryPolicy::retry_delay(r).num_seconds())
                .sum();
            assert_eq!(RetryPolicy::retry_offset_seconds(n), sum, "{n}");
        }
    }

    #[test]
    fn next_retry_stops_on_attempts_or_age() {
        let first = t("2026-01-01T00:00:00Z");
        // When attempt `a` failed, if attempts take no time.
        let failed =
            |a: u32| first + TimeDelta::seconds(RetryPolicy::retry_offset_seconds(a.max(1) - 1));
        let p = RetryPolicy::default();
        let next = |p: &RetryPolicy, a: u32| p.next_retry(a, first, failed(a));
        assert_eq!(next(&p, 1), Some(t("2026-01-01T00:00:01Z")));
        assert_eq!(next(&p, 0), Some(t("2026-01-01T00:00:01Z")));
        assert_eq!(next(&p, 2), Some(t("2026-01-01T00:00:03Z")));
        assert_eq!(next(&p, 10), Some(first + TimeDelta::seconds(511 + 480)));
        assert_eq!(next(&p, 185), Some(first + TimeDelta::seconds(84_991)));
        assert_eq!(next(&p, 186), None);
        let none = RetryPolicy::new(86_400, 0).unwrap();
        assert_eq!(next(&none, 1), None);
        // One hour of age: retries up to 511 + 6 * 480 = 3391 s, the 16th would be at 3871 s.
        let hour = RetryPolicy::new(3_600, 185).unwrap();
        assert_eq!(next(&hour, 15), Some(first + TimeDelta::seconds(3_391)));
        assert_eq!(next(&hour, 16), None);
        let retries = (1..=185).take_while(|a| next(&hour, *a).is_some()).count();
        assert_eq!(retries, 15);
        // Measured on the clock: a slow attempt pushes its retry, and counts toward the age.
        let slow = first + TimeDelta::seconds(30);
        assert_eq!(
            p.next_retry(1, first, slow),
            Some(slow + TimeDelta::seconds(1))
        );
        let late = |s| hour.next_retry(1, first, first + TimeDelta::seconds(s));
        assert_eq!(late(3_599), Some(first + TimeDelta::seconds(3_600)));
        assert_eq!(late(3_600), None);
    }

    #[test]
    fn context_attributes_substituted_once() {
        let ctx = ContextAttributes {
            schedule_arn: "arn:aws:scheduler:us-east-1:123456789012:schedule/default/daily",
            scheduled_time: t("2026-11-22T02:00:00.250Z"),
            execution_id: "d32c5kddcf5bb8c3",
            attempt_number: 2,
        };
        let input = r#"{"scheduled_time":"<aws.scheduler.scheduled-time>","arn":"<aws.scheduler.schedule-arn>","id":"<aws.scheduler.execution-id>","n":<aws.scheduler.attempt-number>,"other":"<aws.scheduler.nope>","lt":"<b>","again":"<aws.scheduler.scheduled-time>"}"#;
        assert_eq!(
            substitute_context(input, &ctx),
            r#"{"scheduled_time":"2026-11-22T02:00:00Z","arn":"arn:aws:scheduler:us-east-1:123456789012:schedule/default/daily","id":"d32c5kddcf5bb8c3","n":2,"other":"<aws.scheduler.nope>","lt":"<b>","again":"2026-11-22T02:00:00Z"}"#
        );
        assert_eq!(substitute_context("plain", &ctx), "plain");
        assert_eq!(
            substitute_context("<aws.scheduler.", &ctx),
            "<aws.scheduler."
        );
    }

    #[test]
    fn context_attributes_in_plain_text_and_back_to_back() {
        let ctx = ContextAttributes {
            schedule_arn: "arn:aws:scheduler:eu-central-1:123456789012:schedule/ops/tick",
            scheduled_time: t("2026-03-29T01:00:00Z"),
            execution_id: "0123456789abcdef",
            attempt_number: 185,
        };
        // A plain-text SQS body, keywords adjacent to each other and to other text.
        assert_eq!(
            substitute_context(
                "run@<aws.scheduler.scheduled-time><aws.scheduler.attempt-number>/<aws.scheduler.execution-id>:<aws.scheduler.schedule-arn>",
                &ctx
            ),
            "run@2026-03-29T01:00:00Z185/0123456789abcdef:arn:aws:scheduler:eu-central-1:123456789012:schedule/ops/tick"
        );
        // Keywords are case-sensitive and must be complete.
        assert_eq!(
            substitute_context(
                "<AWS.SCHEDULER.SCHEDULED-TIME> <aws.scheduler.attempt-number <aws.scheduler.attempt-number>",
                &ctx
            ),
            "<AWS.SCHEDULER.SCHEDULED-TIME> <aws.scheduler.attempt-number 185"
        );
        assert_eq!(
            format_scheduled_time(t("2026-03-29T01:00:59.999Z")),
            "2026-03-29T01:00:59Z"
        );
    }

    #[test]
    fn arns_and_ids() {
        assert_eq!(
            schedule_arn("eu-central-1", "123456789012", "default", "daily-report"),
            "arn:aws:scheduler:eu-central-1:123456789012:schedule/default/daily-report"
        );
        assert_eq!(
            rule_arn("us-east-1", "123456789012", "my-scheduled-rule"),
            "arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"
        );
        let mut rng = fastrand::Rng::with_seed(1);
        let id = new_execution_id(&mut rng);
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert_ne!(new_execution_id(&mut rng), id);
    }

    #[test]
    fn legacy_envelope_matches_aws_bytes() {
        let id = uuid::Uuid::parse_str("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa").unwrap();
        let json = scheduled_event_json(
            "us-east-1",
            "123456789012",
            "my-scheduled-rule",
            id,
            t("2015-10-08T16:53:06.789Z"),
        );
        assert_eq!(
            json,
            r#"{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2015-10-08T16:53:06Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"],"detail":{}}"#
        );
    }
}
