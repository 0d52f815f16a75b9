//! email-sender fed the SQS event fixtures.

use std::time::Duration;

use nightshift::batch::ERROR_ATTRIBUTE;
use nightshift::ports::MailError;

use crate::support::*;

/// One invocation of email-sender with 30 s left, on one record: `body` as message `id`,
/// received for the `receive_count`-th time.
async fn send_one(
    deps: &std::sync::Arc<email_sender::Deps>,
    id: &str,
    body: &str,
    receive_count: u32,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let event = event_of(vec![record(id, body, receive_count)]);
    email_sender::handler(deps.clone(), lambda_event(event))
        .await
        .unwrap()
}

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
    let response = send_one(&deps, "m1", &body, 1).await;
    assert_eq!(failed_ids(&response), ["m1"], "throttling is retried");
    // Throttled means not sent: the claim is released, so the retry may send it.
    assert!(
        world
            .store
            .record("email:order-confirmation-job-order-1001")
            .is_none()
    );
    world.mailer.fail_next(MailError::Rejected(
        "MessageRejected: address blacklisted".into(),
    ));
    let response = send_one(&deps, "m1", &body, 2).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "rejection is permanent"
    );
    assert_eq!(world.queue.sent_to(EMAILS_DLQ_URL).len(), 1);
    // After a redrive the request can still be sent (the claim was released).
    let response = send_one(&deps, "m1", &body, 1).await;
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

/// `count` requests for `to`, with ids `{prefix}-0`, `{prefix}-1`, ..., as records `m0`, ...
fn requests(prefix: &str, count: usize, to: &[&str]) -> Vec<aws_lambda_events::sqs::SqsMessage> {
    (0..count)
        .map(|i| {
            let body = fixture("emails/order-confirmation.json")
                .replace(
                    "order-confirmation-job-order-1001",
                    &format!("{prefix}-{i}"),
                )
                .replace(
                    r#"["ada@example.com"]"#,
                    &serde_json::to_string(to).unwrap(),
                );
            record(&format!("m{i}"), &body, 1)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn pacing_counts_recipients_and_stops_before_the_deadline() {
    let world = World::new();
    let deps = world.email_sender(1.0);
    // 20 s left: sends may start in the first 20 - SEND_MARGIN = 5 s. Six requests to two
    // recipients each at one recipient a second: slots at 0, 2 and 4 s; the other three
    // would start at 6, 8 and 10 s, so they are not started and come back as failures.
    // (Counting messages, all six would have gone out by 5 s.)
    assert_eq!(email_sender::SEND_MARGIN, Duration::from_secs(15));
    let start = tokio::time::Instant::now();
    let mut event = lambda_event(event_of(requests(
        "paced",
        6,
        &["ada@example.com", "bob@example.com"],
    )));
    event.context = context(Duration::from_secs(20));
    let response = email_sender::handler(deps.clone(), event).await.unwrap();
    assert_eq!(world.mailer.sent().len(), 3);
    assert_eq!(response.batch_item_failures.len(), 3, "{response:?}");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(4),
        "no wait for a slot past the cutoff"
    );
    // The deferred requests were not claimed for good: their ids are free for the retry.
    let sent: Vec<String> = world
        .mailer
        .sent()
        .iter()
        .map(|e| e.request_id.clone())
        .collect();
    for id in failed_ids(&response) {
        let i = id.trim_start_matches('m');
        assert!(!sent.contains(&format!("paced-{i}")));
        assert!(world.store.record(&format!("email:paced-{i}")).is_none());
    }
    assert!(world.queue.sent_to(EMAILS_DLQ_URL).is_empty());
    // The next invocation sends them, from the pacer's next free slot (6 s) on.
    let retry: Vec<_> = requests("paced", 6, &["ada@example.com", "bob@example.com"])
        .into_iter()
        .filter(|r| failed_ids(&response).contains(r.message_id.as_ref().unwrap()))
        .collect();
    let mut event = lambda_event(event_of(retry));
    event.context = context(Duration::from_secs(60));
    let response = email_sender::handler(deps, event).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(world.mailer.sent().len(), 6);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test]
async fn an_unconfirmed_send_keeps_the_claim_until_the_deadline() {
    let world = World::new();
    // The claim's deadline comes from the invocation context, in real time.
    world.clock.set(chrono::Utc::now());
    let deps = world.email_sender(100.0);
    let body = fixture("emails/order-confirmation.json");
    let key = "email:order-confirmation-job-order-1001";
    world.mailer.fail_next(MailError::Unconfirmed(
        "ses send_email: timeout after the request was sent".into(),
    ));
    let response = send_one(&deps, "m1", &body, 1).await;
    assert_eq!(failed_ids(&response), ["m1"]);
    // The claim is held (in progress), and the record comes back once it has lapsed.
    let claim = world.store.record(key).expect("claim kept");
    assert_eq!(claim.result, None);
    let (_, _, visibility) = world.queue.visibility_changes().pop().unwrap();
    assert!((28..=30).contains(&visibility), "{visibility}");
    // Another delivery of the same id meanwhile does not send it.
    let response = send_one(&deps, "m2", &body, 1).await;
    assert_eq!(failed_ids(&response), ["m2"]);
    assert!(world.mailer.sent().is_empty());
    // After the deadline the retry sends it (the one duplicate this cannot rule out).
    world.clock.advance(chrono::Duration::seconds(31));
    let response = send_one(&deps, "m1", &body, 2).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(world.mailer.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_completion_after_a_send_is_retried_in_process() {
    use nightshift::ports::StoreError;
    let world = World::new();
    let deps = world.email_sender(100.0);
    let body = fixture("emails/order-confirmation.json");
    let key = "email:order-confirmation-job-order-1001";
    for _ in 0..email_sender::COMPLETE_ATTEMPTS - 1 {
        world
            .store
            .fail_next_complete(StoreError::Transient("throttled".into()));
    }
    let start = tokio::time::Instant::now();
    let response = send_one(&deps, "m1", &body, 1).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(start.elapsed(), Duration::from_millis(100 + 200 + 400));
    assert_eq!(
        world.store.record(key).unwrap().result.as_deref(),
        Some("mem-1")
    );

    // A store down for longer: the email is out, so the record is still acknowledged, and the
    // claim stays in progress (not released) so no redelivery sends it before the deadline.
    let other = body.replace("order-confirmation-job-order-1001", "other-1");
    for _ in 0..email_sender::COMPLETE_ATTEMPTS {
        world
            .store
            .fail_next_complete(StoreError::Transient("down".into()));
    }
    let response = send_one(&deps, "m2", &other, 1).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.mailer.sent().len(), 2);
    assert_eq!(world.store.record("email:other-1").unwrap().result, None);
}
