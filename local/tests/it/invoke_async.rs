//! Lambda's asynchronous invocation on the manual clock (`nightshift_local::invoke_async`):
//! retries 1 and 2 minutes apart, `MaximumRetryAttempts`, `MaximumEventAgeInSeconds`, the
//! invocation record in the on-failure / on-success destination, the dead-letter queue, and
//! what the Invoke call itself refuses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use nightshift_local::clock::{self, ManualClock, SharedClock};
use nightshift_local::invoke_async::{AsyncFunction, AsyncInvoker, Target};
use nightshift_local::invoker::{
    BoxFuture, FunctionError, InProcessInvoker, InvokeError, InvokeOutcome, InvokeRequest,
    InvokeResponse, Invoker,
};
use nightshift_local::sqs::SqsEngine;
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(30);

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

/// One call as the function saw it: the clock's time, the request id, the event.
type Calls = Arc<Mutex<Vec<(DateTime<Utc>, String, String)>>>;

struct Setup {
    manual: Arc<ManualClock>,
    sqs: SqsEngine,
    queues: AsyncInvoker,
    calls: Calls,
}

/// Function `f` (failing when `fail`) and `g` (succeeds), with the settings `configure` gives
/// `f`; queues `failures` and `dlq`.
fn setup(fail: bool, configure: impl FnOnce(&mut AsyncFunction)) -> Result<Setup> {
    let (clock, manual) = clock::manual(t("2026-01-01T00:00:00Z"));
    let sqs = SqsEngine::in_memory(clock.clone());
    let none = BTreeMap::new();
    for queue in ["failures", "successes", "dlq"] {
        sqs.create_queue(queue, &none, &none)?;
    }
    let calls: Calls = Arc::default();
    let recorder = |calls: Calls, clock: SharedClock, name: &'static str, fail: bool| {
        move |payload: Bytes, ctx: nightshift_local::invoker::InvokeContext| {
            calls.lock().unwrap().push((
                clock.now(),
                format!("{name}:{}", ctx.request_id),
                String::from_utf8_lossy(&payload).into_owned(),
            ));
            async move {
                if fail {
                    Err(FunctionError::new("ReportError", "the store is down"))
                } else {
                    Ok(Bytes::from_static(br#"{"ok":true}"#))
                }
            }
        }
    };
    let invoker = InProcessInvoker::new()
        .with_function("f", recorder(calls.clone(), clock.clone(), "f", fail))
        .with_function("g", recorder(calls.clone(), clock.clone(), "g", false));
    let mut f = AsyncFunction::new("f");
    configure(&mut f);
    let queues = AsyncInvoker::new(
        [f, AsyncFunction::new("g")],
        Arc::new(invoker),
        Some(sqs.clone()),
        clock,
    );
    Ok(Setup {
        manual,
        sqs,
        queues,
        calls,
    })
}

impl Setup {
    async fn idle(&self) -> Result<()> {
        tokio::time::timeout(PATIENCE, self.queues.wait_idle())
            .await
            .context("the async queue never became idle")
    }

    async fn advance(&self, secs: u64) -> Result<()> {
        self.manual.advance(Duration::from_secs(secs))?;
        self.idle().await
    }

    fn call_times(&self) -> Vec<i64> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(at, _, _)| (*at - t("2026-01-01T00:00:00Z")).num_seconds())
            .collect()
    }

    fn records(&self, queue: &str) -> Result<Vec<Value>> {
        Ok(self
            .sqs
            .peek_messages(queue, 10)?
            .iter()
            .map(|m| serde_json::from_str(&m.body).expect("record is JSON"))
            .collect())
    }
}

/// Checks an invocation record's condition and invoke count.
pub(crate) fn assert_record(record: &Value, condition: &str, invoke_count: u64) {
    assert_eq!(record["version"], "1.0", "{record}");
    assert_eq!(record["requestContext"]["condition"], condition, "{record}");
    assert_eq!(
        record["requestContext"]["approximateInvokeCount"], invoke_count,
        "{record}"
    );
}

fn on_failure_queue(f: &mut AsyncFunction) {
    f.on_failure = Some(Target::Queue("failures".into()));
}

#[tokio::test]
async fn async_failing_function_runs_three_times_one_and_two_minutes_apart_then_records_failure()
-> Result<()> {
    let s = setup(true, on_failure_queue)?;
    let accepted = s.queues.invoke_async("f", r#"{"date":"2025-12-31"}"#)?;
    let first = accepted.first_attempt().await.context("a first attempt")?;
    assert!(first.result?.lambda_error().is_some());
    assert_eq!(first.next_attempt_at, Some(t("2026-01-01T00:01:00Z")));
    s.idle().await?;
    assert_eq!(s.call_times(), [0]);
    s.advance(59).await?;
    assert_eq!(s.call_times(), [0], "nothing before the minute");
    s.advance(1).await?;
    assert_eq!(s.call_times(), [0, 60]);
    s.advance(119).await?;
    assert_eq!(s.call_times(), [0, 60]);
    assert!(
        s.records("failures")?.is_empty(),
        "not before the last attempt"
    );
    s.advance(1).await?;
    assert_eq!(s.call_times(), [0, 60, 180]);
    // Every attempt is the same request, with the same event.
    let calls = s.calls.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .all(|(_, id, event)| *id == calls[0].1 && event == r#"{"date":"2025-12-31"}"#)
    );

    let records = s.records("failures")?;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["version"], "1.0");
    assert_eq!(r["timestamp"], "2026-01-01T00:03:00.000Z");
    assert_record(r, "RetriesExhausted", 3);
    assert_eq!(
        r["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"
    );
    assert_eq!(
        format!("f:{}", r["requestContext"]["requestId"].as_str().unwrap()),
        calls[0].1
    );
    assert_eq!(r["requestPayload"], json!({"date": "2025-12-31"}));
    assert_eq!(
        r["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
    );
    assert_eq!(
        r["responsePayload"],
        json!({"errorType": "ReportError", "errorMessage": "the store is down"})
    );
    let stats = s.queues.stats();
    assert_eq!(stats[0].function, "f");
    assert_eq!(
        (
            stats[0].accepted,
            stats[0].attempts,
            stats[0].succeeded,
            stats[0].discarded,
            stats[0].pending
        ),
        (1, 3, 0, 1, 0)
    );
    // Done: nothing waits on the clock any more.
    assert_eq!(s.queues.pending(), 0);
    assert_eq!(s.manual.pending_waiters(), 0);
    s.advance(3600).await?;
    assert_eq!(s.call_times().len(), 3);
    Ok(())
}

#[tokio::test]
async fn async_zero_retries_make_one_attempt() -> Result<()> {
    let s = setup(true, |f| {
        on_failure_queue(f);
        f.max_retry_attempts = 0;
    })?;
    let first = s.queues.invoke_async("f", "{}")?.first_attempt().await;
    assert_eq!(first.context("first attempt")?.next_attempt_at, None);
    s.idle().await?;
    s.advance(3600).await?;
    assert_eq!(s.call_times(), [0]);
    let records = s.records("failures")?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "RetriesExhausted", 1);
    Ok(())
}

#[tokio::test]
async fn async_event_older_than_its_maximum_age_leaves_the_queue() -> Result<()> {
    let s = setup(true, |f| {
        on_failure_queue(f);
        f.max_event_age = Duration::from_secs(100);
    })?;
    s.queues.invoke_async("f", "{}")?;
    s.idle().await?;
    s.advance(60).await?;
    assert_eq!(s.call_times(), [0, 60]);
    // The second retry would be at 180 s; the event expires at 100 s.
    s.advance(39).await?;
    assert!(s.records("failures")?.is_empty());
    s.advance(1).await?;
    let records = s.records("failures")?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "EventAgeExceeded", 2);
    assert_eq!(records[0]["timestamp"], "2026-01-01T00:01:40.000Z");
    s.advance(3600).await?;
    assert_eq!(s.call_times(), [0, 60]);
    Ok(())
}

#[tokio::test]
async fn async_dead_letter_queue_takes_the_event_when_there_is_no_on_failure_destination()
-> Result<()> {
    let s = setup(true, |f| {
        f.max_retry_attempts = 1;
        f.dead_letter_queue = Some("dlq".into());
    })?;
    let accepted = s.queues.invoke_async("f", r#"{"k":1}"#)?;
    let request_id = accepted.request_id.clone();
    s.idle().await?;
    s.advance(60).await?;
    assert_eq!(s.call_times(), [0, 60]);
    let dlq = s.sqs.peek_messages("dlq", 10)?;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].body, r#"{"k":1}"#, "the event only, no record");
    let attr = |k: &str| dlq[0].message_attributes.get(k).cloned();
    assert_eq!(
        attr("RequestID").and_then(|v| v.string_value),
        Some(request_id)
    );
    let code = attr("ErrorCode").context("ErrorCode")?;
    assert_eq!(
        (code.data_type.as_str(), code.string_value.as_deref()),
        ("Number", Some("200"))
    );
    assert_eq!(
        attr("ErrorMessage").and_then(|v| v.string_value).as_deref(),
        Some("the store is down")
    );
    assert!(s.records("failures")?.is_empty());
    Ok(())
}

#[tokio::test]
async fn async_on_failure_destination_wins_over_the_dead_letter_queue() -> Result<()> {
    let s = setup(true, |f| {
        on_failure_queue(f);
        f.max_retry_attempts = 0;
        f.dead_letter_queue = Some("dlq".into());
    })?;
    s.queues.invoke_async("f", "{}")?;
    s.idle().await?;
    assert_eq!(s.records("failures")?.len(), 1);
    assert!(s.sqs.peek_messages("dlq", 10)?.is_empty());
    Ok(())
}

#[tokio::test]
async fn async_success_goes_to_the_on_success_destination() -> Result<()> {
    let s = setup(false, |f| {
        on_failure_queue(f);
        f.on_success = Some(Target::Queue("successes".into()));
    })?;
    let first = s
        .queues
        .invoke_async("f", r#"{"n":2}"#)?
        .first_attempt()
        .await;
    assert!(first.context("first attempt")?.result?.is_success());
    s.idle().await?;
    let records = s.records("successes")?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "Success", 1);
    assert_eq!(records[0]["responsePayload"], json!({"ok": true}));
    assert_eq!(
        records[0]["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST"})
    );
    assert!(s.records("failures")?.is_empty());
    Ok(())
}

#[tokio::test]
async fn async_function_destination_is_invoked_asynchronously_with_the_record() -> Result<()> {
    let s = setup(true, |f| {
        f.max_retry_attempts = 0;
        f.on_failure = Some(Target::Function("g".into()));
    })?;
    s.queues.invoke_async("f", r#"{"n":3}"#)?;
    s.idle().await?;
    let calls = s.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].1.starts_with("g:"));
    let record: Value = serde_json::from_str(&calls[1].2)?;
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestPayload"], json!({"n": 3}));
    Ok(())
}

#[tokio::test]
async fn async_invoke_refuses_unknown_functions_and_oversized_events() -> Result<()> {
    let s = setup(false, |_| {})?;
    assert!(matches!(
        s.queues.invoke_async("nope", "{}"),
        Err(InvokeError::UnknownFunction(name)) if name == "nope"
    ));
    let big = vec![b'x'; 1024 * 1024 + 1];
    assert!(matches!(
        s.queues.invoke_async("f", big),
        Err(InvokeError::PayloadTooLarge {
            limit: 1_048_576,
            ..
        })
    ));
    // By ARN, as the Invoke API allows.
    s.queues
        .invoke_async("arn:aws:lambda:us-east-1:000000000000:function:f", "{}")?;
    s.idle().await?;
    assert_eq!(s.call_times(), [0]);
    Ok(())
}

#[tokio::test]
async fn async_stop_abandons_waiting_retries_and_refuses_new_events() -> Result<()> {
    let s = setup(true, on_failure_queue)?;
    s.queues.invoke_async("f", "{}")?;
    s.idle().await?;
    assert_eq!(s.queues.pending(), 1);
    assert_eq!(
        s.queues.next_retry(),
        Some(t("2026-01-01T00:00:00Z") + TimeDelta::seconds(60))
    );
    tokio::time::timeout(PATIENCE, s.queues.stop()).await?;
    assert_eq!(s.queues.pending(), 0);
    assert!(matches!(
        s.queues.invoke_async("f", "{}"),
        Err(InvokeError::ShuttingDown)
    ));
    assert!(s.records("failures")?.is_empty());
    Ok(())
}

/// When each call was made, on the clock.
type Times = Arc<Mutex<Vec<DateTime<Utc>>>>;

/// Function `f` behind an invoker that fails its first `failures` calls with `error`, then
/// succeeds; returns the setup (queues `failures`, `successes`) and the times of the calls.
fn scripted(
    failures: usize,
    error: fn() -> InvokeError,
    configure: impl FnOnce(&mut AsyncFunction),
) -> Result<(Setup, Times)> {
    struct Scripted {
        clock: SharedClock,
        failures: usize,
        error: fn() -> InvokeError,
        calls: Times,
    }
    impl Invoker for Scripted {
        fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(self.clock.now());
                calls.len()
            };
            let result = if n <= self.failures {
                Err((self.error)())
            } else {
                Ok(InvokeResponse {
                    request_id: req.request_id,
                    outcome: InvokeOutcome::Success(Bytes::from_static(b"{}")),
                    duration: Duration::ZERO,
                    init_duration: None,
                })
            };
            Box::pin(async move { result })
        }
    }
    let (clock, manual) = clock::manual(t("2026-01-01T00:00:00Z"));
    let sqs = SqsEngine::in_memory(clock.clone());
    let none = BTreeMap::new();
    for queue in ["failures", "successes"] {
        sqs.create_queue(queue, &none, &none)?;
    }
    let calls = Arc::default();
    let invoker = Scripted {
        clock: clock.clone(),
        failures,
        error,
        calls: Arc::clone(&calls),
    };
    let mut f = AsyncFunction::new("f");
    f.on_failure = Some(Target::Queue("failures".into()));
    f.on_success = Some(Target::Queue("successes".into()));
    configure(&mut f);
    let queues = AsyncInvoker::new([f], Arc::new(invoker), Some(sqs.clone()), clock);
    let setup = Setup {
        manual,
        sqs,
        queues,
        calls: Arc::default(),
    };
    Ok((setup, calls))
}

fn seconds(calls: &Mutex<Vec<DateTime<Utc>>>) -> Vec<i64> {
    calls
        .lock()
        .unwrap()
        .iter()
        .map(|at| (*at - t("2026-01-01T00:00:00Z")).num_seconds())
        .collect()
}

fn unreachable() -> InvokeError {
    InvokeError::Unreachable {
        endpoint: "runtime".into(),
        message: "connection refused".into(),
    }
}

#[tokio::test]
async fn async_service_errors_back_off_from_one_second_without_using_up_the_retries() -> Result<()>
{
    let (s, calls) = scripted(3, unreachable, |f| f.max_retry_attempts = 0)?;
    s.queues.invoke_async("f", "{}")?;
    s.idle().await?;
    for _ in 0..8 {
        s.advance(1).await?;
    }
    assert_eq!(seconds(&calls), [0, 1, 3, 7]);
    let records = s.records("successes")?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "Success", 1);
    assert!(s.records("failures")?.is_empty());
    Ok(())
}

#[tokio::test]
async fn async_service_errors_end_when_the_event_is_too_old() -> Result<()> {
    let (s, calls) = scripted(usize::MAX, unreachable, |f| {
        f.max_event_age = Duration::from_secs(60);
    })?;
    s.queues.invoke_async("f", "{}")?;
    s.idle().await?;
    for _ in 0..120 {
        s.advance(1).await?;
    }
    // 1, 2, 4, 8, 16 s apart; the next (32 s later, at 63 s) would pass the 60 s age.
    assert_eq!(seconds(&calls), [0, 1, 3, 7, 15, 31]);
    let records = s.records("failures")?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "EventAgeExceeded", 0);
    assert_eq!(records[0]["responseContext"]["statusCode"], 500);
    assert_eq!(records[0]["timestamp"], "2026-01-01T00:01:00.000Z");
    Ok(())
}

#[tokio::test]
async fn async_reserved_concurrency_zero_sends_events_to_the_destination_without_retries()
-> Result<()> {
    let (s, calls) = scripted(usize::MAX, || InvokeError::Throttled("f".into()), |_| {})?;
    s.queues.invoke_async("f", r#"{"k":1}"#)?;
    s.idle().await?;
    s.advance(3600).await?;
    assert_eq!(seconds(&calls), [0]);
    let records = s.records("failures")?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "RetriesExhausted", 0);
    assert_eq!(records[0]["responseContext"]["statusCode"], 429);
    assert_eq!(records[0]["requestPayload"], json!({"k": 1}));
    Ok(())
}
