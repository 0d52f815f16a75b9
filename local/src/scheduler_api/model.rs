//! The Scheduler API's values: request and response bodies as aws-sdk-scheduler and the AWS CLI
//! send them (REST-JSON, PascalCase members, timestamps as epoch seconds), and what is kept of
//! each schedule and group in the state dir.
//!
//! Shapes: <https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html>,
//! <https://docs.aws.amazon.com/scheduler/latest/APIReference/API_GetSchedule.html>,
//! <https://docs.aws.amazon.com/scheduler/latest/APIReference/API_Target.html>.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The group every account has, which cannot be deleted.
pub const DEFAULT_GROUP: &str = "default";

/// The body of CreateSchedule and UpdateSchedule (the name is in the path).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleRequest {
    /// `NONE` (default) or `DELETE`: delete a one-time schedule once it fired.
    pub action_after_completion: Option<String>,
    /// Idempotency token of CreateSchedule.
    pub client_token: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// No recurring fire after it (epoch seconds).
    pub end_date: Option<f64>,
    /// Required: `{"Mode": "OFF"}` or `{"Mode": "FLEXIBLE", "MaximumWindowInMinutes": n}`.
    pub flexible_time_window: Option<FlexibleTimeWindow>,
    /// The schedule's group; `default` when absent.
    pub group_name: Option<String>,
    /// Kept and returned; the emulator encrypts nothing.
    pub kms_key_arn: Option<String>,
    /// Required: `at(...)`, `rate(...)` or `cron(...)`.
    pub schedule_expression: Option<String>,
    /// IANA zone of the expression; UTC when absent.
    pub schedule_expression_timezone: Option<String>,
    /// No recurring fire before it (epoch seconds); rates are anchored here.
    pub start_date: Option<f64>,
    /// `ENABLED` (default) or `DISABLED`.
    pub state: Option<String>,
    /// Required: what it delivers to.
    pub target: Option<Target>,
}

/// `FlexibleTimeWindow`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlexibleTimeWindow {
    /// `OFF` or `FLEXIBLE`.
    pub mode: Option<String>,
    /// 1..=1440 with `FLEXIBLE`.
    pub maximum_window_in_minutes: Option<i64>,
}

/// `Target` (the members the emulator delivers with; others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    /// ARN of a function or queue of the template.
    pub arn: Option<String>,
    /// Required by AWS; kept, not checked.
    pub role_arn: Option<String>,
    /// The payload: the event of a function, the body of a message.
    pub input: Option<String>,
    /// Retries of a failed delivery.
    pub retry_policy: Option<RetryPolicy>,
    /// Where a delivery that failed for the last time goes.
    pub dead_letter_config: Option<DeadLetterConfig>,
    /// `MessageGroupId` of a FIFO queue target.
    pub sqs_parameters: Option<SqsParameters>,
}

/// `RetryPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryPolicy {
    /// 60..=86400.
    pub maximum_event_age_in_seconds: Option<i64>,
    /// 0..=185.
    pub maximum_retry_attempts: Option<i64>,
}

/// `DeadLetterConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfig {
    /// ARN of a standard queue of the template.
    pub arn: Option<String>,
}

/// `SqsParameters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SqsParameters {
    /// The group of the messages sent to a FIFO queue.
    pub message_group_id: Option<String>,
}

/// A tag of a schedule group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// 1..=128 characters.
    pub key: String,
    /// 0..=256 characters.
    pub value: String,
}

/// The body of CreateScheduleGroup.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupRequest {
    /// Idempotency token.
    pub client_token: Option<String>,
    /// Tags of the new group.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// The body of TagResource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagRequest {
    /// Tags to add or overwrite.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A schedule created through the API, as kept in the state dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSchedule {
    /// Its name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// The request that created or last updated it (its `GroupName` set).
    pub request: ScheduleRequest,
    /// Its ARN.
    pub arn: String,
    /// When it was created, on the emulator's clock.
    pub creation_date: DateTime<Utc>,
    /// When it was last created or updated: the anchor of a rate without `StartDate`.
    pub last_modification_date: DateTime<Utc>,
    /// True once its last occurrence started: a one-time schedule never fires again.
    #[serde(default)]
    pub completed: bool,
}

/// A schedule group, as kept in the state dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// When it was created.
    pub creation_date: DateTime<Utc>,
    /// Its tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The `ClientToken` of the CreateScheduleGroup that made it.
    #[serde(default)]
    pub client_token: Option<String>,
}

/// Everything the Scheduler API keeps: groups and their schedules, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// Groups by name (`default` included).
    pub groups: BTreeMap<String, StoredGroup>,
    /// Schedules by group, then name.
    pub schedules: BTreeMap<String, BTreeMap<String, StoredSchedule>>,
}

impl SchedulerState {
    /// Forgets schedule `name` of `group` (and the group's map once empty).
    pub fn remove_schedule(&mut self, group: &str, name: &str) {
        if let Some(schedules) = self.schedules.get_mut(group) {
            schedules.remove(name);
            if schedules.is_empty() {
                self.schedules.remove(group);
            }
        }
    }
}

/// Seconds since the epoch, as REST-JSON timestamps are sent.
pub fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// A REST-JSON timestamp as a time, if it is one.
pub fn from_epoch(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    DateTime::from_timestamp_millis((seconds * 1000.0).round() as i64)
}

/// `value` without its `null` members (at any depth): absent members are left out.
pub fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

impl StoredSchedule {
    /// GetSchedule's answer.
    pub fn to_output(&self) -> Value {
        let mut out = without_nulls(serde_json::to_value(&self.request).unwrap_or_default());
        if let Value::Object(map) = &mut out {
            map.remove("ClientToken");
            map.insert("Name".into(), self.name.clone().into());
            map.insert("GroupName".into(), self.group.clone().into());
            map.insert("Arn".into(), self.arn.clone().into());
            map.insert("CreationDate".into(), epoch(self.creation_date).into());
            map.insert(
                "LastModificationDate".into(),
                epoch(self.last_modification_date).into(),
            );
            map.entry("State").or_insert_with(|| "ENABLED".into());
            map.entry("ActionAfterCompletion")
                .or_insert_with(|| "NONE".into());
        }
        out
    }
}

impl StoredGroup {
    /// GetScheduleGroup's answer, and one item of ListScheduleGroups.
    pub fn to_output(&self) -> Value {
        serde_json::json!({
            "Arn": self.arn,
            "Name": self.name,
            "State": "ACTIVE",
            "CreationDate": epoch(self.creation_date),
            "LastModificationDate": epoch(self.creation_date),
        })
    }
}
