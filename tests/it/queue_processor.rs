//! queue-processor fed the SQS event fixtures.

use nightshift::adapters::memory::SentMessage;
use nightshift::batch::ERROR_ATTRIBUTE;
use nightshift::contracts::{EmailRequest, OutcomeStatus};

use crate::support::*;

/// The reason a dead-lettered copy carries.
fn dlq_reason(copy: &SentMessage) -> &str {
    &copy
        .attributes
        .iter()
        .find(|a| a.name == ERROR_ATTRIBUTE)
        .expect("a dead letter carries its reason")
        .value
}

#[tokio::test]
async fn mixed_batch_from_fixture() {
    let world = World::new();
    let deps = world.queue_processor();
    let response = queue_processor::handler(deps, lambda_event(sqs_event("sqs-event-jobs.json")))
        .await
        .unwrap();
    // Malformed and unknown-kind records are permanent: dead-lettered and acknowledged.
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let emails: Vec<EmailRequest> = world
        .queue
        .sent_to(EMAILS_URL)
        .iter()
        .map(|m| EmailRequest::parse(&m.body).unwrap())
        .collect();
    let ids: Vec<&str> = emails.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"order-confirmation-job-order-1001"));
    assert!(ids.contains(&"welcome-job-signup-42"));
    let order = emails.iter().find(|e| e.id.starts_with("order")).unwrap();
    assert_eq!(order.vars["total"], serde_json::json!("30.97"));

    let dlq = world.queue.sent_to(JOBS_DLQ_URL);
    assert_eq!(dlq.len(), 2);
    let reasons: Vec<String> = dlq
        .iter()
        .map(|m| {
            m.attributes
                .iter()
                .find(|a| a.name == ERROR_ATTRIBUTE)
                .unwrap()
                .value
                .clone()
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("malformed job: malformed json at line 1 column 20")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r
                == "unknown job kind \"invoice.paid\"; known kinds: inventory.adjusted, order.placed, user.follow_up, user.signup"),
        "{reasons:?}"
    );

    let outcomes = world.store.outcomes();
    assert_eq!(outcomes["job-order-1001"].status, OutcomeStatus::Succeeded);
    assert_eq!(outcomes["job-unknown-1"].status, OutcomeStatus::Failed);
    // Latency: first receive 09:31:10.250 − submitted 09:30:00, plus processing time.
    assert!(outcomes["job-order-1001"].latency_ms >= 70_250);
}

#[tokio::test]
async fn redelivered_job_enqueues_one_email() {
    let world = World::new();
    let deps = world.queue_processor();
    for _ in 0..2 {
        let response = queue_processor::handler(
            deps.clone(),
            lambda_event(sqs_event("sqs-event-order.json")),
        )
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(world.queue.sent_to(EMAILS_URL).len(), 1);
}

/// The invocation's trace (`Context::xray_trace_id`, Lambda's `Lambda-Runtime-Trace-Id`) goes
/// onto the email it enqueues as `AWSTraceHeader`, and a dead letter keeps the trace of the
/// record it copies (<https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>).
#[tokio::test]
async fn the_invocations_trace_rides_on_the_email_and_a_dead_letter_keeps_its_own() {
    let world = World::new();
    let invocation = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let upstream = "Root=1-5759e989-000000000000000000000002;Parent=0000000000000002;Sampled=1";
    let mut bad = record("m2", "not json", 1);
    bad.attributes
        .insert("AWSTraceHeader".into(), upstream.into());
    let order = record("m1", &fixture("jobs/order-placed.json"), 1);
    let mut event = lambda_event(event_of(vec![order, bad]));
    event.context.xray_trace_id = Some(invocation.into());
    let response = queue_processor::handler(world.queue_processor(), event)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let emails = world.queue.sent_to(EMAILS_URL);
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].options.trace_header.as_deref(), Some(invocation));
    let dlq = world.queue.sent_to(JOBS_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].options.trace_header.as_deref(), Some(upstream));

    // Without a trace (tracing off), the email carries none.
    let world = World::new();
    let response = queue_processor::handler(
        world.queue_processor(),
        lambda_event(sqs_event("sqs-event-order.json")),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        world.queue.sent_to(EMAILS_URL)[0].options.trace_header,
        None
    );
}

#[tokio::test]
async fn invalid_payload_goes_to_dlq_with_reason() {
    let world = World::new();
    let body = fixture("jobs/order-placed.json").replace("\"quantity\": 2", "\"quantity\": 0");
    let event = event_of(vec![record("m1", &body, 1)]);
    let response = queue_processor::handler(world.queue_processor(), lambda_event(event))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let dlq = world.queue.sent_to(JOBS_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq_reason(&dlq[0]),
        "invalid payload: `items[0].quantity` 0 is outside 1..=10000"
    );
    assert!(world.queue.sent_to(EMAILS_URL).is_empty());
    // The claim was released: a fixed job with the same id can run after a redrive.
    assert!(world.store.record("job:job-order-1001").is_none());
}

/// A job whose email email-sender would reject is an invalid payload: the job's outcome is
/// failed, the job is dead-lettered with the reason, and no email is enqueued.
#[tokio::test]
async fn a_job_whose_email_is_invalid_fails_instead_of_succeeding() {
    // A job id at the 128-character limit is a valid job, but its email id
    // (`order-confirmation-` + job id) is over the limit; an order_id with CR/LF is a valid
    // payload field that lands in the email's subject (header injection).
    let long_id = "j".repeat(128);
    let cases = [
        (
            fixture("jobs/order-placed.json").replace("job-order-1001", &long_id),
            long_id.clone(),
            "field `id`: is 147 characters, over the 128 limit",
        ),
        (
            fixture("jobs/order-placed.json").replace(
                "\"order_id\": \"1001\"",
                "\"order_id\": \"1001\\r\\nBcc: x@evil.example\"",
            ),
            "job-order-1001".to_string(),
            "field `subject`: contains a line break at byte 15 (header injection)",
        ),
    ];
    for (body, job_id, expected) in cases {
        let world = World::new();
        let event = event_of(vec![record("m1", &body, 1)]);
        let response = queue_processor::handler(world.queue_processor(), lambda_event(event))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        assert!(world.queue.sent_to(EMAILS_URL).is_empty());
        let dlq = world.queue.sent_to(JOBS_DLQ_URL);
        assert_eq!(dlq.len(), 1, "{job_id}");
        let reason = dlq_reason(&dlq[0]);
        assert!(
            reason.starts_with("invalid payload: email \"order-confirmation-")
                && reason.ends_with(expected),
            "{reason}"
        );
        let outcome = &world.store.outcomes()[&job_id];
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.error.as_deref(), Some(reason));
        assert!(world.store.record(&format!("job:{job_id}")).is_none());
    }
}

#[tokio::test]
async fn queue_outage_is_retried_and_releases_the_claim() {
    let world = World::new();
    world
        .queue
        .fail_next(nightshift::ports::QueueError::Transient("throttled".into()));
    let deps = world.queue_processor();
    let response = queue_processor::handler(
        deps.clone(),
        lambda_event(sqs_event("sqs-event-order.json")),
    )
    .await
    .unwrap();
    assert_eq!(
        failed_ids(&response),
        ["059f36b4-87a3-44ab-83d2-661700000001"]
    );
    assert!(world.store.record("job:job-order-1001").is_none());
    // The redelivery succeeds and sends the email exactly once.
    let response = queue_processor::handler(deps, lambda_event(sqs_event("sqs-event-order.json")))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.queue.sent_to(EMAILS_URL).len(), 1);
}

fn order_with_receive_count(count: u32) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = sqs_event("sqs-event-order.json");
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), count.to_string());
    event
}

#[tokio::test]
async fn a_failure_on_the_last_receive_is_recorded_failed_and_dead_lettered_with_its_reason() {
    let world = World::new();
    let deps = world.queue_processor();
    let last = nightshift::retry::RetryPlan::default().max_receive_count;
    // Before the last receive a queue outage is retried...
    world
        .queue
        .fail_next(nightshift::ports::QueueError::Transient("throttled".into()));
    let response = queue_processor::handler(
        deps.clone(),
        lambda_event(order_with_receive_count(last - 1)),
    )
    .await
    .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(world.store.outcomes().is_empty());
    // ...on the last one SQS would move it to the DLQ without a reason or an outcome: it is
    // dead-lettered here, with both.
    world
        .queue
        .fail_next(nightshift::ports::QueueError::Transient("throttled".into()));
    let response = queue_processor::handler(deps, lambda_event(order_with_receive_count(last)))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let dlq = world.queue.sent_to(JOBS_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq_reason(&dlq[0]).starts_with(&format!("retries exhausted after {last} attempts: ")),
        "{}",
        dlq_reason(&dlq[0])
    );
    let outcome = &world.store.outcomes()["job-order-1001"];
    assert_eq!(outcome.status, OutcomeStatus::Failed);
    assert_eq!(
        outcome.finished_at,
        nightshift::ports::Clock::now(world.clock.as_ref())
    );
    assert!(world.store.record("job:job-order-1001").is_none());
}

/// Runs the order fixture (first receive) while another invocation holds its claim for
/// `claim_s` more seconds; returns the visibility timeout the record was given.
async fn visibility_while_claimed_elsewhere(claim_s: i64) -> i32 {
    use nightshift::idempotency::fingerprint;
    use nightshift::ports::{ClaimRequest, Clock, Store};
    let world = World::new();
    let event = sqs_event("sqs-event-order.json");
    let envelope =
        nightshift::contracts::JobEnvelope::parse(event.records[0].body.as_deref().unwrap())
            .unwrap();
    let now = world.clock.now();
    let hash = fingerprint(&queue_processor::job_fingerprint(&envelope));
    let claim = ClaimRequest {
        now,
        until: now + chrono::Duration::seconds(claim_s),
        owner: "another-invocation",
        payload_hash: &hash,
    };
    world
        .store
        .claim("job:job-order-1001", &claim)
        .await
        .unwrap();
    let response = queue_processor::handler(world.queue_processor(), lambda_event(event))
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert!(world.queue.sent_to(EMAILS_URL).is_empty());
    let changes = world.queue.visibility_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    changes[0].2
}

#[tokio::test]
async fn a_job_in_progress_elsewhere_comes_back_when_its_claim_lapses() {
    // The backoff of a first receive is 5-10 s; the record waits for the claim instead.
    assert_eq!(visibility_while_claimed_elsewhere(300).await, 300);
}

/// The other half of the rule above: a claim about to lapse does not make the record come
/// back sooner than its backoff, so a busy key cannot burn receives faster than a failure
/// would (`maxReceiveCount` is sized for the backoff's horizon, `RetryPlan::derive`).
#[tokio::test]
async fn a_job_in_progress_elsewhere_waits_at_least_its_backoff() {
    // First receive: the upper half of the backoff's first step (5-10 s), not the claim's 1 s.
    let visibility = visibility_while_claimed_elsewhere(1).await;
    assert!((5..=10).contains(&visibility), "{visibility}");
}

#[tokio::test]
async fn a_reused_job_id_with_other_work_is_dead_lettered_not_skipped() {
    let world = World::new();
    let deps = world.queue_processor();
    let response = queue_processor::handler(
        deps.clone(),
        lambda_event(sqs_event("sqs-event-order.json")),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let mut event = sqs_event("sqs-event-order.json");
    let body = event.records[0].body.take().unwrap();
    event.records[0].body = Some(
        body.replace("\"quantity\":2", "\"quantity\":3")
            .replace("\"quantity\": 2", "\"quantity\": 3"),
    );
    assert_ne!(
        event.records[0].body.as_deref(),
        Some(body.as_str()),
        "the fixture changed"
    );
    let response = queue_processor::handler(deps, lambda_event(event))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let dlq = world.queue.sent_to(JOBS_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq_reason(&dlq[0]).contains("job:job-order-1001 was already used for another payload"),
        "{}",
        dlq_reason(&dlq[0])
    );
    // Neither a second email nor a changed outcome for the job that owns the id.
    assert_eq!(world.queue.sent_to(EMAILS_URL).len(), 1);
    assert_eq!(
        world.store.outcomes()["job-order-1001"].status,
        OutcomeStatus::Succeeded
    );
}

/// A record of `body` sent (and first received) at `sent`.
fn record_sent_at(
    id: &str,
    body: &str,
    receive_count: u32,
    sent: &str,
) -> aws_lambda_events::sqs::SqsMessage {
    let mut r = record(id, body, receive_count);
    let ms = sent
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_millis()
        .to_string();
    r.attributes.insert("SentTimestamp".into(), ms.clone());
    r.attributes
        .insert("ApproximateFirstReceiveTimestamp".into(), ms);
    r
}

fn signup_body(submitted_at: &str) -> String {
    serde_json::json!({"v":1,"id":"job-signup-7","kind":"user.signup",
        "payload":{"user_id":"u-7","email":"ada@example.com","name":"Ada"},
        "submitted_at": submitted_at})
    .to_string()
}

#[tokio::test]
async fn a_signup_schedules_its_follow_up_once_even_when_retried() {
    let world = World::new();
    let deps = world.queue_processor();
    let body = signup_body("2026-11-22T08:00:00Z");
    // The scheduler is throttled on the first try: the record is retried, and its welcome
    // email (same id) is enqueued again for email-sender to drop as a duplicate.
    world
        .scheduler
        .fail_next(nightshift::ports::ScheduleError::Transient(
            "throttled".into(),
        ));
    let first = queue_processor::handler(
        deps.clone(),
        lambda_event(event_of(vec![record_sent_at(
            "m1",
            &body,
            1,
            "2026-11-22T08:00:01Z",
        )])),
    )
    .await
    .unwrap();
    assert_eq!(first.batch_item_failures.len(), 1, "{first:?}");
    assert!(world.scheduler.schedules().is_empty());
    for receive in [2, 3] {
        let again = queue_processor::handler(
            deps.clone(),
            lambda_event(event_of(vec![record_sent_at(
                "m1",
                &body,
                receive,
                "2026-11-22T08:00:01Z",
            )])),
        )
        .await
        .unwrap();
        assert!(again.batch_item_failures.is_empty(), "{again:?}");
    }
    let schedules = world.scheduler.schedules();
    assert_eq!(schedules.len(), 1, "one schedule per id");
    assert_eq!(schedules[0].id, "follow-up-u-7");
    let due = world
        .scheduler
        .take_due("2026-11-25T08:00:00Z".parse().unwrap());
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, "user.follow_up");
    assert_eq!(
        due[0].submitted_at.to_rfc3339(),
        "2026-11-25T08:00:00+00:00"
    );

    // What Scheduler sends then becomes the getting-started email, once.
    let fired = serde_json::to_string(&due[0]).unwrap();
    for receive in [1, 2] {
        let response = queue_processor::handler(
            deps.clone(),
            lambda_event(event_of(vec![record_sent_at(
                "m2",
                &fired,
                receive,
                "2026-11-25T08:00:00Z",
            )])),
        )
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let getting_started: Vec<EmailRequest> = world
        .queue
        .sent_to(EMAILS_URL)
        .iter()
        .map(|m| EmailRequest::parse(&m.body).unwrap())
        .filter(|e| e.template.as_deref() == Some("getting_started"))
        .collect();
    assert_eq!(
        getting_started.len(),
        1,
        "the redelivery is a duplicate job"
    );
    assert_eq!(getting_started[0].to, ["ada@example.com"]);
}

#[tokio::test]
async fn a_signup_run_after_its_follow_up_time_schedules_it_just_after_the_event() {
    let world = World::new();
    let deps = world.queue_processor();
    // Submitted five days before it was sent (a producer's backlog): its follow-up time has
    // passed by the event's time, so the follow-up goes out a minute after it.
    let body = signup_body("2026-11-17T08:00:00Z");
    let response = queue_processor::handler(
        deps,
        lambda_event(event_of(vec![record_sent_at(
            "m1",
            &body,
            1,
            "2026-11-22T08:00:00Z",
        )])),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let schedule = world.scheduler.get("follow-up-u-7").unwrap();
    assert_eq!(
        schedule.when,
        nightshift::adapters::memory::When::At("2026-11-22T08:01:00Z".parse().unwrap())
    );
}

#[tokio::test]
async fn an_order_cancels_its_customers_follow_up_and_says_so() {
    let world = World::new();
    let deps = world.queue_processor();
    let signup = queue_processor::handler(
        deps.clone(),
        lambda_event(event_of(vec![record_sent_at(
            "m1",
            &signup_body("2026-11-22T08:00:00Z"),
            1,
            "2026-11-22T08:00:00Z",
        )])),
    )
    .await
    .unwrap();
    assert!(signup.batch_item_failures.is_empty());
    let order = serde_json::json!({"v":1,"id":"job-order-7","kind":"order.placed",
        "payload":{"order_id":"o-7","customer_email":"ada@example.com","customer_id":"u-7",
                   "currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price_cents":100}]},
        "submitted_at":"2026-11-23T08:00:00Z"})
    .to_string();
    let response = queue_processor::handler(
        deps,
        lambda_event(event_of(vec![record_sent_at(
            "m2",
            &order,
            1,
            "2026-11-23T08:00:00Z",
        )])),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(world.scheduler.schedules().is_empty(), "cancelled");
    let outcome = world.store.outcomes()["job-order-7"].clone();
    assert_eq!(outcome.status, OutcomeStatus::Succeeded);
    let record = world.store.record("job:job-order-7").unwrap();
    let result: serde_json::Value = serde_json::from_str(&record.result.unwrap()).unwrap();
    assert_eq!(result["cancelled"], serde_json::json!(["follow-up-u-7"]));
}
