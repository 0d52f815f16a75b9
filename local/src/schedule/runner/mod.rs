//! runner: fires the template's schedules, and those the Scheduler API adds at run time
//! ([`ScheduleRunner::add`], [`ScheduleRunner::remove`], [`ScheduleRunner::replace`]), on the
//! emulator's clock and delivers them to functions and queues.
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
//! scheduled time. Attempts that are due run inline (an attempt hands the event over and never
//! waits for the function), so the invocations of a catch-up are accepted in order; anything
//! that must wait (a flexible-window offset, a retry backoff) runs in a task of its own, so a
//! retry never delays the next occurrence.
//!
//! A delivery succeeds when the function's asynchronous queue accepts the event. What the
//! function then does is Lambda's business, not the Scheduler's: a function error or timeout is
//! retried by the [`AsyncInvoker`] per the function's `EventInvokeConfig` and ends in its
//! on-failure destination or dead-letter queue, never in the schedule's.
//!
//! Failures to *invoke* (the function does not exist, the queue refuses the event) and to *send*
//! (the target queue was deleted, SQS refuses the message) are retried per the schedule's
//! [`RetryPolicy`](super::RetryPolicy): retry `n` is due `backoff(n)` after the failure on the
//! clock, with the attempt number and a fresh execution id in the payload, as long as it stays
//! within `MaximumEventAgeInSeconds` of the first attempt. When the attempts or the event age run
//! out (or the error cannot clear, such as an unknown function) the event goes to the schedule's
//! dead-letter queue with the message attributes EventBridge puts on dead-letter events
//! ([`DLQ_ATTRIBUTES`]), or is dropped with an error log when it has none.
//!
//! For tests and `nightshift advance`, [`ScheduleRunner::wait_idle`] resolves once every task
//! (and every event of the asynchronous queues) is waiting on a future instant, and [`ScheduleRunner::advance_to`] steps a manual clock
//! through each due instant so that functions observe `now == scheduled time`.
//!
//! This file holds the runner's state and its public operations (start, stop, fire, stats,
//! `wait_idle`, `advance_to`); the rest, by role:
//! - `model`: the public values (settings, errors, outcomes, statistics);
//! - `entry`: one schedule resolved against the template, with its counters and payloads;
//! - `entries`: the schedules in order, indexed by group and name;
//! - `tasks`: the task per schedule and the task per waiting delivery;
//! - `attempt`: one delivery attempt and what follows it (retry or finish);
//! - `dead_letter`: the dead-letter message, or the drop.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinHandle;

use super::Schedule;
use super::anchors::{Anchor, AnchorStore};
use crate::activity::Activity;
use crate::clock::{ClockError, SharedClock};
use crate::invoke_async::AsyncInvoker;
use crate::invoker::{InvokeError, InvokeResponse};
use crate::shutdown::{Shutdown, Signal};
use crate::sqs::SqsEngine;
use crate::template::{ScheduleDef, Template};

mod attempt;
mod dead_letter;
mod entries;
mod entry;
mod model;
mod tasks;

use attempt::{AttemptError, Sent};
pub use dead_letter::DLQ_ATTRIBUTES;
use entries::Entries;
pub use model::{
    AttemptStatus, Failure, FireOutcome, LastResult, RunnerConfig, RunnerError, ScheduleStats,
};

/// Bound on the steps of one [`ScheduleRunner::advance_to`]; far above a year of per-minute
/// schedules, it only stops a runaway.
const MAX_ADVANCE_STEPS: u64 = 50_000_000;

/// Fires the template's schedules and those added at run time; cheap to clone (one shared
/// state).
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
                    .entries()
                    .iter()
                    .map(|e| e.def.id.clone())
                    .collect::<Vec<_>>(),
            )
            .field("started", &self.inner.started.load(Ordering::Relaxed))
            .finish()
    }
}

/// Called when a schedule added at run time ([`ScheduleRunner::add`]) starts its last
/// occurrence, before delivering it, with the schedule's group and name: the Scheduler API
/// marks a one-time schedule done (so a restart does not fire it again) and applies its
/// `ActionAfterCompletion`.
pub type CompletionHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

struct Inner {
    /// The template's schedules, then those added at run time; guarded so that
    /// [`ScheduleRunner::add`] and [`ScheduleRunner::start`] never both spawn one entry.
    entries: RwLock<Entries>,
    template: Template,
    on_complete: Mutex<Option<CompletionHook>>,
    queues: AsyncInvoker,
    sqs: Option<SqsEngine>,
    clock: SharedClock,
    config: RunnerConfig,
    activity: Activity,
    stop: Shutdown,
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
    /// Its schedule group (`default` for the template's).
    group: String,
    /// When a schedule added at run time was created (or last updated): its rate anchor
    /// across restarts. `None` for the template's, whose anchors live in the anchor store.
    created_at: Option<DateTime<Utc>>,
    /// Triggered when the schedule is removed: its task ends.
    removed: Shutdown,
    schedule: Schedule,
    target: Deliver,
    target_arn: String,
    /// Schedule ARN, or rule ARN for legacy rules.
    arn: String,
    /// Engine queue name of the dead-letter queue.
    dlq: Option<String>,
    counters: Mutex<Counters>,
}

#[derive(Default, Clone)]
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
    entry: Arc<Entry>,
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
            .map(|def| Entry::resolve(def, template, &config, None).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let activity = queues.activity().sibling();
        Ok(ScheduleRunner {
            inner: Arc::new(Inner {
                entries: RwLock::new(Entries::from_list(entries)),
                template: template.clone(),
                on_complete: Mutex::new(None),
                queues,
                sqs,
                clock,
                config,
                activity,
                stop: Shutdown::new(),
                started: AtomicBool::new(false),
                rng: Mutex::new(rng),
            }),
        })
    }

    /// Starts one task per enabled schedule. Scheduler rates without a `StartDate` are
    /// anchored at the clock's now and fire at once ([`Schedule::first_fire`]), unless
    /// [`RunnerConfig::state_dir`] holds their anchor from an earlier start: then they continue
    /// on that grid from the next point after now. Legacy rules' rates start one period after
    /// now. The runner stops when `shutdown` is triggered (or every handle of its [`Shutdown`]
    /// dropped) or on [`Self::stop`]; the returned task ends once every schedule task and pending retry has
    /// ended. Retries still waiting at that point are abandoned (logged). Must be called
    /// within a Tokio runtime.
    pub fn start(&self, shutdown: Signal) -> Result<JoinHandle<()>, RunnerError> {
        if self.inner.stop.is_triggered() {
            return Err(RunnerError::Stopped);
        }
        let now = self.inner.clock.now();
        let store = self.inner.config.state_dir.as_deref().map(AnchorStore::new);
        let stored = store.as_ref().map(AnchorStore::load).unwrap_or_default();
        let mut anchors = BTreeMap::new();
        // Under the lock, so an `add` racing with this spawns its entry exactly once.
        let entries = self.inner.entries_mut();
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return Err(RunnerError::AlreadyStarted);
        }
        for entry in entries.iter().filter(|e| e.def.enabled) {
            if entry.created_at.is_some() {
                self.inner.spawn_schedule(entry.clone(), now);
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
            self.inner.spawn_task(entry.clone(), first, created_at);
        }
        let enabled = entries.iter().filter(|e| e.def.enabled).count();
        drop(entries);
        if let Some(store) = store
            && anchors != stored
        {
            store.save(&anchors);
        }
        tracing::info!(schedules = enabled, "schedule runner started");
        let inner = self.inner.clone();
        Ok(tokio::spawn(async move {
            let mut shutdown = shutdown;
            let mut stop = inner.stop.signal();
            tokio::select! {
                () = shutdown.recv() => {}
                () = stop.recv() => {}
            }
            inner.stop.trigger();
            // Every task ends promptly once stop is set; their trackers empty the registry.
            inner.activity.wait_empty().await;
            tracing::info!("schedule runner stopped");
        }))
    }

    /// Stops the runner, like the shutdown signal; idempotent.
    pub fn stop(&self) {
        self.inner.stop.trigger();
    }

    /// Fires schedule `name` (logical id, or name when unambiguous) now, as `nightshift fire`
    /// does: the scheduled time is the clock's now, there is no flexible window, and the event
    /// is handed to the function's asynchronous queue as for a scheduled occurrence. `fire`
    /// then waits for the function's first attempt and returns its result, so that the CLI and
    /// tests can show it; Lambda's retries of a failed attempt (and the Scheduler's of a failed
    /// invoke) happen in the background on the clock. Disabled schedules can be fired.
    pub async fn fire(&self, name: &str) -> Result<FireOutcome, RunnerError> {
        let entry = self.inner.find(name)?;
        if self.inner.stop.is_triggered() {
            return Err(RunnerError::Stopped);
        }
        let now = self.inner.clock.now();
        let mut rng = lock(&self.inner.rng).fork();
        let mut occ = Occurrence::new(entry.clone(), now, now, uuid_from(&mut rng));
        {
            let mut c = lock(&entry.counters);
            c.fires += 1;
            c.last_fire = Some(now);
        }
        tracing::info!(schedule = %entry.def.id, scheduled_time = %now, "schedule fired by hand");
        let tracker = self.inner.track();
        let mut stop = self.inner.stop.signal();
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

    /// Per-schedule statistics, in template order, then the schedules added at run time in
    /// the order they were added.
    pub fn stats(&self) -> Vec<ScheduleStats> {
        self.inner.entries().iter().map(|e| e.stats()).collect()
    }

    /// Statistics of one schedule (logical id, or name when unambiguous).
    pub fn schedule_stats(&self, name: &str) -> Result<ScheduleStats, RunnerError> {
        Ok(self.inner.find(name)?.stats())
    }

    /// Statistics of the schedule `name` of `group`, if there is one.
    pub fn stats_in_group(&self, group: &str, name: &str) -> Option<ScheduleStats> {
        self.inner.entries().get(group, name).map(|e| e.stats())
    }

    /// Adds a schedule at run time (the Scheduler API's), in `group`, created (or last
    /// updated) at `created_at`: it fires, retries and dead-letters as the template's do,
    /// from now on if the runner is started, from [`Self::start`] otherwise. A `created_at`
    /// before the clock's now is a schedule kept across a restart: a rate without `StartDate`
    /// continues on its grid instead of firing at once, and an `at` already past does not
    /// fire. Its target and dead-letter queue are logical ids of the runner's template.
    pub fn add(
        &self,
        def: ScheduleDef,
        group: &str,
        created_at: DateTime<Utc>,
    ) -> Result<(), RunnerError> {
        let mut entry =
            Entry::resolve(&def, &self.inner.template, &self.inner.config, Some(group))?;
        entry.created_at = Some(created_at);
        let entry = Arc::new(entry);
        let mut entries = self.inner.entries_mut();
        if entries.get(group, &def.name).is_some() {
            return Err(RunnerError::Duplicate {
                group: group.to_owned(),
                name: def.name,
            });
        }
        entries.push(entry.clone());
        if self.inner.started.load(Ordering::SeqCst)
            && !self.inner.stop.is_triggered()
            && entry.def.enabled
        {
            self.inner.spawn_schedule(entry, self.inner.clock.now());
        }
        tracing::debug!(group, schedule = %def.name, "schedule added");
        Ok(())
    }

    /// Removes schedule `name` of `group`: it fires no more (an occurrence already being
    /// delivered or retried finishes). False when there is no such schedule.
    pub fn remove(&self, group: &str, name: &str) -> bool {
        let Some(entry) = self.inner.entries_mut().remove(group, name) else {
            return false;
        };
        entry.removed.trigger();
        tracing::debug!(group, schedule = name, "schedule removed");
        true
    }

    /// Replaces schedule `def.name` of `group` by `def` ([`Self::remove`], then [`Self::add`]).
    pub fn replace(
        &self,
        def: ScheduleDef,
        group: &str,
        created_at: DateTime<Utc>,
    ) -> Result<(), RunnerError> {
        self.remove(group, &def.name);
        self.add(def, group, created_at)
    }

    /// Enables or disables schedule `name` of `group` (the dashboard's and
    /// `nightshift schedule enable|disable`'s switch for the template's schedules; those of the
    /// Scheduler API change through [`crate::scheduler_api::SchedulerApi::set_state`]). A
    /// disabled schedule stops firing (an occurrence being delivered finishes); enabled again,
    /// it fires from now on: a rate anchored at the moment it is enabled, as a new schedule
    /// is. Its counters are kept. Not kept across a restart: the template says what a start
    /// begins with. False when it already was so.
    pub fn set_enabled(&self, group: &str, name: &str, enabled: bool) -> Result<bool, RunnerError> {
        let mut entries = self.inner.entries_mut();
        let old = entries
            .get(group, name)
            .cloned()
            .ok_or_else(|| RunnerError::UnknownSchedule(name.to_owned()))?;
        if old.def.enabled == enabled {
            return Ok(false);
        }
        let mut def = old.def.clone();
        def.enabled = enabled;
        let mut entry = Entry::resolve(
            &def,
            &self.inner.template,
            &self.inner.config,
            old.created_at.map(|_| group),
        )?;
        entry.created_at = old.created_at;
        *lock(&entry.counters) = lock(&old.counters).clone();
        lock(&entry.counters).next_fire = None;
        let entry = Arc::new(entry);
        entries.remove(group, name);
        old.removed.trigger();
        entries.push(entry.clone());
        drop(entries);
        if enabled && self.inner.started.load(Ordering::SeqCst) && !self.inner.stop.is_triggered() {
            let now = self.inner.clock.now();
            let (created_at, first) = entry.first_fire(now, None);
            self.inner.spawn_task(entry, first, created_at);
        }
        tracing::info!(group, schedule = name, enabled, "schedule switched");
        Ok(true)
    }

    /// Sets the hook called when a schedule added at run time starts its last occurrence.
    pub fn on_complete(&self, hook: CompletionHook) {
        *lock(&self.inner.on_complete) = Some(hook);
    }

    /// Resolves once every schedule task and pending delivery is waiting on an instant after
    /// the clock's now: everything due has been delivered. With a manual clock, call it after
    /// `advance`/`set` to know the runner has caught up. Waits forever if a function never
    /// returns (in-process handlers without a timeout), so tests bound it with a timeout.
    pub async fn wait_idle(&self) {
        // The runner's tasks and the queues' events share one registry: a schedule task may
        // hand the queues an event, and an event may not touch the runner, so both idle at
        // once is the end.
        self.inner.activity.wait_all_idle(&self.inner.clock).await;
    }

    /// Moves the manual clock to `to` one due instant at a time (the earliest waiter of the
    /// clock, this runner's or another component's), waiting for the runner to be idle after
    /// each, so every invocation sees the clock at its own scheduled (or retry) time and
    /// occurrences of different schedules interleave in time order. Returns the number of
    /// clock moves. A single `ManualClock::advance` is much faster when invocations need not
    /// see `now == scheduled time`: each schedule then catches up in order with the clock at
    /// the end of the jump.
    ///
    /// The steps run in a task of the runtime, whatever thread calls this: each step is a chain
    /// of wake-ups (the clock wakes a schedule task, which hands an event to a queue task,
    /// whose end wakes the stepper), and a stepper outside the runtime's workers (a
    /// `block_on`, a test's main future) would make two of them cross threads per step.
    pub async fn advance_to(&self, to: DateTime<Utc>) -> Result<u64, RunnerError> {
        let runner = self.clone();
        let mut steps = AbortOnDrop(tokio::spawn(async move { runner.step_to(to).await }));
        match (&mut steps.0).await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(RunnerError::Stopped),
        }
    }

    async fn step_to(&self, to: DateTime<Utc>) -> Result<u64, RunnerError> {
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

impl Occurrence {
    fn new(
        entry: Arc<Entry>,
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

/// Aborts the task when the caller stops waiting for it (a dropped `advance_to`).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn uuid_from(rng: &mut fastrand::Rng) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
