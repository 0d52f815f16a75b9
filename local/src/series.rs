//! series: what the dashboard's overview charts, sampled once a second of real time: the
//! invocations that ended in that second (succeeded, failed, timed out) and every queue's
//! depth, for the last [`KEEP_SAMPLES`] seconds.
//!
//! Real time, not the emulator's clock: the chart shows how fast the functions work now, and
//! a manual clock that stands still must not freeze it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::history::{History, Totals};
use crate::shutdown::Signal;
use crate::sqs::SqsEngine;

/// Samples kept: ten minutes.
pub const KEEP_SAMPLES: usize = 600;

/// One queue's depth in a sample.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Depth {
    /// Queue name.
    pub queue: String,
    /// Visible messages.
    pub visible: usize,
    /// In-flight messages.
    pub in_flight: usize,
    /// Delayed messages.
    pub delayed: usize,
}

/// One second.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sample {
    /// When it was taken (real time).
    pub at: DateTime<Utc>,
    /// Invocations that ended in the second before, by ending.
    pub ended: Totals,
    /// Every queue's depth.
    pub depths: Vec<Depth>,
}

/// The samples; cheap to clone.
#[derive(Clone)]
pub struct Series {
    history: History,
    samples: Arc<Mutex<(Totals, VecDeque<Sample>)>>,
}

impl Series {
    /// No sample yet; counts come from `history`.
    pub fn new(history: History) -> Self {
        Series {
            history,
            samples: Arc::default(),
        }
    }

    /// Takes a sample now.
    pub fn sample(&self, engine: &SqsEngine) {
        let totals = self.history.totals();
        let depths = engine
            .stats()
            .into_iter()
            .map(|q| Depth {
                queue: q.name,
                visible: q.visible,
                in_flight: q.in_flight,
                delayed: q.delayed,
            })
            .collect();
        let mut guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let (last, samples) = &mut *guard;
        let ended = Totals {
            succeeded: totals.succeeded - last.succeeded,
            failed: totals.failed - last.failed,
            timed_out: totals.timed_out - last.timed_out,
        };
        *last = totals;
        if samples.len() >= KEEP_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at: Utc::now(),
            ended,
            depths,
        });
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.iter().cloned().collect()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<Sample> {
        let guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.back().cloned()
    }

    /// Samples every second until `stop`.
    pub fn spawn(&self, engine: SqsEngine, mut stop: Signal) -> tokio::task::JoinHandle<()> {
        let series = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = every.tick() => series.sample(&engine),
                    () = stop.recv() => return,
                }
            }
        })
    }
}
