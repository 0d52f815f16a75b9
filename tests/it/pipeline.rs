//! The three functions chained through in-memory queues: job → email → outbox, and the
//! day's outcomes → report.

use nightshift::contracts::JobEnvelope;

use crate::support::*;

#[tokio::test]
async fn order_leads_to_exactly_one_confirmation_email() {
    let world = World::new();
    // The jobs run on the 21st, the day they were submitted.
    world.clock.set("2026-11-21T09:31:00Z".parse().unwrap());
    let processor = world.queue_processor();
    let sender = world.email_sender(100.0);
    // The same job delivered twice (an at-least-once redelivery).
    for _ in 0..2 {
        queue_processor::handler(
            processor.clone(),
            lambda_event(sqs_event("sqs-event-order.json")),
        )
        .await
        .unwrap();
    }
    let emails = world.drain_as_event(EMAILS_URL);
    email_sender::handler(sender.clone(), lambda_event(emails.clone()))
        .await
        .unwrap();
    // And the email request redelivered too.
    email_sender::handler(sender, lambda_event(emails))
        .await
        .unwrap();
    let sent = world.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].request_id, "order-confirmation-job-order-1001");
    assert_eq!(sent[0].to, ["ada@example.com"]);

    // The outcome feeds the next day's report.
    let job = JobEnvelope::parse(&fixture("jobs/order-placed.json")).unwrap();
    assert_eq!(job.submitted_at.to_rfc3339(), "2026-11-21T09:30:00+00:00");
    world.clock.set("2026-11-22T03:00:00Z".parse().unwrap());
    let summary = daily_report::handler(
        world.daily_report("Europe/Berlin"),
        lambda_event(serde_json::json!({"scheduled_time": "2026-11-22T03:00:00Z"})),
    )
    .await
    .unwrap();
    assert_eq!((summary.total, summary.failed), (1, 0));
}
