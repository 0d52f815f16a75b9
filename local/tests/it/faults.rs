//! Fault injection in the emulator: the invoker wrapper (malformed partial-batch responses,
//! lost responses, invoke errors) per function and seeded, alone and under the harness with
//! the real template, where each fault must fail the whole batch and bring it back after its
//! visibility timeout, as Lambda does.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use nightshift_local::faults::{FaultPlan, FaultyInvoker, MALFORMED_RESPONSES};
use nightshift_local::harness::{Harness, HarnessInvoker, HarnessOptions};
use nightshift_local::invoker::{
    InProcessInvoker, InvokeError, InvokeOutcome, InvokeRequest, Invoker,
};
use nightshift_local::mapping::{SettleReason, settle};
use serde_json::json;

const JOBS_FUNCTION: &str = "nightshift-QueueProcessorFunction";
const EMAILS_FUNCTION: &str = "nightshift-EmailSenderFunction";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// An SQS event of one record with `body`, received `receives` times.
fn event(body: &str, receives: u32) -> Bytes {
    Bytes::from(
        json!({"Records": [{"messageId": "m-1", "receiptHandle": "h", "body": body,
            "attributes": {"ApproximateReceiveCount": receives.to_string()},
            "eventSource": "aws:sqs"}]})
        .to_string(),
    )
}

/// Functions that count their calls and succeed with an empty partial-batch response.
fn counting(calls: Arc<AtomicUsize>) -> InProcessInvoker {
    let ok = |calls: Arc<AtomicUsize>| {
        move |_payload: Bytes, _ctx| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(Bytes::from_static(br#"{"batchItemFailures":[]}"#)) }
        }
    };
    InProcessInvoker::new()
        .with_function(JOBS_FUNCTION, ok(calls.clone()))
        .with_function(EMAILS_FUNCTION, ok(calls))
}

#[tokio::test]
async fn malformed_responses_are_ones_lambda_rejects() {
    let ids = vec!["m-1".to_string()];
    for body in MALFORMED_RESPONSES {
        let settlement = settle(
            &ids,
            &InvokeOutcome::Success(Bytes::from_static(body.as_bytes())),
            true,
        );
        assert!(settlement.delete.is_empty(), "{body}: {settlement:?}");
        assert!(
            matches!(
                settlement.reason,
                SettleReason::MalformedResponse(_)
                    | SettleReason::EmptyItemIdentifier
                    | SettleReason::UnknownItemIdentifier(_)
            ),
            "{body}: {:?}",
            settlement.reason
        );
    }
}

#[tokio::test]
async fn decisions_are_seeded_per_function_and_follow_the_rate() {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner: Arc<dyn Invoker> = Arc::new(counting(calls.clone()));
    let plan = FaultPlan::parse("email-sender:invoke-error=0.5", 7).unwrap();
    let run = |plan: FaultPlan| {
        let faulty = FaultyInvoker::new(inner.clone(), plan);
        async move {
            let mut failed = Vec::new();
            for i in 0..200 {
                let req = InvokeRequest::new(EMAILS_FUNCTION, event(&format!("email {i}"), 1));
                failed.push(matches!(
                    faulty.invoke(req).await,
                    Err(InvokeError::Throttled(_))
                ));
            }
            // Another function is not selected by the prefix.
            for i in 0..50 {
                let req = InvokeRequest::new(JOBS_FUNCTION, event(&format!("job {i}"), 1));
                assert!(faulty.invoke(req).await.unwrap().is_success());
            }
            (failed, faulty.injected()["invoke-error"])
        }
    };
    let (first, injected) = run(plan.clone()).await;
    let hits = first.iter().filter(|f| **f).count();
    assert!((70..130).contains(&hits), "{hits} of 200");
    assert_eq!(injected, hits as u64);
    // The function is never reached when the invocation fails.
    assert_eq!(calls.load(Ordering::SeqCst), 200 - hits + 50);
    let (again, _) = run(plan).await;
    assert_eq!(first, again, "same seed, same decisions");
    let (other, _) = run(FaultPlan::parse("email-sender:invoke-error=0.5", 8).unwrap()).await;
    assert_ne!(first, other, "another seed decides otherwise");
}

#[tokio::test]
async fn redeliveries_roll_again_and_responses_are_dropped_after_the_function_ran() {
    let calls = Arc::new(AtomicUsize::new(0));
    let faulty = FaultyInvoker::new(
        Arc::new(counting(calls.clone())),
        FaultPlan::parse("drop-response=0.5", 3).unwrap(),
    );
    let mut outcomes = Vec::new();
    for receives in 1..=40 {
        let req = InvokeRequest::new(JOBS_FUNCTION, event("the same body", receives));
        outcomes.push(faulty.invoke(req).await.is_ok());
    }
    assert!(outcomes.contains(&true) && outcomes.contains(&false));
    // Lost responses come from invocations that did run.
    assert_eq!(calls.load(Ordering::SeqCst), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_response_brings_the_whole_batch_back_until_the_dlq() {
    let calls = Arc::new(AtomicUsize::new(0));
    let plan = FaultPlan::parse("queue-processor:malformed-response=1", 1).unwrap();
    let invoker = FaultyInvoker::new(Arc::new(counting(calls.clone())), plan);
    let h = Harness::start(
        HarnessOptions::new(workspace_root()),
        HarnessInvoker::Custom(Arc::new(invoker)),
    )
    .await
    .unwrap();
    h.send("jobs", r#"{"job":1}"#).unwrap();
    h.send("emails", r#"{"email":1}"#).unwrap();
    h.run_until_idle().await.unwrap();
    // The email batch succeeded; the job batch ran but its answer was malformed, so it waits
    // out the queue's 270 s visibility timeout.
    assert!(h.messages("emails").unwrap().is_empty());
    assert_eq!(h.messages("jobs").unwrap().len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    for _ in 0..15 {
        h.advance(Duration::from_secs(300)).await.unwrap();
    }
    // Fifteen receives (maxReceiveCount), each a whole-batch failure, then SQS's redrive.
    let jobs = h.invocations_of(JOBS_FUNCTION);
    assert_eq!(jobs.len(), 15);
    assert!(jobs.iter().all(|i| i.outcome == "success"));
    let dlq = h.messages("jobs-dlq").unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].receive_count, 15);
    assert!(dlq[0].dead_letter_source_arn.is_some());
    assert!(h.messages("jobs").unwrap().is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_errors_never_reach_the_function_and_retry_after_the_timeout() {
    // A seed under which the first two deliveries fail and the third passes.
    let mut chosen = None;
    for seed in 0..1000 {
        let plan = FaultPlan::parse("email-sender:invoke-error=0.5", seed).unwrap();
        let probe = FaultyInvoker::new(Arc::new(counting(Arc::default())), plan.clone());
        let mut fails = Vec::new();
        for receives in 1..=3 {
            let req = InvokeRequest::new(EMAILS_FUNCTION, event("hello", receives));
            fails.push(probe.invoke(req).await.is_err());
        }
        if fails == [true, true, false] {
            chosen = Some(plan);
            break;
        }
    }
    let plan = chosen.expect("one seed in a thousand fails twice, then passes");
    let calls = Arc::new(AtomicUsize::new(0));
    let invoker = FaultyInvoker::new(Arc::new(counting(calls.clone())), plan);
    let h = Harness::start(
        HarnessOptions::new(workspace_root()),
        HarnessInvoker::Custom(Arc::new(invoker)),
    )
    .await
    .unwrap();
    h.send("emails", "hello").unwrap();
    h.run_until_idle().await.unwrap();
    for round in 1..=2 {
        // Failed as a whole: back after the 270 s visibility timeout, not before.
        assert_eq!(h.invocations_of(EMAILS_FUNCTION).len(), round);
        h.advance(Duration::from_secs(260)).await.unwrap();
        assert_eq!(h.invocations_of(EMAILS_FUNCTION).len(), round);
        h.advance(Duration::from_secs(10)).await.unwrap();
    }
    let seen = h.invocations_of(EMAILS_FUNCTION);
    let outcomes: Vec<&str> = seen.iter().map(|i| i.outcome.as_str()).collect();
    assert_eq!(outcomes, ["invoke_error", "invoke_error", "success"]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "failed invocations never ran"
    );
    assert!(h.messages("emails").unwrap().is_empty());
    h.shutdown().await;
}
