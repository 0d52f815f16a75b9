//! The batch processor's FIFO mode ([`super::BatchConfig::fifo`]): the semantics of
//! Powertools' `SqsFifoPartialProcessor`, with its `skip_group_on_error` option.
//!
//! Where the rules come from:
//!
//! - SQS delivers the messages of one message group in order, one at a time
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-key-terms.html>),
//!   and a group's messages that are received but not deleted (in flight) block the delivery
//!   of the rest of that group
//!   (<https://repost.aws/knowledge-center/sqs-fifo-messages-not-returned>).
//! - The Lambda guide on partial batch responses asks a function reading a FIFO queue to stop
//!   at the first failure and to report the failed record and every unprocessed one after it
//!   in `batchItemFailures`, so the queue keeps its order
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>).
//! - Powertools does exactly that by default and, with `skip_group_on_error`, fails only the
//!   rest of the failing message group and goes on with the others
//!   (<https://docs.aws.amazon.com/powertools/python/latest/api/utilities/batch/sqs_fifo_partial_processor.html>,
//!   <https://docs.powertools.aws.dev/lambda/python/latest/utilities/batch/>).
//!
//! What counts as a failure that stops a group (or the batch): a record reported for retry
//! (a retryable error, a panic, a permanent error whose dead-lettering failed or has no DLQ)
//! and a record not started because the deadline is near. A record dead-lettered for a
//! permanent failure (or on its last receive, [`super::RecordError::exhausted`]) is handled:
//! like Powertools, which counts a record whose handler did not raise as a success, the group
//! goes on. It has left the source queue with its reason, and the next record of the group is
//! the next in order.
//!
//! Visibility: the failed record gets its backoff (`ChangeMessageVisibility`), which holds its
//! whole group back for as long, as FIFO wants. The records after it that never ran keep the
//! queue's visibility timeout, untouched: while the failed record is in flight SQS delivers
//! nothing after it in its group, so shortening theirs would not bring them back sooner, and
//! lengthening them would only delay the group once the failed record succeeds. Records of
//! other groups left unrun by [`FifoMode::StopOnFirstFailure`] come back after the visibility
//! timeout, as every reported failure does; [`FifoMode::SkipGroupOnError`] avoids that wait.
//! Each unrun record's `ApproximateReceiveCount` still grows with every delivery, so a group
//! that keeps failing can push the records behind its head to `maxReceiveCount`: SQS then
//! moves them to the DLQ without a reason (the processor runs none of them, so it cannot give
//! one).
//!
//! A record without `MessageGroupId` (SQS sets one on every record of a FIFO queue, so the
//! source is a standard queue and FIFO mode is misconfigured) is not run: it fails as
//! retryable with a reason naming the problem, so it backs off, is dead-lettered with that
//! reason on its last receive, and never runs out of an order nobody can know. In
//! [`FifoMode::StopOnFirstFailure`] it stops the batch like any failure; in
//! [`FifoMode::SkipGroupOnError`] it has no group and fails alone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::sqs::SqsMessage;
use futures::future::join_all;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{Instrument, error};

use super::{BatchProcessor, BatchReport, Fate, Outcome, RecordError, joined, record_span};
use crate::idempotency::fingerprint;
use crate::ports::SendOptions;
use crate::record::message_group_id;

/// The reason a record without a message group fails in FIFO mode.
const NO_GROUP: &str = "no MessageGroupId: fifo mode needs a fifo source queue";

/// How a FIFO batch goes on after a record fails ([`super::BatchConfig::fifo`]).
///
/// In both modes the records of one message group run in batch order, one at a time, and the
/// records of the failing group after the failure are reported as failures without running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FifoMode {
    /// Powertools' default (`SqsFifoPartialProcessor()`): the whole batch runs one record at a
    /// time, in order, whatever `concurrency` says; the first failure stops it, and it and
    /// every record after it, of any group, are reported as failures.
    ///
    /// The default because it is what the Lambda guide asks of a FIFO consumer
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>) and
    /// what Powertools does unless told otherwise (`skip_group_on_error=False`), and because
    /// it stays right when the order that matters crosses groups (a record of one group that
    /// needs an earlier record of another to have run): choose
    /// [`FifoMode::SkipGroupOnError`] only when the groups are independent.
    #[default]
    StopOnFirstFailure,
    /// Powertools' `skip_group_on_error=True`: each group runs in order, one record at a time,
    /// and groups run side by side, `concurrency` records at once; a failure reports the rest
    /// of its own group only, and the other groups go on. With `concurrency: 1` the groups
    /// take turns record by record; the answer to Lambda is the same either way.
    SkipGroupOnError,
}

impl BatchProcessor {
    /// A FIFO queue's batch, by `mode`; the response lists the failures in batch order.
    pub(super) async fn process_fifo<H, Fut>(
        &self,
        records: Vec<SqsMessage>,
        deadline: Instant,
        handler: Arc<H>,
        mode: FifoMode,
    ) -> BatchReport
    where
        H: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RecordError>> + Send + 'static,
    {
        let mut ids: Vec<String> = records
            .iter()
            .map(|r| r.message_id.clone().unwrap_or_default())
            .collect();
        let (sequences, concurrency) = match mode {
            FifoMode::StopOnFirstFailure => (vec![records.into_iter().enumerate().collect()], 1),
            FifoMode::SkipGroupOnError => (by_group(records), self.config.concurrency.max(1)),
        };
        let permits = Arc::new(Semaphore::new(concurrency));
        let runs = sequences
            .into_iter()
            .map(|sequence| self.run_in_order(sequence, deadline, &handler, &permits));
        let mut fates: Vec<(usize, Fate)> = join_all(runs).await.into_iter().flatten().collect();
        fates.sort_by_key(|(at, _)| *at);
        let mut report = BatchReport::default();
        for (at, fate) in fates {
            report.add(std::mem::take(&mut ids[at]), fate);
        }
        report
    }

    /// Runs `sequence` (records with their place in the batch) one record at a time; once one
    /// fails, the rest are reported without running: skipped, or not started when the
    /// deadline stopped it.
    async fn run_in_order<H, Fut>(
        &self,
        sequence: Vec<(usize, SqsMessage)>,
        deadline: Instant,
        handler: &Arc<H>,
        permits: &Arc<Semaphore>,
    ) -> Vec<(usize, Fate)>
    where
        H: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RecordError>> + Send + 'static,
    {
        let mut fates = Vec::with_capacity(sequence.len());
        let mut rest = None;
        for (at, record) in sequence {
            if let Some(fate) = rest {
                fates.push((at, fate));
                continue;
            }
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closes");
            let fate = if self.too_late(deadline) {
                Fate::NotStarted
            } else if message_group_id(&record).is_none() {
                Fate::Ran(self.settle_ungrouped(&record).await)
            } else {
                // Fault injection (only with NIGHTSHIFT_FAULTS): the invocation dies before
                // this record; the records before it in its sequence are settled.
                #[cfg(feature = "faults")]
                if let Some(fault) = self.batch_fault(&record) {
                    fault.strike(deadline).await;
                }
                let (id, task) = self.spawn_record(record, handler.clone(), permit);
                Fate::Ran(joined(&id, task).await)
            };
            rest = match fate {
                Fate::Ran(Outcome::Retried) => Some(Fate::Skipped),
                Fate::NotStarted => Some(Fate::NotStarted),
                // Done, or dead-lettered and acknowledged: handled, the sequence goes on (see
                // the module docs).
                Fate::Ran(Outcome::Succeeded | Outcome::DeadLettered) | Fate::Skipped => None,
            };
            fates.push((at, fate));
        }
        fates
    }

    /// Fails a record that has no message group without running it (see the module docs).
    async fn settle_ungrouped(&self, record: &SqsMessage) -> Outcome {
        async {
            error!(
                "fifo mode, but the record has no MessageGroupId: is the source a standard queue?"
            );
            self.settle(record, Err(RecordError::Retryable(NO_GROUP.into())))
                .await
        }
        .instrument(record_span(record))
        .await
    }
}

/// The records of a batch as sequences that keep their order: one per message group, in the
/// order the groups first appear, and one of its own for each record without a group.
fn by_group(records: Vec<SqsMessage>) -> Vec<Vec<(usize, SqsMessage)>> {
    let mut sequences: Vec<Vec<(usize, SqsMessage)>> = Vec::new();
    let mut of_group: HashMap<String, usize> = HashMap::new();
    for (at, record) in records.into_iter().enumerate() {
        let Some(group) = message_group_id(&record).map(str::to_owned) else {
            sequences.push(vec![(at, record)]);
            continue;
        };
        let index = *of_group.entry(group).or_insert_with(|| {
            sequences.push(Vec::new());
            sequences.len() - 1
        });
        sequences[index].push((at, record));
    }
    sequences
}

/// The FIFO parameters of the dead letter of `record` sent to `dlq_url`: none for a standard
/// DLQ. A FIFO DLQ (its URL ends in `.fifo`) requires a group and a deduplication id: the
/// group is the record's (so a group's dead letters keep their order; a record without one
/// gets its message id, a group of its own), and the deduplication id is the SHA-256 of the
/// original message id, so dead-lettering the same record again within SQS's 5-minute
/// deduplication interval (the send went through but the invocation died before answering)
/// is accepted without a second copy. A record without a message id falls back to its body,
/// SQS's content-based deduplication.
pub(super) fn dead_letter_options(dlq_url: &str, record: &SqsMessage) -> SendOptions {
    if !dlq_url.ends_with(".fifo") {
        return SendOptions::default();
    }
    let id = record.message_id.as_deref().filter(|id| !id.is_empty());
    let group = message_group_id(record)
        .or(id)
        .unwrap_or("nightshift-ungrouped");
    let dedup = match id {
        Some(id) => fingerprint(id.as_bytes()),
        None => fingerprint(record.body.as_deref().unwrap_or("").as_bytes()),
    };
    SendOptions::fifo(group, dedup)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use aws_lambda_events::sqs::SqsEvent;
    use futures::future::BoxFuture;

    use super::*;
    use crate::adapters::memory::MemoryQueue;
    use crate::batch::{BatchConfig, ERROR_ATTRIBUTE};
    use crate::record::{MESSAGE_GROUP_ID, receive_count};

    const SOURCE: &str = "https://sqs.us-east-2.amazonaws.com/123456789012/fifo.fifo";
    const DLQ: &str = "https://sqs.us-east-2.amazonaws.com/123456789012/fifo-dlq.fifo";
    const WORK: Duration = Duration::from_millis(100);

    /// The FIFO event of the Lambda guide's "Example Amazon SQS message event (FIFO queue)"
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>), with two more records
    /// of the same shape.
    fn fixture() -> SqsEvent {
        let json = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/sqs-event-fifo.json"
        ));
        serde_json::from_str(json).expect("the fixture is an SQS event")
    }

    /// The fixture's first record as `id`, in the group named by the letter `id` starts with
    /// (`a2` is the second record of group `a`); `x...` records have no group.
    fn record(id: &str) -> SqsMessage {
        let mut record = fixture().records.remove(0);
        record.message_id = Some(id.into());
        record.receipt_handle = Some(format!("rh-{id}"));
        record.body = Some(format!("body-{id}"));
        match &id[..1] {
            "x" => record.attributes.remove(MESSAGE_GROUP_ID),
            group => record
                .attributes
                .insert(MESSAGE_GROUP_ID.into(), group.into()),
        };
        record
    }

    fn batch(ids: &[&str]) -> Vec<SqsMessage> {
        ids.iter().map(|id| record(id)).collect()
    }

    fn processor(queue: &Arc<MemoryQueue>, mode: FifoMode, concurrency: usize) -> BatchProcessor {
        BatchProcessor::new(
            queue.clone(),
            BatchConfig {
                concurrency,
                deadline_margin: Duration::from_secs(1),
                max_receive_count: Some(5),
                source_queue_url: Some(SOURCE.into()),
                dlq_url: Some(DLQ.into()),
                jitter_seed: Some(1),
                fifo: Some(mode),
                ..BatchConfig::default()
            },
        )
    }

    /// What the handlers saw: `+id` when a record started, `-id` when it finished, in the
    /// order it happened, and the most records running at once.
    #[derive(Default)]
    struct Trace {
        events: Mutex<Vec<String>>,
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl Trace {
        fn events(&self) -> Vec<String> {
            self.events.lock().unwrap().clone()
        }

        /// The ids of the records that started, in order.
        fn ran(&self) -> Vec<String> {
            self.events()
                .iter()
                .filter_map(|e| e.strip_prefix('+').map(str::to_owned))
                .collect()
        }

        /// The events of the records of `group`.
        fn of_group(&self, group: &str) -> Vec<String> {
            self.events()
                .into_iter()
                .filter(|e| e[1..].starts_with(group))
                .collect()
        }
    }

    /// A handler that traces its records, works for `work` (paused time: the work yields),
    /// and then answers what `verdict` says about the record's id.
    fn traced(
        trace: &Arc<Trace>,
        work: Duration,
        verdict: fn(&str) -> Result<(), RecordError>,
    ) -> impl Fn(SqsMessage) -> BoxFuture<'static, Result<(), RecordError>> + Send + Sync + 'static
    {
        let trace = trace.clone();
        move |record| {
            let trace = trace.clone();
            Box::pin(async move {
                let id = record.message_id.clone().unwrap();
                trace.events.lock().unwrap().push(format!("+{id}"));
                let now = trace.running.fetch_add(1, Ordering::SeqCst) + 1;
                trace.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(work).await;
                trace.running.fetch_sub(1, Ordering::SeqCst);
                trace.events.lock().unwrap().push(format!("-{id}"));
                verdict(&id)
            })
        }
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn failed_ids(report: &BatchReport) -> Vec<String> {
        report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    fn ok(_: &str) -> Result<(), RecordError> {
        Ok(())
    }

    /// Interleaved groups: a (4 records), b (3), c (2).
    const MIXED: [&str; 9] = ["a1", "b1", "a2", "c1", "b2", "a3", "c2", "b3", "a4"];

    /// Runs [`MIXED`] through `mode`, four records at once, each working for [`WORK`].
    async fn run_mixed(
        queue: &Arc<MemoryQueue>,
        mode: FifoMode,
        verdict: fn(&str) -> Result<(), RecordError>,
    ) -> (Arc<Trace>, BatchReport) {
        let trace = Arc::new(Trace::default());
        let report = processor(queue, mode, 4)
            .process(batch(&MIXED), deadline(), traced(&trace, WORK, verdict))
            .await;
        (trace, report)
    }

    #[test]
    fn the_lambda_fifo_event_parses_with_its_fifo_attributes() {
        let event = fixture();
        assert_eq!(event.records.len(), 3);
        let first = &event.records[0];
        assert_eq!(
            first.message_id.as_deref(),
            Some("11d6ee51-4cc7-4302-9e22-7cd8afdaadf5")
        );
        assert_eq!(message_group_id(first), Some("1"));
        assert_eq!(receive_count(first), 1);
        for name in [
            "MessageDeduplicationId",
            "SequenceNumber",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        ] {
            assert!(first.attributes.contains_key(name), "{name} missing");
        }
        assert!(
            first
                .event_source_arn
                .as_deref()
                .is_some_and(|arn| arn.ends_with(".fifo"))
        );
        let groups: Vec<_> = event.records.iter().map(message_group_id).collect();
        assert_eq!(groups, [Some("1"), Some("2"), Some("1")]);
        assert_eq!(receive_count(&event.records[1]), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn groups_keep_their_order_and_run_side_by_side() {
        let started = Instant::now();
        let (trace, report) = run_mixed(&Default::default(), FifoMode::SkipGroupOnError, ok).await;
        assert!(failed_ids(&report).is_empty());
        assert_eq!(report.succeeded, 9);
        // Within a group: one at a time, in batch order.
        for (group, n) in [("a", 4), ("b", 3), ("c", 2)] {
            let expected: Vec<String> = (1..=n)
                .flat_map(|i| [format!("+{group}{i}"), format!("-{group}{i}")])
                .collect();
            assert_eq!(trace.of_group(group), expected);
        }
        // Across groups: all three at once, so the batch takes as long as its longest group.
        assert_eq!(trace.most.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), WORK * 4);
    }

    #[tokio::test(start_paused = true)]
    async fn groups_share_the_concurrency_bound() {
        let queue = Arc::new(MemoryQueue::default());
        let trace = Arc::new(Trace::default());
        processor(&queue, FifoMode::SkipGroupOnError, 2)
            .process(batch(&MIXED), deadline(), traced(&trace, WORK, ok))
            .await;
        assert_eq!(trace.most.load(Ordering::SeqCst), 2);
        assert_eq!(trace.ran().len(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn by_default_the_whole_batch_runs_in_order_one_at_a_time() {
        assert_eq!(FifoMode::default(), FifoMode::StopOnFirstFailure);
        let (trace, report) = run_mixed(&Default::default(), FifoMode::default(), ok).await;
        assert_eq!(report.succeeded, 9);
        assert_eq!(trace.most.load(Ordering::SeqCst), 1);
        assert_eq!(trace.ran(), MIXED);
    }

    fn a2_retries(id: &str) -> Result<(), RecordError> {
        match id {
            "a2" => Err(RecordError::Retryable("throttled".into())),
            _ => Ok(()),
        }
    }

    fn a2_panics(id: &str) -> Result<(), RecordError> {
        match id {
            "a2" => panic!("boom in a2"),
            _ => Ok(()),
        }
    }

    /// A retryable error and a panic alike.
    #[tokio::test(start_paused = true)]
    async fn skip_group_on_error_fails_the_rest_of_the_group_only() {
        for verdict in [a2_retries, a2_panics] {
            let queue = Arc::new(MemoryQueue::default());
            let (trace, report) = run_mixed(&queue, FifoMode::SkipGroupOnError, verdict).await;
            // The failed record and the two after it in its group, in order; a3 and a4 never
            // ran.
            assert_eq!(failed_ids(&report), ["a2", "a3", "a4"]);
            assert!(!trace.ran().iter().any(|id| id == "a3" || id == "a4"));
            // The other groups completed.
            assert_eq!(trace.of_group("b").len() + trace.of_group("c").len(), 2 * 5);
            assert_eq!(
                (report.succeeded, report.retried, report.skipped),
                (6, 1, 2)
            );
            // Only the record that ran and failed backs off; it holds its group back in SQS.
            let backed_off: Vec<_> = queue
                .visibility_changes()
                .into_iter()
                .map(|(url, handle, _)| format!("{url} {handle}"))
                .collect();
            assert_eq!(backed_off, [format!("{SOURCE} rh-a2")]);
            assert!(queue.sent().is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stop_on_first_failure_fails_every_record_after_it() {
        let queue = Arc::new(MemoryQueue::default());
        let (trace, report) = run_mixed(&queue, FifoMode::StopOnFirstFailure, a2_retries).await;
        assert_eq!(trace.ran(), ["a1", "b1", "a2"]);
        assert_eq!(
            failed_ids(&report),
            ["a2", "c1", "b2", "a3", "c2", "b3", "a4"]
        );
        assert_eq!(
            (report.succeeded, report.retried, report.skipped),
            (2, 1, 6)
        );
        assert_eq!(queue.visibility_changes().len(), 1);
    }

    fn a2_is_poison(id: &str) -> Result<(), RecordError> {
        match id {
            "a2" => Err(RecordError::Permanent("bad input".into())),
            _ => Ok(()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_lettered_record_lets_its_group_go_on() {
        let queue = Arc::new(MemoryQueue::default());
        // The strictest mode: even the batch goes on past a handled record.
        let (trace, report) = run_mixed(&queue, FifoMode::StopOnFirstFailure, a2_is_poison).await;
        assert!(failed_ids(&report).is_empty());
        assert_eq!(trace.ran(), MIXED);
        assert_eq!((report.succeeded, report.dead_lettered), (8, 1));
        let dlq = queue.sent_to(DLQ);
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq[0].body, "body-a2");
        assert_eq!(
            dlq[0].options,
            SendOptions::fifo("a", fingerprint("a2".as_bytes()))
        );
        let reason = dlq[0].attributes.iter().find(|a| a.name == ERROR_ATTRIBUTE);
        assert_eq!(reason.map(|a| a.value.as_str()), Some("bad input"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_dlq_stops_the_group() {
        let queue = Arc::new(MemoryQueue::default());
        queue.fail_next(crate::ports::QueueError::Transient("throttled".into()));
        let (_, report) = run_mixed(&queue, FifoMode::SkipGroupOnError, a2_is_poison).await;
        assert_eq!(failed_ids(&report), ["a2", "a3", "a4"]);
        assert_eq!(report.dead_lettered, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_receive_is_dead_lettered_and_the_group_goes_on() {
        let queue = Arc::new(MemoryQueue::default());
        let trace = Arc::new(Trace::default());
        let mut records = batch(&["a1", "a2", "a3"]);
        // maxReceiveCount is 5: this is a2's last receive.
        records[1]
            .attributes
            .insert("ApproximateReceiveCount".into(), "5".into());
        let report = processor(&queue, FifoMode::SkipGroupOnError, 4)
            .process(records, deadline(), traced(&trace, WORK, a2_retries))
            .await;
        assert!(failed_ids(&report).is_empty());
        assert_eq!(trace.ran(), ["a1", "a2", "a3"]);
        let dlq = queue.sent_to(DLQ);
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq[0].options.group_id.as_deref(), Some("a"));
        let reason = dlq[0].attributes.iter().find(|a| a.name == ERROR_ATTRIBUTE);
        assert_eq!(
            reason.map(|a| a.value.as_str()),
            Some("retries exhausted after 5 attempts: throttled")
        );
        assert!(queue.visibility_changes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_every_group_mid_way() {
        let queue = Arc::new(MemoryQueue::default());
        let trace = Arc::new(Trace::default());
        // 10 s a record, 25 s left, a 1 s margin: each group runs three records.
        let report = processor(&queue, FifoMode::SkipGroupOnError, 2)
            .process(
                batch(&["a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4"]),
                Instant::now() + Duration::from_secs(25),
                traced(&trace, Duration::from_secs(10), ok),
            )
            .await;
        assert_eq!(failed_ids(&report), ["a4", "b4"]);
        assert_eq!((report.succeeded, report.not_started), (6, 2));
        assert_eq!(trace.ran().len(), 6);
        assert!(queue.visibility_changes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn records_without_a_group_fail_without_running() {
        for (mode, failed, ran) in [
            (FifoMode::SkipGroupOnError, vec!["x1"], vec!["a1", "a2"]),
            (FifoMode::StopOnFirstFailure, vec!["x1", "a2"], vec!["a1"]),
        ] {
            let queue = Arc::new(MemoryQueue::default());
            let trace = Arc::new(Trace::default());
            let report = processor(&queue, mode, 4)
                .process(
                    batch(&["a1", "x1", "a2"]),
                    deadline(),
                    traced(&trace, WORK, ok),
                )
                .await;
            assert_eq!(failed_ids(&report), failed, "{mode:?}");
            assert_eq!(trace.ran(), ran, "{mode:?}");
            // It backs off like any retryable failure, and is dead-lettered with the reason
            // on its last receive.
            let visibility = queue.visibility_changes();
            assert_eq!(visibility.len(), 1, "{mode:?}");
            assert_eq!(visibility[0].1, "rh-x1");
        }
        let queue = Arc::new(MemoryQueue::default());
        let mut last = record("x1");
        last.attributes
            .insert("ApproximateReceiveCount".into(), "5".into());
        let report = processor(&queue, FifoMode::SkipGroupOnError, 4)
            .process(vec![last], deadline(), |_| async { Ok(()) })
            .await;
        assert_eq!(report.dead_lettered, 1);
        let dlq = queue.sent_to(DLQ);
        let reason = dlq[0].attributes.iter().find(|a| a.name == ERROR_ATTRIBUTE);
        assert!(
            reason.is_some_and(|a| a.value.contains(NO_GROUP)),
            "{dlq:?}"
        );
        // On a FIFO DLQ a record without a group is a group of its own.
        assert_eq!(dlq[0].options.group_id.as_deref(), Some("x1"));
    }

    #[test]
    fn dead_letter_options_are_deterministic_and_only_for_fifo_dlqs() {
        let a2 = record("a2");
        let options = dead_letter_options(DLQ, &a2);
        assert_eq!(options, dead_letter_options(DLQ, &a2.clone()));
        assert_eq!(options.group_id.as_deref(), Some("a"));
        assert_ne!(
            options.dedup_id,
            dead_letter_options(DLQ, &record("a3")).dedup_id
        );
        assert_eq!(
            dead_letter_options("https://sqs.us-east-2.amazonaws.com/123456789012/dlq", &a2),
            SendOptions::default()
        );
        // Without a message id: content-based, like SQS's own.
        let mut anonymous = record("a5");
        anonymous.message_id = None;
        assert_eq!(
            dead_letter_options(DLQ, &anonymous).dedup_id,
            Some(fingerprint(b"body-a5"))
        );
    }

    #[test]
    fn groups_keep_their_first_appearance_order() {
        let sequences = by_group(batch(&["b1", "a1", "x1", "b2", "a2"]));
        let ids: Vec<Vec<(usize, String)>> = sequences
            .iter()
            .map(|s| {
                s.iter()
                    .map(|(at, r)| (*at, r.message_id.clone().unwrap()))
                    .collect()
            })
            .collect();
        assert_eq!(
            ids,
            [
                vec![(0, "b1".to_string()), (3, "b2".to_string())],
                vec![(1, "a1".to_string()), (4, "a2".to_string())],
                vec![(2, "x1".to_string())],
            ]
        );
    }
}
