//! The batch processor's rules, independent of any function.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nightshift::adapters::memory::MemoryQueue;
use nightshift::batch::{
    BatchConfig, BatchProcessor, ERROR_ATTRIBUTE, ORIGINAL_ID_ATTRIBUTE, RecordError,
};
use nightshift::ports::QueueError;
use tokio::time::Instant;

use crate::support::*;

fn processor(queue: Arc<MemoryQueue>, concurrency: usize) -> BatchProcessor {
    BatchProcessor::new(
        queue,
        BatchConfig {
            concurrency,
            deadline_margin: Duration::from_secs(1),
            source_queue_url: Some(JOBS_URL.into()),
            dlq_url: Some(JOBS_DLQ_URL.into()),
            jitter_seed: Some(3),
            ..BatchConfig::default()
        },
    )
}

fn records(n: usize) -> Vec<aws_lambda_events::sqs::SqsMessage> {
    (0..n)
        .map(|i| record(&format!("m{i}"), &format!("body-{i}"), 1))
        .collect()
}

#[tokio::test]
async fn partial_failure_reports_only_failed_ids() {
    let queue = Arc::new(MemoryQueue::default());
    let report = processor(queue.clone(), 4)
        .process(
            records(5),
            Instant::now() + Duration::from_secs(30),
            |r| async move {
                match r.body.as_deref() {
                    Some("body-1") => Err(RecordError::Retryable("throttled".into())),
                    Some("body-3") => Err(RecordError::Permanent("bad input".into())),
                    _ => Ok(()),
                }
            },
        )
        .await;
    assert_eq!(failed_ids(&report.response), ["m1"]);
    assert_eq!(
        (report.succeeded, report.retried, report.dead_lettered),
        (3, 1, 1)
    );
    // The retryable one got a backoff visibility timeout on its own receipt handle.
    let vis = queue.visibility_changes();
    assert_eq!(vis.len(), 1);
    assert_eq!(
        (vis[0].0.as_str(), vis[0].1.as_str()),
        (JOBS_URL, "rh-m1-1")
    );
    assert!(
        (5..=10).contains(&vis[0].2),
        "first retry waits 5-10 s, got {}",
        vis[0].2
    );
    // The permanent one is in the DLQ with its reason, and acknowledged.
    let dlq = queue.sent_to(JOBS_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].body, "body-3");
    let attr = |name: &str| {
        dlq[0]
            .attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.clone())
    };
    assert_eq!(attr(ERROR_ATTRIBUTE).as_deref(), Some("bad input"));
    assert_eq!(attr(ORIGINAL_ID_ATTRIBUTE).as_deref(), Some("m3"));
}

#[tokio::test]
async fn backoff_grows_with_receive_count() {
    let queue = Arc::new(MemoryQueue::default());
    let recs = vec![
        record("a", "x", 1),
        record("b", "x", 4),
        record("c", "x", 30),
    ];
    processor(queue.clone(), 1)
        .process(recs, Instant::now() + Duration::from_secs(30), |_| async {
            Err(RecordError::Retryable("down".into()))
        })
        .await;
    let secs: Vec<i32> = queue.visibility_changes().iter().map(|v| v.2).collect();
    // Backoff::default(): 10 s doubling to 15 min, in the upper half (nightshift::retry).
    assert!((5..=10).contains(&secs[0]), "{secs:?}");
    assert!((40..=80).contains(&secs[1]), "{secs:?}");
    assert!((450..=900).contains(&secs[2]), "{secs:?}");
}

#[tokio::test]
async fn a_panic_fails_only_its_record() {
    let queue = Arc::new(MemoryQueue::default());
    let report = processor(queue, 3)
        .process(
            records(4),
            Instant::now() + Duration::from_secs(30),
            |r| async move {
                if r.body.as_deref() == Some("body-2") {
                    panic!("boom in record 2");
                }
                Ok(())
            },
        )
        .await;
    assert_eq!(failed_ids(&report.response), ["m2"]);
    assert_eq!(report.succeeded, 3);
}

#[tokio::test(start_paused = true)]
async fn stops_starting_records_near_the_deadline() {
    let queue = Arc::new(MemoryQueue::default());
    let started = Arc::new(AtomicUsize::new(0));
    let seen = started.clone();
    // One at a time, one second each; 3.5 s left and a 1 s margin: records start at t=0,1,2;
    // at t=3 only 0.5 s is left, so m3 and m4 are not started.
    let report = processor(queue, 1)
        .process(
            records(5),
            Instant::now() + Duration::from_millis(3500),
            move |_| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(())
                }
            },
        )
        .await;
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(report.not_started, 2);
    assert_eq!(failed_ids(&report.response), ["m3", "m4"]);
}

#[tokio::test]
async fn unreachable_dlq_keeps_the_record() {
    let queue = Arc::new(MemoryQueue::default());
    queue.fail_next(QueueError::Transient("dlq down".into()));
    let report = processor(queue.clone(), 1)
        .process(
            records(1),
            Instant::now() + Duration::from_secs(30),
            |_| async { Err(RecordError::Permanent("bad".into())) },
        )
        .await;
    assert_eq!(
        failed_ids(&report.response),
        ["m0"],
        "not acknowledged, so not lost"
    );
    assert!(queue.sent_to(JOBS_DLQ_URL).is_empty());
}

#[tokio::test]
async fn a_failed_record_without_id_fails_the_whole_batch() {
    let queue = Arc::new(MemoryQueue::default());
    let mut recs = records(2);
    recs[1].message_id = None;
    let report = processor(queue, 2)
        .process(recs, Instant::now() + Duration::from_secs(30), |_| async {
            Err(RecordError::Retryable("x".into()))
        })
        .await;
    // An empty itemIdentifier is Lambda's signal for "the whole batch failed".
    assert!(failed_ids(&report.response).contains(&String::new()));
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    let queue = Arc::new(MemoryQueue::default());
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (l, p) = (live.clone(), peak.clone());
    processor(queue, 3)
        .process(
            records(10),
            Instant::now() + Duration::from_secs(30),
            move |_| {
                let (l, p) = (l.clone(), p.clone());
                async move {
                    let now = l.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    l.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        )
        .await;
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert!(
        peak.load(Ordering::SeqCst) >= 2,
        "records did run concurrently"
    );
}

#[tokio::test]
async fn a_dead_letter_keeps_the_data_type_and_bytes_of_each_attribute() {
    use nightshift::ports::Attribute;
    let queue = Arc::new(MemoryQueue::default());
    let records = sqs_event("sqs-event-typed-attributes.json").records;
    processor(queue.clone(), 1)
        .process(
            records,
            Instant::now() + Duration::from_secs(30),
            |_| async { Err(RecordError::Permanent("unknown job kind".into())) },
        )
        .await;
    let dlq = queue.sent_to(JOBS_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    let originals: Vec<&Attribute> = dlq[0]
        .attributes
        .iter()
        .filter(|a| !a.name.starts_with("nightshift-"))
        .collect();
    assert_eq!(
        originals,
        [
            &Attribute::binary(
                "checksum",
                "Binary",
                bytes::Bytes::from_static(&[0, 159, 255])
            ),
            &Attribute::typed("priority", "Number", "7"),
            &Attribute::typed("ratio", "Number.float", "0.25"),
            &Attribute::new("tenant", "acme"),
            &Attribute::binary(
                "trace",
                "Binary.gzip",
                bytes::Bytes::from_static(&[31, 139, 8, 0, 0, 0, 0, 0, 0, 255])
            ),
        ]
    );
    // The reason and the other nightshift attributes are Strings.
    let reason = dlq[0]
        .attributes
        .iter()
        .find(|a| a.name == ERROR_ATTRIBUTE)
        .unwrap();
    assert_eq!(reason, &Attribute::new(ERROR_ATTRIBUTE, "unknown job kind"));
}

/// The same through the emulator's SQS endpoint: typed attributes sent with the SQS adapter
/// reach queue-processor, and the dead letter it writes with the adapter keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_attributes_survive_dead_lettering_over_sqs() {
    use nightshift::adapters::sqs::SqsQueue;
    use nightshift::ports::{Attribute, Queue, SendOptions};
    let (h, _dirs) = crate::emulator::start("2026-11-21T09:30:00Z").await;
    let jobs = format!("{}/000000000000/nightshift-jobs", h.endpoint());
    SqsQueue::for_endpoint(&h.endpoint(), "us-east-1")
        .send(
            &jobs,
            &fixture("jobs/unknown-kind.json"),
            &[
                Attribute::new("tenant", "acme"),
                Attribute::typed("priority", "Number", "7"),
                Attribute::binary("trace", "Binary.gzip", bytes::Bytes::from_static(&[0, 255])),
            ],
            &SendOptions::default(),
        )
        .await
        .unwrap();
    h.run_until_idle().await.unwrap();
    let dlq = h.messages("jobs-dlq").unwrap();
    assert_eq!(dlq.len(), 1);
    let attrs = &dlq[0].message_attributes;
    let typed = |name: &str| {
        let a = &attrs[name];
        (
            a.data_type.as_str(),
            a.string_value.as_deref(),
            a.binary_value.as_deref(),
        )
    };
    assert_eq!(typed("tenant"), ("String", Some("acme"), None));
    assert_eq!(typed("priority"), ("Number", Some("7"), None));
    assert_eq!(typed("trace"), ("Binary.gzip", None, Some(&[0u8, 255][..])));
    assert_eq!(typed(ERROR_ATTRIBUTE).0, "String");
    h.shutdown().await;
}
