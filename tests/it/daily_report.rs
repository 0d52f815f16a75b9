//! daily-report fed both schedule payload shapes, on a known data set.

use nightshift::contracts::{EmailRequest, JobOutcome, OutcomeStatus};
use nightshift::ports::{Blobs, Store};

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

    let csv = String::from_utf8(
        world
            .blobs
            .get("reports/2026-11-21.csv")
            .await
            .unwrap()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
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

    let emails = world.queue.sent_to(EMAILS_URL);
    assert_eq!(emails.len(), 1);
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
    assert_eq!(world.queue.sent_to(EMAILS_URL).len(), 1);
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
    let csv = String::from_utf8(
        world
            .blobs
            .get("reports/2026-11-21.csv")
            .await
            .unwrap()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
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
