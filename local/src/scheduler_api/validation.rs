//! The Scheduler API's checks of a CreateSchedule or UpdateSchedule request, turning it into
//! the [`ScheduleDef`] the runner runs. Every rule answers `ValidationException` (400), as AWS
//! does for each (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html>,
//! <https://docs.aws.amazon.com/scheduler/latest/APIReference/CommonErrors.html>); the
//! checks run before anything is stored, so a refused request leaves nothing behind.
//!
//! Beyond AWS, which accepts any well-formed ARN and fails at delivery, the target and the
//! dead-letter queue must be resources of the template: the emulator has nothing else.

use chrono::{DateTime, Utc};

use super::ApiError;
use super::model::{DEFAULT_GROUP, ScheduleRequest};
use crate::schedule::{
    FlexibleWindow, RetryPolicy as Policy, Schedule, ScheduleExpression, parse_time_zone,
};
use crate::template::{RetryPolicy, ScheduleDef, ScheduleKind, ScheduleTarget, Template};

/// Longest schedule and group name.
const MAX_NAME: usize = 64;

/// Checks a schedule or group name: 1-64 of `[0-9a-zA-Z-_.]`. `member` is the member's
/// name in AWS's message (`name`, `groupName`).
pub fn check_name(member: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must have length between 1 and {MAX_NAME}"
        )));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: ^[0-9a-zA-Z-_.]+$"
        )));
    }
    Ok(())
}

/// The group of a request: `GroupName`, `default` when absent.
pub fn group_of(request: &ScheduleRequest) -> Result<String, ApiError> {
    let group = request.group_name.as_deref().unwrap_or(DEFAULT_GROUP);
    check_name("groupName", group)?;
    Ok(group.to_owned())
}

/// Checks `request` for schedule `name` at `now` against `template`, and returns what the
/// runner runs.
pub fn schedule_def(
    name: &str,
    group: &str,
    request: &ScheduleRequest,
    template: &Template,
    now: DateTime<Utc>,
) -> Result<ScheduleDef, ApiError> {
    check_name("name", name)?;
    let text = required(request.schedule_expression.as_deref(), "ScheduleExpression")?;
    let expression = ScheduleExpression::parse(text)
        .map_err(|e| ApiError::validation(format!("Invalid Schedule Expression {text}: {e}.")))?;
    let zone_name = request
        .schedule_expression_timezone
        .as_deref()
        .unwrap_or("UTC");
    let timezone = parse_time_zone(zone_name)
        .map_err(|_| ApiError::validation(format!("Invalid timezone {zone_name}.")))?;
    let start_date = date(request.start_date, "StartDate")?;
    let end_date = date(request.end_date, "EndDate")?;
    if let (Some(start), Some(end)) = (start_date, end_date)
        && end <= start
    {
        return Err(ApiError::validation(
            "The EndDate must be after the StartDate.",
        ));
    }
    let flexible_window_minutes = flexible_window(request)?;
    let enabled = match request.state.as_deref() {
        None | Some("ENABLED") => true,
        Some("DISABLED") => false,
        Some(other) => {
            return Err(enum_error("state", other, "[ENABLED, DISABLED]"));
        }
    };
    if let Some(action) = request.action_after_completion.as_deref()
        && !matches!(action, "NONE" | "DELETE")
    {
        return Err(enum_error(
            "actionAfterCompletion",
            action,
            "[NONE, DELETE]",
        ));
    }
    let schedule = Schedule {
        expression: expression.clone(),
        timezone,
        start_date,
        end_date,
        flexible_window: FlexibleWindow::Off,
        retry_policy: Policy::default(),
    };
    if matches!(expression, ScheduleExpression::At(_)) && schedule.first_fire(now).is_none() {
        return Err(ApiError::validation(format!(
            "The schedule expression {text} is in the past: at() must be a future time on the \
             emulator's clock (now {})",
            now.to_rfc3339()
        )));
    }
    let target = request.target.as_ref().ok_or_else(|| missing("Target"))?;
    let arn = required(target.arn.as_deref(), "Target.Arn")?;
    required(target.role_arn.as_deref(), "Target.RoleArn")?;
    let group_id = target
        .sqs_parameters
        .as_ref()
        .and_then(|p| p.message_group_id.clone());
    let target_def = if let Some((id, _)) = template.functions.iter().find(|(_, f)| f.arn == arn) {
        ScheduleTarget::Function(id.clone())
    } else if let Some(q) = template.queues.values().find(|q| q.arn == arn) {
        if q.fifo && group_id.is_none() {
            return Err(ApiError::validation(format!(
                "Target {arn} is a FIFO queue: SqsParameters.MessageGroupId is required"
            )));
        }
        ScheduleTarget::Queue {
            queue: q.logical_id.clone(),
            message_group_id: group_id,
        }
    } else {
        return Err(ApiError::validation(format!(
            "Invalid target arn {arn}: not a function or queue of the emulator's template"
        )));
    };
    let retry_policy = retry_policy(request)?;
    let dead_letter_queue = match target
        .dead_letter_config
        .as_ref()
        .and_then(|d| d.arn.as_deref())
    {
        None => None,
        Some(dlq) => match template.queues.values().find(|q| q.arn == dlq) {
            Some(q) if !q.fifo => Some(q.logical_id.clone()),
            Some(_) => {
                return Err(ApiError::validation(format!(
                    "Invalid DeadLetterConfig arn {dlq}: a dead-letter queue must be a standard \
                     queue, not a FIFO queue"
                )));
            }
            None => {
                return Err(ApiError::validation(format!(
                    "Invalid DeadLetterConfig arn {dlq}: not a queue of the emulator's template"
                )));
            }
        },
    };
    Ok(ScheduleDef {
        id: format!("{group}/{name}"),
        name: name.to_owned(),
        target: target_def,
        expression: text.trim().to_owned(),
        timezone: zone_name.to_owned(),
        kind: ScheduleKind::ScheduleV2,
        input: target.input.clone(),
        retry_policy,
        dead_letter_queue,
        flexible_window_minutes,
        enabled,
        start_date,
        end_date,
    })
}

fn required<'a>(value: Option<&'a str>, member: &str) -> Result<&'a str, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing(member))
}

fn missing(member: &str) -> ApiError {
    ApiError::validation(format!("{member} is required."))
}

fn enum_error(member: &str, value: &str, allowed: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
         constraint: Member must satisfy enum value set: {allowed}"
    ))
}

fn date(seconds: Option<f64>, member: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    seconds
        .map(|s| {
            super::model::from_epoch(s)
                .ok_or_else(|| ApiError::validation(format!("Invalid {member} {s}.")))
        })
        .transpose()
}

/// `FlexibleTimeWindow` (required): `OFF` without a window, or `FLEXIBLE` with
/// `MaximumWindowInMinutes` in 1..=1440.
fn flexible_window(request: &ScheduleRequest) -> Result<Option<u32>, ApiError> {
    let window = request
        .flexible_time_window
        .as_ref()
        .ok_or_else(|| missing("FlexibleTimeWindow"))?;
    match (window.mode.as_deref(), window.maximum_window_in_minutes) {
        (Some("OFF"), None) => Ok(None),
        (Some("OFF"), Some(_)) => Err(ApiError::validation(
            "MaximumWindowInMinutes must not be set when the FlexibleTimeWindow Mode is OFF.",
        )),
        (Some("FLEXIBLE"), None) => Err(ApiError::validation(
            "MaximumWindowInMinutes is required when the FlexibleTimeWindow Mode is FLEXIBLE.",
        )),
        (Some("FLEXIBLE"), Some(minutes)) => match u32::try_from(minutes) {
            Ok(m) if (1..=1440).contains(&m) => Ok(Some(m)),
            _ => Err(ApiError::validation(format!(
                "1 validation error detected: Value '{minutes}' at \
                 'flexibleTimeWindow.maximumWindowInMinutes' failed to satisfy constraint: \
                 Member must have value between 1 and 1440"
            ))),
        },
        (None, _) => Err(missing("FlexibleTimeWindow.Mode")),
        (Some(other), _) => Err(enum_error(
            "flexibleTimeWindow.mode",
            other,
            "[OFF, FLEXIBLE]",
        )),
    }
}

/// `Target.RetryPolicy`: `MaximumEventAgeInSeconds` 60..=86400, `MaximumRetryAttempts`
/// 0..=185, AWS's defaults (86400, 185) for what is absent.
fn retry_policy(request: &ScheduleRequest) -> Result<RetryPolicy, ApiError> {
    let given = request
        .target
        .as_ref()
        .and_then(|t| t.retry_policy)
        .unwrap_or_default();
    let defaults = RetryPolicy::default();
    let bounded = |value: Option<i64>, default: u32, member: &str, low: i64, high: i64| match value
    {
        None => Ok(default),
        Some(v) if (low..=high).contains(&v) => Ok(v as u32),
        Some(v) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{v}' at 'target.retryPolicy.{member}' \
                 failed to satisfy constraint: Member must have value between {low} and {high}"
        ))),
    };
    let policy = RetryPolicy {
        max_event_age_s: bounded(
            given.maximum_event_age_in_seconds,
            defaults.max_event_age_s,
            "maximumEventAgeInSeconds",
            60,
            86_400,
        )?,
        max_retry_attempts: bounded(
            given.maximum_retry_attempts,
            defaults.max_retry_attempts,
            "maximumRetryAttempts",
            0,
            185,
        )?,
    };
    // The runner's own check, so the two never disagree.
    Policy::new(policy.max_event_age_s, policy.max_retry_attempts)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler_api::model::{FlexibleTimeWindow, RetryPolicy as WireRetry, Target};

    #[test]
    fn names_are_1_to_64_of_the_allowed_characters() {
        assert!(check_name("name", "a").is_ok());
        assert!(check_name("name", &"a".repeat(64)).is_ok());
        assert!(check_name("name", "Job-1_v2.final").is_ok());
        for bad in ["", &"a".repeat(65), "a b", "a/b", "é"] {
            let err = check_name("name", bad).unwrap_err();
            assert_eq!(
                err.code,
                crate::scheduler_api::ErrorCode::Validation,
                "{bad:?}"
            );
        }
    }

    fn window(mode: &str, minutes: Option<i64>) -> ScheduleRequest {
        ScheduleRequest {
            flexible_time_window: Some(FlexibleTimeWindow {
                mode: Some(mode.to_owned()),
                maximum_window_in_minutes: minutes,
            }),
            ..ScheduleRequest::default()
        }
    }

    #[test]
    fn flexible_windows_are_off_or_1_to_1440_minutes() {
        assert_eq!(flexible_window(&window("OFF", None)).unwrap(), None);
        assert_eq!(
            flexible_window(&window("FLEXIBLE", Some(1))).unwrap(),
            Some(1)
        );
        assert_eq!(
            flexible_window(&window("FLEXIBLE", Some(1440))).unwrap(),
            Some(1440)
        );
        for (mode, minutes) in [
            ("FLEXIBLE", Some(0)),
            ("FLEXIBLE", Some(1441)),
            ("FLEXIBLE", None),
            ("OFF", Some(5)),
            ("SOMETIMES", None),
        ] {
            assert!(
                flexible_window(&window(mode, minutes)).is_err(),
                "{mode} {minutes:?}"
            );
        }
        assert!(flexible_window(&ScheduleRequest::default()).is_err());
    }

    #[test]
    fn retry_policies_default_to_aws_and_stay_in_bounds() {
        let with = |age, attempts| ScheduleRequest {
            target: Some(Target {
                retry_policy: Some(WireRetry {
                    maximum_event_age_in_seconds: age,
                    maximum_retry_attempts: attempts,
                }),
                ..Target::default()
            }),
            ..ScheduleRequest::default()
        };
        assert_eq!(
            retry_policy(&ScheduleRequest::default()).unwrap(),
            RetryPolicy::default()
        );
        let edges = retry_policy(&with(Some(60), Some(0))).unwrap();
        assert_eq!((edges.max_event_age_s, edges.max_retry_attempts), (60, 0));
        let top = retry_policy(&with(Some(86_400), Some(185))).unwrap();
        assert_eq!((top.max_event_age_s, top.max_retry_attempts), (86_400, 185));
        for (age, attempts) in [
            (Some(59), None),
            (Some(86_401), None),
            (None, Some(-1)),
            (None, Some(186)),
        ] {
            assert!(
                retry_policy(&with(age, attempts)).is_err(),
                "{age:?} {attempts:?}"
            );
        }
    }
}
