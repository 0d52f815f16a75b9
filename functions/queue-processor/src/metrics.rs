//! queue-processor's metrics (CloudWatch EMF, [`nightshift::metrics`]), flushed once per
//! invocation by [`crate::handler`]:
//!
//! - dimensions `Function`: `BatchSize` (records in the event), `RecordsNotStarted` (left for
//!   a later invocation because the deadline was near), `RecordsSkipped` (FIFO records held
//!   back behind a failure in their group), all Count, recorded (0 included) every invocation;
//! - dimensions `Function`, `Kind`, `Outcome`: `Jobs` (Count) and `JobDuration`
//!   (Milliseconds, one value per job), where `Kind` is a kind of the registry or
//!   [`UNKNOWN_KIND`] and `Outcome` one of [`OUTCOMES`]; both also rolled up ([`ROLLUPS`])
//!   under `Function, Outcome` and under `Function` alone, which the template's failure-rate
//!   alarm divides (dead-lettered jobs over all jobs).
//!
//! The outcome is the batch processor's settlement of the record ([`BatchReport::fates`]), so
//! a permanent failure whose DLQ could not be reached counts as retried, as it was.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use nightshift::batch::{BatchReport, Fate, Outcome};
use nightshift::metrics::Metrics;

/// The `Kind` of a record whose kind is not in the registry, or whose body is no job: a
/// dimension value never comes from a message, so the number of metrics stays bounded.
pub const UNKNOWN_KIND: &str = "unknown";

/// The values of the `Outcome` dimension.
pub const OUTCOMES: [&str; 4] = ["succeeded", "retried", "dead-lettered", "duplicate-skipped"];

/// The dimension sets (besides `Function`) that `Jobs` and `JobDuration` are also published
/// under ([`Metrics::with_rollups`]): by outcome across kinds, and in total.
pub const ROLLUPS: &[&[&str]] = &[&["Outcome"], &[]];

/// What the metrics keep of a record that ran: its job's kind, whether it was a duplicate of
/// a completed job, how long it took.
#[derive(Debug, Clone, Copy)]
struct Run {
    kind: &'static str,
    duplicate: bool,
    took: Duration,
}

/// The runs of one invocation's records, by message id, noted by the records' tasks.
#[derive(Debug, Default)]
pub struct Runs(Mutex<HashMap<String, Run>>);

impl Runs {
    /// Notes that the record `message_id` ran a job of `kind` (or was a `duplicate`) in `took`.
    pub fn note(&self, message_id: String, kind: &'static str, duplicate: bool, took: Duration) {
        self.0.lock().expect("runs lock").insert(
            message_id,
            Run {
                kind,
                duplicate,
                took,
            },
        );
    }

    /// Records the jobs of a processed batch by kind and outcome, and its records not started
    /// or skipped. A record that ran without a note (its handler panicked) counts under
    /// [`UNKNOWN_KIND`], without a duration.
    pub fn record(&self, metrics: &Metrics, report: &BatchReport) {
        let runs = self.0.lock().expect("runs lock");
        metrics.count("RecordsNotStarted", &[], report.not_started as u64);
        metrics.count("RecordsSkipped", &[], report.skipped as u64);
        for (id, fate) in &report.fates {
            let Fate::Ran(outcome) = fate else {
                continue;
            };
            let run = runs.get(id);
            let outcome = match outcome {
                Outcome::Succeeded if run.is_some_and(|r| r.duplicate) => OUTCOMES[3],
                Outcome::Succeeded => OUTCOMES[0],
                Outcome::Retried => OUTCOMES[1],
                Outcome::DeadLettered => OUTCOMES[2],
            };
            let kind = run.map_or(UNKNOWN_KIND, |r| r.kind);
            let dimensions = [("Kind", kind), ("Outcome", outcome)];
            metrics.count("Jobs", &dimensions, 1);
            if let Some(run) = run {
                metrics.duration("JobDuration", &dimensions, run.took);
            }
        }
    }
}
