//! Asynchronous invocation settings of functions: SAM's `EventInvokeConfig` and
//! `DeadLetterQueue`, CloudFormation's `DeadLetterConfig` and `AWS::Lambda::EventInvokeConfig`
//! resources, checked against the ranges Lambda accepts.
//!
//! Destinations are SQS queues and functions of the template; SNS topics, EventBridge buses and
//! S3 buckets are kept as [`Destination::Unmodelled`] with a warning at load, so a template that
//! uses them still runs.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::super::error::TemplateError;
use super::super::expr::Expr;
use super::super::resolve::{
    At, EVENT_INVOKE_CONFIG, Resource, SAM_FUNCTION, entries, json_string,
};
use super::super::{Destination, EventInvokeConfig, FunctionDef, QueueDef};
use super::Builder;

/// The services a destination can be, with the resource type and ARN prefix of each.
const SERVICES: [(&str, &str, &str); 5] = [
    ("SQS", "AWS::SQS::Queue", "arn:aws:sqs:"),
    ("Lambda", "AWS::Lambda::Function", "arn:aws:lambda:"),
    ("SNS", "AWS::SNS::Topic", "arn:aws:sns:"),
    ("EventBridge", "AWS::Events::EventBus", "arn:aws:events:"),
    ("S3", "AWS::S3::Bucket", "arn:aws:s3:"),
];

/// The service of a resource type, if a destination can be of that type.
fn service_of_kind(kind: &str) -> Option<&'static str> {
    if kind == SAM_FUNCTION {
        return Some("Lambda");
    }
    SERVICES
        .iter()
        .find(|(_, k, _)| *k == kind)
        .map(|(s, _, _)| *s)
}

/// The service of an ARN, if a destination can be of that service.
fn service_of_arn(arn: &str) -> Option<&'static str> {
    SERVICES
        .iter()
        .find(|(_, _, prefix)| arn.starts_with(prefix))
        .map(|(s, _, _)| *s)
}

fn unmodelled(kind: &str, target: String, at: &At) -> Destination {
    tracing::warn!(
        resource = %at.resource,
        property = %at.path,
        destination = %target,
        "{kind} destinations are not modelled by the emulator: records sent there are logged and dropped"
    );
    Destination::Unmodelled {
        kind: kind.to_owned(),
        target,
    }
}

impl Builder<'_, '_> {
    /// SAM's `EventInvokeConfig` of a function; the defaults when it has none.
    pub(super) fn sam_event_invoke(
        &self,
        p: &Expr,
        at: &At,
    ) -> Result<EventInvokeConfig, TemplateError> {
        match p.get("EventInvokeConfig") {
            None | Some(Expr::Null) => Ok(EventInvokeConfig::default()),
            Some(eic) => {
                let eic_at = at.key("EventInvokeConfig");
                entries(eic, &eic_at)?;
                self.event_invoke_settings(eic, &eic_at, true)
            }
        }
    }

    /// Retries, event age and destinations of a SAM `EventInvokeConfig` (`sam`: destinations
    /// carry a `Type`) or of an `AWS::Lambda::EventInvokeConfig`.
    fn event_invoke_settings(
        &self,
        p: &Expr,
        at: &At,
        sam: bool,
    ) -> Result<EventInvokeConfig, TemplateError> {
        let r = self.r;
        let default = EventInvokeConfig::default();
        let (on_success, on_failure) = match p.get("DestinationConfig") {
            None | Some(Expr::Null) => (None, None),
            Some(dc) => {
                let dc_at = at.key("DestinationConfig");
                entries(dc, &dc_at)?;
                (
                    self.destination(dc, "OnSuccess", &dc_at, sam)?,
                    self.destination(dc, "OnFailure", &dc_at, sam)?,
                )
            }
        };
        Ok(EventInvokeConfig {
            max_retry_attempts: r
                .opt_u32(p, "MaximumRetryAttempts", at, 0..=2)?
                .unwrap_or(default.max_retry_attempts),
            max_event_age_s: r
                .opt_u32(p, "MaximumEventAgeInSeconds", at, 60..=21_600)?
                .unwrap_or(default.max_event_age_s),
            on_success,
            on_failure,
        })
    }

    /// `OnSuccess` or `OnFailure` of a `DestinationConfig`.
    fn destination(
        &self,
        dc: &Expr,
        key: &str,
        at: &At,
        sam: bool,
    ) -> Result<Option<Destination>, TemplateError> {
        let Some(d) = dc.get(key) else {
            return Ok(None);
        };
        let d_at = at.key(key);
        entries(d, &d_at)?;
        let declared = if sam {
            let ty = self.r.req_string(d, "Type", &d_at)?;
            if !SERVICES.iter().any(|(s, _, _)| *s == ty) {
                return Err(d_at.key("Type").err(format!(
                    "expected SQS, SNS, Lambda, EventBridge or S3, got {}",
                    Json::String(ty)
                )));
            }
            Some(ty)
        } else {
            None
        };
        let dest_at = d_at.key("Destination");
        let Some(expr) = d.get("Destination") else {
            return Err(dest_at.err(if sam {
                "is required by the emulator: the queue or topic SAM creates without it is not modelled"
            } else {
                "is required but missing"
            }));
        };
        let mismatch = |service: &str| {
            declared.as_deref().filter(|t| *t != service).map(|t| {
                d_at.key("Type").err(format!(
                    "is {t} but the destination is a {service} resource"
                ))
            })
        };
        // A reference to a resource the emulator does not run is named, never resolved.
        if let Some((id, kind)) = self.referenced(expr)
            && let Some(service) = service_of_kind(kind)
            && !matches!(service, "SQS" | "Lambda")
        {
            if let Some(e) = mismatch(service) {
                return Err(e);
            }
            return Ok(Some(unmodelled(service, id.to_owned(), &d_at)));
        }
        let arn = match self.r.resolve(expr, &dest_at)? {
            Some(v) => json_string(&v, &dest_at)?,
            None => return Ok(None),
        };
        let service = service_of_arn(&arn).ok_or_else(|| {
            dest_at.err(format!(
                "{arn} is not the ARN of an SQS queue, SNS topic, Lambda function, EventBridge bus or S3 bucket"
            ))
        })?;
        if let Some(e) = mismatch(service) {
            return Err(e);
        }
        match service {
            "SQS" => Ok(Some(Destination::Queue(
                self.queue_id_by_arn(&arn, &dest_at)?,
            ))),
            "Lambda" => {
                let id = self
                    .function_by_arn
                    .get(&arn)
                    .or_else(|| self.function_by_arn.get(arn.trim_end_matches(":$LATEST")))
                    .ok_or_else(|| {
                        dest_at.err(format!("{arn} is not a function of this template"))
                    })?;
                Ok(Some(Destination::Function(id.clone())))
            }
            other => Ok(Some(unmodelled(other, arn, &d_at))),
        }
    }

    /// The SQS queue of a function's `DeadLetterQueue` (SAM) or `DeadLetterConfig`
    /// (`AWS::Lambda::Function`); an SNS topic is warned about and left out.
    pub(super) fn function_dead_letter_queue(
        &self,
        res: &Resource,
        at: &At,
    ) -> Result<Option<String>, TemplateError> {
        let sam = res.kind == SAM_FUNCTION;
        let key = if sam {
            "DeadLetterQueue"
        } else {
            "DeadLetterConfig"
        };
        let Some(dlq) = res.properties.get(key) else {
            return Ok(None);
        };
        let dlq_at = at.key(key);
        entries(dlq, &dlq_at)?;
        if sam {
            let ty = self.r.req_string(dlq, "Type", &dlq_at)?;
            if ty != "SQS" && ty != "SNS" {
                return Err(dlq_at
                    .key("Type")
                    .err(format!("expected SQS or SNS, got {}", Json::String(ty))));
            }
        }
        let target_at = dlq_at.key("TargetArn");
        let Some(target) = dlq.get("TargetArn") else {
            // CloudFormation allows an empty DeadLetterConfig: no dead-letter queue.
            return if sam {
                Err(target_at.err("is required but missing"))
            } else {
                Ok(None)
            };
        };
        if let Some((id, kind)) = self.referenced(target)
            && service_of_kind(kind) == Some("SNS")
        {
            unmodelled("SNS", id.to_owned(), &dlq_at);
            return Ok(None);
        }
        let arn = match self.r.resolve(target, &target_at)? {
            Some(v) => json_string(&v, &target_at)?,
            None => return Ok(None),
        };
        if service_of_arn(&arn) == Some("SNS") {
            unmodelled("SNS", arn, &dlq_at);
            return Ok(None);
        }
        self.queue_id_by_arn(&arn, &target_at).map(Some)
    }

    /// Applies each `AWS::Lambda::EventInvokeConfig` to the function it names.
    pub(super) fn apply_event_invoke_configs(
        &self,
        functions: &mut BTreeMap<String, FunctionDef>,
    ) -> Result<(), TemplateError> {
        let mut applied: BTreeMap<String, String> = BTreeMap::new();
        for (id, res) in self.r.resources() {
            if res.kind != EVENT_INVOKE_CONFIG {
                continue;
            }
            let at = At::new(id);
            let p = &res.properties;
            let function = self.function_named(p, &at)?;
            let qualifier = self.r.req_string(p, "Qualifier", &at)?;
            if qualifier != "$LATEST" {
                tracing::debug!(resource = %id, %qualifier, "the emulator runs one version of each function; the configuration applies to it");
            }
            let config = self.event_invoke_settings(p, &at, false)?;
            let sam_config = self.r.resources()[&function]
                .properties
                .get("EventInvokeConfig")
                .is_some();
            if sam_config {
                return Err(at.key("FunctionName").err(format!(
                    "function {function} already has an EventInvokeConfig property"
                )));
            }
            if let Some(other) = applied.insert(function.clone(), id.clone()) {
                return Err(at.key("FunctionName").err(format!(
                    "function {function} is already configured by {other}"
                )));
            }
            if let Some(f) = functions.get_mut(&function) {
                f.event_invoke = config;
            }
        }
        Ok(())
    }
}

/// Lambda sends records and dead-lettered events to standard queues only.
pub(super) fn check_destination_queues(
    functions: &BTreeMap<String, FunctionDef>,
    queues: &BTreeMap<String, QueueDef>,
) -> Result<(), TemplateError> {
    for f in functions.values() {
        let targets = [
            (
                "EventInvokeConfig.DestinationConfig.OnSuccess",
                &f.event_invoke.on_success,
            ),
            (
                "EventInvokeConfig.DestinationConfig.OnFailure",
                &f.event_invoke.on_failure,
            ),
        ];
        for (property, destination) in targets {
            if let Some(Destination::Queue(q)) = destination
                && queues.get(q).is_some_and(|q| q.fifo)
            {
                return Err(TemplateError::property(
                    &f.logical_id,
                    property,
                    format!("{q} is a FIFO queue; Lambda destinations must be standard queues"),
                ));
            }
        }
        if let Some(q) = &f.dead_letter_queue
            && queues.get(q).is_some_and(|q| q.fifo)
        {
            return Err(TemplateError::property(
                &f.logical_id,
                "DeadLetterQueue",
                format!(
                    "{q} is a FIFO queue; a function's dead-letter queue must be a standard queue"
                ),
            ));
        }
    }
    Ok(())
}
