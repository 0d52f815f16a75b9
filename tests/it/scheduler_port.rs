//! The Scheduler port (issue 12 items 3 and 4): its aws-sdk-scheduler adapter against the
//! emulator's EventBridge Scheduler API, and the "getting started" follow-up end to end on the
//! real template with the real handlers, on the manual clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nightshift::adapters::mail::OutboxMailer;
use nightshift::adapters::scheduler::{EventBridgeScheduler, SchedulerTarget};
use nightshift::adapters::sqlite::SqliteStore;
use nightshift::contracts::JobEnvelope;
use nightshift::ports::{Retryable, ScheduleError, Scheduler};
use nightshift_local::harness::{Harness, HarnessInvoker, HarnessOptions};
use nightshift_local::invoker::InProcessInvoker;
use serde_json::json;

use crate::emulator::{Dirs, EmulatorClockImpl, in_process_functions_with, workspace_root};

const DAY: Duration = Duration::from_secs(86_400);

// ------------------------------------------------------------- the adapter on the emulator

/// An emulator on a template of a `jobs` queue and an `app-jobs` schedule group, nothing
/// consuming the queue, on the manual clock from 2026-01-01T00:00:00Z.
async fn bare_emulator(dir: &Path) -> Harness {
    let template = dir.join("template.yaml");
    std::fs::write(
        &template,
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Jobs:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: jobs}\n  AppJobs:\n    Type: AWS::Scheduler::ScheduleGroup\n    Properties: {Name: app-jobs}\n",
    )
    .unwrap();
    let mut options = HarnessOptions::new(dir).starting_at("2026-01-01T00:00:00Z".parse().unwrap());
    options.up.template = template;
    options.up.env_file = None;
    Harness::start(options, HarnessInvoker::InProcess(InProcessInvoker::new()))
        .await
        .unwrap()
}

fn adapter(h: &Harness, group: &str) -> EventBridgeScheduler {
    EventBridgeScheduler::for_endpoint(
        &h.endpoint(),
        "us-east-1",
        SchedulerTarget {
            group: group.into(),
            role_arn: "arn:aws:iam::000000000000:role/app-scheduler".into(),
            queue_arn: "arn:aws:sqs:us-east-1:000000000000:jobs".into(),
        },
    )
}

fn job(id: &str, n: u32) -> JobEnvelope {
    JobEnvelope::new(
        id,
        "user.follow_up",
        json!({"n": n}),
        "2026-01-01T00:00:00Z".parse().unwrap(),
    )
}

/// The jobs on the `jobs` queue, in the order they were sent.
fn jobs_sent(h: &Harness) -> Vec<JobEnvelope> {
    h.messages("jobs")
        .unwrap()
        .into_iter()
        .map(|m| JobEnvelope::parse(&m.body).unwrap())
        .collect()
}

fn schedule(h: &Harness, name: &str) -> Option<serde_json::Value> {
    h.emulator()
        .scheduler_api()
        .get_schedule(name, Some("app-jobs"))
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_schedules_replaces_and_cancels_by_id_on_the_scheduler_api() {
    let dir = tempfile::tempdir().unwrap();
    let h = bare_emulator(dir.path()).await;
    let scheduler = adapter(&h, "app-jobs");
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();

    // The same id twice: one schedule, the second one (CreateSchedule's ConflictException,
    // then UpdateSchedule).
    scheduler
        .schedule_job("follow-up-u-1", t("2026-01-02T00:00:00Z"), &job("a", 1))
        .await
        .unwrap();
    scheduler
        .schedule_job("follow-up-u-1", t("2026-01-03T12:00:00Z"), &job("a", 2))
        .await
        .unwrap();
    let got = schedule(&h, "follow-up-u-1").expect("scheduled in the group");
    assert_eq!(got["ScheduleExpression"], "at(2026-01-03T12:00:00)");
    assert_eq!(got["ScheduleExpressionTimezone"], "UTC");
    assert_eq!(got["ActionAfterCompletion"], "DELETE");
    assert_eq!(got["FlexibleTimeWindow"]["Mode"], "OFF");
    assert_eq!(
        got["Target"]["RoleArn"],
        "arn:aws:iam::000000000000:role/app-scheduler"
    );
    assert_eq!(
        JobEnvelope::parse(got["Target"]["Input"].as_str().unwrap()).unwrap(),
        job("a", 2)
    );

    // Another one-time job, cancelled before its time: cancel says it was there, then not.
    scheduler
        .schedule_job("follow-up-u-2", t("2026-01-02T00:00:00Z"), &job("b", 1))
        .await
        .unwrap();
    assert!(scheduler.cancel("follow-up-u-2").await.unwrap());
    assert!(!scheduler.cancel("follow-up-u-2").await.unwrap());
    assert!(schedule(&h, "follow-up-u-2").is_none());

    // A recurring job every day at 09:00 Berlin time (08:00 UTC in winter).
    scheduler
        .schedule_recurring(
            "daily-digest",
            "0 9 * * ? *",
            chrono_tz::Europe::Berlin,
            &job("digest", 7),
        )
        .await
        .unwrap();

    h.advance(4 * DAY).await.unwrap();
    let sent = jobs_sent(&h);
    let ids: Vec<&str> = sent.iter().map(|j| j.id.as_str()).collect();
    // Each recurring occurrence is a job of its own, named and dated by its scheduled time;
    // the one-time job went out once, at its time, and its schedule is gone (DELETE).
    assert_eq!(
        ids,
        [
            "digest:2026-01-01T08:00:00Z",
            "digest:2026-01-02T08:00:00Z",
            "digest:2026-01-03T08:00:00Z",
            "a",
            "digest:2026-01-04T08:00:00Z",
        ]
    );
    assert_eq!(sent[3].payload, json!({"n": 2}), "the replacing envelope");
    assert_eq!(sent[1].submitted_at, t("2026-01-02T08:00:00Z"));
    assert!(
        schedule(&h, "follow-up-u-1").is_none(),
        "deleted after firing"
    );
    assert!(!scheduler.cancel("follow-up-u-1").await.unwrap());
    assert!(scheduler.cancel("daily-digest").await.unwrap());
    h.advance(DAY).await.unwrap();
    // (The queue's 4-day retention has dropped the first occurrence by now.)
    let last = jobs_sent(&h).pop().unwrap();
    assert_eq!(
        last.id, "digest:2026-01-04T08:00:00Z",
        "nothing after the cancel"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_refuses_what_cannot_succeed_as_permanent_errors() {
    let dir = tempfile::tempdir().unwrap();
    let h = bare_emulator(dir.path()).await;
    let scheduler = adapter(&h, "app-jobs");
    let at: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().unwrap();

    // An id that is no schedule name: refused before any request, naming it.
    let err = scheduler
        .schedule_job("follow-up/u-1", at, &job("a", 1))
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("\"follow-up/u-1\" contains '/'"),
        "{err}"
    );

    // Scheduler's own refusals: a time in the past, a cron field it cannot read, a group
    // that does not exist. Permanent, and nothing is left behind.
    let past: DateTime<Utc> = "2025-12-31T00:00:00Z".parse().unwrap();
    let err = scheduler
        .schedule_job("past", past, &job("p", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ScheduleError::Rejected(m) if m.contains("ValidationException")),
        "{err}"
    );
    let err = scheduler
        .schedule_recurring("bad-cron", "0 25 * * ? *", chrono_tz::UTC, &job("c", 1))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let err = adapter(&h, "no-such-group")
        .schedule_job("x", at, &job("x", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ScheduleError::Rejected(m) if m.contains("ResourceNotFoundException")),
        "{err}"
    );
    assert!(schedule(&h, "past").is_none() && schedule(&h, "bad-cron").is_none());

    // An unreachable endpoint is transient: a retry may succeed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = EventBridgeScheduler::for_endpoint(
        &format!("http://127.0.0.1:{port}"),
        "us-east-1",
        scheduler.target().clone(),
    );
    let err = down.cancel("anything").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    h.shutdown().await;
}

// ------------------------------------------------------- the follow-up, end to end

fn signup(n: u32, user: &str, name: &str, at: &str) -> String {
    json!({
        "v": 1,
        "id": format!("job-signup-{n}"),
        "kind": "user.signup",
        "payload": {"user_id": user, "email": format!("{user}@example.com"), "name": name},
        "submitted_at": at,
    })
    .to_string()
}

fn order(customer: &str, at: &str) -> String {
    json!({
        "v": 1,
        "id": format!("job-order-{customer}"),
        "kind": "order.placed",
        "payload": {
            "order_id": format!("o-{customer}"),
            "customer_email": format!("{customer}@example.com"),
            "customer_id": customer,
            "currency": "EUR",
            "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1200}],
        },
        "submitted_at": at,
    })
    .to_string()
}

/// The emails in the outbox with `subject`, by recipient.
fn sent_with_subject(dirs: &Dirs, subject: &str) -> Vec<String> {
    let mut to: Vec<String> = dirs
        .emails()
        .iter()
        .filter(|eml| eml.lines().any(|l| l == format!("Subject: {subject}")))
        .filter_map(|eml| {
            eml.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .map(str::to_string)
        })
        .collect();
    to.sort();
    to
}

/// The real template and handlers in process (queue-processor's scheduler on the
/// emulator's Scheduler API), state in `dirs`, the emulator's own state in `state`.
async fn start_app(at: &str, dirs: &Dirs, state: &Path) -> Harness {
    let endpoint: Arc<std::sync::OnceLock<String>> = Arc::default();
    let clock = Arc::new(EmulatorClockImpl(std::sync::OnceLock::new()));
    let store = Arc::new(SqliteStore::open(dirs.db()).unwrap());
    let mailer = Arc::new(OutboxMailer::new(dirs.outbox()).unwrap());
    let invoker = in_process_functions_with(dirs, endpoint.clone(), clock.clone(), store, mailer);
    let options = HarnessOptions::new(workspace_root())
        .starting_at(at.parse().unwrap())
        .state_dir(state);
    let h = Harness::start(options, HarnessInvoker::InProcess(invoker))
        .await
        .unwrap();
    endpoint.set(h.endpoint()).unwrap();
    let _ = clock.0.set(h.emulator().clock().clone());
    h
}

const GETTING_STARTED: &str = "Getting started with nightshift";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_gets_one_follow_up_three_days_later_unless_they_order_first() {
    let dirs = Dirs {
        root: tempfile::tempdir().unwrap(),
    };
    let state = tempfile::tempdir().unwrap();
    let h = start_app("2026-11-21T09:30:00Z", &dirs, state.path()).await;
    h.send("jobs", signup(1, "u-1", "Ada", "2026-11-21T09:30:00Z"))
        .unwrap();
    h.send("jobs", signup(2, "u-2", "Bob", "2026-11-21T09:30:00Z"))
        .unwrap();
    // The producer retries a send: the same signup twice keeps one schedule.
    h.send("jobs", signup(1, "u-1", "Ada", "2026-11-21T09:30:00Z"))
        .unwrap();
    h.run_until_idle().await.unwrap();
    assert_eq!(
        sent_with_subject(&dirs, "Welcome to nightshift"),
        ["u-1@example.com", "u-2@example.com"]
    );
    let api = h.emulator().scheduler_api().clone();
    let follow_up =
        |user: &str| api.get_schedule(&format!("follow-up-{user}"), Some("nightshift-jobs"));
    assert_eq!(
        follow_up("u-1").unwrap()["ScheduleExpression"],
        "at(2026-11-24T09:30:00)"
    );
    assert!(follow_up("u-2").is_ok());

    // A day later u-2 orders: their follow-up is cancelled.
    h.advance(DAY).await.unwrap();
    h.send("jobs", order("u-2", "2026-11-22T09:30:00Z"))
        .unwrap();
    h.run_until_idle().await.unwrap();
    assert!(follow_up("u-2").is_err(), "cancelled by the order");
    assert_eq!(
        sent_with_subject(&dirs, "Your order o-u-2 is confirmed"),
        ["u-2@example.com"]
    );

    // Just before three days: nothing yet. Just after: u-1's follow-up, once.
    h.advance(2 * DAY - Duration::from_secs(60)).await.unwrap();
    h.run_until_idle().await.unwrap();
    assert!(sent_with_subject(&dirs, GETTING_STARTED).is_empty());
    h.advance(Duration::from_secs(120)).await.unwrap();
    h.run_until_idle().await.unwrap();
    assert_eq!(
        sent_with_subject(&dirs, GETTING_STARTED),
        ["u-1@example.com"]
    );
    assert!(follow_up("u-1").is_err(), "deleted after firing");
    // A week later still exactly once, and nothing dead-lettered.
    h.advance(7 * DAY).await.unwrap();
    h.run_until_idle().await.unwrap();
    assert_eq!(
        sent_with_subject(&dirs, GETTING_STARTED),
        ["u-1@example.com"]
    );
    for q in ["jobs-dlq", "emails-dlq"] {
        assert!(h.messages(q).unwrap().is_empty(), "{q} not empty");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_scheduled_before_a_restart_fires_once_after_it() {
    let dirs = Dirs {
        root: tempfile::tempdir().unwrap(),
    };
    let state = tempfile::tempdir().unwrap();
    let h = start_app("2026-11-21T09:30:00Z", &dirs, state.path()).await;
    h.send("jobs", signup(1, "u-1", "Ada", "2026-11-21T09:30:00Z"))
        .unwrap();
    h.run_until_idle().await.unwrap();
    h.shutdown().await;
    drop(h);

    // The emulator comes back a day later on the same state dir: the schedule is kept.
    let h = start_app("2026-11-22T09:30:00Z", &dirs, state.path()).await;
    h.advance(3 * DAY).await.unwrap();
    h.run_until_idle().await.unwrap();
    assert_eq!(
        sent_with_subject(&dirs, GETTING_STARTED),
        ["u-1@example.com"]
    );
    h.shutdown().await;
    drop(h);

    // Another restart, back before the schedule's time: it fired, so it never fires again.
    let h = start_app("2026-11-23T09:30:00Z", &dirs, state.path()).await;
    h.advance(3 * DAY).await.unwrap();
    h.run_until_idle().await.unwrap();
    assert_eq!(
        sent_with_subject(&dirs, GETTING_STARTED),
        ["u-1@example.com"]
    );
    h.shutdown().await;
}
