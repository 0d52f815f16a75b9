//! One schedule resolved against the template ([`Entry`]): its target and ARNs, its first
//! fire time, its counters and statistics, and the payload of each attempt.

use std::sync::Mutex;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{
    AttemptStatus, Counters, Deliver, Entry, LastResult, Occurrence, RunnerConfig, RunnerError,
    ScheduleStats, lock,
};
use crate::schedule::anchors::Anchor;
use crate::schedule::{
    ContextAttributes, FlexibleWindow, RetryPolicy, Schedule, ScheduleExpression, parse_time_zone,
    rule_arn, schedule_arn, scheduled_event_json, substitute_context,
};
use crate::shutdown::Shutdown;
use crate::template::{ScheduleDef, ScheduleKind, ScheduleTarget, Template};

impl Entry {
    /// Whether this is a Scheduler rate without `StartDate`, which fires when it is created.
    pub(super) fn immediate_rate(&self) -> bool {
        self.def.kind == ScheduleKind::ScheduleV2
            && self.schedule.start_date.is_none()
            && matches!(self.schedule.expression, ScheduleExpression::Rate(_))
    }

    /// The anchor ("created at") and first fire of this schedule when the runner starts at
    /// `now`, continuing `stored` (the anchor of an earlier start) when it is for the same
    /// expression.
    pub(super) fn first_fire(
        &self,
        now: DateTime<Utc>,
        stored: Option<&Anchor>,
    ) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        if self.def.kind == ScheduleKind::LegacyRule {
            // EventBridge rules: "A rate expression starts when you create the scheduled event
            // rule" (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html);
            // AWS does not say it fires at creation, so the first fire is one period later.
            return (now, self.schedule.next_fire_after(now, now));
        }
        match stored {
            Some(a) if self.immediate_rate() && a.expression == self.def.expression => {
                (a.anchor, self.schedule.next_fire_after(now, a.anchor))
            }
            _ => (now, self.schedule.first_fire(now)),
        }
    }

    pub(super) fn resolve(
        def: &ScheduleDef,
        template: &Template,
        config: &RunnerConfig,
        group: Option<&str>,
    ) -> Result<Entry, RunnerError> {
        let group = group.unwrap_or(&config.schedule_group);
        let expression_err = |source| RunnerError::Expression {
            schedule: def.id.clone(),
            source,
        };
        let policy_err = |source| RunnerError::Policy {
            schedule: def.id.clone(),
            source,
        };
        let flexible_window = match def.flexible_window_minutes {
            Some(minutes) => FlexibleWindow::flexible(minutes).map_err(policy_err)?,
            None => FlexibleWindow::Off,
        };
        let schedule = Schedule {
            expression: ScheduleExpression::parse(&def.expression).map_err(expression_err)?,
            timezone: parse_time_zone(&def.timezone).map_err(expression_err)?,
            start_date: def.start_date,
            end_date: def.end_date,
            flexible_window,
            retry_policy: RetryPolicy::new(
                def.retry_policy.max_event_age_s,
                def.retry_policy.max_retry_attempts,
            )
            .map_err(policy_err)?,
        };
        let (target, target_arn) = match &def.target {
            ScheduleTarget::Function(id) => match template.function(id) {
                Some(f) => (Deliver::Function(f.name.clone()), f.arn.clone()),
                None => (
                    Deliver::Function(id.clone()),
                    format!(
                        "arn:aws:lambda:{}:{}:function:{id}",
                        config.region, config.account_id
                    ),
                ),
            },
            ScheduleTarget::Queue {
                queue,
                message_group_id,
            } => {
                let (name, arn) = match template.queue(queue) {
                    Some(q) => (q.name.clone(), q.arn.clone()),
                    None => (
                        queue.clone(),
                        format!(
                            "arn:aws:sqs:{}:{}:{queue}",
                            config.region, config.account_id
                        ),
                    ),
                };
                let target = Deliver::Queue {
                    name,
                    message_group_id: message_group_id.clone(),
                };
                (target, arn)
            }
        };
        let arn = match def.kind {
            ScheduleKind::ScheduleV2 => {
                schedule_arn(&config.region, &config.account_id, group, &def.name)
            }
            ScheduleKind::LegacyRule => rule_arn(&config.region, &config.account_id, &def.name),
        };
        let dlq = def.dead_letter_queue.as_ref().map(|id| {
            template
                .queue(id)
                .map_or_else(|| id.clone(), |q| q.name.clone())
        });
        Ok(Entry {
            def: def.clone(),
            group: group.to_owned(),
            created_at: None,
            removed: Shutdown::new(),
            schedule,
            target,
            target_arn,
            arn,
            dlq,
            counters: Mutex::new(Counters::default()),
        })
    }

    pub(super) fn stats(&self) -> ScheduleStats {
        let c = lock(&self.counters);
        ScheduleStats {
            id: self.def.id.clone(),
            name: self.def.name.clone(),
            group: self.group.clone(),
            dynamic: self.created_at.is_some(),
            target: self.target.to_string(),
            kind: self.def.kind,
            expression: self.def.expression.clone(),
            timezone: self.def.timezone.clone(),
            enabled: self.def.enabled,
            next_fire: c.next_fire,
            last_fire: c.last_fire,
            last_result: c.last_result.clone(),
            fires: c.fires,
            invocations: c.invocations,
            failures: c.failures,
            dead_lettered: c.dead_lettered,
            dropped: c.dropped,
        }
    }

    pub(super) fn record(&self, occ: &Occurrence, at: DateTime<Utc>, status: AttemptStatus) {
        let mut c = lock(&self.counters);
        c.invocations += 1;
        if status != AttemptStatus::Succeeded {
            c.failures += 1;
        }
        match status {
            AttemptStatus::DeadLettered { .. } => c.dead_lettered += 1,
            AttemptStatus::Dropped { .. } => c.dropped += 1,
            _ => {}
        }
        c.last_result = Some(LastResult {
            scheduled_time: occ.scheduled,
            attempt: occ.attempt,
            at,
            status,
        });
    }

    /// The payload of the occurrence's next attempt.
    pub(super) fn payload(
        &self,
        config: &RunnerConfig,
        occ: &Occurrence,
        execution_id: &str,
    ) -> Bytes {
        match (self.def.kind, &self.def.input) {
            (ScheduleKind::ScheduleV2, Some(input)) => {
                let ctx = ContextAttributes {
                    schedule_arn: &self.arn,
                    scheduled_time: occ.scheduled,
                    execution_id,
                    attempt_number: occ.attempt,
                };
                Bytes::from(substitute_context(input, &ctx))
            }
            // Without Input "EventBridge Scheduler delivers a default notification to the
            // target" (https://docs.aws.amazon.com/scheduler/latest/APIReference/API_Target.html),
            // whose shape AWS does not document: the emulator sends `{}`, to functions and
            // queues alike.
            (ScheduleKind::ScheduleV2, None) => Bytes::from_static(b"{}"),
            // Rules send a constant Input as is: context attributes are a Scheduler feature.
            (ScheduleKind::LegacyRule, Some(input)) => Bytes::from(input.clone()),
            (ScheduleKind::LegacyRule, None) => Bytes::from(scheduled_event_json(
                &config.region,
                &config.account_id,
                &self.def.name,
                occ.event_id,
                occ.scheduled,
            )),
        }
    }
}
