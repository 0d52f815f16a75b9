//! email-sender fed the SQS event fixtures.

use std::time::Duration;

use nightshift::batch::ERROR_ATTRIBUTE;
use nightshift::ports::MailError;

use crate::support::*;

#[tokio::test]
async fn sends_valid_and_dead_letters_header_injection() {
    let world = World::new();
    let response = email_sender::handler(
        world.email_sender(100.0),
        lambda_event(sqs_event("sqs-event-emails.json")),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let sent = world.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, ["ada@example.com"]);
    assert_eq!(sent[0].subject, "Your order 1001 is confirmed");
    assert!(
        sent[0].text.contains("Total: 30.97 EUR"),
        "{}",
        sent[0].text
    );
    assert!(
        sent[0]
            .html
            .as_deref()
            .unwrap()
            .contains("<strong>1001</strong>")
    );
    let dlq = world.queue.sent_to(EMAILS_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    let reason = &dlq[0]
        .attributes
        .iter()
        .find(|a| a.name == ERROR_ATTRIBUTE)
        .unwrap()
        .value;
    assert!(
        reason.contains("field `to[0]`: contains a line break (header injection)"),
        "{reason}"
    );
}

#[tokio::test]
async fn same_message_twice_sends_one_email() {
    let world = World::new();
    let deps = world.email_sender(100.0);
    let body = fixture("emails/order-confirmation.json");
    for attempt in 1..=2 {
        let event = event_of(vec![record("m1", &body, attempt)]);
        let response = email_sender::handler(deps.clone(), lambda_event(event))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    // Two identical requests in one batch (a duplicate send by a producer) also send once.
    let event = event_of(vec![record("m2", &body, 1), record("m3", &body, 1)]);
    let response = email_sender::handler(deps, lambda_event(event))
        .await
        .unwrap();
    assert_eq!(world.mailer.sent().len(), 1);
    // One of the pair may have found the other's claim in progress: it is retried, not sent.
    assert!(response.batch_item_failures.len() <= 1);
}

#[tokio::test]
async fn mailer_errors_are_classified() {
    let world = World::new();
    let deps = world.email_sender(100.0);
    let body = fixture("emails/order-confirmation.json");
    world.mailer.fail_next(MailError::Transient(
        "Throttling: Maximum sending rate exceeded".into(),
    ));
    let response = email_sender::handler(
        deps.clone(),
        lambda_event(event_of(vec![record("m1", &body, 1)])),
    )
    .await
    .unwrap();
    assert_eq!(failed_ids(&response), ["m1"], "throttling is retried");
    world.mailer.fail_next(MailError::Rejected(
        "MessageRejected: address blacklisted".into(),
    ));
    let response = email_sender::handler(
        deps.clone(),
        lambda_event(event_of(vec![record("m1", &body, 2)])),
    )
    .await
    .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "rejection is permanent"
    );
    assert_eq!(world.queue.sent_to(EMAILS_DLQ_URL).len(), 1);
    // After a redrive the request can still be sent (the claim was released).
    let response =
        email_sender::handler(deps, lambda_event(event_of(vec![record("m1", &body, 1)])))
            .await
            .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.mailer.sent().len(), 1);
}

#[tokio::test]
async fn broken_requests_name_the_problem() {
    let world = World::new();
    let deps = world.email_sender(100.0);
    let cases = [
        ("{\"v\":1", "invalid email request: malformed json"),
        (
            r#"{"v":1,"id":"x","to":["a@b.co"],"subject":"s","template":"nope"}"#,
            "unknown template \"nope\"",
        ),
        (
            r#"{"v":1,"id":"x","to":["a@b.co"],"subject":"s","template":"welcome"}"#,
            "template welcome.txt line 1: ",
        ),
    ];
    for (i, (body, expected)) in cases.iter().enumerate() {
        let event = event_of(vec![record(&format!("m{i}"), body, 1)]);
        email_sender::handler(deps.clone(), lambda_event(event))
            .await
            .unwrap();
        let dlq = world.queue.sent_to(EMAILS_DLQ_URL);
        let reason = &dlq[i]
            .attributes
            .iter()
            .find(|a| a.name == ERROR_ATTRIBUTE)
            .unwrap()
            .value;
        assert!(
            reason.contains(expected),
            "{reason} should contain {expected}"
        );
    }
    assert!(world.mailer.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn paces_to_the_configured_rate() {
    let world = World::new();
    let deps = world.email_sender(2.0);
    let records = (0..5)
        .map(|i| {
            let body = fixture("emails/order-confirmation.json")
                .replace("order-confirmation-job-order-1001", &format!("paced-{i}"));
            record(&format!("m{i}"), &body, 1)
        })
        .collect();
    let start = tokio::time::Instant::now();
    let mut event = lambda_event(event_of(records));
    event.context = context(Duration::from_secs(300));
    let response = email_sender::handler(deps, event).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.mailer.sent().len(), 5);
    // Five sends at 2/s: slots at 0, 0.5, 1.0, 1.5, 2.0 s.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}
