//! activity: what a component's background tasks are doing, so that a caller can wait until
//! everything due on the clock has been done.
//!
//! Each task holds a [`Tracker`] for as long as it lives: *running*, or *parked* on the clock
//! until an instant. The component is idle when every task is parked on an instant after the
//! clock's now. The schedule runner and the asynchronous invocation queues use it so that tests
//! and `advance` can step a manual clock and know when each step's work is done.
//!
//! Components that hand work to each other (the runner gives events to the queues) share one
//! registry ([`Activity::sibling`]), and waiters are woken only when no task of that registry
//! runs. A wake-up while another task is still runnable makes tokio's multi-thread scheduler
//! hand that task to the other worker (a futex wake and a migration per step), which made a
//! stepped year of schedules four times slower than on one thread; woken only at the end, a
//! step's chain (schedule, event, invocation, waiter) stays on one worker.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::SharedClock;

/// The tasks of one component; cheap to clone (one shared registry).
#[derive(Clone, Default)]
pub(crate) struct Activity {
    registry: Arc<watch::Sender<Registry>>,
    /// Which component of the registry this is (0 for the first).
    part: u32,
}

/// One task: its component, and whether it runs (`None`) or is parked until an instant.
#[derive(Debug, Clone, Copy)]
struct State {
    part: u32,
    parked: Option<DateTime<Utc>>,
}

/// The tasks of a family of components, by task id.
#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    /// Components made so far by [`Activity::sibling`] (the first is 0).
    parts: u32,
    states: HashMap<u64, State>,
    /// Tasks of every component that are running, not parked.
    running: usize,
}

impl Registry {
    fn idle(&self, part: Option<u32>, now: DateTime<Utc>) -> bool {
        self.of(part).all(|s| s.parked.is_some_and(|t| t > now))
    }

    /// The tasks of `part`, or of every component.
    fn of(&self, part: Option<u32>) -> impl Iterator<Item = &State> {
        self.states
            .values()
            .filter(move |s| part.is_none_or(|p| s.part == p))
    }
}

impl Activity {
    /// A new component sharing this one's registry: [`Self::wait_all_idle`] of either waits
    /// for the tasks of both.
    pub(crate) fn sibling(&self) -> Activity {
        let mut part = 0;
        self.registry.send_if_modified(|r| {
            r.parts = r.parts.max(self.part) + 1;
            part = r.parts;
            false
        });
        Activity {
            registry: self.registry.clone(),
            part,
        }
    }

    /// Registers a running task; it leaves the registry when the tracker is dropped.
    pub(crate) fn track(&self) -> Tracker {
        let mut id = 0;
        // A running task can only make the component busy, which nobody waits for: no wake-up.
        self.registry.send_if_modified(|r| {
            id = r.next_id;
            r.next_id += 1;
            r.running += 1;
            let state = State {
                part: self.part,
                parked: None,
            };
            r.states.insert(id, state);
            false
        });
        Tracker {
            registry: self.registry.clone(),
            id,
        }
    }

    /// True when every task of this component is parked on an instant after `now`.
    pub(crate) fn is_idle(&self, now: DateTime<Utc>) -> bool {
        self.registry.borrow().idle(Some(self.part), now)
    }

    /// True when every task of the registry (this component and its siblings) is parked on an
    /// instant after `now`.
    #[cfg(test)]
    pub(crate) fn is_all_idle(&self, now: DateTime<Utc>) -> bool {
        self.registry.borrow().idle(None, now)
    }

    /// Resolves once every task of this component is parked on an instant after the clock's
    /// now. Checked when no task of the registry runs, so a sibling's running task delays it.
    pub(crate) async fn wait_idle(&self, clock: &SharedClock) {
        let mut registry = self.registry.subscribe();
        let _ = registry
            .wait_for(|r| r.idle(Some(self.part), clock.now()))
            .await;
    }

    /// Resolves once every task of the registry is parked on an instant after the clock's now.
    pub(crate) async fn wait_all_idle(&self, clock: &SharedClock) {
        let mut registry = self.registry.subscribe();
        let _ = registry.wait_for(|r| r.idle(None, clock.now())).await;
    }

    /// Resolves once no task of this component is left.
    pub(crate) async fn wait_empty(&self) {
        let mut registry = self.registry.subscribe();
        let _ = registry
            .wait_for(|r| r.of(Some(self.part)).next().is_none())
            .await;
    }

    /// The earliest instant after `now` a task of this component is parked on.
    pub(crate) fn next_parked(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.registry
            .borrow()
            .of(Some(self.part))
            .filter_map(|s| s.parked)
            .filter(|t| *t > now)
            .min()
    }

    /// How many tasks of this component are registered, running or parked.
    pub(crate) fn len(&self) -> usize {
        self.registry.borrow().of(Some(self.part)).count()
    }
}

/// One task's entry in an [`Activity`]; removed on drop (also when the task panics).
pub(crate) struct Tracker {
    registry: Arc<watch::Sender<Registry>>,
    id: u64,
}

impl Tracker {
    /// The task waits on the clock until `until`; call it after registering the clock wait.
    pub(crate) fn park(&self, until: DateTime<Utc>) {
        // Waiters wait for parked tasks, so only the last running task's parking can end a
        // wait.
        self.registry.send_if_modified(|r| {
            let Some(state) = r.states.get_mut(&self.id) else {
                return false;
            };
            if state.parked.replace(until).is_none() {
                r.running -= 1;
            }
            r.running == 0
        });
    }

    /// The task runs again.
    pub(crate) fn run(&self) {
        // Like `track`: becoming busy wakes nobody; only parking and ending can make idle.
        self.registry.send_if_modified(|r| {
            if let Some(state) = r.states.get_mut(&self.id)
                && state.parked.take().is_some()
            {
                r.running += 1;
            }
            false
        });
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.registry.send_if_modified(|r| {
            if let Some(state) = r.states.remove(&self.id)
                && state.parked.is_none()
            {
                r.running -= 1;
            }
            r.running == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn idle_means_every_task_parked_in_the_future() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let activity = Activity::default();
        assert!(activity.is_idle(now));
        let later = activity.track();
        later.park(now + TimeDelta::seconds(1));
        assert!(activity.is_idle(now));
        let due = activity.track();
        due.park(now);
        assert!(!activity.is_idle(now), "a task due now is about to run");
        due.run();
        assert!(!activity.is_idle(now));
        drop(due);
        assert!(activity.is_idle(now));
    }

    #[test]
    fn siblings_share_the_registry_but_not_their_counts() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let runner = Activity::default();
        let queues = runner.sibling();
        let schedule = runner.track();
        schedule.park(now + TimeDelta::minutes(5));
        let event = queues.track();
        assert!(runner.is_idle(now), "the runner's own task waits");
        assert!(!runner.is_all_idle(now), "its sibling's event runs");
        assert!(!queues.is_idle(now));
        assert_eq!((runner.len(), queues.len()), (1, 1));
        event.park(now + TimeDelta::minutes(1));
        assert!(runner.is_all_idle(now) && queues.is_all_idle(now));
        assert_eq!(queues.next_parked(now), Some(now + TimeDelta::minutes(1)));
        assert_eq!(runner.next_parked(now), Some(now + TimeDelta::minutes(5)));
    }

    #[tokio::test]
    async fn waiters_wake_when_the_last_running_task_parks() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock: SharedClock = std::sync::Arc::new(crate::clock::ManualClock::new(now));
        let runner = Activity::default();
        let queues = runner.sibling();
        let schedule = runner.track();
        let event = queues.track();
        let waiter = {
            let runner = runner.clone();
            let clock = clock.clone();
            tokio::spawn(async move { runner.wait_all_idle(&clock).await })
        };
        schedule.park(now + TimeDelta::minutes(5));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the event still runs");
        drop(event);
        waiter.await.unwrap();
    }

    #[test]
    fn trackers_leave_on_drop() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let activity = Activity::default();
        let tracker = activity.track();
        assert!(!activity.is_idle(now));
        tracker.park(now + TimeDelta::seconds(5));
        assert!(activity.is_idle(now));
        assert_eq!(activity.next_parked(now), Some(now + TimeDelta::seconds(5)));
        drop(tracker);
        assert_eq!(activity.len(), 0);
    }
}
