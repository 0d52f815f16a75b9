//! The values the in-process SQS API takes and returns: messages to send, received messages,
//! receive options, queue statistics, message snapshots and move tasks.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A message (user) attribute or message system attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttributeValue {
    /// `String`, `Number` or `Binary`, optionally with a custom suffix (`Number.int`).
    pub data_type: String,
    /// The value of `String` and `Number` attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// The value of `Binary` attributes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_opt")]
    pub binary_value: Option<Vec<u8>>,
}

impl MessageAttributeValue {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Self {
        MessageAttributeValue {
            data_type: "String".to_string(),
            string_value: Some(value.into()),
            binary_value: None,
        }
    }

    /// A `Number` attribute (SQS keeps numbers as their decimal text).
    pub fn number(value: impl ToString) -> Self {
        MessageAttributeValue {
            data_type: "Number".to_string(),
            string_value: Some(value.to_string()),
            binary_value: None,
        }
    }

    /// A `Binary` attribute.
    pub fn binary(value: impl Into<Vec<u8>>) -> Self {
        MessageAttributeValue {
            data_type: "Binary".to_string(),
            string_value: None,
            binary_value: Some(value.into()),
        }
    }

    /// Whether the data type is `Binary` (or `Binary.<custom>`).
    pub fn is_binary(&self) -> bool {
        base_type(&self.data_type) == "Binary"
    }

    /// Whether the data type is `Number` (or `Number.<custom>`).
    pub fn is_number(&self) -> bool {
        base_type(&self.data_type) == "Number"
    }

    /// Bytes this value counts toward the message size limit (data type and value).
    pub fn size(&self) -> usize {
        let value = match (&self.binary_value, &self.string_value) {
            (Some(b), _) if self.is_binary() => b.len(),
            (_, Some(s)) => s.len(),
            _ => 0,
        };
        self.data_type.len() + value
    }
}

fn base_type(data_type: &str) -> &str {
    data_type.split('.').next().unwrap_or(data_type)
}

/// A message to send, with the optional parts of SendMessage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body (1 byte to the queue's MaximumMessageSize, XML-safe characters only).
    pub body: String,
    /// Per-message delay in seconds (0 to 900); the queue's DelaySeconds when `None`. Refused
    /// on FIFO queues, whose delay is the queue's.
    pub delay_seconds: Option<u32>,
    /// Up to 10 message attributes.
    pub message_attributes: BTreeMap<String, MessageAttributeValue>,
    /// Message system attributes; SQS accepts only `AWSTraceHeader`.
    pub message_system_attributes: BTreeMap<String, MessageAttributeValue>,
    /// The message group: required on FIFO queues, where it orders delivery; on standard
    /// queues kept and returned as the `MessageGroupId` attribute (fair queues).
    pub message_group_id: Option<String>,
    /// FIFO queues only: the deduplication id (required unless the queue has
    /// ContentBasedDeduplication).
    pub message_deduplication_id: Option<String>,
}

impl OutgoingMessage {
    /// A message with `body` and nothing else.
    pub fn new(body: impl Into<String>) -> Self {
        OutgoingMessage {
            body: body.into(),
            ..Default::default()
        }
    }

    /// Sets the per-message delay.
    pub fn delay(mut self, seconds: u32) -> Self {
        self.delay_seconds = Some(seconds);
        self
    }

    /// Sets the message group (FIFO queues).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.message_group_id = Some(group.into());
        self
    }

    /// Sets the deduplication id (FIFO queues).
    pub fn dedup(mut self, id: impl Into<String>) -> Self {
        self.message_deduplication_id = Some(id.into());
        self
    }

    /// Adds a message attribute.
    pub fn attribute(mut self, name: impl Into<String>, value: MessageAttributeValue) -> Self {
        self.message_attributes.insert(name.into(), value);
        self
    }
}

/// What SendMessage returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The new message's id.
    pub message_id: String,
    /// MD5 of the body.
    pub md5_of_message_body: String,
    /// MD5 of the message attributes, when there are any.
    pub md5_of_message_attributes: Option<String>,
    /// MD5 of the message system attributes, when there are any.
    pub md5_of_message_system_attributes: Option<String>,
    /// FIFO queues only: the message's sequence number (for a duplicate, the original's).
    pub sequence_number: Option<String>,
}

/// One failed entry of a batch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFailure {
    /// The entry's id.
    pub id: String,
    /// The error code (`InvalidParameterValue`, `ReceiptHandleIsInvalid`, ...).
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// Whether the caller is at fault.
    pub sender_fault: bool,
}

/// What a batch operation returns: the entries that succeeded and those that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome<T> {
    /// Successful entries (their ids, with results for SendMessageBatch).
    pub successful: Vec<T>,
    /// Failed entries.
    pub failed: Vec<BatchFailure>,
}

/// Options of ReceiveMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// 1 to 10 (AWS default 1).
    pub max_messages: u32,
    /// Seconds the messages stay hidden (0 to 43200); the queue's VisibilityTimeout when `None`.
    pub visibility_timeout: Option<u32>,
    /// Long-poll wait (at most 20 s); the queue's ReceiveMessageWaitTimeSeconds when `None`.
    pub wait: Option<Duration>,
    /// Message system attributes to return (`All`, `SentTimestamp`, `ApproximateReceiveCount`, ...).
    pub system_attribute_names: Vec<String>,
    /// Message attributes to return (`All`, `.*`, `prefix.*` or exact names).
    pub message_attribute_names: Vec<String>,
    /// FIFO queues only: retrying a receive with the same id within 5 minutes returns the
    /// same messages (ignored on standard queues).
    pub receive_request_attempt_id: Option<String>,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            max_messages: 1,
            visibility_timeout: None,
            wait: None,
            system_attribute_names: Vec::new(),
            message_attribute_names: Vec::new(),
            receive_request_attempt_id: None,
        }
    }
}

impl ReceiveOptions {
    /// Up to `max` messages with every system and message attribute, as Lambda's pollers ask.
    pub fn all_attributes(max: u32) -> Self {
        ReceiveOptions {
            max_messages: max,
            system_attribute_names: vec!["All".to_string()],
            message_attribute_names: vec!["All".to_string()],
            ..Default::default()
        }
    }

    /// Sets the long-poll wait.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Sets the visibility timeout of the received messages.
    pub fn visibility_timeout(mut self, seconds: u32) -> Self {
        self.visibility_timeout = Some(seconds);
        self
    }
}

/// A message as ReceiveMessage returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message id (stable across receives).
    pub message_id: String,
    /// The handle of this receive; a new one on every receive.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// MD5 of the body.
    pub md5_of_body: String,
    /// The requested system attributes (`SentTimestamp`, `ApproximateReceiveCount`, ...).
    pub attributes: BTreeMap<String, String>,
    /// The requested message attributes.
    pub message_attributes: BTreeMap<String, MessageAttributeValue>,
    /// MD5 of the returned message attributes, when any are returned.
    pub md5_of_message_attributes: Option<String>,
}

/// Where a stored message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageState {
    /// Can be received.
    Visible,
    /// Waiting out its DelaySeconds.
    Delayed,
    /// Received and hidden until its visibility timeout passes.
    InFlight,
}

/// A stored message seen without receiving it (for `dlq list` and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSnapshot {
    /// The message id.
    pub message_id: String,
    /// The body.
    pub body: String,
    /// The message attributes.
    pub message_attributes: BTreeMap<String, MessageAttributeValue>,
    /// When it was sent (its original send, for messages moved to a DLQ).
    pub sent_at: DateTime<Utc>,
    /// How many times it has been received.
    pub receive_count: u32,
    /// Visible, delayed or in flight.
    pub state: MessageState,
    /// When a delayed or in-flight message becomes visible.
    pub visible_at: DateTime<Utc>,
    /// The ARN of the queue it was dead-lettered from, if it was.
    pub dead_letter_source_arn: Option<String>,
}

/// Counts and settings of one queue, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue name.
    pub name: String,
    /// The queue URL.
    pub url: String,
    /// The queue ARN.
    pub arn: String,
    /// ApproximateNumberOfMessages.
    pub visible: usize,
    /// Of the visible messages, those a receive could take now: all on a standard queue, on
    /// a FIFO queue those of groups with no message in flight.
    pub receivable: usize,
    /// ApproximateNumberOfMessagesNotVisible.
    pub in_flight: usize,
    /// ApproximateNumberOfMessagesDelayed.
    pub delayed: usize,
    /// When the oldest stored message was sent.
    pub oldest_sent_at: Option<DateTime<Utc>>,
    /// The dead-letter queue name and maxReceiveCount, when a RedrivePolicy is set.
    pub dead_letter_queue: Option<(String, u32)>,
    /// The queues whose RedrivePolicy points here.
    pub dead_letter_sources: Vec<String>,
}

/// The state of a message move task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveTaskStatus {
    /// Moving (never observed: this emulator moves at once).
    Running,
    /// Every message available when the task started was moved.
    Completed,
    /// Some messages could not be moved (see the failure reason).
    Failed,
}

impl MoveTaskStatus {
    /// The name AWS uses (`RUNNING`, `COMPLETED`, `FAILED`).
    pub fn as_str(&self) -> &'static str {
        match self {
            MoveTaskStatus::Running => "RUNNING",
            MoveTaskStatus::Completed => "COMPLETED",
            MoveTaskStatus::Failed => "FAILED",
        }
    }
}

/// A message move task (DLQ redrive), as ListMessageMoveTasks reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveTask {
    /// The handle StartMessageMoveTask returned.
    pub task_handle: String,
    /// Its state.
    pub status: MoveTaskStatus,
    /// The dead-letter queue the messages came from.
    pub source_arn: String,
    /// Where they went; `None` means each back to its own source queue.
    pub destination_arn: Option<String>,
    /// The rate asked for (the emulator moves at once regardless).
    pub max_number_of_messages_per_second: Option<u32>,
    /// How many were moved.
    pub moved: u64,
    /// How many were to be moved.
    pub to_move: u64,
    /// Why some could not be moved.
    pub failure_reason: Option<String>,
    /// When it started, in epoch milliseconds.
    pub started_ms: i64,
}

mod base64_opt {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            STANDARD
                .decode(t.as_bytes())
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}
