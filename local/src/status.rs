//! status: what `nightshift status` and `nightshift dlq list` show, as the control endpoint
//! serves it: queues, functions, mappings, schedules, asynchronous invocations, dead letters.
//! Plain data, serialisable, built by [`crate::emulator::Emulator`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::invoke_async::AsyncStats;
use std::collections::BTreeMap;

use crate::history::InvocationSummary;
use crate::sqs::model::{MessageSnapshot, MessageState};

/// One queue's counts, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueueStatus {
    /// Queue name.
    pub name: String,
    /// Queue URL.
    pub url: String,
    /// Messages available.
    pub visible: usize,
    /// Messages received and not yet deleted.
    pub in_flight: usize,
    /// Messages waiting out their delay.
    pub delayed: usize,
    /// Its dead-letter queue, when it has one.
    pub dead_letter_queue: Option<String>,
    /// The redrive policy's `maxReceiveCount`, when it has a dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
    /// The queues whose dead-letter queue this is (empty for any other queue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letter_sources: Vec<String>,
    /// Age of its oldest message in seconds, on the emulator's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_age_s: Option<i64>,
}

/// One function's counters, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionStatus {
    /// Function name.
    pub name: String,
    /// Instances alive.
    pub instances: usize,
    /// Instances busy now.
    pub busy: usize,
    /// Invocations so far.
    pub invocations: u64,
    /// Function errors.
    pub errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Crashes.
    pub crashes: u64,
    /// Cold starts.
    pub cold_starts: u64,
    /// Median duration of its recent invocations, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 95th percentile duration of its recent invocations, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
}

/// One event source mapping, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MappingStatus {
    /// The function it invokes.
    pub function: String,
    /// The queue it polls.
    pub queue: String,
    /// Its counters.
    pub stats: serde_json::Value,
}

/// Everything `nightshift status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Now, on the emulator's clock.
    pub now: DateTime<Utc>,
    /// The clock kind (`real`, `x60`, `manual`).
    pub clock: String,
    /// The SQS endpoint.
    pub endpoint: String,
    /// Queues.
    pub queues: Vec<QueueStatus>,
    /// Functions.
    pub functions: Vec<FunctionStatus>,
    /// Event source mappings.
    pub mappings: Vec<MappingStatus>,
    /// Schedules.
    pub schedules: Vec<ScheduleStatus>,
    /// Asynchronous invocations of each function.
    #[serde(default)]
    pub async_invocations: Vec<AsyncStats>,
    /// The functions' EMF metrics so far, as CloudWatch would extract them (running totals;
    /// windows and percentiles: `nightshift metrics`).
    #[serde(default)]
    pub metrics: Vec<crate::metrics::MetricTotal>,
}

/// One schedule, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// Schedule or rule name.
    pub name: String,
    /// Schedule group (`default` for the template's schedules and rules).
    #[serde(default = "default_group")]
    pub group: String,
    /// Whether it was created through the Scheduler API rather than by the template.
    #[serde(default)]
    pub api: bool,
    /// What it delivers to: the function it invokes, or `sqs:` and the queue's name.
    pub function: String,
    /// The expression.
    pub expression: String,
    /// Its time zone.
    pub timezone: String,
    /// Whether it fires on its own.
    pub enabled: bool,
    /// The next fire time.
    pub next_fire: Option<DateTime<Utc>>,
    /// The latest scheduled time.
    pub last_fire: Option<DateTime<Utc>>,
    /// Occurrences started.
    pub fires: u64,
    /// Invocations that failed.
    pub failures: u64,
    /// Occurrences sent to the dead-letter queue.
    pub dead_lettered: u64,
}

fn default_group() -> String {
    crate::scheduler_api::model::DEFAULT_GROUP.to_owned()
}

/// A message in a dead-letter queue, for `dlq list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DlqMessage {
    /// Message id.
    pub message_id: String,
    /// When it was first sent.
    pub sent_at: DateTime<Utc>,
    /// How often it was received.
    pub receive_count: u32,
    /// The reason recorded by the function (`nightshift-error`) or by the scheduler.
    pub reason: Option<String>,
    /// The body.
    pub body: String,
    /// `visible`, `in_flight` or `delayed`.
    #[serde(default)]
    pub state: String,
    /// Its message attributes' string values (binary ones as `<binary>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl From<MessageSnapshot> for DlqMessage {
    fn from(m: MessageSnapshot) -> Self {
        let reason = [
            nightshift_contract::record::ERROR_ATTRIBUTE,
            "X-Amz-Scheduler-Error-Message",
            "ERROR_MESSAGE",
        ]
        .iter()
        .find_map(|k| m.message_attributes.get(*k))
        .and_then(|v| v.string_value.clone());
        DlqMessage {
            message_id: m.message_id,
            sent_at: m.sent_at,
            receive_count: m.receive_count,
            reason,
            body: m.body,
            state: match m.state {
                MessageState::Visible => "visible",
                MessageState::InFlight => "in_flight",
                MessageState::Delayed => "delayed",
            }
            .to_owned(),
            attributes: m
                .message_attributes
                .into_iter()
                .map(|(k, v)| (k, v.string_value.unwrap_or_else(|| "<binary>".to_owned())))
                .collect(),
        }
    }
}

/// One schedule with what its page shows: the next fires and its recent runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduleDetail {
    /// Its status line.
    #[serde(flatten)]
    pub status: ScheduleStatus,
    /// The next five fire times (fewer when the expression runs out; none while disabled).
    pub next_fires: Vec<DateTime<Utc>>,
    /// The invocations it caused that the history keeps, newest first.
    pub runs: Vec<InvocationSummary>,
}
