//! nightshift-bench: measures the emulator and the functions against the budgets of
//! `docs/ARCHITECTURE.md` (section 6, "Budgets") and prints one table of budget against
//! measured.
//!
//! Run it with `cargo run --profile emulator -p nightshift-bench`, built as the emulator a
//! user runs (`cargo nightshift`). It first builds the three functions and the
//! `test-function` example in release, their deploy build (`--no-build` skips that),
//! then runs a fixed number of iterations of each measurement, so it ends in a few minutes.
//! Everything binds 127.0.0.1 only; scratch files go to a temporary directory that is removed
//! at the end.
//!
//! What each row includes is printed under the table; the README's "Performance" section
//! says it at more length. A crate of its own (`publish = false`) so that measurement code
//! stays out of the emulator: [`measure`] holds the mapping's latency and throughput runs.
//!
//! Layout: `main.rs` parses the arguments, builds and runs the groups; one module per group
//! ([`emulator`], [`schedules`], [`functions`]); [`output`] holds the rows and prints the table.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::{Parser, ValueEnum};

use nightshift_local::emulator::target_dir;

mod dashboard;
mod emulator;
mod functions;
mod measure;
mod output;
mod schedules;

use dashboard::dashboard;
use emulator::{emulator, replay_rows};
use functions::{FunctionsSqs, functions};
use output::print_table;
use schedules::schedules;

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
/// Messages of each FIFO throughput row.
const FIFO_MESSAGES: usize = 200_000;
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
    "sizes: target/release/<name> as built by the workspace's [profile.release], zipped as bootstrap at deflate level 9 (the package budget)",
];

/// Budgets of `docs/ARCHITECTURE.md` (section 6, "Budgets").
const BUDGET_LATENCY_P99: Duration = Duration::from_millis(10);
const BUDGET_E2E_PER_SECOND: f64 = 20_000.0;
const BUDGET_REPLAY_PER_SECOND: f64 = 100_000.0;
const BUDGET_SCHEDULE_YEAR: Duration = Duration::from_secs(2);
/// 100,000 one-time schedules created through the Scheduler API, and fired: 20,000/s, four
/// times AWS's default CreateSchedule rate in its primary Regions (5,000/s,
/// <https://docs.aws.amazon.com/scheduler/latest/UserGuide/scheduler-quotas.html>), so a test
/// replaying production-rate scheduling is never slowed by the emulator.
const BUDGET_ONE_TIME: Duration = Duration::from_secs(5);
/// The deployment package (the `bootstrap` zipped at deflate level 9): what Lambda stores,
/// moves and limits (`CodeSizeZipped`,
/// <https://docs.aws.amazon.com/lambda/latest/dg/API_AccountLimit.html>); docs/ARCHITECTURE.md
/// gives the cold-start numbers behind 5 MB.
const BUDGET_PACKAGE_BYTES: u64 = 5_000_000;
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
    /// The emulator's throughput with and without a dashboard subscribed to its live stream.
    Dashboard,
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
        rows.extend(schedules(&scratch.dir).await?);
    }
    if wants(Group::Dashboard) {
        rows.extend(dashboard(&scratch.dir).await?);
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
