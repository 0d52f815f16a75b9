//! queue-processor's `inventory.adjusted` records from the inventory FIFO queue, with
//! in-memory ports: each `SequenceOutcome` and how the record ends (the end-to-end run on the
//! emulator with the real template is `inventory_on_the_emulator` below).

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use nightshift::adapters::memory::Consumed;
use nightshift::batch::ERROR_ATTRIBUTE;
use nightshift::contracts::OutcomeStatus;
use serde_json::{Value, json};

use crate::support::*;

pub const INVENTORY_URL: &str = "http://127.0.0.1:9324/000000000000/nightshift-inventory.fifo";
pub const INVENTORY_DLQ_URL: &str =
    "http://127.0.0.1:9324/000000000000/nightshift-inventory-dlq.fifo";

/// queue-processor wired as `from_env` wires it, on the world's ports.
fn processor(world: &World) -> Arc<queue_processor::Deps> {
    let deps = Arc::try_unwrap(world.queue_processor()).ok().unwrap();
    let plan = nightshift::retry::RetryPlan::default();
    let jobs = nightshift::batch::BatchConfig {
        jitter_seed: Some(1),
        backoff: plan.backoff,
        max_receive_count: Some(plan.max_receive_count),
        ..Default::default()
    };
    Arc::new(deps.with_inventory(queue_processor::inventory_config(
        &jobs,
        INVENTORY_URL.into(),
        INVENTORY_DLQ_URL.into(),
    )))
}

/// The body of an `inventory.adjusted` job.
pub fn adjustment(job_id: &str, sku: &str, sequence: u64, delta: i64) -> String {
    json!({
        "v": 1,
        "id": job_id,
        "kind": "inventory.adjusted",
        "payload": {"sku": sku, "sequence": sequence, "delta": delta},
        "submitted_at": "2026-11-22T07:59:00Z"
    })
    .to_string()
}

/// A record of the inventory FIFO queue (the Lambda guide's FIFO event, group = `sku`).
fn fifo_record(id: &str, sku: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut r = sqs_event("sqs-event-fifo.json").records.remove(0);
    r.message_id = Some(id.into());
    r.receipt_handle = Some(format!("rh-{id}-{receive_count}"));
    r.body = Some(body.into());
    r.event_source_arn =
        Some("arn:aws:sqs:us-east-1:000000000000:nightshift-inventory.fifo".into());
    r.attributes.insert("MessageGroupId".into(), sku.into());
    r.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    r
}

async fn run(deps: &Arc<queue_processor::Deps>, records: Vec<SqsMessage>) -> SqsBatchResponse {
    queue_processor::handler(deps.clone(), lambda_event(event_of(records)))
        .await
        .unwrap()
}

fn result_of(world: &World, job_id: &str) -> Value {
    let record = world.store.record(&format!("job:{job_id}")).unwrap();
    serde_json::from_str(&record.result.unwrap()).unwrap()
}

fn consumed(world: &World, sku: &str) -> Vec<(u64, Option<i64>)> {
    world
        .store
        .consumed(&queue_processor::jobs::inventory::store_key(sku))
        .into_iter()
        .map(|Consumed { sequence, delta }| (sequence, delta))
        .collect()
}

#[tokio::test]
async fn applied_already_applied_and_gap() {
    let world = World::new();
    let deps = processor(&world);
    // Applied: the balance is in the job's result.
    let response = run(
        &deps,
        vec![
            fifo_record("a1", "A", &adjustment("a1", "A", 1, 10), 1),
            fifo_record("b1", "B", &adjustment("b1", "B", 1, 5), 1),
        ],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        result_of(&world, "a1"),
        json!({"sku": "A", "sequence": 1, "delta": 10, "balance": 10})
    );
    // The same job redelivered: its claim is completed, nothing runs again.
    run(
        &deps,
        vec![fifo_record("a1", "A", &adjustment("a1", "A", 1, 10), 2)],
    )
    .await;
    // The producer resent sequence 1 under a new job id: AlreadyApplied, a success that
    // applies nothing.
    let response = run(
        &deps,
        vec![fifo_record(
            "a1-again",
            "A",
            &adjustment("a1-again", "A", 1, 10),
            1,
        )],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        result_of(&world, "a1-again"),
        json!({"sku": "A", "sequence": 1, "delta": 10, "already_applied": true})
    );
    // Gap: sequence 3 before 2 waits (retryable, backed off), and holds back the rest of its
    // group in the batch, while the other SKU goes on (SkipGroupOnError).
    let response = run(
        &deps,
        vec![
            fifo_record("a3", "A", &adjustment("a3", "A", 3, 1), 1),
            fifo_record("b2", "B", &adjustment("b2", "B", 2, -2), 1),
            fifo_record("a2", "A", &adjustment("a2", "A", 2, -4), 1),
        ],
    )
    .await;
    assert_eq!(failed_ids(&response), ["a2", "a3"]);
    assert!(
        world.store.record("job:a3").is_none(),
        "the claim is released"
    );
    let backoffs = world.queue.visibility_changes();
    assert_eq!(backoffs.len(), 1, "{backoffs:?}");
    assert_eq!(backoffs[0].0, INVENTORY_URL);
    assert_eq!(backoffs[0].1, "rh-a3-1");
    // Once 2 arrives, 3 follows.
    let response = run(
        &deps,
        vec![
            fifo_record("a2", "A", &adjustment("a2", "A", 2, -4), 2),
            fifo_record("a3", "A", &adjustment("a3", "A", 3, 1), 2),
        ],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        consumed(&world, "A"),
        [(1, Some(10)), (2, Some(-4)), (3, Some(1))]
    );
    assert_eq!(consumed(&world, "B"), [(1, Some(5)), (2, Some(-2))]);
    assert_eq!(result_of(&world, "a3")["balance"], 7);
    assert!(world.queue.sent_to(INVENTORY_DLQ_URL).is_empty());
    assert!(world.queue.sent_to(JOBS_DLQ_URL).is_empty());
}

#[tokio::test]
async fn the_readme_fixture_applies() {
    let world = World::new();
    let body = fixture("jobs/inventory-adjusted.json");
    let response = run(&processor(&world), vec![fifo_record("f", "A-1", &body, 1)]).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(result_of(&world, "job-inventory-a-1-1")["balance"], 25);
}

#[tokio::test]
async fn an_invalid_adjustment_is_dead_lettered_and_gives_up_its_number() {
    let world = World::new();
    let deps = processor(&world);
    let response = run(
        &deps,
        vec![
            fifo_record("c1", "C", &adjustment("c1", "C", 1, 3), 1),
            fifo_record("c2", "C", &adjustment("c2", "C", 2, 0), 1),
            fifo_record("c3", "C", &adjustment("c3", "C", 3, 4), 1),
        ],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let dlq = world.queue.sent_to(INVENTORY_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    let reason = dlq[0]
        .attributes
        .iter()
        .find(|a| a.name == ERROR_ATTRIBUTE)
        .unwrap();
    assert_eq!(
        reason.value,
        "invalid payload: `delta` 0 must be non-zero and within -1000000..=1000000"
    );
    // The dead letter keeps its group in the FIFO DLQ.
    assert_eq!(dlq[0].options.group_id.as_deref(), Some("C"));
    assert_eq!(
        consumed(&world, "C"),
        [(1, Some(3)), (2, None), (3, Some(4))]
    );
    assert_eq!(world.store.outcomes()["c2"].status, OutcomeStatus::Failed);
}

#[tokio::test]
async fn a_gap_given_up_on_the_last_receive_is_dead_lettered_without_applying() {
    let world = World::new();
    let deps = processor(&world);
    let max = nightshift::retry::RetryPlan::default().max_receive_count;
    let response = run(
        &deps,
        vec![fifo_record("d2", "D", &adjustment("d2", "D", 2, 1), max)],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let dlq = world.queue.sent_to(INVENTORY_DLQ_URL);
    assert_eq!(dlq.len(), 1);
    let reason = &dlq[0].attributes[0].value;
    assert_eq!(
        reason,
        &format!(
            "retries exhausted after {max} attempts: inventory:D: sequence 2 waits for sequence 1, not applied yet"
        )
    );
    // Its number is not skipped (1 is still missing): nothing of D applied.
    assert!(consumed(&world, "D").is_empty());
    // Sequence 1 then 2 (redriven) apply in order.
    run(
        &deps,
        vec![fifo_record("d1", "D", &adjustment("d1", "D", 1, 5), 1)],
    )
    .await;
    run(
        &deps,
        vec![fifo_record("d2r", "D", &adjustment("d2", "D", 2, 1), 1)],
    )
    .await;
    assert_eq!(consumed(&world, "D"), [(1, Some(5)), (2, Some(1))]);
}

/// The real template on the emulator, queue-processor in process: adjustments of three SKUs
/// sent interleaved to the inventory FIFO queue over its SQS endpoint, with a store failure
/// on one record the first time it runs (retried after its backoff), redeliveries of applied adjustments (the same job
/// resent, and the same sequence number under a new job id), and an invalid adjustment in
/// the middle of a SKU. Every SKU's sequence numbers are consumed exactly once, in order;
/// the invalid one is in the inventory DLQ with its reason; the balances are the sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_on_the_emulator_applies_each_sku_in_order_once() {
    use nightshift::ports::{Queue, SendOptions};
    use std::time::Duration;

    let memory = Arc::new(nightshift::adapters::memory::MemoryStore::default());
    // The last of B's adjustments: while a failed record waits out its backoff, the
    // emulator counts the records queued behind it in its group as visible work and
    // `run_until_idle` would not return (they are not receivable: SQS and the emulator
    // hold a group back while one of its messages is in flight), so the failure is
    // put where nothing of its group queues behind it. Records waiting behind a failure
    // are covered by `applied_already_applied_and_gap`.
    memory.fail_consume_once(
        &queue_processor::jobs::inventory::store_key("B"),
        5,
        nightshift::ports::StoreError::Transient("injected: store timed out".into()),
    );
    let dirs = crate::emulator::Dirs {
        root: tempfile::tempdir().unwrap(),
    };
    let mailer = Arc::new(nightshift::adapters::mail::OutboxMailer::new(dirs.outbox()).unwrap());
    let (h, _dirs) =
        crate::emulator::start_with("2026-11-21T09:30:00Z", dirs, memory.clone(), mailer).await;
    let sqs = nightshift::adapters::sqs::SqsQueue::for_endpoint(&h.endpoint(), "us-east-1");
    let url = format!("{}/000000000000/nightshift-inventory.fifo", h.endpoint());
    let deltas: [(&str, [i64; 5]); 3] = [
        ("A", [10, -3, 0, 7, -1]), // A3 (delta 0) is invalid
        ("B", [5, 5, -2, 1, 4]),
        ("C", [-1, -1, -1, 20, 3]),
    ];
    let mut sent = 0;
    let mut send = |sku: &str, job_id: String, sequence: u64, delta: i64, dedup: String| {
        sent += 1;
        let body = adjustment(&job_id, sku, sequence, delta);
        let (sqs, url, sku) = (&sqs, url.clone(), sku.to_string());
        async move {
            sqs.send(&url, &body, &[], &SendOptions::fifo(sku, dedup))
                .await
                .unwrap();
        }
    };
    // Interleaved: A1 B1 C1 A2 B2 C2 ... each SKU's adjustments in its own order.
    for i in 0..5 {
        for (sku, d) in &deltas {
            let seq = i as u64 + 1;
            send(
                sku,
                format!("{sku}{seq}"),
                seq,
                d[i],
                format!("{sku}-{seq}"),
            )
            .await;
        }
        if i == 2 {
            // Redeliveries of applied adjustments, past SQS's deduplication: C1 resent as it
            // was (its job id is completed), and B1 under a new job id (its sequence number
            // is consumed).
            send("C", "C1".into(), 1, -1, "C-1-again".into()).await;
            send("B", "B1-resent".into(), 1, 5, "B-1-again".into()).await;
        }
    }
    assert_eq!(sent, 17);
    h.run_until_idle().await.unwrap();
    // B5 failed once: it comes back after its backoff.
    h.advance(Duration::from_secs(30 * 60)).await.unwrap();
    h.run_until_idle().await.unwrap();

    for (sku, d) in &deltas {
        let got: Vec<(u64, Option<i64>)> = memory
            .consumed(&queue_processor::jobs::inventory::store_key(sku))
            .into_iter()
            .map(|c| (c.sequence, c.delta))
            .collect();
        let expected: Vec<(u64, Option<i64>)> = d
            .iter()
            .enumerate()
            .map(|(i, delta)| (i as u64 + 1, (*delta != 0).then_some(*delta)))
            .collect();
        assert_eq!(got, expected, "{sku}");
        let balance: i64 = d.iter().sum();
        let last = memory.record(&format!("job:{sku}5")).unwrap();
        let result: Value = serde_json::from_str(&last.result.unwrap()).unwrap();
        assert_eq!(result["balance"], balance, "{sku}");
    }
    let resent: Value =
        serde_json::from_str(&memory.record("job:B1-resent").unwrap().result.unwrap()).unwrap();
    assert_eq!(resent["already_applied"], true);
    // The invalid adjustment is in the inventory DLQ with its reason and its group.
    let dlq = h.emulator().dlq_list("inventory-dlq.fifo", 10).unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(
        dlq[0].reason.as_deref(),
        Some("invalid payload: `delta` 0 must be non-zero and within -1000000..=1000000")
    );
    assert!(dlq[0].body.contains("\"id\":\"A3\""), "{}", dlq[0].body);
    assert!(h.messages("inventory.fifo").unwrap().is_empty());
    // B5 really was failed once and retried.
    let b5_receives: Vec<String> = h
        .invocations_of(crate::emulator::QUEUE_PROCESSOR)
        .iter()
        .flat_map(|i| i.event["Records"].as_array().unwrap().clone())
        .filter(|r| r["body"].as_str().unwrap().contains("\"id\":\"B5\""))
        .map(|r| {
            r["attributes"]["ApproximateReceiveCount"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(b5_receives, ["1", "2"]);
    h.shutdown().await;
}
