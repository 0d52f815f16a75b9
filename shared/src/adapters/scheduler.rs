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

use crate::contracts::JobEnvelope;
pub use crate::ports::SchedulerTarget;
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
    if crate::adapters::aws::is_transient(&err, TRANSIENT_CODES) {
        ScheduleError::Transient(text)
    } else {
        ScheduleError::Rejected(text)
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
    use aws_sdk_scheduler::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;

    /// A scheduler whose requests are recorded and answered with `responses` (status,
    /// `x-amzn-errortype`, body), in order.
    fn replayed(
        responses: &[(u16, Option<&str>, &str)],
    ) -> (EventBridgeScheduler, StaticReplayClient) {
        let events = responses
            .iter()
            .map(|(status, error, body)| {
                let mut response = http::Response::builder()
                    .status(*status)
                    .header("content-type", "application/json");
                if let Some(error) = error {
                    response = response.header("x-amzn-errortype", *error);
                }
                ReplayEvent::new(
                    http::Request::builder()
                        .uri("https://scheduler.eu-central-1.amazonaws.com/")
                        .body(SdkBody::empty())
                        .unwrap(),
                    response.body(SdkBody::from(body.to_string())).unwrap(),
                )
            })
            .collect();
        let replay = StaticReplayClient::new(events);
        let config = aws_sdk_scheduler::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .http_client(replay.clone())
            // One request per call, so each answer above is one call's.
            .retry_config(aws_sdk_scheduler::config::retry::RetryConfig::disabled())
            .build();
        let target = SchedulerTarget {
            group: "nightshift-prod-jobs".into(),
            role_arn: "arn:aws:iam::123456789012:role/jobs-scheduler".into(),
            queue_arn: "arn:aws:sqs:eu-central-1:123456789012:nightshift-prod-jobs".into(),
        };
        (
            EventBridgeScheduler::new(Client::from_conf(config), target),
            replay,
        )
    }

    /// (method, path, JSON body) of each request `replay` recorded.
    fn sent(replay: &StaticReplayClient) -> Vec<(String, String, serde_json::Value)> {
        replay
            .actual_requests()
            .map(|r| {
                let body = r.body().bytes().unwrap_or_default();
                let json = if body.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_slice(body).unwrap()
                };
                let uri: http::Uri = r.uri().parse().unwrap();
                (r.method().to_string(), uri.path().to_string(), json)
            })
            .collect()
    }

    fn envelope() -> JobEnvelope {
        JobEnvelope::new(
            "follow-up-u-1",
            "user.follow_up",
            serde_json::json!({"user_id": "u-1"}),
            "2026-11-24T10:00:00Z".parse().unwrap(),
        )
    }

    #[tokio::test]
    async fn a_taken_name_is_replaced_with_the_same_schedule() {
        let (scheduler, replay) = replayed(&[
            (
                409,
                Some("ConflictException"),
                r#"{"Message":"Schedule follow-up-u-1 already exists."}"#,
            ),
            (
                200,
                None,
                r#"{"ScheduleArn":"arn:aws:scheduler:eu-central-1:123456789012:schedule/nightshift-prod-jobs/follow-up-u-1"}"#,
            ),
        ]);
        let at: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        scheduler
            .schedule_job("follow-up-u-1", at, &envelope())
            .await
            .unwrap();
        let requests = sent(&replay);
        assert_eq!(requests.len(), 2);
        // CreateSchedule is POST /schedules/{Name}, UpdateSchedule PUT, with the same body
        // (https://docs.aws.amazon.com/scheduler/latest/APIReference/API_UpdateSchedule.html).
        assert_eq!(
            (requests[0].0.as_str(), requests[0].1.as_str()),
            ("POST", "/schedules/follow-up-u-1")
        );
        assert_eq!(
            (requests[1].0.as_str(), requests[1].1.as_str()),
            ("PUT", "/schedules/follow-up-u-1")
        );
        let body = &requests[0].2;
        assert_eq!(body["GroupName"], "nightshift-prod-jobs");
        assert_eq!(body["ScheduleExpression"], "at(2026-11-24T10:00:00)");
        assert_eq!(body["ScheduleExpressionTimezone"], "UTC");
        assert_eq!(
            body["FlexibleTimeWindow"],
            serde_json::json!({"Mode": "OFF"})
        );
        assert_eq!(body["ActionAfterCompletion"], "DELETE");
        assert_eq!(
            body["Target"]["Arn"],
            "arn:aws:sqs:eu-central-1:123456789012:nightshift-prod-jobs"
        );
        assert_eq!(
            body["Target"]["RoleArn"],
            "arn:aws:iam::123456789012:role/jobs-scheduler"
        );
        let input = JobEnvelope::parse(body["Target"]["Input"].as_str().unwrap()).unwrap();
        assert_eq!(input, envelope());
        let mut update = requests[1].2.clone();
        let mut create = body.clone();
        // CreateSchedule carries a generated ClientToken; UpdateSchedule has one too.
        update.as_object_mut().unwrap().remove("ClientToken");
        create.as_object_mut().unwrap().remove("ClientToken");
        assert_eq!(update, create);
    }

    #[tokio::test]
    async fn cancel_reads_not_found_as_nothing_to_cancel_and_throttling_as_transient() {
        let (scheduler, replay) = replayed(&[
            (200, None, "{}"),
            (
                404,
                Some("ResourceNotFoundException"),
                r#"{"Message":"Schedule follow-up-u-1 does not exist."}"#,
            ),
            (400, Some("ValidationException"), r#"{"Message":"bad"}"#),
        ]);
        assert!(scheduler.cancel("follow-up-u-1").await.unwrap());
        assert!(!scheduler.cancel("follow-up-u-1").await.unwrap());
        let err = scheduler.cancel("follow-up-u-1").await.unwrap_err();
        assert!(matches!(err, ScheduleError::Rejected(_)), "{err}");
        let requests = sent(&replay);
        assert_eq!(
            (requests[0].0.as_str(), requests[0].1.as_str()),
            ("DELETE", "/schedules/follow-up-u-1")
        );
        // Throttling is a service error a retry can get past.
        let (scheduler, _replay) = replayed(&[(
            429,
            Some("ThrottlingException"),
            r#"{"Message":"Rate exceeded"}"#,
        )]);
        let err = scheduler.cancel("follow-up-u-1").await.unwrap_err();
        assert!(matches!(err, ScheduleError::Transient(_)), "{err}");
    }

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
