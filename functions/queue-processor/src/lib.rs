//! queue-processor: the SQS-triggered Lambda that runs typed jobs from the jobs queue.
//!
//! For each record: decode the [`JobEnvelope`], claim the job id, run the job for its `kind`
//! ([`jobs`]), enqueue the emails it asks for, record a [`JobOutcome`], complete the claim.
//! Malformed bodies, unknown kinds and invalid payloads are permanent (DLQ at once); queue and
//! store trouble is retryable (backoff, then SQS redrive).
//!
//! Layout: [`jobs`] holds the pure job kinds; this file wires dependencies ([`Deps`]) and the
//! per-record flow; `main.rs` only builds clients and starts the runtime.

pub mod jobs;

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, TimeZone, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::batch::{
    BatchConfig, BatchProcessor, RecordError, deadline_instant, invocation_deadline, receive_count,
};
use nightshift::config::{ConfigError, Env};
use nightshift::contracts::{CONTRACT_VERSION, JobEnvelope, JobOutcome, OutcomeStatus};
use nightshift::idempotency::{Begin, Idempotency};
use nightshift::ports::{Clock, Queue, Retryable, SendOptions, Store, SystemClock};
use tracing::{info, warn};

use crate::jobs::{JobError, Registry};

/// Everything the handler needs, built once per instance.
pub struct Deps {
    /// Where emails are enqueued.
    pub queue: Arc<dyn Queue>,
    /// Outcomes and idempotency records.
    pub store: Arc<dyn Store>,
    /// Time for idempotency expiry and fallback timestamps.
    pub clock: Arc<dyn Clock>,
    /// Claims on job ids.
    pub idempotency: Idempotency,
    /// Runs the records of a batch.
    pub processor: BatchProcessor,
    /// URL of the emails queue.
    pub emails_queue_url: String,
    /// Known job kinds.
    pub registry: Registry,
    /// The jobs queue's `maxReceiveCount`: a retryable failure on that receive is recorded as
    /// failed and dead-lettered ([`RecordError::exhausted`]).
    pub max_receive_count: Option<u32>,
}

impl Deps {
    /// Reads `STORE_URL`, `JOBS_QUEUE_URL`, `JOBS_DLQ_URL`, `EMAILS_QUEUE_URL`,
    /// `RETRY_HORIZON_SECONDS` and
    /// `IDEMPOTENCY_TTL_SECONDS`; `queue` is the SQS client built by `main`.
    pub fn from_env(env: &Env, queue: Arc<dyn Queue>) -> Result<Self, ConfigError> {
        let store = nightshift::wiring::store(env)?;
        let plan = env.retry_plan()?;
        let mut config = BatchConfig {
            source_queue_url: Some(env.queue_url("JOBS_QUEUE_URL")?),
            dlq_url: Some(env.queue_url("JOBS_DLQ_URL")?),
            backoff: plan.backoff,
            max_receive_count: Some(plan.max_receive_count),
            ..BatchConfig::default()
        };
        nightshift::wiring::apply_faults(env, &mut config)?;
        Ok(Deps::new(
            queue,
            store,
            Arc::new(SystemClock),
            config,
            env.queue_url("EMAILS_QUEUE_URL")?,
            env.idempotency_ttl()?,
        ))
    }

    /// Wires explicit dependencies (tests, the emulator's in-process invoker).
    pub fn new(
        queue: Arc<dyn Queue>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: BatchConfig,
        emails_queue_url: String,
        ttl: std::time::Duration,
    ) -> Self {
        Deps {
            max_receive_count: config.max_receive_count,
            idempotency: Idempotency::new(store.clone(), clock.clone(), ttl),
            processor: BatchProcessor::new(queue.clone(), config),
            queue,
            store,
            clock,
            emails_queue_url,
            registry: Registry::standard(),
        }
    }
}

/// The Lambda handler: processes one SQS batch, returning the failed message ids.
pub async fn handler(
    deps: Arc<Deps>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline = invocation_deadline(&event.context);
    let deadline_utc = nightshift::batch::deadline_on(deps.clock.as_ref(), deadline);
    let worker = deps.clone();
    let report = deps
        .processor
        .process(
            event.payload.records,
            deadline_instant(deadline),
            move |record| {
                let deps = worker.clone();
                async move { process_record(&deps, record, deadline_utc).await }
            },
        )
        .await;
    Ok(report.response)
}

/// Milliseconds-since-epoch system attribute of a record, as a time.
fn attribute_time(record: &SqsMessage, name: &str) -> Option<DateTime<Utc>> {
    let ms: i64 = record.attributes.get(name)?.parse().ok()?;
    Utc.timestamp_millis_opt(ms).single()
}

/// One record: decode, claim, run, enqueue, record, complete.
pub async fn process_record(
    deps: &Deps,
    record: SqsMessage,
    deadline: DateTime<Utc>,
) -> Result<(), RecordError> {
    let started = Instant::now();
    let body = record.body.as_deref().unwrap_or("");
    let envelope = JobEnvelope::parse(body)
        .map_err(|e| RecordError::Permanent(format!("malformed job: {e}")))?;
    let span = tracing::Span::current();
    span.record("job_id", envelope.id.as_str());
    let Some(job) = deps.registry.get(&envelope.kind) else {
        let reason = format!(
            "unknown job kind {:?}; known kinds: {}",
            envelope.kind,
            deps.registry.kinds().join(", ")
        );
        record_outcome(deps, &envelope, &record, started, Some(&reason)).await?;
        return Err(RecordError::Permanent(reason));
    };
    let result = claim_and_run(deps, job, &envelope, &record, started, deadline).await;
    match result {
        // On the last receive SQS allows, a retryable failure is given up: it is recorded as
        // failed (so the daily report counts it) and dead-lettered with its reason, instead of
        // being moved to the DLQ by SQS with neither.
        Err(e) if e.is_retryable() => {
            let e = e.exhausted(receive_count(&record), deps.max_receive_count);
            if let RecordError::Permanent(reason) = &e {
                record_outcome(deps, &envelope, &record, started, Some(reason)).await?;
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
) -> Result<(), RecordError> {
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
            return Ok(());
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
    let result = match run_claimed(deps, job, envelope, record, started).await {
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
            Ok(())
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
            record_outcome(deps, envelope, record, started, Some(&reason)).await?;
            return Err(RecordError::Permanent(reason));
        }
    };
    for body in &bodies {
        deps.queue
            .send(&deps.emails_queue_url, body, &[], &SendOptions::default())
            .await
            .map_err(RecordError::from_port)?;
    }
    Ok((
        effects.result.to_string(),
        outcome(deps, envelope, record, started, None),
    ))
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
