//! daily-report fed both schedule payload shapes, on a known data set.

use chrono::NaiveDate;
use nightshift::contracts::{EmailRequest, JobOutcome, OutcomeStatus};
use nightshift::ports::{Blobs, Queue, Retryable, Store};

use crate::support::*;

/// 10 jobs on 2026-11-21 in Berlin (including one at 23:30 local = 22:30 UTC), plus one on each
/// neighbouring day that must not be counted.
async fn seed(world: &World) {
    let mut rows = vec![
        ("before", "2026-11-20T22:59:59Z", "order.placed", 1, None),
        ("after", "2026-11-21T23:00:00Z", "order.placed", 1, None),
    ];
    let day = [
        ("d1", "2026-11-20T23:00:00Z", "order.placed", 100, None),
        ("d2", "2026-11-21T08:00:00Z", "order.placed", 200, None),
        ("d3", "2026-11-21T09:00:00Z", "order.placed", 300, None),
        (
            "d4",
            "2026-11-21T10:00:00Z",
            "order.placed",
            400,
            Some("invalid payload: `items` must not be empty"),
        ),
        ("d5", "2026-11-21T11:00:00Z", "user.signup", 500, None),
        ("d6", "2026-11-21T12:00:00Z", "user.signup", 600, None),
        ("d7", "2026-11-21T13:00:00Z", "user.signup", 700, None),
        (
            "d8",
            "2026-11-21T14:00:00Z",
            "invoice.paid",
            800,
            Some("unknown job kind"),
        ),
        (
            "d9",
            "2026-11-21T15:00:00Z",
            "order.placed",
            900,
            Some("invalid payload: `items` must not be empty"),
        ),
        ("d10", "2026-11-21T22:30:00Z", "order.placed", 1000, None),
    ];
    rows.extend(day);
    for (id, at, kind, latency, error) in rows {
        world
            .store
            .record_outcome(&JobOutcome {
                v: 1,
                job_id: id.into(),
                kind: kind.into(),
                status: if error.is_some() {
                    OutcomeStatus::Failed
                } else {
                    OutcomeStatus::Succeeded
                },
                submitted_at: at.parse().unwrap(),
                finished_at: at.parse().unwrap(),
                latency_ms: latency,
                error: error.map(str::to_string),
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn scheduler_input_builds_yesterdays_report() {
    let world = World::new();
    seed(&world).await;
    let deps = world.daily_report("Europe/Berlin");
    let event: serde_json::Value = serde_json::from_str(&fixture("scheduler-input.json")).unwrap();
    let summary = daily_report::handler(deps, lambda_event(event))
        .await
        .unwrap();
    assert_eq!(summary.date.to_string(), "2026-11-21");
    assert_eq!((summary.total, summary.failed), (10, 3));

    let csv = blob_text(&world, "reports/2026-11-21.csv").await;
    for line in [
        "summary,total,10",
        "summary,succeeded,7",
        "summary,failed,3",
        "latency,p50_ms,500",
        "latency,p95_ms,1000",
        "kind_succeeded,order.placed,4",
        "kind_failed,order.placed,2",
        "kind_succeeded,user.signup,3",
        "kind_failed,invoice.paid,1",
        "error,invalid payload: `items` must not be empty,2",
        "error,unknown job kind,1",
    ] {
        assert!(csv.lines().any(|l| l == line), "missing {line:?} in\n{csv}");
    }
    let html = String::from_utf8(
        world
            .blobs
            .get("reports/2026-11-21.html")
            .await
            .unwrap()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("<svg") && html.contains("order.placed"));
    assert_eq!(
        world
            .blobs
            .content_type("reports/2026-11-21.html")
            .as_deref(),
        Some("text/html")
    );

    // The day before had a job and no report: this run made it too, after its own.
    assert_eq!(
        summary.backfilled,
        ["2026-11-20".parse::<NaiveDate>().unwrap()]
    );
    let emails = world.queue.sent_to(EMAILS_URL);
    assert_eq!(emails.len(), 2);
    assert_eq!(
        EmailRequest::parse(&emails[1].body).unwrap().id,
        "daily-report-2026-11-20"
    );
    let email = EmailRequest::parse(&emails[0].body).unwrap();
    assert_eq!(email.id, "daily-report-2026-11-21");
    assert_eq!(email.to, ["ops@example.com"]);
    assert_eq!(
        email.subject,
        "nightshift daily report 2026-11-21: 10 jobs, 3 failed"
    );
}

#[tokio::test]
async fn legacy_scheduled_event_gives_the_same_report() {
    let world = World::new();
    seed(&world).await;
    let event: serde_json::Value = serde_json::from_str(&fixture("scheduled-event.json")).unwrap();
    let summary = daily_report::handler(world.daily_report("Europe/Berlin"), lambda_event(event))
        .await
        .unwrap();
    assert_eq!(summary.date.to_string(), "2026-11-21");
    assert_eq!(summary.total, 10);
}

#[tokio::test]
async fn a_retried_schedule_writes_once_and_emails_once() {
    let world = World::new();
    seed(&world).await;
    let deps = world.daily_report("Europe/Berlin");
    let event: serde_json::Value = serde_json::from_str(&fixture("scheduler-input.json")).unwrap();
    let first = daily_report::handler(deps.clone(), lambda_event(event.clone()))
        .await
        .unwrap();
    let second = daily_report::handler(deps, lambda_event(event))
        .await
        .unwrap();
    assert!(!first.already_done && second.already_done);
    assert_eq!(first.total, second.total);
    // One email for the date and one for the backfilled day before, none on the retry.
    assert_eq!(first.backfilled.len(), 1);
    assert!(second.backfilled.is_empty());
    assert_eq!(world.queue.sent_to(EMAILS_URL).len(), 2);
}

#[tokio::test]
async fn zone_decides_the_day() {
    let world = World::new();
    seed(&world).await;
    // In UTC, 01:00 on the 22nd reports the 21st UTC: d1 (23:00 UTC on the 20th) is out,
    // `after` (23:00 UTC on the 21st) is in.
    let event = serde_json::json!({"scheduled_time": "2026-11-22T01:00:00Z"});
    let summary = daily_report::handler(world.daily_report("UTC"), lambda_event(event))
        .await
        .unwrap();
    assert_eq!(summary.total, 10);
    let csv = blob_text(&world, "reports/2026-11-21.csv").await;
    assert!(csv.contains("summary,time_zone,UTC"));
}

#[tokio::test]
async fn bad_events_are_errors_that_say_why() {
    let world = World::new();
    let deps = world.daily_report("Europe/Berlin");
    let err = daily_report::handler(
        deps.clone(),
        lambda_event(serde_json::json!({"scheduled_time": "noon"})),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid schedule event: field `scheduled_time`"),
        "{err}"
    );
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "InvalidEvent");
    let err = daily_report::handler(deps, lambda_event(serde_json::json!("x")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected a JSON object"));
    assert!(world.blobs.keys().is_empty());
}

/// Records a succeeded job that finished at `finished` (submitted an hour before).
async fn finished(world: &World, id: &str, finished: &str) {
    let at: chrono::DateTime<chrono::Utc> = finished.parse().unwrap();
    world
        .store
        .record_outcome(&JobOutcome {
            v: 1,
            job_id: id.into(),
            kind: "user.signup".into(),
            status: OutcomeStatus::Succeeded,
            submitted_at: at - chrono::Duration::hours(1),
            finished_at: at,
            latency_ms: 10,
            error: None,
        })
        .await
        .unwrap();
}

/// The schedule's event for the report of `date` (04:00 Berlin the next day, in winter).
fn scheduled_for(date: &str) -> serde_json::Value {
    let day: NaiveDate = date.parse().unwrap();
    let next = day.succ_opt().unwrap();
    serde_json::json!({"scheduled_time": format!("{next}T03:00:00Z")})
}

async fn report(world: &World, event: serde_json::Value) -> daily_report::ReportSummary {
    daily_report::handler(world.daily_report("Europe/Berlin"), lambda_event(event))
        .await
        .unwrap()
}

async fn blob_text(world: &World, key: &str) -> String {
    let bytes = world.blobs.get(key).await.unwrap().unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn report_ids(world: &World) -> Vec<String> {
    world
        .queue
        .sent_to(EMAILS_URL)
        .iter()
        .map(|m| EmailRequest::parse(&m.body).unwrap().id)
        .collect()
}

#[tokio::test]
async fn a_skipped_or_failed_night_is_backfilled_by_the_next_run() {
    let world = World::new();
    world.clock.set("2026-11-30T08:00:00Z".parse().unwrap());
    for (id, at) in [
        ("a", "2026-11-25T10:00:00Z"),
        ("b", "2026-11-26T10:00:00Z"),
        ("c", "2026-11-27T10:00:00Z"),
    ] {
        finished(&world, id, at).await;
    }
    report(&world, scheduled_for("2026-11-25")).await;
    // The nights of the 26th and the 27th never ran (skipped, or failed on every retry);
    // the 28th has no jobs at all. The run for the 28th makes all three.
    let summary = report(&world, scheduled_for("2026-11-28")).await;
    assert_eq!(summary.total, 0);
    assert_eq!(
        summary.backfilled,
        ["2026-11-26", "2026-11-27"].map(|d| d.parse::<NaiveDate>().unwrap())
    );
    assert_eq!(
        report_ids(&world),
        // The run's own date first, then the missing ones, oldest first.
        [
            "daily-report-2026-11-25",
            "daily-report-2026-11-28",
            "daily-report-2026-11-26",
            "daily-report-2026-11-27"
        ]
    );
    for day in ["2026-11-26", "2026-11-27", "2026-11-28"] {
        assert!(
            world
                .blobs
                .get(&format!("reports/{day}.csv"))
                .await
                .unwrap()
                .is_some(),
            "{day}"
        );
    }
    // The next run finds nothing missing.
    let summary = report(&world, scheduled_for("2026-11-29")).await;
    assert!(summary.backfilled.is_empty());
}

/// Every report email a run sends, its own day's and the backfilled ones, carries the run's
/// trace (`AWSTraceHeader`), so the email-sender's work is part of the schedule's trace
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>).
#[tokio::test]
async fn a_runs_report_emails_carry_its_trace() {
    let world = World::new();
    world.clock.set("2026-11-30T08:00:00Z".parse().unwrap());
    finished(&world, "a", "2026-11-25T10:00:00Z").await;
    finished(&world, "b", "2026-11-27T10:00:00Z").await;
    report(&world, scheduled_for("2026-11-25")).await;
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let mut event = lambda_event(scheduled_for("2026-11-28"));
    event.context.xray_trace_id = Some(trace.into());
    let summary = daily_report::handler(world.daily_report("Europe/Berlin"), event)
        .await
        .unwrap();
    assert_eq!(summary.backfilled.len(), 2);
    let traces: Vec<Option<String>> = world
        .queue
        .sent_to(EMAILS_URL)
        .into_iter()
        .map(|m| m.options.trace_header)
        .collect();
    // The first run had no trace (tracing off); the second's three emails carry its own.
    assert_eq!(
        traces,
        [
            None,
            Some(trace.into()),
            Some(trace.into()),
            Some(trace.into())
        ]
    );
}

#[tokio::test]
async fn a_fresh_deployment_does_not_mail_a_week_of_empty_reports() {
    let world = World::new();
    world.clock.set("2026-11-30T08:00:00Z".parse().unwrap());
    let summary = report(&world, scheduled_for("2026-11-28")).await;
    assert!(summary.backfilled.is_empty());
    assert_eq!(report_ids(&world), ["daily-report-2026-11-28"]);
}

#[tokio::test]
async fn a_job_finished_after_the_report_ran_is_in_the_next_days_report() {
    let world = World::new();
    world.clock.set("2026-11-30T08:00:00Z".parse().unwrap());
    // Submitted on the 21st, finished on the 21st: counted on the 21st.
    finished(&world, "on-time", "2026-11-21T20:00:00Z").await;
    let first = report(&world, scheduled_for("2026-11-21")).await;
    assert_eq!(first.total, 1);
    // Submitted on the 21st, finished after the report ran (a backlog, a backoff, a
    // redrive): it lands in the report of the day it finished, not in none.
    world
        .store
        .record_outcome(&JobOutcome {
            v: 1,
            job_id: "late".into(),
            kind: "order.placed".into(),
            status: OutcomeStatus::Failed,
            submitted_at: "2026-11-21T22:00:00Z".parse().unwrap(),
            finished_at: "2026-11-22T05:00:00Z".parse().unwrap(),
            latency_ms: 25_200_000,
            error: Some("retries exhausted after 15 attempts: smtp 421".into()),
        })
        .await
        .unwrap();
    let second = report(&world, scheduled_for("2026-11-22")).await;
    assert_eq!((second.total, second.failed), (1, 1));
    let again = report(&world, scheduled_for("2026-11-21")).await;
    assert!(again.already_done);
    assert_eq!(again.total, 1);
}

#[tokio::test]
async fn force_regenerates_a_report_with_a_new_email() {
    let world = World::new();
    world.clock.set("2026-11-30T08:00:00Z".parse().unwrap());
    finished(&world, "a", "2026-11-21T10:00:00Z").await;
    assert_eq!(report(&world, scheduled_for("2026-11-21")).await.total, 1);
    // An outcome recorded for that day afterwards (e.g. restored from a backup).
    finished(&world, "b", "2026-11-21T11:00:00Z").await;
    let plain = report(&world, serde_json::json!({"date": "2026-11-21"})).await;
    assert!(plain.already_done);
    assert_eq!(plain.total, 1);
    let forced = report(
        &world,
        serde_json::json!({"date": "2026-11-21", "force": true}),
    )
    .await;
    assert!(!forced.already_done);
    assert_eq!(forced.total, 2);
    let ids = report_ids(&world);
    assert_eq!(ids.len(), 2);
    // Named after the invocation, so Lambda's retries of the same event mail once.
    assert_eq!(ids[1], "daily-report-2026-11-21-forced-test-request");
    let csv = world
        .blobs
        .get("reports/2026-11-21.csv")
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&csv).contains("summary,total,2"));
}

#[tokio::test]
async fn a_report_for_a_day_not_over_is_refused_and_stores_nothing() {
    let world = World::new();
    // World's clock: 2026-11-22T08:00Z, 09:00 in Berlin.
    for date in ["2026-11-22", "2026-11-23"] {
        let err = daily_report::handler(
            world.daily_report("Europe/Berlin"),
            lambda_event(serde_json::json!({"date": date})),
        )
        .await
        .unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.to_string().starts_with(&format!(
                "the report for {date} can only be made once that day has ended"
            )),
            "{err}"
        );
    }
    assert!(world.blobs.keys().is_empty());
    assert!(world.store.record("report:2026-11-22").is_none());
    // Yesterday is over: it works, and a later run of the same date is not blocked.
    report(&world, serde_json::json!({"date": "2026-11-21"})).await;
}

#[tokio::test]
async fn a_job_given_up_then_redriven_is_counted_on_each_day_it_ended() {
    let world = World::new();
    let deps = world.queue_processor();
    let last = nightshift::retry::RetryPlan::default().max_receive_count;
    let mut event = sqs_event("sqs-event-order.json");
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), last.to_string());
    // Day 1 (the 21st in Berlin): the last receive fails, the job is given up: failed outcome,
    // dead-lettered with its reason.
    world.clock.set("2026-11-21T15:00:00Z".parse().unwrap());
    world
        .queue
        .fail_next(nightshift::ports::QueueError::Transient("throttled".into()));
    queue_processor::handler(deps.clone(), lambda_event(event))
        .await
        .unwrap();
    assert_eq!(world.queue.sent_to(JOBS_DLQ_URL).len(), 1);
    world.clock.set("2026-11-22T03:30:00Z".parse().unwrap());
    let first = report(&world, scheduled_for("2026-11-21")).await;
    assert_eq!((first.total, first.failed), (1, 1));
    // Day 3: the cause is fixed and the DLQ redriven; the copy is a new receive and succeeds.
    world.clock.set("2026-11-23T10:00:00Z".parse().unwrap());
    let response = queue_processor::handler(deps, lambda_event(sqs_event("sqs-event-order.json")))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    world.clock.set("2026-11-24T03:30:00Z".parse().unwrap());
    let third = report(&world, scheduled_for("2026-11-23")).await;
    assert_eq!((third.total, third.failed), (1, 0));
    // The report of the day it failed stays as it was mailed.
    let again = report(&world, scheduled_for("2026-11-21")).await;
    assert!(again.already_done);
    assert_eq!((again.total, again.failed), (1, 1));
    // And a forced regeneration still finds the failure: the store keeps an outcome per
    // (job, finish time), so the success of the 23rd does not replace the 21st's failure.
    let forced = report(
        &world,
        serde_json::json!({"date": "2026-11-21", "force": true}),
    )
    .await;
    assert!(!forced.already_done);
    assert_eq!((forced.total, forced.failed), (1, 1));
}

/// A record SQS dead-letters on its own (the function crashed or timed out on every receive)
/// leaves no job outcome, so the day's figures cannot count it; the report shows what waits in
/// each watched DLQ instead, in the summary, the CSV, the HTML and the email.
#[tokio::test]
async fn a_record_sqs_dead_lettered_without_an_outcome_shows_in_the_report() {
    let world = World::new();
    world.clock.set("2026-11-22T03:30:00Z".parse().unwrap());
    // What SQS's redrive leaves behind: the original body in the DLQ, no outcome anywhere.
    let body = fixture("jobs/order-placed.json");
    world
        .queue
        .send(
            JOBS_DLQ_URL,
            &body,
            &[],
            &nightshift::ports::SendOptions::default(),
        )
        .await
        .unwrap();
    let summary = report(&world, scheduled_for("2026-11-21")).await;
    assert_eq!((summary.total, summary.failed), (0, 0));
    assert_eq!(summary.dead_letters, 1);
    let csv = blob_text(&world, "reports/2026-11-21.csv").await;
    assert!(
        csv.contains("dead_letters_now,nightshift-jobs-dlq,1\n"),
        "{csv}"
    );
    assert!(
        csv.contains("dead_letters_now,nightshift-emails-dlq,0\n"),
        "{csv}"
    );
    let html = world
        .blobs
        .get("reports/2026-11-21.html")
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&html).contains("<td>nightshift-jobs-dlq</td><td>1</td>"));
    let email = EmailRequest::parse(&world.queue.sent_to(EMAILS_URL)[0].body).unwrap();
    assert_eq!(email.vars["dead_letters_total"], 1);
    assert_eq!(
        email.vars["dead_letters"][0]["queue"],
        "nightshift-jobs-dlq"
    );

    // A depth that cannot be read fails the run (retried by Lambda, then the on-failure
    // destination) instead of mailing a report that silently omits it.
    world.clock.set("2026-11-23T03:30:00Z".parse().unwrap());
    // The store answers first, then the DLQ depth read fails.
    world
        .queue
        .fail_next(nightshift::ports::QueueError::Transient("throttled".into()));
    let err = daily_report::handler(
        world.daily_report("Europe/Berlin"),
        lambda_event(scheduled_for("2026-11-22")),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("dead-letter queue depth: queue temporarily unavailable: throttled"),
        "{err}"
    );
}
