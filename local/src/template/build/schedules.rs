//! Schedules: SAM `Schedule`/`ScheduleV2` events, `AWS::Scheduler::Schedule` and
//! `AWS::Events::Rule`, their targets, retry policies and dead-letter queues (including the
//! queue SAM generates for a schedule event).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::Builder;
use crate::template::error::TemplateError;
use crate::template::expr::Expr;
use crate::template::resolve::{
    At, QUEUE, Resource, SAM_FUNCTION, derive, entries, is_function, json_string,
};
use crate::template::{QueueDef, RetryPolicy, ScheduleDef, ScheduleKind, ScheduleTarget};

impl Builder<'_, '_> {
    pub(super) fn sam_schedule(
        &self,
        ty: &str,
        id: String,
        function: &str,
        event: &str,
        p: &Expr,
        at: &At,
    ) -> Result<ScheduleDef, TemplateError> {
        let r = self.r;
        let v2 = ty == "ScheduleV2";
        let expression = if v2 {
            r.req_string(p, "ScheduleExpression", at)?
        } else {
            r.req_string(p, "Schedule", at)?
        };
        let enabled = match r.opt_string(p, "State", at)? {
            Some(state) => parse_state(&state, &at.key("State"))?,
            None => r.opt_bool(p, "Enabled", at)?.unwrap_or(true),
        };
        let omit_name = r.opt_bool(p, "OmitName", at)?.unwrap_or(false);
        let name = match r.opt_string(p, "Name", at)? {
            Some(name) => name,
            // SAM names a ScheduleV2 after its logical id; CloudFormation names a rule.
            None if v2 && !omit_name => id.clone(),
            None => derive(&self.opts.stack_name, &id, 64),
        };
        let dead_letter_queue = match p.get("DeadLetterConfig") {
            None => None,
            Some(dlc) => Some(match sam_dlq_id(function, event, dlc) {
                Some(queue) => queue,
                None => self.dead_letter_arn(dlc, &at.key("DeadLetterConfig"))?,
            }),
        };
        Ok(ScheduleDef {
            name,
            target: ScheduleTarget::Function(function.to_owned()),
            expression,
            timezone: if v2 {
                self.timezone(p, at)?
            } else {
                "UTC".to_owned()
            },
            kind: if v2 {
                ScheduleKind::ScheduleV2
            } else {
                ScheduleKind::LegacyRule
            },
            input: r.opt_string(p, "Input", at)?,
            retry_policy: self.retry_policy(p, at)?,
            dead_letter_queue,
            flexible_window_minutes: if v2 {
                self.flexible_window(p, at)?
            } else {
                None
            },
            enabled,
            start_date: if v2 {
                self.date(p, "StartDate", at)?
            } else {
                None
            },
            end_date: if v2 {
                self.date(p, "EndDate", at)?
            } else {
                None
            },
            id,
        })
    }

    pub(super) fn scheduler_schedule(
        &self,
        id: &str,
        res: &Resource,
    ) -> Result<ScheduleDef, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        let target_at = at.key("Target");
        let target = p
            .get("Target")
            .ok_or_else(|| target_at.err("is required but missing"))?;
        entries(target, &target_at)?;
        let arn = target
            .get("Arn")
            .ok_or_else(|| target_at.key("Arn").err("is required but missing"))?;
        let target_def = self.scheduler_target(target, arn, &target_at)?;
        let enabled = match r.opt_string(p, "State", &at)? {
            Some(state) => parse_state(&state, &at.key("State"))?,
            None => true,
        };
        Ok(ScheduleDef {
            id: id.to_owned(),
            name: r.physical_name(id, &at)?,
            target: target_def,
            expression: r.req_string(p, "ScheduleExpression", &at)?,
            timezone: self.timezone(p, &at)?,
            kind: ScheduleKind::ScheduleV2,
            input: r.opt_string(target, "Input", &target_at)?,
            retry_policy: self.retry_policy(target, &target_at)?,
            dead_letter_queue: match target.get("DeadLetterConfig") {
                None => None,
                Some(dlc) => Some(self.dead_letter_arn(dlc, &target_at.key("DeadLetterConfig"))?),
            },
            flexible_window_minutes: self.flexible_window(p, &at)?,
            enabled,
            start_date: self.date(p, "StartDate", &at)?,
            end_date: self.date(p, "EndDate", &at)?,
        })
    }

    /// The function or queue a Scheduler schedule's `Target.Arn` designates.
    ///
    /// A target that is neither fails the load rather than being skipped: the template module
    /// refuses a modelled resource that depends on one the emulator does not run (and names
    /// both ends), and a schedule that silently never fires locally is worse than an error one
    /// can act on (remove the schedule, or point it at a function or queue for local runs).
    fn scheduler_target(
        &self,
        target: &Expr,
        arn: &Expr,
        target_at: &At,
    ) -> Result<ScheduleTarget, TemplateError> {
        let arn_at = target_at.key("Arn");
        let only = "the emulator delivers schedules to Lambda functions and SQS queues only";
        if let Some((resource, kind)) = self.referenced(arn)
            && !is_function(kind)
            && kind != QUEUE
        {
            return Err(arn_at.err(format!(
                "targets resource {resource} of type {kind}; {only}"
            )));
        }
        let resolved = match self.r.resolve(arn, &arn_at)? {
            Some(v) => json_string(&v, &arn_at)?,
            None => return Err(arn_at.err("is required but missing")),
        };
        let group_at = target_at.key("SqsParameters");
        let message_group_id = match target.get("SqsParameters") {
            None => None,
            Some(sp) => {
                entries(sp, &group_at)?;
                self.r.opt_string(sp, "MessageGroupId", &group_at)?
            }
        };
        if let Some(function) = self.function_by_arn.get(&resolved) {
            if message_group_id.is_some() {
                return Err(group_at.err(format!(
                    "applies to an SQS queue target, but {resolved} is a function"
                )));
            }
            return Ok(ScheduleTarget::Function(function.clone()));
        }
        if let Some(queue) = self.queue_by_arn.get(&resolved) {
            // 1-128 characters: https://docs.aws.amazon.com/scheduler/latest/APIReference/API_SqsParameters.html
            if let Some(group) = &message_group_id
                && !(1..=128).contains(&group.chars().count())
            {
                return Err(group_at.key("MessageGroupId").err(format!(
                    "must be 1 to 128 characters long, got {}",
                    group.chars().count()
                )));
            }
            return Ok(ScheduleTarget::Queue {
                queue: queue.clone(),
                message_group_id,
            });
        }
        let what = if resolved.starts_with("arn:aws:lambda:") {
            "is not a function of this template".to_owned()
        } else if resolved.starts_with("arn:aws:sqs:") {
            "is not a queue of this template".to_owned()
        } else {
            format!("is neither a function nor a queue of this template; {only}")
        };
        Err(arn_at.err(format!("{resolved} {what}")))
    }

    pub(super) fn events_rule(
        &self,
        id: &str,
        res: &Resource,
    ) -> Result<Vec<ScheduleDef>, TemplateError> {
        let r = self.r;
        let at = At::new(id);
        let p = &res.properties;
        let Some(expression) = r.opt_string(p, "ScheduleExpression", &at)? else {
            tracing::debug!(resource = %id, "rule without ScheduleExpression, ignored");
            return Ok(Vec::new());
        };
        let enabled = match r.opt_string(p, "State", &at)? {
            Some(state) => parse_state(&state, &at.key("State"))?,
            None => true,
        };
        let targets_at = at.key("Targets");
        let targets: &[Expr] = match p.get("Targets") {
            None => &[],
            Some(Expr::List(items)) => items,
            Some(other) => return Err(targets_at.err(format!("expected a list, got {other}"))),
        };
        let mut found = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let t_at = targets_at.index(i);
            entries(target, &t_at)?;
            let arn = target
                .get("Arn")
                .ok_or_else(|| t_at.key("Arn").err("is required but missing"))?;
            let Some(function) = self.target_function(arn, &t_at.key("Arn"))? else {
                tracing::debug!(resource = %id, target = i, "rule target is not a function, ignored");
                continue;
            };
            if target.get("InputPath").is_some() || target.get("InputTransformer").is_some() {
                tracing::warn!(resource = %id, target = i, "InputPath and InputTransformer not modelled, the scheduled event is sent as is");
            }
            let target_id = r
                .opt_string(target, "Id", &t_at)?
                .unwrap_or_else(|| i.to_string());
            found.push((target_id, function, target, t_at));
        }
        let single = found.len() == 1;
        let name = r.physical_name(id, &at)?;
        let mut out = Vec::with_capacity(found.len());
        for (target_id, function, target, t_at) in found {
            out.push(ScheduleDef {
                id: if single {
                    id.to_owned()
                } else {
                    format!("{id}.{target_id}")
                },
                name: name.clone(),
                target: ScheduleTarget::Function(function),
                expression: expression.clone(),
                timezone: "UTC".to_owned(),
                kind: ScheduleKind::LegacyRule,
                input: r.opt_string(target, "Input", &t_at)?,
                retry_policy: self.retry_policy(target, &t_at)?,
                dead_letter_queue: match target.get("DeadLetterConfig") {
                    None => None,
                    Some(dlc) => Some(self.dead_letter_arn(dlc, &t_at.key("DeadLetterConfig"))?),
                },
                flexible_window_minutes: None,
                enabled,
                start_date: None,
                end_date: None,
            });
        }
        Ok(out)
    }

    /// The function a target ARN designates; `None` for targets that are not functions
    /// (state machines, queues, ...), which the emulator does not invoke.
    fn target_function(&self, e: &Expr, at: &At) -> Result<Option<String>, TemplateError> {
        if let Some(kind) = self.referenced_kind(e)
            && !is_function(kind)
        {
            return Ok(None);
        }
        let arn = match self.r.resolve(e, at)? {
            Some(v) => json_string(&v, at)?,
            None => return Err(at.err("is required but missing")),
        };
        if let Some(id) = self.function_by_arn.get(&arn) {
            return Ok(Some(id.clone()));
        }
        if arn.starts_with("arn:aws:lambda:") {
            return Err(at.err(format!("{arn} is not a function of this template")));
        }
        Ok(None)
    }

    fn dead_letter_arn(&self, dlc: &Expr, at: &At) -> Result<String, TemplateError> {
        entries(dlc, at)?;
        let arn = self.r.req_string(dlc, "Arn", at)?;
        self.queue_id_by_arn(&arn, &at.key("Arn"))
    }

    fn retry_policy(&self, p: &Expr, at: &At) -> Result<RetryPolicy, TemplateError> {
        let Some(rp) = p.get("RetryPolicy") else {
            return Ok(RetryPolicy::default());
        };
        let rp_at = at.key("RetryPolicy");
        entries(rp, &rp_at)?;
        let default = RetryPolicy::default();
        Ok(RetryPolicy {
            max_event_age_s: self
                .r
                .opt_u32(rp, "MaximumEventAgeInSeconds", &rp_at, 60..=86_400)?
                .unwrap_or(default.max_event_age_s),
            max_retry_attempts: self
                .r
                .opt_u32(rp, "MaximumRetryAttempts", &rp_at, 0..=185)?
                .unwrap_or(default.max_retry_attempts),
        })
    }

    fn flexible_window(&self, p: &Expr, at: &At) -> Result<Option<u32>, TemplateError> {
        let Some(ftw) = p.get("FlexibleTimeWindow") else {
            return Ok(None);
        };
        let ftw_at = at.key("FlexibleTimeWindow");
        entries(ftw, &ftw_at)?;
        let mode = self.r.req_string(ftw, "Mode", &ftw_at)?;
        let minutes = self
            .r
            .opt_u32(ftw, "MaximumWindowInMinutes", &ftw_at, 1..=1440)?;
        match mode.as_str() {
            "OFF" => Ok(None),
            "FLEXIBLE" => minutes.map(Some).ok_or_else(|| {
                ftw_at
                    .key("MaximumWindowInMinutes")
                    .err("is required when Mode is FLEXIBLE")
            }),
            other => Err(ftw_at.key("Mode").err(format!(
                "expected OFF or FLEXIBLE, got {}",
                Json::String(other.to_owned())
            ))),
        }
    }

    fn timezone(&self, p: &Expr, at: &At) -> Result<String, TemplateError> {
        let key = "ScheduleExpressionTimezone";
        match self.r.opt_string(p, key, at)? {
            None => Ok("UTC".to_owned()),
            Some(tz) => match tz.parse::<chrono_tz::Tz>() {
                Ok(_) => Ok(tz),
                Err(_) => Err(at
                    .key(key)
                    .err(format!("unknown time zone {}", Json::String(tz.clone())))),
            },
        }
    }

    fn date(&self, p: &Expr, key: &str, at: &At) -> Result<Option<DateTime<Utc>>, TemplateError> {
        self.r
            .opt_string(p, key, at)?
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| {
                        at.key(key).err(format!(
                            "expected an ISO 8601 date-time such as 2030-01-01T00:00:00Z, got {}",
                            Json::String(s.clone())
                        ))
                    })
            })
            .transpose()
    }
}

/// A schedule's dead-letter queue must be a standard queue, and a schedule delivering to a
/// FIFO queue needs a message group, and the queue content-based deduplication: "If you specify an Amazon SQS FIFO queue as a target, the queue must have
/// content-based deduplication enabled"
/// (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_SqsParameters.html>).
pub(super) fn check_fifo_targets(
    schedules: &[ScheduleDef],
    queues: &BTreeMap<String, QueueDef>,
) -> Result<(), TemplateError> {
    for schedule in schedules {
        // "EventBridge Scheduler does not support using a FIFO queue as your schedule's DLQ"
        // (<https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html>).
        if let Some(dlq) = schedule
            .dead_letter_queue
            .as_ref()
            .and_then(|d| queues.get(d))
            && dlq.fifo
        {
            return Err(TemplateError::property(
                &schedule.id,
                "DeadLetterConfig",
                format!(
                    "{} is a FIFO queue; a schedule's dead-letter queue must be a standard queue",
                    dlq.name
                ),
            ));
        }
        let ScheduleTarget::Queue {
            queue,
            message_group_id,
        } = &schedule.target
        else {
            continue;
        };
        let Some(q) = queues.get(queue).filter(|q| q.fifo) else {
            continue;
        };
        if message_group_id.is_none() {
            return Err(TemplateError::property(
                &schedule.id,
                "Target.SqsParameters.MessageGroupId",
                format!("is required: the target {} is a FIFO queue", q.name),
            ));
        }
        if !q.content_based_deduplication {
            return Err(TemplateError::property(
                &schedule.id,
                "Target",
                format!(
                    "the FIFO queue {} must have ContentBasedDeduplication to be a schedule target",
                    q.name
                ),
            ));
        }
    }
    Ok(())
}

/// SAM creates a queue for a `Schedule`/`ScheduleV2` event whose `DeadLetterConfig` has
/// `Type: SQS`; it is added here so it resolves and runs like a declared queue.
pub(super) fn add_sam_dead_letter_queues(
    resources: &mut BTreeMap<String, Resource>,
) -> Result<(), TemplateError> {
    let mut generated = Vec::new();
    for (id, res) in resources.iter() {
        if res.kind != SAM_FUNCTION {
            continue;
        }
        let Some(Expr::Map(events)) = res.properties.get("Events") else {
            continue;
        };
        for (event, decl) in events {
            if let Some(queue_id) = sam_generated_dlq(id, event, decl) {
                generated.push((
                    format!("Events.{event}.Properties.DeadLetterConfig"),
                    id.clone(),
                    queue_id,
                ));
            }
        }
    }
    for (property, owner, queue_id) in generated {
        if resources.contains_key(&queue_id) {
            return Err(TemplateError::property(
                owner,
                property,
                format!(
                    "the dead-letter queue SAM creates, {queue_id}, clashes with a declared resource"
                ),
            ));
        }
        resources.insert(
            queue_id,
            Resource {
                kind: QUEUE.to_owned(),
                properties: Expr::Map(Vec::new()),
                metadata: Expr::Null,
                condition: None,
            },
        );
    }
    Ok(())
}

/// Logical id of the queue SAM generates for an event's `DeadLetterConfig: {Type: SQS}`.
fn sam_generated_dlq(function: &str, event: &str, decl: &Expr) -> Option<String> {
    let ty = decl.get("Type");
    if !matches!(ty, Some(Expr::Str(t)) if t == "Schedule" || t == "ScheduleV2") {
        return None;
    }
    sam_dlq_id(
        function,
        event,
        decl.get("Properties")?.get("DeadLetterConfig")?,
    )
}

/// `QueueLogicalId`, else `{function}{event}Queue`, when a `DeadLetterConfig` asks SAM to
/// create the queue.
fn sam_dlq_id(function: &str, event: &str, dlc: &Expr) -> Option<String> {
    if !matches!(dlc.get("Type"), Some(Expr::Str(t)) if t == "SQS") {
        return None;
    }
    Some(match dlc.get("QueueLogicalId") {
        Some(Expr::Str(id)) => id.clone(),
        _ => format!("{function}{event}Queue"),
    })
}

fn parse_state(state: &str, at: &At) -> Result<bool, TemplateError> {
    match state {
        "ENABLED" | "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" => Ok(true),
        "DISABLED" => Ok(false),
        other => Err(at.err(format!(
            "expected ENABLED or DISABLED, got {}",
            Json::String(other.to_owned())
        ))),
    }
}
