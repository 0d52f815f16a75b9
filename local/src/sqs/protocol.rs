//! The SQS AWS JSON 1.0 protocol: request and response shapes of each operation, and
//! [`dispatch`], which decodes a request, runs it on the engine and encodes the answer.
//! Field names are the ones `aws-sdk-sqs` and botocore send and expect.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use nightshift_contract::record::TRACE_HEADER_ATTRIBUTE;

use super::engine::SqsEngine;
use super::error::SqsError;
use super::model::{
    BatchFailure, BatchOutcome, MessageAttributeValue, OutgoingMessage, ReceiveOptions,
    ReceivedMessage, SendReceipt,
};

/// The operations this endpoint serves (`X-Amz-Target: AmazonSQS.<name>`).
pub const OPERATIONS: &[&str] = &[
    "CreateQueue",
    "DeleteQueue",
    "PurgeQueue",
    "GetQueueUrl",
    "ListQueues",
    "GetQueueAttributes",
    "SetQueueAttributes",
    "TagQueue",
    "UntagQueue",
    "ListQueueTags",
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "ListDeadLetterSourceQueues",
    "StartMessageMoveTask",
    "ListMessageMoveTasks",
    "CancelMessageMoveTask",
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WireAttribute {
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
    string_list_values: Option<Vec<String>>,
    binary_list_values: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateQueueRequest {
    queue_name: Option<String>,
    attributes: BTreeMap<String, String>,
    #[serde(rename = "tags")]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct QueueUrlRequest {
    queue_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct GetQueueUrlRequest {
    queue_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListQueuesRequest {
    queue_name_prefix: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct GetQueueAttributesRequest {
    queue_url: Option<String>,
    attribute_names: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SetQueueAttributesRequest {
    queue_url: Option<String>,
    attributes: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TagQueueRequest {
    queue_url: Option<String>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AddPermissionRequest {
    queue_url: Option<String>,
    label: Option<String>,
    #[serde(rename = "AWSAccountIds")]
    aws_account_ids: Vec<String>,
    actions: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RemovePermissionRequest {
    queue_url: Option<String>,
    label: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UntagQueueRequest {
    queue_url: Option<String>,
    tag_keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MessageFields {
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    message_attributes: BTreeMap<String, WireAttribute>,
    message_system_attributes: BTreeMap<String, WireAttribute>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SendMessageRequest {
    queue_url: Option<String>,
    #[serde(flatten)]
    message: MessageFields,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SendEntry {
    id: String,
    #[serde(flatten)]
    message: MessageFields,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SendMessageBatchRequest {
    queue_url: Option<String>,
    entries: Vec<SendEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ReceiveMessageRequest {
    queue_url: Option<String>,
    attribute_names: Vec<String>,
    message_system_attribute_names: Vec<String>,
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    receive_request_attempt_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DeleteMessageRequest {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DeleteEntry {
    id: String,
    receipt_handle: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DeleteMessageBatchRequest {
    queue_url: Option<String>,
    entries: Vec<DeleteEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ChangeVisibilityRequest {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ChangeVisibilityEntry {
    id: String,
    receipt_handle: String,
    visibility_timeout: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ChangeVisibilityBatchRequest {
    queue_url: Option<String>,
    entries: Vec<ChangeVisibilityEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListDeadLetterSourceQueuesRequest {
    queue_url: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartMessageMoveTaskRequest {
    source_arn: Option<String>,
    destination_arn: Option<String>,
    max_number_of_messages_per_second: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListMessageMoveTasksRequest {
    source_arn: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CancelMessageMoveTaskRequest {
    task_handle: Option<String>,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SqsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| SqsError::Serialization(format!("Could not parse the request: {e}")))
}

fn required(value: Option<String>, name: &str) -> Result<String, SqsError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| {
        SqsError::MissingParameter(format!("The request must contain the parameter {name}."))
    })
}

fn seconds(
    value: Option<i64>,
    name: &str,
    max: i64,
    reason: &str,
) -> Result<Option<u32>, SqsError> {
    match value {
        None => Ok(None),
        Some(v) if (0..=max).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(SqsError::invalid_value(name, v, reason)),
    }
}

fn attribute(name: &str, wire: WireAttribute) -> Result<MessageAttributeValue, SqsError> {
    if wire
        .string_list_values
        .as_ref()
        .is_some_and(|v| !v.is_empty())
        || wire
            .binary_list_values
            .as_ref()
            .is_some_and(|v| !v.is_empty())
    {
        return Err(SqsError::InvalidParameterValue(format!(
            "Message attribute '{name}': StringListValues and BinaryListValues are reserved and not supported."
        )));
    }
    let binary_value = wire
        .binary_value
        .map(|b| STANDARD.decode(b.as_bytes()))
        .transpose()
        .map_err(|_| {
            SqsError::InvalidParameterValue(format!(
                "Message attribute '{name}': BinaryValue is not valid base64."
            ))
        })?;
    Ok(MessageAttributeValue {
        data_type: wire.data_type.ok_or_else(|| {
            SqsError::InvalidParameterValue(format!(
                "The message attribute '{name}' must contain a DataType."
            ))
        })?,
        string_value: wire.string_value,
        binary_value,
    })
}

fn outgoing(fields: MessageFields) -> Result<OutgoingMessage, SqsError> {
    let delay_seconds = match fields.delay_seconds {
        None => None,
        Some(d) if (0..=900).contains(&d) => Some(d as u32),
        Some(d) => {
            return Err(SqsError::invalid_value(
                "DelaySeconds",
                d,
                "DelaySeconds must be >= 0 and <= 900.",
            ));
        }
    };
    let convert = |map: BTreeMap<String, WireAttribute>| -> Result<BTreeMap<_, _>, SqsError> {
        map.into_iter()
            .map(|(k, v)| attribute(&k, v).map(|a| (k, a)))
            .collect()
    };
    Ok(OutgoingMessage {
        body: fields.message_body.unwrap_or_default(),
        delay_seconds,
        message_attributes: convert(fields.message_attributes)?,
        message_system_attributes: convert(fields.message_system_attributes)?,
        message_group_id: fields.message_group_id,
        message_deduplication_id: fields.message_deduplication_id,
    })
}

fn attribute_json(value: &MessageAttributeValue) -> Value {
    let mut out = Map::new();
    out.insert("DataType".into(), json!(value.data_type));
    if let Some(s) = &value.string_value {
        out.insert("StringValue".into(), json!(s));
    }
    if let Some(b) = &value.binary_value {
        out.insert("BinaryValue".into(), json!(STANDARD.encode(b)));
    }
    Value::Object(out)
}

fn message_json(message: &ReceivedMessage) -> Value {
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(message.message_id));
    out.insert("ReceiptHandle".into(), json!(message.receipt_handle));
    out.insert("MD5OfBody".into(), json!(message.md5_of_body));
    out.insert("Body".into(), json!(message.body));
    if !message.attributes.is_empty() {
        out.insert("Attributes".into(), json!(message.attributes));
    }
    if !message.message_attributes.is_empty() {
        let attributes: Map<String, Value> = message
            .message_attributes
            .iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect();
        out.insert("MessageAttributes".into(), Value::Object(attributes));
    }
    if let Some(md5) = &message.md5_of_message_attributes {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    Value::Object(out)
}

/// Puts the request's trace header on `message` as its `AWSTraceHeader` unless it carries
/// one; true if it did. The checksum of system attributes the client did not send is then
/// left out of the answer: the client has nothing to compare it with.
fn carry_trace(message: &mut OutgoingMessage, trace_header: Option<&str>) -> bool {
    let Some(header) = trace_header.filter(|h| !h.is_empty()) else {
        return false;
    };
    if message
        .message_system_attributes
        .contains_key(TRACE_HEADER_ATTRIBUTE)
    {
        return false;
    }
    message.message_system_attributes.insert(
        TRACE_HEADER_ATTRIBUTE.to_owned(),
        MessageAttributeValue {
            data_type: "String".to_owned(),
            string_value: Some(header.to_owned()),
            binary_value: None,
        },
    );
    true
}

fn send_receipt_json(receipt: &SendReceipt, id: Option<&str>) -> Value {
    let mut out = Map::new();
    if let Some(id) = id {
        out.insert("Id".into(), json!(id));
    }
    out.insert("MessageId".into(), json!(receipt.message_id));
    out.insert(
        "MD5OfMessageBody".into(),
        json!(receipt.md5_of_message_body),
    );
    if let Some(md5) = &receipt.md5_of_message_attributes {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    if let Some(md5) = &receipt.md5_of_message_system_attributes {
        out.insert("MD5OfMessageSystemAttributes".into(), json!(md5));
    }
    if let Some(sequence) = &receipt.sequence_number {
        out.insert("SequenceNumber".into(), json!(sequence));
    }
    Value::Object(out)
}

fn failures_json(failures: &[BatchFailure]) -> Value {
    Value::Array(
        failures
            .iter()
            .map(|f| json!({"Id": f.id, "SenderFault": f.sender_fault, "Code": f.code, "Message": f.message}))
            .collect(),
    )
}

fn batch_json(ok: Vec<Value>, failed: &[BatchFailure]) -> Value {
    json!({"Successful": ok, "Failed": failures_json(failed)})
}

fn batch_ids_json(outcome: BatchOutcome<String>) -> Value {
    let ok = outcome
        .successful
        .into_iter()
        .map(|id| json!({"Id": id}))
        .collect();
    batch_json(ok, &outcome.failed)
}

/// Splits `items` into a page per ListQueues' rules: without `max_results` everything up to
/// 1000 and no token; with it (1 to 1000) a page and a token when more remain.
fn paginate(
    items: Vec<String>,
    max_results: Option<i64>,
    token: Option<String>,
) -> Result<(Vec<String>, Option<String>), SqsError> {
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => {
            let invalid =
                || SqsError::InvalidParameterValue("Invalid NextToken value.".to_string());
            let bytes = URL_SAFE_NO_PAD
                .decode(token.as_bytes())
                .map_err(|_| invalid())?;
            let after = String::from_utf8(bytes).map_err(|_| invalid())?;
            items.iter().position(|i| *i > after).unwrap_or(items.len())
        }
    };
    let page_size = match max_results {
        None => 1000,
        Some(m) if (1..=1000).contains(&m) => m as usize,
        Some(m) => {
            return Err(SqsError::invalid_value(
                "MaxResults",
                m,
                "Must be between 1 and 1000.",
            ));
        }
    };
    let rest = &items[start..];
    let page: Vec<String> = rest.iter().take(page_size).cloned().collect();
    let next = (max_results.is_some() && rest.len() > page.len())
        .then(|| {
            page.last()
                .map(|last| URL_SAFE_NO_PAD.encode(last.as_bytes()))
        })
        .flatten();
    Ok((page, next))
}

fn urls_json(key: &str, urls: Vec<String>, next: Option<String>) -> Value {
    let mut out = Map::new();
    if !urls.is_empty() {
        out.insert(key.into(), json!(urls));
    }
    if let Some(next) = next {
        out.insert("NextToken".into(), json!(next));
    }
    Value::Object(out)
}

/// Runs operation `operation` (the part of `X-Amz-Target` after `AmazonSQS.`) with the JSON
/// `body`, returning the response document.
pub async fn dispatch(engine: &SqsEngine, operation: &str, body: &[u8]) -> Result<Value, SqsError> {
    dispatch_traced(engine, operation, body, None).await
}

/// [`dispatch`] of a request that came with an `X-Amzn-Trace-Id` HTTP header: SendMessage and
/// SendMessageBatch put it on each message that has no `AWSTraceHeader` system attribute of
/// its own ("The default trace header is carried by X-Amzn-Trace-Id and corresponds to all
/// messages included in a SendMessage or SendMessageBatch request"; "If both headers are
/// set, the message system attribute overrides the HTTP trace header",
/// <https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>).
pub async fn dispatch_traced(
    engine: &SqsEngine,
    operation: &str,
    body: &[u8],
    trace_header: Option<&str>,
) -> Result<Value, SqsError> {
    match operation {
        "CreateQueue" => {
            let r: CreateQueueRequest = parse(body)?;
            let name = required(r.queue_name, "QueueName")?;
            let url = engine.create_queue(&name, &r.attributes, &r.tags)?;
            Ok(json!({"QueueUrl": url}))
        }
        "DeleteQueue" => {
            let r: QueueUrlRequest = parse(body)?;
            engine.delete_queue(&required(r.queue_url, "QueueUrl")?)?;
            Ok(json!({}))
        }
        "PurgeQueue" => {
            let r: QueueUrlRequest = parse(body)?;
            engine.purge_queue(&required(r.queue_url, "QueueUrl")?)?;
            Ok(json!({}))
        }
        "GetQueueUrl" => {
            let r: GetQueueUrlRequest = parse(body)?;
            let url = engine.get_queue_url(&required(r.queue_name, "QueueName")?)?;
            Ok(json!({"QueueUrl": url}))
        }
        "ListQueues" => {
            let r: ListQueuesRequest = parse(body)?;
            let names = engine.queue_names(r.queue_name_prefix.as_deref());
            let (page, next) = paginate(names, r.max_results, r.next_token)?;
            let urls = page.iter().map(|n| engine.url_for(n)).collect();
            Ok(urls_json("QueueUrls", urls, next))
        }
        "GetQueueAttributes" => {
            let r: GetQueueAttributesRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let attributes = engine.get_queue_attributes(&url, &r.attribute_names)?;
            Ok(if attributes.is_empty() {
                json!({})
            } else {
                json!({"Attributes": attributes})
            })
        }
        "SetQueueAttributes" => {
            let r: SetQueueAttributesRequest = parse(body)?;
            engine.set_queue_attributes(&required(r.queue_url, "QueueUrl")?, &r.attributes)?;
            Ok(json!({}))
        }
        "TagQueue" => {
            let r: TagQueueRequest = parse(body)?;
            engine.tag_queue(&required(r.queue_url, "QueueUrl")?, &r.tags)?;
            Ok(json!({}))
        }
        "UntagQueue" => {
            let r: UntagQueueRequest = parse(body)?;
            engine.untag_queue(&required(r.queue_url, "QueueUrl")?, &r.tag_keys)?;
            Ok(json!({}))
        }
        "AddPermission" => {
            let r: AddPermissionRequest = parse(body)?;
            engine.add_permission(
                &required(r.queue_url, "QueueUrl")?,
                r.label.as_deref().unwrap_or(""),
                &r.aws_account_ids,
                &r.actions,
            )?;
            Ok(json!({}))
        }
        "RemovePermission" => {
            let r: RemovePermissionRequest = parse(body)?;
            engine.remove_permission(
                &required(r.queue_url, "QueueUrl")?,
                &required(r.label, "Label")?,
            )?;
            Ok(json!({}))
        }
        "ListQueueTags" => {
            let r: QueueUrlRequest = parse(body)?;
            let tags = engine.list_queue_tags(&required(r.queue_url, "QueueUrl")?)?;
            Ok(if tags.is_empty() {
                json!({})
            } else {
                json!({"Tags": tags})
            })
        }
        "SendMessage" => {
            let r: SendMessageRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let mut message = outgoing(r.message)?;
            let from_header = carry_trace(&mut message, trace_header);
            let mut receipt = engine.send_message(&url, message)?;
            if from_header {
                receipt.md5_of_message_system_attributes = None;
            }
            Ok(send_receipt_json(&receipt, None))
        }
        "SendMessageBatch" => {
            let r: SendMessageBatchRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let mut entries = Vec::with_capacity(r.entries.len());
            let mut early_failures = Vec::new();
            let mut traced_by_header = Vec::new();
            for entry in r.entries {
                let id = entry.id;
                match outgoing(entry.message) {
                    Ok(mut message) => {
                        if carry_trace(&mut message, trace_header) {
                            traced_by_header.push(id.clone());
                        }
                        entries.push((id, message));
                    }
                    // A malformed entry fails alone; its id still counts for the batch checks.
                    Err(err) => {
                        early_failures.push(BatchFailure {
                            id: id.clone(),
                            code: err.batch_entry_code().to_string(),
                            message: err.aws_message(),
                            sender_fault: true,
                        });
                        entries.push((id, OutgoingMessage::default()));
                    }
                }
            }
            let early_ids: Vec<String> = early_failures.iter().map(|f| f.id.clone()).collect();
            // Entries that failed to decode are sent as empty messages only to run the
            // batch-level checks; their own failure replaces the engine's verdict.
            let mut outcome = engine.send_message_batch(&url, entries)?;
            outcome.failed.retain(|f| !early_ids.contains(&f.id));
            outcome.failed.extend(early_failures);
            for (id, receipt) in &mut outcome.successful {
                if traced_by_header.contains(id) {
                    receipt.md5_of_message_system_attributes = None;
                }
            }
            let ok = outcome
                .successful
                .iter()
                .map(|(id, r)| send_receipt_json(r, Some(id)))
                .collect();
            Ok(batch_json(ok, &outcome.failed))
        }
        "ReceiveMessage" => {
            let r: ReceiveMessageRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let max_messages = match r.max_number_of_messages {
                None => 1,
                Some(n) if (1..=10).contains(&n) => n as u32,
                Some(n) => {
                    return Err(SqsError::invalid_value(
                        "MaxNumberOfMessages",
                        n,
                        "Must be between 1 and 10, if provided.",
                    ));
                }
            };
            let visibility_timeout = seconds(
                r.visibility_timeout,
                "VisibilityTimeout",
                43_200,
                "Must be between 0 and 43200, if provided.",
            )?;
            let wait = seconds(
                r.wait_time_seconds,
                "WaitTimeSeconds",
                20,
                "Must be >= 0 and <= 20, if provided.",
            )?
            .map(|s| Duration::from_secs(u64::from(s)));
            let mut system_attribute_names = r.attribute_names;
            system_attribute_names.extend(r.message_system_attribute_names);
            let options = ReceiveOptions {
                max_messages,
                visibility_timeout,
                wait,
                system_attribute_names,
                message_attribute_names: r.message_attribute_names,
                receive_request_attempt_id: r.receive_request_attempt_id,
            };
            let messages = engine.receive_message(&url, &options).await?;
            Ok(if messages.is_empty() {
                json!({})
            } else {
                json!({"Messages": messages.iter().map(message_json).collect::<Vec<_>>()})
            })
        }
        "DeleteMessage" => {
            let r: DeleteMessageRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            engine.delete_message(&url, &required(r.receipt_handle, "ReceiptHandle")?)?;
            Ok(json!({}))
        }
        "DeleteMessageBatch" => {
            let r: DeleteMessageBatchRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let entries = r
                .entries
                .into_iter()
                .map(|e| (e.id, e.receipt_handle))
                .collect();
            let outcome = engine.delete_message_batch(&url, entries)?;
            Ok(batch_ids_json(outcome))
        }
        "ChangeMessageVisibility" => {
            let r: ChangeVisibilityRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let handle = required(r.receipt_handle, "ReceiptHandle")?;
            let timeout = r.visibility_timeout.ok_or_else(|| {
                SqsError::MissingParameter(
                    "The request must contain the parameter VisibilityTimeout.".to_string(),
                )
            })?;
            let timeout = seconds(
                Some(timeout),
                "VisibilityTimeout",
                43_200,
                "Must be between 0 and 43200, if provided.",
            )?
            .unwrap_or(0);
            engine.change_message_visibility(&url, &handle, timeout)?;
            Ok(json!({}))
        }
        "ChangeMessageVisibilityBatch" => {
            let r: ChangeVisibilityBatchRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let entries = r
                .entries
                .into_iter()
                .map(|e| {
                    // Out-of-range values fail their entry in the engine (u32::MAX is > 43200).
                    let seconds = e
                        .visibility_timeout
                        .map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX));
                    (e.id, e.receipt_handle, seconds)
                })
                .collect();
            let outcome = engine.change_message_visibility_batch(&url, entries)?;
            Ok(batch_ids_json(outcome))
        }
        "ListDeadLetterSourceQueues" => {
            let r: ListDeadLetterSourceQueuesRequest = parse(body)?;
            let url = required(r.queue_url, "QueueUrl")?;
            let names: Vec<String> = engine
                .list_dead_letter_source_queues(&url)?
                .iter()
                .map(|u| super::engine::queue_name_of(u).to_string())
                .collect();
            let (page, next) = paginate(names, r.max_results, r.next_token)?;
            let urls: Vec<String> = page.iter().map(|n| engine.url_for(n)).collect();
            // This operation's list is spelled `queueUrls`, unlike ListQueues.
            let mut out = Map::new();
            out.insert("queueUrls".into(), json!(urls));
            if let Some(next) = next {
                out.insert("NextToken".into(), json!(next));
            }
            Ok(Value::Object(out))
        }
        "StartMessageMoveTask" => {
            let r: StartMessageMoveTaskRequest = parse(body)?;
            let source = required(r.source_arn, "SourceArn")?;
            let rate = match r.max_number_of_messages_per_second {
                None => None,
                Some(v) => Some(u32::try_from(v).map_err(|_| {
                    SqsError::invalid_value(
                        "MaxNumberOfMessagesPerSecond",
                        v,
                        "Must be between 1 and 500.",
                    )
                })?),
            };
            let destination = r.destination_arn.filter(|d| !d.is_empty());
            let handle = engine.start_message_move_task(&source, destination.as_deref(), rate)?;
            Ok(json!({"TaskHandle": handle}))
        }
        "ListMessageMoveTasks" => {
            let r: ListMessageMoveTasksRequest = parse(body)?;
            let source = required(r.source_arn, "SourceArn")?;
            let max = match r.max_results {
                None => 1,
                Some(m) if (1..=10).contains(&m) => m as usize,
                Some(m) => {
                    return Err(SqsError::invalid_value(
                        "MaxResults",
                        m,
                        "Must be between 1 and 10.",
                    ));
                }
            };
            let tasks = engine.list_message_move_tasks(&source, max)?;
            let results: Vec<Value> = tasks
                .iter()
                .map(|t| {
                    let mut out = Map::new();
                    out.insert("Status".into(), json!(t.status.as_str()));
                    out.insert("SourceArn".into(), json!(t.source_arn));
                    if let Some(d) = &t.destination_arn {
                        out.insert("DestinationArn".into(), json!(d));
                    }
                    if let Some(rate) = t.max_number_of_messages_per_second {
                        out.insert("MaxNumberOfMessagesPerSecond".into(), json!(rate));
                    }
                    out.insert("ApproximateNumberOfMessagesMoved".into(), json!(t.moved));
                    out.insert("ApproximateNumberOfMessagesToMove".into(), json!(t.to_move));
                    if let Some(reason) = &t.failure_reason {
                        out.insert("FailureReason".into(), json!(reason));
                    }
                    out.insert("StartedTimestamp".into(), json!(t.started_ms));
                    Value::Object(out)
                })
                .collect();
            Ok(json!({"Results": results}))
        }
        "CancelMessageMoveTask" => {
            let r: CancelMessageMoveTaskRequest = parse(body)?;
            let moved = engine.cancel_message_move_task(&required(r.task_handle, "TaskHandle")?)?;
            Ok(json!({"ApproximateNumberOfMessagesMoved": moved}))
        }
        other => Err(SqsError::UnsupportedOperation(format!(
            "The operation {other} is not supported by this emulator."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("q{i:03}")).collect()
    }

    #[test]
    fn pagination_follows_list_queues_rules() {
        let (page, next) = paginate(names(5), None, None).unwrap();
        assert_eq!(page.len(), 5);
        assert!(next.is_none());
        let (page, next) = paginate(names(5), Some(2), None).unwrap();
        assert_eq!(page, vec!["q000", "q001"]);
        let (page, next) = paginate(names(5), Some(2), next).unwrap();
        assert_eq!(page, vec!["q002", "q003"]);
        let (page, next) = paginate(names(5), Some(2), next).unwrap();
        assert_eq!(page, vec!["q004"]);
        assert!(next.is_none());
        assert!(paginate(names(1), Some(0), None).is_err());
        assert!(paginate(names(1), None, Some("%%".into())).is_err());
    }

    /// SendMessage(Batch)'s `X-Amzn-Trace-Id` header is the trace of every message of the
    /// request that sets no `AWSTraceHeader` of its own; the attribute wins over the header
    /// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>).
    #[tokio::test]
    async fn the_http_trace_header_traces_messages_without_their_own() {
        let engine = SqsEngine::in_memory(crate::clock::real());
        let created = dispatch(&engine, "CreateQueue", br#"{"QueueName":"q"}"#)
            .await
            .unwrap();
        let url = created["QueueUrl"].as_str().unwrap().to_string();
        let http = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let own = "Root=1-5759e989-000000000000000000000002;Parent=0000000000000002;Sampled=0";
        let traced = json!({"AWSTraceHeader": {"DataType": "String", "StringValue": own}});
        let sent = dispatch_traced(
            &engine,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "by header"})
                .to_string()
                .as_bytes(),
            Some(http),
        )
        .await
        .unwrap();
        // No checksum of system attributes the client did not send.
        assert!(sent.get("MD5OfMessageSystemAttributes").is_none(), "{sent}");
        let batch = dispatch_traced(
            &engine,
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": [
                {"Id": "a", "MessageBody": "by attribute", "MessageSystemAttributes": traced},
                {"Id": "b", "MessageBody": "by batch header"},
            ]})
            .to_string()
            .as_bytes(),
            Some(http),
        )
        .await
        .unwrap();
        let entries = batch["Successful"].as_array().unwrap();
        assert!(
            entries[0].get("MD5OfMessageSystemAttributes").is_some(),
            "{batch}"
        );
        assert!(
            entries[1].get("MD5OfMessageSystemAttributes").is_none(),
            "{batch}"
        );
        dispatch(
            &engine,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "untraced"})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
        let got = dispatch(
            &engine,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10,
                   "MessageSystemAttributeNames": ["AWSTraceHeader"]})
            .to_string()
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut traces: Vec<(String, Option<String>)> = got["Messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let trace = m["Attributes"]["AWSTraceHeader"]
                    .as_str()
                    .map(str::to_owned);
                (m["Body"].as_str().unwrap().to_owned(), trace)
            })
            .collect();
        traces.sort();
        assert_eq!(
            traces,
            [
                ("by attribute".to_owned(), Some(own.to_owned())),
                ("by batch header".to_owned(), Some(http.to_owned())),
                ("by header".to_owned(), Some(http.to_owned())),
                ("untraced".to_owned(), None),
            ]
        );
    }

    #[tokio::test]
    async fn dispatch_round_trip_and_errors() {
        let engine = SqsEngine::in_memory(crate::clock::real());
        let created = dispatch(&engine, "CreateQueue", br#"{"QueueName":"q"}"#)
            .await
            .unwrap();
        let url = created["QueueUrl"].as_str().unwrap().to_string();
        let sent = dispatch(
            &engine,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "hi",
                   "MessageAttributes": {"b": {"DataType": "Binary", "BinaryValue": "AAE="}}})
            .to_string()
            .as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(sent["MD5OfMessageBody"], "49f68a5c8493ec2c0bf489821c21fc3b");
        let got = dispatch(
            &engine,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MessageAttributeNames": ["All"]})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(
            got["Messages"][0]["MessageAttributes"]["b"]["BinaryValue"],
            "AAE="
        );
        assert_eq!(
            got["Messages"][0]["MD5OfMessageAttributes"],
            sent["MD5OfMessageAttributes"]
        );

        let err = dispatch(&engine, "Frobnicate", b"{}").await.unwrap_err();
        assert!(matches!(err, SqsError::UnsupportedOperation(_)));
        let err = dispatch(&engine, "SendMessage", b"{not json")
            .await
            .unwrap_err();
        assert!(matches!(err, SqsError::Serialization(_)));
        let err = dispatch(&engine, "GetQueueUrl", br#"{"QueueName":"nope"}"#)
            .await
            .unwrap_err();
        assert_eq!(err, SqsError::QueueDoesNotExist);
        let err = dispatch(
            &engine,
            "ReceiveMessage",
            json!({"QueueUrl": url, "WaitTimeSeconds": 21})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SqsError::InvalidParameterValue(_)));
    }
}
