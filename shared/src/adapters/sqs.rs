//! The queue through aws-sdk-sqs. The endpoint comes from the SDK's standard configuration
//! (`AWS_ENDPOINT_URL_SQS` points it at the emulator), so the same code talks to the emulator
//! and to SQS.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    QueueAttributeName,
};

use crate::ports::{Attribute, Queue, QueueDepth, QueueError, SendOptions};
use crate::record::TRACE_HEADER_ATTRIBUTE;

/// Error codes SQS uses for throttling and overload; these pass, so they are retryable.
const TRANSIENT_CODES: &[&str] = &[
    "RequestThrottled",
    "ThrottlingException",
    "Throttling",
    "KmsThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "KmsUnavailable",
    "RequestTimeout",
];

/// An SQS client adapter.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
}

impl SqsQueue {
    /// Wraps an existing client.
    pub fn new(client: Client) -> Self {
        SqsQueue { client }
    }

    /// Builds a client from the environment with short timeouts: a handler must not spend its
    /// whole deadline on an unreachable queue.
    pub async fn from_env() -> Self {
        SqsQueue::new(Client::new(&crate::adapters::aws::aws_sdk_config().await))
    }
}

impl SqsQueue {
    /// A client for an explicit endpoint with static credentials: the emulator from inside a
    /// test, without touching the process environment.
    pub fn for_endpoint(endpoint: &str, region: &str) -> Self {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("local", "local", None, None, "nightshift"))
            .http_client(crate::adapters::aws::https_client())
            .build();
        SqsQueue::new(Client::from_conf(config))
    }
}

/// Sorts an SDK error into transient or rejected.
pub fn classify<E, R>(err: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = aws_sdk_sqs::error::DisplayErrorContext(&err).to_string();
    if crate::adapters::aws::is_transient(&err, TRANSIENT_CODES) {
        QueueError::Transient(text)
    } else {
        QueueError::Rejected(text)
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &[Attribute],
        options: &SendOptions,
    ) -> Result<String, QueueError> {
        let mut attrs = HashMap::new();
        for a in attributes {
            // Each attribute keeps its data type (`Number`, `Binary.gzip`, ...) and a Binary
            // one its bytes, so a dead-letter copy carries what the original carried.
            let value = MessageAttributeValue::builder().data_type(&a.data_type);
            let value = match &a.binary {
                Some(bytes) => value.binary_value(Blob::new(bytes.to_vec())),
                None => value.string_value(&a.value),
            }
            .build()
            .map_err(|e| QueueError::Rejected(format!("attribute {}: {e}", a.name)))?;
            attrs.insert(a.name.clone(), value);
        }
        // The trace rides as the `AWSTraceHeader` system attribute rather than the
        // `X-Amzn-Trace-Id` HTTP header: the attribute is per message and overrides the header
        // when both are set (<https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>).
        let system = match &options.trace_header {
            Some(header) => {
                let value = MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(header)
                    .build()
                    .map_err(|e| {
                        QueueError::Rejected(format!("attribute {TRACE_HEADER_ATTRIBUTE}: {e}"))
                    })?;
                Some(HashMap::from([(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    value,
                )]))
            }
            None => None,
        };
        let out = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .set_message_attributes((!attrs.is_empty()).then_some(attrs))
            .set_message_system_attributes(system)
            .set_message_group_id(options.group_id.clone())
            .set_message_deduplication_id(options.dedup_id.clone())
            .send()
            .await
            .map_err(classify)?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        timeout_seconds: i32,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(timeout_seconds)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn depth(&self, queue_url: &str) -> Result<QueueDepth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(classify)?;
        let attributes = out.attributes();
        let count = |name: QueueAttributeName| -> Result<u64, QueueError> {
            let value = attributes.and_then(|a| a.get(&name)).ok_or_else(|| {
                QueueError::Rejected(format!("{queue_url}: no {} in the answer", name.as_str()))
            })?;
            value.parse().map_err(|_| {
                QueueError::Rejected(format!(
                    "{queue_url}: {} is {value:?}, not a count",
                    name.as_str()
                ))
            })
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages)?,
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;
    use bytes::Bytes;

    /// A queue whose one request is recorded and answered with a sent message id.
    fn replayed() -> (SqsQueue, StaticReplayClient) {
        replayed_with(r#"{"MessageId":"m-1","MD5OfMessageBody":"x"}"#)
    }

    /// A queue whose one request is recorded and answered with `answer`.
    fn replayed_with(answer: &'static str) -> (SqsQueue, StaticReplayClient) {
        let replay = StaticReplayClient::new(vec![ReplayEvent::new(
            http::Request::builder()
                .uri("https://sqs.eu-central-1.amazonaws.com/")
                .body(SdkBody::empty())
                .unwrap(),
            http::Response::builder()
                .status(200)
                .header("content-type", "application/x-amz-json-1.0")
                .body(SdkBody::from(answer))
                .unwrap(),
        )]);
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .http_client(replay.clone())
            .build();
        (SqsQueue::new(Client::from_conf(config)), replay)
    }

    /// The JSON body of the one request `replay` recorded.
    fn sent_body(replay: &StaticReplayClient) -> serde_json::Value {
        let request = replay.actual_requests().next().expect("one request");
        serde_json::from_slice(request.body().bytes().expect("buffered body")).unwrap()
    }

    #[tokio::test]
    async fn depth_asks_for_the_three_counts_and_reads_them() {
        let url = "https://sqs.eu-central-1.amazonaws.com/123456789012/jobs-dlq";
        let (queue, replay) = replayed_with(
            r#"{"Attributes":{"ApproximateNumberOfMessages":"3","ApproximateNumberOfMessagesNotVisible":"1","ApproximateNumberOfMessagesDelayed":"0"}}"#,
        );
        let depth = queue.depth(url).await.unwrap();
        assert_eq!(
            depth,
            QueueDepth {
                visible: 3,
                in_flight: 1,
                delayed: 0
            }
        );
        assert_eq!(depth.total(), 4);
        let body = sent_body(&replay);
        assert_eq!(body["QueueUrl"], url);
        assert_eq!(
            body["AttributeNames"],
            serde_json::json!([
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"
            ])
        );
        // An answer without a count is an error naming it, not a zero.
        let (queue, _) = replayed_with(r#"{"Attributes":{"ApproximateNumberOfMessages":"3"}}"#);
        let err = queue.depth(url).await.unwrap_err().to_string();
        assert!(
            err.contains("no ApproximateNumberOfMessagesNotVisible"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn attributes_keep_their_data_type_and_bytes() {
        let url = "https://sqs.eu-central-1.amazonaws.com/123456789012/dlq";
        let (queue, replay) = replayed();
        let attributes = [
            Attribute::new("reason", "bad input"),
            Attribute::typed("priority", "Number", "7"),
            Attribute::typed("ratio", "Number.float", "0.25"),
            Attribute::binary("trace", "Binary.gzip", Bytes::from_static(&[0, 159, 255])),
        ];
        queue
            .send(url, "{}", &attributes, &SendOptions::default())
            .await
            .unwrap();
        let body = sent_body(&replay);
        assert_eq!(
            body["MessageAttributes"],
            serde_json::json!({
                "reason": {"DataType": "String", "StringValue": "bad input"},
                "priority": {"DataType": "Number", "StringValue": "7"},
                "ratio": {"DataType": "Number.float", "StringValue": "0.25"},
                "trace": {"DataType": "Binary.gzip", "BinaryValue": "AJ//"},
            })
        );
        // A standard send carries no FIFO parameters (a standard queue rejects them).
        assert!(body.get("MessageGroupId").is_none(), "{body}");
        assert!(body.get("MessageDeduplicationId").is_none(), "{body}");
    }

    /// The trace header is the `AWSTraceHeader` message system attribute, a `String`
    /// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>,
    /// `MessageSystemAttributes`); an untraced send has none.
    #[tokio::test]
    async fn a_traced_send_carries_the_trace_header_as_a_system_attribute() {
        let url = "https://sqs.eu-central-1.amazonaws.com/123456789012/emails";
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let (queue, replay) = replayed();
        let options = SendOptions::default().traced(Some(header));
        queue.send(url, "{}", &[], &options).await.unwrap();
        let body = sent_body(&replay);
        assert_eq!(
            body["MessageSystemAttributes"],
            serde_json::json!({"AWSTraceHeader": {"DataType": "String", "StringValue": header}})
        );
        let (queue, replay) = replayed();
        let untraced = SendOptions::default().traced(None);
        queue.send(url, "{}", &[], &untraced).await.unwrap();
        assert!(sent_body(&replay).get("MessageSystemAttributes").is_none());
    }

    #[tokio::test]
    async fn fifo_sends_carry_group_and_deduplication_ids() {
        let url = "https://sqs.eu-central-1.amazonaws.com/123456789012/dlq.fifo";
        let (queue, replay) = replayed();
        queue
            .send(url, "{}", &[], &SendOptions::fifo("tenant-7", "dedup-1"))
            .await
            .unwrap();
        let body = sent_body(&replay);
        assert_eq!(body["MessageGroupId"], "tenant-7");
        assert_eq!(body["MessageDeduplicationId"], "dedup-1");
    }
}
