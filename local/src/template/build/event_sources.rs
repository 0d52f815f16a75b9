//! SQS event sources: a SAM function's `Events` (dispatching schedule events to
//! [`super::schedules`]) and `AWS::Lambda::EventSourceMapping`, with their batching settings
//! and the visibility timeout check Lambda makes.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Builder;
use crate::template::error::TemplateError;
use crate::template::expr::Expr;
use crate::template::resolve::{At, QUEUE, Resource, entries, json_string};
use crate::template::{FunctionDef, QueueDef, ScheduleDef, SqsEventSource};

impl Builder<'_, '_> {
    pub(super) fn sam_events(
        &self,
        id: &str,
        res: &Resource,
        queues: &BTreeMap<String, QueueDef>,
        sources: &mut Vec<SqsEventSource>,
        schedules: &mut Vec<ScheduleDef>,
    ) -> Result<(), TemplateError> {
        let Some(events) = res.properties.get("Events") else {
            return Ok(());
        };
        let events_at = At::new(id).key("Events");
        for (event, decl) in entries(events, &events_at)? {
            let ev_at = events_at.key(event);
            entries(decl, &ev_at)?;
            let ty = match decl.get("Type") {
                Some(Expr::Str(t)) => t.as_str(),
                Some(other) => {
                    return Err(ev_at
                        .key("Type")
                        .err(format!("expected a string, got {other}")));
                }
                None => return Err(ev_at.key("Type").err("is required but missing")),
            };
            let props_at = ev_at.key("Properties");
            let empty = Expr::Map(Vec::new());
            let props = match decl.get("Properties") {
                None | Some(Expr::Null) => &empty,
                Some(p) => {
                    entries(p, &props_at)?;
                    p
                }
            };
            let logical_id = format!("{id}{event}");
            match ty {
                "SQS" => {
                    let queue_arn = self.r.req_string(props, "Queue", &props_at)?;
                    let queue = self.queue_id_by_arn(&queue_arn, &props_at.key("Queue"))?;
                    sources
                        .push(self.sqs_settings(logical_id, id, &queue, queues, props, &props_at)?);
                }
                "Schedule" | "ScheduleV2" => {
                    schedules.push(self.sam_schedule(ty, logical_id, id, event, props, &props_at)?);
                }
                other => {
                    tracing::warn!(function = %id, event, r#type = other, "event type not modelled by the emulator, ignored");
                }
            }
        }
        Ok(())
    }

    pub(super) fn event_source_mapping(
        &self,
        id: &str,
        res: &Resource,
        queues: &BTreeMap<String, QueueDef>,
    ) -> Result<Option<SqsEventSource>, TemplateError> {
        let at = At::new(id);
        let p = &res.properties;
        let source_at = at.key("EventSourceArn");
        let Some(source) = p.get("EventSourceArn") else {
            tracing::debug!(resource = %id, "event source mapping without EventSourceArn, ignored");
            return Ok(None);
        };
        if let Some(kind) = self.referenced_kind(source)
            && kind != QUEUE
        {
            tracing::warn!(resource = %id, source = %kind, "event source not modelled by the emulator, ignored");
            return Ok(None);
        }
        let arn = self.r.req_string(p, "EventSourceArn", &at)?;
        if !arn.starts_with("arn:aws:sqs:") {
            tracing::warn!(resource = %id, source = %arn, "event source not modelled by the emulator, ignored");
            return Ok(None);
        }
        let queue = self.queue_id_by_arn(&arn, &source_at)?;
        let function = self.function_named(p, &at)?;
        Ok(Some(self.sqs_settings(
            id.to_owned(),
            &function,
            &queue,
            queues,
            p,
            &at,
        )?))
    }

    fn sqs_settings(
        &self,
        id: String,
        function: &str,
        queue: &str,
        queues: &BTreeMap<String, QueueDef>,
        p: &Expr,
        at: &At,
    ) -> Result<SqsEventSource, TemplateError> {
        let r = self.r;
        let fifo = queues.get(queue).is_some_and(|q| q.fifo);
        let max_batch = if fifo { 10 } else { 10_000 };
        let batch_size = r.opt_u32(p, "BatchSize", at, 1..=max_batch)?.unwrap_or(10);
        let window = r.opt_u32(p, "MaximumBatchingWindowInSeconds", at, 0..=300)?;
        // "Batching window is not supported for FIFO queues"
        // (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html>).
        if fifo && window.is_some_and(|w| w > 0) {
            return Err(at
                .key("MaximumBatchingWindowInSeconds")
                .err("batching window is not supported for FIFO queues"));
        }
        let window = window.unwrap_or(0);
        if batch_size > 10 && window == 0 {
            return Err(at
                .key("BatchSize")
                .err("a batch size above 10 needs MaximumBatchingWindowInSeconds of at least 1"));
        }
        let mut report_batch_item_failures = false;
        if let Some(types) = r.opt(p, "FunctionResponseTypes", at)? {
            let types_at = at.key("FunctionResponseTypes");
            let Json::Array(types) = types else {
                return Err(types_at.err(format!("expected a list, got {types}")));
            };
            for (i, t) in types.iter().enumerate() {
                match json_string(t, &types_at.index(i))?.as_str() {
                    "ReportBatchItemFailures" => report_batch_item_failures = true,
                    other => {
                        return Err(types_at.index(i).err(format!(
                            "unknown response type {}, expected ReportBatchItemFailures",
                            Json::String(other.to_owned())
                        )));
                    }
                }
            }
        }
        let maximum_concurrency = match p.get("ScalingConfig") {
            None => None,
            Some(sc) => {
                let sc_at = at.key("ScalingConfig");
                entries(sc, &sc_at)?;
                r.opt_u32(sc, "MaximumConcurrency", &sc_at, 2..=1000)?
            }
        };
        let mut filter_patterns = Vec::new();
        if let Some(fc) = p.get("FilterCriteria") {
            let fc_at = at.key("FilterCriteria");
            entries(fc, &fc_at)?;
            if let Some(filters) = r.opt(fc, "Filters", &fc_at)? {
                let filters_at = fc_at.key("Filters");
                let Json::Array(filters) = filters else {
                    return Err(filters_at.err(format!("expected a list, got {filters}")));
                };
                for (i, f) in filters.iter().enumerate() {
                    let pattern = f.get("Pattern").ok_or_else(|| {
                        filters_at
                            .index(i)
                            .key("Pattern")
                            .err("is required but missing")
                    })?;
                    // A pattern may be written as JSON text or as a YAML mapping.
                    filter_patterns.push(match pattern {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                }
            }
        }
        Ok(SqsEventSource {
            id,
            function: function.to_owned(),
            queue: queue.to_owned(),
            batch_size,
            maximum_batching_window_s: window,
            report_batch_item_failures,
            maximum_concurrency,
            enabled: r.opt_bool(p, "Enabled", at)?.unwrap_or(true),
            filter_patterns,
        })
    }
}

/// Lambda refuses an SQS event source whose queue's visibility timeout is shorter than the
/// function's timeout (a message would come back while its invocation still runs), with this
/// message: <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html>.
pub(super) fn check_visibility_covers_timeouts(
    sources: &[SqsEventSource],
    queues: &BTreeMap<String, QueueDef>,
    functions: &BTreeMap<String, FunctionDef>,
) -> Result<(), TemplateError> {
    for source in sources {
        let (Some(queue), Some(function)) =
            (queues.get(&source.queue), functions.get(&source.function))
        else {
            continue;
        };
        if queue.visibility_timeout_s < function.timeout_s {
            return Err(TemplateError::Resource {
                resource: source.id.clone(),
                message: format!(
                    "Invalid request provided: Queue visibility timeout: {} seconds is less than Function timeout: {} seconds",
                    queue.visibility_timeout_s, function.timeout_s
                ),
            });
        }
    }
    Ok(())
}
