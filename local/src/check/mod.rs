//! The reliability checker behind `nightshift check --jobs N --bad-share P --faults LIST`: a
//! bounded run that sends N jobs (a fixed share of them malformed) through the real
//! queue-processor and email-sender under injected faults, then verifies from what the
//! functions left behind, not from what they said:
//!
//! - every valid job has a `succeeded` outcome in the store (exactly once in effect: outcomes
//!   are keyed by job id), or sits in the jobs DLQ, exhausted, with a reason;
//! - every email went out at most once per request id (counted by `X-Nightshift-Request-Id` in
//!   the outbox), and the email of every processed job went out or sits in the emails DLQ;
//! - every malformed job sits in the jobs DLQ with its reason;
//! - nothing is in neither place (lost), and nothing is left in the source queues.
//!
//! How it runs, and why:
//!
//! - **The emulator is a child process** (`nightshift up` on the real template and env file,
//!   a temporary work dir for the functions' `.nightshift/`, a journaled state dir), driven
//!   through its control endpoint. `sigkill=N` in the fault list kills it with a real SIGKILL
//!   (once while the first jobs are being processed, then during the first settling steps)
//!   and starts it again on the same journal and port: that is what a crash of the emulator
//!   is, journal, in-flight batches, orphaned function processes and all.
//! - **The manual clock**, moved in steps of [`CheckOptions::step`]. The template's visibility
//!   timeout is 270 s and `maxReceiveCount` 15 (a one-hour retry horizon): on a real clock an
//!   exhausted message takes over an hour, and an accelerated clock would also shrink the 1 s batching window and the
//!   functions' real-time deadlines relative to everything else. The manual clock jumps
//!   straight through every visibility timeout and backoff, in order.
//! - **Real time where the functions need it.** Function timeouts and idempotency claims live
//!   in real time (a claim expires at its invocation's wall-clock deadline). In AWS a
//!   redelivery after a batch failure comes 270 s after the receive, always after the dead
//!   invocation's 30 s deadline, so it never meets a live claim. A manual clock could get there
//!   first; so before every step the checker waits, in real time, until the store holds no
//!   live in-progress claim (which only dead or orphaned invocations leave once the emulator
//!   is idle). Without that wait, a crash between send and completion would look like an
//!   exhausted message instead of the duplicate it is in AWS.
//! - **Verification reads the artifacts**: the SQLite store read-only, the outbox directory,
//!   and the queues from the journal (reopened in process after the emulator stopped).

mod child;
mod jobs;
mod report;
mod store;
mod targets;
#[cfg(test)]
mod tests;
mod verdict;

pub use jobs::{Expect, Malformation, PlannedAdjustment, PlannedJob, plan_adjustments, plan_jobs};
pub use report::CheckReport;
pub use store::request_id_of;
pub use verdict::{
    DeadLetter, INVENTORY_KEY_PREFIX, Observed, Verdict, count_injected, verify, verify_adjustments,
};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::control::{ControlClient, ControlError};
use crate::emulator::{EmulatorError, build_functions, target_dir};
use crate::faults::{FaultError, FaultPlan};
use crate::sqs::{SqsEngine, SqsError};
use crate::template::{LoadOptions, Template, TemplateError};
use child::{Launcher, dead_letters, free_port, human};
use store::{read_outbox, read_outcomes, read_sequences, wait_for_claims};
use targets::Targets;

/// Why a check could not run to a verdict (a failed verdict is a [`CheckReport`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The fault list is invalid.
    #[error(transparent)]
    Faults(#[from] FaultError),
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Options(String),
    /// The template cannot be loaded, or lacks what the check needs.
    #[error("template: {0}")]
    Template(String),
    /// Building the binaries failed.
    #[error(transparent)]
    Build(#[from] EmulatorError),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The emulator process failed.
    #[error("the emulator {reason}; its log: {log}")]
    Emulator {
        /// What happened.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
    /// A control call failed.
    #[error("control endpoint: {0}")]
    Control(#[from] ControlError),
    /// The store could not be read.
    #[error("store {path}: {reason}")]
    Store {
        /// The database.
        path: PathBuf,
        /// The SQLite error.
        reason: String,
    },
    /// The journal could not be reopened.
    #[error("sqs journal: {0}")]
    Sqs(#[from] SqsError),
    /// The run exceeded a bound.
    #[error("bound exceeded: {0}")]
    Bound(String),
}

impl From<TemplateError> for CheckError {
    fn from(e: TemplateError) -> Self {
        CheckError::Template(e.to_string())
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckError {
    let context = context.into();
    move |source| CheckError::Io { context, source }
}

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The workspace root: where `cargo build` runs and the binaries are.
    pub project_root: PathBuf,
    /// The SAM template.
    pub template: PathBuf,
    /// The env file (`sam local --env-vars` format).
    pub env_file: Option<PathBuf>,
    /// Jobs to send.
    pub jobs: usize,
    /// Share of malformed jobs, from 0 to 1 (rounded to a whole number of jobs).
    pub bad_share: f64,
    /// The fault list (see [`crate::faults`]); empty for none.
    pub faults: String,
    /// Seed of the jobs and of every fault decision.
    pub seed: u64,
    /// Build the function binaries (and the emulator when [`CheckOptions::emulator`] is
    /// `None`) with cargo first.
    pub build: bool,
    /// The `nightshift` binary to run as the emulator; the debug build under the project's
    /// target dir when `None`.
    pub emulator: Option<PathBuf>,
    /// Where to keep the run's files (work dir, state dir, emulator log); a fresh temporary
    /// directory when `None`.
    pub dir: Option<PathBuf>,
    /// Keep the run's directory even when the check passes (it is always kept on failure).
    pub keep: bool,
    /// How far each step moves the manual clock.
    pub step: Duration,
    /// Most virtual time the settling may take.
    pub max_virtual: Duration,
    /// Most real time the whole run may take.
    pub max_real: Duration,
    /// Where the manual clock starts (and what the jobs say they were submitted at).
    pub clock_start: DateTime<Utc>,
    /// SKUs of the inventory adjustments sent through the FIFO queue (none when the template
    /// has no FIFO source for queue-processor, or with 0).
    pub skus: usize,
    /// Adjustments of each SKU, in sequence.
    pub adjustments_per_sku: u64,
    /// Counts the jobs settled (gone from the jobs queue: processed or dead-lettered) while
    /// the clock steps (`nightshift check`'s bar).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

impl CheckOptions {
    /// The project at `root` with its `infra/template.yaml` and `infra/env.local.json`: 200
    /// jobs, 10 % malformed, no faults, seed 1, build first, 20 s steps, at most 2 h of
    /// virtual and 20 min of real time, starting at 2026-03-02T08:00:00Z (far from the
    /// daily report's 02:00).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        CheckOptions {
            template: root.join("infra/template.yaml"),
            env_file: Some(root.join("infra/env.local.json")),
            project_root: root,
            jobs: 200,
            bad_share: 0.1,
            faults: String::new(),
            seed: 1,
            build: true,
            emulator: None,
            dir: None,
            keep: false,
            step: Duration::from_secs(20),
            max_virtual: Duration::from_secs(2 * 3600),
            max_real: Duration::from_secs(20 * 60),
            clock_start: "2026-03-02T08:00:00Z".parse().expect("a valid time"),
            skus: 4,
            adjustments_per_sku: 6,
            progress: None,
        }
    }
}

// ------------------------------------------------------------------------------------ the run

/// Runs a check: starts the emulator, sends the jobs, kills and restarts the emulator as the
/// fault list says, settles, stops, reads the artifacts and judges them.
pub async fn run(options: CheckOptions) -> Result<CheckReport, CheckError> {
    if options.jobs == 0 {
        return Err(CheckError::Options("--jobs must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&options.bad_share) {
        return Err(CheckError::Options(
            "--bad-share must be a number from 0 to 1".into(),
        ));
    }
    if options.step.is_zero() {
        return Err(CheckError::Options("the step must be positive".into()));
    }
    let plan = FaultPlan::parse(&options.faults, options.seed)?;
    let started = Instant::now();
    let port = free_port()?;
    let template = Template::load(
        &options.template,
        &LoadOptions {
            env_file: options.env_file.clone(),
            port,
            ..LoadOptions::default()
        },
    )?;
    let targets = Targets::of(&template)?;
    let root = &options.project_root;
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        // Unique within the process too: two checks started in the same millisecond (tests
        // run in parallel) must not share a state dir, whose journal only one emulator can
        // lock.
        None => {
            static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            std::env::temp_dir().join(format!(
                "nightshift-check-{}-{}-{}",
                std::process::id(),
                Utc::now().timestamp_millis(),
                RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ))
        }
    };
    let work = dir.join("work");
    let state = dir.join("state");
    for d in [&work, &state] {
        std::fs::create_dir_all(d).map_err(io(format!("cannot create {}", d.display())))?;
    }
    let binary = options
        .emulator
        .clone()
        .unwrap_or_else(|| target_dir(root, false).join("nightshift"));
    if options.build {
        let mut binaries = targets.binaries.clone();
        if options.emulator.is_none() {
            binaries.push("nightshift".into());
        }
        build_functions(root, &binaries, false).await?;
    }
    let mut args = vec![
        "--port".to_string(),
        port.to_string(),
        "up".into(),
        "--template".into(),
        options.template.display().to_string(),
        "--env-file".into(),
        options
            .env_file
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.display().to_string()),
        "--state-dir".into(),
        state.display().to_string(),
        "--work-dir".into(),
        work.display().to_string(),
        "--clock".into(),
        "manual".into(),
        "--no-build".into(),
        "--fault-seed".into(),
        options.seed.to_string(),
    ];
    let spec = plan.spec();
    if !spec.is_empty() {
        args.push("--faults".into());
        args.push(spec);
    }
    let launcher = Launcher {
        binary,
        root: root.clone(),
        args,
        log: dir.join("emulator.log"),
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let jobs = plan_jobs(
        options.jobs,
        options.bad_share,
        options.seed,
        options.clock_start,
    );
    // Inventory adjustments through the FIFO queue, one invalid one when jobs may be bad.
    let adjustments = match &targets.inventory {
        Some(_) if options.skus > 0 => plan_adjustments(
            options.skus,
            options.adjustments_per_sku,
            options.seed,
            options.bad_share > 0.0,
            options.clock_start,
        ),
        _ => Vec::new(),
    };
    info!(jobs = jobs.len(), adjustments = adjustments.len(), faults = %plan.describe(), dir = %dir.display(), "check starting");

    let store = work.join(&targets.store);
    let claim_bound = targets.longest_timeout * 2 + Duration::from_secs(15);
    let mut clock = options.clock_start;
    let mut kills_left = plan.sigkills;
    let mut restarts = 0;
    let mut emulator = launcher.start(clock).await?;

    // The first kill lands while the first half of the jobs is being processed; the second
    // half goes to the restarted emulator.
    let first = if kills_left > 0 {
        jobs.len().div_ceil(2)
    } else {
        jobs.len()
    };
    for job in &jobs[..first] {
        emulator
            .client
            .send(&targets.jobs_queue, &job.body)
            .await
            .map_err(|e| launcher.lost(e))?;
    }
    // The adjustments go before the first kill, so a restart lands on groups in flight.
    if let Some((queue, _)) = &targets.inventory {
        for a in &adjustments {
            let request = crate::control::SendRequest {
                queue: queue.clone(),
                body: a.body.clone(),
                group_id: Some(a.sku.clone()),
                dedup_id: Some(a.id.clone()),
            };
            emulator
                .client
                .send_message(&request)
                .await
                .map_err(|e| launcher.lost(e))?;
        }
    }
    if kills_left > 0 {
        emulator
            .kill_when_busy(Duration::from_secs(10), &store, &mut clock)
            .await?;
        kills_left -= 1;
        restarts += 1;
        emulator = launcher.start(clock).await?;
        for job in &jobs[first..] {
            emulator
                .client
                .send(&targets.jobs_queue, &job.body)
                .await
                .map_err(|e| launcher.lost(e))?;
        }
    }

    let step = human(options.step);
    let max_steps = (options.max_virtual.as_secs() / options.step.as_secs().max(1)).max(1);
    let mut settled = false;
    for n in 0..max_steps {
        if started.elapsed() > options.max_real {
            return Err(CheckError::Bound(format!(
                "not settled after {:?} of real time (run files: {})",
                options.max_real,
                dir.display()
            )));
        }
        wait_for_claims(&store, claim_bound).await?;
        // Further kills land during the first settling steps, while retries are running.
        if kills_left > 0 && n % 2 == 1 {
            let client = ControlClient::new(&launcher.endpoint);
            let by = step.clone();
            let advancing = tokio::spawn(async move { client.advance(&by).await });
            emulator
                .kill_when_busy(Duration::from_secs(5), &store, &mut clock)
                .await?;
            // The advance dies with the emulator; its error is expected.
            let _ = tokio::time::timeout(Duration::from_secs(5), advancing).await;
            kills_left -= 1;
            restarts += 1;
            emulator = launcher.start(clock).await?;
            continue;
        }
        match emulator.client.advance(&step).await {
            Ok(_) => {}
            // `Emulator::advance` fails this way when waiting out a batching window carried
            // the clock past its target: everything up to there ran, which is all a step needs.
            Err(ControlError::Remote(message)) if message.contains("cannot go back") => {}
            Err(e) => return Err(launcher.lost(e)),
        }
        let status = emulator
            .client
            .status()
            .await
            .map_err(|e| launcher.lost(e))?;
        clock = status.now;
        if let Some(progress) = &options.progress {
            let pending: usize = status
                .queues
                .iter()
                .filter(|q| q.name == targets.jobs_queue)
                .map(|q| q.visible + q.in_flight + q.delayed)
                .sum();
            let note = format!("clock {}", clock.format("%H:%M"));
            progress.set(jobs.len().saturating_sub(pending), &note);
        }
        if n % 30 == 29 {
            info!(now = %clock, "still settling");
        }
        if kills_left == 0 && targets.settled(&status) {
            settled = true;
            break;
        }
    }
    if let Some(progress) = &options.progress {
        progress.finish();
    }
    if !settled {
        warn!(max_virtual = ?options.max_virtual, "not settled within the virtual time bound");
    }
    emulator.stop().await;

    // Read what the run left behind: the journal, the store, the outbox.
    let (engine_clock, _) = crate::clock::manual(clock);
    let engine = SqsEngine::open(state.join("sqs"), engine_clock)?;
    let mut pending = 0;
    for queue in [&targets.jobs_queue, &targets.emails_queue] {
        let stats = engine.queue_stats(queue)?;
        pending += stats.visible + stats.in_flight + stats.delayed;
    }
    let (inventory_dlq, inventory_pending) = match &targets.inventory {
        Some((queue, dlq)) => {
            let stats = engine.queue_stats(queue)?;
            (
                dead_letters(&engine, dlq)?,
                stats.visible + stats.in_flight + stats.delayed,
            )
        }
        None => (Vec::new(), 0),
    };
    let observed = Observed {
        outcomes: read_outcomes(&store)?,
        outbox: read_outbox(&work.join(&targets.outbox))?,
        jobs_dlq: dead_letters(&engine, &targets.jobs_dlq)?,
        emails_dlq: dead_letters(&engine, &targets.emails_dlq)?,
        pending,
        sequences: read_sequences(&store)?,
        inventory_dlq,
        inventory_pending,
    };
    engine.shutdown()?;
    drop(engine);
    let mut verdict = verify(&jobs, &observed);
    verify_adjustments(&adjustments, &observed, &mut verdict);
    let log = std::fs::read_to_string(&launcher.log).unwrap_or_default();
    let mut injected = count_injected(&log);
    if restarts > 0 {
        injected.insert("sigkill".into(), u64::from(restarts));
    }
    let kept = options.keep || !verdict.passed();
    if !kept {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let count = |marker: &str| log.lines().filter(|l| l.contains(marker)).count() as u64;
    Ok(CheckReport {
        verdict,
        injected,
        skipped_jobs: count("duplicate job skipped"),
        skipped_emails: count("duplicate email skipped"),
        faults: plan.describe(),
        restarts,
        virtual_elapsed: (clock - options.clock_start).to_std().unwrap_or_default(),
        real_elapsed: started.elapsed(),
        dir,
        kept,
    })
}
