//! The emulator group: the mapping's in-process latency and throughput, the HTTP round trip,
//! end-to-end throughput through a function process, and replay.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::functions::warm_body;
use crate::measure::{QueueKind, measure_latency, measure_throughput};
use crate::output::{Dist, Row, ms, per_second};
use crate::{
    BENCH_FUNCTION, BENCH_QUEUE, BUDGET_E2E_PER_SECOND, BUDGET_LATENCY_P99,
    BUDGET_REPLAY_PER_SECOND, E2E_CONCURRENCY, E2E_MESSAGES, E2E_WARMUP, FIFO_MESSAGES,
    HTTP_LATENCY_SAMPLES, HTTP_LATENCY_WARMUP, INPROCESS_MESSAGES, LATENCY_SAMPLES, REGION,
    REPLAY_EVENTS, STALL,
};
use nightshift_local::clock::{self};
use nightshift_local::invoker::{FunctionError, InProcessInvoker, Invoker};
use nightshift_local::mapping::event::{Record, assemble};
use nightshift_local::mapping::{self, MappingConfig};
use nightshift_local::runtime::{
    FunctionConfig, LogLine, LogSink, ProcessInvoker, Runtime, RuntimeOptions,
};
use nightshift_local::shutdown::Shutdown;
use nightshift_local::sqs::{self, OutgoingMessage, ReceiveOptions, SqsEngine};
use nightshift_local::trace::{ReplayOptions, TraceEntry, read_trace, replay};

pub(super) async fn emulator(test_function: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let budget = format!("p99 ≤ {}", ms(BUDGET_LATENCY_P99));

    eprintln!("emulator: SendMessage → invocation start over HTTP (aws-sdk-sqs)");
    let (latency, roundtrip) = http_latency().await?;
    rows.push(Row::new(
        "emulator",
        "SendMessage → invocation start, HTTP endpoint + aws-sdk-sqs, window 0",
        budget.clone(),
        latency.summary(),
        latency.p99 <= BUDGET_LATENCY_P99,
    ));
    rows.push(Row::info(
        "emulator",
        "SendMessage round trip alone, HTTP endpoint + aws-sdk-sqs",
        roundtrip.summary(),
    ));

    eprintln!("emulator: SendMessage → invocation start in-process");
    let report = measure_latency(LATENCY_SAMPLES).await?;
    let latency = Dist {
        samples: report.samples,
        p50: report.p50,
        p99: report.p99,
        max: report.max,
    };
    rows.push(Row::new(
        "emulator",
        "SendMessage → invocation start, in-process engine API, window 0",
        budget,
        latency.summary(),
        latency.p99 <= BUDGET_LATENCY_P99,
    ));

    eprintln!("emulator: end to end through the test-function binary");
    ensure!(
        test_function.is_file(),
        "{} is missing: build it with `cargo build --release -p nightshift-local --example \
         test-function` (or drop --no-build)",
        test_function.display()
    );
    let e2e = process_throughput(test_function, E2E_MESSAGES, E2E_CONCURRENCY).await?;
    rows.push(Row::new(
        "emulator",
        format!(
            "end to end through real binaries (test-function echo), batch 10, concurrency \
             {E2E_CONCURRENCY}"
        ),
        format!("≥ {} msg/s", per_second(BUDGET_E2E_PER_SECOND)),
        format!(
            "{} msg/s ({} msgs in {:.2} s, {:.1} records/invocation)",
            per_second(e2e.per_second),
            e2e.messages,
            e2e.elapsed.as_secs_f64(),
            e2e.records_per_batch
        ),
        e2e.per_second >= BUDGET_E2E_PER_SECOND,
    ));
    rows.push(Row::info(
        "emulator",
        "  invocations/s of that run",
        format!("{} inv/s", per_second(e2e.invocations_per_second)),
    ));

    eprintln!("emulator: in-process pipeline throughput");
    let report = measure_throughput(QueueKind::Standard, INPROCESS_MESSAGES, 10, 5).await?;
    rows.push(Row::info(
        "emulator",
        "in-process: SendMessageBatch → mapping → no-op handler → delete, batch 10",
        throughput(&report),
    ));
    // FIFO: one batch of a group at a time, so throughput depends on how many groups have
    // work; the mapping's default concurrency of 10.
    for groups in [10, 1000] {
        eprintln!("emulator: in-process FIFO throughput, {groups} groups");
        let report = measure_throughput(QueueKind::Fifo { groups }, FIFO_MESSAGES, 10, 10).await?;
        rows.push(Row::info(
            "emulator",
            format!("  same on a FIFO queue, {groups} message groups, concurrency 10"),
            throughput(&report),
        ));
    }
    Ok(rows)
}

fn throughput(report: &crate::measure::ThroughputReport) -> String {
    format!(
        "{} msg/s ({} msgs in {:.2} s)",
        per_second(report.per_second),
        report.messages,
        report.elapsed.as_secs_f64()
    )
}

/// The replay rows: `trace::replay` and reading the trace.
pub(super) async fn replay_rows() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    eprintln!("replay: in-process replay of a trace");
    let replay = replay_rate(REPLAY_EVENTS).await?;
    rows.push(Row::new(
        "replay",
        "in-process replay: trace::replay --check of 1-record SQS events, no-op handler",
        format!("≥ {} events/s", per_second(BUDGET_REPLAY_PER_SECOND)),
        format!(
            "{} events/s ({} events in {:.2} s)",
            per_second(REPLAY_EVENTS as f64 / replay.replay.as_secs_f64()),
            REPLAY_EVENTS,
            replay.replay.as_secs_f64()
        ),
        REPLAY_EVENTS as f64 / replay.replay.as_secs_f64() >= BUDGET_REPLAY_PER_SECOND,
    ));
    rows.push(Row::info(
        "replay",
        "  reading that trace from JSONL (read_trace)",
        format!(
            "{} events/s ({:.2} s, {:.1} MB)",
            per_second(REPLAY_EVENTS as f64 / replay.parse.as_secs_f64()),
            replay.parse.as_secs_f64(),
            replay.bytes as f64 / 1_000_000.0
        ),
    ));

    Ok(rows)
}

fn sdk_client(endpoint: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "static"))
        .endpoint_url(endpoint)
        // The endpoint is plain HTTP on loopback: no TLS needed.
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A mapping (batch 10, window 0) on a served engine, one message at a time sent with
/// aws-sdk-sqs: SendMessage → handler start, and the SendMessage round trip.
async fn http_latency() -> Result<(Dist, Dist)> {
    let engine = SqsEngine::in_memory(clock::real());
    engine.create_queue(BENCH_QUEUE, &BTreeMap::new(), &BTreeMap::new())?;
    let server = sqs::serve(engine.clone(), SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = engine.url_for(BENCH_QUEUE);
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<Instant>();
    let invoker = InProcessInvoker::new().with_function(BENCH_FUNCTION, move |_payload, _ctx| {
        // Taken first thing: the handler's own work is not part of the latency.
        let _ = started_tx.send(Instant::now());
        async { Ok::<_, FunctionError>(Bytes::new()) }
    });
    let stop = Shutdown::new();
    let config = MappingConfig::new(BENCH_FUNCTION, BENCH_QUEUE, REGION);
    let handle = mapping::spawn(config, engine.clone(), Arc::new(invoker), stop.signal());
    let client = sdk_client(&server.endpoint_url());
    let mut latency = Vec::with_capacity(HTTP_LATENCY_SAMPLES);
    let mut roundtrip = Vec::with_capacity(HTTP_LATENCY_SAMPLES);
    for i in 0..HTTP_LATENCY_WARMUP + HTTP_LATENCY_SAMPLES {
        let sent = Instant::now();
        tokio::time::timeout(
            STALL,
            client
                .send_message()
                .queue_url(&url)
                .message_body(format!("message {i}"))
                .send(),
        )
        .await
        .context("SendMessage timed out")?
        .context("SendMessage failed")?;
        let acked = Instant::now();
        let started = tokio::time::timeout(STALL, started_rx.recv())
            .await
            .ok()
            .flatten()
            .with_context(|| format!("message {i} was never delivered"))?;
        if i >= HTTP_LATENCY_WARMUP {
            latency.push(started.saturating_duration_since(sent));
            roundtrip.push(acked - sent);
        }
    }
    stop.trigger();
    handle.join().await?;
    server.shutdown().await;
    Ok((Dist::of(latency), Dist::of(roundtrip)))
}

/// What one end-to-end run through the process runtime achieved.
struct E2e {
    messages: usize,
    elapsed: Duration,
    per_second: f64,
    invocations_per_second: f64,
    records_per_batch: f64,
}

/// Keeps the last lines the functions wrote, to explain a failure.
#[derive(Clone, Default)]
pub(super) struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    const KEEP: usize = 400;

    pub(super) fn sink(&self) -> LogSink {
        let tail = self.0.clone();
        Arc::new(move |line: &LogLine<'_>| {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == Self::KEEP {
                tail.pop_front();
            }
            tail.push_back(format!(
                "{} [{:?}] {}",
                line.function, line.stream, line.line
            ));
        })
    }

    /// The lines since the last invocation's `START`.
    pub(super) fn dump_last(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = tail
            .iter()
            .rposition(|line| line.contains("] START RequestId"))
            .unwrap_or(0);
        tail.iter()
            .skip(start)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(super) fn dump(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Sends `messages` in batches of 10 (in-process, as fast as the engine takes them) while a
/// mapping (batch 10, window 0, `concurrency` batches in flight) feeds them to the real
/// `test-function` binary through the process runtime; messages/s from the first send to the
/// last delete, after a warm-up that starts every instance.
async fn process_throughput(binary: &Path, messages: usize, concurrency: u32) -> Result<E2e> {
    let engine = SqsEngine::in_memory(clock::real());
    engine.create_queue(BENCH_QUEUE, &BTreeMap::new(), &BTreeMap::new())?;
    let logs = LogTail::default();
    let runtime = Runtime::new(RuntimeOptions {
        region: REGION.to_owned(),
        log_sink: logs.sink(),
        ..RuntimeOptions::default()
    });
    runtime.add_function(
        FunctionConfig::new(BENCH_FUNCTION, binary)
            .with_concurrency(concurrency)
            .with_timeout(Duration::from_secs(30)),
    )?;
    let invoker: Arc<dyn Invoker> = Arc::new(ProcessInvoker::new(runtime.clone()));
    let stop = Shutdown::new();
    let config = MappingConfig::new(BENCH_FUNCTION, BENCH_QUEUE, REGION)
        .with_batch_size(10)
        .with_window(Duration::ZERO)
        .with_max_concurrency(concurrency);
    let handle = mapping::spawn(config, engine.clone(), invoker, stop.signal());
    let stats = handle.stats_reader();

    let result = async {
        produce(&engine, E2E_WARMUP, 0).await?;
        wait_deleted(&stats, E2E_WARMUP as u64, &logs).await?;
        let before = stats.get();
        let started = Instant::now();
        let producer = {
            let engine = engine.clone();
            tokio::spawn(async move { produce(&engine, messages, E2E_WARMUP).await })
        };
        wait_deleted(&stats, (E2E_WARMUP + messages) as u64, &logs).await?;
        let elapsed = started.elapsed();
        producer.await.context("producer task")??;
        let after = stats.get();
        let batches = (after.batches - before.batches).max(1);
        let failed = after.full_failures + after.partial_failures;
        ensure!(
            failed == 0,
            "{failed} batches failed; function output:\n{}",
            logs.dump()
        );
        Ok(E2e {
            messages,
            elapsed,
            per_second: messages as f64 / elapsed.as_secs_f64(),
            invocations_per_second: batches as f64 / elapsed.as_secs_f64(),
            records_per_batch: (after.records - before.records) as f64 / batches as f64,
        })
    }
    .await;
    stop.trigger();
    handle.join().await?;
    runtime.shutdown(Duration::from_secs(2)).await;
    result
}

/// Sends `count` small messages in batches of 10, numbered from `first`.
async fn produce(engine: &SqsEngine, count: usize, first: usize) -> Result<()> {
    let mut sent = 0;
    while sent < count {
        let n = (count - sent).min(10);
        let entries = (0..n)
            .map(|i| {
                let body = format!("{{\"n\":{}}}", first + sent + i);
                (i.to_string(), OutgoingMessage::new(body))
            })
            .collect();
        let outcome = engine.send_message_batch(BENCH_QUEUE, entries)?;
        ensure!(
            outcome.failed.is_empty(),
            "send failed: {:?}",
            outcome.failed
        );
        sent += n;
        // Lets the poller run between sends, as a separate client would.
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Waits until the mapping has deleted `target` messages; fails when nothing moves for
/// [`STALL`].
async fn wait_deleted(stats: &mapping::StatsReader, target: u64, logs: &LogTail) -> Result<()> {
    let mut last = (Instant::now(), stats.get().deleted);
    loop {
        let deleted = stats.get().deleted;
        if deleted >= target {
            return Ok(());
        }
        if deleted != last.1 {
            last = (Instant::now(), deleted);
        } else if last.0.elapsed() > STALL {
            bail!(
                "stalled at {deleted} of {target} messages; function output:\n{}",
                logs.dump()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Timings of one replay run.
struct ReplayRun {
    /// `read_trace` of the JSONL.
    parse: Duration,
    /// `trace::replay` with `check`.
    replay: Duration,
    /// Size of the JSONL.
    bytes: usize,
}

/// Builds a trace of `events` invocations, each a 1-record SQS event exactly as the mapping
/// renders it (a job envelope as body) with a recorded `{"batchItemFailures":[]}`, writes it
/// as JSONL, reads it back and replays it with `check` against an in-process no-op handler
/// that answers the same; every response must match.
async fn replay_rate(events: usize) -> Result<ReplayRun> {
    let engine = SqsEngine::in_memory(clock::real());
    engine.create_queue(BENCH_QUEUE, &BTreeMap::new(), &BTreeMap::new())?;
    let arn = engine.arn_for(BENCH_QUEUE);
    let recorded = json!({ "batchItemFailures": [] });
    let mut jsonl = String::new();
    let options = ReceiveOptions {
        visibility_timeout: Some(43_200),
        wait: Some(Duration::ZERO),
        ..ReceiveOptions::all_attributes(10)
    };
    let mut seq = 0;
    // Bounded: each round stages 10 messages and receives them back.
    for round in 0..events.div_ceil(10) {
        let entries = (0..10)
            .map(|k| {
                let body = warm_body("queue-processor", "replay", round, k);
                (k.to_string(), OutgoingMessage::new(body))
            })
            .collect();
        engine.send_message_batch(BENCH_QUEUE, entries)?;
        for message in engine.receive_message(BENCH_QUEUE, &options).await? {
            if seq == events {
                break;
            }
            let record = Record::render(message, &arn, REGION);
            let event: Value = serde_json::from_slice(&assemble([&record]))?;
            let mut entry =
                TraceEntry::event(BENCH_FUNCTION, event).with_response("success", recorded.clone());
            entry.seq = seq as u64;
            jsonl.push_str(&serde_json::to_string(&entry)?);
            jsonl.push('\n');
            seq += 1;
        }
    }
    ensure!(seq == events, "staged {seq} of {events} events");

    let started = Instant::now();
    let trace = read_trace(jsonl.as_bytes())?;
    let parse = started.elapsed();
    ensure!(trace.entries.len() == events, "the trace lost entries");

    let invoker = InProcessInvoker::new().with_function(BENCH_FUNCTION, |_payload, _ctx| async {
        Ok::<_, FunctionError>(Bytes::from_static(br#"{"batchItemFailures":[]}"#))
    });
    let options = ReplayOptions {
        check: true,
        ..ReplayOptions::default()
    };
    let started = Instant::now();
    let report = replay(&invoker, &trace.entries, &options).await;
    let elapsed = started.elapsed();
    ensure!(
        report.matched() == events,
        "replay did not match: {}\n{}",
        report.summary(),
        report.mismatches()
    );
    Ok(ReplayRun {
        parse,
        replay: elapsed,
        bytes: jsonl.len(),
    })
}
