//! measure: the mapping's latency and throughput on the real clock, through the in-memory
//! engine and the in-process invoker, for benchmarks (never for timed tests).
//!
//! - [`measure_latency`]: SendMessage → invocation start, one message at a time, window 0;
//! - [`measure_throughput`]: messages/s end to end (send, receive, invoke a no-op handler,
//!   delete) with a producer sending batches of 10 while the mapping consumes, on a standard
//!   queue or on a FIFO queue with the messages spread over a number of message groups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use nightshift_local::clock;
use nightshift_local::invoker::{FunctionError, InProcessInvoker};
use nightshift_local::mapping::{MappingConfig, spawn};
use nightshift_local::shutdown::Shutdown;
use nightshift_local::sqs::{OutgoingMessage, SqsEngine, SqsError};

const FUNCTION: &str = "bench-function";
const QUEUE: &str = "bench-queue";
const FIFO_QUEUE: &str = "bench-queue.fifo";
const REGION: &str = "us-east-1";

/// Longest a measurement waits for one step before giving up.
const STALL: Duration = Duration::from_secs(30);

/// Errors of a measurement.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The engine refused an operation.
    #[error("sqs: {0}")]
    Sqs(#[from] SqsError),
    /// Nothing happened for too long.
    #[error("the mapping stalled: {0}")]
    Stalled(String),
}

/// Latency percentiles of SendMessage → invocation start.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyReport {
    /// Messages measured.
    pub samples: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Worst.
    pub max: Duration,
}

/// End-to-end throughput.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputReport {
    /// Messages sent and deleted.
    pub messages: usize,
    /// Invocations.
    pub batches: u64,
    /// From the first send to the last delete.
    pub elapsed: Duration,
    /// `messages / elapsed`.
    pub per_second: f64,
}

fn engine() -> Result<SqsEngine, SqsError> {
    let engine = SqsEngine::in_memory(clock::real());
    engine.create_queue(QUEUE, &Default::default(), &Default::default())?;
    let fifo = [("FifoQueue", "true"), ("ContentBasedDeduplication", "true")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    engine.create_queue(FIFO_QUEUE, &fifo, &Default::default())?;
    Ok(engine)
}

/// The queue a throughput run uses: standard, or FIFO with its messages in `groups` message
/// groups (round robin, so every group has work throughout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A standard queue.
    Standard,
    /// A FIFO queue with content-based deduplication (bodies are unique).
    Fifo {
        /// Message groups.
        groups: usize,
    },
}

/// Sends `messages` messages one at a time, each once the previous one's invocation started,
/// and reports SendMessage → invocation start (window 0, batch 10, concurrency 5).
pub async fn measure_latency(messages: usize) -> Result<LatencyReport, MeasureError> {
    let engine = engine()?;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<Instant>();
    let invoker = InProcessInvoker::new().with_function(FUNCTION, move |_payload: Bytes, _ctx| {
        // Taken first thing: the handler's own work is not part of the latency.
        let _ = started_tx.send(Instant::now());
        async { Ok::<_, FunctionError>(Bytes::new()) }
    });
    let stop = Shutdown::new();
    let config = MappingConfig::new(FUNCTION, QUEUE, REGION);
    let handle = spawn(config, engine.clone(), Arc::new(invoker), stop.signal());
    let mut samples = Vec::with_capacity(messages);
    for i in 0..messages {
        let sent = Instant::now();
        engine.send_message(QUEUE, OutgoingMessage::new(i.to_string()))?;
        let started = tokio::time::timeout(STALL, started_rx.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| MeasureError::Stalled(format!("message {i} was never delivered")))?;
        samples.push(started.saturating_duration_since(sent));
    }
    stop.trigger();
    let _ = handle.join().await;
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
        samples.get(index).copied().unwrap_or_default()
    };
    Ok(LatencyReport {
        samples: samples.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: samples.last().copied().unwrap_or_default(),
    })
}

/// Sends `messages` messages in batches of 10 while a mapping with `batch_size` and
/// `max_concurrency` (window 0, no-op handler) consumes them; reports messages/s from the
/// first send to the last delete.
pub async fn measure_throughput(
    kind: QueueKind,
    messages: usize,
    batch_size: u32,
    max_concurrency: u32,
) -> Result<ThroughputReport, MeasureError> {
    let queue = match kind {
        QueueKind::Standard => QUEUE,
        QueueKind::Fifo { .. } => FIFO_QUEUE,
    };
    let engine = engine()?;
    let invoker = InProcessInvoker::new().with_function(FUNCTION, |_payload: Bytes, _ctx| async {
        Ok::<_, FunctionError>(Bytes::new())
    });
    let stop = Shutdown::new();
    let config = MappingConfig::new(FUNCTION, queue, REGION)
        .with_batch_size(batch_size)
        .with_window(if batch_size > 10 {
            Duration::from_secs(1)
        } else {
            Duration::ZERO
        })
        .with_max_concurrency(max_concurrency);
    let handle = spawn(config, engine.clone(), Arc::new(invoker), stop.signal());
    let stats = handle.stats_reader();
    let started = Instant::now();
    let producer = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < messages {
                let n = (messages - sent).min(10);
                let entries = (0..n)
                    .map(|i| {
                        let message = OutgoingMessage::new((sent + i).to_string());
                        let message = match kind {
                            QueueKind::Standard => message,
                            QueueKind::Fifo { groups } => {
                                message.group(format!("g{}", (sent + i) % groups.max(1)))
                            }
                        };
                        (i.to_string(), message)
                    })
                    .collect();
                engine.send_message_batch(queue, entries)?;
                sent += n;
                // Lets the poller run between sends, as a separate client would.
                tokio::task::yield_now().await;
            }
            Ok::<_, SqsError>(())
        })
    };
    let mut last_progress = (Instant::now(), 0);
    let finished = loop {
        let deleted = stats.get().deleted;
        if deleted >= messages as u64 {
            break Instant::now();
        }
        if deleted != last_progress.1 {
            last_progress = (Instant::now(), deleted);
        } else if last_progress.0.elapsed() > STALL {
            stop.trigger();
            return Err(MeasureError::Stalled(format!(
                "{deleted} of {messages} messages processed"
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    match producer.await {
        Ok(result) => result?,
        Err(e) => return Err(MeasureError::Stalled(format!("producer failed: {e}"))),
    }
    stop.trigger();
    let stats = handle
        .join()
        .await
        .map_err(|e| MeasureError::Stalled(e.to_string()))?;
    let elapsed = finished - started;
    Ok(ThroughputReport {
        messages,
        batches: stats.batches,
        elapsed,
        per_second: messages as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
    })
}
