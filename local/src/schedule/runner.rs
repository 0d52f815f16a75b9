//! runner: fires the template's schedules on the emulator's clock and delivers them to functions
//! and queues.
//!
//! [`ScheduleRunner`] runs one task per enabled schedule (`ScheduleV2` /
//! `AWS::Scheduler::Schedule` and legacy `Schedule` rules). Each task computes the next fire
//! time in the schedule's zone ([`Schedule::next_fire_after`]), waits for it on the shared
//! [`Clock`](crate::clock::Clock), applies the flexible window, builds the payload and invokes
//! the function asynchronously through the [`AsyncInvoker`], as EventBridge Scheduler invokes
//! Lambda with the `Event` invocation type. A Scheduler schedule whose target is an SQS queue
//! sends the payload (its Input, context attributes substituted) as the message body instead,
//! with `SqsParameters.MessageGroupId` as the message's group id, as the templated
//! `SendMessage` target does
//! (<https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#rate-based>
//! shows a queue target whose `Input` is the message).
//!
//! Catching up: when the clock jumps over many fire times at once (the manual clock's
//! `advance 24h`), the task walks every due occurrence in order, each exactly once, with its own
//! scheduled time. Attempts that are already due run inline, so the invocations of a catch-up
//! happen in order; anything that must wait (a flexible-window offset, a retry backoff, or simply
//! the last occurrence, which is on time) runs in a task of its own, so a slow invocation or a
//! retry never delays the next occurrence.
//!
//! A delivery succeeds when the function's asynchronous queue accepts the event. What the
//! function then does is Lambda's business, not the Scheduler's: a function error or timeout is
//! retried by the [`AsyncInvoker`] per the function's `EventInvokeConfig` and ends in its
//! on-failure destination or dead-letter queue, never in the schedule's.
//!
//! Failures to *invoke* (the function does not exist, the queue refuses the event) and to
//! *send* (the target queue was deleted, SQS refuses the message) are retried per the
//! schedule's [`RetryPolicy`]: retry `n` is due `backoff(n)` after the failure on the
//! clock, with the attempt number and a fresh execution id in the payload, as long as it stays
//! within `MaximumEventAgeInSeconds` of the first attempt. When the attempts or the event age
//! run out (or the error cannot clear, such as an unknown function) the event goes to the
//! schedule's dead-letter queue with the message attributes EventBridge puts on dead-letter
//! events ([`DLQ_ATTRIBUTES`]), or is dropped with an error log when it has none.
//!
//! For tests and `nightshift advance`, [`ScheduleRunner::wait_idle`] resolves once every task
//! (and every event of the asynchronous queues) is waiting on a future instant, and [`ScheduleRunner::advance_to`] steps a manual clock
//! through each due instant so that functions observe `now == scheduled time`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::anchors::{Anchor, AnchorStore};
use super::delivery::format_scheduled_time;
use super::{
    ContextAttributes, ExpressionError, FlexibleWindow, PolicyError, RetryPolicy, Schedule,
    ScheduleExpression, new_execution_id, parse_time_zone, rule_arn, schedule_arn,
    scheduled_event_json, substitute_context,
};
use crate::activity::{Activity, Tracker, stopped};
use crate::clock::{ClockError, SharedClock};
use crate::invoke_async::{Accepted, AsyncInvoker};
use crate::invoker::{InvokeError, InvokeResponse};
use crate::sqs::error::SqsError;
use crate::sqs::{MessageAttributeValue, OutgoingMessage, SqsEngine};
use crate::template::{self, ScheduleDef, ScheduleKind, ScheduleTarget, Template};

/// Most attempts one occurrence can make: the first plus `MaximumRetryAttempts` (at most 185).
const MAX_ATTEMPTS: u32 = 186;

/// Bound on the steps of one [`ScheduleRunner::advance_to`]; far above a year of per-minute
/// schedules, it only stops a runaway.
const MAX_ADVANCE_STEPS: u64 = 50_000_000;

/// Largest dead-letter body; longer payloads are cut and flagged `IS_PAYLOAD_TRUNCATED`.
const MAX_DLQ_BODY_BYTES: usize = 256 * 1024;

/// Longest `ERROR_MESSAGE` put on a dead-letter message.
const MAX_ERROR_MESSAGE_CHARS: usize = 1024;

/// The message attributes of a dead-lettered Scheduler event, as AWS documents them for
/// EventBridge Scheduler ("Retrieve the dead-letter event"). All are `String` attributes;
/// `EXHAUSTED_RETRY_CONDITION` is absent when the error could not clear (no retry was made).
/// Legacy rules use EventBridge's set instead: `RULE_ARN` in place of `SCHEDULE_ARN`, without
/// `EXECUTION_ID`, `SCHEDULED_TIME` and `IS_PAYLOAD_TRUNCATED`.
pub const DLQ_ATTRIBUTES: [&str; 9] = [
    "ERROR_CODE",
    "ERROR_MESSAGE",
    "EXECUTION_ID",
    "EXHAUSTED_RETRY_CONDITION",
    "IS_PAYLOAD_TRUNCATED",
    "RETRY_ATTEMPTS",
    "SCHEDULED_TIME",
    "SCHEDULE_ARN",
    "TARGET_ARN",
];

/// Errors of the schedule runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A schedule's expression or time zone does not parse.
    #[error("schedule {schedule}: {source}")]
    Expression {
        /// The schedule's logical id.
        schedule: String,
        /// Why.
        #[source]
        source: ExpressionError,
    },
    /// A schedule's flexible window or retry policy is out of range.
    #[error("schedule {schedule}: {source}")]
    Policy {
        /// The schedule's logical id.
        schedule: String,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// No schedule has this id or name.
    #[error("no schedule named {0:?}")]
    UnknownSchedule(String),
    /// Several schedules (targets of one rule) share this name.
    #[error("schedule name {name:?} is ambiguous; use one of the ids {ids:?}")]
    Ambiguous {
        /// The name asked for.
        name: String,
        /// The ids that carry it.
        ids: Vec<String>,
    },
    /// [`ScheduleRunner::start`] was called twice.
    #[error("the schedule runner is already started")]
    AlreadyStarted,
    /// The runner has been stopped.
    #[error("the schedule runner is stopped")]
    Stopped,
    /// [`ScheduleRunner::advance_to`] needs a manual clock.
    #[error("the clock is not manual; only a manual clock can be advanced")]
    NotManual,
    /// The manual clock refused to move.
    #[error(transparent)]
    Clock(#[from] ClockError),
}

/// Settings of the runner that do not come from the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Region of schedule, rule and function ARNs and of the legacy envelope.
    pub region: String,
    /// Account of ARNs and of the legacy envelope.
    pub account_id: String,
    /// Schedule group in schedule ARNs.
    pub schedule_group: String,
    /// Seed of flexible-window offsets, execution ids and event ids; `None` draws one.
    pub seed: Option<u64>,
    /// Directory of the rate anchors ([`super::anchors`]): with it, a restart continues each
    /// Scheduler rate on its grid instead of firing it at once again; `None` keeps nothing.
    pub state_dir: Option<PathBuf>,
}

impl Default for RunnerConfig {
    /// `us-east-1`, account [`template::ACCOUNT_ID`], group `default`, random seed, no state.
    fn default() -> Self {
        RunnerConfig {
            region: "us-east-1".to_owned(),
            account_id: template::ACCOUNT_ID.to_owned(),
            schedule_group: "default".to_owned(),
            seed: None,
            state_dir: None,
        }
    }
}

/// Why a delivery attempt failed, as put on dead-letter messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `ERROR_CODE`: a Lambda API error code when the invocation did not reach the function,
    /// or SQS's error code (`AWS.SimpleQueueService.NonExistentQueue`) when the message could
    /// not be sent to a queue target.
    pub code: String,
    /// `ERROR_MESSAGE`.
    pub message: String,
    /// False when retrying cannot help (unknown function, payload too large, a message SQS
    /// refuses).
    pub retryable: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// How the latest attempt of a schedule ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptStatus {
    /// The function returned a result.
    Succeeded,
    /// It failed; another attempt is due.
    Retrying {
        /// Why it failed.
        failure: Failure,
        /// When the next attempt is due.
        next_attempt_at: DateTime<Utc>,
    },
    /// It failed for the last time; the event went to the dead-letter queue.
    DeadLettered {
        /// Why it failed.
        failure: Failure,
        /// The queue it went to.
        queue: String,
    },
    /// It failed for the last time and there is no (working) dead-letter queue: dropped.
    Dropped {
        /// Why it failed.
        failure: Failure,
    },
}

impl fmt::Display for AttemptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptStatus::Succeeded => f.write_str("ok"),
            AttemptStatus::Retrying {
                failure,
                next_attempt_at,
            } => write!(f, "failed ({failure}), retry at {next_attempt_at}"),
            AttemptStatus::DeadLettered { failure, queue } => {
                write!(f, "failed ({failure}), dead-lettered to {queue}")
            }
            AttemptStatus::Dropped { failure } => write!(f, "failed ({failure}), dropped"),
        }
    }
}

/// The latest attempt of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastResult {
    /// The scheduled time of the occurrence it belongs to.
    pub scheduled_time: DateTime<Utc>,
    /// Its attempt number (1 for the first).
    pub attempt: u32,
    /// When it ended, on the clock.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub status: AttemptStatus,
}

/// One schedule's line of `nightshift status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStats {
    /// Logical id.
    pub id: String,
    /// Schedule or rule name.
    pub name: String,
    /// What it delivers to: the function's name, or `sqs:` and the queue's name.
    pub target: String,
    /// Scheduler or legacy rule.
    pub kind: ScheduleKind,
    /// The expression, as written.
    pub expression: String,
    /// The IANA zone of the expression.
    pub timezone: String,
    /// Whether it fires on its own (disabled ones can still be fired by hand).
    pub enabled: bool,
    /// The next scheduled time, while the runner waits for it.
    pub next_fire: Option<DateTime<Utc>>,
    /// The scheduled time of the latest occurrence (scheduled or fired by hand).
    pub last_fire: Option<DateTime<Utc>>,
    /// The latest attempt.
    pub last_result: Option<LastResult>,
    /// Occurrences started.
    pub fires: u64,
    /// Invocations made, retries included.
    pub invocations: u64,
    /// Invocations that failed.
    pub failures: u64,
    /// Occurrences sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Occurrences given up without a dead-letter queue (or whose send to it failed).
    pub dropped: u64,
}

/// What [`ScheduleRunner::fire`] did.
#[derive(Debug)]
pub struct FireOutcome {
    /// The schedule's logical id.
    pub schedule: String,
    /// The scheduled time given to the occurrence: the clock's now.
    pub scheduled_time: DateTime<Utc>,
    /// The execution id of the attempt.
    pub execution_id: String,
    /// The payload sent.
    pub payload: Bytes,
    /// The result of the function's first attempt at the event, or why the event could not
    /// be handed to the function's asynchronous queue. For a queue target: a success whose
    /// payload is SendMessage's answer (`{"MessageId":..}`, the message id also being the
    /// request id), or [`InvokeError::Unreachable`] naming the queue when the send failed.
    pub result: Result<InvokeResponse, InvokeError>,
    /// When the event will be tried again in the background, if it will: Lambda's retry after
    /// a function error, or the Scheduler's after a failed invoke.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Fires the template's schedules; cheap to clone (one shared state).
#[derive(Clone)]
pub struct ScheduleRunner {
    inner: Arc<Inner>,
}

impl fmt::Debug for ScheduleRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleRunner")
            .field(
                "schedules",
                &self
                    .inner
                    .entries
                    .iter()
                    .map(|e| &e.def.id)
                    .collect::<Vec<_>>(),
            )
            .field("started", &self.inner.started.load(Ordering::Relaxed))
            .finish()
    }
}

struct Inner {
    entries: Vec<Entry>,
    queues: AsyncInvoker,
    sqs: Option<SqsEngine>,
    clock: SharedClock,
    config: RunnerConfig,
    activity: Activity,
    stop: watch::Sender<bool>,
    started: AtomicBool,
    rng: Mutex<fastrand::Rng>,
}

/// Where an entry delivers, by physical name.
enum Deliver {
    /// Invoke this function asynchronously.
    Function(String),
    /// Send a message to this engine queue.
    Queue {
        name: String,
        message_group_id: Option<String>,
    },
}

impl fmt::Display for Deliver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deliver::Function(name) => f.write_str(name),
            Deliver::Queue { name, .. } => write!(f, "sqs:{name}"),
        }
    }
}

/// One schedule, resolved against the template.
struct Entry {
    def: ScheduleDef,
    schedule: Schedule,
    target: Deliver,
    target_arn: String,
    /// Schedule ARN, or rule ARN for legacy rules.
    arn: String,
    /// Engine queue name of the dead-letter queue.
    dlq: Option<String>,
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    next_fire: Option<DateTime<Utc>>,
    last_fire: Option<DateTime<Utc>>,
    last_result: Option<LastResult>,
    fires: u64,
    invocations: u64,
    failures: u64,
    dead_lettered: u64,
    dropped: u64,
}

/// One occurrence being delivered.
struct Occurrence {
    entry: usize,
    scheduled: DateTime<Utc>,
    /// When the first attempt was due (after the flexible window): backoff counts from here.
    first_attempt_at: DateTime<Utc>,
    /// Number of the next attempt, 1-based.
    attempt: u32,
    /// When the next attempt is due.
    due: DateTime<Utc>,
    /// `id` of the legacy envelope: the same event is retried.
    event_id: uuid::Uuid,
}

/// What a successful attempt handed over.
enum Sent {
    /// The function's asynchronous queue accepted the event.
    Accepted(Accepted),
    /// The message went to the target queue.
    Message { message_id: String },
}

/// Why an attempt failed.
enum AttemptError {
    /// The function's asynchronous queue did not take the event.
    Invoke(InvokeError),
    /// The target queue did not take the message (or there is no SQS engine).
    Send { queue: String, error: SqsError },
}

impl AttemptError {
    fn failure(&self) -> Failure {
        match self {
            AttemptError::Invoke(error) => invoke_failure(error),
            AttemptError::Send { error, .. } => send_failure(error),
        }
    }
}

/// What one attempt did.
struct Attempted {
    execution_id: String,
    payload: Bytes,
    result: Result<Sent, AttemptError>,
    /// When the next attempt is due, if one is.
    next_attempt_at: Option<DateTime<Utc>>,
}

// Poisoning only means a panic elsewhere; counters stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ScheduleRunner {
    /// A runner for every schedule of `template` (disabled ones are kept for `fire` and
    /// `status`). Functions are invoked asynchronously through `queues`, by their name in the
    /// template; target queues and dead-letter queues are the engine queues the template names,
    /// in `sqs`, which may be `None` when no schedule has either (a queue target then fails
    /// every send as if its queue did not exist).
    pub fn new(
        template: &Template,
        queues: AsyncInvoker,
        sqs: Option<SqsEngine>,
        clock: SharedClock,
        config: RunnerConfig,
    ) -> Result<Self, RunnerError> {
        let entries = template
            .schedules
            .iter()
            .map(|def| Entry::resolve(def, template, &config))
            .collect::<Result<Vec<_>, _>>()?;
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Ok(ScheduleRunner {
            inner: Arc::new(Inner {
                entries,
                queues,
                sqs,
                clock,
                config,
                activity: Activity::default(),
                stop: watch::Sender::new(false),
                started: AtomicBool::new(false),
                rng: Mutex::new(rng),
            }),
        })
    }

    /// Starts one task per enabled schedule. Scheduler rates without a `StartDate` are
    /// anchored at the clock's now and fire at once ([`Schedule::first_fire`]), unless
    /// [`RunnerConfig::state_dir`] holds their anchor from an earlier start: then they continue
    /// on that grid from the next point after now. Legacy rules' rates start one period after
    /// now. The runner stops when `shutdown` turns true (or its sender is dropped) or
    /// on [`Self::stop`]; the returned task ends once every schedule task and pending retry has
    /// ended. Retries still waiting at that point are abandoned (logged). Must be called
    /// within a Tokio runtime.
    pub fn start(&self, shutdown: watch::Receiver<bool>) -> Result<JoinHandle<()>, RunnerError> {
        if *self.inner.stop.borrow() {
            return Err(RunnerError::Stopped);
        }
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return Err(RunnerError::AlreadyStarted);
        }
        let now = self.inner.clock.now();
        let store = self.inner.config.state_dir.as_deref().map(AnchorStore::new);
        let stored = store.as_ref().map(AnchorStore::load).unwrap_or_default();
        let mut anchors = BTreeMap::new();
        for (idx, entry) in self.inner.entries.iter().enumerate() {
            if !entry.def.enabled {
                continue;
            }
            let (created_at, first) = entry.first_fire(now, stored.get(&entry.def.id));
            if entry.immediate_rate() {
                anchors.insert(
                    entry.def.id.clone(),
                    Anchor {
                        expression: entry.def.expression.clone(),
                        anchor: created_at,
                    },
                );
            }
            lock(&entry.counters).next_fire = first;
            let tracker = self.inner.track();
            let rng = lock(&self.inner.rng).fork();
            let inner = self.inner.clone();
            tokio::spawn(async move {
                inner
                    .run_schedule(idx, first, created_at, rng, tracker)
                    .await;
            });
        }
        if let Some(store) = store
            && anchors != stored
        {
            store.save(&anchors);
        }
        tracing::info!(
            schedules = self.inner.entries.iter().filter(|e| e.def.enabled).count(),
            "schedule runner started"
        );
        let inner = self.inner.clone();
        Ok(tokio::spawn(async move {
            let mut shutdown = shutdown;
            let mut stop = inner.stop.subscribe();
            tokio::select! {
                () = stopped(&mut shutdown) => {}
                () = stopped(&mut stop) => {}
            }
            inner.stop.send_replace(true);
            // Every task ends promptly once stop is set; their trackers empty the registry.
            inner.activity.wait_empty().await;
            tracing::info!("schedule runner stopped");
        }))
    }

    /// Stops the runner, like the shutdown signal; idempotent.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Fires schedule `name` (logical id, or name when unambiguous) now, as `nightshift fire`
    /// does: the scheduled time is the clock's now, there is no flexible window, and the event
    /// is handed to the function's asynchronous queue as for a scheduled occurrence. `fire`
    /// then waits for the function's first attempt and returns its result, so that the CLI and
    /// tests can show it; Lambda's retries of a failed attempt (and the Scheduler's of a failed
    /// invoke) happen in the background on the clock. Disabled schedules can be fired.
    pub async fn fire(&self, name: &str) -> Result<FireOutcome, RunnerError> {
        let idx = self.inner.find(name)?;
        if *self.inner.stop.borrow() {
            return Err(RunnerError::Stopped);
        }
        let entry = &self.inner.entries[idx];
        let now = self.inner.clock.now();
        let mut rng = lock(&self.inner.rng).fork();
        let mut occ = Occurrence::new(idx, now, now, uuid_from(&mut rng));
        {
            let mut c = lock(&entry.counters);
            c.fires += 1;
            c.last_fire = Some(now);
        }
        tracing::info!(schedule = %entry.def.id, scheduled_time = %now, "schedule fired by hand");
        let tracker = self.inner.track();
        let mut stop = self.inner.stop.subscribe();
        let attempted = self.inner.attempt(&mut occ, &mut rng, &mut stop).await;
        if attempted.next_attempt_at.is_some() {
            self.inner.spawn_delivery(occ, rng);
        }
        drop(tracker);
        let (result, next_attempt_at) = match attempted.result {
            Ok(Sent::Accepted(accepted)) => match accepted.first_attempt().await {
                Some(first) => (first.result, first.next_attempt_at),
                None => (Err(InvokeError::ShuttingDown), None),
            },
            Ok(Sent::Message { message_id }) => (Ok(sent_response(message_id)), None),
            Err(AttemptError::Invoke(error)) => (Err(error), attempted.next_attempt_at),
            Err(AttemptError::Send { queue, error }) => (
                Err(InvokeError::Unreachable {
                    endpoint: format!("queue {queue}"),
                    message: error.to_string(),
                }),
                attempted.next_attempt_at,
            ),
        };
        Ok(FireOutcome {
            schedule: entry.def.id.clone(),
            scheduled_time: now,
            execution_id: attempted.execution_id,
            payload: attempted.payload,
            result,
            next_attempt_at,
        })
    }

    /// Per-schedule statistics, in template order.
    pub fn stats(&self) -> Vec<ScheduleStats> {
        self.inner.entries.iter().map(Entry::stats).collect()
    }

    /// Statistics of one schedule (logical id, or name when unambiguous).
    pub fn schedule_stats(&self, name: &str) -> Result<ScheduleStats, RunnerError> {
        let idx = self.inner.find(name)?;
        Ok(self.inner.entries[idx].stats())
    }

    /// Resolves once every schedule task and pending delivery is waiting on an instant after
    /// the clock's now: everything due has been delivered. With a manual clock, call it after
    /// `advance`/`set` to know the runner has caught up. Waits forever if a function never
    /// returns (in-process handlers without a timeout), so tests bound it with a timeout.
    pub async fn wait_idle(&self) {
        let inner = &self.inner;
        // A schedule task may hand the queues an event, and an event may not touch the
        // runner: both idle at once is the end.
        loop {
            inner.activity.wait_idle(&inner.clock).await;
            inner.queues.wait_idle().await;
            if inner.activity.is_idle(inner.clock.now()) && inner.queues.is_idle() {
                return;
            }
        }
    }

    /// Moves the manual clock to `to` one due instant at a time (the earliest waiter of the
    /// clock, this runner's or another component's), waiting for the runner to be idle after
    /// each, so every invocation sees the clock at its own scheduled (or retry) time and
    /// occurrences of different schedules interleave in time order. Returns the number of
    /// clock moves. A single `ManualClock::advance` is much faster when invocations need not
    /// see `now == scheduled time`: each schedule then catches up in order with the clock at
    /// the end of the jump.
    pub async fn advance_to(&self, to: DateTime<Utc>) -> Result<u64, RunnerError> {
        let manual = self.inner.clock.as_manual().ok_or(RunnerError::NotManual)?;
        if to < self.inner.clock.now() {
            return Err(ClockError::Backwards {
                now: self.inner.clock.now(),
                to,
            }
            .into());
        }
        let mut steps = 0;
        while steps < MAX_ADVANCE_STEPS {
            self.wait_idle().await;
            let next = [
                manual.next_wakeup(),
                self.inner.next_parked(),
                self.inner.queues.next_retry(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at < to => {
                    manual.set(at)?;
                    steps += 1;
                }
                _ => break,
            }
        }
        manual.set(to)?;
        self.wait_idle().await;
        Ok(steps + 1)
    }

    /// [`Self::advance_to`] `now + by`; returns the new time.
    pub async fn advance(&self, by: Duration) -> Result<DateTime<Utc>, RunnerError> {
        let delta = TimeDelta::from_std(by).map_err(|_| ClockError::OutOfRange)?;
        let to = self
            .inner
            .clock
            .now()
            .checked_add_signed(delta)
            .ok_or(ClockError::OutOfRange)?;
        self.advance_to(to).await?;
        Ok(to)
    }
}

impl Entry {
    /// Whether this is a Scheduler rate without `StartDate`, which fires when it is created.
    fn immediate_rate(&self) -> bool {
        self.def.kind == ScheduleKind::ScheduleV2
            && self.schedule.start_date.is_none()
            && matches!(self.schedule.expression, ScheduleExpression::Rate(_))
    }

    /// The anchor ("created at") and first fire of this schedule when the runner starts at
    /// `now`, continuing `stored` (the anchor of an earlier start) when it is for the same
    /// expression.
    fn first_fire(
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

    fn resolve(
        def: &ScheduleDef,
        template: &Template,
        config: &RunnerConfig,
    ) -> Result<Entry, RunnerError> {
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
            ScheduleKind::ScheduleV2 => schedule_arn(
                &config.region,
                &config.account_id,
                &config.schedule_group,
                &def.name,
            ),
            ScheduleKind::LegacyRule => rule_arn(&config.region, &config.account_id, &def.name),
        };
        let dlq = def.dead_letter_queue.as_ref().map(|id| {
            template
                .queue(id)
                .map_or_else(|| id.clone(), |q| q.name.clone())
        });
        Ok(Entry {
            def: def.clone(),
            schedule,
            target,
            target_arn,
            arn,
            dlq,
            counters: Mutex::new(Counters::default()),
        })
    }

    fn stats(&self) -> ScheduleStats {
        let c = lock(&self.counters);
        ScheduleStats {
            id: self.def.id.clone(),
            name: self.def.name.clone(),
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

    fn record(&self, occ: &Occurrence, at: DateTime<Utc>, status: AttemptStatus) {
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
    fn payload(&self, config: &RunnerConfig, occ: &Occurrence, execution_id: &str) -> Bytes {
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

impl Occurrence {
    fn new(
        entry: usize,
        scheduled: DateTime<Utc>,
        first_attempt_at: DateTime<Utc>,
        event_id: uuid::Uuid,
    ) -> Self {
        Occurrence {
            entry,
            scheduled,
            first_attempt_at,
            attempt: 1,
            due: first_attempt_at,
            event_id,
        }
    }
}

impl Inner {
    fn find(&self, name: &str) -> Result<usize, RunnerError> {
        if let Some(idx) = self.entries.iter().position(|e| e.def.id == name) {
            return Ok(idx);
        }
        let named: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].def.name == name)
            .collect();
        match named.as_slice() {
            [] => Err(RunnerError::UnknownSchedule(name.to_owned())),
            [idx] => Ok(*idx),
            many => Err(RunnerError::Ambiguous {
                name: name.to_owned(),
                ids: many
                    .iter()
                    .map(|&i| self.entries[i].def.id.clone())
                    .collect(),
            }),
        }
    }

    fn track(&self) -> Tracker {
        self.activity.track()
    }

    fn next_parked(&self) -> Option<DateTime<Utc>> {
        self.activity.next_parked(self.clock.now())
    }

    /// One schedule's task: waits for each fire time and delivers its occurrence.
    async fn run_schedule(
        self: Arc<Self>,
        idx: usize,
        first: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
        mut rng: fastrand::Rng,
        tracker: Tracker,
    ) {
        let entry = &self.entries[idx];
        let mut stop = self.stop.subscribe();
        let mut next = first;
        // Ends with the expression (an `at`, an EndDate, the cron's years) or on stop.
        while let Some(scheduled) = next {
            if scheduled > self.clock.now() {
                // Registered before marking parked, so `advance_to` always sees the waiter.
                let sleep = self.clock.sleep_until(scheduled);
                tracker.park(scheduled);
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => break,
                    () = sleep => {}
                }
                tracker.run();
            } else if *stop.borrow() {
                break;
            }
            let following = entry.schedule.next_fire_after(scheduled, created_at);
            let invoke_at = entry
                .schedule
                .flexible_window
                .invocation_time(scheduled, &mut rng);
            let mut occ = Occurrence::new(idx, scheduled, invoke_at, uuid_from(&mut rng));
            {
                let mut c = lock(&entry.counters);
                c.fires += 1;
                c.last_fire = Some(scheduled);
                c.next_fire = following;
            }
            tracing::debug!(schedule = %entry.def.id, scheduled_time = %scheduled, "schedule due");
            let behind = following.is_some_and(|f| f <= self.clock.now());
            let done = behind && self.attempt_due(&mut occ, &mut rng, &mut stop).await;
            if !done && !*stop.borrow() {
                self.spawn_delivery(occ, rng.fork());
            }
            next = following;
        }
        lock(&entry.counters).next_fire = None;
        if next.is_none() {
            tracing::debug!(schedule = %entry.def.id, "schedule has no further fire time");
        }
    }

    /// Makes the attempts of `occ` that are due now, in line; false when one is left for later.
    async fn attempt_due(
        &self,
        occ: &mut Occurrence,
        rng: &mut fastrand::Rng,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        for _ in 0..MAX_ATTEMPTS {
            if occ.due > self.clock.now() || *stop.borrow() {
                return false;
            }
            if self.attempt(occ, rng, stop).await.next_attempt_at.is_none() {
                return true;
            }
        }
        true
    }

    /// Delivers `occ` (waits for its due time, attempts, retries) in a task of its own.
    fn spawn_delivery(self: &Arc<Self>, occ: Occurrence, rng: fastrand::Rng) {
        let tracker = self.track();
        let inner = self.clone();
        tokio::spawn(async move { inner.deliver(occ, rng, tracker).await });
    }

    async fn deliver(
        self: Arc<Self>,
        mut occ: Occurrence,
        mut rng: fastrand::Rng,
        tracker: Tracker,
    ) {
        let mut stop = self.stop.subscribe();
        for _ in 0..MAX_ATTEMPTS {
            if occ.due > self.clock.now() {
                let sleep = self.clock.sleep_until(occ.due);
                tracker.park(occ.due);
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => {}
                    () = sleep => {}
                }
                tracker.run();
            }
            if *stop.borrow() {
                tracing::warn!(
                    schedule = %self.entries[occ.entry].def.id,
                    scheduled_time = %occ.scheduled,
                    attempt = occ.attempt,
                    "schedule delivery abandoned at shutdown"
                );
                return;
            }
            if self
                .attempt(&mut occ, &mut rng, &mut stop)
                .await
                .next_attempt_at
                .is_none()
            {
                return;
            }
        }
    }

    /// Makes attempt `occ.attempt`; on a retryable failure moves `occ` to its next attempt,
    /// otherwise finishes it (success, dead-letter queue or drop).
    async fn attempt(
        &self,
        occ: &mut Occurrence,
        rng: &mut fastrand::Rng,
        stop: &mut watch::Receiver<bool>,
    ) -> Attempted {
        let entry = &self.entries[occ.entry];
        let execution_id = new_execution_id(rng);
        let payload = entry.payload(&self.config, occ, &execution_id);
        let result = self.deliver_payload(&entry.target, &payload);
        let now = self.clock.now();
        let failure = result.as_ref().err().map(AttemptError::failure);
        let Some(failure) = failure else {
            tracing::debug!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempt = occ.attempt,
                "schedule delivered"
            );
            entry.record(occ, now, AttemptStatus::Succeeded);
            return Attempted {
                execution_id,
                payload,
                result,
                next_attempt_at: None,
            };
        };
        if *stop.borrow() && matches!(result, Err(AttemptError::Invoke(InvokeError::ShuttingDown)))
        {
            tracing::warn!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempt = occ.attempt,
                "schedule invocation abandoned at shutdown"
            );
            return Attempted {
                execution_id,
                payload,
                result,
                next_attempt_at: None,
            };
        }
        let policy = entry.schedule.retry_policy;
        let retry_at = failure
            .retryable
            .then(|| policy.next_retry(occ.attempt, occ.first_attempt_at, now))
            .flatten();
        if let Some(at) = retry_at {
            tracing::warn!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempt = occ.attempt,
                error = %failure,
                retry_at = %at,
                "schedule invocation failed, will retry"
            );
            entry.record(
                occ,
                now,
                AttemptStatus::Retrying {
                    failure,
                    next_attempt_at: at,
                },
            );
            occ.attempt += 1;
            occ.due = at;
            return Attempted {
                execution_id,
                payload,
                result,
                next_attempt_at: Some(at),
            };
        }
        let condition = if !failure.retryable {
            None
        } else if occ.attempt > policy.maximum_retry_attempts {
            Some("MaximumRetryAttempts")
        } else {
            Some("MaximumEventAgeInSeconds")
        };
        let status = self.dead_letter(entry, occ, &failure, condition, &execution_id, &payload);
        entry.record(occ, now, status);
        Attempted {
            execution_id,
            payload,
            result,
            next_attempt_at: None,
        }
    }

    /// Hands `payload` to the target: the function's asynchronous queue, or a message on the
    /// target queue.
    fn deliver_payload(&self, target: &Deliver, payload: &Bytes) -> Result<Sent, AttemptError> {
        match target {
            Deliver::Function(name) => self
                .queues
                .invoke_async(name, payload.clone())
                .map(Sent::Accepted)
                .map_err(AttemptError::Invoke),
            Deliver::Queue {
                name,
                message_group_id,
            } => {
                let send_error = |error| AttemptError::Send {
                    queue: name.clone(),
                    error,
                };
                // No engine at all: as if the queue did not exist.
                let sqs = self
                    .sqs
                    .as_ref()
                    .ok_or_else(|| send_error(SqsError::QueueDoesNotExist))?;
                // The payload is the Input as given (a String), so it is valid UTF-8; characters
                // SQS refuses make the send fail as they would on AWS.
                let mut message = OutgoingMessage::new(String::from_utf8_lossy(payload));
                message.message_group_id = message_group_id.clone();
                sqs.send_message(name, message)
                    .map(|receipt| Sent::Message {
                        message_id: receipt.message_id,
                    })
                    .map_err(send_error)
            }
        }
    }

    /// Sends the failed event to the schedule's dead-letter queue, or drops it.
    fn dead_letter(
        &self,
        entry: &Entry,
        occ: &Occurrence,
        failure: &Failure,
        condition: Option<&str>,
        execution_id: &str,
        payload: &[u8],
    ) -> AttemptStatus {
        let (Some(queue), Some(sqs)) = (&entry.dlq, &self.sqs) else {
            tracing::error!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempts = occ.attempt,
                error = %failure,
                "schedule event dropped: delivery failed and there is no dead-letter queue"
            );
            return AttemptStatus::Dropped {
                failure: failure.clone(),
            };
        };
        let message = dead_letter_message(entry, occ, failure, condition, execution_id, payload);
        match sqs.send_message(queue, message) {
            Ok(receipt) => {
                tracing::warn!(
                    schedule = %entry.def.id,
                    scheduled_time = %occ.scheduled,
                    attempts = occ.attempt,
                    error = %failure,
                    queue = %queue,
                    message_id = %receipt.message_id,
                    "schedule event sent to its dead-letter queue"
                );
                AttemptStatus::DeadLettered {
                    failure: failure.clone(),
                    queue: queue.clone(),
                }
            }
            Err(err) => {
                tracing::error!(
                    schedule = %entry.def.id,
                    scheduled_time = %occ.scheduled,
                    error = %failure,
                    queue = %queue,
                    send_error = %err,
                    "schedule event dropped: cannot send it to its dead-letter queue"
                );
                AttemptStatus::Dropped {
                    failure: failure.clone(),
                }
            }
        }
    }
}

/// The dead-letter message of a failed event: its last payload, with EventBridge's attributes.
fn dead_letter_message(
    entry: &Entry,
    occ: &Occurrence,
    failure: &Failure,
    condition: Option<&str>,
    execution_id: &str,
    payload: &[u8],
) -> OutgoingMessage {
    let text = String::from_utf8_lossy(payload);
    let (body, truncated) = truncate(&text, MAX_DLQ_BODY_BYTES);
    let mut attributes: Vec<(&str, String)> = vec![
        ("ERROR_CODE", failure.code.clone()),
        (
            "ERROR_MESSAGE",
            failure
                .message
                .chars()
                .take(MAX_ERROR_MESSAGE_CHARS)
                .collect(),
        ),
        ("RETRY_ATTEMPTS", occ.attempt.saturating_sub(1).to_string()),
        ("TARGET_ARN", entry.target_arn.clone()),
    ];
    if let Some(condition) = condition {
        attributes.push(("EXHAUSTED_RETRY_CONDITION", condition.to_owned()));
    }
    match entry.def.kind {
        ScheduleKind::ScheduleV2 => attributes.extend([
            ("EXECUTION_ID", execution_id.to_owned()),
            ("IS_PAYLOAD_TRUNCATED", truncated.to_string()),
            ("SCHEDULED_TIME", format_scheduled_time(occ.scheduled)),
            ("SCHEDULE_ARN", entry.arn.clone()),
        ]),
        ScheduleKind::LegacyRule => attributes.push(("RULE_ARN", entry.arn.clone())),
    }
    let mut message = OutgoingMessage::new(sqs_text(body));
    for (name, value) in attributes {
        // SQS refuses empty attribute values.
        if !value.is_empty() {
            message = message.attribute(name, MessageAttributeValue::string(sqs_text(&value)));
        }
    }
    message
}

/// The failure of an invocation that did not reach the function.
fn invoke_failure(error: &InvokeError) -> Failure {
    let (code, retryable) = match error {
        InvokeError::UnknownFunction(_) => ("ResourceNotFoundException", false),
        InvokeError::PayloadTooLarge { .. } => ("RequestEntityTooLargeException", false),
        InvokeError::Throttled(_) => ("TooManyRequestsException", true),
        InvokeError::Remote { status: 429, .. } => ("TooManyRequestsException", true),
        InvokeError::Remote { status: 404, .. } => ("ResourceNotFoundException", false),
        InvokeError::Remote { status, .. } if *status < 500 => {
            ("InvalidRequestContentException", false)
        }
        InvokeError::Remote { .. }
        | InvokeError::ShuttingDown
        | InvokeError::Spawn { .. }
        | InvokeError::Unreachable { .. } => ("ServiceException", true),
    };
    Failure {
        code: code.to_owned(),
        message: error.to_string(),
        retryable,
    }
}

/// The failure of a message the target queue did not take. A queue that does not exist
/// (deleted, or not created yet) may come back, so it is retried like a service error; other
/// refusals of the caller's message (too large, characters SQS refuses) cannot clear.
fn send_failure(error: &SqsError) -> Failure {
    let wire = error.wire();
    Failure {
        code: wire.query_code.to_owned(),
        message: error.aws_message(),
        retryable: matches!(error, SqsError::QueueDoesNotExist) || !wire.sender_fault,
    }
}

/// What [`ScheduleRunner::fire`] reports for a message sent to a queue target: SendMessage's
/// answer as a successful response.
fn sent_response(message_id: String) -> InvokeResponse {
    let body = serde_json::json!({ "MessageId": message_id }).to_string();
    InvokeResponse {
        request_id: message_id,
        outcome: crate::invoker::InvokeOutcome::Success(Bytes::from(body)),
        duration: Duration::ZERO,
        init_duration: None,
    }
}

/// `s` cut to at most `max` bytes on a character boundary, and whether it was cut.
fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// `s` with the characters SQS refuses (outside #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
/// #x10000-#x10FFFF) replaced, so an odd error message cannot make the send fail.
fn sqs_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || ('\u{FFFE}'..='\u{FFFF}').contains(&c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn uuid_from(rng: &mut fastrand::Rng) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 3), ("abc", false));
        assert_eq!(truncate("abcd", 3), ("abc", true));
        // 'é' is two bytes: cutting inside it backs off to before it.
        assert_eq!(truncate("aé", 2), ("a", true));
    }

    #[test]
    fn sqs_text_replaces_refused_characters() {
        assert_eq!(sqs_text("a\u{1}b\tc\n\u{FFFE}"), "a\u{FFFD}b\tc\n\u{FFFD}");
        assert_eq!(sqs_text("plain ✓"), "plain ✓");
    }

    #[test]
    fn invoke_errors_classify() {
        let unknown = invoke_failure(&InvokeError::UnknownFunction("f".into()));
        assert_eq!(unknown.code, "ResourceNotFoundException");
        assert!(!unknown.retryable);
        let throttled = invoke_failure(&InvokeError::Throttled("f".into()));
        assert_eq!(throttled.code, "TooManyRequestsException");
        assert!(throttled.retryable);
        let remote = |status| {
            invoke_failure(&InvokeError::Remote {
                status,
                body: String::new(),
            })
        };
        assert!(remote(503).retryable);
        assert!(remote(429).retryable);
        assert!(!remote(400).retryable);
        assert_eq!(remote(404).code, "ResourceNotFoundException");
    }
}
