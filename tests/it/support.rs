//! Shared helpers: fixtures, contexts, and a world of in-memory ports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use lambda_runtime::{Context, LambdaEvent};
use nightshift::adapters::memory::{
    ManualClock, MemoryBlobs, MemoryMailer, MemoryMetrics, MemoryQueue, MemoryScheduler,
    MemoryStore,
};
use nightshift::batch::BatchConfig;
use nightshift::metrics::{DEFAULT_NAMESPACE, Emitter};

pub const JOBS_URL: &str = "http://127.0.0.1:9324/000000000000/nightshift-jobs";
pub const JOBS_DLQ_URL: &str = "http://127.0.0.1:9324/000000000000/nightshift-jobs-dlq";
pub const EMAILS_URL: &str = "http://127.0.0.1:9324/000000000000/nightshift-emails";
pub const EMAILS_DLQ_URL: &str = "http://127.0.0.1:9324/000000000000/nightshift-emails-dlq";
pub const FEEDBACK_URL: &str = "http://127.0.0.1:9324/000000000000/nightshift-mail-feedback";
pub const FEEDBACK_DLQ_URL: &str =
    "http://127.0.0.1:9324/000000000000/nightshift-mail-feedback-dlq";

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn sqs_event(name: &str) -> SqsEvent {
    serde_json::from_str(&fixture(name)).expect("fixture is an SQS event")
}

/// An SQS record carrying `body`, as Lambda would deliver it.
pub fn record(id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut event = sqs_event("sqs-event-order.json");
    let mut r = event.records.remove(0);
    r.message_id = Some(id.to_string());
    r.receipt_handle = Some(format!("rh-{id}-{receive_count}"));
    r.body = Some(body.to_string());
    r.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    r
}

/// A record of the mail feedback queue carrying `body` (an SES event, raw SNS delivery).
pub fn feedback_record(id: &str, body: &str) -> SqsMessage {
    let mut r = record(id, body, 1);
    r.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:nightshift-mail-feedback".into());
    r
}

pub fn event_of(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = sqs_event("sqs-event-order.json");
    event.records = records;
    event
}

/// A context whose deadline is `left` from now.
pub fn context(left: Duration) -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "test-request".into();
    ctx.deadline = (SystemTime::now() + left)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ctx
}

pub fn lambda_event<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent::new(payload, context(Duration::from_secs(30)))
}

/// In-memory ports shared by all three functions, like one deployed stack.
pub struct World {
    pub queue: Arc<MemoryQueue>,
    pub store: Arc<MemoryStore>,
    pub mailer: Arc<MemoryMailer>,
    pub blobs: Arc<MemoryBlobs>,
    pub scheduler: Arc<MemoryScheduler>,
    pub clock: Arc<ManualClock>,
    /// The EMF documents the functions flushed, each checked against the specification.
    pub metrics: Arc<MemoryMetrics>,
}

impl World {
    pub fn new() -> Self {
        World {
            queue: Arc::default(),
            store: Arc::default(),
            mailer: Arc::default(),
            blobs: Arc::default(),
            scheduler: Arc::default(),
            metrics: Arc::default(),
            clock: Arc::new(ManualClock::new("2026-11-22T08:00:00Z".parse().unwrap())),
        }
    }

    /// queue-processor with the deployed retry plan (`maxReceiveCount` 15).
    pub fn queue_processor(&self) -> Arc<queue_processor::Deps> {
        let plan = nightshift::retry::RetryPlan::default();
        let config = BatchConfig {
            source_queue_url: Some(JOBS_URL.into()),
            dlq_url: Some(JOBS_DLQ_URL.into()),
            jitter_seed: Some(1),
            backoff: plan.backoff,
            max_receive_count: Some(plan.max_receive_count),
            ..BatchConfig::default()
        };
        Arc::new(
            queue_processor::Deps::new(
                self.queue.clone(),
                self.store.clone(),
                self.scheduler.clone(),
                self.clock.clone(),
                config,
                EMAILS_URL.into(),
                Duration::from_secs(86_400),
            )
            .with_metrics(self.emitter(queue_processor::FUNCTION)),
        )
    }

    /// Metrics of `function` into [`World::metrics`].
    pub fn emitter(&self, function: &'static str) -> Emitter {
        Emitter::new(DEFAULT_NAMESPACE, function, self.metrics.clone())
    }

    pub fn email_sender(&self, per_second: f64) -> Arc<email_sender::Deps> {
        let config = BatchConfig {
            source_queue_url: Some(EMAILS_URL.into()),
            dlq_url: Some(EMAILS_DLQ_URL.into()),
            jitter_seed: Some(1),
            ..BatchConfig::default()
        };
        Arc::new(
            email_sender::Deps::new(
                self.mailer.clone(),
                self.store.clone(),
                self.clock.clone(),
                self.queue.clone(),
                config,
                "nightshift@example.com".into(),
                per_second,
                Duration::from_secs(86_400),
            )
            .with_metrics(self.emitter(email_sender::FUNCTION)),
        )
    }

    /// email-sender reading the mail feedback queue too.
    pub fn email_sender_with_feedback(&self, per_second: f64) -> Arc<email_sender::Deps> {
        let deps = Arc::into_inner(self.email_sender(per_second)).expect("one owner");
        let config = BatchConfig {
            source_queue_url: Some(FEEDBACK_URL.into()),
            dlq_url: Some(FEEDBACK_DLQ_URL.into()),
            jitter_seed: Some(1),
            ..BatchConfig::default()
        };
        Arc::new(deps.with_feedback(email_sender::FeedbackSource::new(
            self.queue.clone(),
            config,
        )))
    }

    pub fn daily_report(&self, zone: &str) -> Arc<daily_report::Deps> {
        let clock: Arc<dyn nightshift::ports::Clock> = self.clock.clone();
        Arc::new(daily_report::Deps {
            idempotency: nightshift::idempotency::Idempotency::new(
                self.store.clone(),
                clock.clone(),
                Duration::from_secs(7 * 86_400),
            ),
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            queue: self.queue.clone(),
            clock,
            time_zone: zone.parse().unwrap(),
            recipients: vec!["ops@example.com".into()],
            emails_queue_url: EMAILS_URL.into(),
            lookback_days: daily_report::DEFAULT_LOOKBACK_DAYS,
            dead_letter_queues: vec![JOBS_DLQ_URL.into(), EMAILS_DLQ_URL.into()],
            metrics: self.emitter(daily_report::FUNCTION),
        })
    }

    /// Messages sent to `url` as an SQS event for the next function.
    pub fn drain_as_event(&self, url: &str) -> SqsEvent {
        let records = self
            .queue
            .sent_to(url)
            .iter()
            .enumerate()
            .map(|(i, m)| record(&format!("{url}-{i}"), &m.body, 1))
            .collect();
        event_of(records)
    }
}

pub fn failed_ids(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}
