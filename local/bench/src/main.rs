//! nightshift-bench: measures the emulator and the functions against the budgets of
//! `docs/ARCHITECTURE.md` (section 6, "Budgets") and prints one table of budget against
//! measured.
//!
//! Run it with `cargo run --release -p nightshift-bench`. It first builds
//! the three functions and the `test-function` example in release (`--no-build` skips that),
//! then runs a fixed number of iterations of each measurement, so it ends in a few minutes.
//! Everything binds 127.0.0.1 only; scratch files go to a temporary directory that is removed
//! at the end.
//!
//! What each row includes is printed under the table; the README's "Performance" section
//! says it at more length. A crate of its own (`publish = false`) so that measurement code
//! stays out of the emulator: [`measure`] holds the mapping's latency and throughput runs.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use nightshift_local::clock::{self, ManualClock};
use nightshift_local::emulator::target_dir;
use nightshift_local::invoke_async::{AsyncFunction, AsyncInvoker};
use nightshift_local::invoker::{
    FunctionError, InProcessInvoker, InvokeOutcome, InvokeRequest, InvokeResponse, Invoker,
};
use nightshift_local::mapping::event::{Record, assemble};
use nightshift_local::mapping::{self, MappingConfig, Shutdown};
use nightshift_local::runtime::{
    FunctionConfig, LogLine, LogSink, ProcessInvoker, Runtime, RuntimeOptions,
};
use nightshift_local::schedule::runner::{RunnerConfig, ScheduleRunner};
use nightshift_local::sqs::{self, OutgoingMessage, ReceiveOptions, SqsEngine};
use nightshift_local::template::{
    RetryPolicy, ScheduleDef, ScheduleKind, ScheduleTarget, Template,
};
use nightshift_local::trace::{ReplayOptions, TraceEntry, read_trace, replay};

mod measure;

use measure::{measure_latency, measure_throughput};

const REGION: &str = "us-east-1";
const BENCH_FUNCTION: &str = "bench-function";
const BENCH_QUEUE: &str = "bench-queue";

/// The three functions of the workspace, by package (= binary) name.
const FUNCTIONS: [&str; 3] = ["queue-processor", "email-sender", "daily-report"];

/// Longest any single step may take before the bench gives up on it.
const STALL: Duration = Duration::from_secs(60);

/// SendMessage → invocation start, in-process engine API.
const LATENCY_SAMPLES: usize = 10_000;
/// SendMessage → invocation start through the HTTP endpoint, after a warm-up.
const HTTP_LATENCY_SAMPLES: usize = 10_000;
const HTTP_LATENCY_WARMUP: usize = 500;
/// Messages of the end-to-end run through the real binaries, after a warm-up.
const E2E_MESSAGES: usize = 200_000;
const E2E_WARMUP: usize = 5_000;
/// Concurrency of the end-to-end run: the template's `MaximumConcurrency` of the jobs queue.
const E2E_CONCURRENCY: u32 = 5;
/// Messages of the in-process pipeline run.
const INPROCESS_MESSAGES: usize = 1_000_000;
/// Events of the in-process replay run.
const REPLAY_EVENTS: usize = 200_000;
/// Cold starts per function.
const COLD_STARTS: usize = 50;
/// Warm 10-record invocations per function, after a warm-up.
const WARM_INVOKES: usize = 500;
const WARM_WARMUP: usize = 10;
/// Records per warm invocation.
const BATCH: usize = 10;

/// What the rows include, printed under the table.
const NOTES: [&str; 7] = [
    "latency: from just before SendMessage is called to the first line of the handler; one \
     message at a time, mapping with batch 10, window 0, in-process handler",
    "end to end: in-process SendMessageBatch of 10 while the mapping receives, invokes the \
     release test-function through the Runtime API (echo) and deletes; first send to last \
     delete, after a warm-up that starts every instance",
    "replay: trace::replay with check of an in-memory trace (reading the JSONL is the next \
     row), in-process no-op handler answering what was recorded",
    "schedules: in-process no-op function, manual clock from 2026-01-01, wall time",
    "Init Duration: process spawn to the first /next (REPORT line), a fresh runtime per start, \
     env as infra/env.local.json with the SQS endpoint running; verdict on p50",
    "warm invoke: REPORT Duration (event handed out by /next to /response received) of one warm \
     instance, records with fresh ids (no idempotency short-cut), SQLite store on disk, outbox \
     mailer with MAIL_MAX_PER_SECOND lifted (the outbox writes are included); verdict on p50",
    "sizes: target/release/<name> as built by the workspace's [profile.release]",
];

/// Budgets of `docs/ARCHITECTURE.md` (section 6, "Budgets").
const BUDGET_LATENCY_P99: Duration = Duration::from_millis(10);
const BUDGET_E2E_PER_SECOND: f64 = 20_000.0;
const BUDGET_REPLAY_PER_SECOND: f64 = 100_000.0;
const BUDGET_SCHEDULE_YEAR: Duration = Duration::from_secs(2);
const BUDGET_BINARY_BYTES: u64 = 8_000_000;
const BUDGET_INIT: Duration = Duration::from_millis(20);
const BUDGET_WARM_BATCH: Duration = Duration::from_millis(2);

/// Measures the `docs/ARCHITECTURE.md` budgets and prints budget against measured.
#[derive(Debug, Parser)]
#[command(name = "nightshift-bench", version)]
struct Args {
    /// The workspace root (where `target/` and the functions are).
    #[arg(long, default_value_os_t = default_root())]
    root: PathBuf,
    /// Do not run `cargo build --release` for the functions and the test function first.
    #[arg(long)]
    no_build: bool,
    /// Run only these groups (default: all).
    #[arg(long, value_enum)]
    only: Vec<Group>,
    /// An environment variable for the functions of the "functions" group, over their own
    /// (e.g. `RUST_LOG=warn` to see what logging costs); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    function_env: Vec<(String, String)>,
    /// Print the output of the last warm invocation of each function (its log lines and the
    /// REPORT line).
    #[arg(long)]
    show_logs: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Groups of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Group {
    /// SQS → mapping latency and throughput (in-process and through real binaries).
    Emulator,
    /// In-process replay of a recorded trace.
    Replay,
    /// A year of schedules on the manual clock.
    Schedules,
    /// Binary sizes, cold starts and warm invocations of the three functions.
    Functions,
}

fn default_root() -> PathBuf {
    // The bench is built from the workspace it measures.
    // local/bench -> the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// How a measurement compares to its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Within,
    Over,
    /// Context for another row; no budget of its own.
    Info,
}

/// One line of the result table.
#[derive(Debug)]
struct Row {
    area: &'static str,
    what: String,
    budget: String,
    measured: String,
    verdict: Verdict,
}

impl Row {
    fn new(
        area: &'static str,
        what: impl Into<String>,
        budget: impl Into<String>,
        measured: impl Into<String>,
        within: bool,
    ) -> Self {
        Row {
            area,
            what: what.into(),
            budget: budget.into(),
            measured: measured.into(),
            verdict: if within {
                Verdict::Within
            } else {
                Verdict::Over
            },
        }
    }

    fn info(area: &'static str, what: impl Into<String>, measured: impl Into<String>) -> Self {
        Row {
            area,
            what: what.into(),
            budget: "-".into(),
            measured: measured.into(),
            verdict: Verdict::Info,
        }
    }
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy)]
struct Dist {
    samples: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Dist {
    /// Nearest-rank percentiles, as `measure` computes them.
    fn of(mut samples: Vec<Duration>) -> Dist {
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
            samples.get(index).copied().unwrap_or_default()
        };
        Dist {
            samples: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    fn summary(&self) -> String {
        format!(
            "p50 {} / p99 {} / max {} (n={})",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.samples
        )
    }
}

fn ms(d: Duration) -> String {
    let millis = d.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.3} ms")
    } else {
        format!("{millis:.1} ms")
    }
}

fn per_second(n: f64) -> String {
    // Thousands separated for readability: 123456 -> 123,456.
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let wants = |g: Group| args.only.is_empty() || args.only.contains(&g);
    let root = args
        .root
        .canonicalize()
        .with_context(|| format!("workspace root {}", args.root.display()))?;
    let release = target_dir(&root, true);
    let scratch = Scratch::new()?;

    if !args.no_build && (wants(Group::Emulator) || wants(Group::Functions)) {
        build(&root, wants(Group::Functions)).await?;
    }
    let test_function = release.join("examples/test-function");

    let mut rows = Vec::new();
    let started = Instant::now();
    if wants(Group::Emulator) {
        rows.extend(emulator(&test_function).await?);
    }
    if wants(Group::Replay) {
        rows.extend(replay_rows().await?);
    }
    if wants(Group::Schedules) {
        rows.extend(schedules().await?);
    }
    if wants(Group::Functions) {
        let env = FunctionsSqs::start(args.function_env.clone()).await?;
        let result = functions(&release, &test_function, &env, &scratch, args.show_logs).await;
        env.shutdown().await;
        rows.extend(result?);
    }
    print_table(&rows, started.elapsed());
    Ok(())
}

/// A temporary directory removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("nightshift-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch { dir })
    }

    /// A fresh subdirectory with a `.nightshift/` inside, as a function's working directory.
    fn work_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(dir.join(".nightshift"))
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds, in release, what the selected groups run: the example function and, if asked,
/// the three functions. `cargo run` has released the build lock by now, so a nested cargo
/// works.
async fn build(root: &Path, functions: bool) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut jobs: Vec<Vec<&str>> =
        vec![vec!["-p", "nightshift-local", "--example", "test-function"]];
    if functions {
        jobs.push(FUNCTIONS.iter().flat_map(|f| ["-p", *f]).collect());
    }
    for job in jobs {
        eprintln!("building (release): {}", job.join(" "));
        let status = tokio::process::Command::new(&cargo)
            .arg("build")
            .arg("--release")
            .args(&job)
            .current_dir(root)
            .status()
            .await
            .with_context(|| format!("running {cargo}"))?;
        ensure!(
            status.success(),
            "cargo build --release {job:?} failed: {status}"
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------ emulator

async fn emulator(test_function: &Path) -> Result<Vec<Row>> {
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
    let report = measure_throughput(INPROCESS_MESSAGES, 10, 5).await?;
    rows.push(Row::info(
        "emulator",
        "in-process: SendMessageBatch → mapping → no-op handler → delete, batch 10",
        format!(
            "{} msg/s ({} msgs in {:.2} s)",
            per_second(report.per_second),
            report.messages,
            report.elapsed.as_secs_f64()
        ),
    ));
    Ok(rows)
}

/// The replay rows: `trace::replay` and reading the trace.
async fn replay_rows() -> Result<Vec<Row>> {
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
    let (stop, shutdown) = Shutdown::channel();
    let config = MappingConfig::new(BENCH_FUNCTION, BENCH_QUEUE, REGION);
    let handle = mapping::spawn(config, engine.clone(), Arc::new(invoker), shutdown);
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
    let _ = stop.send(true);
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
struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    const KEEP: usize = 400;

    fn sink(&self) -> LogSink {
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
    fn dump_last(&self) -> String {
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

    fn dump(&self) -> String {
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
    let (stop, shutdown) = Shutdown::channel();
    let config = MappingConfig::new(BENCH_FUNCTION, BENCH_QUEUE, REGION)
        .with_batch_size(10)
        .with_window(Duration::ZERO)
        .with_max_concurrency(concurrency);
    let handle = mapping::spawn(config, engine.clone(), invoker, shutdown);
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
    let _ = stop.send(true);
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

// ----------------------------------------------------------------------------- schedules

fn schedule_def(id: &str, expression: &str, timezone: &str, input: Option<&str>) -> ScheduleDef {
    ScheduleDef {
        id: id.to_owned(),
        name: id.to_owned(),
        target: ScheduleTarget::Function(BENCH_FUNCTION.to_owned()),
        expression: expression.to_owned(),
        timezone: timezone.to_owned(),
        kind: ScheduleKind::ScheduleV2,
        input: input.map(str::to_owned),
        retry_policy: RetryPolicy::default(),
        dead_letter_queue: None,
        flexible_window_minutes: None,
        enabled: true,
        start_date: None,
        end_date: None,
    }
}

/// A started schedule runner on a manual clock.
struct ScheduleBench {
    runner: ScheduleRunner,
    manual: Arc<ManualClock>,
    shutdown: watch::Sender<bool>,
    count: Arc<AtomicU64>,
}

impl ScheduleBench {
    /// A runner over `rate(5 minutes)` and the daily report's cron (02:00 Europe/Berlin) on a
    /// manual clock at 2026-01-01, with a counting no-op function, waiting on the clock.
    async fn start() -> Result<Self> {
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse()?;
        let (clock, manual) = clock::manual(start);
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let invoker =
            InProcessInvoker::new().with_function(BENCH_FUNCTION, move |_payload, _ctx| {
                counter.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, FunctionError>(Bytes::from_static(b"null")) }
            });
        let template = Template {
            functions: BTreeMap::new(),
            queues: BTreeMap::new(),
            event_sources: Vec::new(),
            schedules: vec![
                schedule_def("Poll", "rate(5 minutes)", "UTC", None),
                schedule_def(
                    "Daily",
                    "cron(0 2 * * ? *)",
                    "Europe/Berlin",
                    Some(r#"{"scheduled_time":"<aws.scheduler.scheduled-time>"}"#),
                ),
            ],
        };
        // Scheduler → Lambda is an asynchronous invocation, as on AWS.
        let queues = AsyncInvoker::new(
            [AsyncFunction::new(BENCH_FUNCTION)],
            Arc::new(invoker),
            None,
            clock.clone(),
        );
        let runner = ScheduleRunner::new(
            &template,
            queues,
            None,
            clock,
            RunnerConfig {
                seed: Some(7),
                ..RunnerConfig::default()
            },
        )?;
        let (shutdown, signal) = watch::channel(false);
        runner.start(signal)?;
        tokio::time::timeout(STALL, manual.wait_for_waiters(2))
            .await
            .context("schedule tasks never waited on the clock")?;
        Ok(ScheduleBench {
            runner,
            manual,
            shutdown,
            count,
        })
    }

    fn stop(self) -> u64 {
        self.shutdown.send_replace(true);
        self.count.load(Ordering::Relaxed)
    }
}

/// A year of [`ScheduleBench`] through `ScheduleRunner::advance`: wall time and invocations.
async fn stepped_year(year: Duration) -> Result<(Duration, u64)> {
    let bench = ScheduleBench::start().await?;
    let started = Instant::now();
    tokio::time::timeout(STALL, bench.runner.advance(year))
        .await
        .context("advance did not finish")??;
    let elapsed = started.elapsed();
    Ok((elapsed, bench.stop()))
}

async fn schedules() -> Result<Vec<Row>> {
    // The five-minute rate's run at start (it has no StartDate), 365 days of 288 more, and 364
    // reports: 02:00 does not exist in Berlin on 29 March 2026, so that day's run is skipped.
    const EXPECTED: u64 = 1 + 365 * 288 + 364;
    let year = Duration::from_secs(365 * 86_400);
    let budget = format!("≤ {:.0} s", BUDGET_SCHEDULE_YEAR.as_secs_f64());
    let mut rows = Vec::new();

    eprintln!("schedules: one year, stepped (ScheduleRunner::advance)");
    let (stepped, invocations) = stepped_year(year).await?;
    ensure!(
        invocations == EXPECTED,
        "stepped advance made {invocations} invocations, expected {EXPECTED}"
    );
    rows.push(Row::new(
        "emulator",
        "1 year of rate(5 minutes) + daily cron: ScheduleRunner::advance (each fire at its time)",
        budget.clone(),
        format!("{:.3} s ({invocations} invocations)", stepped.as_secs_f64()),
        stepped <= BUDGET_SCHEDULE_YEAR,
    ));

    eprintln!("schedules: one year, stepped, on a current-thread runtime");
    // The stepped advance is 105,120 wake-ups in a row; on one thread none of them crosses
    // threads, which shows how much of the time is scheduling between the two workers.
    let (single, invocations) = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(stepped_year(year))
    })
    .await??;
    ensure!(
        invocations == EXPECTED,
        "stepped advance made {invocations} invocations, expected {EXPECTED}"
    );
    rows.push(Row::info(
        "emulator",
        "  same, on a current-thread tokio runtime",
        format!("{:.3} s", single.as_secs_f64()),
    ));

    eprintln!("schedules: one year, one clock jump");
    let bench = ScheduleBench::start().await?;
    let started = Instant::now();
    // Each schedule catches up in order, with the clock already at the end of the year.
    bench.manual.advance(year)?;
    tokio::time::timeout(STALL, bench.runner.wait_idle())
        .await
        .context("the runner never caught up")?;
    let jumped = started.elapsed();
    let invocations = bench.stop();
    ensure!(
        invocations == EXPECTED,
        "one jump made {invocations} invocations, expected {EXPECTED}"
    );
    rows.push(Row::new(
        "emulator",
        "1 year of rate(5 minutes) + daily cron: one ManualClock::advance + wait_idle",
        budget,
        format!("{:.3} s ({invocations} invocations)", jumped.as_secs_f64()),
        jumped <= BUDGET_SCHEDULE_YEAR,
    ));

    eprintln!("schedules: asynchronous invocations");
    const EVENTS: usize = 100_000;
    let (elapsed, invocations) = async_invocations(EVENTS).await?;
    ensure!(
        invocations == EVENTS as u64,
        "{invocations} of {EVENTS} async events ran"
    );
    rows.push(Row::info(
        "emulator",
        "async (Event) invocations of a no-op in-process function: accepted, run, done",
        format!(
            "{}/s ({EVENTS} in {:.3} s)",
            per_second(EVENTS as f64 / elapsed.as_secs_f64()),
            elapsed.as_secs_f64()
        ),
    ));
    Ok(rows)
}

/// `events` Event invocations through the asynchronous queue of a counting no-op function:
/// the wall time until every one has run, and how many ran.
async fn async_invocations(events: usize) -> Result<(Duration, u64)> {
    let (clock, _manual) = clock::manual("2026-01-01T00:00:00Z".parse()?);
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let invoker = InProcessInvoker::new().with_function(BENCH_FUNCTION, move |_payload, _ctx| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, FunctionError>(Bytes::from_static(b"null")) }
    });
    let queues = AsyncInvoker::new(
        [AsyncFunction::new(BENCH_FUNCTION)],
        Arc::new(invoker),
        None,
        clock,
    );
    let started = Instant::now();
    for _ in 0..events {
        queues.invoke_async(BENCH_FUNCTION, Bytes::from_static(b"{}"))?;
    }
    tokio::time::timeout(STALL, queues.wait_idle())
        .await
        .context("the async queue never finished")?;
    let elapsed = started.elapsed();
    Ok((elapsed, count.load(Ordering::Relaxed)))
}

// ----------------------------------------------------------------------------- functions

async fn functions(
    release: &Path,
    test_function: &Path,
    env: &FunctionsSqs,
    scratch: &Scratch,
    show_logs: bool,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for name in FUNCTIONS {
        let binary = release.join(name);
        ensure!(
            binary.is_file(),
            "{} is missing: build it with `cargo build --release -p {name}` (or drop --no-build)",
            binary.display()
        );
        let size = std::fs::metadata(&binary)?.len();
        let stripped = match stripped_size(&binary, scratch)? {
            // `strip` still drops a few bytes of an already stripped ELF.
            Some(bytes) if size - bytes.min(size) < 4096 => "already stripped".to_owned(),
            Some(bytes) => format!("{} after strip", mb(bytes)),
            None => "strip not found".to_owned(),
        };
        rows.push(Row::new(
            "functions",
            format!("{name}: release binary size"),
            format!("≤ {}", mb(BUDGET_BINARY_BYTES)),
            format!("{} ({stripped})", mb(size)),
            size <= BUDGET_BINARY_BYTES,
        ));
    }

    for name in FUNCTIONS {
        eprintln!("functions: {COLD_STARTS} cold starts of {name}");
        let init = cold_starts(name, &release.join(name), env, scratch).await?;
        rows.push(Row::new(
            "functions",
            format!("{name}: process start → first /next (Init Duration)"),
            format!("≤ {}", ms(BUDGET_INIT)),
            init.summary(),
            init.p50 <= BUDGET_INIT,
        ));
    }

    for name in ["queue-processor", "email-sender"] {
        eprintln!("functions: {WARM_INVOKES} warm 10-record invocations of {name}");
        let warm = warm_invokes(name, &release.join(name), env, scratch, show_logs).await?;
        rows.push(Row::new(
            "functions",
            format!("{name}: warm invoke, 10-record batch (REPORT Duration)"),
            format!("≤ {}", ms(BUDGET_WARM_BATCH)),
            warm.function.summary(),
            warm.function.p50 <= BUDGET_WARM_BATCH,
        ));
        rows.push(Row::info(
            "functions",
            format!("  {name}: same, round trip through the runtime pool"),
            warm.round_trip.summary(),
        ));
    }

    ensure!(
        test_function.is_file(),
        "{} is missing: build it with `cargo build --release -p nightshift-local --example \
         test-function` (or drop --no-build)",
        test_function.display()
    );
    eprintln!("functions: {WARM_INVOKES} warm 10-record invocations of test-function (echo)");
    let warm = warm_invokes("test-function", test_function, env, scratch, false).await?;
    rows.push(Row::info(
        "functions",
        "  baseline: test-function echo, 10-record batch (REPORT Duration)",
        warm.function.summary(),
    ));
    Ok(rows)
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

/// The size of a `strip`ped copy of `binary`, or `None` without a `strip` tool.
fn stripped_size(binary: &Path, scratch: &Scratch) -> Result<Option<u64>> {
    let copy = scratch.dir.join("stripped");
    std::fs::copy(binary, &copy)?;
    let status = std::process::Command::new("strip")
        .arg(&copy)
        .stderr(std::process::Stdio::null())
        .status();
    let size = match status {
        Ok(status) if status.success() => Some(std::fs::metadata(&copy)?.len()),
        _ => None,
    };
    let _ = std::fs::remove_file(&copy);
    Ok(size)
}

/// The emulator's SQS endpoint with the queues the functions use, as `nightshift up` serves it.
struct FunctionsSqs {
    engine: SqsEngine,
    server: sqs::SqsServer,
    /// `--function-env`, applied over each function's own variables.
    extra_env: Vec<(String, String)>,
}

const JOBS: &str = "nightshift-jobs";
const JOBS_DLQ: &str = "nightshift-jobs-dlq";
const EMAILS: &str = "nightshift-emails";
const EMAILS_DLQ: &str = "nightshift-emails-dlq";
/// Where event records are staged before they are rendered as if from the source queue.
const STAGING: &str = "bench-staging";

impl FunctionsSqs {
    async fn start(extra_env: Vec<(String, String)>) -> Result<Self> {
        let engine = SqsEngine::in_memory(clock::real());
        let server = sqs::serve(engine.clone(), SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        for queue in [JOBS, JOBS_DLQ, EMAILS, EMAILS_DLQ, STAGING] {
            engine.create_queue(queue, &BTreeMap::new(), &BTreeMap::new())?;
        }
        Ok(FunctionsSqs {
            engine,
            server,
            extra_env,
        })
    }

    async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// The function's configuration as the template and `infra/env.local.json` give it, with
    /// the mailer's pacing lifted so the measurement is of the function, not of the rate.
    fn function(&self, name: &str, binary: &Path) -> FunctionConfig {
        let url = |queue: &str| self.engine.url_for(queue);
        let mut config = FunctionConfig::new(name, binary)
            .with_timeout(Duration::from_secs(30))
            .with_memory_mb(256)
            .with_env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .with_env("RUST_LOG", "info")
            .with_env("IDEMPOTENCY_TTL_SECONDS", "86400")
            .with_env("STORE_URL", "sqlite://.nightshift/state.db")
            .with_env("EMAILS_QUEUE_URL", url(EMAILS));
        config = match name {
            "queue-processor" => config
                .with_env("JOBS_QUEUE_URL", url(JOBS))
                .with_env("JOBS_DLQ_URL", url(JOBS_DLQ)),
            "email-sender" => config
                .with_env("EMAILS_DLQ_URL", url(EMAILS_DLQ))
                .with_env("MAIL_URL", "file://.nightshift/outbox")
                .with_env("MAIL_FROM", "nightshift@example.com")
                .with_env("MAIL_MAX_PER_SECOND", "1000000"),
            "daily-report" => config
                .with_timeout(Duration::from_secs(60))
                .with_memory_mb(512)
                .with_env("BLOBS_URL", "file://.nightshift/reports")
                .with_env("REPORT_TIME_ZONE", "Europe/Berlin")
                .with_env("REPORT_RECIPIENTS", "ops@example.com"),
            _ => config,
        };
        for (key, value) in &self.extra_env {
            config = config.with_env(key, value);
        }
        config
    }

    fn runtime(&self, work_dir: &Path, logs: &LogTail) -> Runtime {
        Runtime::new(RuntimeOptions {
            region: REGION.to_owned(),
            env: BTreeMap::from([(
                "AWS_ENDPOINT_URL_SQS".to_owned(),
                self.server.endpoint_url(),
            )]),
            working_dir: Some(work_dir.to_owned()),
            log_sink: logs.sink(),
            ..RuntimeOptions::default()
        })
    }

    /// An SQS event of `bodies` exactly as the mapping of `source` would send it.
    async fn event(&self, source: &str, bodies: &[String]) -> Result<Bytes> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| (i.to_string(), OutgoingMessage::new(body.clone())))
            .collect();
        let outcome = self.engine.send_message_batch(STAGING, entries)?;
        ensure!(
            outcome.failed.is_empty(),
            "staging failed: {:?}",
            outcome.failed
        );
        let arn = self.engine.arn_for(source);
        let mut records = Vec::with_capacity(bodies.len());
        // Bounded: every staged message is visible, so each receive returns at least one.
        for _ in 0..bodies.len() {
            if records.len() == bodies.len() {
                break;
            }
            let options = ReceiveOptions {
                visibility_timeout: Some(43_200),
                wait: Some(Duration::ZERO),
                ..ReceiveOptions::all_attributes((bodies.len() - records.len()) as u32)
            };
            for message in self.engine.receive_message(STAGING, &options).await? {
                records.push(Record::render(message, &arn, REGION));
            }
        }
        ensure!(
            records.len() == bodies.len(),
            "staged messages went missing"
        );
        Ok(Bytes::from(assemble(&records)))
    }
}

/// The event a cold start is measured with: one the function handles without side effects
/// worth mentioning.
fn cold_payload(name: &str) -> Bytes {
    match name {
        "daily-report" => {
            Bytes::from_static(br#"{"scheduled_time":"2026-01-02T01:00:00Z","date":"2026-01-01"}"#)
        }
        _ => Bytes::from_static(br#"{"Records":[]}"#),
    }
}

/// Starts `name` [`COLD_STARTS`] times, each in a fresh runtime, and collects the Init
/// Duration the runtime reports: process spawn → the first `/next` request.
async fn cold_starts(
    name: &str,
    binary: &Path,
    env: &FunctionsSqs,
    scratch: &Scratch,
) -> Result<Dist> {
    let work_dir = scratch.work_dir(name)?;
    let logs = LogTail::default();
    let mut samples = Vec::with_capacity(COLD_STARTS);
    for _ in 0..COLD_STARTS {
        let runtime = env.runtime(&work_dir, &logs);
        runtime.add_function(env.function(name, binary))?;
        let outcome = tokio::time::timeout(
            STALL,
            runtime.invoke(InvokeRequest::new(name, cold_payload(name))),
        )
        .await
        .context("cold start timed out");
        runtime.shutdown(Duration::from_secs(2)).await;
        let response = outcome??;
        ensure_success(name, &response, &logs)?;
        let init = response
            .init_duration
            .with_context(|| format!("{name}: the first invocation reported no init duration"))?;
        samples.push(init);
    }
    Ok(Dist::of(samples))
}

fn ensure_success(name: &str, response: &InvokeResponse, logs: &LogTail) -> Result<()> {
    match &response.outcome {
        InvokeOutcome::Success(body) => {
            let failures = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("batchItemFailures")
                        .and_then(Value::as_array)
                        .map(Vec::len)
                })
                .unwrap_or(0);
            ensure!(
                failures == 0,
                "{name}: {failures} records failed: {}\nfunction output:\n{}",
                String::from_utf8_lossy(body),
                logs.dump()
            );
            Ok(())
        }
        other => bail!(
            "{name}: invocation failed: {other:?}\nfunction output:\n{}",
            logs.dump()
        ),
    }
}

/// Round trip and function duration of warm invocations.
struct Warm {
    round_trip: Dist,
    function: Dist,
}

/// The body of record `k` of warm invocation `i`: an order or a signup job for the
/// queue-processor, an order confirmation for the email-sender. Ids are unique per run, so
/// idempotency never short-cuts a record.
fn warm_body(name: &str, run: &str, i: usize, k: usize) -> String {
    let id = format!("bench-{run}-{i}-{k}");
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = match (name, k % 2) {
        ("queue-processor", 0) => json!({
            "v": 1,
            "id": id,
            "kind": "order.placed",
            "payload": {
                "order_id": format!("{i}{k}"),
                "customer_email": "ada@example.com",
                "customer_name": "Ada Lovelace",
                "currency": "EUR",
                "items": [
                    { "sku": "NOTEBOOK-A5", "quantity": 2, "unit_price_cents": 1250 },
                    { "sku": "PEN-BLUE", "quantity": 3, "unit_price_cents": 199 }
                ]
            },
            "submitted_at": now
        }),
        ("queue-processor", _) => json!({
            "v": 1,
            "id": id,
            "kind": "user.signup",
            "payload": { "user_id": format!("u-{i}-{k}"), "email": "grace@example.com", "name": "Grace Hopper" },
            "submitted_at": now
        }),
        _ => json!({
            "v": 1,
            "id": id,
            "to": ["ada@example.com"],
            "subject": format!("Your order {i}{k} is confirmed"),
            "template": "order_confirmation",
            "vars": {
                "order_id": format!("{i}{k}"),
                "customer_name": "Ada Lovelace",
                "currency": "EUR",
                "total": "30.97",
                "items": [
                    { "sku": "NOTEBOOK-A5", "quantity": 2, "line_total": "25.00" },
                    { "sku": "PEN-BLUE", "quantity": 3, "line_total": "5.97" }
                ]
            }
        }),
    };
    body.to_string()
}

/// One instance of `name`, started once, then [`WARM_INVOKES`] 10-record batches one after
/// another (after [`WARM_WARMUP`]); every record must succeed.
async fn warm_invokes(
    name: &str,
    binary: &Path,
    env: &FunctionsSqs,
    scratch: &Scratch,
    show_logs: bool,
) -> Result<Warm> {
    let source = if name == "queue-processor" {
        JOBS
    } else {
        EMAILS
    };
    let work_dir = scratch.work_dir(&format!("{name}-warm"))?;
    let logs = LogTail::default();
    let runtime = env.runtime(&work_dir, &logs);
    runtime.add_function(env.function(name, binary).with_concurrency(1))?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut round_trip = Vec::with_capacity(WARM_INVOKES);
    let mut function = Vec::with_capacity(WARM_INVOKES);
    let result = async {
        for i in 0..WARM_WARMUP + WARM_INVOKES {
            let bodies: Vec<String> = (0..BATCH).map(|k| warm_body(name, &run, i, k)).collect();
            let payload = env.event(source, &bodies).await?;
            let sent = Instant::now();
            let response =
                tokio::time::timeout(STALL, runtime.invoke(InvokeRequest::new(name, payload)))
                    .await
                    .context("invocation timed out")??;
            let elapsed = sent.elapsed();
            ensure_success(name, &response, &logs)?;
            if i == 0 {
                ensure!(
                    response.init_duration.is_some(),
                    "{name}: the first invocation was not cold"
                );
            } else {
                ensure!(
                    response.init_duration.is_none(),
                    "{name}: invocation {i} was not warm"
                );
            }
            if i >= WARM_WARMUP {
                round_trip.push(elapsed);
                function.push(response.duration);
            }
        }
        anyhow::Ok(())
    }
    .await;
    runtime.shutdown(Duration::from_secs(2)).await;
    result?;
    if show_logs {
        eprintln!(
            "--- {name}: output of the last warm invocation\n{}",
            logs.dump_last()
        );
    }
    Ok(Warm {
        round_trip: Dist::of(round_trip),
        function: Dist::of(function),
    })
}

// -------------------------------------------------------------------------------- output

fn print_table(rows: &[Row], elapsed: Duration) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    // Other work on the machine moves every number here; the load says how much there was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .map(|one| format!(", load average {one} at the end"))
        .unwrap_or_default();
    println!();
    println!(
        "nightshift-bench: {cores} cores ({cpu}), {} {}, {:.0} s{load}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        elapsed.as_secs_f64()
    );
    println!();
    let headers = ["area", "measurement", "budget", "measured", "verdict"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.area.to_owned(),
                r.what.clone(),
                r.budget.clone(),
                r.measured.clone(),
                match r.verdict {
                    Verdict::Within => "ok".to_owned(),
                    Verdict::Over => "OVER".to_owned(),
                    Verdict::Info => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&headers.map(str::to_owned));
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in &cells {
        line(row);
    }
    let over = rows.iter().filter(|r| r.verdict == Verdict::Over).count();
    println!();
    for note in NOTES {
        println!("- {note}");
    }
    println!();
    if over == 0 {
        println!("every measured budget is met");
    } else {
        println!("{over} measurement(s) over budget");
    }
}
