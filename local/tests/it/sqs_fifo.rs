//! SQS FIFO queues through the real `aws-sdk-sqs` client and the in-process API, on a manual
//! clock. Each rule cites the page it comes from:
//! - FIFO key terms and delivery logic:
//!   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-key-terms.html>;
//! - SendMessage (MessageGroupId, MessageDeduplicationId, DelaySeconds on FIFO queues):
//!   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>;
//! - ReceiveMessage (ReceiveRequestAttemptId, SequenceNumber):
//!   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html>;
//! - dead-letter queues of the same type as their source:
//!   <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html>.

use std::collections::BTreeMap;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use nightshift_local::clock;
use nightshift_local::sqs::{JournalConfig, OutgoingMessage, ReceiveOptions, SqsConfig, SqsEngine};

use super::sqs::{Emulator, t0};

const ARN: &str = "arn:aws:sqs:us-east-1:000000000000";

fn bodies_of(messages: &[aws_sdk_sqs::types::Message]) -> Vec<String> {
    messages.iter().map(|m| m.body.clone().unwrap()).collect()
}

/// The AWS error code and message of a refused request.
fn refused<T: std::fmt::Debug, E, R: std::fmt::Debug>(
    result: Result<T, aws_sdk_sqs::error::SdkError<E, R>>,
) -> aws_sdk_sqs::error::ErrorMetadata
where
    E: ProvideErrorMetadata,
{
    result.unwrap_err().meta().clone()
}

impl Emulator {
    async fn fifo(&self, name: &str, content_based: bool) -> String {
        self.create(
            name,
            &[
                (QueueAttributeName::FifoQueue, "true"),
                (
                    QueueAttributeName::ContentBasedDeduplication,
                    if content_based { "true" } else { "false" },
                ),
            ],
        )
        .await
    }

    async fn send_fifo(&self, url: &str, body: &str, group: &str, dedup: &str) -> (String, String) {
        let out = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .send()
            .await
            .unwrap();
        (out.message_id.unwrap(), out.sequence_number.unwrap())
    }

    async fn bodies(&self, url: &str, max: i32) -> Vec<String> {
        bodies_of(&self.receive(url, max).await)
    }

    async fn delete_all(&self, url: &str, messages: &[aws_sdk_sqs::types::Message]) {
        for m in messages {
            self.client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn fifo_queue_names_and_attributes_follow_aws() {
    let emu = Emulator::start().await;
    // FifoQueue=true needs the .fifo suffix, and the suffix needs FifoQueue=true.
    let err = refused(
        emu.client
            .create_queue()
            .queue_name("jobs")
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert!(
        err.message()
            .unwrap()
            .contains("must end with .fifo suffix")
    );
    let err = refused(
        emu.client
            .create_queue()
            .queue_name("jobs.fifo")
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    // FIFO-only attributes are unknown on a standard queue.
    let err = refused(
        emu.client
            .create_queue()
            .queue_name("plain")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidAttributeName"));
    assert!(
        emu.client
            .list_queues()
            .send()
            .await
            .unwrap()
            .queue_urls()
            .is_empty()
    );

    let url = emu.fifo("jobs.fifo", true).await;
    let attributes = emu.all_attributes(&url).await;
    assert_eq!(attributes[&QueueAttributeName::FifoQueue], "true");
    assert_eq!(
        attributes[&QueueAttributeName::ContentBasedDeduplication],
        "true"
    );
    assert_eq!(attributes[&QueueAttributeName::DeduplicationScope], "queue");
    assert_eq!(
        attributes[&QueueAttributeName::FifoThroughputLimit],
        "perQueue"
    );
    // High throughput: both attributes together; perMessageGroupId alone is refused.
    emu.client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
        .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId")
        .send()
        .await
        .unwrap();
    let err = refused(
        emu.client
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::DeduplicationScope, "queue")
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidAttributeValue"));
    // Creating it again with the same attributes is idempotent.
    assert_eq!(emu.fifo("jobs.fifo", true).await, url);
}

#[tokio::test]
async fn fifo_sends_without_what_aws_requires_are_refused_and_nothing_is_enqueued() {
    let emu = Emulator::start().await;
    let url = emu.fifo("jobs.fifo", false).await;
    let send = || emu.client.send_message().queue_url(&url).message_body("b");
    let cases = [
        (
            send().message_deduplication_id("d").send().await,
            "MissingParameter",
            "The request must contain the parameter MessageGroupId.",
        ),
        (
            send().message_group_id("g").send().await,
            "InvalidParameterValue",
            "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
        ),
        (
            send()
                .message_group_id("g")
                .message_deduplication_id("d")
                .delay_seconds(5)
                .send()
                .await,
            "InvalidParameterValue",
            "not valid for this queue type",
        ),
        (
            send()
                .message_group_id("g")
                .message_deduplication_id("x".repeat(129))
                .send()
                .await,
            "InvalidParameterValue",
            "1 to 128 in length",
        ),
        (
            send()
                .message_group_id("g")
                .message_deduplication_id("has space")
                .send()
                .await,
            "InvalidParameterValue",
            "MessageDeduplicationId can only include alphanumeric and punctuation",
        ),
        (
            send()
                .message_group_id("")
                .message_deduplication_id("d")
                .send()
                .await,
            "InvalidParameterValue",
            "MessageGroupId",
        ),
    ];
    for (result, code, text) in cases {
        let err = refused(result);
        assert_eq!(err.code(), Some(code), "{err:?}");
        assert!(err.message().unwrap().contains(text), "{err:?}");
    }
    // A deduplication id on a standard queue is refused too.
    let plain = emu.create("plain", &[]).await;
    let err = refused(
        emu.client
            .send_message()
            .queue_url(&plain)
            .message_body("b")
            .message_deduplication_id("d")
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "0"
    );
}

#[tokio::test]
async fn fifo_duplicates_within_five_minutes_are_accepted_but_not_enqueued() {
    let emu = Emulator::start().await;
    let url = emu.fifo("jobs.fifo", false).await;
    let (id, sequence) = emu.send_fifo(&url, "first", "g", "d1").await;
    assert_eq!(sequence.len(), 20, "{sequence}");
    // Same id, other body: success, the original's id and sequence number, nothing enqueued.
    let (again, again_sequence) = emu.send_fifo(&url, "second", "g", "d1").await;
    assert_eq!((again, again_sequence), (id.clone(), sequence.clone()));
    // Deduplication outlives the message: deleted, its id is still a duplicate.
    let received = emu.receive(&url, 10).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body(), Some("first"));
    emu.delete_all(&url, &received).await;
    emu.advance(299);
    assert_eq!(emu.send_fifo(&url, "third", "g", "d1").await.0, id);
    assert!(emu.receive(&url, 10).await.is_empty());
    // After the 5 minutes it is a new message.
    emu.advance(1);
    let (fresh, fresh_sequence) = emu.send_fifo(&url, "fourth", "g", "d1").await;
    assert_ne!(fresh, id);
    assert!(fresh_sequence > sequence);
    assert_eq!(emu.bodies(&url, 10).await, ["fourth"]);

    // Content-based: the SHA-256 of the body (not the attributes), overridden by an explicit id.
    let cbd = emu.fifo("cbd.fifo", true).await;
    let send = |body: &'static str, attribute: &'static str| {
        emu.client
            .send_message()
            .queue_url(&cbd)
            .message_body(body)
            .message_group_id("g")
            .message_attributes(
                "a",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(attribute)
                    .build()
                    .unwrap(),
            )
            .send()
    };
    let one = send("same", "x").await.unwrap().message_id.unwrap();
    assert_eq!(send("same", "y").await.unwrap().message_id.unwrap(), one);
    let (explicit, _) = emu.send_fifo(&cbd, "same", "g", "explicit").await;
    assert_ne!(explicit, one);
    assert_eq!(emu.bodies(&cbd, 10).await, ["same", "same"]);

    // messageGroup scope: one id space per group.
    let scoped = emu.fifo("scoped.fifo", false).await;
    emu.set_attribute(
        &scoped,
        QueueAttributeName::DeduplicationScope,
        "messageGroup",
    )
    .await;
    let (a, _) = emu.send_fifo(&scoped, "a", "g1", "d").await;
    let (b, _) = emu.send_fifo(&scoped, "b", "g2", "d").await;
    assert_ne!(a, b);
    assert_eq!(emu.send_fifo(&scoped, "c", "g1", "d").await.0, a);
}

#[tokio::test]
async fn fifo_batches_deduplicate_entry_by_entry() {
    let emu = Emulator::start().await;
    let url = emu.fifo("jobs.fifo", false).await;
    let entry = |id: &str, dedup: Option<&str>, group: Option<&str>| {
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(format!("body {id}"))
            .set_message_deduplication_id(dedup.map(str::to_string))
            .set_message_group_id(group.map(str::to_string))
            .build()
            .unwrap()
    };
    let out = emu
        .client
        .send_message_batch()
        .queue_url(&url)
        .entries(entry("a", Some("d1"), Some("g")))
        .entries(entry("b", Some("d1"), Some("g")))
        .entries(entry("c", Some("d2"), None))
        .entries(entry("d", Some("d3"), Some("g")))
        .send()
        .await
        .unwrap();
    let ok: Vec<_> = out.successful().iter().map(|s| s.id()).collect();
    assert_eq!(ok, ["a", "b", "d"]);
    assert_eq!(
        out.successful()[0].message_id(),
        out.successful()[1].message_id()
    );
    assert!(
        out.successful()
            .iter()
            .all(|s| s.sequence_number().is_some())
    );
    assert_eq!(out.failed().len(), 1);
    assert_eq!(out.failed()[0].id(), "c");
    assert_eq!(out.failed()[0].code(), "MissingParameter");
    assert_eq!(emu.bodies(&url, 10).await, ["body a", "body d"]);
}

#[tokio::test]
async fn fifo_groups_are_received_in_order_one_in_flight_at_a_time() {
    let emu = Emulator::start().await;
    let url = emu.fifo("jobs.fifo", false).await;
    for (i, (body, group)) in [
        ("a1", "a"),
        ("b1", "b"),
        ("a2", "a"),
        ("b2", "b"),
        ("a3", "a"),
    ]
    .into_iter()
    .enumerate()
    {
        emu.send_fifo(&url, body, group, &format!("d{i}")).await;
    }
    // One receive takes as many of the oldest group as it can, then the next group.
    assert_eq!(emu.bodies(&url, 4).await, ["a1", "a2", "a3", "b1"]);
    // b has a message in flight: b2 waits, even though it is visible.
    assert!(emu.receive(&url, 10).await.is_empty());
    assert_eq!(
        emu.attribute(&url, QueueAttributeName::ApproximateNumberOfMessages)
            .await,
        "1"
    );
    // Their visibility times out: everything comes back, in send order per group.
    emu.advance(30);
    let again = emu.receive(&url, 1).await;
    assert_eq!(again[0].body(), Some("a1"));
    let attributes = again[0].attributes.clone().unwrap();
    assert_eq!(attributes[&MessageSystemAttributeName::MessageGroupId], "a");
    assert_eq!(
        attributes[&MessageSystemAttributeName::MessageDeduplicationId],
        "d0"
    );
    assert_eq!(
        attributes[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    assert!(attributes.contains_key(&MessageSystemAttributeName::SequenceNumber));
    // a1 is in flight: a's others wait, b comes next.
    assert_eq!(emu.bodies(&url, 10).await, ["b1", "b2"]);
    emu.delete_all(&url, &again).await;
    assert_eq!(emu.bodies(&url, 10).await, ["a2", "a3"]);
}

#[tokio::test]
async fn fifo_receive_attempt_ids_return_the_same_messages_until_one_changes() {
    let emu = Emulator::start().await;
    let url = emu.fifo("jobs.fifo", true).await;
    for (body, group) in [("a1", "a"), ("b1", "b"), ("c1", "c")] {
        emu.client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .message_group_id(group)
            .send()
            .await
            .unwrap();
    }
    let receive = |attempt: &'static str| {
        emu.client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(2)
            .receive_request_attempt_id(attempt)
            .send()
    };
    let first = receive("try-1").await.unwrap().messages.unwrap();
    emu.advance(20);
    let retried = receive("try-1").await.unwrap().messages.unwrap();
    assert_eq!(first, retried, "same messages and receipt handles");
    // The retry started the visibility timeout again: 29 s later they are still hidden.
    emu.advance(29);
    let other = receive("try-2").await.unwrap().messages.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].body(), Some("c1"));
    // Once a message of the attempt is deleted, retrying it is an error, not a new receive.
    emu.delete_all(&url, &first[..1]).await;
    let err = refused(receive("try-1").await);
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert!(
        err.message().unwrap().contains("not valid anymore"),
        "{err:?}"
    );
    // Invalid ids are refused.
    let err = refused(
        emu.client
            .receive_message()
            .queue_url(&url)
            .receive_request_attempt_id("x".repeat(129))
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
}

#[tokio::test]
async fn fifo_dead_letter_queues_are_fifo_and_keep_group_order() {
    let emu = Emulator::start().await;
    let plain_dlq = emu.create("plain-dlq", &[]).await;
    let dlq = emu.fifo("jobs-dlq.fifo", false).await;
    let policy =
        |dlq: &str| format!(r#"{{"deadLetterTargetArn":"{ARN}:{dlq}","maxReceiveCount":1}}"#);
    // A FIFO source with a standard DLQ, and the reverse, are refused.
    let err = refused(
        emu.client
            .create_queue()
            .queue_name("jobs.fifo")
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::RedrivePolicy, policy("plain-dlq"))
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert!(err.message().unwrap().contains("same type"), "{err:?}");
    let err = refused(
        emu.client
            .create_queue()
            .queue_name("plain")
            .attributes(QueueAttributeName::RedrivePolicy, policy("jobs-dlq.fifo"))
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let _ = plain_dlq;

    let url = emu
        .create(
            "jobs.fifo",
            &[
                (QueueAttributeName::FifoQueue, "true"),
                (QueueAttributeName::RedrivePolicy, &policy("jobs-dlq.fifo")),
            ],
        )
        .await;
    for i in 1..=3 {
        emu.send_fifo(&url, &format!("g{i}"), "g", &format!("d{i}"))
            .await;
    }
    // Received once each, never deleted: each is dead-lettered on its next receive, in order.
    for _ in 0..3 {
        assert_eq!(emu.receive(&url, 1).await.len(), 1);
        emu.advance(30);
    }
    assert!(emu.receive(&url, 10).await.is_empty());
    let dead = emu.receive(&dlq, 10).await;
    assert_eq!(bodies_of(&dead), ["g1", "g2", "g3"]);
    // In the FIFO DLQ the deduplication id is the original message's id
    // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html).
    for m in &dead {
        let attributes = m.attributes.clone().unwrap();
        assert_eq!(
            attributes[&MessageSystemAttributeName::MessageDeduplicationId],
            m.message_id.clone().unwrap()
        );
    }
    emu.advance(30);

    // Redrive back to the source keeps the order; a move to a queue of the other type is refused.
    let err = refused(
        emu.client
            .start_message_move_task()
            .source_arn(format!("{ARN}:jobs-dlq.fifo"))
            .destination_arn(format!("{ARN}:plain-dlq"))
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    emu.client
        .start_message_move_task()
        .source_arn(format!("{ARN}:jobs-dlq.fifo"))
        .send()
        .await
        .unwrap();
    assert_eq!(emu.bodies(&url, 10).await, ["g1", "g2", "g3"]);
}

#[tokio::test]
async fn fifo_order_and_deduplication_survive_a_restart_and_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, manual) = clock::manual(t0());
    let config = SqsConfig {
        journal: Some(JournalConfig::new(dir.path())),
        ..SqsConfig::default()
    };
    let none = BTreeMap::new();
    let fifo = BTreeMap::from([("FifoQueue".to_string(), "true".to_string())]);
    let send = |engine: &SqsEngine, body: &str, dedup: &str| {
        engine
            .send_message(
                "jobs.fifo",
                OutgoingMessage::new(body).group("g").dedup(dedup),
            )
            .unwrap()
    };
    let first = {
        let engine = SqsEngine::new(config.clone(), shared.clone()).unwrap();
        engine.create_queue("jobs.fifo", &fifo, &none).unwrap();
        let first = send(&engine, "one", "d1");
        send(&engine, "two", "d2");
        let got = engine
            .receive_message("jobs.fifo", &ReceiveOptions::all_attributes(1))
            .await
            .unwrap();
        engine
            .delete_message("jobs.fifo", &got[0].receipt_handle)
            .unwrap();
        send(&engine, "three", "d3");
        first
        // Dropped without shutdown: as a kill -9 would leave the journal.
    };
    let engine = SqsEngine::new(config.clone(), shared.clone()).unwrap();
    // "one" was deleted, but its id is still a duplicate after the restart.
    assert_eq!(
        send(&engine, "one again", "d1").message_id,
        first.message_id
    );
    engine.compact().unwrap();
    drop(engine);
    let engine = SqsEngine::new(config, shared).unwrap();
    assert_eq!(
        send(&engine, "one again", "d1").message_id,
        first.message_id
    );
    let got = engine
        .receive_message("jobs.fifo", &ReceiveOptions::all_attributes(10))
        .await
        .unwrap();
    let bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["two", "three"]);
    // Five minutes after the first send, the id is free again.
    manual.advance(std::time::Duration::from_secs(300)).unwrap();
    assert_ne!(
        send(&engine, "one again", "d1").message_id,
        first.message_id
    );
}

#[tokio::test]
async fn fifo_delay_zero_is_accepted_and_queue_delays_are_retroactive() {
    let emu = Emulator::start().await;
    let url = emu.fifo("jobs.fifo", true).await;
    // DelaySeconds=0 is what many SDKs send by default: accepted.
    emu.client
        .send_message()
        .queue_url(&url)
        .message_body("zero")
        .message_group_id("g")
        .delay_seconds(0)
        .send()
        .await
        .unwrap();
    assert_eq!(emu.bodies(&url, 10).await, ["zero"]);

    // "For FIFO queues, the per-queue delay setting is retroactive"
    // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-delay-queues.html).
    let delayed = emu.fifo("delayed.fifo", true).await;
    emu.set_attribute(&delayed, QueueAttributeName::DelaySeconds, "600")
        .await;
    emu.send_fifo(&delayed, "waits", "h", "w").await;
    emu.advance(10);
    assert!(emu.receive(&delayed, 10).await.is_empty());
    emu.set_attribute(&delayed, QueueAttributeName::DelaySeconds, "60")
        .await;
    emu.advance(49);
    assert!(
        emu.receive(&delayed, 10).await.is_empty(),
        "60 s from its send"
    );
    emu.advance(1);
    assert_eq!(emu.bodies(&delayed, 10).await, ["waits"]);
}

/// On a FIFO queue a receipt handle expires with its visibility timeout, even when no one
/// received the message since (AWS answers "The receipt handle has expired.").
#[tokio::test]
async fn fifo_receipt_handles_expire_with_the_visibility_timeout() {
    let emu = Emulator::start().await;
    let url = emu.fifo("jobs.fifo", true).await;
    emu.send_fifo(&url, "m", "g", "d").await;
    let got = emu.receive(&url, 1).await;
    emu.advance(30);
    let err = refused(
        emu.client
            .delete_message()
            .queue_url(&url)
            .receipt_handle(got[0].receipt_handle().unwrap())
            .send()
            .await,
    );
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert!(err.message().unwrap().contains("has expired"), "{err:?}");
    // The message is still there, and its next receive deletes normally.
    let again = emu.receive(&url, 1).await;
    assert_eq!(again[0].body(), Some("m"));
    emu.delete_all(&url, &again).await;
    assert_eq!(
        emu.attribute(
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible
        )
        .await,
        "0"
    );
}

/// A delete unblocks the group: a receiver long-polling for it wakes at once rather than at
/// the end of its wait.
#[tokio::test]
async fn fifo_a_delete_wakes_a_receiver_waiting_for_the_group() {
    let (shared, _manual) = clock::manual(t0());
    let engine = SqsEngine::in_memory(shared);
    let fifo = BTreeMap::from([
        ("FifoQueue".to_string(), "true".to_string()),
        ("ContentBasedDeduplication".to_string(), "true".to_string()),
    ]);
    engine
        .create_queue("jobs.fifo", &fifo, &BTreeMap::new())
        .unwrap();
    for body in ["one", "two"] {
        engine
            .send_message("jobs.fifo", OutgoingMessage::new(body).group("g"))
            .unwrap();
    }
    let first = engine
        .receive_message("jobs.fifo", &ReceiveOptions::all_attributes(1))
        .await
        .unwrap();
    let waiter = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let options =
                ReceiveOptions::all_attributes(1).wait(std::time::Duration::from_secs(20));
            engine.receive_message("jobs.fifo", &options).await.unwrap()
        })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!waiter.is_finished(), "the group is blocked");
    engine
        .delete_message("jobs.fifo", &first[0].receipt_handle)
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("woken by the delete")
        .unwrap();
    assert_eq!(got[0].body, "two");
}
