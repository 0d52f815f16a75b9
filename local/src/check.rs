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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use nightshift_contract::record::ERROR_ATTRIBUTE;

use crate::control::{ControlClient, ControlError};
use crate::emulator::{EmulatorError, Status, build_functions, target_dir};
use crate::faults::{FaultError, FaultPlan};
use crate::sqs::{SqsEngine, SqsError};
use crate::template::{LoadOptions, Template, TemplateError};

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
        }
    }
}

// ------------------------------------------------------------------------------- the jobs

/// How a malformed job is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// The body is not JSON.
    BrokenJson,
    /// A well-formed envelope of a kind nobody handles.
    UnknownKind,
    /// A known kind whose payload fails validation.
    InvalidPayload,
}

/// What a job is expected to become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A valid job: a `succeeded` outcome and this email.
    Valid {
        /// The request id of its email.
        email_id: String,
    },
    /// A malformed job: the jobs DLQ.
    Malformed(Malformation),
}

/// One job the checker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedJob {
    /// The job id.
    pub id: String,
    /// The message body.
    pub body: String,
    /// What should become of it.
    pub expect: Expect,
}

/// The `jobs` jobs of a run: `round(jobs × bad_share)` malformed ones at seeded positions
/// (cycling through broken JSON, unknown kind, invalid payload), the others `order.placed`
/// and `user.signup` at random.
pub fn plan_jobs(
    jobs: usize,
    bad_share: f64,
    seed: u64,
    submitted_at: DateTime<Utc>,
) -> Vec<PlannedJob> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bad = ((jobs as f64) * bad_share.clamp(0.0, 1.0)).round() as usize;
    let mut order: Vec<usize> = (0..jobs).collect();
    rng.shuffle(&mut order);
    let bad_at: BTreeMap<usize, usize> = order[..bad]
        .iter()
        .enumerate()
        .map(|(n, i)| (*i, n))
        .collect();
    let at = submitted_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (0..jobs)
        .map(|i| {
            let id = format!("chk-{seed}-{i:05}");
            let envelope = |kind: &str, payload: serde_json::Value| {
                json!({"v": 1, "id": id, "kind": kind, "payload": payload, "submitted_at": at})
                    .to_string()
            };
            if let Some(n) = bad_at.get(&i) {
                let (malformation, body) = match n % 3 {
                    0 => {
                        let whole = envelope("order.placed", json!({"order_id": format!("o-{i}")}));
                        (Malformation::BrokenJson, whole[..whole.len() - 7].to_string())
                    }
                    1 => (
                        Malformation::UnknownKind,
                        envelope("invoice.paid", json!({"invoice": i})),
                    ),
                    _ => (
                        Malformation::InvalidPayload,
                        envelope(
                            "user.signup",
                            json!({"user_id": format!("u-{i}"), "email": "not-an-address", "name": "X"}),
                        ),
                    ),
                };
                return PlannedJob {
                    id,
                    body,
                    expect: Expect::Malformed(malformation),
                };
            }
            if rng.bool() {
                let quantity = rng.u32(1..=5);
                let body = envelope(
                    "order.placed",
                    json!({
                        "order_id": format!("o-{i}"),
                        "customer_email": format!("customer{i}@example.com"),
                        "customer_name": format!("Customer {i}"),
                        "currency": "EUR",
                        "items": [{"sku": format!("SKU-{}", rng.u32(1..100)), "quantity": quantity,
                                   "unit_price_cents": rng.u64(100..10_000)}],
                    }),
                );
                PlannedJob {
                    expect: Expect::Valid {
                        email_id: format!("order-confirmation-{id}"),
                    },
                    id,
                    body,
                }
            } else {
                let body = envelope(
                    "user.signup",
                    json!({"user_id": format!("u-{i}"), "email": format!("user{i}@example.com"),
                           "name": format!("User {i}")}),
                );
                PlannedJob {
                    expect: Expect::Valid {
                        email_id: format!("welcome-{id}"),
                    },
                    id,
                    body,
                }
            }
        })
        .collect()
}

// ------------------------------------------------------------------------ what was observed

/// A message found in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its body.
    pub body: String,
    /// Why it is there: the function's `nightshift-error`, or SQS's redrive after
    /// `maxReceiveCount`; `None` when nothing says.
    pub reason: Option<String>,
}

/// What the run left behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Job outcomes by job id: `succeeded` or `failed`.
    pub outcomes: HashMap<String, String>,
    /// The request id of each `.eml` in the outbox (`None` when it has no readable header).
    pub outbox: Vec<Option<String>>,
    /// The jobs DLQ.
    pub jobs_dlq: Vec<DeadLetter>,
    /// The emails DLQ.
    pub emails_dlq: Vec<DeadLetter>,
    /// Messages still in the jobs or emails queue (visible, in flight or delayed).
    pub pending: usize,
}

/// The verdict on a run's artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Jobs sent.
    pub sent: usize,
    /// Valid jobs among them.
    pub valid: usize,
    /// Malformed jobs among them.
    pub malformed: usize,
    /// Valid jobs with a `succeeded` outcome.
    pub processed: usize,
    /// Jobs (valid or malformed) with at least one copy in the jobs DLQ.
    pub dead_lettered: usize,
    /// Valid jobs in the jobs DLQ without an outcome: retries exhausted.
    pub exhausted: usize,
    /// Emails that processed jobs should have sent.
    pub emails_expected: usize,
    /// Distinct expected request ids in the outbox.
    pub emails_sent: usize,
    /// Expected emails not sent but in the emails DLQ.
    pub emails_dead_lettered: usize,
    /// Jobs or emails in neither their place nor a DLQ.
    pub lost: usize,
    /// Emails sent more than once (each extra send counts one).
    pub duplicates: usize,
    /// Extra copies of a message in a DLQ: at-least-once delivery of a dead letter (a batch
    /// that dead-lettered a record then failed as a whole), harmless.
    pub dlq_copies: usize,
    /// Every violation, one line each.
    pub problems: Vec<String>,
}

impl Verdict {
    /// No loss, no duplicate, nothing else wrong.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.problems.is_empty()
    }

    /// The one summary line: `sent=… processed=… dead_lettered=… lost=… duplicates=…`.
    pub fn summary(&self) -> String {
        format!(
            "sent={} processed={} dead_lettered={} lost={} duplicates={}",
            self.sent, self.processed, self.dead_lettered, self.lost, self.duplicates
        )
    }
}

fn email_id_of(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

/// Judges what a run left behind against the jobs it sent.
pub fn verify(jobs: &[PlannedJob], observed: &Observed) -> Verdict {
    let mut v = Verdict {
        sent: jobs.len(),
        ..Verdict::default()
    };
    let mut jobs_dlq: HashMap<&str, Vec<&DeadLetter>> = HashMap::new();
    for d in &observed.jobs_dlq {
        jobs_dlq.entry(d.body.as_str()).or_default().push(d);
    }
    let mut emails_dlq: HashMap<String, Vec<&DeadLetter>> = HashMap::new();
    for d in &observed.emails_dlq {
        let id = email_id_of(&d.body).unwrap_or_else(|| d.body.clone());
        emails_dlq.entry(id).or_default().push(d);
    }
    let mut outbox: HashMap<&str, usize> = HashMap::new();
    for id in &observed.outbox {
        match id {
            Some(id) => *outbox.entry(id.as_str()).or_default() += 1,
            None => v
                .problems
                .push("an outbox file has no X-Nightshift-Request-Id header".into()),
        }
    }
    let mut expected_emails = BTreeSet::new();
    let mut known_bodies = BTreeSet::new();
    for job in jobs {
        known_bodies.insert(job.body.as_str());
        let copies = jobs_dlq
            .get(job.body.as_str())
            .map_or(&[][..], Vec::as_slice);
        v.dlq_copies += copies.len().saturating_sub(1);
        if copies.iter().any(|c| c.reason.is_none()) {
            v.problems.push(format!(
                "job {} is in the jobs DLQ without a reason",
                job.id
            ));
        }
        if !copies.is_empty() {
            v.dead_lettered += 1;
        }
        let outcome = observed.outcomes.get(&job.id).map(String::as_str);
        match &job.expect {
            Expect::Valid { email_id } => {
                v.valid += 1;
                expected_emails.insert(email_id.as_str());
                let processed = outcome == Some("succeeded");
                if processed {
                    v.processed += 1;
                } else if let Some(other) = outcome {
                    v.problems
                        .push(format!("valid job {} has outcome {other}", job.id));
                }
                if !processed && !copies.is_empty() {
                    v.exhausted += 1;
                }
                if !processed && copies.is_empty() {
                    v.lost += 1;
                    v.problems.push(format!(
                        "job {} is lost: no succeeded outcome and not in the jobs DLQ",
                        job.id
                    ));
                }
                let sent = outbox.get(email_id.as_str()).copied().unwrap_or(0);
                let dead = emails_dlq.get(email_id).map_or(0, Vec::len);
                if sent > 1 {
                    v.duplicates += sent - 1;
                    v.problems
                        .push(format!("email {email_id} was sent {sent} times"));
                }
                if sent > 0 {
                    v.emails_sent += 1;
                }
                if processed {
                    v.emails_expected += 1;
                    if sent == 0 && dead > 0 {
                        v.emails_dead_lettered += 1;
                    }
                    if sent == 0 && dead == 0 {
                        v.lost += 1;
                        v.problems.push(format!(
                            "email {email_id} of processed job {} is lost: not in the outbox nor the emails DLQ",
                            job.id
                        ));
                    }
                }
            }
            Expect::Malformed(kind) => {
                v.malformed += 1;
                if copies.is_empty() {
                    v.lost += 1;
                    v.problems.push(format!(
                        "malformed job {} ({kind:?}) is lost: not in the jobs DLQ",
                        job.id
                    ));
                }
                if outcome == Some("succeeded") {
                    v.problems
                        .push(format!("malformed job {} succeeded", job.id));
                }
            }
        }
    }
    for (id, copies) in &emails_dlq {
        v.dlq_copies += copies.len().saturating_sub(1);
        if copies.iter().any(|c| c.reason.is_none()) {
            v.problems
                .push(format!("email {id} is in the emails DLQ without a reason"));
        }
        if !expected_emails.contains(id.as_str()) {
            v.problems
                .push(format!("unexpected email {id} in the emails DLQ"));
        }
    }
    for (id, count) in &outbox {
        if !expected_emails.contains(id) {
            v.problems
                .push(format!("unexpected email {id} in the outbox ({count}x)"));
        }
    }
    for body in jobs_dlq.keys() {
        if !known_bodies.contains(body) {
            v.problems
                .push(format!("unexpected message in the jobs DLQ: {body}"));
        }
    }
    if observed.pending > 0 {
        v.problems.push(format!(
            "{} messages are still in the jobs and emails queues",
            observed.pending
        ));
    }
    v
}

/// Counts `injected fault: <name>` lines by name (the functions and the invoker wrapper log
/// one per injected fault).
pub fn count_injected(log: &str) -> BTreeMap<String, u64> {
    let marker = "injected fault: ";
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        if let Some(at) = line.find(marker) {
            let name: String = line[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if !name.is_empty() {
                *counts.entry(name).or_insert(0) += 1;
            }
        }
    }
    counts
}

// ------------------------------------------------------------------------------- the report

/// The result of a check run.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The verdict on the artifacts.
    pub verdict: Verdict,
    /// Faults injected, by name, as logged (plus `sigkill`).
    pub injected: BTreeMap<String, u64>,
    /// Redeliveries the functions' idempotency records turned away, as logged: jobs that
    /// were done already, and emails sent already (duplicate requests included).
    pub skipped_jobs: u64,
    /// See [`CheckReport::skipped_jobs`].
    pub skipped_emails: u64,
    /// The fault plan, as one line.
    pub faults: String,
    /// Emulator restarts after SIGKILL.
    pub restarts: u32,
    /// Virtual time the run took on the manual clock.
    pub virtual_elapsed: Duration,
    /// Real time the run took.
    pub real_elapsed: Duration,
    /// Where the run's files are (removed after a passing run unless kept).
    pub dir: PathBuf,
    /// Whether `dir` still exists.
    pub kept: bool,
}

impl CheckReport {
    /// True when nothing was lost or duplicated and nothing else is wrong.
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        self.verdict.summary()
    }

    /// Everything but the summary line: counts, faults, time, problems.
    pub fn details(&self) -> String {
        let v = &self.verdict;
        let injected: Vec<String> = self
            .injected
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let mut out = format!(
            "jobs: {} valid, {} malformed; processed {}, exhausted {}, dead-lettered {}\n\
             emails: {} expected, {} sent, {} dead-lettered; {} extra DLQ copies\n\
             faults: {}\ninjected: {}\nidempotency: {} redelivered jobs and {} emails skipped as done\n\
             emulator restarts: {}; virtual time {}s; real time {:.1}s\n",
            v.valid,
            v.malformed,
            v.processed,
            v.exhausted,
            v.dead_lettered,
            v.emails_expected,
            v.emails_sent,
            v.emails_dead_lettered,
            v.dlq_copies,
            self.faults,
            if injected.is_empty() {
                "none".to_string()
            } else {
                injected.join(" ")
            },
            self.skipped_jobs,
            self.skipped_emails,
            self.restarts,
            self.virtual_elapsed.as_secs(),
            self.real_elapsed.as_secs_f64(),
        );
        const SHOWN: usize = 20;
        for p in v.problems.iter().take(SHOWN) {
            let _ = writeln!(out, "problem: {p}");
        }
        if v.problems.len() > SHOWN {
            let _ = writeln!(out, "... and {} more problems", v.problems.len() - SHOWN);
        }
        if self.kept {
            let _ = writeln!(out, "run files: {}", self.dir.display());
        }
        out
    }
}

// ------------------------------------------------------------------------------ the targets

/// What the check needs from the template.
#[derive(Debug, Clone)]
struct Targets {
    jobs_queue: String,
    jobs_dlq: String,
    emails_queue: String,
    emails_dlq: String,
    /// The store, relative to the functions' work dir.
    store: PathBuf,
    /// The outbox, relative to the functions' work dir.
    outbox: PathBuf,
    binaries: Vec<String>,
    /// The longest function timeout: how long a dead invocation's claim can live.
    longest_timeout: Duration,
}

impl Targets {
    fn of(template: &Template) -> Result<Targets, CheckError> {
        let function = |binary: &str| {
            template
                .functions
                .values()
                .find(|f| f.binary == binary)
                .ok_or_else(|| CheckError::Template(format!("no function runs {binary}")))
        };
        let queues_of = |logical_id: &str| -> Result<(String, String), CheckError> {
            let source = template
                .event_sources
                .iter()
                .find(|s| s.function == logical_id)
                .ok_or_else(|| CheckError::Template(format!("{logical_id} has no SQS source")))?;
            let queue = template
                .queue(&source.queue)
                .ok_or_else(|| CheckError::Template(format!("no queue {}", source.queue)))?;
            let dlq = queue.redrive.as_ref().ok_or_else(|| {
                CheckError::Template(format!("{} has no dead-letter queue", queue.name))
            })?;
            Ok((queue.name.clone(), dlq.dlq_name.clone()))
        };
        let local = |f: &crate::template::FunctionDef, var: &str, scheme: &str| {
            f.env
                .get(var)
                .and_then(|v| v.strip_prefix(scheme))
                .map(PathBuf::from)
                .ok_or_else(|| {
                    CheckError::Template(format!(
                        "{} needs {var}={scheme}… (the local adapters; see infra/env.local.json)",
                        f.name
                    ))
                })
        };
        let qp = function("queue-processor")?;
        let es = function("email-sender")?;
        let (jobs_queue, jobs_dlq) = queues_of(&qp.logical_id)?;
        let (emails_queue, emails_dlq) = queues_of(&es.logical_id)?;
        let store = local(qp, "STORE_URL", "sqlite://")?;
        if local(es, "STORE_URL", "sqlite://")? != store {
            return Err(CheckError::Template(
                "queue-processor and email-sender must share one store".into(),
            ));
        }
        Ok(Targets {
            jobs_queue,
            jobs_dlq,
            emails_queue,
            emails_dlq,
            store,
            outbox: local(es, "MAIL_URL", "file://")?,
            binaries: template
                .functions
                .values()
                .map(|f| f.binary.clone())
                .collect(),
            longest_timeout: template
                .functions
                .values()
                .map(|f| Duration::from_secs(f.timeout_s.into()))
                .max()
                .unwrap_or_default(),
        })
    }

    fn settled(&self, status: &Status) -> bool {
        let queues_empty = status
            .queues
            .iter()
            .filter(|q| q.name == self.jobs_queue || q.name == self.emails_queue)
            .all(|q| q.visible == 0 && q.in_flight == 0 && q.delayed == 0);
        queues_empty && status.functions.iter().all(|f| f.busy == 0)
    }
}

// ------------------------------------------------------------------------ the store, read-only

fn open_store(path: &Path) -> Result<Option<rusqlite::Connection>, CheckError> {
    use rusqlite::OpenFlags;
    if !path.exists() {
        return Ok(None);
    }
    let err = |e: rusqlite::Error| CheckError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    // Read-only; a WAL database whose -shm is gone may refuse that, so fall back to a
    // connection that refuses writes at the SQL level.
    let conn = match rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) if conn.query_row("SELECT 1", [], |_| Ok(())).is_ok() => conn,
        _ => {
            let conn = rusqlite::Connection::open(path).map_err(err)?;
            conn.execute_batch("PRAGMA query_only = ON;").map_err(err)?;
            conn
        }
    };
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    Ok(Some(conn))
}

fn has_table(conn: &rusqlite::Connection, table: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The latest expiry of an in-progress idempotency claim that is still live, in real time.
fn live_claims_until(path: &Path) -> Result<Option<DateTime<Utc>>, CheckError> {
    let Some(conn) = open_store(path)? else {
        return Ok(None);
    };
    let err = |e: rusqlite::Error| CheckError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if !has_table(&conn, "idempotency").map_err(err)? {
        return Ok(None);
    }
    let now = Utc::now().timestamp_millis();
    let until: Option<i64> = conn
        .query_row(
            "SELECT max(expires_at_ms) FROM idempotency WHERE result IS NULL AND expires_at_ms > ?1",
            [now],
            |row| row.get(0),
        )
        .map_err(err)?;
    Ok(until.and_then(DateTime::from_timestamp_millis))
}

fn read_outcomes(path: &Path) -> Result<HashMap<String, String>, CheckError> {
    let Some(conn) = open_store(path)? else {
        return Ok(HashMap::new());
    };
    let err = |e: rusqlite::Error| CheckError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if !has_table(&conn, "outcomes").map_err(err)? {
        return Ok(HashMap::new());
    }
    let mut statement = conn
        .prepare("SELECT job_id, status FROM outcomes")
        .map_err(err)?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

/// Waits, in real time, until no live in-progress claim is left (see the module docs).
async fn wait_for_claims(path: &Path, bound: Duration) -> Result<(), CheckError> {
    let give_up = Instant::now() + bound;
    loop {
        let Some(until) = live_claims_until(path)? else {
            return Ok(());
        };
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CheckError::Bound(format!(
                "idempotency claims still in progress until {until} after waiting {bound:?}"
            )));
        }
        let wait = (until - Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_add(Duration::from_millis(100))
            .min(left);
        info!(
            wait_ms = wait.as_millis() as u64,
            "waiting for the claims of dead invocations to expire"
        );
        tokio::time::sleep(wait).await;
    }
}

/// The request id of each `.eml` file in `dir`.
fn read_outbox(dir: &Path) -> Result<Vec<Option<String>>, CheckError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("cannot read {}", dir.display()))(e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(io(format!("cannot read {}", dir.display())))?
            .path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(io(format!("cannot read {}", path.display())))?;
        ids.push(request_id_of(&text));
    }
    Ok(ids)
}

/// The `X-Nightshift-Request-Id` header of an email.
pub fn request_id_of(eml: &str) -> Option<String> {
    const HEADER: &str = "x-nightshift-request-id:";
    eml.lines()
        .take_while(|l| !l.trim().is_empty())
        .find(|l| {
            l.len() >= HEADER.len()
                && l.as_bytes()[..HEADER.len()].eq_ignore_ascii_case(HEADER.as_bytes())
        })
        .map(|l| l[HEADER.len()..].trim().to_string())
        .filter(|id| !id.is_empty())
}

// ------------------------------------------------------------------------ the emulator child

/// Starts `nightshift up` processes on one port, journal and work dir.
struct Launcher {
    binary: PathBuf,
    root: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    endpoint: String,
}

/// One running `nightshift up`.
struct Running {
    child: Child,
    client: ControlClient,
}

impl Launcher {
    fn emulator_error(&self, reason: impl Into<String>) -> CheckError {
        CheckError::Emulator {
            reason: reason.into(),
            log: self.log.clone(),
        }
    }

    /// A control call failed: name the log, where the emulator says why.
    fn lost(&self, e: ControlError) -> CheckError {
        self.emulator_error(format!("stopped answering: {e}"))
    }

    async fn start(&self, clock_start: DateTime<Utc>) -> Result<Running, CheckError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io(format!("cannot open {}", self.log.display())))?;
        let err_log = log
            .try_clone()
            .map_err(io(format!("cannot open {}", self.log.display())))?;
        let mut child = Command::new(&self.binary)
            .current_dir(&self.root)
            .args(&self.args)
            .arg("--clock-start")
            .arg(clock_start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("cannot start {}", self.binary.display())))?;
        let client = ControlClient::new(&self.endpoint);
        // Template loading and binding take well under a second; a minute allows for a
        // loaded machine and a port still held by the previous process.
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(exit) = child
                .try_wait()
                .map_err(io("cannot wait for the emulator"))?
            {
                return Err(self.emulator_error(format!("exited at start with {exit}")));
            }
            if client.status().await.is_ok() {
                return Ok(Running { child, client });
            }
            if Instant::now() > give_up {
                return Err(self.emulator_error("did not answer within 60 s of its start"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Running {
    /// SIGKILL once some jobs have had their effects and a function is busy (or after
    /// `wait`), so that the kill lands mid-batch with work done on both sides of it.
    async fn kill_when_busy(
        mut self,
        wait: Duration,
        store: &Path,
        clock: &mut DateTime<Utc>,
    ) -> Result<(), CheckError> {
        let give_up = Instant::now() + wait;
        while Instant::now() < give_up {
            if let Ok(status) = self.client.status().await {
                *clock = status.now;
                let busy = status.functions.iter().any(|f| f.busy > 0);
                if busy && read_outcomes(store).is_ok_and(|o| !o.is_empty()) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.child
            .start_kill()
            .map_err(io("cannot kill the emulator"))?;
        self.child
            .wait()
            .await
            .map_err(io("cannot wait for the emulator"))?;
        warn!(at = %clock, "emulator killed with SIGKILL");
        Ok(())
    }

    /// Ctrl-C (SIGINT), then SIGKILL if it has not stopped within 30 s.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGINT);
            }
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            warn!("the emulator did not stop on SIGINT, killing it");
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

fn free_port() -> Result<u16, CheckError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io("cannot find a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("cannot find a free port"))?
        .port())
}

fn human(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn dead_letters(engine: &SqsEngine, queue: &str) -> Result<Vec<DeadLetter>, CheckError> {
    Ok(engine
        .peek_messages(queue, usize::MAX)?
        .into_iter()
        .map(|m| {
            let reason = m
                .message_attributes
                .get(ERROR_ATTRIBUTE)
                .and_then(|v| v.string_value.clone())
                .or_else(|| {
                    m.dead_letter_source_arn.as_ref().map(|from| {
                        format!(
                            "maxReceiveCount exceeded: received {} times from {from}",
                            m.receive_count
                        )
                    })
                });
            DeadLetter {
                body: m.body,
                reason,
            }
        })
        .collect())
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
        None => std::env::temp_dir().join(format!(
            "nightshift-check-{}-{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        )),
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
    info!(jobs = jobs.len(), faults = %plan.describe(), dir = %dir.display(), "check starting");

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
        if n % 30 == 29 {
            info!(now = %clock, "still settling");
        }
        if kills_left == 0 && targets.settled(&status) {
            settled = true;
            break;
        }
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
    let observed = Observed {
        outcomes: read_outcomes(&store)?,
        outbox: read_outbox(&work.join(&targets.outbox))?,
        jobs_dlq: dead_letters(&engine, &targets.jobs_dlq)?,
        emails_dlq: dead_letters(&engine, &targets.emails_dlq)?,
        pending,
    };
    engine.shutdown()?;
    drop(engine);
    let verdict = verify(&jobs, &observed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-03-02T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn plans_are_seeded_and_mixed() {
        let jobs = plan_jobs(60, 0.25, 9, at());
        assert_eq!(jobs, plan_jobs(60, 0.25, 9, at()));
        assert_ne!(jobs, plan_jobs(60, 0.25, 10, at()));
        let malformed: Vec<Malformation> = jobs
            .iter()
            .filter_map(|j| match j.expect {
                Expect::Malformed(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(malformed.len(), 15);
        for kind in [
            Malformation::BrokenJson,
            Malformation::UnknownKind,
            Malformation::InvalidPayload,
        ] {
            assert_eq!(malformed.iter().filter(|m| **m == kind).count(), 5);
        }
        for job in &jobs {
            let parsed = serde_json::from_str::<serde_json::Value>(&job.body);
            match &job.expect {
                Expect::Malformed(Malformation::BrokenJson) => assert!(parsed.is_err()),
                Expect::Valid { email_id } => {
                    let body = parsed.unwrap();
                    assert_eq!(body["id"], job.id.as_str());
                    assert!(email_id.ends_with(&job.id));
                }
                Expect::Malformed(_) => assert!(parsed.is_ok()),
            }
        }
        let bodies: BTreeSet<&str> = jobs.iter().map(|j| j.body.as_str()).collect();
        assert_eq!(bodies.len(), 60, "bodies identify jobs in the DLQ");
    }

    fn dead(body: &str, reason: Option<&str>) -> DeadLetter {
        DeadLetter {
            body: body.into(),
            reason: reason.map(str::to_string),
        }
    }

    /// A clean run of `jobs`: valid ones processed with one email each, malformed ones
    /// dead-lettered with a reason.
    fn clean(jobs: &[PlannedJob]) -> Observed {
        let mut o = Observed::default();
        for j in jobs {
            match &j.expect {
                Expect::Valid { email_id } => {
                    o.outcomes.insert(j.id.clone(), "succeeded".into());
                    o.outbox.push(Some(email_id.clone()));
                }
                Expect::Malformed(_) => o.jobs_dlq.push(dead(&j.body, Some("malformed job"))),
            }
        }
        o
    }

    #[test]
    fn a_clean_run_passes() {
        let jobs = plan_jobs(20, 0.2, 1, at());
        let v = verify(&jobs, &clean(&jobs));
        assert!(v.passed(), "{:?}", v.problems);
        assert_eq!(
            v.summary(),
            "sent=20 processed=16 dead_lettered=4 lost=0 duplicates=0"
        );
        assert_eq!((v.emails_expected, v.emails_sent), (16, 16));
    }

    #[test]
    fn duplicates_and_losses_are_found() {
        let jobs = plan_jobs(20, 0.2, 1, at());
        let valid: Vec<&PlannedJob> = jobs
            .iter()
            .filter(|j| matches!(j.expect, Expect::Valid { .. }))
            .collect();
        let mut o = clean(&jobs);
        // One email twice, one job gone, one malformed job gone, one email gone.
        o.outbox.push(o.outbox[0].clone());
        o.outcomes.remove(&valid[1].id);
        let Expect::Valid { email_id } = &valid[2].expect else {
            unreachable!()
        };
        o.outbox
            .retain(|id| id.as_deref() != Some(email_id.as_str()));
        o.jobs_dlq.remove(0);
        let v = verify(&jobs, &o);
        assert!(!v.passed());
        assert_eq!(v.duplicates, 1);
        assert_eq!(v.lost, 3, "{:?}", v.problems);
        assert_eq!(
            v.summary(),
            "sent=20 processed=15 dead_lettered=3 lost=3 duplicates=1"
        );
        assert!(v.problems.iter().any(|p| p.contains("was sent 2 times")));
    }

    #[test]
    fn exhausted_and_dead_lettered_work_is_accounted_for() {
        let jobs = plan_jobs(10, 0.0, 2, at());
        let mut o = clean(&jobs);
        // Job 0 exhausted its retries: no outcome, in the DLQ by SQS redrive, email never sent.
        o.outcomes.remove(&jobs[0].id);
        let Expect::Valid { email_id: e0 } = &jobs[0].expect else {
            unreachable!()
        };
        o.outbox.retain(|id| id.as_deref() != Some(e0.as_str()));
        o.jobs_dlq
            .push(dead(&jobs[0].body, Some("maxReceiveCount exceeded")));
        // Job 1's email exhausted its retries; job 2 was dead-lettered twice.
        let Expect::Valid { email_id: e1 } = &jobs[1].expect else {
            unreachable!()
        };
        o.outbox.retain(|id| id.as_deref() != Some(e1.as_str()));
        o.emails_dlq.push(dead(
            &json!({"v": 1, "id": e1, "to": ["a@example.com"], "subject": "s", "body": "b"})
                .to_string(),
            Some("throttled"),
        ));
        o.jobs_dlq.push(dead(&jobs[2].body, Some("x")));
        o.jobs_dlq.push(dead(&jobs[2].body, Some("x")));
        let v = verify(&jobs, &o);
        assert!(v.passed(), "{:?}", v.problems);
        assert_eq!((v.processed, v.exhausted, v.dead_lettered), (9, 1, 2));
        assert_eq!((v.emails_expected, v.emails_dead_lettered), (9, 1));
        assert_eq!(v.dlq_copies, 1);
        // A dead letter without a reason and leftovers fail the run.
        o.jobs_dlq.push(dead(&jobs[3].body, None));
        o.pending = 2;
        let v = verify(&jobs, &o);
        assert!(!v.passed());
        assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
    }

    #[test]
    fn reads_request_ids_and_injected_faults() {
        let eml = "From: a@example.com\r\nx-nightshift-request-id: welcome-1\r\nSubject: s\r\n\r\nX-Nightshift-Request-Id: no\r\n";
        assert_eq!(request_id_of(eml).as_deref(), Some("welcome-1"));
        assert_eq!(request_id_of("Subject: s\r\n\r\nbody"), None);
        let log = "INFO x: injected fault: crash\n{\"message\":\"injected fault: crash-after-send\"}\nWARN injected fault: malformed-response function=f\nnothing\n";
        let counts = count_injected(log);
        assert_eq!(counts["crash"], 1);
        assert_eq!(counts["crash-after-send"], 1);
        assert_eq!(counts["malformed-response"], 1);
        assert_eq!(counts.len(), 3);
    }
}
