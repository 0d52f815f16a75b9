//! queue-processor: the SQS-triggered Lambda that runs typed jobs from the jobs queue and,
//! in order per SKU, inventory adjustments from the inventory FIFO queue.
//!
//! For each record: decode the [`JobEnvelope`], claim the job id, run the job for its `kind`
//! ([`jobs`]), enqueue the emails it asks for, schedule and cancel the later jobs it asks for
//! ([`Scheduler`]: EventBridge Scheduler puts them on the jobs queue at their time), apply its
//! adjustment in its key's sequence ([`Store::apply_in_sequence`]), record a [`JobOutcome`],
//! complete the claim.
//! Malformed bodies, unknown kinds and invalid payloads are permanent (DLQ at once); queue and
//! store trouble is retryable (backoff, then SQS redrive). An adjustment whose earlier
//! sequence numbers are not consumed yet waits (retryable) instead of applying out of order;
//! one dead-lettered for good gives up its sequence number ([`Store::skip_in_sequence`]) so
//! the SKU's next adjustment can apply.
//!
//! Records from a FIFO queue (an `eventSourceARN` ending in `.fifo`) go through a second
//! [`BatchProcessor`] in [`FifoMode::SkipGroupOnError`]: each SKU (message group) in order,
//! one record at a time, and a failing SKU holds back only its own later records.
//!
//! Layout: [`jobs`] holds the pure job kinds; [`metrics`] what each invocation reports to
//! CloudWatch (EMF on stdout); this file wires dependencies ([`Deps`]) and the per-record
//! flow; `main.rs` only builds clients and starts the runtime.

pub mod jobs;
pub mod metrics;

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, TimeZone, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::batch::{
    BatchConfig, BatchProcessor, FifoMode, RecordError, deadline_instant, invocation_deadline,
    receive_count,
};
use nightshift::config::{ConfigError, Env};
use nightshift::contracts::{CONTRACT_VERSION, JobEnvelope, JobOutcome, OutcomeStatus};
use nightshift::idempotency::{Begin, Idempotency};
use nightshift::metrics::Emitter;
use nightshift::ports::{
    Clock, Queue, Retryable, Scheduler, SendOptions, SequenceOutcome, Store, SystemClock,
};
use serde_json::json;
use tracing::{info, warn};

use crate::jobs::{Adjustment, Effects, JobError, Registry};
use crate::metrics::{ROLLUPS, Runs, UNKNOWN_KIND};

/// The function's name in its metrics (the `Function` dimension).
pub const FUNCTION: &str = "queue-processor";

/// Everything the handler needs, built once per instance.
pub struct Deps {
    /// Where emails are enqueued.
    pub queue: Arc<dyn Queue>,
    /// Outcomes and idempotency records.
    pub store: Arc<dyn Store>,
    /// Where jobs asking for later jobs schedule and cancel them.
    pub scheduler: Arc<dyn Scheduler>,
    /// Time for idempotency expiry and fallback timestamps.
    pub clock: Arc<dyn Clock>,
    /// Claims on job ids.
    pub idempotency: Idempotency,
    /// Runs the records of a batch from the jobs queue.
    pub processor: BatchProcessor,
    /// Runs the records of a batch from the inventory FIFO queue, in order per message group
    /// ([`inventory_config`]).
    pub inventory_processor: BatchProcessor,
    /// URL of the emails queue.
    pub emails_queue_url: String,
    /// Known job kinds.
    pub registry: Registry,
    /// The jobs queue's `maxReceiveCount`: a retryable failure on that receive is recorded as
    /// failed and dead-lettered ([`RecordError::exhausted`]).
    pub max_receive_count: Option<u32>,
    /// Where each invocation's metrics go ([`metrics`]).
    pub metrics: Emitter,
}

impl Deps {
    /// Reads `STORE_URL`, `JOBS_QUEUE_URL`, `JOBS_DLQ_URL`, `INVENTORY_QUEUE_URL`,
    /// `INVENTORY_DLQ_URL`, `EMAILS_QUEUE_URL`, `RETRY_HORIZON_SECONDS`,
    /// `IDEMPOTENCY_TTL_SECONDS` and the scheduler's `SCHEDULER_GROUP`, `SCHEDULER_ROLE_ARN`
    /// and `JOBS_QUEUE_ARN`; `queue` is the SQS client built by `main`.
    pub fn from_env(env: &Env, queue: Arc<dyn Queue>) -> Result<Self, ConfigError> {
        let store = nightshift::wiring::store(env)?;
        let scheduler = nightshift::wiring::scheduler(env)?;
        let plan = env.retry_plan()?;
        let mut config = BatchConfig {
            source_queue_url: Some(env.queue_url("JOBS_QUEUE_URL")?),
            dlq_url: Some(env.queue_url("JOBS_DLQ_URL")?),
            backoff: plan.backoff,
            max_receive_count: Some(plan.max_receive_count),
            ..BatchConfig::default()
        };
        nightshift::wiring::apply_faults(env, &mut config)?;
        let inventory = inventory_config(
            &config,
            env.queue_url("INVENTORY_QUEUE_URL")?,
            env.queue_url("INVENTORY_DLQ_URL")?,
        );
        Ok(Deps::new(
            queue,
            store,
            scheduler,
            Arc::new(SystemClock),
            config,
            env.queue_url("EMAILS_QUEUE_URL")?,
            env.idempotency_ttl()?,
        )
        .with_inventory(inventory)
        .with_metrics(nightshift::wiring::metrics(env, FUNCTION)?))
    }

    /// Sends the metrics of each invocation to `metrics` (by default: stdout, namespace
    /// `nightshift`).
    pub fn with_metrics(mut self, metrics: Emitter) -> Self {
        self.metrics = metrics;
        self
    }

    /// Uses `config` for records from the inventory FIFO queue (by default they get the jobs
    /// queue's settings without its URLs: no visibility changes, no dead letters).
    pub fn with_inventory(mut self, config: BatchConfig) -> Self {
        self.inventory_processor = BatchProcessor::new(self.queue.clone(), config);
        self
    }

    /// Wires explicit dependencies (tests, the emulator's in-process invoker).
    pub fn new(
        queue: Arc<dyn Queue>,
        store: Arc<dyn Store>,
        scheduler: Arc<dyn Scheduler>,
        clock: Arc<dyn Clock>,
        config: BatchConfig,
        emails_queue_url: String,
        ttl: std::time::Duration,
    ) -> Self {
        let inventory = BatchConfig {
            source_queue_url: None,
            dlq_url: None,
            fifo: Some(FifoMode::SkipGroupOnError),
            ..config.clone()
        };
        Deps {
            max_receive_count: config.max_receive_count,
            idempotency: Idempotency::new(store.clone(), clock.clone(), ttl),
            inventory_processor: BatchProcessor::new(queue.clone(), inventory),
            processor: BatchProcessor::new(queue.clone(), config),
            queue,
            store,
            scheduler,
            clock,
            emails_queue_url,
            registry: Registry::standard(),
            metrics: Emitter::stdout(FUNCTION),
        }
    }
}

/// The settings of the inventory queue's processor, from the jobs queue's `jobs` (backoff,
/// `maxReceiveCount`, faults): its own queue and DLQ, and [`FifoMode::SkipGroupOnError`].
///
/// Skip-group rather than stop-on-first-failure because each SKU's order is independent of
/// the others' (an adjustment needs only its own SKU's earlier ones): a SKU that waits or
/// fails holds back its own later records only, while the other SKUs of the batch go on
/// instead of coming back after the visibility timeout.
pub fn inventory_config(jobs: &BatchConfig, queue_url: String, dlq_url: String) -> BatchConfig {
    BatchConfig {
        source_queue_url: Some(queue_url),
        dlq_url: Some(dlq_url),
        fifo: Some(FifoMode::SkipGroupOnError),
        ..jobs.clone()
    }
}

/// True for a record from a FIFO queue (its ARN names a `.fifo` queue).
fn from_fifo_queue(record: &SqsMessage) -> bool {
    record
        .event_source_arn
        .as_deref()
        .is_some_and(|arn| arn.ends_with(".fifo"))
}

/// The Lambda handler: processes one SQS batch, returning the failed message ids. Records
/// from a FIFO queue (the inventory queue) run through [`Deps::inventory_processor`], the
/// others through [`Deps::processor`]; an event source mapping sends one queue's records per
/// batch, so one of the two is empty. The invocation's metrics ([`metrics`]) are flushed once,
/// at the end.
pub async fn handler(
    deps: Arc<Deps>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline = invocation_deadline(&event.context);
    // The invocation's trace goes onto the emails it enqueues, so the trace of the email's
    // invocation is linked to the job's (Lambda links a batch's trace to its messages'). From the context, not `_X_AMZN_TRACE_ID`: lambda_runtime leaves
    // that variable unset when it polls concurrently, and a process-wide variable is shared by
    // every invocation in flight.
    let trace: Option<Arc<str>> = event.context.xray_trace_id.as_deref().map(Arc::from);
    let deadline_utc = nightshift::batch::deadline_on(deps.clock.as_ref(), deadline);
    let (fifo, standard): (Vec<_>, Vec<_>) =
        event.payload.records.into_iter().partition(from_fifo_queue);
    let metrics = deps.metrics.invocation().with_rollups(ROLLUPS);
    metrics.count("BatchSize", &[], (fifo.len() + standard.len()) as u64);
    let runs = Arc::new(Runs::default());
    let mut response = SqsBatchResponse::default();
    for (processor, records) in [
        (&deps.processor, standard),
        (&deps.inventory_processor, fifo),
    ] {
        if records.is_empty() {
            continue;
        }
        let worker = deps.clone();
        let noted = runs.clone();
        let trace = trace.clone();
        let report = processor
            .process(records, deadline_instant(deadline), move |record| {
                let deps = worker.clone();
                let runs = noted.clone();
                let trace = trace.clone();
                async move {
                    let id = record.message_id.clone().unwrap_or_default();
                    let started = tokio::time::Instant::now();
                    let (kind, result) =
                        process_record(&deps, record, deadline_utc, trace.as_deref()).await;
                    let duplicate = matches!(result, Ok(Done::Duplicate));
                    runs.note(id, kind, duplicate, started.elapsed());
                    result.map(|_| ())
                }
            })
            .await;
        runs.record(&metrics, &report);
        response
            .batch_item_failures
            .extend(report.response.batch_item_failures);
    }
    metrics.flush(deps.clock.now());
    Ok(response)
}

/// Milliseconds-since-epoch system attribute of a record, as a time.
fn attribute_time(record: &SqsMessage, name: &str) -> Option<DateTime<Utc>> {
    let ms: i64 = record.attributes.get(name)?.parse().ok()?;
    Utc.timestamp_millis_opt(ms).single()
}

/// How a record that succeeded went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Its job ran.
    Ran,
    /// Its job had completed before (a redelivery, a resubmission): skipped.
    Duplicate,
}

/// One record: decode, claim, run, enqueue, record, complete. Returns the job's kind as the
/// metrics name it (a kind of the registry, or [`UNKNOWN_KIND`]) with the result. The emails
/// the job asks for carry `trace`, the invocation's X-Ray trace header, when there is one.
pub async fn process_record(
    deps: &Deps,
    record: SqsMessage,
    deadline: DateTime<Utc>,
    trace: Option<&str>,
) -> (&'static str, Result<Done, RecordError>) {
    let started = Instant::now();
    let body = record.body.as_deref().unwrap_or("");
    let envelope = match JobEnvelope::parse(body) {
        Ok(envelope) => envelope,
        Err(e) => {
            let reason = format!("malformed job: {e}");
            return (UNKNOWN_KIND, Err(RecordError::Permanent(reason)));
        }
    };
    let span = tracing::Span::current();
    span.record("job_id", envelope.id.as_str());
    let Some(job) = deps.registry.get(&envelope.kind) else {
        let reason = format!(
            "unknown job kind {:?}; known kinds: {}",
            envelope.kind,
            deps.registry.kinds().join(", ")
        );
        let recorded = record_outcome(deps, &envelope, &record, started, Some(&reason)).await;
        return (
            UNKNOWN_KIND,
            recorded.and(Err(RecordError::Permanent(reason))),
        );
    };
    let result = run_job(deps, job, &envelope, &record, started, deadline, trace).await;
    (job.kind(), result)
}

/// Runs a known job: claims it, runs it, and gives up a retryable failure on the last receive.
async fn run_job(
    deps: &Deps,
    job: &dyn jobs::Job,
    envelope: &JobEnvelope,
    record: &SqsMessage,
    started: Instant,
    deadline: DateTime<Utc>,
    trace: Option<&str>,
) -> Result<Done, RecordError> {
    let result = claim_and_run(deps, job, envelope, record, started, deadline, trace).await;
    match result {
        // On the last receive SQS allows, a retryable failure is given up: it is recorded as
        // failed (so the daily report counts it) and dead-lettered with its reason, instead of
        // being moved to the DLQ by SQS with neither.
        Err(e) if e.is_retryable() => {
            let e = e.exhausted(receive_count(record), deps.max_receive_count);
            if let RecordError::Permanent(reason) = &e {
                give_up_slot(deps, job, envelope).await?;
                record_outcome(deps, envelope, record, started, Some(reason)).await?;
            }
            Err(e)
        }
        other => other,
    }
}

/// What a job's idempotency claim stands for: its kind and payload. The submission time is
/// left out, so a producer that resubmits the same job after a timeout is a duplicate, while
/// the same id with other work is a reused id.
pub fn job_fingerprint(envelope: &JobEnvelope) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": envelope.kind,
        "payload": envelope.payload,
    }))
    .unwrap_or_default()
}

/// Claims the job id, runs the job, records its outcome with the claim's completion.
async fn claim_and_run(
    deps: &Deps,
    job: &dyn jobs::Job,
    envelope: &JobEnvelope,
    record: &SqsMessage,
    started: Instant,
    deadline: DateTime<Utc>,
    trace: Option<&str>,
) -> Result<Done, RecordError> {
    let key = format!("job:{}", envelope.id);
    let ticket = match deps
        .idempotency
        .begin(&key, &job_fingerprint(envelope), deadline)
        .await
        .map_err(RecordError::from_port)?
    {
        Begin::Started(ticket) => ticket,
        Begin::AlreadyCompleted(_) => {
            info!(job_id = %envelope.id, "duplicate job skipped");
            return Ok(Done::Duplicate);
        }
        Begin::InProgress(until) => {
            let after = deps.idempotency.remaining(until);
            return Err(RecordError::RetryAfter {
                reason: format!(
                    "job {} is in progress in another invocation until {until}",
                    envelope.id
                ),
                after,
            });
        }
        Begin::PayloadMismatch { stored, this } => {
            // No outcome: it would replace the outcome of the job that owns this id.
            return Err(RecordError::Permanent(Begin::mismatch_reason(
                &key, &stored, &this,
            )));
        }
    };
    let result = match run_claimed(deps, job, envelope, record, started, trace).await {
        // The outcome and the completed claim are written together. When that fails the job
        // is retried: it runs again, but its email ids repeat, so no duplicate email goes out.
        Ok((summary, outcome)) => deps
            .idempotency
            .complete_with_outcome(&ticket, &summary, &outcome)
            .await
            .map(|_| ())
            .map_err(|e| {
                let reason = format!("cannot record the job's end: {e}");
                if e.is_retryable() {
                    RecordError::Retryable(reason)
                } else {
                    RecordError::Permanent(reason)
                }
            }),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            info!(job_id = %envelope.id, kind = %envelope.kind, "job processed");
            Ok(Done::Ran)
        }
        Err(e) => {
            if let Err(release) = deps.idempotency.abandon(&ticket).await {
                warn!(job_id = %envelope.id, error = %release, "cannot release idempotency claim");
            }
            Err(e)
        }
    }
}

/// Runs a claimed job and enqueues its emails; returns its result and its outcome, for the
/// caller to record with the claim's completion.
async fn run_claimed(
    deps: &Deps,
    job: &dyn jobs::Job,
    envelope: &JobEnvelope,
    record: &SqsMessage,
    started: Instant,
    trace: Option<&str>,
) -> Result<(String, JobOutcome), RecordError> {
    // The emails are checked before any is enqueued: one email-sender would reject makes the
    // whole job an invalid payload (failed outcome, DLQ), never a success.
    let checked = job
        .run(envelope)
        .and_then(|effects| Ok((effects.email_bodies()?, effects)));
    let (bodies, effects) = match checked {
        Ok(checked) => checked,
        Err(JobError::InvalidPayload(reason)) => {
            let reason = format!("invalid payload: {reason}");
            give_up_slot(deps, job, envelope).await?;
            record_outcome(deps, envelope, record, started, Some(&reason)).await?;
            return Err(RecordError::Permanent(reason));
        }
    };
    let options = SendOptions::default().traced(trace);
    for body in &bodies {
        deps.queue
            .send(&deps.emails_queue_url, body, &[], &options)
            .await
            .map_err(RecordError::from_port)?;
    }
    let result = schedule(deps, &effects, event_time(deps, record)).await?;
    let result = match &effects.adjustment {
        Some(adjustment) => apply(deps, adjustment, result).await?,
        None => result,
    };
    Ok((
        result.to_string(),
        outcome(deps, envelope, record, started, None),
    ))
}

/// Earliest a one-time schedule is set for, after the event's time: Scheduler refuses an
/// `at()` in the past
/// (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html>,
/// `ScheduleExpression`), which a job run late (a long retry) would ask for.
const SCHEDULE_LEAD: chrono::Duration = chrono::Duration::minutes(1);

/// "Now" by the event, as DESIGN.md has the functions read time: the latest of the record's
/// `SentTimestamp` and `ApproximateFirstReceiveTimestamp` (the clock's now when it has
/// neither). Not the system clock: under the emulator's virtual clock that would put a
/// schedule days away from the time the emulator runs on.
fn event_time(deps: &Deps, record: &SqsMessage) -> DateTime<Utc> {
    ["SentTimestamp", "ApproximateFirstReceiveTimestamp"]
        .iter()
        .filter_map(|name| attribute_time(record, name))
        .max()
        .unwrap_or_else(|| deps.clock.now())
}

/// Schedules and cancels the later jobs of `effects`; returns the job's result with what was
/// done (`scheduled`: ids and times; `cancelled`: the ids that had a schedule). Both are
/// idempotent by id, so a retried record does them again harmlessly. A time already past at
/// `now` (the event's time), or within [`SCHEDULE_LEAD`] of it, is moved to `now` plus
/// [`SCHEDULE_LEAD`]: the job is late, not lost.
async fn schedule(
    deps: &Deps,
    effects: &Effects,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, RecordError> {
    let mut result = effects.result.clone();
    let earliest = now + SCHEDULE_LEAD;
    let mut scheduled = Vec::new();
    for later in &effects.schedules {
        let at = later.at.max(earliest);
        deps.scheduler
            .schedule_job(&later.id, at, &later.envelope)
            .await
            .map_err(RecordError::from_port)?;
        info!(schedule = %later.id, %at, kind = %later.envelope.kind, "job scheduled");
        scheduled.push(json!({"id": later.id, "at": at}));
    }
    let mut cancelled = Vec::new();
    for id in &effects.cancels {
        let existed = deps
            .scheduler
            .cancel(id)
            .await
            .map_err(RecordError::from_port)?;
        info!(schedule = %id, existed, "scheduled job cancelled");
        if existed {
            cancelled.push(id.clone());
        }
    }
    if let Some(object) = result.as_object_mut() {
        if !effects.schedules.is_empty() {
            object.insert("scheduled".into(), json!(scheduled));
        }
        if !effects.cancels.is_empty() {
            object.insert("cancelled".into(), json!(cancelled));
        }
    }
    Ok(result)
}

/// Applies an adjustment as its key's next sequence number; `result` is the job's result,
/// returned with the balance (or with `already_applied`). A number already consumed is a
/// redelivery: done, nothing applied twice. A gap (an earlier number not consumed yet, which
/// a FIFO source delivers first, so it is still on its way or waiting for a retry) is
/// retryable: the adjustment waits, it never applies out of order.
pub async fn apply(
    deps: &Deps,
    adjustment: &Adjustment,
    result: serde_json::Value,
) -> Result<serde_json::Value, RecordError> {
    let Adjustment {
        key,
        sequence,
        delta,
    } = adjustment;
    let with = |extra: serde_json::Value| {
        let mut result = result.clone();
        if let (Some(result), Some(extra)) = (result.as_object_mut(), extra.as_object()) {
            result.extend(extra.clone());
        }
        result
    };
    match deps
        .store
        .apply_in_sequence(key, *sequence, *delta)
        .await
        .map_err(RecordError::from_port)?
    {
        SequenceOutcome::Applied { balance } => {
            info!(key, sequence, delta, balance, "adjustment applied");
            Ok(with(json!({ "balance": balance })))
        }
        SequenceOutcome::AlreadyApplied => {
            info!(
                key,
                sequence, "adjustment consumed before, not applied again"
            );
            Ok(with(json!({ "already_applied": true })))
        }
        SequenceOutcome::Gap { expected } => Err(RecordError::Retryable(format!(
            "{key}: sequence {sequence} waits for sequence {expected}, not applied yet"
        ))),
    }
}

/// A job dead-lettered for good gives up its place in its key's sequence, so the key's next
/// job can apply; a job of a kind without an order, or whose place the payload does not tell,
/// has none. When the store cannot be reached the record is retried instead, so its place is
/// never left taken by a job that is gone.
async fn give_up_slot(
    deps: &Deps,
    job: &dyn jobs::Job,
    envelope: &JobEnvelope,
) -> Result<(), RecordError> {
    let Some(slot) = job.slot(envelope) else {
        return Ok(());
    };
    let skipped = deps
        .store
        .skip_in_sequence(&slot.key, slot.sequence)
        .await
        .map_err(|e| {
            RecordError::Retryable(format!(
                "cannot give up sequence {} of {}: {e}",
                slot.sequence, slot.key
            ))
        })?;
    match skipped {
        SequenceOutcome::Applied { .. } => {
            warn!(key = %slot.key, sequence = slot.sequence, "sequence number skipped: its job is dead-lettered")
        }
        SequenceOutcome::AlreadyApplied => {}
        // An earlier number is missing too: this one keeps its place, and the key waits for
        // the earlier one (a redrive of this job then applies it in turn).
        SequenceOutcome::Gap { expected } => {
            warn!(key = %slot.key, sequence = slot.sequence, expected, "sequence number not skipped: an earlier one is missing")
        }
    }
    Ok(())
}

/// Records the outcome of a job that failed permanently.
async fn record_outcome(
    deps: &Deps,
    envelope: &JobEnvelope,
    record: &SqsMessage,
    started: Instant,
    error: Option<&str>,
) -> Result<(), RecordError> {
    deps.store
        .record_outcome(&outcome(deps, envelope, record, started, error))
        .await
        .map_err(RecordError::from_port)
}

/// What happened to a job, as the daily report reads it.
fn outcome(
    deps: &Deps,
    envelope: &JobEnvelope,
    record: &SqsMessage,
    started: Instant,
    error: Option<&str>,
) -> JobOutcome {
    // Queue wait comes from the event, so a replay on a virtual clock measures the same wait.
    let received = attribute_time(record, "ApproximateFirstReceiveTimestamp")
        .or_else(|| attribute_time(record, "SentTimestamp"))
        .unwrap_or_else(|| deps.clock.now());
    let wait_ms = (received - envelope.submitted_at).num_milliseconds().max(0) as u64;
    JobOutcome {
        v: CONTRACT_VERSION,
        job_id: envelope.id.clone(),
        kind: envelope.kind.clone(),
        status: if error.is_some() {
            OutcomeStatus::Failed
        } else {
            OutcomeStatus::Succeeded
        },
        submitted_at: envelope.submitted_at,
        finished_at: deps.clock.now(),
        latency_ms: wait_ms + started.elapsed().as_millis() as u64,
        error: error.map(str::to_string),
    }
}
