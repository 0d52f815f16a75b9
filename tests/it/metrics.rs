//! The metrics each function flushes (CloudWatch EMF): a batch through each handler, and the
//! exact documents it wrote. [`World::metrics`] checks every document against the EMF
//! specification (`nightshift::metrics::validate`) as it is written. Time is paused, so the
//! durations are exact (0 where nothing waits, the pacer's slots where it does).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::LambdaEvent;
use nightshift::adapters::memory::MemoryMetrics;
use nightshift::contracts::{JobOutcome, OutcomeStatus};
use nightshift::ports::{Clock, MailError, QueueError, Store};
use serde_json::{Value, json};

use crate::infra::{MetricRef, template_metrics, template_metrics_namespace};
use crate::support::*;

/// An EMF document of `function` with the `dimensions` after `Function`, holding `metrics`
/// (name, unit, value), stamped `at` (epoch ms), in the default namespace.
fn emf(
    at: i64,
    function: &str,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, &str, Value)],
) -> Value {
    let mut root = json!({ "Function": function });
    let mut keys = vec!["Function"];
    for (key, value) in dimensions {
        root[*key] = json!(value);
        keys.push(key);
    }
    let mut definitions = Vec::new();
    for (name, unit, value) in metrics {
        root[*name] = value.clone();
        definitions.push(json!({ "Name": name, "Unit": unit }));
    }
    root["_aws"] = json!({
        "Timestamp": at,
        "CloudWatchMetrics": [{
            "Namespace": "nightshift",
            "Dimensions": [keys],
            "Metrics": definitions,
        }],
    });
    root
}

/// The documents flushed since the last call, checked to carry `at` as their timestamp.
fn flushed(metrics: &MemoryMetrics, at: i64) -> Vec<Value> {
    let documents = metrics.take();
    for document in &documents {
        assert_eq!(
            document["_aws"]["Timestamp"].as_i64(),
            Some(at),
            "{document}"
        );
    }
    documents
}

/// A queue-processor job document: under `Function, Kind, Outcome`, rolled up under
/// `Function, Outcome` and `Function` (the sets the template's failure-rate alarm reads).
fn job(at: i64, kind: &str, outcome: &str, n: u64, durations: Value) -> Value {
    let mut document = emf(
        at,
        "queue-processor",
        &[("Kind", kind), ("Outcome", outcome)],
        &[
            ("JobDuration", "Milliseconds", durations),
            ("Jobs", "Count", json!(n)),
        ],
    );
    document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([
        ["Function", "Kind", "Outcome"],
        ["Function", "Outcome"],
        ["Function"]
    ]);
    document
}

fn batch(at: i64, size: u64, not_started: u64) -> Value {
    emf(
        at,
        "queue-processor",
        &[],
        &[
            ("BatchSize", "Count", json!(size)),
            ("RecordsNotStarted", "Count", json!(not_started)),
            ("RecordsSkipped", "Count", json!(0)),
        ],
    )
}

/// One queue-processor invocation with `left` before its deadline; the documents it flushed.
async fn processed(world: &World, event: &SqsEvent, left: Duration) -> Vec<Value> {
    let now = world.clock.now().timestamp_millis();
    let event = LambdaEvent::new(event.clone(), context(left));
    queue_processor::handler(world.queue_processor(), event)
        .await
        .unwrap();
    flushed(&world.metrics, now)
}

#[tokio::test(start_paused = true)]
async fn queue_processor_counts_jobs_by_kind_and_outcome() {
    let world = World::new();
    let now = world.clock.now().timestamp_millis();
    let event = sqs_event("sqs-event-jobs.json");
    let left = Duration::from_secs(30);
    // The order job's email cannot be enqueued: retried. The signup job succeeds; the
    // malformed and the unknown-kind records are dead-lettered under the kind "unknown".
    world
        .queue
        .fail_next(QueueError::Transient("throttled".into()));
    assert_eq!(
        processed(&world, &event, left).await,
        [
            batch(now, 4, 0),
            job(now, "order.placed", "retried", 1, json!(0)),
            job(now, "unknown", "dead-lettered", 2, json!([0, 0])),
            job(now, "user.signup", "succeeded", 1, json!(0)),
        ]
    );
    // The same batch again: the signup job is a duplicate, the order job runs now.
    assert_eq!(
        processed(&world, &event, left).await,
        [
            batch(now, 4, 0),
            job(now, "order.placed", "succeeded", 1, json!(0)),
            job(now, "unknown", "dead-lettered", 2, json!([0, 0])),
            job(now, "user.signup", "duplicate-skipped", 1, json!(0)),
        ]
    );
    // One second left, less than the deadline margin: no record starts.
    assert_eq!(
        processed(&world, &event, Duration::from_secs(1)).await,
        [batch(now, 4, 4)]
    );
}

#[tokio::test(start_paused = true)]
async fn email_sender_counts_sends_recipients_and_pacing() {
    let world = World::new();
    let now = world.clock.now().timestamp_millis();
    // One recipient a second: the second request waits 1 s (the first one's recipient), the
    // third 3 s (the second one's two).
    let deps = world.email_sender(1.0);
    world
        .mailer
        .fail_next(MailError::Rejected("no such user".into()));
    let request = |id: &str, to: &[&str]| {
        json!({"v": 1, "id": id, "to": to, "subject": "hi", "body": "hello"}).to_string()
    };
    let records = vec![
        record("m1", &request("e1", &["a@example.com"]), 1),
        record("m2", &request("e2", &["b@example.com", "c@example.com"]), 1),
        record("m3", &request("e3", &["d@example.com"]), 1),
        record("m4", "{not json", 1),
    ];
    email_sender::handler(deps.clone(), lambda_event(event_of(records)))
        .await
        .unwrap();
    // The collector writes metrics sorted by name.
    let document = |counts: [u64; 7], pacer_wait: Value, send_duration: Value| {
        let mut metrics: Vec<(&str, &str, Value)> = [
            "EmailsDeadLettered",
            "EmailsRejected",
            "EmailsSent",
            "EmailsThrottled",
            "EmailsUnconfirmed",
            "Recipients",
            "RecordsProcessed",
        ]
        .into_iter()
        .zip(counts)
        .map(|(name, n)| (name, "Count", json!(n)))
        .collect();
        // No recipient of these requests is suppressed (mail_feedback.rs counts that).
        metrics.push(("EmailsSuppressed", "Count", json!(0)));
        metrics.push(("PacerWait", "Milliseconds", pacer_wait));
        metrics.push(("SendDuration", "Milliseconds", send_duration));
        metrics.sort_by_key(|(name, _, _)| *name);
        emf(now, "email-sender", &[], &metrics)
    };
    assert_eq!(
        flushed(&world.metrics, now),
        // dead-lettered, rejected, sent, throttled, unconfirmed, recipients, processed
        [document(
            [2, 1, 2, 0, 0, 3, 4],
            json!([0, 1000, 3000]),
            json!([0, 0, 0])
        )]
    );

    // The mailer throttles: the record comes back, nothing is dead-lettered. Its send slot
    // is the one after the last batch's last send (1 s later, for its one recipient).
    world.mailer.fail_next(MailError::Transient(
        "throttling: maximum sending rate exceeded".into(),
    ));
    let records = vec![record("m5", &request("e5", &["e@example.com"]), 1)];
    let response = email_sender::handler(deps, lambda_event(event_of(records)))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["m5"]);
    assert_eq!(
        flushed(&world.metrics, now),
        [document([0, 0, 0, 1, 0, 0, 1], json!(1000), json!(0))]
    );
}

async fn outcome(world: &World, id: &str, finished_at: &str) {
    let at = finished_at.parse().unwrap();
    world
        .store
        .record_outcome(&JobOutcome {
            v: 1,
            job_id: id.into(),
            kind: "order.placed".into(),
            status: OutcomeStatus::Succeeded,
            submitted_at: at,
            finished_at: at,
            latency_ms: 10,
            error: None,
        })
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn daily_report_counts_reports_backfills_and_rows() {
    let world = World::new();
    let now = world.clock.now().timestamp_millis();
    // Two jobs on the 20th (Berlin), whose report is missing, and three on the 21st.
    outcome(&world, "a", "2026-11-20T09:00:00Z").await;
    outcome(&world, "b", "2026-11-20T10:00:00Z").await;
    outcome(&world, "c", "2026-11-21T09:00:00Z").await;
    outcome(&world, "d", "2026-11-21T10:00:00Z").await;
    outcome(&world, "e", "2026-11-21T11:00:00Z").await;
    let deps = world.daily_report("Europe/Berlin");
    let event = json!({"scheduled_time": "2026-11-22T01:00:00Z"});
    let summary = daily_report::handler(deps.clone(), lambda_event(event.clone()))
        .await
        .unwrap();
    assert_eq!(summary.backfilled.len(), 1);
    let report = |generated: u64, backfilled: u64, rows: u64, durations: Option<Value>| {
        let mut metrics = vec![
            ("ReportRows", "Count", json!(rows)),
            ("ReportsBackfilled", "Count", json!(backfilled)),
            ("ReportsGenerated", "Count", json!(generated)),
        ];
        if let Some(durations) = durations {
            metrics.insert(0, ("ReportDuration", "Milliseconds", durations));
        }
        emf(now, "daily-report", &[], &metrics)
    };
    assert_eq!(
        flushed(&world.metrics, now),
        [report(2, 1, 5, Some(json!([0, 0])))]
    );

    // Run again: both reports exist, nothing is built.
    daily_report::handler(deps.clone(), lambda_event(event))
        .await
        .unwrap();
    assert_eq!(flushed(&world.metrics, now), [report(0, 0, 0, None)]);

    // A failed invocation (the day is not over) still flushes its metrics.
    let early = json!({"date": "2026-11-22"});
    assert!(
        daily_report::handler(deps, lambda_event(early))
            .await
            .is_err()
    );
    assert_eq!(flushed(&world.metrics, now), [report(0, 0, 0, None)]);
}

/// Every metric the documents name, as the template would read it: for each dimension set,
/// the metric under those keys with the document's values.
fn emitted(documents: &[Value]) -> BTreeSet<MetricRef> {
    let mut found = BTreeSet::new();
    for document in documents {
        for directive in document["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            let namespace = directive["Namespace"].as_str().unwrap();
            for set in directive["Dimensions"].as_array().unwrap() {
                let dimensions: BTreeMap<String, String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| {
                        let k = k.as_str().unwrap();
                        (k.to_string(), document[k].as_str().unwrap().to_string())
                    })
                    .collect();
                for metric in directive["Metrics"].as_array().unwrap() {
                    found.insert(MetricRef {
                        namespace: namespace.to_string(),
                        name: metric["Name"].as_str().unwrap().to_string(),
                        dimensions: dimensions.clone(),
                    });
                }
            }
        }
    }
    found
}

/// The template's alarms and dashboard read only metrics the functions emit, under the
/// dimensions they emit them with: a metric renamed in a function, or a dimension dropped,
/// fails here instead of leaving an alarm that never fires (CloudWatch accepts an alarm on a
/// metric that does not exist).
#[tokio::test(start_paused = true)]
async fn the_template_reads_only_metrics_the_functions_emit() {
    let world = World::new();
    let mut documents = Vec::new();
    // Jobs of every outcome: retried, dead-lettered and succeeded, then duplicate-skipped.
    let event = sqs_event("sqs-event-jobs.json");
    world
        .queue
        .fail_next(QueueError::Transient("throttled".into()));
    for _ in 0..2 {
        documents.extend(processed(&world, &event, Duration::from_secs(30)).await);
    }
    let request =
        json!({"v": 1, "id": "e1", "to": ["a@example.com"], "subject": "hi", "body": "x"});
    let records = vec![record("m1", &request.to_string(), 1)];
    email_sender::handler(world.email_sender(1.0), lambda_event(event_of(records)))
        .await
        .unwrap();
    outcome(&world, "a", "2026-11-21T09:00:00Z").await;
    let event = json!({"scheduled_time": "2026-11-22T01:00:00Z"});
    daily_report::handler(world.daily_report("Europe/Berlin"), lambda_event(event))
        .await
        .unwrap();
    documents.extend(world.metrics.take());
    let emitted = emitted(&documents);

    let namespace = template_metrics_namespace();
    let read = template_metrics(&namespace);
    assert!(read.len() >= 10, "{read:?}");
    for metric in &read {
        let found = emitted.iter().any(|e| {
            e.namespace == metric.namespace
                && e.name == metric.name
                && e.dimensions.len() == metric.dimensions.len()
                && metric.dimensions.iter().all(|(k, v)| {
                    // A SEARCH leaves a dimension's value open.
                    e.dimensions.get(k).is_some_and(|e| v.is_empty() || e == v)
                })
        });
        assert!(
            found,
            "the template reads {metric:?}, which no function emits; emitted: {emitted:#?}"
        );
    }
}
