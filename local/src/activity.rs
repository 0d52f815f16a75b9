//! activity: what a component's background tasks are doing, so that a caller can wait until
//! everything due on the clock has been done.
//!
//! Each task holds a [`Tracker`] for as long as it lives: *running*, or *parked* on the clock
//! until an instant. The component is idle when every task is parked on an instant after the
//! clock's now. The schedule runner and the asynchronous invocation queues use it so that tests
//! and `advance` can step a manual clock and know when each step's work is done.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::SharedClock;

/// The tasks of one component; cheap to clone (one shared registry).
#[derive(Clone, Default)]
pub(crate) struct Activity {
    registry: Arc<watch::Sender<Registry>>,
}

/// Running (`None`) or parked until an instant, by task.
#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    states: HashMap<u64, Option<DateTime<Utc>>>,
}

impl Registry {
    fn idle(&self, now: DateTime<Utc>) -> bool {
        self.states.values().all(|s| s.is_some_and(|t| t > now))
    }
}

impl Activity {
    /// Registers a running task; it leaves the registry when the tracker is dropped.
    pub(crate) fn track(&self) -> Tracker {
        let mut id = 0;
        // A running task can only make the component busy, which nobody waits for: no wake-up.
        self.registry.send_if_modified(|r| {
            id = r.next_id;
            r.next_id += 1;
            r.states.insert(id, None);
            false
        });
        Tracker {
            registry: self.registry.clone(),
            id,
        }
    }

    /// True when every task is parked on an instant after `now`.
    pub(crate) fn is_idle(&self, now: DateTime<Utc>) -> bool {
        self.registry.borrow().idle(now)
    }

    /// Resolves once every task is parked on an instant after the clock's now.
    pub(crate) async fn wait_idle(&self, clock: &SharedClock) {
        let mut registry = self.registry.subscribe();
        let _ = registry.wait_for(|r| r.idle(clock.now())).await;
    }

    /// Resolves once no task is left.
    pub(crate) async fn wait_empty(&self) {
        let mut registry = self.registry.subscribe();
        let _ = registry.wait_for(|r| r.states.is_empty()).await;
    }

    /// The earliest instant after `now` a task is parked on.
    pub(crate) fn next_parked(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.registry
            .borrow()
            .states
            .values()
            .flatten()
            .filter(|t| **t > now)
            .min()
            .copied()
    }

    /// How many tasks are registered, running or parked.
    pub(crate) fn len(&self) -> usize {
        self.registry.borrow().states.len()
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
        self.registry.send_modify(|r| {
            r.states.insert(self.id, Some(until));
        });
    }

    /// The task runs again.
    pub(crate) fn run(&self) {
        // Like `track`: becoming busy wakes nobody; only parking and ending can make idle.
        self.registry.send_if_modified(|r| {
            r.states.insert(self.id, None);
            false
        });
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.registry.send_modify(|r| {
            r.states.remove(&self.id);
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
        let mut r = Registry::default();
        assert!(r.idle(now));
        r.states.insert(0, Some(now + TimeDelta::seconds(1)));
        assert!(r.idle(now));
        r.states.insert(1, Some(now));
        assert!(!r.idle(now), "a task due now is about to run");
        r.states.insert(1, None);
        assert!(!r.idle(now));
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
