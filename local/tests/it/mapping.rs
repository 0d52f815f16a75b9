//! The SQS event source mapping: settlement rules, batching, the 6 MB cap, concurrency, the
//! event's shape, redelivery and the dead-letter queue, shutdown. In-memory engine on a manual
//! clock, in-process functions that record what they get and answer what each test wants.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use nightshift_local::clock::{self, ManualClock};
use nightshift_local::invoker::{
    BoxFuture, ExitInfo, FunctionError, InProcessInvoker, InvokeContext, InvokeError,
    InvokeOutcome, InvokeRequest, InvokeResponse, Invoker, Slot,
};
use nightshift_local::mapping::{
    self, MappingConfig, MappingHandle, MappingStats, SettleReason, Settlement, Verdict, settle,
};
use nightshift_local::shutdown::{Shutdown, Signal};
use nightshift_local::sqs::{MessageAttributeValue, OutgoingMessage, SqsEngine};
use nightshift_local::template::{LoadOptions, Template};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const FUNCTION: &str = "worker";
const QUEUE: &str = "jobs";
const DLQ: &str = "jobs-dlq";
const REGION: &str = "eu-west-1";

/// Guards every await that could hang; never reached when the tests pass.
const GUARD: Duration = Duration::from_secs(30);

fn t0() -> DateTime<Utc> {
    "2026-03-01T08:00:00Z".parse().unwrap()
}

// ------------------------------------------------------------------ harness

/// One invocation as the function saw it.
#[derive(Debug, Clone)]
struct Call {
    raw: Bytes,
    event: SqsEvent,
    request_id: String,
}

impl Call {
    fn bodies(&self) -> Vec<String> {
        self.event
            .records
            .iter()
            .map(|r| r.body.clone().unwrap())
            .collect()
    }
}

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }

    fn get(&self, i: usize) -> Call {
        self.0.lock().unwrap()[i].clone()
    }
}

type Answer = dyn Fn(&SqsEvent) -> Result<String, FunctionError> + Send + Sync;

/// A function that records its events and answers with `answer`.
fn recording<F>(calls: &Calls, answer: F) -> InProcessInvoker
where
    F: Fn(&SqsEvent) -> Result<String, FunctionError> + Send + Sync + 'static,
{
    let calls = calls.clone();
    let answer: Arc<Answer> = Arc::new(answer);
    InProcessInvoker::new().with_function(FUNCTION, move |payload: Bytes, ctx: InvokeContext| {
        let event: SqsEvent = serde_json::from_slice(&payload).expect("an SqsEvent");
        let result = answer(&event).map(Bytes::from);
        calls.0.lock().unwrap().push(Call {
            raw: payload,
            event,
            request_id: ctx.request_id,
        });
        async move { result }
    })
}

fn succeed(_: &SqsEvent) -> Result<String, FunctionError> {
    Ok(String::new())
}

fn fail(_: &SqsEvent) -> Result<String, FunctionError> {
    Err(FunctionError::new("HandlerError", "boom"))
}

struct Env {
    engine: SqsEngine,
    clock: Arc<ManualClock>,
    stop: Shutdown,
    shutdown: Signal,
}

impl Env {
    /// A manual clock at t0 and queue `jobs` (visibility 30 s) with a DLQ after 2 receives.
    fn new() -> Env {
        Self::with_queue(&[("VisibilityTimeout", "30")])
    }

    fn with_queue(attributes: &[(&str, &str)]) -> Env {
        let (shared, manual) = clock::manual(t0());
        let engine = SqsEngine::in_memory(shared);
        let none = BTreeMap::new();
        engine.create_queue(DLQ, &none, &none).unwrap();
        let attributes = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        engine.create_queue(QUEUE, &attributes, &none).unwrap();
        let stop = Shutdown::new();
        let shutdown = stop.signal();
        Env {
            engine,
            clock: manual,
            stop,
            shutdown,
        }
    }

    fn config(&self) -> MappingConfig {
        let mut config = MappingConfig::new(FUNCTION, QUEUE, REGION);
        config.queue_arn = self.engine.queue_arn(QUEUE).unwrap();
        config
    }

    fn spawn(&self, config: MappingConfig, invoker: InProcessInvoker) -> MappingHandle {
        mapping::spawn(
            config,
            self.engine.clone(),
            Arc::new(invoker),
            self.shutdown.clone(),
        )
    }

    fn send(&self, body: &str) -> String {
        self.engine
            .send_message(QUEUE, OutgoingMessage::new(body))
            .unwrap()
            .message_id
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs)).unwrap();
    }

    fn in_flight(&self) -> usize {
        self.engine.queue_stats(QUEUE).unwrap().in_flight
    }

    fn visible(&self, queue: &str) -> usize {
        self.engine.queue_stats(queue).unwrap().visible
    }

    /// Bodies of every message still in `jobs`.
    fn remaining(&self) -> BTreeSet<String> {
        self.engine
            .peek_messages(QUEUE, 1000)
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect()
    }

    async fn stop(&self, handle: MappingHandle) -> MappingStats {
        self.stop.trigger();
        tokio::time::timeout(GUARD, handle.join())
            .await
            .expect("the mapping stops")
            .unwrap()
    }
}

/// Lets every other task run until `done` holds; bounded.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// Gives a wrong behaviour every chance to show before a negative check.
async fn quiet() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

fn settled(handle: &MappingHandle) -> u64 {
    let s = handle.stats();
    s.successes + s.partial_failures + s.full_failures
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ------------------------------------------------------------------ settlement, pure

fn ids() -> Vec<String> {
    vec!["m-a".into(), "m-b".into(), "m-c".into()]
}

fn answered(body: &str) -> InvokeOutcome {
    InvokeOutcome::Success(Bytes::from(body.to_owned()))
}

#[test]
fn settle_success_deletes_the_whole_batch_with_or_without_reporting() {
    for report in [false, true] {
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
            r#"{"statusCode":200}"#,
        ] {
            let s = settle(&ids(), &answered(body), report);
            assert_eq!(s.delete, ids(), "{body:?} report={report}");
            assert!(s.keep.is_empty());
            assert_eq!(s.reason, SettleReason::Success);
            assert_eq!(s.verdict(), Verdict::Success);
        }
    }
}

#[test]
fn settle_partial_response_keeps_exactly_the_listed_ids() {
    let body = r#"{"batchItemFailures":[{"itemIdentifier":"m-c"},{"itemIdentifier":"m-a"}]}"#;
    let s = settle(&ids(), &answered(body), true);
    assert_eq!(s.delete, vec!["m-b".to_owned()]);
    assert_eq!(s.keep, vec!["m-a".to_owned(), "m-c".to_owned()]);
    assert_eq!(s.reason, SettleReason::PartialFailure { failed: 2 });
    assert_eq!(s.verdict(), Verdict::PartialFailure);

    // Every id listed: nothing deleted, still a partial response.
    let all = r#"{"batchItemFailures":[{"itemIdentifier":"m-a"},{"itemIdentifier":"m-b"},{"itemIdentifier":"m-c"}]}"#;
    let s = settle(&ids(), &answered(all), true);
    assert!(s.delete.is_empty());
    assert_eq!(s.keep, ids());
}

#[test]
fn settle_partial_response_is_ignored_without_report_batch_item_failures() {
    for body in [
        r#"{"batchItemFailures":[{"itemIdentifier":"m-b"}]}"#,
        "not json",
        r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
    ] {
        let s = settle(&ids(), &answered(body), false);
        assert_eq!(s, Settlement::succeeded(&ids()), "{body}");
    }
}

#[test]
fn settle_malformed_responses_fail_the_whole_batch() {
    for body in [
        "not json",
        "{\"batchItemFailures\":",
        "\"ok\"",
        "42",
        "[]",
        r#"["m-b"]"#,
        r#"{"batchItemFailures":"m-b"}"#,
        r#"{"batchItemFailures":{"itemIdentifier":"m-b"}}"#,
        r#"{"batchItemFailures":["m-b"]}"#,
        r#"{"batchItemFailures":[{"itemIdentifier":["m-b"]}]}"#,
    ] {
        let s = settle(&ids(), &answered(body), true);
        assert!(
            matches!(s.reason, SettleReason::MalformedResponse(_)),
            "{body}: {:?}",
            s.reason
        );
        assert!(s.delete.is_empty(), "{body}");
        assert_eq!(s.keep, ids());
        assert_eq!(s.verdict(), Verdict::Failure);
    }
}

#[test]
fn settle_empty_null_or_missing_item_identifier_fails_the_whole_batch() {
    for body in [
        r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
        r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
        r#"{"batchItemFailures":[{"itemId":"m-b"}]}"#,
        r#"{"batchItemFailures":[{"itemIdentifier":"m-b"},{}]}"#,
    ] {
        let s = settle(&ids(), &answered(body), true);
        assert_eq!(s.reason, SettleReason::EmptyItemIdentifier, "{body}");
        assert_eq!(
            s,
            Settlement::failed(&ids(), SettleReason::EmptyItemIdentifier)
        );
    }
}

#[test]
fn settle_unknown_item_identifier_fails_the_whole_batch() {
    let body = r#"{"batchItemFailures":[{"itemIdentifier":"m-b"},{"itemIdentifier":"m-z"}]}"#;
    let s = settle(&ids(), &answered(body), true);
    assert_eq!(s.reason, SettleReason::UnknownItemIdentifier("m-z".into()));
    assert!(s.delete.is_empty());
    assert_eq!(s.keep, ids());
}

#[test]
fn settle_errors_timeouts_and_crashes_delete_nothing() {
    let error = FunctionError::new("HandlerError", "boom");
    let cases = [
        (
            InvokeOutcome::FunctionError(error.clone()),
            SettleReason::FunctionError("HandlerError".into()),
        ),
        (
            InvokeOutcome::InitError(error),
            SettleReason::InitError("HandlerError".into()),
        ),
        (
            InvokeOutcome::Timeout {
                after: Duration::from_secs(3),
            },
            SettleReason::Timeout,
        ),
        (
            InvokeOutcome::Crashed(ExitInfo {
                code: None,
                signal: Some(9),
            }),
            SettleReason::Crashed("signal: killed".into()),
        ),
    ];
    for report in [false, true] {
        for (outcome, reason) in &cases {
            let s = settle(&ids(), outcome, report);
            assert_eq!(s, Settlement::failed(&ids(), reason.clone()));
        }
    }
}

// ------------------------------------------------------------------ settlement, end to end

/// What the function answers for a batch of `a`, `b`, `c`: `{b}` stands for b's message id.
enum Reply {
    Body(&'static str),
    Error,
}

async fn run_settlement_case(reply: Reply, report: bool) -> (BTreeSet<String>, Verdict) {
    let env = Env::new();
    let calls = Calls::default();
    let invoker = recording(&calls, move |event| match &reply {
        Reply::Error => fail(event),
        Reply::Body(template) => {
            let b = event
                .records
                .iter()
                .find(|r| r.body.as_deref() == Some("b"))
                .and_then(|r| r.message_id.clone())
                .unwrap();
            Ok(template.replace("{b}", &b))
        }
    });
    for body in ["a", "b", "c"] {
        env.send(body);
    }
    let handle = env.spawn(
        env.config().with_report_batch_item_failures(report),
        invoker,
    );
    until("the batch is settled", || settled(&handle) == 1).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls.get(0).bodies(), ["a", "b", "c"]);
    let stats = env.stop(handle).await;
    let verdict = if stats.successes == 1 {
        Verdict::Success
    } else if stats.partial_failures == 1 {
        Verdict::PartialFailure
    } else {
        assert_eq!(stats.full_failures, 1);
        Verdict::Failure
    };
    assert_eq!(stats.deleted + stats.kept, 3);
    (env.remaining(), verdict)
}

#[tokio::test]
async fn each_settlement_rule_end_to_end() {
    let all = set(&["a", "b", "c"]);
    let cases: Vec<(Reply, bool, BTreeSet<String>, Verdict)> = vec![
        // With ReportBatchItemFailures.
        (Reply::Body(""), true, set(&[]), Verdict::Success),
        (Reply::Body("null"), true, set(&[]), Verdict::Success),
        (Reply::Body("{}"), true, set(&[]), Verdict::Success),
        (
            Reply::Body(r#"{"batchItemFailures":[]}"#),
            true,
            set(&[]),
            Verdict::Success,
        ),
        (
            Reply::Body(r#"{"batchItemFailures":null}"#),
            true,
            set(&[]),
            Verdict::Success,
        ),
        (
            Reply::Body(r#"{"batchItemFailures":[{"itemIdentifier":"{b}"}]}"#),
            true,
            set(&["b"]),
            Verdict::PartialFailure,
        ),
        (Reply::Body("not json"), true, all.clone(), Verdict::Failure),
        (
            Reply::Body(r#"{"batchItemFailures":"{b}"}"#),
            true,
            all.clone(),
            Verdict::Failure,
        ),
        (
            Reply::Body(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#),
            true,
            all.clone(),
            Verdict::Failure,
        ),
        (
            Reply::Body(r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#),
            true,
            all.clone(),
            Verdict::Failure,
        ),
        (
            Reply::Body(
                r#"{"batchItemFailures":[{"itemIdentifier":"{b}"},{"itemIdentifier":"not-in-batch"}]}"#,
            ),
            true,
            all.clone(),
            Verdict::Failure,
        ),
        (Reply::Error, true, all.clone(), Verdict::Failure),
        // Without: only success or failure of the invocation counts.
        (
            Reply::Body(r#"{"batchItemFailures":[{"itemIdentifier":"{b}"}]}"#),
            false,
            set(&[]),
            Verdict::Success,
        ),
        (Reply::Body("not json"), false, set(&[]), Verdict::Success),
        (Reply::Error, false, all.clone(), Verdict::Failure),
    ];
    for (i, (reply, report, remaining, verdict)) in cases.into_iter().enumerate() {
        let (got_remaining, got_verdict) = run_settlement_case(reply, report).await;
        assert_eq!(got_remaining, remaining, "case {i}");
        assert_eq!(got_verdict, verdict, "case {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_function_timeout_deletes_nothing() {
    let env = Env::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let invoker = InProcessInvoker::new().with_function_timeout(
        FUNCTION,
        Some(Duration::from_secs(3)),
        move |_payload, _ctx| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                // Tokio time is paused: this sleep only ends the handler once the
                // invoker's timeout has fired, without any real waiting.
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, FunctionError>(Bytes::new())
            }
        },
    );
    env.send("slow");
    let handle = env.spawn(env.config(), invoker);
    until("the function is invoked", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    until("the batch is settled", || settled(&handle) == 1).await;
    let stats = env.stop(handle).await;
    assert_eq!((stats.full_failures, stats.deleted, stats.kept), (1, 0, 1));
    assert_eq!(env.remaining(), set(&["slow"]));
    assert_eq!(env.in_flight(), 1, "left to its visibility timeout");
}

// ------------------------------------------------------------------ batching

#[tokio::test]
async fn batches_hold_at_most_batch_size_records() {
    let env = Env::new();
    let calls = Calls::default();
    for i in 0..7 {
        env.send(&format!("m{i}"));
    }
    let handle = env.spawn(env.config().with_batch_size(3), recording(&calls, succeed));
    until("all batches settled", || settled(&handle) == 3).await;
    let sizes: Vec<usize> = calls.all().iter().map(|c| c.event.records.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let bodies: BTreeSet<String> = calls.all().iter().flat_map(|c| c.bodies()).collect();
    assert_eq!(bodies.len(), 7);
    let stats = env.stop(handle).await;
    assert_eq!((stats.batches, stats.records, stats.deleted), (3, 7, 7));
    assert!(env.remaining().is_empty());
}

#[tokio::test]
async fn batching_window_gathers_messages_sent_apart() {
    let env = Env::new();
    let calls = Calls::default();
    let handle = env.spawn(
        env.config().with_window(Duration::from_secs(5)),
        recording(&calls, succeed),
    );
    env.send("first");
    until("first is received", || env.in_flight() == 1).await;
    env.advance(2);
    env.send("second");
    until("second is received", || env.in_flight() == 2).await;
    assert_eq!(handle.stats().buffered, 2, "both wait in the poller");
    env.advance(2);
    quiet().await;
    assert_eq!(calls.len(), 0, "the window (5 s) is still open at 4 s");
    env.advance(1);
    until("the window closes", || calls.len() == 1).await;
    assert_eq!(calls.get(0).bodies(), ["first", "second"]);
    until("settled", || settled(&handle) == 1).await;
    assert_eq!(handle.stats().buffered, 0);
    env.stop(handle).await;
}

#[tokio::test]
async fn a_full_batch_does_not_wait_for_the_window() {
    let env = Env::new();
    let calls = Calls::default();
    for i in 0..30 {
        env.send(&format!("m{i}"));
    }
    // Above 10, a batch takes several receives.
    let handle = env.spawn(
        env.config()
            .with_batch_size(25)
            .with_window(Duration::from_secs(5)),
        recording(&calls, succeed),
    );
    until("the full batch", || calls.len() == 1).await;
    assert_eq!(calls.get(0).event.records.len(), 25);
    quiet().await;
    assert_eq!(calls.len(), 1, "the other 5 wait for the window");
    env.advance(5);
    until("the rest", || calls.len() == 2).await;
    assert_eq!(calls.get(1).event.records.len(), 5);
    until("settled", || settled(&handle) == 2).await;
    env.stop(handle).await;
    assert!(env.remaining().is_empty());
}

#[tokio::test]
async fn events_stay_under_6_mb_and_no_message_is_lost() {
    let env = Env::new();
    let calls = Calls::default();
    // 1 MiB bodies: five fit in one event, the sixth would pass 6 MB.
    let body = |i: usize| format!("{i}{}", "a".repeat(1024 * 1024 - 1));
    for i in 0..7 {
        env.send(&body(i));
    }
    let handle = env.spawn(env.config(), recording(&calls, succeed));
    until("two batches", || settled(&handle) == 2).await;
    let all = calls.all();
    let sizes: Vec<usize> = all.iter().map(|c| c.event.records.len()).collect();
    assert_eq!(sizes, [5, 2]);
    for call in &all {
        assert!(
            call.raw.len() <= nightshift_local::invoker::MAX_PAYLOAD_BYTES,
            "{} bytes",
            call.raw.len()
        );
    }
    let mut firsts: Vec<char> = all
        .iter()
        .flat_map(|c| c.bodies())
        .map(|b| b.chars().next().unwrap())
        .collect();
    firsts.sort_unstable();
    assert_eq!(firsts, ['0', '1', '2', '3', '4', '5', '6']);
    let stats = env.stop(handle).await;
    assert_eq!(stats.deleted, 7);
    assert!(env.remaining().is_empty());
}

#[tokio::test]
async fn escaped_bodies_count_at_their_json_size() {
    let env = Env::new();
    let calls = Calls::default();
    // Every `"` doubles in JSON: each record is about 2 MiB, so two fit, not three.
    for i in 0..5 {
        env.send(&format!("{i}{}", "\"".repeat(1024 * 1024 - 1)));
    }
    let handle = env.spawn(env.config(), recording(&calls, succeed));
    until("three batches", || settled(&handle) == 3).await;
    let sizes: Vec<usize> = calls.all().iter().map(|c| c.event.records.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(
        calls
            .all()
            .iter()
            .all(|c| c.raw.len() <= nightshift_local::invoker::MAX_PAYLOAD_BYTES)
    );
    env.stop(handle).await;
    assert!(env.remaining().is_empty());
}

// ------------------------------------------------------------------ concurrency

#[tokio::test]
async fn never_more_than_max_concurrency_invocations_at_once() {
    let env = Env::new();
    let gate = Arc::new(Semaphore::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let invoker = {
        let (gate, running, started, peak) =
            (gate.clone(), running.clone(), started.clone(), peak.clone());
        InProcessInvoker::new().with_function(FUNCTION, move |_payload, _ctx| {
            let (gate, running, started, peak) =
                (gate.clone(), running.clone(), started.clone(), peak.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                started.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, FunctionError>(Bytes::new())
            }
        })
    };
    for i in 0..10 {
        env.send(&format!("m{i}"));
    }
    let handle = env.spawn(
        env.config().with_batch_size(1).with_max_concurrency(3),
        invoker,
    );
    until("three invocations", || started.load(Ordering::SeqCst) == 3).await;
    quiet().await;
    assert_eq!(started.load(Ordering::SeqCst), 3);
    assert_eq!(handle.stats().in_flight, 3);
    assert_eq!(
        env.in_flight(),
        3,
        "no message is received without a free slot"
    );
    gate.add_permits(1);
    until("a fourth once one ends", || {
        started.load(Ordering::SeqCst) == 4
    })
    .await;
    quiet().await;
    assert_eq!(started.load(Ordering::SeqCst), 4);
    gate.add_permits(10);
    until("all settled", || settled(&handle) == 10).await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    let stats = env.stop(handle).await;
    assert_eq!((stats.deleted, stats.in_flight), (10, 0));
}

#[test]
fn template_event_sources_resolve_with_reserved_concurrency() -> anyhow::Result<()> {
    let options = LoadOptions {
        region: REGION.to_owned(),
        ..LoadOptions::default()
    };
    let template = Template::from_yaml(
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties: {QueueName: jobs}
  Capped:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: capped
      CodeUri: capped
      ReservedConcurrentExecutions: 2
      Events:
        FromJobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 50
            MaximumBatchingWindowInSeconds: 3
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: {MaximumConcurrency: 8}
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: plain
      Events:
        FromJobs:
          Type: SQS
          Properties: {Queue: !GetAtt Jobs.Arn, Enabled: false}
"#,
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &options,
    )?;
    let configs = MappingConfig::all_from_template(&template, REGION)?;
    let capped = configs.iter().find(|c| c.function == "capped").unwrap();
    assert_eq!(capped.queue, "jobs");
    assert_eq!(
        capped.queue_arn,
        format!("arn:aws:sqs:{REGION}:000000000000:jobs")
    );
    assert_eq!(capped.region, REGION);
    assert_eq!(capped.batch_size, 50);
    assert_eq!(capped.window, Duration::from_secs(3));
    assert_eq!(capped.max_concurrency, 2, "reserved concurrency is smaller");
    assert!(capped.report_batch_item_failures && capped.enabled);
    let plain = configs.iter().find(|c| c.function != "capped").unwrap();
    assert_eq!(plain.batch_size, 10);
    assert_eq!(plain.window, Duration::ZERO);
    assert_eq!(plain.max_concurrency, mapping::DEFAULT_MAX_CONCURRENCY);
    assert!(!plain.report_batch_item_failures && !plain.enabled);
    Ok(())
}

#[test]
fn the_real_template_maps_every_queue() -> anyhow::Result<()> {
    let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra");
    let template = Template::load(&infra.join("template.yaml"), &LoadOptions::default())?;
    let configs = MappingConfig::all_from_template(&template, "us-east-1")?;
    assert_eq!(configs.len(), 4);
    for config in &configs {
        assert!(config.report_batch_item_failures);
        // Mail feedback gathers (nobody waits on it); FIFO queues take no batching window.
        let (batch, window) = if config.queue == "nightshift-mail-feedback" {
            (100, 20)
        } else if config.queue.ends_with(".fifo") {
            (10, 0)
        } else {
            (10, 1)
        };
        assert_eq!(config.batch_size, batch, "{}", config.queue);
        assert_eq!(
            config.window,
            Duration::from_secs(window),
            "{}",
            config.queue
        );
        assert!(config.queue_arn.ends_with(&format!(":{}", config.queue)));
    }
    assert!(
        configs
            .iter()
            .any(|c| c.queue == "nightshift-inventory.fifo")
    );
    Ok(())
}

// ------------------------------------------------------------------ the event

/// Keys of the object starting at `json` (a record), in the order they are written.
fn key_order(record: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(record).unwrap();
    let mut keys: Vec<(usize, String)> = value
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (record.find(&format!("\"{k}\":")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

/// The record of a one-record event, as raw JSON text.
fn only_record(raw: &[u8]) -> String {
    let text = std::str::from_utf8(raw).unwrap();
    let inner = text
        .strip_prefix("{\"Records\":[")
        .and_then(|t| t.strip_suffix("]}"))
        .unwrap();
    inner.to_owned()
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

#[tokio::test]
async fn the_event_is_what_lambda_sends() {
    let env = Env::new();
    let calls = Calls::default();
    let handle = env.spawn(env.config(), recording(&calls, succeed));

    env.send("Test message.");
    until("first event", || calls.len() == 1).await;
    let call = calls.get(0);
    let top: Value = serde_json::from_slice(&call.raw).unwrap();
    assert_eq!(
        top.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["Records"]
    );
    let record = only_record(&call.raw);
    // The order of the AWS docs' sample event ("Example Amazon SQS message event").
    assert_eq!(
        key_order(&record),
        [
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion"
        ]
    );
    let value: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(value["body"], "Test message.");
    assert_eq!(value["md5OfBody"], md5_hex(b"Test message."));
    assert_eq!(value["eventSource"], "aws:sqs");
    assert_eq!(
        value["eventSourceARN"],
        format!("arn:aws:sqs:us-east-1:000000000000:{QUEUE}")
    );
    assert_eq!(value["awsRegion"], REGION);
    assert_eq!(value["messageAttributes"], json!({}));
    let sent_ms = t0().timestamp_millis().to_string();
    assert_eq!(
        value["attributes"],
        json!({
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent_ms,
            "SenderId": "000000000000",
            "ApproximateFirstReceiveTimestamp": sent_ms,
        })
    );
    let attrs_raw = &record[record.find("\"attributes\":").unwrap()..];
    let positions: Vec<usize> = [
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ]
    .iter()
    .map(|k| attrs_raw.find(k).unwrap())
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{attrs_raw}");
    let typed = &call.event.records[0];
    assert_eq!(typed.event_source.as_deref(), Some("aws:sqs"));
    assert!(
        typed
            .receipt_handle
            .as_deref()
            .is_some_and(|h| !h.is_empty())
    );

    // With message attributes of each type.
    let receipt = env
        .engine
        .send_message(
            QUEUE,
            OutgoingMessage::new("with attributes")
                .attribute("s", MessageAttributeValue::string("text"))
                .attribute("n", MessageAttributeValue::number(42))
                .attribute("b", MessageAttributeValue::binary(vec![0u8, 1, 2, 255])),
        )
        .unwrap();
    until("second event", || calls.len() == 2).await;
    let record = only_record(&calls.get(1).raw);
    assert_eq!(
        key_order(&record),
        [
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfMessageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion"
        ]
    );
    let value: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(value["messageId"], receipt.message_id);
    assert_eq!(
        value["md5OfMessageAttributes"],
        receipt.md5_of_message_attributes.unwrap()
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode([0u8, 1, 2, 255]);
    assert_eq!(
        value["messageAttributes"],
        json!({
            "s": {"stringValue": "text", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "n": {"stringValue": "42", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
            "b": {"binaryValue": b64, "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
        })
    );
    let string_attr = &record[record.find("\"s\":{").unwrap()..];
    let order: Vec<usize> = [
        "stringValue",
        "stringListValues",
        "binaryListValues",
        "dataType",
    ]
    .iter()
    .map(|k| string_attr.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{string_attr}");
    let typed = &calls.get(1).event.records[0];
    assert_eq!(
        typed.message_attributes["b"]
            .binary_value
            .as_ref()
            .map(|b| b.0.clone()),
        Some(vec![0u8, 1, 2, 255])
    );
    assert_ne!(calls.get(0).request_id, calls.get(1).request_id);
    env.stop(handle).await;
}

#[tokio::test]
async fn redelivery_increments_the_receive_count_with_a_new_receipt_handle() {
    let env = Env::new();
    let calls = Calls::default();
    let handle = env.spawn(env.config(), recording(&calls, fail));
    let id = env.send("again");
    until("first delivery", || calls.len() == 1).await;
    env.advance(30);
    until("second delivery", || calls.len() == 2).await;
    let first = calls.get(0).event.records[0].clone();
    let second = calls.get(1).event.records[0].clone();
    assert_eq!(first.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(second.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(first.attributes["ApproximateReceiveCount"], "1");
    assert_eq!(second.attributes["ApproximateReceiveCount"], "2");
    assert_ne!(first.receipt_handle, second.receipt_handle);
    assert_eq!(
        first.attributes["ApproximateFirstReceiveTimestamp"],
        second.attributes["ApproximateFirstReceiveTimestamp"]
    );
    assert_eq!(
        first.attributes["SentTimestamp"],
        second.attributes["SentTimestamp"]
    );
    env.stop(handle).await;
}

// ------------------------------------------------------------------ redelivery, DLQ

#[tokio::test]
async fn a_failed_message_returns_after_its_visibility_timeout_then_goes_to_the_dlq() {
    let dlq_arn = format!("arn:aws:sqs:us-east-1:000000000000:{DLQ}");
    let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}"#);
    let env = Env::with_queue(&[("VisibilityTimeout", "30"), ("RedrivePolicy", &redrive)]);
    let calls = Calls::default();
    let handle = env.spawn(env.config(), recording(&calls, fail));
    env.send("poison");
    until("first failure", || settled(&handle) == 1).await;
    assert_eq!(env.in_flight(), 1);
    env.advance(29);
    quiet().await;
    assert_eq!(calls.len(), 1, "still invisible at 29 s");
    env.advance(1);
    until("second failure", || settled(&handle) == 2).await;
    assert_eq!(calls.len(), 2);
    env.advance(30);
    until("moved to the DLQ", || env.visible(DLQ) == 1).await;
    quiet().await;
    assert_eq!(calls.len(), 2, "never delivered a third time");
    assert!(env.remaining().is_empty());
    let dead = env.engine.peek_messages(DLQ, 10).unwrap();
    assert_eq!(dead[0].body, "poison");
    let stats = env.stop(handle).await;
    assert_eq!((stats.full_failures, stats.deleted, stats.kept), (2, 0, 2));
}

#[tokio::test]
async fn a_visibility_set_by_the_function_is_not_reset() {
    let env = Env::new();
    let calls = Calls::default();
    let engine = env.engine.clone();
    // The function backs off by itself, as the shared crate's retryable path does.
    let invoker = recording(&calls, move |event| {
        let handle = event.records[0].receipt_handle.clone().unwrap();
        engine
            .change_message_visibility(QUEUE, &handle, 100)
            .unwrap();
        Ok(format!(
            r#"{{"batchItemFailures":[{{"itemIdentifier":"{}"}}]}}"#,
            event.records[0].message_id.as_deref().unwrap()
        ))
    });
    let handle = env.spawn(env.config().with_report_batch_item_failures(true), invoker);
    env.send("later");
    until("partial failure", || handle.stats().partial_failures == 1).await;
    env.advance(30);
    quiet().await;
    assert_eq!(calls.len(), 1, "the queue's 30 s no longer apply");
    env.advance(70);
    until("delivered again at 100 s", || calls.len() == 2).await;
    env.stop(handle).await;
}

#[tokio::test]
async fn a_stale_receipt_handle_does_not_delete_the_redelivered_message() {
    let env = Env::new();
    let gates: Vec<Arc<Semaphore>> = (0..2).map(|_| Arc::new(Semaphore::new(0))).collect();
    let started = Arc::new(AtomicUsize::new(0));
    let invoker = {
        let (gates, started) = (gates.clone(), started.clone());
        InProcessInvoker::new().with_function(FUNCTION, move |_payload, _ctx| {
            let n = started.fetch_add(1, Ordering::SeqCst);
            let gate = gates[n.min(1)].clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, FunctionError>(Bytes::new())
            }
        })
    };
    let handle = env.spawn(env.config(), invoker);
    env.send("slow");
    until("first delivery", || started.load(Ordering::SeqCst) == 1).await;
    // The first invocation outlives the visibility timeout: the message is delivered again.
    env.advance(30);
    until("second delivery", || started.load(Ordering::SeqCst) == 2).await;
    gates[0].add_permits(1);
    until("first settled", || settled(&handle) == 1).await;
    assert_eq!(handle.stats().successes, 1);
    assert_eq!(
        env.remaining(),
        set(&["slow"]),
        "the first receipt handle is stale: the message is not deleted"
    );
    gates[1].add_permits(1);
    until("second settled", || settled(&handle) == 2).await;
    assert!(env.remaining().is_empty());
    env.stop(handle).await;
}

// ------------------------------------------------------------------ lifecycle

#[tokio::test]
async fn shutdown_stops_polling_and_lets_in_flight_invocations_finish() {
    let env = Env::new();
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let invoker = {
        let (gate, started) = (gate.clone(), started.clone());
        InProcessInvoker::new().with_function(FUNCTION, move |_payload, _ctx| {
            started.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, FunctionError>(Bytes::new())
            }
        })
    };
    let handle = env.spawn(env.config(), invoker);
    env.send("in flight");
    until("invoked", || started.load(Ordering::SeqCst) == 1).await;
    env.stop.trigger();
    quiet().await;
    assert!(!handle.is_finished(), "waits for the in-flight invocation");
    env.send("after shutdown");
    quiet().await;
    assert_eq!(started.load(Ordering::SeqCst), 1);
    gate.add_permits(1);
    let stats = tokio::time::timeout(GUARD, handle.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stats.successes, stats.deleted, stats.in_flight), (1, 1, 0));
    assert_eq!(env.remaining(), set(&["after shutdown"]));
    assert_eq!(env.visible(QUEUE), 1, "never received");
}

#[tokio::test]
async fn shutdown_hands_back_a_batch_still_gathering() {
    let env = Env::new();
    let calls = Calls::default();
    let handle = env.spawn(
        env.config().with_window(Duration::from_secs(10)),
        recording(&calls, succeed),
    );
    env.send("gathering");
    until("received", || env.in_flight() == 1).await;
    assert_eq!(handle.stats().buffered, 1);
    let stats = env.stop(handle).await;
    assert_eq!((stats.released, stats.buffered), (1, 0));
    assert_eq!(calls.len(), 0);
    assert_eq!(
        env.visible(QUEUE),
        1,
        "visible again at once, without waiting 30 s"
    );
}

#[tokio::test]
async fn a_disabled_mapping_does_not_poll() {
    let env = Env::new();
    let calls = Calls::default();
    env.send("untouched");
    let handle = env.spawn(env.config().with_enabled(false), recording(&calls, succeed));
    quiet().await;
    assert_eq!(calls.len(), 0);
    assert_eq!(env.visible(QUEUE), 1);
    let stats = env.stop(handle).await;
    assert_eq!(stats, MappingStats::default());
}

#[tokio::test]
async fn an_unknown_function_fails_the_batch_and_keeps_polling() {
    let env = Env::new();
    let calls = Calls::default();
    let mut config = env.config();
    config.function = "missing".into();
    let handle = env.spawn(config, recording(&calls, succeed));
    env.send("orphan");
    until("settled", || settled(&handle) == 1).await;
    assert_eq!(handle.stats().full_failures, 1);
    assert_eq!(env.in_flight(), 1, "left to its visibility timeout");
    env.advance(30);
    until("tried again", || settled(&handle) == 2).await;
    env.stop(handle).await;
}

/// `FilterCriteria`: records that match no pattern are deleted without an invocation; the
/// rest are delivered. https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html
#[tokio::test]
async fn records_that_match_no_filter_are_deleted_without_an_invocation() {
    let env = Env::new();
    let calls = Calls::default();
    env.send(r#"{"kind":"order.placed","total":42}"#);
    env.send(r#"{"kind":"user.signup"}"#);
    env.send("not json at all");
    env.send(r#"{"kind":"order.cancelled","total":5}"#);
    let mut config = env.config();
    config.filter_patterns = vec![
        r#"{"body": {"kind": [{"prefix": "order."}], "total": [{"numeric": [">", 10]}]}}"#.into(),
        r#"{"body": [{"prefix": "not json"}]}"#.into(),
    ];
    let handle = env.spawn(config, recording(&calls, succeed));
    until("the matching records settled", || {
        calls
            .all()
            .iter()
            .map(|c| c.event.records.len())
            .sum::<usize>()
            == 2
    })
    .await;
    quiet().await;
    let delivered: BTreeSet<String> = calls.all().iter().flat_map(|c| c.bodies()).collect();
    assert_eq!(
        delivered,
        set(&[r#"{"kind":"order.placed","total":42}"#, "not json at all"])
    );
    // The two others were deleted, not left to come back or to reach the DLQ.
    env.stop(handle).await;
    assert!(env.remaining().is_empty(), "{:?}", env.remaining());
    assert_eq!(env.visible(DLQ), 0);
}

/// A pattern Lambda would refuse is refused when the template's mappings are resolved, with
/// the event source and the place in the pattern.
#[test]
fn an_invalid_filter_pattern_is_refused_with_its_place() {
    let yaml = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n      Events:\n        E:\n          Type: SQS\n          Properties:\n            Queue: !GetAtt Q.Arn\n            FilterCriteria:\n              Filters:\n                - Pattern: '{\"body\": {\"kind\": \"order\"}}'\n";
    let template = nightshift_local::template::Template::from_yaml(
        yaml,
        std::path::Path::new("."),
        &nightshift_local::template::LoadOptions::default(),
    )
    .unwrap();
    let err = MappingConfig::all_from_template(&template, REGION).unwrap_err();
    assert_eq!(
        err.to_string(),
        "event source FE: FilterCriteria.Filters: filter 0: $.body.kind: expected an object or an array of matchers, got \"order\""
    );
}

/// An invoker with room for a fixed number of invocations, as the emulator's instance pool
/// has: `invoke` waits for room, `reserve` holds it ahead.
struct Bounded {
    inner: InProcessInvoker,
    room: Arc<Semaphore>,
}

impl Invoker for Bounded {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        Box::pin(async move {
            let _room = self.room.acquire().await.unwrap();
            self.inner.invoke(req).await
        })
    }

    fn reserve<'a>(&'a self, _function: &'a str) -> BoxFuture<'a, Result<Slot, InvokeError>> {
        Box::pin(async move { Ok(Slot::held(self.room.clone().acquire_owned().await.unwrap())) })
    }

    fn invoke_in(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        Box::pin(async move {
            let _room = match slot.into_permit() {
                Some(permit) => permit,
                None => self.room.clone().acquire_owned().await.unwrap(),
            };
            self.inner.invoke(req).await
        })
    }
}

#[tokio::test]
async fn a_poller_never_receives_a_batch_the_function_has_no_room_for() {
    // Issue 9: a batch received while the function had no free instance waited with its
    // visibility timeout running, and came back (and reached the DLQ) without ever being
    // invoked. The poller now holds a place among the instances before it receives.
    let env = Env::new();
    let calls = Calls::default();
    let room = Arc::new(Semaphore::new(1));
    let invoker = Bounded {
        inner: recording(&calls, succeed),
        room: room.clone(),
    };
    // Another invocation (an async event, a direct invoke) occupies the only instance.
    let busy = room.clone().acquire_owned().await.unwrap();
    env.send("waits");
    let handle = mapping::spawn(
        env.config(),
        env.engine.clone(),
        Arc::new(invoker),
        env.shutdown.clone(),
    );
    quiet().await;
    assert_eq!(env.in_flight(), 0, "nothing is received without room");
    // Twice the visibility timeout: a message received and left waiting would have come back.
    env.advance(60);
    quiet().await;
    assert_eq!((env.in_flight(), env.visible(QUEUE)), (0, 1));
    assert!(calls.all().is_empty());
    drop(busy);
    until("the batch is invoked", || settled(&handle) == 1).await;
    let call = &calls.all()[0];
    assert_eq!(
        call.event.records[0]
            .attributes
            .get("ApproximateReceiveCount"),
        Some(&"1".to_owned()),
        "received once, when it could run"
    );
    let stats = env.stop(handle).await;
    assert_eq!(stats.deleted, 1);
}

// ------------------------------------------------------------------ FIFO

/// A FIFO queue's mapping runs one batch of a group at a time, groups in parallel, and with a
/// function that reports every record after a failure in its group (as the Lambda guide asks,
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>), applies
/// each group's records exactly in send order across the failure and its redelivery.
#[tokio::test]
async fn a_fifo_mapping_runs_groups_in_parallel_and_each_in_order() {
    const FIFO: &str = "orders.fifo";
    let (shared, manual) = clock::manual(t0());
    let engine = SqsEngine::in_memory(shared);
    let none = BTreeMap::new();
    let attributes = BTreeMap::from([
        ("FifoQueue".to_string(), "true".to_string()),
        ("ContentBasedDeduplication".to_string(), "true".to_string()),
        ("VisibilityTimeout".to_string(), "30".to_string()),
    ]);
    engine.create_queue(FIFO, &attributes, &none).unwrap();
    for i in 0..8 {
        for g in 0..3 {
            engine
                .send_message(
                    FIFO,
                    OutgoingMessage::new(format!("g{g}-{i}")).group(format!("g{g}")),
                )
                .unwrap();
        }
    }

    #[derive(Default)]
    struct Seen {
        applied: BTreeMap<String, Vec<String>>,
        active: BTreeSet<String>,
        overlaps: Vec<String>,
        running: usize,
        peak: usize,
        failed_once: bool,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let invoker = {
        let seen = seen.clone();
        InProcessInvoker::new().with_function(FUNCTION, move |payload: Bytes, _ctx| {
            let seen = seen.clone();
            async move {
                let event: SqsEvent = serde_json::from_slice(&payload).unwrap();
                let group_of =
                    |r: &aws_lambda_events::sqs::SqsMessage| r.attributes["MessageGroupId"].clone();
                let groups: BTreeSet<String> = event.records.iter().map(group_of).collect();
                {
                    let mut s = seen.lock().unwrap();
                    for g in &groups {
                        if !s.active.insert(g.clone()) {
                            s.overlaps.push(g.clone());
                        }
                    }
                    s.running += 1;
                    s.peak = s.peak.max(s.running);
                }
                // Other invocations get every chance to start meanwhile.
                for _ in 0..50 {
                    tokio::task::yield_now().await;
                }
                let mut s = seen.lock().unwrap();
                let mut failures = Vec::new();
                let mut failed_groups = BTreeSet::new();
                for r in &event.records {
                    let group = group_of(r);
                    let body = r.body.clone().unwrap();
                    let fail_here = body == "g1-3" && !s.failed_once;
                    if fail_here || failed_groups.contains(&group) {
                        s.failed_once = true;
                        failed_groups.insert(group);
                        failures.push(json!({"itemIdentifier": r.message_id}));
                        continue;
                    }
                    s.applied.entry(group).or_default().push(body);
                }
                for g in &groups {
                    s.active.remove(g);
                }
                s.running -= 1;
                Ok::<_, FunctionError>(Bytes::from(
                    json!({ "batchItemFailures": failures }).to_string(),
                ))
            }
        })
    };
    let stop = Shutdown::new();
    let mut config = MappingConfig::new(FUNCTION, FIFO, REGION)
        .with_batch_size(3)
        .with_max_concurrency(5);
    config.queue_arn = engine.queue_arn(FIFO).unwrap();
    config.report_batch_item_failures = true;
    let handle = mapping::spawn(config, engine.clone(), Arc::new(invoker), stop.signal());
    let applied = |seen: &Arc<Mutex<Seen>>| -> usize {
        seen.lock().unwrap().applied.values().map(Vec::len).sum()
    };
    until("everything but the failed group's tail", || {
        applied(&seen) == 19
    })
    .await;
    quiet().await;
    assert_eq!(applied(&seen), 19, "g1 waits for its failed record");
    // The failed record comes back after its visibility timeout, then the rest of its group.
    manual.advance(Duration::from_secs(30)).unwrap();
    until("everything", || applied(&seen) == 24).await;

    {
        let s = seen.lock().unwrap();
        for g in 0..3 {
            let expected: Vec<String> = (0..8).map(|i| format!("g{g}-{i}")).collect();
            assert_eq!(
                s.applied[&format!("g{g}")],
                expected,
                "group g{g} in send order"
            );
        }
        assert!(
            s.overlaps.is_empty(),
            "two batches of one group at once: {:?}",
            s.overlaps
        );
        assert!(s.peak >= 2, "groups run in parallel (peak {})", s.peak);
    }
    stop.trigger();
    let stats = tokio::time::timeout(GUARD, handle.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.in_flight, 0);
    assert_eq!(engine.queue_stats(FIFO).unwrap().visible, 0);
}

/// A batch of messages from two traces is one invocation in a new trace, linked to both (each
/// distinct root once), as Lambda does it: "Traces from upstream message producers are
/// automatically linked to traces from downstream Lambda consumer nodes"
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>). The function
/// sees the new trace; the invocation history keeps the links.
#[tokio::test]
async fn a_batch_of_two_traces_is_one_invocation_in_a_new_trace_linked_to_both() {
    use nightshift_local::history::{History, InvocationQuery};

    const A: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const B: &str = "1-5759e989-000000000000000000000002";
    let env = Env::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let headers = seen.clone();
    let invoker =
        InProcessInvoker::new().with_function(FUNCTION, move |_: Bytes, ctx: InvokeContext| {
            headers.lock().unwrap().push(ctx.trace_header);
            async { Ok(Bytes::new()) }
        });
    for (body, root) in [("m0", A), ("m1", B), ("m2", A)] {
        let mut message = OutgoingMessage::new(body);
        message.message_system_attributes.insert(
            "AWSTraceHeader".into(),
            MessageAttributeValue::string(format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1")),
        );
        env.engine.send_message(QUEUE, message).unwrap();
    }
    let (shared, _) = clock::manual(t0());
    let history = History::new(shared);
    let handle = mapping::spawn(
        env.config(),
        env.engine.clone(),
        history.decorate(Arc::new(invoker)),
        env.shutdown.clone(),
    );
    until("the batch settled", || settled(&handle) == 1).await;
    let invocations = history.list(&InvocationQuery::default());
    assert_eq!(invocations.len(), 1, "{invocations:#?}");
    let invocation = &invocations[0];
    assert_eq!(invocation.message_ids.len(), 3);
    assert_eq!(invocation.trace_links, [A, B]);
    let root = invocation.trace_id.clone().unwrap();
    assert!(root != A && root != B, "a new trace: {root}");
    let header = seen.lock().unwrap()[0].clone();
    assert!(header.starts_with(&format!("Root={root};")), "{header}");
    // Either message's trace finds the batch's invocation through its link.
    assert_eq!(history.chain(A).invocations, invocations);
    assert_eq!(history.chain(B).trace_ids, [A, B, root.as_str()]);
    env.stop(handle).await;
}
