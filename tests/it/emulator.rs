//! End to end on the emulator: the real template, the real function handlers in process (or
//! the real binaries), the emulator's SQS over HTTP, a manual clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use nightshift::adapters::blobs::FsBlobs;
use nightshift::adapters::mail::OutboxMailer;
use nightshift::adapters::scheduler::{EventBridgeScheduler, SchedulerTarget};
use nightshift::adapters::simulator::MailboxSimulator;
use nightshift::adapters::sqlite::SqliteStore;
use nightshift::adapters::sqs::SqsQueue;
use nightshift::batch::BatchConfig;
use nightshift::idempotency::Idempotency;
use nightshift::ports::{Clock, Mailer, Scheduler, Store};
use nightshift::retry::RetryPlan;
use nightshift_local::clock::SharedClock;
use nightshift_local::harness::{Harness, HarnessInvoker, HarnessOptions};
use nightshift_local::invoker::{FunctionError, InProcessInvoker, InvokeContext};

use crate::support::fixture;

pub const QUEUE_PROCESSOR: &str = "nightshift-QueueProcessorFunction";
pub const EMAIL_SENDER: &str = "nightshift-EmailSenderFunction";
pub const DAILY_REPORT: &str = "nightshift-DailyReportFunction";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where the in-process functions keep their state.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    pub fn outbox(&self) -> PathBuf {
        self.root.path().join("outbox")
    }
    pub fn reports(&self) -> PathBuf {
        self.root.path().join("reports")
    }
    pub fn db(&self) -> PathBuf {
        self.root.path().join("state.db")
    }
    /// The .eml files in the outbox.
    pub fn emails(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.outbox()) else {
            return vec![];
        };
        let mut all: Vec<String> = dir
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        all.sort();
        all
    }
}

fn context_for(ctx: &InvokeContext, timeout: Duration) -> Context {
    let mut c = Context::default();
    c.request_id = ctx.request_id.clone();
    // What lambda_runtime reads from `Lambda-Runtime-Trace-Id`.
    c.xray_trace_id = Some(ctx.trace_header.clone());
    let left = ctx.remaining().unwrap_or(timeout);
    c.deadline = (std::time::SystemTime::now() + left)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    c
}

fn error(e: impl std::fmt::Display, kind: &str) -> FunctionError {
    FunctionError::new(kind, e.to_string())
}

/// The three real handlers, in process, wired like their `main.rs` but with state in `dirs`,
/// the emulator's clock and its SQS endpoint (known after start, hence the late binding).
pub fn in_process_functions(
    dirs: &Dirs,
    endpoint: Arc<std::sync::OnceLock<String>>,
    clock: Arc<EmulatorClockSlot>,
) -> InProcessInvoker {
    let store = Arc::new(SqliteStore::open(dirs.db()).unwrap());
    let mailer = Arc::new(OutboxMailer::new(dirs.outbox()).unwrap());
    // The replay tests run these against the emulator and against the replay sandbox, whose
    // Scheduler API is on an endpoint of its own that these functions (bound to the SQS
    // endpoint) are not told: schedules are kept in memory in both runs, and a replay
    // re-feeds the jobs they sent from the trace.
    let scheduler = Arc::new(nightshift::adapters::memory::MemoryScheduler::default());
    functions(dirs, endpoint, clock, store, mailer, Some(scheduler))
}

/// [`in_process_functions`] on a given store and mailer (an outage, an SMTP server), with the
/// template's retry plan (`RETRY_HORIZON_SECONDS`: backoff and `maxReceiveCount`).
pub fn in_process_functions_with(
    dirs: &Dirs,
    endpoint: Arc<std::sync::OnceLock<String>>,
    clock: Arc<EmulatorClockSlot>,
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
) -> InProcessInvoker {
    functions(dirs, endpoint, clock, store, mailer, None)
}

/// The three handlers; queue-processor schedules on `scheduler`, or on the emulator's
/// Scheduler API when `None`.
fn functions(
    dirs: &Dirs,
    endpoint: Arc<std::sync::OnceLock<String>>,
    clock: Arc<EmulatorClockSlot>,
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    scheduler: Option<Arc<dyn Scheduler>>,
) -> InProcessInvoker {
    let plan = RetryPlan::default();
    let blobs = Arc::new(FsBlobs::new(dirs.reports()).unwrap());
    let deps_qp: Arc<std::sync::OnceLock<Arc<queue_processor::Deps>>> = Arc::default();
    let deps_es: Arc<std::sync::OnceLock<Arc<email_sender::Deps>>> = Arc::default();
    let deps_dr: Arc<std::sync::OnceLock<Arc<daily_report::Deps>>> = Arc::default();
    let url = |endpoint: &str, name: &str| format!("{endpoint}/000000000000/nightshift-{name}");
    let queue = {
        let endpoint = endpoint.clone();
        move || {
            Arc::new(SqsQueue::for_endpoint(
                endpoint.get().expect("endpoint known"),
                "us-east-1",
            ))
        }
    };
    let qp = {
        let (store, clock, endpoint, queue, deps) = (
            store.clone(),
            clock.clone(),
            endpoint.clone(),
            queue.clone(),
            deps_qp,
        );
        let scheduler = scheduler.clone();
        move |payload: Bytes, ctx: InvokeContext| {
            let deps = deps
                .get_or_init(|| {
                    let e = endpoint.get().unwrap();
                    let jobs = BatchConfig {
                        source_queue_url: Some(url(e, "jobs")),
                        dlq_url: Some(url(e, "jobs-dlq")),
                        backoff: plan.backoff,
                        max_receive_count: Some(plan.max_receive_count),
                        ..BatchConfig::default()
                    };
                    let inventory = queue_processor::inventory_config(
                        &jobs,
                        url(e, "inventory.fifo"),
                        url(e, "inventory-dlq.fifo"),
                    );
                    // The template's schedule group, scheduler role and jobs queue, as the
                    // emulator resolves them.
                    let scheduler = scheduler.clone().unwrap_or_else(|| {
                        Arc::new(EventBridgeScheduler::for_endpoint(
                            e,
                            "us-east-1",
                            SchedulerTarget {
                                group: "nightshift-jobs".into(),
                                role_arn:
                                    "arn:aws:iam::000000000000:role/nightshift-JobsSchedulerRole"
                                        .into(),
                                queue_arn: "arn:aws:sqs:us-east-1:000000000000:nightshift-jobs"
                                    .into(),
                            },
                        ))
                    });
                    Arc::new(
                        queue_processor::Deps::new(
                            queue(),
                            store.clone(),
                            scheduler,
                            clock.clone(),
                            jobs,
                            url(e, "emails"),
                            Duration::from_secs(86_400),
                        )
                        .with_inventory(inventory),
                    )
                })
                .clone();
            async move {
                let event: SqsEvent = serde_json::from_slice(&payload)
                    .map_err(|e| error(e, "Runtime.UnmarshalError"))?;
                let response = queue_processor::handler(
                    deps,
                    LambdaEvent::new(event, context_for(&ctx, Duration::from_secs(30))),
                )
                .await
                .map_err(|e| error(e, "HandlerError"))?;
                Ok(Bytes::from(serde_json::to_vec(&response).unwrap()))
            }
        }
    };
    let es = {
        let (store, clock, endpoint, queue, deps, mailer) = (
            store.clone(),
            clock.clone(),
            endpoint.clone(),
            queue.clone(),
            deps_es,
            mailer,
        );
        move |payload: Bytes, ctx: InvokeContext| {
            let deps = deps
                .get_or_init(|| {
                    let e = endpoint.get().unwrap();
                    // As `nightshift::wiring::mailer_with_feedback` wires a local mailer: SES's
                    // mailbox simulator in front, its events on the feedback queue.
                    let mailer: Arc<dyn Mailer> = Arc::new(MailboxSimulator::new(
                        mailer.clone(),
                        queue(),
                        url(e, "mail-feedback"),
                        clock.clone(),
                    ));
                    let feedback = BatchConfig {
                        source_queue_url: Some(url(e, "mail-feedback")),
                        dlq_url: Some(url(e, "mail-feedback-dlq")),
                        backoff: plan.backoff,
                        max_receive_count: Some(plan.max_receive_count),
                        ..BatchConfig::default()
                    };
                    Arc::new(
                        email_sender::Deps::new(
                            mailer,
                            store.clone(),
                            clock.clone(),
                            queue(),
                            BatchConfig {
                                source_queue_url: Some(url(e, "emails")),
                                dlq_url: Some(url(e, "emails-dlq")),
                                backoff: plan.backoff,
                                max_receive_count: Some(plan.max_receive_count),
                                ..BatchConfig::default()
                            },
                            "nightshift@example.com".into(),
                            1000.0,
                            Duration::from_secs(86_400),
                        )
                        .with_feedback(email_sender::FeedbackSource::new(queue(), feedback)),
                    )
                })
                .clone();
            async move {
                let event: SqsEvent = serde_json::from_slice(&payload)
                    .map_err(|e| error(e, "Runtime.UnmarshalError"))?;
                let response = email_sender::handler(
                    deps,
                    LambdaEvent::new(event, context_for(&ctx, Duration::from_secs(30))),
                )
                .await
                .map_err(|e| error(e, "HandlerError"))?;
                Ok(Bytes::from(serde_json::to_vec(&response).unwrap()))
            }
        }
    };
    let dr = {
        let (store, clock, endpoint, queue, deps) = (store, clock, endpoint, queue, deps_dr);
        move |payload: Bytes, ctx: InvokeContext| {
            let deps = deps
                .get_or_init(|| {
                    let e = endpoint.get().unwrap();
                    let clock: Arc<dyn Clock> = clock.clone();
                    Arc::new(daily_report::Deps {
                        idempotency: Idempotency::new(
                            store.clone(),
                            clock.clone(),
                            Duration::from_secs(7 * 86_400),
                        ),
                        store: store.clone(),
                        blobs: blobs.clone(),
                        queue: queue(),
                        clock,
                        time_zone: "Europe/Berlin".parse().unwrap(),
                        recipients: vec!["ops@example.com".into()],
                        emails_queue_url: url(e, "emails"),
                        lookback_days: daily_report::DEFAULT_LOOKBACK_DAYS,
                        dead_letter_queues: vec![url(e, "jobs-dlq"), url(e, "emails-dlq")],
                        metrics: nightshift::metrics::Emitter::stdout(daily_report::FUNCTION),
                    })
                })
                .clone();
            async move {
                let event: serde_json::Value = serde_json::from_slice(&payload)
                    .map_err(|e| error(e, "Runtime.UnmarshalError"))?;
                match daily_report::handler(
                    deps,
                    LambdaEvent::new(event, context_for(&ctx, Duration::from_secs(60))),
                )
                .await
                {
                    Ok(summary) => Ok(Bytes::from(serde_json::to_vec(&summary).unwrap())),
                    Err(e) => {
                        let d: lambda_runtime::Diagnostic = e.into();
                        Err(FunctionError::new(d.error_type, d.error_message))
                    }
                }
            }
        }
    };
    InProcessInvoker::new()
        .with_function_timeout(QUEUE_PROCESSOR, Some(Duration::from_secs(30)), qp)
        .with_function_timeout(EMAIL_SENDER, Some(Duration::from_secs(30)), es)
        .with_function_timeout(DAILY_REPORT, Some(Duration::from_secs(60)), dr)
}

/// Late-bound emulator clock for the functions.
pub type EmulatorClockSlot = EmulatorClockImpl;

/// The functions read "now" from the emulator's clock (set once it runs).
pub struct EmulatorClockImpl(pub std::sync::OnceLock<SharedClock>);

impl Clock for EmulatorClockImpl {
    fn now(&self) -> DateTime<Utc> {
        self.0.get().map(|c| c.now()).unwrap_or_else(Utc::now)
    }
}

/// A harness on the real template with the three handlers in process.
pub async fn start(at: &str) -> (Harness, Dirs) {
    let dirs = Dirs {
        root: tempfile::tempdir().unwrap(),
    };
    let store = Arc::new(SqliteStore::open(dirs.db()).unwrap());
    let mailer = Arc::new(OutboxMailer::new(dirs.outbox()).unwrap());
    start_with(at, dirs, store, mailer).await
}

/// [`start`] with the functions on `store` and `mailer`.
pub async fn start_with(
    at: &str,
    dirs: Dirs,
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
) -> (Harness, Dirs) {
    let endpoint: Arc<std::sync::OnceLock<String>> = Arc::default();
    let clock = Arc::new(EmulatorClockImpl(std::sync::OnceLock::new()));
    let invoker = in_process_functions_with(&dirs, endpoint.clone(), clock.clone(), store, mailer);
    let options = HarnessOptions::new(workspace_root()).starting_at(at.parse().unwrap());
    let harness = Harness::start(options, HarnessInvoker::InProcess(invoker))
        .await
        .unwrap();
    endpoint.set(harness.endpoint()).unwrap();
    let _ = clock.0.set(harness.emulator().clock().clone());
    (harness, dirs)
}

fn subject_of(eml: &str) -> String {
    eml.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_leads_to_exactly_one_confirmation_email() {
    let (h, dirs) = start("2026-11-21T09:30:00Z").await;
    let order = fixture("jobs/order-placed.json");
    h.send("jobs", order.clone()).unwrap();
    // The producer retries its send: the same job arrives twice.
    h.send("JobsQueue", order).unwrap();
    h.run_until_idle().await.unwrap();
    // When both copies run at once, the second finds the first's claim in progress and comes
    // back when that claim lapses (at most the function's 30 s): let it come back, so the
    // outcome is the same whichever way the two raced.
    h.advance(Duration::from_secs(60)).await.unwrap();
    let emails = dirs.emails();
    if emails.len() != 1 {
        for i in h.invocations() {
            eprintln!("{} {} {} {}", i.at, i.function, i.outcome, i.response);
            for r in i.event["Records"].as_array().unwrap() {
                eprintln!(
                    "   {} {} {}",
                    r["messageId"],
                    r["attributes"]["ApproximateReceiveCount"],
                    &r["body"].as_str().unwrap()[..60]
                );
            }
        }
    }
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert_eq!(subject_of(&emails[0]), "Your order 1001 is confirmed");
    assert!(emails[0].contains("X-Nightshift-Request-Id: order-confirmation-job-order-1001"));
    // Every message was acknowledged; nothing sits in any queue or DLQ.
    for q in ["jobs", "jobs-dlq", "emails", "emails-dlq"] {
        assert!(h.messages(q).unwrap().is_empty(), "{q} not empty");
    }
    // The event the function saw is what Lambda sends.
    let inv = &h.invocations_of(QUEUE_PROCESSOR)[0];
    let record = &inv.event["Records"][0];
    assert_eq!(record["eventSource"], "aws:sqs");
    assert_eq!(
        record["eventSourceARN"],
        "arn:aws:sqs:us-east-1:000000000000:nightshift-jobs"
    );
    assert_eq!(record["attributes"]["ApproximateReceiveCount"], "1");
    h.shutdown().await;
}

/// An order and the email it caused are two traces, linked, as in AWS: queue-processor puts
/// the trace of its invocation on the email request it enqueues (`AWSTraceHeader`,
/// <https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>), and the emails
/// mapping starts a new trace for email-sender's batch, linked to the traces of its messages
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>).
/// `nightshift trace` (the control route, which the harness asks as the CLI does) follows the
/// link: the chain is found by the order's message id, by the job id and by the email's
/// message id alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_and_its_confirmation_email_are_two_linked_traces() {
    let (h, dirs) = start("2026-11-21T09:30:00Z").await;
    let message_id = h.send("jobs", fixture("jobs/order-placed.json")).unwrap();
    h.run_until_idle().await.unwrap();
    assert_eq!(dirs.emails().len(), 1);

    let chain = h.trace(&message_id).await.unwrap();
    let functions: Vec<&str> = chain
        .invocations
        .iter()
        .map(|i| i.function.as_str())
        .collect();
    assert_eq!(functions, [QUEUE_PROCESSOR, EMAIL_SENDER], "{chain:#?}");
    for invocation in &chain.invocations {
        assert_eq!(invocation.status.as_str(), "success");
        assert!(invocation.duration_ms.is_some());
    }
    assert_eq!(chain.invocations[0].trigger, "sqs:nightshift-jobs");
    assert_eq!(chain.invocations[1].trigger, "sqs:nightshift-emails");
    assert!(chain.invocations[0].started_at <= chain.invocations[1].started_at);
    // Two traces: the email batch's is new, and linked to the job's.
    let job_trace = chain.invocations[0].trace_id.clone().unwrap();
    let email_trace = chain.invocations[1].trace_id.clone().unwrap();
    assert_ne!(job_trace, email_trace);
    let mut both = vec![job_trace.clone(), email_trace.clone()];
    both.sort();
    assert_eq!(chain.trace_ids, both, "{chain:#?}");
    assert!(chain.invocations[0].trace_links.is_empty());
    assert_eq!(
        chain.invocations[1].trace_links,
        std::slice::from_ref(&job_trace)
    );
    assert_eq!(chain.links.len(), 1, "{chain:#?}");
    assert_eq!(
        (chain.links[0].from.as_str(), chain.links[0].to.as_str()),
        (email_trace.as_str(), job_trace.as_str())
    );
    // The email's record carries exactly the header queue-processor's invocation was given;
    // email-sender's invocation is in a trace of its own.
    let job = h.history().get(&chain.invocations[0].request_id).unwrap();
    let email = h.history().get(&chain.invocations[1].request_id).unwrap();
    let event: serde_json::Value = serde_json::from_str(&email.event).unwrap();
    assert_eq!(
        event["Records"][0]["attributes"]["AWSTraceHeader"].as_str(),
        Some(job.trace_header.as_str())
    );
    assert!(
        email
            .trace_header
            .starts_with(&format!("Root={email_trace};"))
    );

    // The job id (in the event), the email's message id and either trace id find the same
    // chain; another job is another chain.
    h.send("jobs", fixture("jobs/user-signup.json")).unwrap();
    h.run_until_idle().await.unwrap();
    let by_job = h.trace("job-order-1001").await.unwrap();
    assert_eq!(by_job.invocations, chain.invocations);
    let email_message = &chain.invocations[1].message_ids[0];
    let by_email = h.trace(email_message).await.unwrap();
    assert_eq!(by_email.invocations, chain.invocations);
    assert_eq!(by_email.trace_ids, chain.trace_ids);
    let by_trace = h.trace(&email_trace).await.unwrap();
    assert_eq!(by_trace.invocations, chain.invocations);
    let unknown = h.trace("no-such-message").await.unwrap();
    assert!(unknown.invocations.is_empty() && unknown.trace_ids.is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_jobs_land_in_the_dlq_with_reasons() {
    let (h, dirs) = start("2026-11-21T09:30:00Z").await;
    h.send("jobs", "{\"v\":1,").unwrap();
    h.send("jobs", fixture("jobs/unknown-kind.json")).unwrap();
    h.run_until_idle().await.unwrap();
    let dlq = h.emulator().dlq_list("jobs-dlq", 10).unwrap();
    let mut reasons: Vec<String> = dlq.iter().map(|m| m.reason.clone().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons[0].starts_with("malformed job: malformed json at line 1 column 7"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[1],
        "unknown job kind \"invoice.paid\"; known kinds: inventory.adjusted, order.placed, user.follow_up, user.signup"
    );
    assert!(dirs.emails().is_empty());
    // Redrive puts them back on the jobs queue, where they fail again, into the DLQ again.
    let before = h.invocations_of(QUEUE_PROCESSOR).len();
    h.emulator().redrive("jobs-dlq").unwrap();
    h.run_until_idle().await.unwrap();
    assert!(
        h.invocations_of(QUEUE_PROCESSOR).len() > before,
        "redriven messages were processed"
    );
    assert_eq!(h.emulator().dlq_list("jobs-dlq", 10).unwrap().len(), 2);
    assert!(h.messages("jobs").unwrap().is_empty());
    h.shutdown().await;
}

/// `days` of the real template's daily report from noon UTC on `first`: one run a day at
/// 04:00 Berlin time, each for the day before, one file pair and one email each.
async fn daily_reports_for(first: &str, days: u64) {
    let (h, dirs) = start(&format!("{first}T12:00:00Z")).await;
    h.advance(Duration::from_secs(days * 86_400)).await.unwrap();
    let reports = h.invocations_of(DAILY_REPORT);
    let summary: Vec<String> = reports
        .iter()
        .map(|i| format!("{} {} {}", i.at, i.outcome, i.response))
        .collect();
    assert_eq!(reports.len(), days as usize, "one per day: {summary:#?}");
    let first: chrono::NaiveDate = first.parse().unwrap();
    for (i, inv) in reports.iter().enumerate() {
        assert_eq!(inv.outcome, "success", "{inv:?}");
        let scheduled: DateTime<Utc> = inv.event["scheduled_time"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let local = scheduled.with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!(local.format("%H:%M").to_string(), "04:00", "{scheduled}");
        let expected = first + chrono::Days::new(i as u64);
        assert_eq!(inv.response["date"], expected.to_string());
        assert!(inv.response.get("backfilled").is_none(), "{inv:?}");
    }
    let mut files: Vec<String> = std::fs::read_dir(dirs.reports().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2 * days as usize, "{files:?}");
    let subjects: Vec<String> = dirs.emails().iter().map(|e| subject_of(e)).collect();
    assert_eq!(subjects.len(), days as usize);
    assert!(
        subjects
            .iter()
            .all(|s| s.starts_with("nightshift daily report 2026-"))
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_daily_reports_across_dst() {
    // From 2026-10-10 in Berlin; the clocks go back on 2026-10-25 (02:00-03:00 twice).
    daily_reports_for("2026-10-10", 31).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_report_is_skipped_on_the_spring_forward_night() {
    // Berlin skips 02:00-03:00 on 2026-03-29: a 02:00 schedule would not run that night
    // (Scheduler skips times that do not exist); the 04:00 one runs every night.
    daily_reports_for("2026-03-25", 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenderable_email_is_dead_lettered_at_once() {
    let (h, dirs) = start("2026-11-21T09:30:00Z").await;
    // A template that does not exist renders never: permanent, straight to the DLQ.
    h.send(
        "emails",
        r#"{"v":1,"id":"e1","to":["a@example.com"],"subject":"x","template":"missing"}"#,
    )
    .unwrap();
    h.run_until_idle().await.unwrap();
    let dlq = h.emulator().dlq_list("emails-dlq", 10).unwrap();
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("unknown template \"missing\"")
    );
    assert!(dirs.emails().is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_function_returns_the_batch_until_sqs_redrives_it() {
    // A queue processor that always fails: every receive returns the whole batch after the
    // queue's visibility timeout, and SQS moves it to the DLQ after maxReceiveCount receives.
    // Both come from the retry horizon (nightshift::retry): 270 s and 15, so even a crash loop
    // is retried for the hour the horizon promises.
    let plan = nightshift::retry::RetryPlan::derive(
        nightshift::retry::DEFAULT_HORIZON,
        Duration::from_secs(30),
    )
    .unwrap();
    let (visibility, max) = (plan.visibility_timeout, plan.max_receive_count as usize);
    let invoker = InProcessInvoker::new().with_function(QUEUE_PROCESSOR, |_payload, _ctx| async {
        Err(FunctionError::new("Runtime.ExitError", "boom"))
    });
    let options =
        HarnessOptions::new(workspace_root()).starting_at("2026-11-21T09:30:00Z".parse().unwrap());
    let h = Harness::start(options, HarnessInvoker::InProcess(invoker))
        .await
        .unwrap();
    h.send("jobs", fixture("jobs/order-placed.json")).unwrap();
    h.run_until_idle().await.unwrap();
    assert_eq!(h.invocations_of(QUEUE_PROCESSOR).len(), 1);
    for receive in 2..=max {
        h.advance(visibility).await.unwrap();
        let invocations = h.invocations_of(QUEUE_PROCESSOR);
        assert_eq!(invocations.len(), receive);
        let record = &invocations.last().unwrap().event["Records"][0];
        assert_eq!(
            record["attributes"]["ApproximateReceiveCount"],
            receive.to_string()
        );
    }
    assert!(h.messages("jobs-dlq").unwrap().is_empty());
    assert!(
        h.now() - "2026-11-21T09:30:00Z".parse::<DateTime<Utc>>().unwrap()
            >= chrono::Duration::hours(1)
    );
    // The next receive would exceed maxReceiveCount: SQS moves it to the DLQ instead.
    h.advance(visibility).await.unwrap();
    assert_eq!(h.invocations_of(QUEUE_PROCESSOR).len(), max);
    let dlq = h.messages("jobs-dlq").unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].receive_count, max as u32);
    assert!(h.messages("jobs").unwrap().is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binaries_under_the_process_runtime() {
    // What `nightshift up` runs: the built function binaries, the Lambda Runtime API, the
    // template's environment; their relative `.nightshift/` paths land in a temp work dir.
    let work = tempfile::tempdir().unwrap();
    let mut options =
        HarnessOptions::new(workspace_root()).starting_at("2026-11-21T09:30:00Z".parse().unwrap());
    options.up.work_dir = Some(work.path().to_path_buf());
    let h = Harness::start(options, HarnessInvoker::Process { build: true })
        .await
        .unwrap();
    let order = h.send("jobs", fixture("jobs/order-placed.json")).unwrap();
    h.send("jobs", fixture("jobs/user-signup.json")).unwrap();
    h.send("jobs", "not json").unwrap();
    h.run_until_idle().await.unwrap();
    // The binary read its trace from `Lambda-Runtime-Trace-Id` (lambda_runtime's context)
    // and sent it with the emails (`AWSTraceHeader`): the order's email went in an
    // email-sender batch whose new trace links to the order's. Batching may have put the
    // signup in another queue-processor invocation and both emails in one batch, whose links
    // then bring the signup's trace into the chain too.
    let chain = h.trace(&order).await.unwrap();
    let first = &chain.invocations[0];
    assert_eq!(first.function, QUEUE_PROCESSOR, "{chain:#?}");
    let job_trace = first.trace_id.clone().unwrap();
    assert!(chain.trace_ids.len() >= 2, "{chain:#?}");
    assert!(
        chain
            .invocations
            .iter()
            .any(|i| i.function == EMAIL_SENDER && i.trace_links.contains(&job_trace)),
        "{chain:#?}"
    );
    let outbox = work.path().join(".nightshift/outbox");
    let mut subjects: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| subject_of(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["Welcome to nightshift", "Your order 1001 is confirmed"]
    );
    // The binary reached the emulator's Scheduler API (AWS_ENDPOINT_URL_SCHEDULER, the
    // template's group, role and queue): the signup's follow-up is scheduled.
    let follow_up = h
        .emulator()
        .scheduler_api()
        .get_schedule("follow-up-u-42", Some("nightshift-jobs"))
        .unwrap();
    assert_eq!(follow_up["ScheduleExpression"], "at(2026-11-24T09:31:00)");
    let dlq = h.emulator().dlq_list("jobs-dlq", 10).unwrap();
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("malformed job: malformed json at line 1 column 2")
    );

    // The schedule, fired by hand: the report lands in the work dir and is emailed.
    let fired = h.fire("DailyReportFunctionDaily").await.unwrap();
    assert!(fired.is_success(), "{fired:?}");
    let csv = std::fs::read_to_string(
        work.path()
            .join(".nightshift/reports/reports/2026-11-20.csv"),
    )
    .unwrap();
    // The template's REPORT_DLQ_URLS (a !Join of the DLQs) reached the binary, which read
    // each depth from the emulator: the malformed job waits in the jobs DLQ.
    for row in [
        "dead_letters_now,nightshift-jobs-dlq,1",
        "dead_letters_now,nightshift-inventory-dlq.fifo,0",
        "dead_letters_now,nightshift-emails-dlq,0",
    ] {
        assert!(csv.lines().any(|l| l == row), "{row} not in\n{csv}");
    }
    h.run_until_idle().await.unwrap();
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 3);
    let status = h.emulator().status();
    let qp = status
        .functions
        .iter()
        .find(|f| f.name == QUEUE_PROCESSOR)
        .unwrap();
    assert!(
        qp.cold_starts >= 1 && qp.errors == 0 && qp.crashes == 0,
        "{qp:?}"
    );
    h.shutdown().await;
}

/// SES's mailbox simulator, locally: mail to `bounce@simulator.amazonses.com` goes to the
/// outbox, and its bounce event comes back through the feedback queue (the path SES → SNS →
/// SQS takes in AWS) to email-sender, which suppresses the address; the next request to it
/// is dead-lettered with the reason. A complaint does the same; `success@` only delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailbox_simulator_closes_the_feedback_loop_locally() {
    let (h, dirs) = start("2026-11-21T09:30:00Z").await;
    let request = |id: &str, to: &str| {
        serde_json::json!({"v": 1, "id": id, "to": [to], "subject": "hi", "body": "hello"})
            .to_string()
    };
    h.send("emails", request("e1", "bounce@simulator.amazonses.com"))
        .unwrap();
    h.send(
        "emails",
        request("e2", "complaint+signup@simulator.amazonses.com"),
    )
    .unwrap();
    h.send("emails", request("e3", "success@simulator.amazonses.com"))
        .unwrap();
    h.run_until_idle().await.unwrap();
    // The feedback source gathers for its 20 s batching window on the emulator's clock.
    h.advance(Duration::from_secs(30)).await.unwrap();
    assert_eq!(dirs.emails().len(), 3);
    for q in ["emails", "emails-dlq", "mail-feedback", "mail-feedback-dlq"] {
        assert!(h.messages(q).unwrap().is_empty(), "{q} not empty");
    }
    let feedback: Vec<String> = h
        .invocations_of(EMAIL_SENDER)
        .iter()
        .flat_map(|i| i.event["Records"].as_array().cloned().unwrap_or_default())
        .filter(|r| {
            r["eventSourceARN"]
                .as_str()
                .unwrap_or_default()
                .ends_with(":nightshift-mail-feedback")
        })
        .map(|r| {
            let event: serde_json::Value =
                serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            event["eventType"].as_str().unwrap().to_string()
        })
        .collect();
    let mut feedback = feedback;
    feedback.sort();
    assert_eq!(feedback, ["Bounce", "Complaint", "Delivery", "Delivery"]);

    let store = SqliteStore::open(dirs.db()).unwrap();
    assert!(
        store
            .suppression("bounce@simulator.amazonses.com")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .suppression("complaint+signup@simulator.amazonses.com")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .suppression("success@simulator.amazonses.com")
            .await
            .unwrap()
            .is_none()
    );

    // The next request to the bounced address is refused with the reason.
    h.send("emails", request("e4", "bounce@simulator.amazonses.com"))
        .unwrap();
    h.run_until_idle().await.unwrap();
    let dlq = h.emulator().dlq_list("emails-dlq", 10).unwrap();
    assert_eq!(dlq.len(), 1);
    let reason = dlq[0].reason.clone().unwrap();
    assert!(
        reason.starts_with(
            "recipient bounce@simulator.amazonses.com is suppressed: permanent bounce at 2026-11-21T09:30"
        ) && reason.ends_with("(Permanent/General: smtp; 550 5.1.1 user unknown)"),
        "{reason}"
    );
    assert_eq!(dirs.emails().len(), 3);
    h.shutdown().await;
}
