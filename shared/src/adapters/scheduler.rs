//! The scheduler port on EventBridge Scheduler through aws-sdk-scheduler (feature
//! `scheduler`, which only queue-processor turns on: the other functions do not link the SDK
//! client). The endpoint comes from the SDK's standard configuration
//! (`AWS_ENDPOINT_URL_SCHEDULER`, else `AWS_ENDPOINT_URL`, points it at the emulator), so the
//! same code talks to the emulator and to AWS.
//!
//! Every schedule targets the jobs queue with the envelope's JSON as the message body, in
//! one schedule group, assuming one role that may send to that queue
//! ([`SchedulerTarget`]). One-time schedules are `at()` expressions in UTC with
//! `ActionAfterCompletion: DELETE`, so a fired schedule does not linger (Scheduler keeps a
//! completed one-time schedule otherwise), and no flexible window, so the job arrives at its
//! time (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html>,
//! <https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#one-time>).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

pub use crate::config::SchedulerTarget;
use crate::contracts::JobEnvelope;
use crate::ports::{ScheduleError, Scheduler, check_cron_fields, schedule_name};

/// Error codes of Scheduler that pass, so they are retryable
/// (<https://docs.aws.amazon.com/scheduler/latest/APIReference/CommonErrors.html>).
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "InternalServerException",
    "ServiceUnavailable",
    "RequestTimeout",
];

/// The context attribute Scheduler replaces with an occurrence's scheduled time, like
/// `2026-11-23T08:00:00Z`
/// (<https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html>).
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// Longest job id ([`JobEnvelope`]'s rule), which a recurring occurrence's id
/// (`ID:SCHEDULED-TIME`) must stay within.
const MAX_JOB_ID: usize = 128;

/// Scheduler through aws-sdk-scheduler.
#[derive(Clone)]
pub struct EventBridgeScheduler {
    client: Arc<OnceCell<Client>>,
    target: SchedulerTarget,
}

impl std::fmt::Debug for EventBridgeScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBridgeScheduler")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl EventBridgeScheduler {
    /// Uses `client` for `target`.
    pub fn new(client: Client, target: SchedulerTarget) -> Self {
        EventBridgeScheduler {
            client: Arc::new(OnceCell::new_with(Some(client))),
            target,
        }
    }

    /// For `target`, with a client built on first use from the environment and the shared
    /// SDK configuration ([`crate::adapters::aws::aws_sdk_config`]: the one HTTPS client,
    /// short timeouts, three attempts), so configuration stays synchronous and an invocation
    /// that schedules nothing never loads it.
    pub fn lazy(target: SchedulerTarget) -> Self {
        EventBridgeScheduler {
            client: Arc::new(OnceCell::new()),
            target,
        }
    }

    /// A client for an explicit endpoint with static credentials: the emulator from inside a
    /// test, without touching the process environment.
    pub fn for_endpoint(endpoint: &str, region: &str, target: SchedulerTarget) -> Self {
        use aws_sdk_scheduler::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_scheduler::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("local", "local", None, None, "nightshift"))
            .http_client(crate::adapters::aws::https_client())
            .build();
        EventBridgeScheduler::new(Client::from_conf(config), target)
    }

    /// Where the schedules send.
    pub fn target(&self) -> &SchedulerTarget {
        &self.target
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async { Client::new(&crate::adapters::aws::aws_sdk_config().await) })
            .await
    }

    fn sdk_target(&self, input: String) -> Result<Target, ScheduleError> {
        Target::builder()
            .arn(&self.target.queue_arn)
            .role_arn(&self.target.role_arn)
            .input(input)
            .build()
            .map_err(|e| ScheduleError::Rejected(format!("schedule target: {e}")))
    }

    /// Creates schedule `name`, or replaces it when it exists (`ConflictException`):
    /// UpdateSchedule replaces every member, so the result is the schedule asked for
    /// whichever way it went.
    async fn put(&self, name: &str, spec: Spec) -> Result<(), ScheduleError> {
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| ScheduleError::Rejected(format!("flexible time window: {e}")))?;
        let client = self.client().await;
        let created = client
            .create_schedule()
            .name(name)
            .group_name(&self.target.group)
            .schedule_expression(&spec.expression)
            .schedule_expression_timezone(&spec.time_zone)
            .flexible_time_window(window.clone())
            .target(self.sdk_target(spec.input.clone())?)
            .set_action_after_completion(spec.after_completion.clone())
            .send()
            .await;
        let conflict = match created {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("ConflictException") => e,
            Err(e) => return Err(classify(name, e)),
        };
        tracing::debug!(schedule = name, error = %conflict, "schedule exists, replacing it");
        client
            .update_schedule()
            .name(name)
            .group_name(&self.target.group)
            .schedule_expression(&spec.expression)
            .schedule_expression_timezone(&spec.time_zone)
            .flexible_time_window(window)
            .target(self.sdk_target(spec.input)?)
            .set_action_after_completion(spec.after_completion)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match e.code() {
                // Deleted between the two calls (it fired, or was cancelled): a retry creates
                // it again.
                Some("ResourceNotFoundException") => ScheduleError::Transient(format!(
                    "schedule {name} vanished while being replaced: {}",
                    error_text(&e)
                )),
                _ => classify(name, e),
            })
    }
}

/// What a schedule is made of, for CreateSchedule and UpdateSchedule alike.
struct Spec {
    expression: String,
    time_zone: String,
    input: String,
    after_completion: Option<ActionAfterCompletion>,
}

/// The `at()` expression of `at`, to the second, read in UTC.
pub fn at_expression(at: DateTime<Utc>) -> String {
    format!("at({})", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// The Input of a recurring schedule: `envelope` with its id suffixed by
/// `:<aws.scheduler.scheduled-time>` and that time as `submitted_at`, so each occurrence is
/// a job of its own (job ids are idempotency keys: without this, every occurrence after the
/// first would be skipped as a duplicate) and a retried delivery of one occurrence is the
/// same job.
pub fn recurring_input(envelope: &JobEnvelope) -> Result<String, ScheduleError> {
    let longest = envelope.id.len() + 1 + "2026-11-23T08:00:00Z".len();
    if longest > MAX_JOB_ID {
        return Err(ScheduleError::Rejected(format!(
            "job id {:?} is too long for a recurring schedule: with `:` and the scheduled time \
             it would be {longest} characters, over the {MAX_JOB_ID} limit",
            envelope.id
        )));
    }
    let mut value = serde_json::to_value(envelope)
        .map_err(|e| ScheduleError::Rejected(format!("job {}: {e}", envelope.id)))?;
    value["id"] = format!("{}:{SCHEDULED_TIME}", envelope.id).into();
    value["submitted_at"] = SCHEDULED_TIME.into();
    Ok(value.to_string())
}

/// The text of an SDK error with its source chain.
fn error_text<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    aws_sdk_scheduler::error::DisplayErrorContext(err).to_string()
}

/// Sorts an SDK error about schedule `name` into transient or rejected.
fn classify<E, R>(name: &str, err: SdkError<E, R>) -> ScheduleError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = format!("schedule {name}: {}", error_text(&err));
    match &err {
        SdkError::ConstructionFailure(_) => ScheduleError::Rejected(text),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ScheduleError::Transient(text)
        }
        SdkError::ServiceError(service) => match service.err().code() {
            Some(code) if TRANSIENT_CODES.contains(&code) => ScheduleError::Transient(text),
            _ => ScheduleError::Rejected(text),
        },
        _ => ScheduleError::Transient(text),
    }
}

#[async_trait]
impl Scheduler for EventBridgeScheduler {
    async fn schedule_job(
        &self,
        id: &str,
        at: DateTime<Utc>,
        envelope: &JobEnvelope,
    ) -> Result<(), ScheduleError> {
        let name = schedule_name(id)?;
        let input = serde_json::to_string(envelope)
            .map_err(|e| ScheduleError::Rejected(format!("job {}: {e}", envelope.id)))?;
        let spec = Spec {
            expression: at_expression(at),
            time_zone: "UTC".into(),
            input,
            after_completion: Some(ActionAfterCompletion::Delete),
        };
        self.put(name, spec).await
    }

    async fn schedule_recurring(
        &self,
        id: &str,
        cron: &str,
        time_zone: chrono_tz::Tz,
        envelope: &JobEnvelope,
    ) -> Result<(), ScheduleError> {
        let name = schedule_name(id)?;
        check_cron_fields(id, cron)?;
        let spec = Spec {
            expression: format!(
                "cron({})",
                cron.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
            time_zone: time_zone.name().to_string(),
            input: recurring_input(envelope)?,
            // A recurring schedule never completes; NONE is Scheduler's default.
            after_completion: None,
        };
        self.put(name, spec).await
    }

    async fn cancel(&self, id: &str) -> Result<bool, ScheduleError> {
        let name = schedule_name(id)?;
        let deleted = self
            .client()
            .await
            .delete_schedule()
            .name(name)
            .group_name(&self.target.group)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            // Never made, fired and deleted (ActionAfterCompletion DELETE), or cancelled
            // before: nothing to cancel, which is what the caller wanted.
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(classify(name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_expressions_are_utc_to_the_second() {
        let at: DateTime<Utc> = "2026-11-24T10:00:07.900Z".parse().unwrap();
        assert_eq!(at_expression(at), "at(2026-11-24T10:00:07)");
    }

    #[test]
    fn each_recurring_occurrence_is_a_job_of_its_own() {
        let envelope = JobEnvelope::new(
            "weekly-digest-u-1",
            "user.digest",
            serde_json::json!({"user_id": "u-1"}),
            "2026-11-21T10:00:00Z".parse().unwrap(),
        );
        let input = recurring_input(&envelope).unwrap();
        // What Scheduler sends for the occurrence of 2026-11-23 08:00 UTC parses as a job
        // with that id and submission time.
        let sent = input.replace(SCHEDULED_TIME, "2026-11-23T08:00:00Z");
        let job = JobEnvelope::parse(&sent).unwrap();
        assert_eq!(job.id, "weekly-digest-u-1:2026-11-23T08:00:00Z");
        assert_eq!(job.submitted_at.to_rfc3339(), "2026-11-23T08:00:00+00:00");
        assert_eq!(job.payload, envelope.payload);
        let long = JobEnvelope {
            id: "x".repeat(108),
            ..envelope
        };
        assert!(
            recurring_input(&long)
                .unwrap_err()
                .to_string()
                .contains("it would be 129 characters, over the 128 limit")
        );
    }
}
