//! The runner's tasks: one per enabled schedule, waiting on the clock for each fire time,
//! and one per occurrence whose delivery must wait (flexible window, retry backoff).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use std::sync::{RwLockReadGuard, RwLockWriteGuard};

use super::entries::Entries;
use super::{Entry, Inner, Occurrence, RunnerError, lock, uuid_from};
use crate::activity::Tracker;
use crate::schedule::ScheduleExpression;
use crate::schedule::anchors::Anchor;
use crate::shutdown::Signal;

/// Most attempts one occurrence can make: the first plus `MaximumRetryAttempts` (at most 185).
const MAX_ATTEMPTS: u32 = 186;

impl Inner {
    /// The entries, for reading.
    pub(super) fn entries(&self) -> RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The entries, to add or remove one.
    pub(super) fn entries_mut(&self) -> RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn find(&self, name: &str) -> Result<Arc<Entry>, RunnerError> {
        let entries = self.entries();
        if let Some(entry) = entries.iter().find(|e| e.def.id == name) {
            return Ok(entry.clone());
        }
        let named: Vec<&Arc<Entry>> = entries.iter().filter(|e| e.def.name == name).collect();
        match named.as_slice() {
            [] => Err(RunnerError::UnknownSchedule(name.to_owned())),
            [entry] => Ok((*entry).clone()),
            many => Err(RunnerError::Ambiguous {
                name: name.to_owned(),
                ids: many.iter().map(|e| e.def.id.clone()).collect(),
            }),
        }
    }

    /// Starts the task of a schedule added at run time, at `now`: its stored creation time
    /// anchors a rate when it is before `now` (a restart). An enabled one-time schedule whose
    /// time passed while the emulator was down fires at once, late, with its own scheduled
    /// time: it is enabled because it never fired (the Scheduler API disables the ones that
    /// did), and AWS would have fired it.
    pub(super) fn spawn_schedule(self: &Arc<Self>, entry: Arc<Entry>, now: DateTime<Utc>) {
        let restarted = entry.created_at.filter(|at| *at < now);
        let stored = restarted.map(|anchor| Anchor {
            expression: entry.def.expression.clone(),
            anchor,
        });
        let (created_at, mut first) = entry.first_fire(now, stored.as_ref());
        if let (None, Some(created), ScheduleExpression::At(_)) =
            (first, restarted, &entry.schedule.expression)
        {
            first = entry.schedule.next_fire_after(created, created);
        }
        self.spawn_task(entry, first, created_at);
    }

    /// Starts one schedule's task, first firing at `first`.
    pub(super) fn spawn_task(
        self: &Arc<Self>,
        entry: Arc<Entry>,
        first: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
    ) {
        lock(&entry.counters).next_fire = first;
        let tracker = self.track();
        let rng = lock(&self.rng).fork();
        let inner = self.clone();
        tokio::spawn(async move {
            inner
                .run_schedule(entry, first, created_at, rng, tracker)
                .await;
        });
    }

    pub(super) fn track(&self) -> Tracker {
        self.activity.track()
    }

    pub(super) fn next_parked(&self) -> Option<DateTime<Utc>> {
        self.activity.next_parked(self.clock.now())
    }

    /// One schedule's task: waits for each fire time and delivers its occurrence.
    pub(super) async fn run_schedule(
        self: Arc<Self>,
        entry: Arc<Entry>,
        first: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
        mut rng: fastrand::Rng,
        tracker: Tracker,
    ) {
        let mut stop = self.stop.signal();
        let mut removed = entry.removed.signal();
        let mut next = first;
        // Ends with the expression (an `at`, an EndDate, the cron's years) or on stop.
        while let Some(scheduled) = next {
            if scheduled > self.clock.now() {
                // Registered before marking parked, so `advance_to` always sees the waiter.
                let sleep = self.clock.sleep_until(scheduled);
                tracker.park(scheduled);
                tokio::select! {
                    biased;
                    () = stop.recv() => break,
                    () = removed.recv() => break,
                    () = sleep => {}
                }
                tracker.run();
            } else if stop.is_triggered() || removed.is_triggered() {
                break;
            }
            let following = entry.schedule.next_fire_after(scheduled, created_at);
            let invoke_at = entry
                .schedule
                .flexible_window
                .invocation_time(scheduled, &mut rng);
            let mut occ = Occurrence::new(entry.clone(), scheduled, invoke_at, uuid_from(&mut rng));
            {
                let mut c = lock(&entry.counters);
                c.fires += 1;
                c.last_fire = Some(scheduled);
                c.next_fire = following;
            }
            tracing::debug!(schedule = %entry.def.id, scheduled_time = %scheduled, "schedule due");
            if following.is_none() && entry.created_at.is_some() {
                // Cloned out so the hook may add or remove schedules.
                let hook = lock(&self.on_complete).clone();
                if let Some(hook) = hook {
                    hook(&entry.group, &entry.def.name);
                }
            }
            // An attempt only hands the event to the function's asynchronous queue (or the
            // message to SQS) and never waits for the function, so a due one runs here: a task
            // per occurrence cost a spawn and a wake-up per fire.
            let done = self.attempt_due(&mut occ, &mut rng, &mut stop).await;
            if !done && !stop.is_triggered() {
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
        stop: &mut Signal,
    ) -> bool {
        for _ in 0..MAX_ATTEMPTS {
            if occ.due > self.clock.now() || stop.is_triggered() {
                return false;
            }
            if self.attempt(occ, rng, stop).await.next_attempt_at.is_none() {
                return true;
            }
        }
        true
    }

    /// Delivers `occ` (waits for its due time, attempts, retries) in a task of its own.
    pub(super) fn spawn_delivery(self: &Arc<Self>, occ: Occurrence, rng: fastrand::Rng) {
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
        let mut stop = self.stop.signal();
        for _ in 0..MAX_ATTEMPTS {
            if occ.due > self.clock.now() {
                let sleep = self.clock.sleep_until(occ.due);
                tracker.park(occ.due);
                tokio::select! {
                    biased;
                    () = stop.recv() => {}
                    () = sleep => {}
                }
                tracker.run();
            }
            if stop.is_triggered() {
                tracing::warn!(
                    schedule = %occ.entry.def.id,
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
}
