//! email-sender: the SQS-triggered Lambda that renders and sends emails from the emails queue.
//!
//! For each record: validate the [`EmailRequest`] (addresses, header injection, sizes), claim
//! its id, render the template ([`render`]), wait for a send slot ([`pacing`]), send through the
//! configured [`Mailer`], complete the claim. Each request id is sent at most once. Invalid
//! requests, unknown or broken templates and rejected recipients are permanent (DLQ); throttling
//! and unreachable mailers are retryable.
//!
//! # The claim when a send fails
//!
//! What happens to the claim depends on what the mailer may have done ([`MailError`]):
//!
//! - rejected, or not taken ([`MailError::Transient`]: throttled, unreachable, a 4xx reply):
//!   the claim is released, and the retry sends the email;
//! - maybe taken ([`MailError::Unconfirmed`]: a timeout or a lost connection after the request
//!   went out): the claim is **kept** until the invocation's deadline and the record comes
//!   back after it. Releasing it would let another delivery of the same id (a redelivery, a
//!   re-run job) send while the first attempt may still be going out at the provider. After
//!   the deadline the retry sends again: the one duplicate this cannot rule out, logged as
//!   `send outcome unknown`. The SES client makes one attempt per send for the same reason
//!   ([`nightshift::adapters::ses::ses_client`]);
//! - sent, but the claim cannot be completed: retried in process ([`COMPLETE_ATTEMPTS`]);
//!   if the store stays down, the record is still acknowledged (the email is out) and the
//!   claim stays in progress until the deadline.
//!
//! # Pacing and the deadline
//!
//! Sends are paced in recipients ([`pacing`]); no send starts later than [`SEND_MARGIN`]
//! before the invocation's deadline, and the records left then come back as batch item
//! failures for a later invocation, never as an invocation timeout.
//!
//! # Metrics
//!
//! Each invocation flushes one CloudWatch EMF document ([`nightshift::metrics`]) with the
//! dimension `Function`: the counts `EmailsSent`, `Recipients` (of the emails sent),
//! `EmailsSuppressed` (requests refused for a suppressed recipient),
//! `EmailsThrottled` (sends the mailer did not take for now: throttled or unreachable,
//! [`MailError::Transient`]), `EmailsRejected` ([`MailError::Rejected`]), `EmailsUnconfirmed`
//! ([`MailError::Unconfirmed`]), `EmailsDeadLettered` (records moved to the DLQ) and
//! `RecordsProcessed` (records that ran to an outcome: sent, retried or dead-lettered), recorded
//! every invocation (0 included); the durations `SendDuration` (each call to the mailer) and
//! `PacerWait` (each wait for a send slot), in milliseconds.
//!
//! # Mail feedback and suppressed recipients
//!
//! The function has a second event source, the feedback queue: SES's bounce, complaint and
//! delivery events for the emails it sent ([`feedback`]). A permanent bounce or a complaint
//! puts the recipient on the suppression list in the store. A request to a suppressed
//! recipient is a permanent failure, dead-lettered with the reason (`recipient x is
//! suppressed: permanent bounce at ...`) and counted as `EmailsSuppressed`: sending to
//! such addresses again is what raises the bounce and complaint rates SES reviews accounts
//! for. The check runs after the claim, so a redelivery of an email sent before the bounce
//! is still a duplicate skipped, not a dead letter. One suppressed recipient fails the whole
//! request: the request names its recipients together, and sending it to the others only
//! would be a different email than the one asked for.
//!
//! Layout: [`render`] templates, [`pacing`] the send-rate limiter, [`feedback`] the
//! feedback queue's records, this file the wiring and the per-record flow; `main.rs` builds
//! the clients and starts the runtime.

pub mod feedback;
pub mod pacing;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::batch::{
    BatchConfig, BatchProcessor, RecordError, deadline_instant, invocation_deadline,
};
use nightshift::config::{ConfigError, Env};
use nightshift::contracts::{EmailRequest, validate_address};
use nightshift::idempotency::{Begin, Idempotency, IdempotencyError, Ticket};
use nightshift::metrics::{Emitter, Metrics};
use nightshift::ports::{
    Clock, MailError, Mailer, OutgoingEmail, Queue, Retryable, Store, SystemClock,
};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::pacing::Pacer;
use crate::render::Templates;

/// The function's name in its metrics (the `Function` dimension).
pub const FUNCTION: &str = "email-sender";

/// The counts every invocation records (0 included), so each has a data point.
const COUNTS: [&str; 7] = [
    "EmailsSent",
    "Recipients",
    "EmailsSuppressed",
    "EmailsThrottled",
    "EmailsRejected",
    "EmailsUnconfirmed",
    "EmailsDeadLettered",
];

/// Default send rate: SES's default sending quota per second.
pub const DEFAULT_MAX_PER_SECOND: f64 = 14.0;

/// Variable: the send rate, in recipients per second, that all instances together may use
/// (the SES account's maximum send rate in the region, or this stack's part of it).
pub const MAIL_MAX_PER_SECOND: &str = "MAIL_MAX_PER_SECOND";

/// Variable: how many instances share [`MAIL_MAX_PER_SECOND`] (default 1): the function's
/// reserved concurrency, the most instances Lambda runs at once.
pub const MAIL_INSTANCES: &str = "MAIL_INSTANCES";

/// Variable: the URL of the feedback queue (SES's events, through the configuration set's
/// SNS topic). Optional, with [`MAIL_FEEDBACK_DLQ_URL`]: without it the function reads no
/// feedback. Locally, the mailbox simulator puts its events there.
pub const MAIL_FEEDBACK_QUEUE_URL: &str = "MAIL_FEEDBACK_QUEUE_URL";

/// Variable: the URL of the feedback queue's DLQ, where unreadable feedback goes.
pub const MAIL_FEEDBACK_DLQ_URL: &str = "MAIL_FEEDBACK_DLQ_URL";

/// Time kept before the invocation's deadline for a send started then to finish: the SES
/// attempt timeout (SMTP's is the same 10 s), plus the claim's completion with its retries and
/// the record's settlement (a visibility change or a DLQ copy). With the template's 30 s
/// timeout, sends start in the first 15 s of an invocation.
pub const SEND_MARGIN: Duration =
    nightshift::adapters::ses::SEND_ATTEMPT_TIMEOUT.saturating_add(Duration::from_secs(5));

/// Attempts at completing the claim of an email that went out: a store blip right after a
/// send would otherwise leave the claim to lapse, and a later delivery of the same id to send
/// it again.
pub const COMPLETE_ATTEMPTS: u32 = 4;

/// Pause before the second attempt at completing a claim, doubled before each next one:
/// 0.1 + 0.2 + 0.4 s in all, well inside [`SEND_MARGIN`].
const COMPLETE_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Everything the handler needs, built once per instance.
pub struct Deps {
    /// Sends the mail.
    pub mailer: Arc<dyn Mailer>,
    /// Claims on request ids.
    pub idempotency: Idempotency,
    /// Runs the records of a batch.
    pub processor: BatchProcessor,
    /// The templates.
    pub templates: Templates,
    /// Paces sends.
    pub pacer: Pacer,
    /// Sender address.
    pub from: String,
    /// No send starts later than this before the deadline ([`SEND_MARGIN`]).
    pub send_margin: Duration,
    /// Where each invocation's metrics go (module docs, "Metrics").
    pub metrics: Emitter,
    /// The suppression list (and the rest of the store).
    pub store: Arc<dyn Store>,
    /// The feedback queue's processing, when the function reads one.
    pub feedback: Option<FeedbackSource>,
}

/// The feedback queue an instance reads ([`feedback`]).
pub struct FeedbackSource {
    /// The queue's name: records whose `eventSourceArn` ends in it are feedback.
    pub queue_name: String,
    /// Runs the feedback records, dead-lettering to the feedback DLQ.
    pub processor: BatchProcessor,
}

impl FeedbackSource {
    /// Feedback from the queue `config.source_queue_url` names, dead-lettered to
    /// `config.dlq_url`.
    pub fn new(queue: Arc<dyn Queue>, config: BatchConfig) -> Self {
        let queue_name = config
            .source_queue_url
            .as_deref()
            .and_then(|url| url.trim_end_matches('/').rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        FeedbackSource {
            queue_name,
            processor: BatchProcessor::new(queue, config),
        }
    }
}

impl Deps {
    /// Reads `STORE_URL`, `MAIL_URL`, `MAIL_FROM`, `MAIL_MAX_PER_SECOND`, `MAIL_INSTANCES`,
    /// `MAIL_CONFIGURATION_SET`, `EMAILS_QUEUE_URL`, `EMAILS_DLQ_URL`,
    /// `MAIL_FEEDBACK_QUEUE_URL` and `MAIL_FEEDBACK_DLQ_URL` (both or neither),
    /// `RETRY_HORIZON_SECONDS` and `IDEMPOTENCY_TTL_SECONDS`.
    pub fn from_env(env: &Env, queue: Arc<dyn Queue>) -> Result<Self, ConfigError> {
        let from = env.required("MAIL_FROM")?;
        if let Err(reason) = validate_address(&from) {
            return Err(ConfigError::Invalid {
                var: "MAIL_FROM".into(),
                value: from,
                reason,
            });
        }
        let rate = instance_rate(env)?;
        let plan = env.retry_plan()?;
        let mut config = BatchConfig {
            source_queue_url: Some(env.queue_url("EMAILS_QUEUE_URL")?),
            dlq_url: Some(env.queue_url("EMAILS_DLQ_URL")?),
            backoff: plan.backoff,
            max_receive_count: Some(plan.max_receive_count),
            ..BatchConfig::default()
        };
        nightshift::wiring::apply_faults(env, &mut config)?;
        // Both or neither: one alone is an error naming the other, never a silent half.
        let feedback = match (
            env.get(MAIL_FEEDBACK_QUEUE_URL),
            env.get(MAIL_FEEDBACK_DLQ_URL),
        ) {
            (None, None) => None,
            _ => {
                let mut feedback = BatchConfig {
                    source_queue_url: Some(env.queue_url(MAIL_FEEDBACK_QUEUE_URL)?),
                    dlq_url: Some(env.queue_url(MAIL_FEEDBACK_DLQ_URL)?),
                    backoff: plan.backoff,
                    max_receive_count: Some(plan.max_receive_count),
                    ..BatchConfig::default()
                };
                // The feedback event source is an event source like the emails one: the
                // function's injected faults strike its records too (a fault list limited to
                // email-sender covers both, as Lambda runs both in one function).
                nightshift::wiring::apply_faults(env, &mut feedback)?;
                Some(feedback)
            }
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mailer = nightshift::wiring::mailer_with_feedback(
            env,
            feedback
                .as_ref()
                .and_then(|f| f.source_queue_url.as_deref()),
            queue.clone(),
            clock.clone(),
        )?;
        let mut deps = Deps::new(
            mailer,
            nightshift::wiring::store(env)?,
            clock,
            queue.clone(),
            config,
            from,
            rate,
            env.idempotency_ttl()?,
        )
        .with_metrics(nightshift::wiring::metrics(env, FUNCTION)?);
        if let Some(config) = feedback {
            deps = deps.with_feedback(FeedbackSource::new(queue, config));
        }
        Ok(deps)
    }

    /// Reads mail feedback from `source` too ([`feedback`]).
    pub fn with_feedback(mut self, source: FeedbackSource) -> Self {
        self.feedback = Some(source);
        self
    }

    /// Sends the metrics of each invocation to `metrics` (by default: stdout, namespace
    /// `nightshift`).
    pub fn with_metrics(mut self, metrics: Emitter) -> Self {
        self.metrics = metrics;
        self
    }

    /// Wires explicit dependencies (tests, the emulator's in-process invoker).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mailer: Arc<dyn Mailer>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        queue: Arc<dyn Queue>,
        config: BatchConfig,
        from: String,
        max_per_second: f64,
        ttl: std::time::Duration,
    ) -> Self {
        Deps {
            mailer,
            idempotency: Idempotency::new(store.clone(), clock, ttl),
            store,
            feedback: None,
            processor: BatchProcessor::new(queue, config),
            templates: Templates::builtin(),
            pacer: Pacer::new(max_per_second),
            from,
            send_margin: SEND_MARGIN,
            metrics: Emitter::stdout(FUNCTION),
        }
    }
}

/// The rate one instance paces to, in recipients per second: [`MAIL_MAX_PER_SECOND`] divided
/// by [`MAIL_INSTANCES`].
///
/// # Why the function divides
///
/// SES limits the account in a region; each instance only paces itself, so the instances
/// together must stay within the quota. The template passes the quota (`SesMaxSendRate`, in
/// `MAIL_MAX_PER_SECOND`) and the instance count (`MAIL_INSTANCES`, the function's
/// `ReservedConcurrentExecutions`), and each instance takes its share. The quota is a deploy
/// parameter (`samconfig.toml`'s stages, `--parameter-overrides`), which a test of the template
/// file never sees, while this division holds for every value deployed. The instance count is
/// fixed in the template, so `tests/it/infra.rs` checks that `MAIL_INSTANCES` is the reserved
/// concurrency (and, for each stage in `samconfig.toml`, that reserved concurrency × the
/// instance rate stays within the stage's quota). A limiter shared through the
/// store would also cover instances beyond that count, at a store round trip per send and with
/// the store's outages stopping all mail: not worth it for two instances. Stacks sharing an
/// account and region share its quota: their `SesMaxSendRate` values must add up to at most it.
pub fn instance_rate(env: &Env) -> Result<f64, ConfigError> {
    let rate = env.parse_or(MAIL_MAX_PER_SECOND, DEFAULT_MAX_PER_SECOND)?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(ConfigError::Invalid {
            var: MAIL_MAX_PER_SECOND.into(),
            value: rate.to_string(),
            reason: "must be a positive number".into(),
        });
    }
    let instances = env.parse_or::<u32>(MAIL_INSTANCES, 1)?;
    if instances == 0 {
        return Err(ConfigError::Invalid {
            var: MAIL_INSTANCES.into(),
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(rate / f64::from(instances))
}

/// The Lambda handler: processes one SQS batch of email requests, or of mail feedback when
/// it comes from the feedback queue ([`feedback::handler`]), and flushes the invocation's
/// metrics once at the end.
pub async fn handler(
    deps: Arc<Deps>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    if deps
        .feedback
        .as_ref()
        .is_some_and(|f| feedback::is_from(&event.payload, &f.queue_name))
    {
        return feedback::handler(deps, event).await;
    }
    let deadline = invocation_deadline(&event.context);
    let deadline_utc = nightshift::batch::deadline_on(deps.idempotency.clock().as_ref(), deadline);
    let ends = deadline_instant(deadline);
    let send_by = ends
        .checked_sub(deps.send_margin)
        .unwrap_or_else(Instant::now);
    let metrics = Arc::new(deps.metrics.invocation());
    for name in COUNTS {
        metrics.count(name, &[], 0);
    }
    let worker = deps.clone();
    let recorder = metrics.clone();
    let report = deps
        .processor
        .process(event.payload.records, ends, move |record| {
            let deps = worker.clone();
            let metrics = recorder.clone();
            async move { process_record(&deps, record, deadline_utc, send_by, &metrics).await }
        })
        .await;
    metrics.count("EmailsDeadLettered", &[], report.dead_lettered as u64);
    // The denominator of the template's failure-rate alarm (dead-lettered over processed):
    // the records that ran to an outcome, retried ones included, not those left for later.
    metrics.count(
        "RecordsProcessed",
        &[],
        (report.succeeded + report.retried + report.dead_lettered) as u64,
    );
    metrics.flush(deps.idempotency.clock().now());
    Ok(report.response)
}

/// Turns a request into the email to send: renders the template, or uses the plain body.
pub fn compose(
    templates: &Templates,
    from: &str,
    request: &EmailRequest,
) -> Result<OutgoingEmail, RecordError> {
    let (text, html) = match (&request.template, &request.body) {
        (Some(template), _) => {
            let rendered = templates
                .render(template, &request.vars)
                .map_err(|e| RecordError::Permanent(e.to_string()))?;
            (rendered.text, Some(rendered.html))
        }
        (None, Some(body)) => (body.clone(), None),
        (None, None) => {
            return Err(RecordError::Permanent(
                "request has neither template nor body".into(),
            ));
        }
    };
    Ok(OutgoingEmail {
        request_id: request.id.clone(),
        from: from.to_string(),
        to: request.to.clone(),
        subject: request.subject.clone(),
        text,
        html,
    })
}

/// What an email's idempotency claim stands for: the whole request but its id, so the same
/// id with other recipients or content is a reused id, never a silent duplicate.
fn email_fingerprint(request: &EmailRequest) -> Vec<u8> {
    let mut value = serde_json::to_value(request).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("id");
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// One record: validate, claim, render, pace, send, complete. No send starts after `send_by`.
/// The pacer's wait, the send and its result go to `metrics`.
pub async fn process_record(
    deps: &Deps,
    record: SqsMessage,
    deadline: DateTime<Utc>,
    send_by: Instant,
    metrics: &Metrics,
) -> Result<(), RecordError> {
    let request = EmailRequest::parse(record.body.as_deref().unwrap_or(""))
        .map_err(|e| RecordError::Permanent(format!("invalid email request: {e}")))?;
    // The record's span (the batch processor's) names the work by its id: an email request's
    // id is its job id, found again in X-Ray and in `nightshift trace`.
    tracing::Span::current().record("job_id", request.id.as_str());
    let email = compose(&deps.templates, &deps.from, &request)?;
    let key = format!("email:{}", request.id);
    let ticket = match deps
        .idempotency
        .begin(&key, &email_fingerprint(&request), deadline)
        .await
        .map_err(RecordError::from_port)?
    {
        Begin::Started(ticket) => ticket,
        Begin::AlreadyCompleted(_) => {
            info!(request_id = %request.id, "duplicate email skipped");
            return Ok(());
        }
        Begin::InProgress(until) => {
            let after = deps.idempotency.remaining(until);
            return Err(RecordError::RetryAfter {
                reason: format!(
                    "email {} is being sent by another invocation until {until}",
                    request.id
                ),
                after,
            });
        }
        Begin::PayloadMismatch { stored, this } => {
            return Err(RecordError::Permanent(Begin::mismatch_reason(
                &key, &stored, &this,
            )));
        }
    };
    if let Err(refused) = check_suppressions(deps, &email).await {
        // Nothing was sent: free the id, so a redrive after the address is taken off the
        // list sends it.
        release(deps, &ticket, &request.id).await;
        if matches!(refused, RecordError::Permanent(_)) {
            metrics.count("EmailsSuppressed", &[], 1);
            warn!(request_id = %request.id, reason = %refused, "email to a suppressed recipient refused");
        }
        return Err(refused);
    }
    let waiting = Instant::now();
    let slot = deps.pacer.acquire(email.to.len(), send_by).await;
    metrics.duration("PacerWait", &[], waiting.elapsed());
    if let Err(deferred) = slot {
        // Nothing was sent: free the id, and let a later invocation send it.
        release(deps, &ticket, &request.id).await;
        return Err(RecordError::RetryAfter {
            reason: format!("email {} not sent: {deferred}", request.id),
            after: Duration::ZERO,
        });
    }
    let sending = Instant::now();
    let sent = deps.mailer.send(&email).await;
    metrics.duration("SendDuration", &[], sending.elapsed());
    let outcome = match &sent {
        Ok(_) => "EmailsSent",
        Err(MailError::Transient(_)) => "EmailsThrottled",
        Err(MailError::Rejected(_)) => "EmailsRejected",
        Err(MailError::Unconfirmed(_)) => "EmailsUnconfirmed",
    };
    metrics.count(outcome, &[], 1);
    match sent {
        Ok(provider_id) => {
            metrics.count("Recipients", &[], email.to.len() as u64);
            if let Err(e) = complete_sent(deps, &ticket, &provider_id).await {
                // The email is out, so the record is acknowledged all the same; the claim
                // stays in progress until the deadline, which holds back another delivery of
                // the same id until then.
                error!(request_id = %request.id, error = %e, "email sent, but its idempotency record cannot be completed");
            }
            info!(request_id = %request.id, recipients = email.to.len(), "email sent");
            Ok(())
        }
        Err(e @ MailError::Unconfirmed(_)) => {
            // The provider may have taken it: keep the claim until the deadline, so that no
            // other delivery sends it meanwhile, and come back once it has lapsed.
            warn!(request_id = %request.id, error = %e, claim_until = %deadline,
                "send outcome unknown: claim kept, the retry after the deadline may duplicate the email");
            Err(RecordError::RetryAfter {
                reason: e.to_string(),
                after: deps.idempotency.remaining(deadline),
            })
        }
        Err(e) => {
            release(deps, &ticket, &request.id).await;
            Err(RecordError::from_port(e))
        }
    }
}

/// Refuses `email` when one of its recipients is on the suppression list: a permanent
/// failure naming the recipient and the feedback that suppressed it; a store that cannot be
/// read is retryable.
async fn check_suppressions(deps: &Deps, email: &OutgoingEmail) -> Result<(), RecordError> {
    for to in &email.to {
        if let Some(suppression) = deps
            .store
            .suppression(to)
            .await
            .map_err(RecordError::from_port)?
        {
            return Err(RecordError::Permanent(format!(
                "recipient {to} is suppressed: {suppression}"
            )));
        }
    }
    Ok(())
}

/// Releases the claim of an email that was certainly not sent.
async fn release(deps: &Deps, ticket: &Ticket, request_id: &str) {
    if let Err(e) = deps.idempotency.abandon(ticket).await {
        warn!(request_id, error = %e, "cannot release idempotency claim");
    }
}

/// Completes the claim of an email that went out, retrying a store that cannot be reached
/// [`COMPLETE_ATTEMPTS`] times with a doubling pause: the sooner the record says "sent", the
/// narrower the window in which another delivery of the id could send it again.
async fn complete_sent(
    deps: &Deps,
    ticket: &Ticket,
    provider_id: &str,
) -> Result<(), IdempotencyError> {
    let (mut attempt, mut pause) = (1, COMPLETE_FIRST_PAUSE);
    loop {
        match deps.idempotency.complete(ticket, provider_id).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && attempt < COMPLETE_ATTEMPTS => {
                warn!(attempt, error = %e, "cannot complete idempotency record, retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
                pause *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_paces_to_its_share_of_the_quota() {
        let rate = |vars: &[(&str, &str)]| instance_rate(&Env::from_map(vars.iter().copied()));
        assert_eq!(rate(&[]).unwrap(), DEFAULT_MAX_PER_SECOND);
        assert_eq!(
            rate(&[(MAIL_MAX_PER_SECOND, "14"), (MAIL_INSTANCES, "2")]).unwrap(),
            7.0
        );
        assert_eq!(
            rate(&[(MAIL_MAX_PER_SECOND, "1"), (MAIL_INSTANCES, "2")]).unwrap(),
            0.5
        );
        assert!(
            rate(&[(MAIL_INSTANCES, "0")])
                .unwrap_err()
                .to_string()
                .contains("MAIL_INSTANCES=\"0\" is invalid: must be at least 1")
        );
        assert!(rate(&[(MAIL_MAX_PER_SECOND, "-1")]).is_err());
        assert!(rate(&[(MAIL_INSTANCES, "two")]).is_err());
    }
}
