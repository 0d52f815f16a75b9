//! The SQS batch processor every SQS-triggered function uses.
//!
//! It runs each record of a batch in its own task (up to a concurrency bound) and span
//! (`message_id`), and turns the results into an `SqsBatchResponse` for
//! `ReportBatchItemFailures`:
//!
//! - success: acknowledged (left out of the response, so Lambda deletes it);
//! - [`RecordError::Retryable`]: `ChangeMessageVisibility` to an exponential backoff with
//!   jitter based on `ApproximateReceiveCount` ([`crate::retry`]), then reported as a failure;
//!   on the queue's last receive (`maxReceiveCount`) it is dead-lettered with its reason
//!   instead, rather than moved there by SQS without one;
//! - [`RecordError::RetryAfter`]: the same, waiting at least the given time (a busy key);
//! - [`RecordError::Permanent`]: sent to the DLQ at once with the reason in message
//!   attributes, then acknowledged; if the DLQ cannot be reached it is reported as a failure
//!   instead, so nothing is lost;
//! - a panic: caught, reported as a (retryable) failure of that record only;
//! - records not started because the invocation's deadline is near: reported as failures.
//! - built with the `faults` feature and with `NIGHTSHIFT_FAULTS` set (and only then), the
//!   faults of `crate::faults`: a crash or
//!   a timeout before a record starts, a retryable error instead of running a record.
//!
//! A failed record without a `messageId` is reported with an empty identifier, which Lambda
//! treats as a failure of the whole batch: the only safe answer when the record cannot be named.
//!
//! For a FIFO source queue, [`BatchConfig::fifo`] keeps the order of each message group: its
//! records run one at a time in batch order, and the records after a failure are reported as
//! failures without running ([`FifoMode`], in `batch/fifo.rs`, which cites the AWS and
//! Powertools pages its rules come from). Dead letters sent to a FIFO DLQ carry the record's
//! group and a deduplication id derived from its message id.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage, SqsMessageAttribute};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, Span, error, info, info_span, warn};

#[cfg(feature = "faults")]
use crate::faults::Faults;
use crate::ports::{Attribute, Queue, Retryable};
use crate::record::{message_group_id, trace_header};

mod fifo;

pub use fifo::FifoMode;

pub use crate::record::{
    ERROR_ATTRIBUTE, ORIGINAL_ID_ATTRIBUTE, RECEIVE_COUNT_ATTRIBUTE, SOURCE_ATTRIBUTE,
    receive_count,
};

/// SQS allows at most 10 message attributes.
const MAX_ATTRIBUTES: usize = 10;

/// Why one record failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// It may succeed later: back off and let SQS redeliver it.
    #[error("retryable: {0}")]
    Retryable(String),
    /// It will never succeed: dead-letter it now with this reason.
    #[error("permanent: {0}")]
    Permanent(String),
    /// It may succeed once `after` has passed (a claim held by another invocation until its
    /// deadline): the record comes back after `after` or the backoff, whichever is longer, so
    /// waiting for a busy key never uses up receives faster than the backoff would.
    #[error("retryable after {after:?}: {reason}")]
    RetryAfter {
        /// Why it cannot run now.
        reason: String,
        /// The least time to wait.
        after: Duration,
    },
}

impl RecordError {
    /// True unless the record can never succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RecordError::Permanent(_))
    }

    /// The reason, without the class.
    pub fn reason(&self) -> &str {
        match self {
            RecordError::Retryable(r) | RecordError::Permanent(r) => r,
            RecordError::RetryAfter { reason, .. } => reason,
        }
    }

    /// On the last receive SQS allows (`max_receive_count`), a retryable failure would only
    /// come back to be moved to the DLQ by SQS, without its reason: it becomes a permanent
    /// failure that names the attempts, so the batch processor dead-letters it with the
    /// reason (and the handler can record the outcome it would otherwise never get).
    pub fn exhausted(self, receive_count: u32, max_receive_count: Option<u32>) -> Self {
        match max_receive_count {
            // A record waiting for a busy key is given up the same way: SQS would move it
            // without a reason, and if the holder does finish, the redriven copy finds its
            // work completed.
            Some(max) if self.is_retryable() && receive_count >= max => {
                RecordError::Permanent(format!(
                    "retries exhausted after {receive_count} attempts: {}",
                    self.reason()
                ))
            }
            _ => self,
        }
    }

    /// Classifies any port error by its [`Retryable`] answer.
    pub fn from_port<E: Retryable + std::fmt::Display>(err: E) -> Self {
        if err.is_retryable() {
            RecordError::Retryable(err.to_string())
        } else {
            RecordError::Permanent(err.to_string())
        }
    }
}

pub use crate::retry::Backoff;

/// Settings of a [`BatchProcessor`].
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Records processed at once.
    pub concurrency: usize,
    /// No record starts when less than this is left before the deadline.
    pub deadline_margin: Duration,
    /// Backoff for retryable failures.
    pub backoff: Backoff,
    /// The source queue's `maxReceiveCount`: a retryable failure on that receive is
    /// dead-lettered with its reason ([`RecordError::exhausted`]); `None` leaves it to SQS.
    pub max_receive_count: Option<u32>,
    /// URL of the queue the batch came from (for `ChangeMessageVisibility`).
    pub source_queue_url: Option<String>,
    /// URL of the DLQ for permanent failures.
    pub dlq_url: Option<String>,
    /// Seed for the jitter, for reproducible tests; random when `None`.
    pub jitter_seed: Option<u64>,
    /// For a FIFO source queue: the records of a message group run in order, one at a time,
    /// and a failure fails the records after it without running them ([`FifoMode`] says
    /// which: by default the rest of the batch). `None` (the default) for a standard queue,
    /// whose records run independently, up to `concurrency` at once.
    pub fifo: Option<FifoMode>,
    /// Injected faults (see `crate::faults`; only in builds with the `faults` feature, set
    /// from `NIGHTSHIFT_FAULTS` by [`crate::wiring::apply_faults`]).
    #[cfg(feature = "faults")]
    pub faults: Option<Arc<Faults>>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            concurrency: 10,
            deadline_margin: Duration::from_secs(2),
            backoff: Backoff::default(),
            max_receive_count: None,
            source_queue_url: None,
            dlq_url: None,
            jitter_seed: None,
            fifo: None,
            #[cfg(feature = "faults")]
            faults: None,
        }
    }
}

/// How a batch went, for logs, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// The response to return to Lambda.
    pub response: SqsBatchResponse,
    /// Records acknowledged after success.
    pub succeeded: usize,
    /// Records reported for retry.
    pub retried: usize,
    /// Records moved to the DLQ and acknowledged.
    pub dead_lettered: usize,
    /// Records not started before the deadline.
    pub not_started: usize,
    /// Records of a FIFO batch reported as failures without running because a record before
    /// them failed (in their group, or in the batch: [`FifoMode`]).
    pub skipped: usize,
    /// What became of each record, by message id, in the order they were settled: for
    /// metrics that name each record's fate with what only its handler knows (a job's kind).
    pub fates: Vec<(String, Fate)>,
}

impl BatchReport {
    /// Counts what became of the record `id`, and lists it in the response unless it is done.
    fn add(&mut self, id: String, fate: Fate) {
        self.fates.push((id.clone(), fate));
        match fate {
            Fate::Ran(Outcome::Succeeded) => self.succeeded += 1,
            Fate::Ran(Outcome::DeadLettered) => self.dead_lettered += 1,
            Fate::Ran(Outcome::Retried) => {
                self.retried += 1;
                self.response.add_failure(id);
            }
            Fate::Skipped => {
                warn!(message_id = %id, "a record before it failed, record not run (fifo order)");
                self.skipped += 1;
                self.response.add_failure(id);
            }
            Fate::NotStarted => {
                warn!(message_id = %id, "deadline near, record not started");
                self.not_started += 1;
                self.response.add_failure(id);
            }
        }
    }
}

/// Deadlines below this many epoch milliseconds (September 2001) cannot be absolute.
const ABSOLUTE_DEADLINE_FLOOR_MS: u64 = 1_000_000_000_000;

/// The deadline of an invocation from its context. Lambda sends an absolute epoch-millisecond
/// deadline; `cargo lambda watch` sends the timeout in milliseconds instead (600000), which
/// read as absolute lies in 1970 and would leave no time at all. A value too small to be an
/// absolute time is read as relative to now, so the functions run unchanged under both.
pub fn invocation_deadline(context: &lambda_runtime::Context) -> SystemTime {
    if context.deadline < ABSOLUTE_DEADLINE_FLOOR_MS {
        SystemTime::now() + Duration::from_millis(context.deadline)
    } else {
        context.deadline()
    }
}

/// The deadline of an invocation on `clock`: now by that clock plus the time left. In AWS the
/// clock is the system clock and this is the deadline itself; on the emulator's virtual clock
/// the deadline stays as far ahead as the real time left, so idempotency claims and the waits
/// derived from them live in the same time as everything else the function reads.
pub fn deadline_on(
    clock: &dyn crate::ports::Clock,
    deadline: SystemTime,
) -> chrono::DateTime<chrono::Utc> {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    clock.now() + chrono::Duration::from_std(left).unwrap_or(chrono::Duration::MAX)
}

/// The deadline of an invocation as a tokio instant (so paused-time tests control it).
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    Instant::now()
        + deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
}

/// How a record that ran (or failed without running) was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged after success.
    Succeeded,
    /// Reported for retry (after a visibility change).
    Retried,
    /// Moved to the DLQ and acknowledged.
    DeadLettered,
}

/// What became of one record of a batch ([`BatchReport::fates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It was settled: run, or failed without running (a FIFO record without a group).
    Ran(Outcome),
    /// A FIFO record not run because a record before it failed.
    Skipped,
    /// Not started because the deadline was near.
    NotStarted,
}

/// Runs the records of SQS batches through a handler.
#[derive(Clone)]
pub struct BatchProcessor {
    queue: Arc<dyn Queue>,
    config: BatchConfig,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl BatchProcessor {
    /// A processor that uses `queue` for visibility changes and dead-lettering.
    pub fn new(queue: Arc<dyn Queue>, config: BatchConfig) -> Self {
        let rng = match config.jitter_seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        BatchProcessor {
            queue,
            config,
            rng: Arc::new(Mutex::new(rng)),
        }
    }

    /// Processes `records` with `handler`, stopping to start new ones near `deadline`.
    ///
    /// A record's handler answers `Ok(())` (the record is done), a retryable
    /// [`RecordError`] (the record comes back after a backoff, and is dead-lettered by the
    /// processor on its last receive) or a permanent one (dead-lettered at once, with the
    /// reason in `nightshift-error`). The report's `response` is what the function returns
    /// to Lambda (`ReportBatchItemFailures`). With [`BatchConfig::fifo`] set, the records of
    /// a message group run in order, one at a time, and a failure fails the records after it
    /// without running them ([`FifoMode`]).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// use aws_lambda_events::event::sqs::SqsEvent;
    /// use nightshift::adapters::sqs::SqsQueue;
    /// use nightshift::batch::{BatchConfig, BatchProcessor, RecordError};
    ///
    /// # async fn handle(event: SqsEvent) {
    /// let queue = Arc::new(SqsQueue::from_env().await);
    /// let processor = BatchProcessor::new(queue, BatchConfig::default());
    /// let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    /// let report = processor
    ///     .process(event.records, deadline, |record| async move {
    ///         match record.body.as_deref() {
    ///             Some(body) if !body.is_empty() => Ok(()),
    ///             _ => Err(RecordError::Permanent("empty body".into())),
    ///         }
    ///     })
    ///     .await;
    /// println!("{} failed", report.response.batch_item_failures.len());
    /// # }
    /// ```
    pub async fn process<H, Fut>(
        &self,
        records: Vec<SqsMessage>,
        deadline: Instant,
        handler: H,
    ) -> BatchReport
    where
        H: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RecordError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        info!(
            records = records.len(),
            remaining_ms = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64,
            fifo = ?self.config.fifo,
            "batch received"
        );
        let report = match self.config.fifo {
            Some(mode) => self.process_fifo(records, deadline, handler, mode).await,
            None => self.process_unordered(records, deadline, handler).await,
        };
        info!(
            succeeded = report.succeeded,
            retried = report.retried,
            dead_lettered = report.dead_lettered,
            not_started = report.not_started,
            skipped = report.skipped,
            "batch processed"
        );
        report
    }

    /// A standard queue's batch: every record on its own, up to `concurrency` at once.
    async fn process_unordered<H, Fut>(
        &self,
        records: Vec<SqsMessage>,
        deadline: Instant,
        handler: Arc<H>,
    ) -> BatchReport
    where
        H: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RecordError>> + Send + 'static,
    {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = Vec::with_capacity(records.len());
        let mut unstarted = Vec::new();
        let mut records = records.into_iter();
        while let Some(record) = records.next() {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closes");
            if self.too_late(deadline) {
                unstarted.push(record);
                unstarted.extend(records.by_ref());
                break;
            }
            // Fault injection (only with NIGHTSHIFT_FAULTS): the invocation dies before this
            // record, once the records started before it are done, so their effects are in
            // place and the batch is never answered.
            #[cfg(feature = "faults")]
            if let Some(fault) = self.batch_fault(&record) {
                for (_, task) in &mut tasks {
                    let _ = task.await;
                }
                fault.strike(deadline).await;
            }
            tasks.push(self.spawn_record(record, handler.clone(), permit));
        }
        let mut report = BatchReport::default();
        for (id, task) in tasks {
            let outcome = joined(&id, task).await;
            report.add(id, Fate::Ran(outcome));
        }
        for record in unstarted {
            report.add(record.message_id.unwrap_or_default(), Fate::NotStarted);
        }
        report
    }

    /// True when less than the margin is left before `deadline`: no record starts any more.
    fn too_late(&self, deadline: Instant) -> bool {
        deadline.saturating_duration_since(Instant::now()) <= self.config.deadline_margin
    }

    /// The injected batch fault (crash or timeout) that strikes before `record`, if any.
    #[cfg(feature = "faults")]
    fn batch_fault(&self, record: &SqsMessage) -> Option<crate::faults::BatchFault> {
        self.config
            .faults
            .as_ref()
            .and_then(|f| f.batch_fault(record))
    }

    /// Starts `record` in its own task and span, holding `permit` until it is settled.
    fn spawn_record<H, Fut>(
        &self,
        record: SqsMessage,
        handler: Arc<H>,
        permit: OwnedSemaphorePermit,
    ) -> (String, JoinHandle<Outcome>)
    where
        H: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RecordError>> + Send + 'static,
    {
        let id = record.message_id.clone().unwrap_or_default();
        let span = record_span(&record);
        let this = self.clone();
        let task = tokio::spawn(
            async move {
                let _permit = permit;
                this.run_one(record, handler).await
            }
            .instrument(span),
        );
        (id, task)
    }

    async fn run_one<H, Fut>(&self, record: SqsMessage, handler: Arc<H>) -> Outcome
    where
        H: Fn(SqsMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), RecordError>> + Send + 'static,
    {
        // The handler runs in its own task so that a panic unwinds only that task. With faults
        // injected, it may fail without running, and runs with its record as the mailer's key.
        #[cfg(feature = "faults")]
        let task = {
            let faults = self.config.faults.as_ref();
            if let Some(reason) = faults.and_then(|f| f.record_error(&record)) {
                return self
                    .settle(&record, Err(RecordError::Retryable(reason)))
                    .await;
            }
            match faults {
                Some(_) => {
                    let key = crate::faults::record_key(&record);
                    tokio::spawn(
                        crate::faults::scoped(key, handler(record.clone())).in_current_span(),
                    )
                }
                None => tokio::spawn(handler(record.clone()).in_current_span()),
            }
        };
        #[cfg(not(feature = "faults"))]
        let task = tokio::spawn(handler(record.clone()).in_current_span());
        let result = match task.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => {
                let payload = join.into_panic();
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(RecordError::Retryable(format!("handler panicked: {text}")))
            }
            Err(join) => Err(RecordError::Retryable(format!("handler cancelled: {join}"))),
        };
        self.settle(&record, result).await
    }

    async fn settle(&self, record: &SqsMessage, result: Result<(), RecordError>) -> Outcome {
        let count = receive_count(record);
        match result.map_err(|e| e.exhausted(count, self.config.max_receive_count)) {
            Ok(()) => Outcome::Succeeded,
            Err(RecordError::Retryable(reason)) => {
                self.back_off(record, &reason, Duration::ZERO).await;
                Outcome::Retried
            }
            Err(RecordError::RetryAfter { reason, after }) => {
                self.back_off(record, &reason, after).await;
                Outcome::Retried
            }
            Err(RecordError::Permanent(reason)) => self.dead_letter(record, &reason).await,
        }
    }

    async fn back_off(&self, record: &SqsMessage, reason: &str, at_least: Duration) {
        let count = receive_count(record);
        let delay = self
            .config
            .backoff
            .delay(count, &mut self.rng.lock().unwrap())
            .max(at_least);
        warn!(error = %reason, retry_in_s = delay.as_secs(), "record failed, will retry");
        let (Some(url), Some(handle)) = (&self.config.source_queue_url, &record.receipt_handle)
        else {
            return;
        };
        let secs = delay
            .as_secs()
            .min(crate::retry::SQS_MAX_VISIBILITY.as_secs()) as i32;
        if let Err(e) = self.queue.change_visibility(url, handle, secs).await {
            // Not fatal: the message returns after the queue's visibility timeout instead.
            warn!(error = %e, "cannot change visibility");
        }
    }

    async fn dead_letter(&self, record: &SqsMessage, reason: &str) -> Outcome {
        let Some(dlq) = &self.config.dlq_url else {
            error!(error = %reason, "permanent failure and no dlq configured, leaving it to redrive");
            return Outcome::Retried;
        };
        let mut attributes = vec![
            Attribute::new(ERROR_ATTRIBUTE, truncate(reason, 1024)),
            Attribute::new(
                SOURCE_ATTRIBUTE,
                record.event_source_arn.clone().unwrap_or_default(),
            ),
            Attribute::new(
                ORIGINAL_ID_ATTRIBUTE,
                record.message_id.clone().unwrap_or_default(),
            ),
            Attribute::new(RECEIVE_COUNT_ATTRIBUTE, receive_count(record).to_string()),
        ];
        attributes.retain(|a| !a.value.is_empty());
        let mut originals: Vec<_> = record
            .message_attributes
            .iter()
            .filter_map(|(k, v)| original_attribute(k, v))
            .filter(|a| !a.name.starts_with("nightshift-"))
            .collect();
        originals.sort_by(|a, b| a.name.cmp(&b.name));
        attributes.extend(
            originals
                .into_iter()
                .take(MAX_ATTRIBUTES - attributes.len()),
        );
        let body = record.body.as_deref().unwrap_or("");
        // The dead letter keeps the trace of the message it copies, so the invocation of a
        // redrive is linked to it too.
        let options = fifo::dead_letter_options(dlq, record).traced(trace_header(record));
        match self.queue.send(dlq, body, &attributes, &options).await {
            Ok(dlq_id) => {
                error!(error = %reason, dlq_message_id = %dlq_id, "permanent failure, moved to dlq");
                Outcome::DeadLettered
            }
            Err(e) => {
                error!(error = %reason, dlq_error = %e, "permanent failure, dlq unreachable, will retry");
                Outcome::Retried
            }
        }
    }
}

/// The span a record is processed in: its message id, receive count and (FIFO) group, and
/// the job id once the handler knows it.
fn record_span(record: &SqsMessage) -> Span {
    info_span!(
        "record",
        message_id = record.message_id.as_deref().unwrap_or(""),
        receive_count = receive_count(record),
        group = message_group_id(record),
        job_id = tracing::field::Empty
    )
}

/// The outcome of a record's task; a task that died (a panic in our own settlement code:
/// `run_one` catches the handler's) is a failure of that record, reported for retry.
async fn joined(id: &str, task: JoinHandle<Outcome>) -> Outcome {
    task.await.unwrap_or_else(|join| {
        error!(message_id = %id, error = %join, "record task failed");
        Outcome::Retried
    })
}

/// The copy of a received message attribute for its dead letter: the same data type
/// (`Number`, `Binary.gzip`, ...) and the same value, bytes included; `None` when it has no
/// single value to copy (SQS reserves the list values and never sends them).
fn original_attribute(name: &str, value: &SqsMessageAttribute) -> Option<Attribute> {
    let data_type = value.data_type.clone().unwrap_or_else(|| "String".into());
    match (&value.binary_value, &value.string_value) {
        (Some(bytes), _) => Some(Attribute::binary(
            name,
            data_type,
            bytes::Bytes::from(bytes.0.clone()),
        )),
        (None, Some(text)) => Some(Attribute::typed(name, data_type, text.clone())),
        (None, None) => None,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_deadlines_are_read_as_timeouts() {
        let mut ctx = lambda_runtime::Context::default();
        ctx.deadline = 600_000;
        let left = invocation_deadline(&ctx)
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(
            left > Duration::from_secs(590) && left <= Duration::from_secs(600),
            "{left:?}"
        );
        ctx.deadline = 1_795_309_408_000;
        assert_eq!(invocation_deadline(&ctx), ctx.deadline());
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
