//! daily-report: the schedule-triggered Lambda that builds yesterday's report, stores it and
//! emails it.
//!
//! Input: the EventBridge Scheduler's plain JSON (`{"scheduled_time": "…", "date"?: "…",
//! "force"?: true}`) or the legacy rule envelope (`"detail-type": "Scheduled Event"`, `time`).
//! The report date is `date` when given, else the day before the scheduled time in
//! `REPORT_TIME_ZONE`; the system clock is only a fallback for an event that carries no time.
//! The date is the idempotency key: a retried run writes nothing twice and sends one email.
//!
//! What makes a report complete and never missing:
//! - a job lands in the report of the local day its outcome was recorded
//!   ([`nightshift::contracts::JobOutcome::finished_at`]), so late, retried, redriven and
//!   exhausted jobs are all counted, each once; a report is only made once its day has ended;
//! - every run backfills the missing reports of the [`DEFAULT_LOOKBACK_DAYS`] days before its
//!   date (a night the schedule skipped or whose run failed on every retry), once the system
//!   has made a report in that window or the day has outcomes, so a fresh deployment does not
//!   mail a week of empty reports;
//! - `{"date": "YYYY-MM-DD", "force": true}` regenerates a report that was made already.
//!
//! Scheduler invokes this function asynchronously: an error is retried by Lambda (the
//! function's `EventInvokeConfig`, two retries by default), then the event goes to the
//! on-failure destination, never to the schedule's dead-letter queue.
//!
//! Each invocation flushes one CloudWatch EMF document ([`nightshift::metrics`]) with the
//! dimension `Function`, on the error path too: the counts `ReportsGenerated` (reports built,
//! forced and backfilled ones included), `ReportsBackfilled` and `ReportRows` (the job
//! outcomes the reports built read), recorded every invocation (0 included), and
//! `ReportDuration` (each report's build, in milliseconds).
//!
//! Layout: [`report`] is the pure aggregation and rendering; this file wires the ports.

pub mod report;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use lambda_runtime::LambdaEvent;
use nightshift::config::{ConfigError, Env};
use nightshift::contracts::{
    ContractError, EmailRequest, JobOutcome, ReportInput, validate_address,
};
use nightshift::idempotency::{Begin, Idempotency, Ticket};
use nightshift::metrics::{Emitter, Metrics};
use nightshift::ports::{Blobs, Clock, Queue, Retryable, SendOptions, Store, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use crate::report::{QueueCount, aggregate, to_csv, to_html};

/// Everything the handler needs, built once per instance.
pub struct Deps {
    /// Outcomes and idempotency records.
    pub store: Arc<dyn Store>,
    /// Where the report files go.
    pub blobs: Arc<dyn Blobs>,
    /// Where the report email is enqueued.
    pub queue: Arc<dyn Queue>,
    /// Fallback time when the event has none.
    pub clock: Arc<dyn Clock>,
    /// Claims on report dates.
    pub idempotency: Idempotency,
    /// The zone days are taken in.
    pub time_zone: Tz,
    /// Who gets the report.
    pub recipients: Vec<String>,
    /// URL of the emails queue.
    pub emails_queue_url: String,
    /// Days before the report date that each run checks for missing reports.
    pub lookback_days: u32,
    /// Dead-letter queues whose depth each report shows (`REPORT_DLQ_URLS`): a record SQS
    /// dead-letters after its function crashed or timed out on the last receive has no job
    /// outcome, so a report counts it only here.
    pub dead_letter_queues: Vec<String>,
    /// Where each invocation's metrics go (crate docs).
    pub metrics: Emitter,
}

/// The function's name in its metrics (the `Function` dimension).
pub const FUNCTION: &str = "daily-report";

/// The counts every invocation records (0 included), so each has a data point.
const COUNTS: [&str; 3] = ["ReportsGenerated", "ReportsBackfilled", "ReportRows"];

/// Days each run looks back for missing reports (`REPORT_LOOKBACK_DAYS`).
pub const DEFAULT_LOOKBACK_DAYS: u32 = 7;
/// Most days `REPORT_LOOKBACK_DAYS` may be: the report claims must outlive the look-back.
pub const MAX_LOOKBACK_DAYS: u32 = 12;

impl Deps {
    /// Reads `STORE_URL`, `BLOBS_URL`, `EMAILS_QUEUE_URL`, `REPORT_TIME_ZONE`,
    /// `REPORT_RECIPIENTS`, `REPORT_LOOKBACK_DAYS`, `REPORT_DLQ_URLS` (optional) and
    /// `IDEMPOTENCY_TTL_SECONDS`.
    pub fn from_env(env: &Env, queue: Arc<dyn Queue>) -> Result<Self, ConfigError> {
        let zone = env.required("REPORT_TIME_ZONE")?;
        let time_zone: Tz = zone.parse().map_err(|_| ConfigError::Invalid {
            var: "REPORT_TIME_ZONE".into(),
            value: zone.clone(),
            reason: "not an IANA time zone like Europe/Berlin".into(),
        })?;
        let recipients = parse_recipients(&env.required("REPORT_RECIPIENTS")?)?;
        let store = nightshift::wiring::store(env)?;
        let lookback_days = env.parse_or("REPORT_LOOKBACK_DAYS", DEFAULT_LOOKBACK_DAYS)?;
        if lookback_days > MAX_LOOKBACK_DAYS {
            return Err(ConfigError::Invalid {
                var: "REPORT_LOOKBACK_DAYS".into(),
                value: lookback_days.to_string(),
                reason: format!("at most {MAX_LOOKBACK_DAYS} days"),
            });
        }
        // A report's claim is how a later run knows it exists: it must outlive the look-back.
        let ttl = env.idempotency_ttl()?.max(std::time::Duration::from_secs(
            u64::from(lookback_days + 2) * 24 * 3600,
        ));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(Deps {
            idempotency: Idempotency::new(store.clone(), clock.clone(), ttl),
            store,
            blobs: nightshift::wiring::blobs(env)?,
            queue,
            clock,
            time_zone,
            recipients,
            emails_queue_url: env.queue_url("EMAILS_QUEUE_URL")?,
            lookback_days,
            dead_letter_queues: env.queue_urls("REPORT_DLQ_URLS")?,
            metrics: nightshift::wiring::metrics(env, FUNCTION)?,
        })
    }
}

/// Parses a comma-separated recipient list, naming the bad entry.
pub fn parse_recipients(value: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err(ConfigError::Missing {
            var: "REPORT_RECIPIENTS".into(),
        });
    }
    for address in &list {
        validate_address(address).map_err(|reason| ConfigError::Invalid {
            var: "REPORT_RECIPIENTS".into(),
            value: value.to_string(),
            reason,
        })?;
    }
    Ok(list)
}

/// What the handler returns (and records under the date's idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// The report date.
    pub date: NaiveDate,
    /// Jobs counted.
    pub total: u64,
    /// Failed jobs.
    pub failed: u64,
    /// Messages waiting in the watched dead-letter queues when the report was made.
    #[serde(default)]
    pub dead_letters: u64,
    /// Key of the CSV file.
    pub csv_key: String,
    /// Key of the HTML file.
    pub html_key: String,
    /// True when this invocation found the report already done.
    #[serde(default)]
    pub already_done: bool,
    /// Earlier reports this run made because they were missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backfilled: Vec<NaiveDate>,
}

/// Why a report could not be built. Lambda reports it as a function error and, the invocation
/// being asynchronous, retries it per the function's `EventInvokeConfig`, then sends the event
/// to its on-failure destination; the variant says whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The event is not a schedule payload.
    #[error("invalid schedule event: {0}")]
    InvalidEvent(#[from] ContractError),
    /// Another invocation is building this date.
    #[error("report for {0} is being built by another invocation")]
    InProgress(NaiveDate),
    /// The report's day has not ended (and settled) yet, so its report would miss the rest.
    #[error(
        "the report for {date} can only be made once that day has ended and settled ({ends}); ask for an earlier date"
    )]
    DayNotOver {
        /// The date asked for.
        date: NaiveDate,
        /// When its report can be made.
        ends: DateTime<Utc>,
    },
    /// A port failed.
    #[error("{what}: {message}")]
    Port {
        /// Which step.
        what: &'static str,
        /// The error.
        message: String,
        /// Whether a retry can help.
        retryable: bool,
    },
}

impl Retryable for ReportError {
    fn is_retryable(&self) -> bool {
        match self {
            ReportError::InvalidEvent(_) | ReportError::DayNotOver { .. } => false,
            ReportError::InProgress(_) => true,
            ReportError::Port { retryable, .. } => *retryable,
        }
    }
}

fn port<E: Retryable + std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ReportError {
    move |e| ReportError::Port {
        what,
        retryable: e.is_retryable(),
        message: e.to_string(),
    }
}

/// The report date: explicit, else the day before `scheduled` (or `now`) in `zone`.
pub fn report_date(input: &ReportInput, zone: Tz, now: DateTime<Utc>) -> NaiveDate {
    if let Some(date) = input.date {
        return date;
    }
    let at = input
        .scheduled_time
        .unwrap_or(now)
        .with_timezone(&zone)
        .date_naive();
    at.checked_sub_days(Days::new(1)).unwrap_or(at)
}

/// The UTC instants bounding `date` in `zone`: `[local midnight, next local midnight)`.
/// Midnight may not exist (a DST jump at 00:00); then the day starts at the first instant after.
pub fn day_bounds(date: NaiveDate, zone: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let start_of = |d: NaiveDate| -> DateTime<Utc> {
        let mut t = d.and_hms_opt(0, 0, 0).expect("midnight");
        for _ in 0..180 {
            if let Some(local) = zone.from_local_datetime(&t).earliest() {
                return local.with_timezone(&Utc);
            }
            t += chrono::Duration::minutes(1);
        }
        Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
    };
    (start_of(date), start_of(date.succ_opt().unwrap_or(date)))
}

/// The Lambda handler; flushes the invocation's metrics once at the end, failed or not.
pub async fn handler(
    deps: Arc<Deps>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<ReportSummary, ReportError> {
    let deadline = nightshift::batch::deadline_on(
        deps.clock.as_ref(),
        nightshift::batch::invocation_deadline(&event.context),
    );
    let metrics = deps.metrics.invocation();
    for name in COUNTS {
        metrics.count(name, &[], 0);
    }
    let result = run(
        &deps,
        &event.payload,
        deadline,
        &event.context.request_id,
        &metrics,
        event.context.xray_trace_id.as_deref(),
    )
    .await;
    metrics.flush(deps.clock.now());
    result
}

/// How long after a day ends its report may be made: outcomes are stamped when a job ends and
/// written just after, by invocations that run at most Lambda's 15-minute maximum timeout.
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>
pub const SETTLE: chrono::Duration = chrono::Duration::minutes(15);

/// Builds, stores and announces the report for the event's date, then the missing reports of
/// the days before it. `request_id` (the invocation's, which Lambda keeps for the retries of
/// an asynchronous event) names the email of a forced run, so a retried forced run mails once.
/// The reports built go to `metrics`; their emails carry `trace`, the invocation's X-Ray trace
/// header, so that the email-sender's work is part of this run's trace.
pub async fn run(
    deps: &Deps,
    event: &serde_json::Value,
    deadline: DateTime<Utc>,
    request_id: &str,
    metrics: &Metrics,
    trace: Option<&str>,
) -> Result<ReportSummary, ReportError> {
    let input = ReportInput::from_event(event)?;
    let now = input.scheduled_time.unwrap_or_else(|| deps.clock.now());
    let date = report_date(&input, deps.time_zone, now);
    let (_, ends) = day_bounds(date, deps.time_zone);
    if ends + SETTLE > now.max(deps.clock.now()) {
        return Err(ReportError::DayNotOver {
            date,
            ends: ends + SETTLE,
        });
    }
    if input.force {
        // A forced run ignores the date's record and sends a new email, with its own id: the
        // first email's id is taken, by other numbers.
        let email_id = format!("daily-report-{date}-forced-{request_id}");
        let summary = build(deps, date, &email_id, metrics, trace).await?;
        info!(%date, "report regenerated");
        return Ok(summary);
    }
    // The date first, so that a broken older day never holds up today's report; a failed
    // backfill still fails the run, so that Lambda retries it (today's is then done).
    let mut summary = match claim_report(deps, date, deadline).await? {
        Claimed::Done(summary) => summary,
        Claimed::Busy => return Err(ReportError::InProgress(date)),
        Claimed::Ours(ticket) => make(deps, date, &ticket, metrics, trace).await?,
    };
    summary.backfilled = backfill(deps, date, deadline, metrics, trace).await?;
    Ok(summary)
}

/// A report date's claim.
enum Claimed {
    /// Made before: its summary.
    Done(ReportSummary),
    /// Another invocation is making it.
    Busy,
    /// Ours to make.
    Ours(Ticket),
}

async fn claim_report(
    deps: &Deps,
    date: NaiveDate,
    deadline: DateTime<Utc>,
) -> Result<Claimed, ReportError> {
    let key = format!("report:{date}");
    // The key is the date itself: every run for a date asks for the same work.
    let payload = date.to_string();
    Ok(
        match deps
            .idempotency
            .begin(&key, payload.as_bytes(), deadline)
            .await
            .map_err(port("idempotency"))?
        {
            Begin::Started(ticket) => Claimed::Ours(ticket),
            Begin::AlreadyCompleted(previous) => {
                let mut summary: ReportSummary =
                    serde_json::from_str(&previous).map_err(|e| ReportError::Port {
                        what: "idempotency",
                        message: format!("stored summary unreadable: {e}"),
                        retryable: false,
                    })?;
                summary.already_done = true;
                Claimed::Done(summary)
            }
            Begin::InProgress(_) | Begin::PayloadMismatch { .. } => Claimed::Busy,
        },
    )
}

/// Builds the report of a claimed date and completes the claim; releases it on failure.
async fn make(
    deps: &Deps,
    date: NaiveDate,
    ticket: &Ticket,
    metrics: &Metrics,
    trace: Option<&str>,
) -> Result<ReportSummary, ReportError> {
    let result = build(deps, date, &format!("daily-report-{date}"), metrics, trace).await;
    match &result {
        Ok(summary) => {
            let recorded = serde_json::to_string(summary).expect("summary serializes");
            deps.idempotency
                .complete(ticket, &recorded)
                .await
                .map_err(port("idempotency"))?;
        }
        Err(_) => {
            let _ = deps.idempotency.abandon(ticket).await;
        }
    }
    result
}

/// Makes the missing reports of the `lookback_days` before `date`, oldest first; returns
/// their dates. A missing day is made once an earlier day of the window has its report (the
/// system was running: the day was skipped or its run failed) or when it has outcomes.
async fn backfill(
    deps: &Deps,
    date: NaiveDate,
    deadline: DateTime<Utc>,
    metrics: &Metrics,
    trace: Option<&str>,
) -> Result<Vec<NaiveDate>, ReportError> {
    let mut made = Vec::new();
    let mut running = false;
    for back in (1..=deps.lookback_days).rev() {
        let Some(day) = date.checked_sub_days(Days::new(u64::from(back))) else {
            continue;
        };
        match claim_report(deps, day, deadline).await? {
            Claimed::Done(_) => running = true,
            Claimed::Busy => {}
            Claimed::Ours(ticket) => {
                let wanted = running || !day_outcomes(deps, day).await?.is_empty();
                if wanted {
                    make(deps, day, &ticket, metrics, trace).await?;
                    metrics.count("ReportsBackfilled", &[], 1);
                    info!(date = %day, "missing report backfilled");
                    made.push(day);
                    running = true;
                } else {
                    let _ = deps.idempotency.abandon(&ticket).await;
                }
            }
        }
    }
    Ok(made)
}

/// The outcomes of the jobs that finished on `date` in the report's zone.
async fn day_outcomes(deps: &Deps, date: NaiveDate) -> Result<Vec<JobOutcome>, ReportError> {
    let (from, to) = day_bounds(date, deps.time_zone);
    deps.store
        .outcomes_between(from, to)
        .await
        .map_err(port("store"))
}

/// What waits in each watched dead-letter queue now, by queue name (the URL's last segment).
async fn dead_letters(deps: &Deps) -> Result<Vec<QueueCount>, ReportError> {
    let mut counts = Vec::with_capacity(deps.dead_letter_queues.len());
    for url in &deps.dead_letter_queues {
        let depth = deps
            .queue
            .depth(url)
            .await
            .map_err(port("dead-letter queue depth"))?;
        let queue = url.rsplit('/').find(|s| !s.is_empty()).unwrap_or(url);
        counts.push(QueueCount {
            queue: queue.to_string(),
            messages: depth.total(),
        });
    }
    Ok(counts)
}

/// Builds, stores and announces the report of `date`; once it is out, counts it and its rows
/// and records how long it took in `metrics`.
async fn build(
    deps: &Deps,
    date: NaiveDate,
    email_id: &str,
    metrics: &Metrics,
    trace: Option<&str>,
) -> Result<ReportSummary, ReportError> {
    let started = tokio::time::Instant::now();
    let outcomes = day_outcomes(deps, date).await?;
    let mut report = aggregate(date, deps.time_zone.name(), &outcomes);
    report.dead_letters = dead_letters(deps).await?;
    let waiting: u64 = report.dead_letters.iter().map(|q| q.messages).sum();
    let csv_key = format!("reports/{date}.csv");
    let html_key = format!("reports/{date}.html");
    deps.blobs
        .put(&csv_key, Bytes::from(to_csv(&report)), "text/csv")
        .await
        .map_err(port("blobs"))?;
    deps.blobs
        .put(&html_key, Bytes::from(to_html(&report)), "text/html")
        .await
        .map_err(port("blobs"))?;
    let vars = [
        ("date", json!(date.to_string())),
        ("time_zone", json!(report.time_zone)),
        ("total", json!(report.total)),
        ("succeeded", json!(report.succeeded)),
        ("failed", json!(report.failed)),
        ("p50_ms", json!(report.p50_ms)),
        ("p95_ms", json!(report.p95_ms)),
        ("top_errors", json!(report.top_errors)),
        ("dead_letters", json!(report.dead_letters)),
        ("dead_letters_total", json!(waiting)),
        ("csv_key", json!(csv_key)),
        ("html_key", json!(html_key)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let email = EmailRequest::from_template(
        email_id.to_string(),
        deps.recipients.clone(),
        format!(
            "nightshift daily report {date}: {} jobs, {} failed",
            report.total, report.failed
        ),
        "daily_report",
        vars,
    );
    let body = serde_json::to_string(&email).expect("email serializes");
    deps.queue
        .send(
            &deps.emails_queue_url,
            &body,
            &[],
            &SendOptions::default().traced(trace),
        )
        .await
        .map_err(port("queue"))?;
    info!(%date, total = report.total, failed = report.failed, dead_letters = waiting, "report built");
    metrics.count("ReportsGenerated", &[], 1);
    metrics.count("ReportRows", &[], outcomes.len() as u64);
    metrics.duration("ReportDuration", &[], started.elapsed());
    Ok(ReportSummary {
        date,
        total: report.total,
        failed: report.failed,
        dead_letters: waiting,
        csv_key,
        html_key,
        already_done: false,
        backfilled: Vec::new(),
    })
}

impl From<ReportError> for lambda_runtime::Diagnostic {
    fn from(err: ReportError) -> Self {
        let error_type = match &err {
            ReportError::InvalidEvent(_) => "InvalidEvent",
            ReportError::InProgress(_) => "InProgress",
            ReportError::DayNotOver { .. } => "DayNotOver",
            ReportError::Port {
                retryable: true, ..
            } => "Retryable",
            ReportError::Port {
                retryable: false, ..
            } => "Permanent",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_defaults_to_previous_local_day() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let now = "2030-01-01T00:00:00Z".parse().unwrap();
        // 01:00 UTC on the 22nd is 02:00 in Berlin on the 22nd → report for the 21st.
        let input = ReportInput {
            scheduled_time: Some("2026-11-22T01:00:00Z".parse().unwrap()),
            date: None,
            force: false,
        };
        assert_eq!(report_date(&input, berlin, now).to_string(), "2026-11-21");
        // 23:30 UTC on the 21st is already the 22nd in Berlin.
        let input = ReportInput {
            scheduled_time: Some("2026-11-21T23:30:00Z".parse().unwrap()),
            date: None,
            force: false,
        };
        assert_eq!(report_date(&input, berlin, now).to_string(), "2026-11-21");
        let input = ReportInput {
            scheduled_time: None,
            date: "2026-01-05".parse().ok(),
            force: false,
        };
        assert_eq!(report_date(&input, berlin, now).to_string(), "2026-01-05");
        let input = ReportInput {
            scheduled_time: None,
            date: None,
            force: false,
        };
        assert_eq!(report_date(&input, berlin, now).to_string(), "2029-12-31");
    }

    #[test]
    fn day_bounds_follow_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let (a, b) = day_bounds("2026-03-29".parse().unwrap(), berlin);
        assert_eq!((b - a).num_hours(), 23);
        assert_eq!(a.to_rfc3339(), "2026-03-28T23:00:00+00:00");
        let (a, b) = day_bounds("2026-10-25".parse().unwrap(), berlin);
        assert_eq!((b - a).num_hours(), 25);
        // Havana jumps from 00:00 to 01:00: the day starts at 01:00 local.
        let havana: Tz = "America/Havana".parse().unwrap();
        let (a, _) = day_bounds("2026-03-08".parse().unwrap(), havana);
        assert_eq!(a.to_rfc3339(), "2026-03-08T05:00:00+00:00");
    }

    #[test]
    fn recipients() {
        assert_eq!(
            parse_recipients("a@b.co, c@d.io").unwrap(),
            ["a@b.co", "c@d.io"]
        );
        assert!(parse_recipients(" , ").is_err());
        assert!(
            parse_recipients("a@b.co,nope")
                .unwrap_err()
                .to_string()
                .contains("\"nope\" has no @")
        );
    }
}
