//! queue-processor fed the SQS event fixtures.

use nightshift::batch::ERROR_ATTRIBUTE;
use nightshift::contracts::{EmailRequest, OutcomeStatus};

use crate::support::*;

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
                == "unknown job kind \"invoice.paid\"; known kinds: order.placed, user.signup"),
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
    let reason = &dlq[0]
        .attributes
        .iter()
        .find(|a| a.name == ERROR_ATTRIBUTE)
        .unwrap()
        .value;
    assert_eq!(
        reason,
        "invalid payload: `items[0].quantity` 0 is outside 1..=10000"
    );
    assert!(world.queue.sent_to(EMAILS_URL).is_empty());
    // The claim was released: a fixed job with the same id can run after a redrive.
    assert!(world.store.record("job:job-order-1001").is_none());
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
