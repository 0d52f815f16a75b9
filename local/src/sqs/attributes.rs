//! Queue attributes: parsing and validating what CreateQueue and SetQueueAttributes accept,
//! with AWS's ranges, defaults and error codes, and the names GetQueueAttributes knows.

use std::collections::BTreeMap;

use super::error::SqsError;

/// Longest visibility timeout and ChangeMessageVisibility total: 12 hours.
pub const MAX_VISIBILITY_TIMEOUT: u32 = 43_200;
/// Longest delay: 15 minutes.
pub const MAX_DELAY_SECONDS: u32 = 900;
/// Longest long-poll wait: 20 seconds.
pub const MAX_WAIT_SECONDS: u32 = 20;
/// Largest message (body and attributes), and largest batch: 1 MiB.
pub const MAX_MESSAGE_SIZE: u32 = 1_048_576;
/// Smallest MaximumMessageSize.
pub const MIN_MESSAGE_SIZE: u32 = 1_024;
/// Retention bounds: 1 minute to 14 days, default 4 days.
pub const MIN_RETENTION: u32 = 60;
/// Longest retention: 14 days.
pub const MAX_RETENTION: u32 = 1_209_600;
/// Default retention: 4 days.
pub const DEFAULT_RETENTION: u32 = 345_600;
/// Default visibility timeout.
pub const DEFAULT_VISIBILITY_TIMEOUT: u32 = 30;

/// Attribute names GetQueueAttributes accepts (besides `All`).
pub const READABLE_ATTRIBUTES: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "DelaySeconds",
    "LastModifiedTimestamp",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "QueueArn",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Where a queue sends messages received more than `max_receive_count` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// The dead-letter queue's ARN.
    pub dead_letter_target_arn: String,
    /// Receives allowed before the move (1 to 1000).
    pub max_receive_count: u32,
}

impl RedrivePolicy {
    /// Parses the RedrivePolicy JSON; `maxReceiveCount` may be a number or a numeric string
    /// (CloudFormation passes strings).
    pub fn parse(text: &str) -> Result<Self, SqsError> {
        let invalid = |reason: &str| SqsError::invalid_value("RedrivePolicy", text, reason);
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| invalid("Redrive policy is not a valid JSON map."))?;
        let object = value
            .as_object()
            .ok_or_else(|| invalid("Redrive policy is not a valid JSON map."))?;
        let arn = object
            .get("deadLetterTargetArn")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
            })?;
        let count = match object.get("maxReceiveCount") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
            None => {
                return Err(invalid(
                    "Redrive policy does not contain mandatory attribute: maxReceiveCount.",
                ));
            }
            _ => None,
        }
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            invalid("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")
        })?;
        if let Some(extra) = object
            .keys()
            .find(|k| *k != "deadLetterTargetArn" && *k != "maxReceiveCount")
        {
            return Err(invalid(&format!(
                "Only following attributes are supported: [deadLetterTargetArn, maxReceiveCount], found {extra}."
            )));
        }
        Ok(RedrivePolicy {
            dead_letter_target_arn: arn.to_string(),
            max_receive_count: count as u32,
        })
    }

    /// The JSON GetQueueAttributes returns.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "deadLetterTargetArn": self.dead_letter_target_arn,
            "maxReceiveCount": self.max_receive_count,
        })
        .to_string()
    }
}

/// Most source queue ARNs a `byQueue` RedriveAllowPolicy may list.
pub const MAX_REDRIVE_SOURCE_ARNS: usize = 10;

/// Which source queues may name this queue as their dead-letter queue (`RedriveAllowPolicy`).
///
/// Rules from the `RedriveAllowPolicy` attribute in the SetQueueAttributes reference,
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html>:
/// `redrivePermission` is `allowAll` (the default), `denyAll` or `byQueue`; `sourceQueueArns`
/// may be given only with `byQueue`, up to 10 ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveAllowPolicy {
    /// Any queue of the account and region may use this queue as its dead-letter queue.
    AllowAll,
    /// No queue may.
    DenyAll,
    /// Only the queues with these ARNs may.
    ByQueue(Vec<String>),
}

impl RedriveAllowPolicy {
    /// Parses the attribute's JSON; `InvalidAttributeValue` naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, SqsError> {
        // AWS's exact wording for these refusals was not found in its documentation; the
        // shape follows its other attribute errors ("Value .. for parameter .. is invalid.").
        let invalid = |reason: &str| {
            SqsError::InvalidAttributeValue(format!(
                "Value {text} for parameter RedriveAllowPolicy is invalid. Reason: {reason}"
            ))
        };
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| invalid("Redrive allow policy is not a valid JSON map."))?;
        let object = value
            .as_object()
            .ok_or_else(|| invalid("Redrive allow policy is not a valid JSON map."))?;
        if let Some(extra) = object
            .keys()
            .find(|k| *k != "redrivePermission" && *k != "sourceQueueArns")
        {
            return Err(invalid(&format!(
                "Only following attributes are supported: [redrivePermission, sourceQueueArns], found {extra}."
            )));
        }
        // The documentation calls allowAll the default, so an absent permission means it.
        let permission = match object.get("redrivePermission") {
            None => "allowAll",
            Some(serde_json::Value::String(p)) => p.as_str(),
            Some(_) => {
                return Err(invalid(
                    "redrivePermission must be one of allowAll, denyAll or byQueue.",
                ));
            }
        };
        let arns = object.get("sourceQueueArns");
        match permission {
            "allowAll" | "denyAll" => {
                if arns.is_some() {
                    return Err(invalid(
                        "sourceQueueArns can be specified only when redrivePermission is byQueue.",
                    ));
                }
                Ok(if permission == "allowAll" {
                    RedriveAllowPolicy::AllowAll
                } else {
                    RedriveAllowPolicy::DenyAll
                })
            }
            "byQueue" => {
                let list = arns
                    .and_then(|a| a.as_array())
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        invalid("sourceQueueArns must be a non-empty list of queue ARNs when redrivePermission is byQueue.")
                    })?;
                if list.len() > MAX_REDRIVE_SOURCE_ARNS {
                    return Err(invalid(&format!(
                        "sourceQueueArns can list at most {MAX_REDRIVE_SOURCE_ARNS} queue ARNs, got {}; use allowAll for more.",
                        list.len()
                    )));
                }
                let mut out = Vec::with_capacity(list.len());
                for arn in list {
                    match arn.as_str() {
                        Some(arn) if arn.starts_with("arn:") && arn.split(':').count() == 6 => {
                            out.push(arn.to_string())
                        }
                        _ => {
                            return Err(invalid(&format!(
                                "sourceQueueArns entry {arn} is not a queue ARN."
                            )));
                        }
                    }
                }
                Ok(RedriveAllowPolicy::ByQueue(out))
            }
            other => Err(invalid(&format!(
                "redrivePermission must be one of allowAll, denyAll or byQueue, got {other}."
            ))),
        }
    }

    /// Whether the queue with ARN `source_arn` may use this queue as its dead-letter queue.
    pub fn allows(&self, source_arn: &str) -> bool {
        match self {
            RedriveAllowPolicy::AllowAll => true,
            RedriveAllowPolicy::DenyAll => false,
            RedriveAllowPolicy::ByQueue(arns) => arns.iter().any(|a| a == source_arn),
        }
    }

    /// The JSON GetQueueAttributes returns.
    pub fn to_json(&self) -> String {
        match self {
            RedriveAllowPolicy::AllowAll => serde_json::json!({"redrivePermission": "allowAll"}),
            RedriveAllowPolicy::DenyAll => serde_json::json!({"redrivePermission": "denyAll"}),
            RedriveAllowPolicy::ByQueue(arns) => {
                serde_json::json!({"redrivePermission": "byQueue", "sourceQueueArns": arns})
            }
        }
        .to_string()
    }
}

/// The scope of a FIFO queue's deduplication (`DeduplicationScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeduplicationScope {
    /// One deduplication id space for the whole queue (`queue`, the default).
    #[default]
    Queue,
    /// One per message group (`messageGroup`).
    MessageGroup,
}

/// A FIFO queue's throughput quota (`FifoThroughputLimit`); stored and shown, not enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FifoThroughputLimit {
    /// The quota applies to the queue (`perQueue`, the default).
    #[default]
    PerQueue,
    /// The quota applies to each message group (`perMessageGroupId`, high throughput).
    PerMessageGroupId,
}

/// The attributes only FIFO queues have, from the SetQueueAttributes reference,
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FifoConfig {
    /// ContentBasedDeduplication: a send without a MessageDeduplicationId is deduplicated on
    /// the SHA-256 of its body.
    pub content_based_deduplication: bool,
    /// DeduplicationScope.
    pub deduplication_scope: DeduplicationScope,
    /// FifoThroughputLimit.
    pub throughput_limit: FifoThroughputLimit,
}

/// The settable attributes of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// FIFO settings; `None` for a standard queue. Set only when the queue is created
    /// (`FifoQueue=true`, name ending in `.fifo`).
    pub fifo: Option<FifoConfig>,
    /// DelaySeconds.
    pub delay_seconds: u32,
    /// MaximumMessageSize.
    pub maximum_message_size: u32,
    /// MessageRetentionPeriod in seconds.
    pub message_retention_period: u32,
    /// ReceiveMessageWaitTimeSeconds.
    pub receive_message_wait_time_seconds: u32,
    /// VisibilityTimeout.
    pub visibility_timeout: u32,
    /// RedrivePolicy.
    pub redrive_policy: Option<RedrivePolicy>,
    /// RedriveAllowPolicy: checked when another queue names this one in its RedrivePolicy.
    pub redrive_allow_policy: Option<RedriveAllowPolicy>,
    /// Policy, kept as given (not enforced).
    pub policy: Option<String>,
    /// KmsMasterKeyId, kept as given (messages are not encrypted).
    pub kms_master_key_id: Option<String>,
    /// KmsDataKeyReusePeriodSeconds.
    pub kms_data_key_reuse_period_seconds: Option<u32>,
    /// SqsManagedSseEnabled (AWS's default for new queues is `true`).
    pub sqs_managed_sse_enabled: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            fifo: None,
            delay_seconds: 0,
            maximum_message_size: MAX_MESSAGE_SIZE,
            message_retention_period: DEFAULT_RETENTION,
            receive_message_wait_time_seconds: 0,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            redrive_policy: None,
            redrive_allow_policy: None,
            policy: None,
            kms_master_key_id: None,
            kms_data_key_reuse_period_seconds: None,
            sqs_managed_sse_enabled: true,
        }
    }
}

fn parse_u32(name: &str, value: &str, min: u32, max: u32) -> Result<u32, SqsError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            SqsError::InvalidAttributeValue(format!("Invalid value for the parameter {name}."))
        })
}

fn parse_bool(name: &str, value: &str) -> Result<bool, SqsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SqsError::InvalidAttributeValue(format!(
            "Invalid value for the parameter {name}."
        ))),
    }
}

impl QueueConfig {
    /// Applies `attributes` (CreateQueue when `creating`, else SetQueueAttributes), validating
    /// each against AWS's ranges. Nothing is changed when any attribute is invalid.
    pub fn apply(
        &mut self,
        attributes: &BTreeMap<String, String>,
        creating: bool,
    ) -> Result<(), SqsError> {
        let mut next = self.clone();
        // FifoQueue first: whether the FIFO-only attributes of the same request are known
        // depends on it, and the map's order would put ContentBasedDeduplication before it.
        if let Some(value) = attributes.get("FifoQueue") {
            if !creating {
                return Err(SqsError::InvalidAttributeName(
                    "Unknown Attribute FifoQueue. It can be set only when creating a queue."
                        .to_string(),
                ));
            }
            next.fifo = parse_bool("FifoQueue", value)?.then(FifoConfig::default);
        }
        for (name, value) in attributes {
            match name.as_str() {
                "DelaySeconds" => {
                    next.delay_seconds = parse_u32(name, value, 0, MAX_DELAY_SECONDS)?
                }
                "MaximumMessageSize" => {
                    next.maximum_message_size =
                        parse_u32(name, value, MIN_MESSAGE_SIZE, MAX_MESSAGE_SIZE)?
                }
                "MessageRetentionPeriod" => {
                    next.message_retention_period =
                        parse_u32(name, value, MIN_RETENTION, MAX_RETENTION)?
                }
                "ReceiveMessageWaitTimeSeconds" => {
                    next.receive_message_wait_time_seconds =
                        parse_u32(name, value, 0, MAX_WAIT_SECONDS)?
                }
                "VisibilityTimeout" => {
                    next.visibility_timeout = parse_u32(name, value, 0, MAX_VISIBILITY_TIMEOUT)?
                }
                "RedrivePolicy" => {
                    next.redrive_policy = if value.trim().is_empty() {
                        None
                    } else {
                        Some(RedrivePolicy::parse(value)?)
                    }
                }
                "RedriveAllowPolicy" => {
                    next.redrive_allow_policy = if value.trim().is_empty() {
                        None
                    } else {
                        Some(RedriveAllowPolicy::parse(value)?)
                    }
                }
                "Policy" => next.policy = non_empty(value),
                "KmsMasterKeyId" => next.kms_master_key_id = non_empty(value),
                "KmsDataKeyReusePeriodSeconds" => {
                    next.kms_data_key_reuse_period_seconds =
                        Some(parse_u32(name, value, 60, 86_400)?)
                }
                "SqsManagedSseEnabled" => next.sqs_managed_sse_enabled = parse_bool(name, value)?,
                "FifoQueue" => {}
                "ContentBasedDeduplication" | "DeduplicationScope" | "FifoThroughputLimit" => {
                    // On a standard queue these names are unknown, as AWS answers them.
                    let Some(fifo) = next.fifo.as_mut() else {
                        return Err(SqsError::InvalidAttributeName(format!(
                            "Unknown Attribute {name}."
                        )));
                    };
                    match name.as_str() {
                        "ContentBasedDeduplication" => {
                            fifo.content_based_deduplication = parse_bool(name, value)?
                        }
                        "DeduplicationScope" => {
                            fifo.deduplication_scope = match value.as_str() {
                                "queue" => DeduplicationScope::Queue,
                                "messageGroup" => DeduplicationScope::MessageGroup,
                                _ => return Err(invalid_attribute(name)),
                            }
                        }
                        _ => {
                            fifo.throughput_limit = match value.as_str() {
                                "perQueue" => FifoThroughputLimit::PerQueue,
                                "perMessageGroupId" => FifoThroughputLimit::PerMessageGroupId,
                                _ => return Err(invalid_attribute(name)),
                            }
                        }
                    }
                }
                _ => {
                    return Err(SqsError::InvalidAttributeName(format!(
                        "Unknown Attribute {name}."
                    )));
                }
            }
        }
        // "The perMessageGroupId value is allowed only when the value for DeduplicationScope
        // is messageGroup" (SetQueueAttributes reference, FifoThroughputLimit).
        if let Some(fifo) = &next.fifo
            && fifo.throughput_limit == FifoThroughputLimit::PerMessageGroupId
            && fifo.deduplication_scope != DeduplicationScope::MessageGroup
        {
            return Err(SqsError::InvalidAttributeValue(
                "Invalid value for the parameter FifoThroughputLimit. Reason: The perMessageGroupId value is allowed only when the value for DeduplicationScope is messageGroup.".to_string(),
            ));
        }
        *self = next;
        Ok(())
    }

    /// Whether this is a FIFO queue.
    pub fn is_fifo(&self) -> bool {
        self.fifo.is_some()
    }

    /// The value of settable attribute `name` as GetQueueAttributes shows it, `None` when unset.
    pub fn get(&self, name: &str) -> Option<String> {
        match name {
            "DelaySeconds" => Some(self.delay_seconds.to_string()),
            "MaximumMessageSize" => Some(self.maximum_message_size.to_string()),
            "MessageRetentionPeriod" => Some(self.message_retention_period.to_string()),
            "ReceiveMessageWaitTimeSeconds" => {
                Some(self.receive_message_wait_time_seconds.to_string())
            }
            "VisibilityTimeout" => Some(self.visibility_timeout.to_string()),
            "RedrivePolicy" => self.redrive_policy.as_ref().map(RedrivePolicy::to_json),
            "RedriveAllowPolicy" => self
                .redrive_allow_policy
                .as_ref()
                .map(RedriveAllowPolicy::to_json),
            "Policy" => self.policy.clone(),
            "KmsMasterKeyId" => self.kms_master_key_id.clone(),
            "KmsDataKeyReusePeriodSeconds" => self
                .kms_data_key_reuse_period_seconds
                .map(|v| v.to_string()),
            "SqsManagedSseEnabled" => Some(self.sqs_managed_sse_enabled.to_string()),
            "FifoQueue" => self.fifo.map(|_| "true".to_string()),
            "ContentBasedDeduplication" => {
                self.fifo.map(|f| f.content_based_deduplication.to_string())
            }
            "DeduplicationScope" => self.fifo.map(|f| {
                match f.deduplication_scope {
                    DeduplicationScope::Queue => "queue",
                    DeduplicationScope::MessageGroup => "messageGroup",
                }
                .to_string()
            }),
            "FifoThroughputLimit" => self.fifo.map(|f| {
                match f.throughput_limit {
                    FifoThroughputLimit::PerQueue => "perQueue",
                    FifoThroughputLimit::PerMessageGroupId => "perMessageGroupId",
                }
                .to_string()
            }),
            _ => None,
        }
    }

    /// Every set attribute, normalized; what the journal stores and replays through [`Self::apply`].
    pub fn to_map(&self) -> BTreeMap<String, String> {
        const SETTABLE: &[&str] = &[
            "DelaySeconds",
            "MaximumMessageSize",
            "MessageRetentionPeriod",
            "ReceiveMessageWaitTimeSeconds",
            "VisibilityTimeout",
            "RedrivePolicy",
            "RedriveAllowPolicy",
            "Policy",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
            "SqsManagedSseEnabled",
            "FifoQueue",
            "ContentBasedDeduplication",
            "DeduplicationScope",
            "FifoThroughputLimit",
        ];
        SETTABLE
            .iter()
            .filter_map(|name| self.get(name).map(|v| (name.to_string(), v)))
            .collect()
    }

    /// The first attribute in `requested` whose value differs from this queue's, for
    /// CreateQueue on an existing name. `requested` must already be valid.
    pub fn first_difference(&self, requested: &BTreeMap<String, String>) -> Option<String> {
        let mut wanted = self.clone();
        // Validated by the caller; a failure here means "different".
        if wanted.apply(requested, true).is_err() {
            return requested.keys().next().cloned();
        }
        requested
            .keys()
            .find(|name| wanted.get(name) != self.get(name))
            .cloned()
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// Checks a queue name: 1 to 80 alphanumerics, `-` and `_`, and for a FIFO queue (only)
/// the `.fifo` suffix counted in the 80, as the CreateQueue reference states,
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html>.
pub fn validate_queue_name(name: &str, fifo: bool) -> Result<(), SqsError> {
    let base = if fifo {
        name.strip_suffix(".fifo")
    } else {
        Some(name)
    };
    let valid = base.is_some_and(|base| {
        !base.is_empty()
            && name.len() <= 80
            && base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    match (valid, fifo) {
        (true, _) => Ok(()),
        (false, false) => Err(SqsError::InvalidParameterValue(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
                .to_string(),
        )),
        (false, true) => Err(SqsError::InvalidParameterValue(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
                .to_string(),
        )),
    }
}

fn invalid_attribute(name: &str) -> SqsError {
    SqsError::InvalidAttributeValue(format!("Invalid value for the parameter {name}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_aws() {
        let config = QueueConfig::default();
        assert_eq!(config.get("VisibilityTimeout").unwrap(), "30");
        assert_eq!(config.get("MessageRetentionPeriod").unwrap(), "345600");
        assert_eq!(config.get("MaximumMessageSize").unwrap(), "1048576");
        assert_eq!(config.get("RedrivePolicy"), None);
    }

    #[test]
    fn ranges_are_enforced_and_invalid_changes_nothing() {
        let mut config = QueueConfig::default();
        for (name, bad) in [
            ("VisibilityTimeout", "43201"),
            ("DelaySeconds", "901"),
            ("MessageRetentionPeriod", "59"),
            ("MaximumMessageSize", "1048577"),
            ("ReceiveMessageWaitTimeSeconds", "21"),
            ("VisibilityTimeout", "abc"),
        ] {
            let err = config
                .apply(&map(&[("DelaySeconds", "5"), (name, bad)]), true)
                .unwrap_err();
            assert!(
                matches!(err, SqsError::InvalidAttributeValue(_)),
                "{name}={bad}: {err:?}"
            );
        }
        assert_eq!(config, QueueConfig::default());
        config
            .apply(&map(&[("VisibilityTimeout", "43200")]), true)
            .unwrap();
        assert_eq!(config.visibility_timeout, 43_200);
        assert!(matches!(
            config.apply(&map(&[("Colour", "blue")]), true),
            Err(SqsError::InvalidAttributeName(_))
        ));
    }

    #[test]
    fn fifo_attributes_and_names() {
        let mut config = QueueConfig::default();
        config
            .apply(
                &map(&[
                    ("ContentBasedDeduplication", "true"),
                    ("FifoQueue", "true"),
                    ("DeduplicationScope", "messageGroup"),
                    ("FifoThroughputLimit", "perMessageGroupId"),
                ]),
                true,
            )
            .unwrap();
        assert!(config.is_fifo());
        assert_eq!(config.get("FifoQueue").as_deref(), Some("true"));
        assert_eq!(
            config.get("DeduplicationScope").as_deref(),
            Some("messageGroup")
        );
        // The journal's map replays to the same configuration.
        let mut replayed = QueueConfig::default();
        replayed.apply(&config.to_map(), true).unwrap();
        assert_eq!(replayed, config);
        // Set later, FifoQueue is refused; the others change.
        assert!(matches!(
            config.apply(&map(&[("FifoQueue", "true")]), false),
            Err(SqsError::InvalidAttributeName(_))
        ));
        config
            .apply(&map(&[("ContentBasedDeduplication", "false")]), false)
            .unwrap();
        assert!(!config.fifo.unwrap().content_based_deduplication);
        // perMessageGroupId needs messageGroup deduplication.
        let err = QueueConfig::default()
            .apply(
                &map(&[
                    ("FifoQueue", "true"),
                    ("FifoThroughputLimit", "perMessageGroupId"),
                ]),
                true,
            )
            .unwrap_err();
        assert!(err.to_string().contains("allowed only when"), "{err}");
        for bad in [
            ("DeduplicationScope", "group"),
            ("FifoThroughputLimit", "fast"),
        ] {
            let err = QueueConfig::default()
                .apply(&map(&[("FifoQueue", "true"), bad]), true)
                .unwrap_err();
            assert!(matches!(err, SqsError::InvalidAttributeValue(_)), "{bad:?}");
        }
        // A standard queue does not know them.
        let err = QueueConfig::default()
            .apply(&map(&[("ContentBasedDeduplication", "true")]), true)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unknown Attribute ContentBasedDeduplication."
        );
        let mut standard = QueueConfig::default();
        standard
            .apply(&map(&[("FifoQueue", "false")]), true)
            .unwrap();
        assert!(!standard.is_fifo());

        assert!(validate_queue_name("jobs.fifo", true).is_ok());
        assert!(validate_queue_name(&format!("{}.fifo", "a".repeat(75)), true).is_ok());
        assert!(validate_queue_name(&format!("{}.fifo", "a".repeat(76)), true).is_err());
        assert!(validate_queue_name("jobs", true).is_err());
        assert!(validate_queue_name(".fifo", true).is_err());
        assert!(validate_queue_name("jobs.fifo", false).is_err());
        assert!(validate_queue_name("jobs-dlq_1", false).is_ok());
        assert!(validate_queue_name("", false).is_err());
        assert!(validate_queue_name(&"a".repeat(81), false).is_err());
        assert!(validate_queue_name("a b", false).is_err());
    }

    #[test]
    fn redrive_policy_accepts_numbers_and_strings() {
        let arn = "arn:aws:sqs:us-east-1:000000000000:dlq";
        let a = RedrivePolicy::parse(&format!(
            r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":5}}"#
        ))
        .unwrap();
        let b = RedrivePolicy::parse(&format!(
            r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"5"}}"#
        ))
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.max_receive_count, 5);
        assert_eq!(
            a.to_json(),
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":5}}"#)
        );
        for bad in [
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":0}}"#),
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":1001}}"#),
            format!(r#"{{"deadLetterTargetArn":"{arn}"}}"#),
            r#"{"maxReceiveCount":3}"#.to_string(),
            "not json".to_string(),
        ] {
            assert!(
                matches!(
                    RedrivePolicy::parse(&bad),
                    Err(SqsError::InvalidParameterValue(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn differences_are_found_on_requested_attributes_only() {
        let mut config = QueueConfig::default();
        config
            .apply(&map(&[("VisibilityTimeout", "60")]), true)
            .unwrap();
        assert_eq!(
            config.first_difference(&map(&[("VisibilityTimeout", "60")])),
            None
        );
        assert_eq!(config.first_difference(&map(&[])), None);
        assert_eq!(
            config
                .first_difference(&map(&[("VisibilityTimeout", "30")]))
                .as_deref(),
            Some("VisibilityTimeout")
        );
    }

    #[test]
    fn redrive_allow_policy_rules() {
        let source = "arn:aws:sqs:us-east-1:000000000000:source";
        let by_queue = RedriveAllowPolicy::parse(&format!(
            r#"{{"redrivePermission":"byQueue","sourceQueueArns":["{source}"]}}"#
        ))
        .unwrap();
        assert!(by_queue.allows(source));
        assert!(!by_queue.allows("arn:aws:sqs:us-east-1:000000000000:other"));
        assert_eq!(
            RedriveAllowPolicy::parse(&by_queue.to_json()).unwrap(),
            by_queue
        );
        let deny = RedriveAllowPolicy::parse(r#"{"redrivePermission":"denyAll"}"#).unwrap();
        assert!(!deny.allows(source));
        let allow = RedriveAllowPolicy::parse(r#"{"redrivePermission":"allowAll"}"#).unwrap();
        assert!(allow.allows(source));
        assert_eq!(
            RedriveAllowPolicy::parse("{}").unwrap(),
            RedriveAllowPolicy::AllowAll
        );

        let eleven: Vec<String> = (0..11)
            .map(|i| format!("\"arn:aws:sqs:us-east-1:000000000000:q{i}\""))
            .collect();
        for (bad, why) in [
            ("not json", "not a valid JSON map"),
            ("[1]", "not a valid JSON map"),
            (r#"{"redrivePermission":"allowSome"}"#, "got allowSome"),
            (r#"{"redrivePermission":true}"#, "must be one of"),
            (
                r#"{"redrivePermission":"denyAll","sourceQueueArns":["arn:aws:sqs:us-east-1:0:q"]}"#,
                "only when redrivePermission is byQueue",
            ),
            (r#"{"redrivePermission":"byQueue"}"#, "non-empty list"),
            (
                r#"{"redrivePermission":"byQueue","sourceQueueArns":[]}"#,
                "non-empty list",
            ),
            (
                r#"{"redrivePermission":"byQueue","sourceQueueArns":["q"]}"#,
                "entry \"q\" is not a queue ARN",
            ),
            (
                &format!(
                    r#"{{"redrivePermission":"byQueue","sourceQueueArns":[{}]}}"#,
                    eleven.join(",")
                ),
                "at most 10 queue ARNs, got 11",
            ),
            (r#"{"redrivePermission":"allowAll","x":1}"#, "found x"),
        ] {
            let err = RedriveAllowPolicy::parse(bad).unwrap_err();
            assert!(
                matches!(err, SqsError::InvalidAttributeValue(_)),
                "{bad}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains("parameter RedriveAllowPolicy") && message.contains(why),
                "{bad}: {message}"
            );
        }

        // Through the attribute map: validated, normalized, removable with an empty value.
        let mut config = QueueConfig::default();
        config
            .apply(
                &map(&[(
                    "RedriveAllowPolicy",
                    r#"{ "redrivePermission" : "denyAll" }"#,
                )]),
                true,
            )
            .unwrap();
        assert_eq!(
            config.get("RedriveAllowPolicy").unwrap(),
            r#"{"redrivePermission":"denyAll"}"#
        );
        assert!(
            config
                .apply(&map(&[("RedriveAllowPolicy", "{")]), false)
                .is_err()
        );
        config
            .apply(&map(&[("RedriveAllowPolicy", "")]), false)
            .unwrap();
        assert_eq!(config.get("RedriveAllowPolicy"), None);
    }
}
