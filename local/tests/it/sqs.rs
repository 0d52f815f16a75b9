//! The SQS emulation through the real `aws-sdk-sqs` client, on a manual clock, plus the
//! in-process API the emulator's pollers use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use nightshift_local::clock::{self, Clock, ManualClock};
use nightshift_local::sqs::{
    self, JournalConfig, OutgoingMessage, ReceiveOptions, SqsConfig, SqsEngine, SqsServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Guards every wait in these tests against hanging; never reached when they pass.
const GUARD: Duration = Duration::from_secs(30);

pub(crate) fn t0() -> DateTime<Utc> {
    "2026-03-01T08:00:00Z".parse().unwrap()
}

pub(crate) struct Emulator {
    pub(crate) engine: SqsEngine,
    server: SqsServer,
    pub(crate) client: Client,
    clock: Arc<ManualClock>,
}

impl Emulator {
    pub(crate) async fn start() -> Emulator {
        let (shared, manual) = clock::manual(t0());
        Self::start_with(SqsEngine::in_memory(shared), manual).await
    }

    pub(crate) async fn start_with(engine: SqsEngine, clock: Arc<ManualClock>) -> Emulator {
        let server = sqs::serve(engine.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = client(&server.endpoint_url());
        Emulator {
            engine,
            server,
            client,
            clock,
        }
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs)).unwrap();
    }

    pub(crate) async fn create(
        &self,
        name: &str,
        attributes: &[(QueueAttributeName, &str)],
    ) -> String {
        let mut request = self.client.create_queue().queue_name(name);
        for (k, v) in attributes {
            request = request.attributes(k.clone(), *v);
        }
        request.send().await.unwrap().queue_url.unwrap()
    }

    pub(crate) async fn attribute(&self, url: &str, name: QueueAttributeName) -> String {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(name.clone())
            .send()
            .await
            .unwrap();
        out.attributes.unwrap()[&name].clone()
    }

    pub(crate) async fn set_attribute(&self, url: &str, name: QueueAttributeName, value: &str) {
        self.client
            .set_queue_attributes()
            .queue_url(url)
            .attributes(name, value)
            .send()
            .await
            .unwrap();
    }

    pub(crate) async fn all_attributes(&self, url: &str) -> HashMap<QueueAttributeName, String> {
        self.client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
    }

    pub(crate) async fn receive(&self, url: &str, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
        self.client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    async fn send(&self, url: &str, body: &str) -> String {
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .unwrap()
            .message_id
            .unwrap()
    }
}

/// An SQS client of the endpoint at `endpoint`.
pub(crate) fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        // The endpoint is plain HTTP on loopback: no TLS needed.
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(config)
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// AWS's documented MD5OfMessageAttributes, written out independently of the emulator.
/// (name, data type, string value or binary value).
type WireAttr<'a> = (&'a str, &'a str, Result<&'a str, &'a [u8]>);

fn expected_attributes_md5(attributes: &[WireAttr<'_>]) -> String {
    let mut sorted = attributes.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut buf = Vec::new();
    let put = |buf: &mut Vec<u8>, bytes: &[u8]| {
        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    for (name, data_type, value) in sorted {
        put(&mut buf, name.as_bytes());
        put(&mut buf, data_type.as_bytes());
        match value {
            Ok(text) => {
                buf.push(1);
                put(&mut buf, text.as_bytes());
            }
            Err(binary) => {
                buf.push(2);
                put(&mut buf, binary);
            }
        }
    }
    md5_hex(&buf)
}

fn string_attr(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .unwrap()
}

/// A raw HTTP/1.1 exchange, to check the exact wire shape of errors.
async fn raw_post(
    addr: std::net::SocketAddr,
    target: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let target = target
        .map(|t| format!("X-Amz-Target: {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\n{target}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(GUARD, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn sqs_create_list_get_url_and_attributes() {
    let emu = Emulator::start().await;
    let port = emu.server.local_addr().port();
    let jobs = emu
        .create("jobs", &[(QueueAttributeName::VisibilityTimeout, "180")])
        .await;
    assert_eq!(jobs, format!("http://127.0.0.1:{port}/000000000000/jobs"));
    emu.create("jobs-dlq", &[]).await;
    emu.create("emails", &[]).await;

    let listed = emu
        .client
        .list_queues()
        .queue_name_prefix("jobs")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.queue_urls(),
        [
            jobs.clone(),
            format!("http://127.0.0.1:{port}/000000000000/jobs-dlq")
        ]
    );
    let page = emu
        .client
        .list_queues()
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.queue_urls().len(), 2);
    let rest = emu
        .client
        .list_queues()
        .max_results(2)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.queue_urls().len(), 1);
    assert!(rest.next_token().is_none());

    let url = emu
        .client
        .get_queue_url()
        .queue_name("jobs")
        .send()
        .await
        .unwrap();
    assert_eq!(url.queue_url(), Some(jobs.as_str()));

    let all = emu.all_attributes(&jobs).await;
    assert_eq!(all[&QueueAttributeName::VisibilityTimeout], "180");
    assert_eq!(all[&QueueAttributeName::DelaySeconds], "0");
    assert_eq!(all[&QueueAttributeName::MessageRetentionPeriod], "345600");
    assert_eq!(all[&QueueAttributeName::MaximumMessageSize], "1048576");
    assert_eq!(all[&QueueAttributeName::ReceiveMessageWaitTimeSeconds], "0");
    assert_eq!(all[&QueueAttributeName::ApproximateNumberOfMessages], "0");
    assert_eq!(
        all[&QueueAttributeName::QueueArn],
        "arn:aws:sqs:us-east-1:000000000000:jobs"
    );
    assert_eq!(
        all[&QueueAttributeName::CreatedTimestamp],
        t0().timestamp().to_string()
    );
    assert!(!all.contains_key(&QueueAttributeName::RedrivePolicy));

    // Same attributes: the existing URL. Different: QueueNameExists (query code QueueAlreadyExists).
    assert_eq!(
        emu.create("jobs", &[(QueueAttributeName::VisibilityTimeout, "180")])
            .await,
        jobs
    );
    let err = emu
        .client
        .create_queue()
        .queue_name("jobs")
        .attributes(QueueAttributeName::VisibilityTimeout, "60")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_queue_name_exists(), "{err:?}");
    assert_eq!(err.code(), Some("QueueAlreadyExists"));

    emu.advance(10);
    emu.set_attribute(&jobs, QueueAttributeName::DelaySeconds, "5")
        .await;
    assert_eq!(
        emu.attribute(&jobs, QueueAttributeName::DelaySeconds).await,
        "5"
    );
    assert_eq!(
        emu.attribute(&jobs, QueueAttributeName::LastModifiedTimestamp)
            .await,
        (t0().timestamp() + 10).to_string()
    );
    let err = emu
        .client
        .set_queue_attributes()
        .queue_url(&jobs)
        .attributes(QueueAttributeName::VisibilityTimeout, "43201")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_attribute_value(), "{err:?}");

    emu.client
        .delete_queue()
        .queue_url(&jobs)
        .send()
        .await
        .unwrap();
    let err = emu
        .client
        .get_queue_url()
        .queue_name("jobs")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");
    let err = emu
        .client
        .send_message()
        .queue_url(&jobs)
        .message_body("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_queue_does_not_exist(), "{err:?}");
}

#[tokio::test]
async fn sqs_errors_have_the_aws_wire_shape() {
    let emu = Emulator::start().await;
    let addr = emu.server.local_addr();
    let (status, head, body) = raw_post(
        addr,
        Some("AmazonSQS.GetQueueUrl"),
        r#"{"QueueName":"missing"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        head.contains("x-amzn-query-error: aws.simplequeueservice.nonexistentqueue;sender"),
        "{head}"
    );
    assert!(
        head.contains("content-type: application/x-amz-json-1.0"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
    assert_eq!(body["message"], "The specified queue does not exist.");

    let (status, head, body) = raw_post(addr, Some("AmazonSQS.Frobnicate"), "{}").await;
    assert_eq!(status, 400);
    assert!(
        head.contains("x-amzn-query-error: aws.simplequeueservice.unsupportedoperation;sender")
    );
    assert!(body.contains("com.amazonaws.sqs#UnsupportedOperation"));

    let (status, _, body) = raw_post(addr, None, "Action=ListQueues").await;
    assert_eq!(status, 400);
    assert!(body.contains("UnsupportedOperation"));

    // Any signature (here none) is accepted.
    let (status, _, body) = raw_post(addr, Some("AmazonSQS.ListQueues"), "").await;
    assert_eq!((status, body.as_str()), (200, "{}"));
}

#[tokio::test]
async fn sqs_send_receive_delete_with_md5s() {
    let emu = Emulator::start().await;
    let url = emu.create("jobs", &[]).await;
    let body = r#"{"kind":"order.placed","id":"o-1"}"#;
    let sent = emu
        .client
        .send_message()
        .queue_url(&url)
        .message_body(body)
        .message_attributes("SellerName", string_attr("Example Store"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.md5_of_message_body(),
        Some(md5_hex(body.as_bytes()).as_str())
    );
    // The vector AWS's algorithm gives for this attribute.
    assert_eq!(
        sent.md5_of_message_attributes(),
        Some("cd28f3b68aeee4b2eac9c66f2f694b58")
    );

    let binary: &[u8] = &[0, 1, 2, 255];
    let sent2 = emu
        .client
        .send_message()
        .queue_url(&url)
        .message_body("second")
        .message_attributes("trace.id", string_attr("abc"))
        .message_attributes(
            "count",
            MessageAttributeValue::builder()
                .data_type("Number.int")
                .string_value("42")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "blob",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(binary))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let expected = expected_attributes_md5(&[
        ("trace.id", "String", Ok("abc")),
        ("count", "Number.int", Ok("42")),
        ("blob", "Binary", Err(binary)),
    ]);
    assert_eq!(sent2.md5_of_message_attributes(), Some(expected.as_str()));
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "2"
    );

    let got = emu.receive(&url, 10).await;
    assert_eq!(got.len(), 2);
    let first = &got[0];
    assert_eq!(first.message_id(), sent.message_id());
    assert_eq!(first.body(), Some(body));
    assert_eq!(first.md5_of_body(), Some(md5_hex(body.as_bytes()).as_str()));
    assert_eq!(
        first.md5_of_message_attributes(),
        Some("cd28f3b68aeee4b2eac9c66f2f694b58")
    );
    let attrs = first.attributes().unwrap();
    assert_eq!(
        attrs[&MessageSystemAttributeName::ApproximateReceiveCount],
        "1"
    );
    assert_eq!(
        attrs[&MessageSystemAttributeName::SentTimestamp],
        t0().timestamp_millis().to_string()
    );
    assert_eq!(
        attrs[&MessageSystemAttributeName::ApproximateFirstReceiveTimestamp],
        t0().timestamp_millis().to_string()
    );
    assert_eq!(attrs[&MessageSystemAttributeName::SenderId], "000000000000");
    let second = &got[1];
    let blob = &second.message_attributes().unwrap()["blob"];
    assert_eq!(blob.binary_value().unwrap().as_ref(), binary);
    assert_eq!(
        second.message_attributes().unwrap()["count"].string_value(),
        Some("42")
    );
    assert_eq!(second.md5_of_message_attributes(), Some(expected.as_str()));

    // Filtering by prefix returns fewer attributes, with the digest of what is returned.
    emu.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(second.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let filtered = emu
        .client
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("trace.*")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let only = filtered[0].message_attributes().unwrap();
    assert_eq!(only.keys().collect::<Vec<_>>(), ["trace.id"]);
    assert_eq!(
        filtered[0].md5_of_message_attributes(),
        Some(expected_attributes_md5(&[("trace.id", "String", Ok("abc"))]).as_str())
    );
    assert!(filtered[0].attributes().is_none());

    emu.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(first.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    emu.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(filtered[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    emu.advance(3600);
    assert!(emu.receive(&url, 10).await.is_empty());
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );
    assert_eq!(
        emu.attribute(
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "0"
    );

    let err = emu
        .client
        .delete_message()
        .queue_url(&url)
        .receipt_handle("garbage")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_receipt_handle_is_invalid(), "{err:?}");
}

#[tokio::test]
async fn sqs_visibility_timeout_expiry_and_receipt_handles() {
    let emu = Emulator::start().await;
    let url = emu
        .create("jobs", &[(QueueAttributeName::VisibilityTimeout, "30")])
        .await;
    emu.send(&url, "work").await;
    let first = emu.receive(&url, 1).await.remove(0);
    assert!(emu.receive(&url, 1).await.is_empty());
    assert_eq!(
        emu.attribute(
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "1"
    );
    emu.advance(29);
    assert!(emu.receive(&url, 1).await.is_empty());
    emu.advance(1);
    let second = emu.receive(&url, 1).await.remove(0);
    assert_eq!(second.message_id(), first.message_id());
    assert_ne!(second.receipt_handle(), first.receipt_handle());
    assert_eq!(
        second.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    assert_eq!(
        second.attributes().unwrap()[&MessageSystemAttributeName::ApproximateFirstReceiveTimestamp],
        t0().timestamp_millis().to_string()
    );

    // An old handle: the call succeeds but the message stays (SQS's documented behaviour).
    emu.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(first.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        emu.attribute(
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "1"
    );
    let err = emu
        .client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(first.receipt_handle().unwrap())
        .visibility_timeout(10)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");

    // Extend, then beyond 12 hours from the receive is refused.
    let handle = second.receipt_handle().unwrap();
    emu.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(handle)
        .visibility_timeout(300)
        .send()
        .await
        .unwrap();
    emu.advance(299);
    assert!(emu.receive(&url, 1).await.is_empty());
    let err = emu
        .client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(handle)
        .visibility_timeout(43_200)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    let err = emu
        .client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(handle)
        .visibility_timeout(43_201)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");

    // Back to visible at once, and then it is not in flight.
    emu.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(handle)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let err = emu
        .client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(handle)
        .visibility_timeout(10)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_message_not_inflight(), "{err:?}");
    let err = emu
        .client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle("bm90IGEgaGFuZGxl")
        .visibility_timeout(10)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_receipt_handle_is_invalid(), "{err:?}");

    // A handle that expired without a new receive still deletes.
    emu.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(handle)
        .send()
        .await
        .unwrap();
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );

    // Per-request visibility timeout.
    emu.send(&url, "short").await;
    let got = emu
        .client
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(5)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(got.len(), 1);
    emu.advance(5);
    assert_eq!(emu.receive(&url, 1).await.len(), 1);
}

#[tokio::test]
async fn sqs_delay_seconds_and_retention() {
    let emu = Emulator::start().await;
    let url = emu
        .create(
            "jobs",
            &[(QueueAttributeName::MessageRetentionPeriod, "120")],
        )
        .await;
    emu.client
        .send_message()
        .queue_url(&url)
        .message_body("later")
        .delay_seconds(10)
        .send()
        .await
        .unwrap();
    assert!(emu.receive(&url, 1).await.is_empty());
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .await,
        "1"
    );
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );
    emu.advance(9);
    assert!(emu.receive(&url, 1).await.is_empty());
    emu.advance(1);
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .await,
        "0"
    );
    let got = emu.receive(&url, 1).await;
    assert_eq!(got[0].body(), Some("later"));

    let err = emu
        .client
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .delay_seconds(901)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");

    // The queue's DelaySeconds applies when the message sets none.
    emu.client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DelaySeconds, "60")
        .send()
        .await
        .unwrap();
    emu.send(&url, "queue-delayed").await;
    emu.advance(59);
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .await,
        "1"
    );
    emu.advance(1);
    // This one, and the first again (its 30 s visibility timeout ended at 40 s).
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "2"
    );

    // Retention counts from the send: the first message (sent at 0 s) and the second (sent
    // at 10 s) are both gone 120 s after their sends, received or not.
    emu.advance(120);
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );
    assert_eq!(
        emu.attribute(
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn sqs_long_poll_returns_as_soon_as_a_message_is_sent() {
    let emu = Emulator::start().await;
    let url = emu.create("jobs", &[]).await;
    let poller = {
        let client = emu.client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            client
                .receive_message()
                .queue_url(url)
                .wait_time_seconds(20)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default()
        })
    };
    // The long poll waits on the clock for its deadline: send only once it is waiting.
    tokio::time::timeout(GUARD, emu.clock.wait_for_waiters(1))
        .await
        .unwrap();
    let id = emu.send(&url, "wake up").await;
    let got = tokio::time::timeout(GUARD, poller).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id(), Some(id.as_str()));
    // Woken by the send, not by time.
    assert_eq!(emu.clock.now(), t0());
}

#[tokio::test]
async fn sqs_long_poll_wakes_when_a_message_becomes_visible_on_advance() {
    let emu = Emulator::start().await;
    let url = emu
        .create("jobs", &[(QueueAttributeName::VisibilityTimeout, "10")])
        .await;
    emu.send(&url, "retry me").await;
    assert_eq!(emu.receive(&url, 1).await.len(), 1);
    let poller = {
        let client = emu.client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            client
                .receive_message()
                .queue_url(url)
                .wait_time_seconds(20)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default()
        })
    };
    tokio::time::timeout(GUARD, emu.clock.wait_for_waiters(1))
        .await
        .unwrap();
    assert_eq!(
        emu.clock.next_wakeup(),
        Some(t0() + chrono::TimeDelta::seconds(10))
    );
    emu.advance(10);
    let got = tokio::time::timeout(GUARD, poller).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
}

/// A long poll on `url` with `ApproximateReceiveCount`, spawned.
fn long_poll(
    emu: &Emulator,
    url: &str,
) -> tokio::task::JoinHandle<Vec<aws_sdk_sqs::types::Message>> {
    let client = emu.client.clone();
    let url = url.to_string();
    tokio::spawn(async move {
        client
            .receive_message()
            .queue_url(url)
            .wait_time_seconds(20)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    })
}

#[tokio::test]
async fn sqs_long_polls_share_a_message_of_a_queue_whose_visibility_timeout_is_zero() {
    let emu = Emulator::start().await;
    let url = emu
        .create("jobs", &[(QueueAttributeName::VisibilityTimeout, "0")])
        .await;
    let first = long_poll(&emu, &url);
    tokio::time::timeout(GUARD, emu.clock.wait_for_waiters(1))
        .await
        .unwrap();
    let second = long_poll(&emu, &url);
    tokio::time::timeout(GUARD, emu.clock.wait_for_waiters(2))
        .await
        .unwrap();
    let id = emu.send(&url, "for both").await;
    let mut counts = Vec::new();
    for poller in [first, second] {
        let got = tokio::time::timeout(GUARD, poller).await.unwrap().unwrap();
        assert_eq!(got.len(), 1, "each waiting long poll gets the message");
        assert_eq!(got[0].message_id(), Some(id.as_str()));
        counts.push(
            got[0].attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount]
                .clone(),
        );
    }
    counts.sort();
    assert_eq!(counts, ["1", "2"]);
    // Woken by the send and the receive, not by time.
    assert_eq!(emu.clock.now(), t0());
}

#[tokio::test]
async fn sqs_change_visibility_to_zero_wakes_a_long_poll() {
    let emu = Emulator::start().await;
    let url = emu
        .create("jobs", &[(QueueAttributeName::VisibilityTimeout, "30")])
        .await;
    emu.send(&url, "give back").await;
    let received = emu.receive(&url, 1).await;
    let poller = long_poll(&emu, &url);
    tokio::time::timeout(GUARD, emu.clock.wait_for_waiters(1))
        .await
        .unwrap();
    emu.client
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(received[0].receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let got = tokio::time::timeout(GUARD, poller).await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id(), received[0].message_id());
    assert_eq!(emu.clock.now(), t0());
}

#[tokio::test]
async fn sqs_redrive_to_dlq_at_max_receive_count_and_move_back() {
    let emu = Emulator::start().await;
    let dlq = emu.create("jobs-dlq", &[]).await;
    let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:jobs-dlq","maxReceiveCount":"2"}"#;
    let jobs = emu
        .create(
            "jobs",
            &[
                (QueueAttributeName::RedrivePolicy, policy),
                (QueueAttributeName::VisibilityTimeout, "30"),
            ],
        )
        .await;
    assert_eq!(
        emu.attribute(&jobs, QueueAttributeName::RedrivePolicy)
            .await,
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:jobs-dlq","maxReceiveCount":2}"#
    );
    let sent = emu
        .client
        .send_message()
        .queue_url(&jobs)
        .message_body("poison")
        .message_attributes("reason", string_attr("none yet"))
        .send()
        .await
        .unwrap();
    for round in 1..=2 {
        let got = emu.receive(&jobs, 1).await;
        assert_eq!(got.len(), 1, "receive {round}");
        assert_eq!(
            got[0].attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
            round.to_string()
        );
        emu.advance(30);
    }
    // The third receive would exceed maxReceiveCount 2: the message moves instead.
    assert!(emu.receive(&jobs, 1).await.is_empty());
    assert_eq!(
        emu.attribute(&jobs, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );
    assert_eq!(
        emu.attribute(&dlq, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "1"
    );

    let dead = emu.receive(&dlq, 1).await.remove(0);
    assert_eq!(dead.message_id(), sent.message_id());
    assert_eq!(dead.body(), Some("poison"));
    assert_eq!(
        dead.message_attributes().unwrap()["reason"].string_value(),
        Some("none yet")
    );
    assert_eq!(
        dead.md5_of_message_attributes(),
        sent.md5_of_message_attributes()
    );
    let attrs = dead.attributes().unwrap();
    assert_eq!(
        attrs[&MessageSystemAttributeName::ApproximateReceiveCount],
        "3"
    );
    assert_eq!(
        attrs[&MessageSystemAttributeName::SentTimestamp],
        t0().timestamp_millis().to_string()
    );
    assert_eq!(
        attrs[&MessageSystemAttributeName::DeadLetterQueueSourceArn],
        "arn:aws:sqs:us-east-1:000000000000:jobs"
    );
    emu.client
        .change_message_visibility()
        .queue_url(&dlq)
        .receipt_handle(dead.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();

    let sources = emu
        .client
        .list_dead_letter_source_queues()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.queue_urls(), std::slice::from_ref(&jobs));

    // Redrive back to the source: a new message with the same body and attributes.
    let dlq_arn = "arn:aws:sqs:us-east-1:000000000000:jobs-dlq";
    let task = emu
        .client
        .start_message_move_task()
        .source_arn(dlq_arn)
        .send()
        .await
        .unwrap();
    assert!(task.task_handle().is_some());
    assert_eq!(
        emu.attribute(&dlq, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );
    let back = emu.receive(&jobs, 1).await.remove(0);
    assert_eq!(back.body(), Some("poison"));
    assert_ne!(back.message_id(), sent.message_id());
    assert_eq!(
        back.message_attributes().unwrap()["reason"].string_value(),
        Some("none yet")
    );
    assert_eq!(
        back.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "1"
    );
    assert!(
        !back
            .attributes()
            .unwrap()
            .contains_key(&MessageSystemAttributeName::DeadLetterQueueSourceArn)
    );

    let tasks = emu
        .client
        .list_message_move_tasks()
        .source_arn(dlq_arn)
        .send()
        .await
        .unwrap();
    let result = &tasks.results()[0];
    assert_eq!(result.status(), Some("COMPLETED"));
    assert_eq!(result.approximate_number_of_messages_moved(), 1);
    assert_eq!(result.started_timestamp(), t0().timestamp_millis() + 60_000);

    // Only dead-letter queues can be a source; unknown ARNs are ResourceNotFound.
    let err = emu
        .client
        .start_message_move_task()
        .source_arn("arn:aws:sqs:us-east-1:000000000000:jobs")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    let err = emu
        .client
        .start_message_move_task()
        .source_arn("arn:aws:sqs:us-east-1:000000000000:nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    // A policy naming a missing DLQ is refused.
    let err = emu
        .client
        .create_queue()
        .queue_name("orphan")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:missing","maxReceiveCount":3}"#,
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
}

#[tokio::test]
async fn sqs_move_task_to_an_explicit_destination() {
    let emu = Emulator::start().await;
    emu.create("dlq", &[]).await;
    let policy =
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":1}"#;
    let source = emu
        .create(
            "source",
            &[
                (QueueAttributeName::RedrivePolicy, policy),
                (QueueAttributeName::VisibilityTimeout, "0"),
            ],
        )
        .await;
    let other = emu.create("other", &[]).await;
    emu.send(&source, "a").await;
    assert_eq!(emu.receive(&source, 1).await.len(), 1);
    assert!(emu.receive(&source, 1).await.is_empty());
    emu.client
        .start_message_move_task()
        .source_arn("arn:aws:sqs:us-east-1:000000000000:dlq")
        .destination_arn("arn:aws:sqs:us-east-1:000000000000:other")
        .max_number_of_messages_per_second(10)
        .send()
        .await
        .unwrap();
    assert_eq!(emu.receive(&other, 10).await[0].body(), Some("a"));
}

#[tokio::test]
async fn sqs_batches_limits_and_error_codes() {
    let emu = Emulator::start().await;
    let url = emu.create("jobs", &[]).await;
    let entry = |id: &str, body: &str| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .build()
            .unwrap()
    };

    let out = emu
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("a", "one"))
        .entries(entry("b", "bad \u{1}"))
        .entries(entry("c", "three"))
        .send()
        .await
        .unwrap();
    let ok: Vec<_> = out.successful().iter().map(|s| s.id()).collect();
    assert_eq!(ok, ["a", "c"]);
    assert_eq!(out.successful()[0].md5_of_message_body(), md5_hex(b"one"));
    assert_eq!(out.failed().len(), 1);
    assert_eq!(out.failed()[0].id(), "b");
    assert_eq!(out.failed()[0].code(), "InvalidMessageContents");
    assert!(out.failed()[0].sender_fault());

    let mut eleven = emu.client.send_message_batch().queue_url(&url);
    for i in 0..11 {
        eleven = eleven.entries(entry(&format!("m{i}"), "x"));
    }
    let err = eleven.send().await.unwrap_err().into_service_error();
    assert!(err.is_too_many_entries_in_batch_request(), "{err:?}");

    let err = emu
        .client
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(Vec::new()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_empty_batch_request(), "{err:?}");

    let err = emu
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("same", "x"))
        .entries(entry("same", "y"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_batch_entry_ids_not_distinct(), "{err:?}");

    let err = emu
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("not valid!", "x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_batch_entry_id(), "{err:?}");

    let half = "h".repeat(600 * 1024);
    let err = emu
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("p1", &half))
        .entries(entry("p2", &half))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_batch_request_too_long(), "{err:?}");

    // Delete and change-visibility batches report per entry.
    let got = emu.receive(&url, 10).await;
    assert_eq!(got.len(), 2);
    let out = emu
        .client
        .change_message_visibility_batch()
        .queue_url(&url)
        .entries(
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("v1")
                .receipt_handle(got[0].receipt_handle().unwrap())
                .visibility_timeout(120)
                .build()
                .unwrap(),
        )
        .entries(
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id("v2")
                .receipt_handle("junk")
                .visibility_timeout(120)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.successful().len(), 1);
    assert_eq!(out.failed()[0].code(), "ReceiptHandleIsInvalid");

    let out = emu
        .client
        .delete_message_batch()
        .queue_url(&url)
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("d1")
                .receipt_handle(got[0].receipt_handle().unwrap())
                .build()
                .unwrap(),
        )
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("d2")
                .receipt_handle(got[1].receipt_handle().unwrap())
                .build()
                .unwrap(),
        )
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("d3")
                .receipt_handle("junk")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ok: Vec<_> = out.successful().iter().map(|s| s.id()).collect();
    assert_eq!(ok, ["d1", "d2"]);
    assert_eq!(out.failed()[0].id(), "d3");
    assert_eq!(out.failed()[0].code(), "ReceiptHandleIsInvalid");
    emu.advance(3600);
    assert!(emu.receive(&url, 10).await.is_empty());

    let err = emu
        .client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(11)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let err = emu
        .client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(21)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let err = emu
        .client
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(43_201)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
}

#[tokio::test]
async fn sqs_message_size_limit_is_one_mebibyte() {
    let emu = Emulator::start().await;
    let url = emu.create("big", &[]).await;
    let exactly = "a".repeat(1_048_576);
    emu.send(&url, &exactly).await;
    let got = emu.receive(&url, 1).await;
    assert_eq!(got[0].body().map(str::len), Some(1_048_576));
    assert_eq!(
        got[0].md5_of_body(),
        Some(md5_hex(exactly.as_bytes()).as_str())
    );

    let err = emu
        .client
        .send_message()
        .queue_url(&url)
        .message_body("a".repeat(1_048_577))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    assert!(err.message().unwrap().contains("1048576"), "{err:?}");

    // Attributes count toward the limit.
    let err = emu
        .client
        .send_message()
        .queue_url(&url)
        .message_body("a".repeat(1_048_570))
        .message_attributes("k", string_attr("v"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");

    // A smaller MaximumMessageSize applies too; invalid characters are refused.
    let small = emu
        .create("small", &[(QueueAttributeName::MaximumMessageSize, "1024")])
        .await;
    let err = emu
        .client
        .send_message()
        .queue_url(&small)
        .message_body("a".repeat(1025))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let err = emu
        .client
        .send_message()
        .queue_url(&small)
        .message_body("bell \u{7}")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_message_contents(), "{err:?}");
}

#[tokio::test]
async fn sqs_purge_is_limited_to_once_a_minute() {
    let emu = Emulator::start().await;
    let url = emu.create("jobs", &[]).await;
    emu.send(&url, "a").await;
    emu.send(&url, "b").await;
    emu.client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );
    let err = emu
        .client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_purge_queue_in_progress(), "{err:?}");
    emu.advance(60);
    emu.client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sqs_restart_keeps_unacknowledged_messages() {
    let dir = tempfile::tempdir().unwrap();
    let open = |manual: &Arc<ManualClock>| {
        let shared: clock::SharedClock = manual.clone();
        SqsEngine::new(
            SqsConfig {
                journal: Some(JournalConfig::new(dir.path())),
                ..SqsConfig::default()
            },
            shared,
        )
        .unwrap()
    };
    let manual = Arc::new(ManualClock::new(t0()));
    let emu = Emulator::start_with(open(&manual), manual.clone()).await;
    emu.create("dlq", &[]).await;
    let policy =
        r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":5}"#;
    let url = emu
        .create(
            "jobs",
            &[
                (QueueAttributeName::RedrivePolicy, policy),
                (QueueAttributeName::VisibilityTimeout, "60"),
            ],
        )
        .await;
    let deleted = emu.send(&url, "deleted").await;
    let in_flight = emu.send(&url, "in flight").await;
    emu.advance(1);
    let untouched = emu.send(&url, "untouched").await;
    let got = emu.receive(&url, 2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].message_id(), Some(deleted.as_str()));
    emu.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(got[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    // Kill: no shutdown of the engine, nothing synced on purpose.
    let Emulator { engine, server, .. } = emu;
    server.shutdown().await;
    drop(engine);

    let emu = Emulator::start_with(open(&manual), manual.clone()).await;
    let url = emu
        .client
        .get_queue_url()
        .queue_name("jobs")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert!(
        emu.attribute(&url, QueueAttributeName::RedrivePolicy)
            .await
            .contains("dlq")
    );
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::VisibilityTimeout)
            .await,
        "60"
    );
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "1"
    );
    assert_eq!(
        emu.attribute(
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "1"
    );
    emu.advance(10);
    let first = emu.receive(&url, 10).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].message_id(), Some(untouched.as_str()));
    // The in-flight one (received at 1 s for 60 s) comes back at 61 s, with its receive count.
    emu.advance(49);
    assert!(emu.receive(&url, 10).await.is_empty());
    emu.advance(1);
    let back = emu.receive(&url, 10).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].message_id(), Some(in_flight.as_str()));
    assert_eq!(
        back[0].attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    // Handles from before the restart still work.
    emu.client
        .delete_message()
        .queue_url(&url)
        .receipt_handle(back[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(emu.engine.queue_stats("jobs").unwrap().in_flight, 1);
}

#[tokio::test]
async fn sqs_compaction_keeps_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, manual) = clock::manual(t0());
    let config = SqsConfig {
        journal: Some(JournalConfig {
            compact_min_bytes: 1,
            ..JournalConfig::new(dir.path())
        }),
        ..SqsConfig::default()
    };
    let engine = SqsEngine::new(config.clone(), shared.clone()).unwrap();
    engine
        .create_queue("jobs", &BTreeMap::new(), &BTreeMap::new())
        .unwrap();
    let mut kept = Vec::new();
    for i in 0..50 {
        let id = engine
            .send_message("jobs", OutgoingMessage::new(format!("m{i}")))
            .unwrap()
            .message_id;
        kept.push(id);
    }
    let mut removed = 0;
    for _ in 0..4 {
        let got = engine
            .receive_message("jobs", &ReceiveOptions::default().visibility_timeout(600))
            .await
            .unwrap();
        engine
            .delete_message("jobs", &got[0].receipt_handle)
            .unwrap();
        kept.retain(|id| *id != got[0].message_id);
        removed += 1;
    }
    let in_flight = engine
        .receive_message("jobs", &ReceiveOptions::default().visibility_timeout(600))
        .await
        .unwrap()
        .remove(0);
    engine.compact().unwrap();
    let compacted = engine.journal_bytes().unwrap();
    drop(engine);

    let engine = SqsEngine::new(config, shared).unwrap();
    assert_eq!(engine.journal_bytes(), Some(compacted));
    let stats = engine.queue_stats("jobs").unwrap();
    assert_eq!((stats.visible, stats.in_flight), (50 - removed - 1, 1));
    let mut ids: Vec<_> = engine
        .peek_messages("jobs", 100)
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    ids.sort();
    kept.sort();
    assert_eq!(ids, kept);
    manual.advance(Duration::from_secs(600)).unwrap();
    let again = engine
        .receive_message("jobs", &ReceiveOptions::all_attributes(10))
        .await
        .unwrap();
    let back = again
        .iter()
        .find(|m| m.message_id == in_flight.message_id)
        .unwrap();
    assert_eq!(back.attributes["ApproximateReceiveCount"], "2");
}

#[tokio::test]
async fn sqs_in_process_api_for_pollers() {
    let (shared, manual) = clock::manual(t0());
    let engine = SqsEngine::in_memory(shared);
    let mut attributes = BTreeMap::new();
    attributes.insert("VisibilityTimeout".to_string(), "30".to_string());
    let url = engine
        .create_queue("jobs", &attributes, &BTreeMap::new())
        .unwrap();
    assert_eq!(url, "http://127.0.0.1:9324/000000000000/jobs");
    assert_eq!(
        engine.queue_arn("jobs").unwrap(),
        "arn:aws:sqs:us-east-1:000000000000:jobs"
    );

    // A subscriber wakes on a send.
    let subscription = engine.subscribe("jobs").unwrap();
    let waiter = tokio::spawn(async move {
        subscription
            .wait_visible(Some(Duration::from_secs(60)))
            .await
    });
    tokio::time::timeout(GUARD, manual.wait_for_waiters(1))
        .await
        .unwrap();
    engine
        .send_message(&url, OutgoingMessage::new("hello").delay(0))
        .unwrap();
    assert!(
        tokio::time::timeout(GUARD, waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    );

    // A long-polling receive wakes on a send.
    let received = engine
        .receive_message("jobs", &ReceiveOptions::all_attributes(10))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    let poll = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .receive_message(
                    "jobs",
                    &ReceiveOptions::all_attributes(10).wait(Duration::from_secs(20)),
                )
                .await
        })
    };
    tokio::time::timeout(GUARD, manual.wait_for_waiters(1))
        .await
        .unwrap();
    engine
        .send_message("jobs", OutgoingMessage::new("second"))
        .unwrap();
    let got = tokio::time::timeout(GUARD, poll)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got[0].body, "second");
    assert_eq!(got[0].attributes["ApproximateReceiveCount"], "1");

    // The wait ends empty when clock time runs out.
    let poll = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .receive_message(
                    "jobs",
                    &ReceiveOptions::default().wait(Duration::from_secs(5)),
                )
                .await
        })
    };
    tokio::time::timeout(GUARD, manual.wait_for_waiters(1))
        .await
        .unwrap();
    manual.advance(Duration::from_secs(5)).unwrap();
    assert!(
        tokio::time::timeout(GUARD, poll)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .is_empty()
    );

    // Counts for `status`, and messages seen without receiving them.
    let stats = engine.queue_stats("jobs").unwrap();
    assert_eq!((stats.visible, stats.in_flight, stats.delayed), (0, 2, 0));
    let peeked = engine.peek_messages("jobs", 10).unwrap();
    assert_eq!(
        peeked.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["hello", "second"]
    );
    assert!(peeked.iter().all(|m| m.receive_count == 1));

    // A subscriber also wakes when an in-flight message becomes visible on advance.
    let subscription = engine.subscribe("jobs").unwrap();
    let waiter = tokio::spawn(async move { subscription.wait_visible(None).await });
    tokio::time::timeout(GUARD, manual.wait_for_waiters(1))
        .await
        .unwrap();
    manual.advance(Duration::from_secs(25)).unwrap();
    assert!(
        tokio::time::timeout(GUARD, waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    );

    // Deleting the queue ends waits with QueueDoesNotExist.
    let subscription = engine.subscribe("jobs").unwrap();
    engine
        .receive_message("jobs", &ReceiveOptions::all_attributes(10))
        .await
        .unwrap();
    let waiter = tokio::spawn(async move { subscription.wait_visible(None).await });
    tokio::time::timeout(GUARD, manual.wait_for_waiters(1))
        .await
        .unwrap();
    engine.delete_queue("jobs").unwrap();
    let ended = tokio::time::timeout(GUARD, waiter).await.unwrap().unwrap();
    assert_eq!(ended, Err(sqs::SqsError::QueueDoesNotExist));
    assert!(engine.stats().is_empty());
}

#[tokio::test]
async fn sqs_redrive_allow_policy_is_validated_enforced_and_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, manual) = clock::manual(t0());
    let config = SqsConfig {
        journal: Some(JournalConfig::new(dir.path())),
        ..SqsConfig::default()
    };
    let emu = Emulator::start_with(
        SqsEngine::new(config.clone(), shared.clone()).unwrap(),
        manual,
    )
    .await;
    let arn = |name: &str| format!("arn:aws:sqs:us-east-1:000000000000:{name}");
    let allow = format!(
        r#"{{"redrivePermission":"byQueue","sourceQueueArns":["{}"]}}"#,
        arn("allowed")
    );
    let dlq = emu
        .create("dlq", &[(QueueAttributeName::RedriveAllowPolicy, &allow)])
        .await;
    assert_eq!(
        emu.attribute(&dlq, QueueAttributeName::RedriveAllowPolicy)
            .await,
        allow
    );
    let redrive = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":3}}"#,
        arn("dlq")
    );
    emu.create("allowed", &[(QueueAttributeName::RedrivePolicy, &redrive)])
        .await;

    // A source the DLQ does not list is refused, at creation and when set later.
    let err = emu
        .client
        .create_queue()
        .queue_name("other")
        .attributes(QueueAttributeName::RedrivePolicy, &redrive)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    let message = err.message().unwrap();
    assert!(
        message.contains(&arn("dlq"))
            && message.contains(&arn("other"))
            && message.contains("byQueue without this queue"),
        "{message}"
    );
    assert!(
        emu.client
            .get_queue_url()
            .queue_name("other")
            .send()
            .await
            .is_err(),
        "a refused CreateQueue creates nothing"
    );
    let plain = emu.create("plain", &[]).await;
    let refused = |result: Result<_, aws_sdk_sqs::error::SdkError<_>>| {
        let err: aws_sdk_sqs::operation::set_queue_attributes::SetQueueAttributesError =
            result.unwrap_err().into_service_error();
        (
            err.code().unwrap().to_string(),
            err.message().unwrap().to_string(),
        )
    };
    let (code, message) = refused(
        emu.client
            .set_queue_attributes()
            .queue_url(&plain)
            .attributes(QueueAttributeName::RedrivePolicy, &redrive)
            .send()
            .await,
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains(&arn("plain")), "{message}");

    // Malformed policies are InvalidAttributeValue and change nothing.
    for bad in [
        "{",
        r#"{"redrivePermission":"sometimes"}"#,
        r#"{"redrivePermission":"denyAll","sourceQueueArns":["arn:aws:sqs:us-east-1:000000000000:x"]}"#,
    ] {
        let (code, message) = refused(
            emu.client
                .set_queue_attributes()
                .queue_url(&dlq)
                .attributes(QueueAttributeName::RedriveAllowPolicy, bad)
                .send()
                .await,
        );
        assert_eq!(code, "InvalidAttributeValue", "{bad}");
        assert!(message.contains("RedriveAllowPolicy"), "{message}");
    }
    assert_eq!(
        emu.attribute(&dlq, QueueAttributeName::RedriveAllowPolicy)
            .await,
        allow
    );

    // denyAll refuses even the listed queue; the policy survives a restart.
    emu.client
        .set_queue_attributes()
        .queue_url(&dlq)
        .attributes(
            QueueAttributeName::RedriveAllowPolicy,
            r#"{"redrivePermission":"denyAll"}"#,
        )
        .send()
        .await
        .unwrap();
    let Emulator { engine, server, .. } = emu;
    server.shutdown().await;
    drop(engine);
    let engine = SqsEngine::new(config, shared).unwrap();
    let attributes = engine
        .get_queue_attributes("dlq", &["RedriveAllowPolicy".to_string()])
        .unwrap();
    assert_eq!(
        attributes["RedriveAllowPolicy"],
        r#"{"redrivePermission":"denyAll"}"#
    );
    let err = engine
        .set_queue_attributes(
            "allowed",
            &BTreeMap::from([("RedrivePolicy".to_string(), redrive.clone())]),
        )
        .unwrap_err();
    assert!(err.to_string().contains("denyAll"), "{err}");
}
