//! mapping: SQS event source mappings, one poller per SQS event source of the template, doing
//! what Lambda's pollers do.
//!
//! A poller long-polls its queue through the engine's in-process API (every system and message
//! attribute), gathers a batch of up to `BatchSize` messages within
//! `MaximumBatchingWindowInSeconds` of the engine's clock and under the 6 MB invocation payload
//! cap, invokes the function with the exact event Lambda sends, and settles the batch by AWS's
//! rules ([`settle()`]): deletes what succeeded, leaves the rest to come back when its visibility
//! timeout expires (the engine moves it to the dead-letter queue after `maxReceiveCount`).
//! Up to [`MappingConfig::max_concurrency`] batches are in flight at once.
//!
//! Files by role:
//! - [`settle`]: the success and failure rules, pure;
//! - [`event`]: the event JSON, record by record;
//! - [`filter`]: `FilterCriteria`, records that match no pattern are deleted uninvoked;
//! - `poller`: gathering, invoking, settling;
//!
//! FIFO queues: the engine hands out each message group in order and never while a message of
//! the group is in flight, so batches of one group are sequential and batches of different
//! groups run in parallel, as Lambda's pollers do; [`settle()`] warns when a function's partial
//! batch response on a FIFO queue acknowledges a record after a failed one of its group.

pub mod event;
pub mod filter;
mod poller;
pub mod settle;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::invoker::Invoker;
use crate::shutdown::Signal;
use crate::sqs::SqsEngine;
use crate::template::{SqsEventSource, Template};

pub use settle::{SettleReason, Settlement, Verdict, settle};

/// Batches in flight at once when the event source sets no `ScalingConfig.MaximumConcurrency`.
///
/// Lambda would scale up to the account's concurrency; on a laptop a few at once show
/// concurrency bugs without starting dozens of function processes.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 5;

/// Instances `function` needs so that every enabled mapping on it can run its
/// `MaximumConcurrency` batches at once: the sum over its mappings. The emulator sizes a
/// function's pool to at least this (when no reserved concurrency caps it), so a poller's
/// batches never queue behind one another for an instance.
pub fn instances_needed(configs: &[MappingConfig], function: &str) -> u32 {
    configs
        .iter()
        .filter(|c| c.enabled && c.function == function)
        .map(|c| c.max_concurrency)
        .fold(0u32, u32::saturating_add)
}

/// Most messages one ReceiveMessage returns.
const RECEIVE_MAX: u32 = 10;

/// Errors of the mapping module.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The event source names a function the template does not have.
    #[error("event source {source_id}: unknown function {function}")]
    UnknownFunction {
        /// The event source's logical id.
        source_id: String,
        /// The function's logical id.
        function: String,
    },
    /// The event source names a queue the template does not have.
    #[error("event source {source_id}: unknown queue {queue}")]
    UnknownQueue {
        /// The event source's logical id.
        source_id: String,
        /// The queue's logical id.
        queue: String,
    },
    /// A `FilterCriteria` pattern Lambda would refuse.
    #[error("event source {source_id}: FilterCriteria.Filters: {error}")]
    Filter {
        /// The event source's logical id.
        source_id: String,
        /// Which pattern, and what is wrong with it.
        error: filter::FilterError,
    },
    /// The poller task panicked or was cancelled.
    #[error("the poller of {function} stopped abnormally: {message}")]
    Aborted {
        /// The function's name.
        function: String,
        /// The panic or cancellation.
        message: String,
    },
}

/// One SQS event source mapping, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    /// The mapping's logical id, for logs and `status`.
    pub id: String,
    /// The function's name (what the invoker knows it by).
    pub function: String,
    /// The queue's name in the engine.
    pub queue: String,
    /// The queue's ARN (`eventSourceARN`).
    pub queue_arn: String,
    /// The region (`awsRegion`).
    pub region: String,
    /// `BatchSize`: most records in one event (at least 1).
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds`: how long to gather a batch once its first message is
    /// in; zero invokes as soon as a receive brings anything.
    pub window: Duration,
    /// Most batches in flight at once: `ScalingConfig.MaximumConcurrency` (else
    /// [`DEFAULT_MAX_CONCURRENCY`]), capped by the function's reserved concurrency. Zero never
    /// polls (the function is throttled).
    pub max_concurrency: u32,
    /// `FunctionResponseTypes` has `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `Enabled`: a disabled mapping does not poll.
    pub enabled: bool,
    /// `FilterCriteria` patterns (JSON text each): records that match none are deleted
    /// without an invocation ([`filter`]).
    pub filter_patterns: Vec<String>,
}

impl MappingConfig {
    /// A mapping of `queue` (in `region`, account `000000000000`) to `function` with Lambda's
    /// defaults: batch 10, no window, [`DEFAULT_MAX_CONCURRENCY`], no partial batch responses.
    pub fn new(function: impl Into<String>, queue: impl Into<String>, region: &str) -> Self {
        let function = function.into();
        let queue = queue.into();
        MappingConfig {
            id: format!("{function}-{queue}"),
            queue_arn: format!(
                "arn:aws:sqs:{region}:{}:{queue}",
                crate::template::ACCOUNT_ID
            ),
            function,
            queue,
            region: region.to_owned(),
            batch_size: 10,
            window: Duration::ZERO,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            report_batch_item_failures: false,
            enabled: true,
            filter_patterns: Vec::new(),
        }
    }

    /// Resolves an event source of `template` (function and queue names, queue ARN, reserved
    /// concurrency) for `region`.
    pub fn from_template(
        source: &SqsEventSource,
        template: &Template,
        region: &str,
    ) -> Result<Self, MappingError> {
        let function =
            template
                .function(&source.function)
                .ok_or_else(|| MappingError::UnknownFunction {
                    source_id: source.id.clone(),
                    function: source.function.clone(),
                })?;
        let queue = template
            .queue(&source.queue)
            .ok_or_else(|| MappingError::UnknownQueue {
                source_id: source.id.clone(),
                queue: source.queue.clone(),
            })?;
        filter::FilterSet::parse(&source.filter_patterns).map_err(|error| {
            MappingError::Filter {
                source_id: source.id.clone(),
                error,
            }
        })?;
        let scaling = source
            .maximum_concurrency
            .unwrap_or(DEFAULT_MAX_CONCURRENCY);
        let max_concurrency = match function.reserved_concurrency {
            Some(reserved) => scaling.min(reserved),
            None => scaling,
        };
        Ok(MappingConfig {
            id: source.id.clone(),
            function: function.name.clone(),
            queue: queue.name.clone(),
            queue_arn: queue.arn.clone(),
            region: region.to_owned(),
            batch_size: source.batch_size.max(1),
            window: Duration::from_secs(u64::from(source.maximum_batching_window_s)),
            max_concurrency,
            report_batch_item_failures: source.report_batch_item_failures,
            enabled: source.enabled,
            filter_patterns: source.filter_patterns.clone(),
        })
    }

    /// Every SQS event source of `template`, resolved for `region`.
    pub fn all_from_template(template: &Template, region: &str) -> Result<Vec<Self>, MappingError> {
        template
            .event_sources
            .iter()
            .map(|source| Self::from_template(source, template, region))
            .collect()
    }

    /// Sets the batch size (at least 1).
    pub fn with_batch_size(mut self, batch_size: u32) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the batching window.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets the most batches in flight at once.
    pub fn with_max_concurrency(mut self, max_concurrency: u32) -> Self {
        self.max_concurrency = max_concurrency;
        self
    }

    /// Turns `ReportBatchItemFailures` on or off.
    pub fn with_report_batch_item_failures(mut self, on: bool) -> Self {
        self.report_batch_item_failures = on;
        self
    }

    /// Enables or disables the mapping.
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
}

/// A snapshot of one mapping's counters, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MappingStats {
    /// Invocations started.
    pub batches: u64,
    /// Records sent, over all invocations.
    pub records: u64,
    /// Batches that ended in complete success.
    pub successes: u64,
    /// Batches where the function reported some items as failed.
    pub partial_failures: u64,
    /// Batches of which nothing was deleted.
    pub full_failures: u64,
    /// Invocations running now (including settling their results).
    pub in_flight: u64,
    /// Messages deleted.
    pub deleted: u64,
    /// Messages left to come back after their visibility timeout.
    pub kept: u64,
    /// Deletes that failed (logged; the message comes back).
    pub delete_errors: u64,
    /// Received messages handed back unsent at shutdown.
    pub released: u64,
    /// Messages the poller holds, received but not sent yet: a batch waiting for its window
    /// and messages carried over by the 6 MB cap. Counted from just before a receive, so a
    /// message is never between the queue's visible count and this one.
    pub buffered: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    successes: AtomicU64,
    partial_failures: AtomicU64,
    full_failures: AtomicU64,
    in_flight: AtomicU64,
    deleted: AtomicU64,
    kept: AtomicU64,
    delete_errors: AtomicU64,
    released: AtomicU64,
    buffered: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> MappingStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MappingStats {
            batches: get(&self.batches),
            records: get(&self.records),
            successes: get(&self.successes),
            partial_failures: get(&self.partial_failures),
            full_failures: get(&self.full_failures),
            in_flight: get(&self.in_flight),
            deleted: get(&self.deleted),
            kept: get(&self.kept),
            delete_errors: get(&self.delete_errors),
            released: get(&self.released),
            buffered: get(&self.buffered),
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn set(counter: &AtomicU64, n: usize) {
        counter.store(n as u64, Ordering::Relaxed);
    }
}

/// A running mapping.
#[derive(Debug)]
pub struct MappingHandle {
    config: MappingConfig,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl MappingHandle {
    /// The mapping's configuration.
    pub fn config(&self) -> &MappingConfig {
        &self.config
    }

    /// Its counters now.
    pub fn stats(&self) -> MappingStats {
        self.counters.snapshot()
    }

    /// A cheap, cloneable reader of the counters that outlives [`MappingHandle::join`].
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader(self.counters.clone())
    }

    /// Whether the poller has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the poller to stop (after its [`Shutdown`](crate::shutdown::Shutdown) is
    /// triggered): in-flight invocations have finished and their results are applied.
    pub async fn join(self) -> Result<MappingStats, MappingError> {
        let result = self.task.await;
        let stats = self.counters.snapshot();
        result.map(|()| stats).map_err(|e| MappingError::Aborted {
            function: self.config.function.clone(),
            message: e.to_string(),
        })
    }
}

/// Reads a mapping's counters (see [`MappingHandle::stats_reader`]).
#[derive(Debug, Clone)]
pub struct StatsReader(Arc<Counters>);

impl StatsReader {
    /// The counters now.
    pub fn get(&self) -> MappingStats {
        self.0.snapshot()
    }
}

/// Starts the poller of `config` on the current tokio runtime. It runs until `shutdown`: then it
/// stops receiving, releases the messages it holds but has not sent, lets in-flight
/// invocations finish and applies their results.
pub fn spawn(
    config: MappingConfig,
    engine: SqsEngine,
    invoker: Arc<dyn Invoker>,
    shutdown: Signal,
) -> MappingHandle {
    let counters = Arc::new(Counters::default());
    let poller = poller::Poller::new(config.clone(), engine, invoker, counters.clone(), shutdown);
    let task = tokio::spawn(poller.run());
    MappingHandle {
        config,
        counters,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_needs_room_for_every_enabled_mapping_on_it() {
        let mut disabled = MappingConfig::new("worker", "c", "eu-west-1").with_max_concurrency(7);
        disabled.enabled = false;
        let configs = [
            MappingConfig::new("worker", "a", "eu-west-1").with_max_concurrency(20),
            MappingConfig::new("worker", "b", "eu-west-1"),
            disabled,
            MappingConfig::new("other", "d", "eu-west-1").with_max_concurrency(3),
        ];
        assert_eq!(
            instances_needed(&configs, "worker"),
            20 + DEFAULT_MAX_CONCURRENCY
        );
        assert_eq!(instances_needed(&configs, "other"), 3);
        assert_eq!(instances_needed(&configs, "none"), 0);
    }
}
