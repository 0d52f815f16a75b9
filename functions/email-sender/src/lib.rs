//! email-sender: the SQS-triggered Lambda that renders and sends emails from the emails queue.
//!
//! For each record: validate the [`EmailRequest`] (addresses, header injection, sizes), claim
//! its id, render the template ([`render`]), wait for a send slot ([`pacing`]), send through the
//! configured [`Mailer`], complete the claim. Each request id is sent at most once. Invalid
//! requests, unknown or broken templates and rejected recipients are permanent (DLQ); throttling
//! and unreachable mailers are retryable.
//!
//! Layout: [`render`] templates, [`pacing`] the send-rate limiter, this file the wiring and the
//! per-record flow; `main.rs` builds the clients and starts the runtime.

pub mod pacing;
pub mod render;

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::batch::{
    BatchConfig, BatchProcessor, RecordError, deadline_instant, invocation_deadline,
};
use nightshift::config::{ConfigError, Env};
use nightshift::contracts::{EmailRequest, validate_address};
use nightshift::idempotency::{Begin, Idempotency};
use nightshift::ports::{Clock, Mailer, OutgoingEmail, Queue, Store, SystemClock};
use tracing::{info, warn};

use crate::pacing::Pacer;
use crate::render::Templates;

/// Default send rate: SES's default sending quota per second.
pub const DEFAULT_MAX_PER_SECOND: f64 = 14.0;

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
}

impl Deps {
    /// Reads `STORE_URL`, `MAIL_URL`, `MAIL_FROM`, `MAIL_MAX_PER_SECOND`, `EMAILS_QUEUE_URL`,
    /// `EMAILS_DLQ_URL` and `IDEMPOTENCY_TTL_SECONDS`.
    pub fn from_env(env: &Env, queue: Arc<dyn Queue>) -> Result<Self, ConfigError> {
        let from = env.required("MAIL_FROM")?;
        if let Err(reason) = validate_address(&from) {
            return Err(ConfigError::Invalid {
                var: "MAIL_FROM".into(),
                value: from,
                reason,
            });
        }
        let rate = env.parse_or("MAIL_MAX_PER_SECOND", DEFAULT_MAX_PER_SECOND)?;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ConfigError::Invalid {
                var: "MAIL_MAX_PER_SECOND".into(),
                value: rate.to_string(),
                reason: "must be a positive number".into(),
            });
        }
        let config = BatchConfig {
            source_queue_url: Some(env.queue_url("EMAILS_QUEUE_URL")?),
            dlq_url: Some(env.queue_url("EMAILS_DLQ_URL")?),
            ..BatchConfig::default()
        };
        Ok(Deps::new(
            nightshift::config::mailer(env)?,
            nightshift::config::store(env)?,
            Arc::new(SystemClock),
            queue,
            config,
            from,
            rate,
            env.idempotency_ttl()?,
        ))
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
            idempotency: Idempotency::new(store, clock, ttl),
            processor: BatchProcessor::new(queue, config),
            templates: Templates::builtin(),
            pacer: Pacer::new(max_per_second),
            from,
        }
    }
}

/// The Lambda handler: processes one SQS batch of email requests.
pub async fn handler(
    deps: Arc<Deps>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline = invocation_deadline(&event.context);
    let deadline_utc: DateTime<Utc> = deadline.into();
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

/// One record: validate, claim, render, pace, send, complete.
pub async fn process_record(
    deps: &Deps,
    record: SqsMessage,
    deadline: DateTime<Utc>,
) -> Result<(), RecordError> {
    let request = EmailRequest::parse(record.body.as_deref().unwrap_or(""))
        .map_err(|e| RecordError::Permanent(format!("invalid email request: {e}")))?;
    let email = compose(&deps.templates, &deps.from, &request)?;
    let key = format!("email:{}", request.id);
    match deps
        .idempotency
        .begin(&key, deadline)
        .await
        .map_err(RecordError::from_port)?
    {
        Begin::Started => {}
        Begin::AlreadyCompleted(_) => {
            info!(request_id = %request.id, "duplicate email skipped");
            return Ok(());
        }
        Begin::InProgress(until) => {
            return Err(RecordError::Retryable(format!(
                "email {} is being sent by another invocation until {until}",
                request.id
            )));
        }
    }
    deps.pacer.acquire().await;
    match deps.mailer.send(&email).await {
        Ok(provider_id) => {
            if let Err(e) = deps.idempotency.complete(&key, &provider_id).await {
                // The email is out; the claim stays in progress until the deadline, which holds
                // back an immediate redelivery. Nothing better can be done here.
                warn!(request_id = %request.id, error = %e, "cannot complete idempotency record");
            }
            info!(request_id = %request.id, recipients = email.to.len(), "email sent");
            Ok(())
        }
        Err(e) => {
            if let Err(release) = deps.idempotency.abandon(&key).await {
                warn!(request_id = %request.id, error = %release, "cannot release idempotency claim");
            }
            Err(RecordError::from_port(e))
        }
    }
}
