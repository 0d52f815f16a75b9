//! Queues: `AWS::SQS::Queue` with its attributes, RedrivePolicy and RedriveAllowPolicy, and
//! the checks across queues SQS makes (dead-letter queue kind, allowed sources).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Builder;
use crate::sqs::attributes::RedriveAllowPolicy;
use crate::template::error::TemplateError;
use crate::template::resolve::{At, Resource, json_string, json_u32};
use crate::template::{QueueDef, Redrive};

impl Builder<'_, '_> {
    pub(super) fn queue(&self, id: &str, res: &Resource) -> Result<QueueDef, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        let name = r.physical_name(id, &at)?;
        let fifo = r.opt_bool(p, "FifoQueue", &at)?.unwrap_or(false);
        let content_based_deduplication = r
            .opt_bool(p, "ContentBasedDeduplication", &at)?
            .unwrap_or(false);
        if content_based_deduplication && !fifo {
            return Err(at
                .key("ContentBasedDeduplication")
                .err("only FIFO queues support content-based deduplication"));
        }
        // High-throughput FIFO settings, checked as SQS checks them.
        let deduplication_scope = r.opt_string(p, "DeduplicationScope", &at)?;
        let fifo_throughput_limit = r.opt_string(p, "FifoThroughputLimit", &at)?;
        for (key, value) in [
            ("DeduplicationScope", &deduplication_scope),
            ("FifoThroughputLimit", &fifo_throughput_limit),
        ] {
            if value.is_some() && !fifo {
                return Err(at.key(key).err("applies only to FIFO queues"));
            }
        }
        if fifo {
            let attributes: BTreeMap<String, String> = [
                ("FifoQueue", Some("true".to_owned())),
                ("DeduplicationScope", deduplication_scope.clone()),
                ("FifoThroughputLimit", fifo_throughput_limit.clone()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
            crate::sqs::attributes::QueueConfig::default()
                .apply(&attributes, true)
                .map_err(|e| at.err(e.aws_message()))?;
        }
        let redrive = match r.opt(p, "RedrivePolicy", &at)? {
            None => None,
            Some(policy) => Some(self.redrive(policy, &at.key("RedrivePolicy"))?),
        };
        let redrive_allow_policy = match r.opt(p, "RedriveAllowPolicy", &at)? {
            None => None,
            Some(policy) => Some(redrive_allow_policy(policy, &at.key("RedriveAllowPolicy"))?),
        };
        Ok(QueueDef {
            logical_id: id.to_owned(),
            url: r.queue_url(&name),
            arn: r.queue_arn(&name),
            name,
            fifo,
            content_based_deduplication,
            deduplication_scope,
            fifo_throughput_limit,
            visibility_timeout_s: r
                .opt_u32(p, "VisibilityTimeout", &at, 0..=43_200)?
                .unwrap_or(30),
            delay_s: r.opt_u32(p, "DelaySeconds", &at, 0..=900)?.unwrap_or(0),
            retention_s: r
                .opt_u32(p, "MessageRetentionPeriod", &at, 60..=1_209_600)?
                .unwrap_or(345_600),
            max_message_size: r
                .opt_u32(p, "MaximumMessageSize", &at, 1024..=1_048_576)?
                .unwrap_or(1_048_576),
            receive_wait_s: r
                .opt_u32(p, "ReceiveMessageWaitTimeSeconds", &at, 0..=20)?
                .unwrap_or(0),
            redrive,
            redrive_allow_policy,
        })
    }

    fn redrive(&self, policy: Json, at: &At) -> Result<Redrive, TemplateError> {
        // RedrivePolicy is a JSON property: a mapping, or a string holding JSON.
        let policy = match policy {
            Json::String(text) => serde_json::from_str::<Json>(&text)
                .map_err(|e| at.err(format!("invalid JSON: {e}")))?,
            other => other,
        };
        let Json::Object(policy) = policy else {
            return Err(at.err(format!("expected a mapping, got {policy}")));
        };
        let arn_at = at.key("deadLetterTargetArn");
        let arn = policy
            .get("deadLetterTargetArn")
            .ok_or_else(|| arn_at.err("is required but missing"))?;
        let arn = json_string(arn, &arn_at)?;
        let count_at = at.key("maxReceiveCount");
        let count = policy
            .get("maxReceiveCount")
            .ok_or_else(|| count_at.err("is required but missing"))?;
        let max_receive_count = json_u32(count, &count_at, 1..=1000)?;
        let dlq = self
            .queue_by_arn
            .get(&arn)
            .ok_or_else(|| arn_at.err(format!("{arn} is not a queue of this template")))?;
        Ok(Redrive {
            dlq_name: self.r.physical_name(dlq, &arn_at)?,
            dlq_logical_id: dlq.clone(),
            max_receive_count,
        })
    }
}

/// FIFO queues need FIFO dead-letter queues and standard queues standard ones, as SQS
/// enforces.
pub(super) fn check_redrive_kinds(
    queues: &BTreeMap<String, QueueDef>,
) -> Result<(), TemplateError> {
    for q in queues.values() {
        let Some(r) = &q.redrive else { continue };
        if let Some(dlq) = queues.get(&r.dlq_logical_id)
            && dlq.fifo != q.fifo
        {
            let kind = |fifo: bool| if fifo { "a FIFO" } else { "a standard" };
            return Err(TemplateError::property(
                &q.logical_id,
                "RedrivePolicy.deadLetterTargetArn",
                format!(
                    "{} queue needs {} dead-letter queue, {} is not",
                    kind(q.fifo),
                    kind(q.fifo),
                    dlq.logical_id
                ),
            ));
        }
    }
    Ok(())
}

/// Reads a RedriveAllowPolicy property (a mapping, or a string holding JSON, as CloudFormation
/// takes both) with the rules SQS applies to the attribute.
fn redrive_allow_policy(policy: Json, at: &At) -> Result<RedriveAllowPolicy, TemplateError> {
    let text = match policy {
        Json::String(text) => text,
        other => other.to_string(),
    };
    RedriveAllowPolicy::parse(&text).map_err(|e| at.err(e.to_string()))
}

/// A queue's RedrivePolicy must name a dead-letter queue whose RedriveAllowPolicy admits it, as
/// SQS checks when the source queue is created: refused at load, naming both queues, rather
/// than when the emulator creates them.
pub(super) fn check_redrive_allowed(
    queues: &BTreeMap<String, QueueDef>,
) -> Result<(), TemplateError> {
    for queue in queues.values() {
        let Some(redrive) = &queue.redrive else {
            continue;
        };
        let Some(dlq) = queues.get(&redrive.dlq_logical_id) else {
            continue;
        };
        let Some(allow) = &dlq.redrive_allow_policy else {
            continue;
        };
        if !allow.allows(&queue.arn) {
            let why = match allow {
                RedriveAllowPolicy::DenyAll => "denyAll",
                _ => "byQueue without this queue",
            };
            return Err(TemplateError::property(
                &queue.logical_id,
                "RedrivePolicy",
                format!(
                    "dead-letter queue {} ({}) does not allow {} ({}) as a source: its RedriveAllowPolicy is {why}",
                    dlq.logical_id, dlq.name, queue.logical_id, queue.name
                ),
            ));
        }
    }
    Ok(())
}
