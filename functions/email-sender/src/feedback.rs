//! Mail feedback: the records of the feedback queue, SES's bounce, complaint and delivery
//! events ([`nightshift::feedback`]), which SES publishes through the configuration set the
//! emails are sent with (SNS topic → this queue, raw delivery).
//!
//! For each record: parse the event, put each recipient of a permanent bounce or a
//! complaint on the suppression list ([`nightshift::ports::Store::suppress`], an upsert, so
//! a redelivered event changes nothing), count it. A body that is no SES event is a
//! permanent failure: it goes to the feedback DLQ with the reason, never silently dropped.
//! A store that cannot be reached is retryable, as for email requests.
//!
//! # Metrics
//!
//! A feedback invocation flushes its own EMF document (dimension `Function`), with the
//! counts, in recipients: `Bounces` (of permanent bounces, the ones SES's bounce rate
//! counts), `TransientBounces`, `Complaints`, `Deliveries`, `RecipientsSuppressed` (added
//! to the suppression list) and `FeedbackDeadLettered` (records moved to the feedback DLQ),
//! every invocation (0 included).

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use nightshift::batch::{RecordError, deadline_instant, invocation_deadline};
use nightshift::feedback::{FeedbackKind, parse};
use nightshift::metrics::Metrics;
use tracing::info;

use crate::Deps;

/// The counts every feedback invocation records (0 included).
const COUNTS: [&str; 6] = [
    "Bounces",
    "TransientBounces",
    "Complaints",
    "Deliveries",
    "RecipientsSuppressed",
    "FeedbackDeadLettered",
];

/// True when `event` comes from the queue named `queue_name`: every record of one
/// invocation comes from one event source mapping, so the first record's
/// `eventSourceArn` (`arn:aws:sqs:REGION:ACCOUNT:NAME`) decides.
pub fn is_from(event: &SqsEvent, queue_name: &str) -> bool {
    event
        .records
        .first()
        .and_then(|r| r.event_source_arn.as_deref())
        .and_then(|arn| arn.rsplit(':').next())
        .is_some_and(|name| name == queue_name)
}

/// The feedback queue's records through the feedback batch processor of `deps`, then one
/// metrics flush.
pub async fn handler(
    deps: Arc<Deps>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let Some(feedback) = deps.feedback.as_ref() else {
        return Err("feedback records, but no feedback queue configured".into());
    };
    let ends = deadline_instant(invocation_deadline(&event.context));
    let metrics = Arc::new(deps.metrics.invocation());
    for name in COUNTS {
        metrics.count(name, &[], 0);
    }
    let worker = deps.clone();
    let recorder = metrics.clone();
    let report = feedback
        .processor
        .process(event.payload.records, ends, move |record| {
            let deps = worker.clone();
            let metrics = recorder.clone();
            async move { process_record(&deps, record, &metrics).await }
        })
        .await;
    metrics.count("FeedbackDeadLettered", &[], report.dead_lettered as u64);
    metrics.flush(deps.idempotency.clock().now());
    Ok(report.response)
}

/// One feedback record: parse, suppress, count.
pub async fn process_record(
    deps: &Deps,
    record: SqsMessage,
    metrics: &Metrics,
) -> Result<(), RecordError> {
    let event = parse(record.body.as_deref().unwrap_or(""))
        .map_err(|e| RecordError::Permanent(format!("invalid mail feedback: {e}")))?;
    let suppressions = event.suppressions();
    for suppression in &suppressions {
        deps.store
            .suppress(suppression)
            .await
            .map_err(RecordError::from_port)?;
        info!(
            recipient = %suppression.address,
            cause = suppression.cause.as_str(),
            message_id = %event.message_id,
            request_id = event.request_id.as_deref().unwrap_or(""),
            "recipient suppressed"
        );
    }
    // Counted once the suppressions are stored, so a retried record is not counted twice.
    let (name, recipients) = match &event.kind {
        FeedbackKind::Bounce {
            bounce_type,
            recipients,
            ..
        } if bounce_type == "Permanent" => ("Bounces", recipients.len()),
        FeedbackKind::Bounce { recipients, .. } => ("TransientBounces", recipients.len()),
        FeedbackKind::Complaint { recipients, .. } => ("Complaints", recipients.len()),
        FeedbackKind::Delivery { recipients } => ("Deliveries", recipients.len()),
        FeedbackKind::Other(kind) => {
            info!(event = %kind, message_id = %event.message_id, "mail feedback ignored");
            return Ok(());
        }
    };
    metrics.count(name, &[], recipients as u64);
    metrics.count("RecipientsSuppressed", &[], suppressions.len() as u64);
    info!(event = event.type_name(), message_id = %event.message_id,
        request_id = event.request_id.as_deref().unwrap_or(""), recipients, "mail feedback");
    Ok(())
}
