//! Mail feedback through email-sender: SES's events (the AWS documentation's example
//! records, `tests/fixtures/feedback/`) on the feedback queue put hard-bounced and
//! complaining recipients on the suppression list, and a later request to them is a
//! permanent failure with the reason; transient bounces and deliveries suppress nobody;
//! unreadable feedback is dead-lettered, not lost. Each invocation's EMF document is
//! asserted exactly, as in `metrics.rs`.

use nightshift::batch::ERROR_ATTRIBUTE;
use std::sync::Arc;

use nightshift::ports::{Clock, Store, StoreError, SuppressionCause};
use serde_json::{Value, json};

use crate::support::*;

const RECIPIENT: &str = "recipient@example.com";

fn request(id: &str, to: &[&str]) -> String {
    json!({"v": 1, "id": id, "to": to, "subject": "hi", "body": "hello"}).to_string()
}

/// The `nightshift-error` reasons of what was dead-lettered to `url`.
fn reasons(world: &World, url: &str) -> Vec<String> {
    world
        .queue
        .sent_to(url)
        .iter()
        .map(|m| {
            m.attributes
                .iter()
                .find(|a| a.name == ERROR_ATTRIBUTE)
                .map(|a| a.value.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// The feedback invocation's EMF document: the counts in `COUNTS` order of
/// `email_sender::feedback` (bounces, transient bounces, complaints, deliveries, suppressed,
/// dead-lettered), written sorted by name.
fn feedback_document(at: i64, counts: [u64; 6]) -> Value {
    let names = [
        "Bounces",
        "TransientBounces",
        "Complaints",
        "Deliveries",
        "RecipientsSuppressed",
        "FeedbackDeadLettered",
    ];
    let mut pairs: Vec<(&str, u64)> = names.into_iter().zip(counts).collect();
    pairs.sort();
    let mut root = json!({"Function": "email-sender"});
    let mut definitions = Vec::new();
    for (name, n) in pairs {
        root[name] = json!(n);
        definitions.push(json!({"Name": name, "Unit": "Count"}));
    }
    root["_aws"] = json!({
        "Timestamp": at,
        "CloudWatchMetrics": [{
            "Namespace": "nightshift",
            "Dimensions": [["Function"]],
            "Metrics": definitions,
        }],
    });
    root
}

/// email-sender with its feedback source, after one feedback invocation on `records`
/// (acknowledged, every one), whose EMF counts must be `counts` ([`feedback_document`]).
async fn after_feedback(
    world: &World,
    records: Vec<(&str, String)>,
    counts: [u64; 6],
) -> Arc<email_sender::Deps> {
    let deps = world.email_sender_with_feedback(100.0);
    let now = world.clock.now().timestamp_millis();
    let records = records
        .into_iter()
        .map(|(id, body)| feedback_record(id, &body))
        .collect();
    let response = email_sender::handler(deps.clone(), lambda_event(event_of(records)))
        .await
        .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response:?}");
    assert_eq!(world.metrics.take(), [feedback_document(now, counts)]);
    deps
}

/// One email request `id` to `to` through `deps`; acknowledged, sent or dead-lettered.
async fn send(deps: &Arc<email_sender::Deps>, id: &str, to: &[&str]) {
    let records = vec![record(&format!("m-{id}"), &request(id, to), 1)];
    let response = email_sender::handler(deps.clone(), lambda_event(event_of(records)))
        .await
        .unwrap();
    assert!(failed_ids(&response).is_empty(), "{response:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hard_bounce_suppresses_and_the_next_send_is_dead_lettered_with_the_reason() {
    let world = World::new();
    let bounce = vec![("f1", fixture("feedback/ses-bounce-permanent.json"))];
    let deps = after_feedback(&world, bounce, [1, 0, 0, 0, 1, 0]).await;
    let suppression = world.store.suppression(RECIPIENT).await.unwrap().unwrap();
    assert_eq!(suppression.cause, SuppressionCause::Bounce);

    // A request to the address, in another case: refused, dead-lettered, nothing sent.
    send(&deps, "e1", &["Recipient@Example.com"]).await;
    assert!(world.mailer.sent().is_empty());
    assert_eq!(
        reasons(&world, EMAILS_DLQ_URL),
        [
            "recipient Recipient@Example.com is suppressed: permanent bounce at \
          2017-08-05T00:41:02.669+00:00 (Permanent/General: smtp; 550 5.1.1 user unknown)"
        ]
    );
    let document = &world.metrics.take()[0];
    assert_eq!(document["EmailsSuppressed"], 1, "{document}");
    assert_eq!(document["EmailsDeadLettered"], 1, "{document}");
    assert_eq!(document["EmailsSent"], 0, "{document}");
    // The claim was released: once the address is off the list, a redrive sends it.
    assert!(world.store.record("email:e1").is_none());

    // Another recipient is not affected.
    send(&deps, "e2", &["ada@example.com"]).await;
    assert_eq!(world.mailer.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn transient_bounces_and_deliveries_suppress_nobody() {
    let world = World::new();
    let records = vec![
        ("f1", fixture("feedback/ses-bounce-transient.json")),
        ("f2", fixture("feedback/ses-delivery.json")),
    ];
    let deps = after_feedback(&world, records, [0, 1, 0, 1, 0, 0]).await;
    assert_eq!(world.store.suppression(RECIPIENT).await.unwrap(), None);
    send(&deps, "e1", &[RECIPIENT]).await;
    assert_eq!(world.mailer.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_complaint_suppresses_the_whole_request() {
    let world = World::new();
    let complaint = vec![("f1", fixture("feedback/ses-complaint.json"))];
    let deps = after_feedback(&world, complaint, [0, 0, 1, 0, 1, 0]).await;
    // One suppressed recipient of two: the request is refused as a whole.
    send(&deps, "e1", &["ada@example.com", RECIPIENT]).await;
    assert!(world.mailer.sent().is_empty());
    assert_eq!(
        reasons(&world, EMAILS_DLQ_URL),
        [
            "recipient recipient@example.com is suppressed: complaint at \
          2017-08-05T00:41:02.669+00:00 (abuse)"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_feedback_is_dead_lettered_with_a_clear_reason() {
    let world = World::new();
    let bounce_without_bounce = json!({"eventType": "Bounce", "mail": {"messageId": "m"}});
    let records = vec![
        ("f1", "{not json".to_string()),
        ("f2", bounce_without_bounce.to_string()),
        ("f3", fixture("feedback/ses-bounce-permanent.json")),
    ];
    after_feedback(&world, records, [1, 0, 0, 0, 1, 2]).await;
    let reasons = reasons(&world, FEEDBACK_DLQ_URL);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("invalid mail feedback: feedback is not an SES event: "),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[1],
        "invalid mail feedback: Bounce event has no bounce object"
    );
    // Nothing went to the emails DLQ: feedback has its own.
    assert!(world.queue.sent_to(EMAILS_DLQ_URL).is_empty());
}

/// A store that cannot be reached while feedback arrives: the record is retried, not
/// dead-lettered, and nothing is counted until it is stored.
#[tokio::test(start_paused = true)]
async fn a_store_outage_retries_the_feedback() {
    let world = World::new();
    world
        .store
        .fail_next_suppress(StoreError::Transient("throttled".into()));
    let deps = world.email_sender_with_feedback(100.0);
    let now = world.clock.now().timestamp_millis();
    let records = vec![feedback_record(
        "f1",
        &fixture("feedback/ses-bounce-permanent.json"),
    )];
    let response = email_sender::handler(deps, lambda_event(event_of(records)))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["f1"]);
    assert!(world.queue.sent_to(FEEDBACK_DLQ_URL).is_empty());
    assert_eq!(
        world.metrics.take(),
        [feedback_document(now, [0, 0, 0, 0, 0, 0])]
    );
}

/// email-sender as the template deploys it (`Deps::from_env`) with its feedback source and the
/// fault list `faults` (`NIGHTSHIFT_FAULTS`, as the emulator's `--faults` hands it over).
fn email_sender_from_env(dir: &std::path::Path, faults: Option<&str>) -> Arc<email_sender::Deps> {
    let d = dir.display();
    let mut vars = vec![
        (
            "AWS_LAMBDA_FUNCTION_NAME",
            "nightshift-EmailSenderFunction".to_string(),
        ),
        ("MAIL_FROM", "nightshift@example.com".to_string()),
        ("STORE_URL", format!("sqlite://{d}/state.db")),
        ("MAIL_URL", format!("file://{d}/outbox")),
        ("EMAILS_QUEUE_URL", EMAILS_URL.to_string()),
        ("EMAILS_DLQ_URL", EMAILS_DLQ_URL.to_string()),
        ("MAIL_FEEDBACK_QUEUE_URL", FEEDBACK_URL.to_string()),
        ("MAIL_FEEDBACK_DLQ_URL", FEEDBACK_DLQ_URL.to_string()),
    ];
    if let Some(faults) = faults {
        vars.push(("NIGHTSHIFT_FAULTS", faults.to_string()));
    }
    let env = nightshift::config::Env::from_map(vars);
    let queue = Arc::new(nightshift::adapters::memory::MemoryQueue::default());
    Arc::new(email_sender::Deps::from_env(&env, queue).unwrap())
}

/// Fault injection reaches the feedback event source as it reaches the emails one: with
/// `error` at rate 1 for email-sender, every feedback record fails with the injected retryable
/// error (and comes back), and so does every email request; without faults both are
/// acknowledged. The feedback source's batch processor used to be built without the
/// function's faults, so `--faults` never struck mail feedback.
#[tokio::test(start_paused = true)]
async fn injected_faults_strike_the_feedback_source_too() {
    let dir = tempfile::tempdir().unwrap();
    let feedback = || {
        lambda_event(event_of(vec![
            feedback_record("f1", &fixture("feedback/ses-delivery.json")),
            feedback_record("f2", &fixture("feedback/ses-bounce-transient.json")),
        ]))
    };
    let emails = || {
        lambda_event(event_of(vec![record(
            "e1",
            &request("e1", &["success@simulator.amazonses.com"]),
            1,
        )]))
    };

    let faulty = email_sender_from_env(dir.path(), Some("email-sender:error=1"));
    let response = email_sender::handler(faulty.clone(), feedback())
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["f1", "f2"]);
    let response = email_sender::handler(faulty, emails()).await.unwrap();
    assert_eq!(failed_ids(&response), ["e1"]);

    // Another function's faults leave email-sender alone; no faults, nothing fails.
    for faults in [Some("queue-processor:error=1"), None] {
        let deps = email_sender_from_env(dir.path(), faults);
        let response = email_sender::handler(deps, feedback()).await.unwrap();
        assert!(failed_ids(&response).is_empty(), "{faults:?}: {response:?}");
    }
}
