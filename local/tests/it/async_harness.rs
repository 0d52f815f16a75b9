//! Asynchronous invocations through the whole emulator (`Harness`): a fixture template's
//! `EventInvokeConfig`s, `invoke` / `invoke_async`, schedules invoking their function
//! asynchronously, and the real template's daily report failing on every attempt. Everything
//! on the manual clock; handlers in process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use nightshift_local::harness::{Harness, HarnessOptions};
use nightshift_local::invoker::{FunctionError, InProcessInvoker};
use serde_json::{Value, json};

use crate::invoke_async::assert_record;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

fn local_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Handlers that fail, except `echo`, which answers its event.
fn functions(names: &[&str]) -> InProcessInvoker {
    let failing = names.iter().fold(InProcessInvoker::new(), |invoker, name| {
        invoker.with_function(*name, |_payload: Bytes, _ctx| async {
            Err(FunctionError::new("ReportError", "the store is down"))
        })
    });
    failing.with_function("echo", |payload: Bytes, _ctx| async move { Ok(payload) })
}

/// The emulator over `tests/fixtures/templates/async-invoke.yaml`.
async fn fixture() -> Result<Harness> {
    let mut options = HarnessOptions::new(local_dir());
    options.up.template = local_dir().join("tests/fixtures/templates/async-invoke.yaml");
    options.up.env_file = None;
    Ok(Harness::start(options, functions(&["failing", "no-retry", "short-lived"])).await?)
}

/// Seconds after `start` of each invocation of `function`.
fn offsets(h: &Harness, function: &str, start: &str) -> Vec<i64> {
    h.invocations_of(function)
        .iter()
        .map(|i| (i.at - t(start)).num_seconds())
        .collect()
}

fn bodies(h: &Harness, queue: &str) -> Result<Vec<Value>> {
    Ok(h.messages(queue)?
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap_or(Value::String(m.body.clone())))
        .collect())
}

#[tokio::test]
async fn harness_invoke_async_retries_a_failing_function_then_records_it_in_the_on_failure_queue()
-> Result<()> {
    let h = fixture().await?;
    let request_id = h.invoke_async("FailingFunction", r#"{"n":1}"#)?;
    h.run_until_idle().await?;
    for _ in 0..6 {
        h.advance(Duration::from_secs(30)).await?;
    }
    // Three attempts: at once, a minute later, two minutes after that.
    assert_eq!(offsets(&h, "failing", "2026-01-01T00:00:00Z"), [0, 60, 180]);
    let attempts = h.invocations_of("failing");
    assert!(attempts.iter().all(|i| i.request_id == request_id));
    assert!(attempts.iter().all(|i| i.outcome == "error"));
    let records = bodies(&h, "failures")?;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_record(r, "RetriesExhausted", 3);
    assert_eq!(r["requestContext"]["requestId"], request_id.as_str());
    assert_eq!(
        r["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:failing:$LATEST"
    );
    assert_eq!(r["requestPayload"], json!({"n": 1}));
    assert_eq!(r["responseContext"]["functionError"], "Unhandled");
    assert_eq!(r["responsePayload"]["errorMessage"], "the store is down");
    assert!(h.busy().is_empty());
    // `nightshift status` counts them.
    let status = h.emulator().status();
    let failing = status
        .async_invocations
        .iter()
        .find(|a| a.function == "failing")
        .context("failing's counters")?;
    assert_eq!(
        (
            failing.accepted,
            failing.attempts,
            failing.discarded,
            failing.pending
        ),
        (1, 3, 1, 0)
    );
    let table = nightshift_local::cli::render_status(&status);
    assert!(table.contains("ASYNC (Event) FUNCTION"), "{table}");
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn harness_zero_retries_and_no_destination_send_the_event_to_the_function_dlq() -> Result<()>
{
    let h = fixture().await?;
    h.invoke_async("no-retry", r#"{"n":2}"#)?;
    h.run_until_idle().await?;
    h.advance(Duration::from_secs(600)).await?;
    assert_eq!(offsets(&h, "no-retry", "2026-01-01T00:00:00Z"), [0]);
    assert_eq!(bodies(&h, "dead")?, [json!({"n": 2})]);
    assert!(h.messages("failures")?.is_empty());
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn harness_event_age_from_an_event_invoke_config_resource_ends_the_retries() -> Result<()> {
    let h = fixture().await?;
    h.invoke_async("short-lived", "{}")?;
    h.run_until_idle().await?;
    h.advance(Duration::from_secs(600)).await?;
    assert_eq!(offsets(&h, "short-lived", "2026-01-01T00:00:00Z"), [0, 60]);
    let records = bodies(&h, "failures")?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "EventAgeExceeded", 2);
    assert_eq!(records[0]["timestamp"], "2026-01-01T00:01:40.000Z");
    // The on-failure destination wins over the dead-letter queue.
    assert!(h.messages("dead")?.is_empty());
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn harness_invoke_is_synchronous_and_never_retried() -> Result<()> {
    let h = fixture().await?;
    let answer = h.invoke("echo", r#"{"hello":"world"}"#).await?;
    assert_eq!(
        answer.payload(),
        Some(&Bytes::from_static(br#"{"hello":"world"}"#))
    );
    let failed = h.invoke("failing", "{}").await?;
    assert_eq!(
        failed.lambda_error().context("an error")?.error_type,
        "ReportError"
    );
    h.advance(Duration::from_secs(600)).await?;
    assert_eq!(h.invocations_of("failing").len(), 1);
    assert!(
        h.messages("failures")?.is_empty(),
        "no record of a sync call"
    );
    assert!(h.messages("successes")?.is_empty());
    // Asynchronously, the success has its record.
    h.invoke_async("echo", r#"{"k":3}"#)?;
    h.run_until_idle().await?;
    let records = bodies(&h, "successes")?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["requestContext"]["condition"], "Success");
    assert_eq!(records[0]["responsePayload"], json!({"k": 3}));
    assert!(h.invoke("nope", "{}").await.is_err());
    assert!(h.invoke_async("nope", "{}").is_err());
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn harness_a_schedule_whose_function_fails_sends_nothing_to_the_schedule_dlq() -> Result<()> {
    let h = fixture().await?;
    h.advance(Duration::from_secs(2 * 3600 + 600)).await?;
    assert_eq!(offsets(&h, "failing", "2026-01-01T02:00:00Z"), [0, 60, 180]);
    let records = bodies(&h, "failures")?;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["requestPayload"],
        json!({"scheduled_time": "2026-01-01T02:00:00Z"})
    );
    assert!(h.messages("schedule-dlq")?.is_empty());
    h.shutdown().await;
    Ok(())
}

/// The issue's check on the real template: the daily report failing on every attempt runs
/// three times, 1 and then 2 minutes apart, then its event is in the on-failure destination
/// (`report-failures`) and nothing in the schedule's dead-letter queue.
#[tokio::test]
async fn harness_real_template_daily_report_failing_ends_in_its_on_failure_queue() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?
        .to_path_buf();
    let h = Harness::start(
        HarnessOptions::new(root),
        functions(&["nightshift-DailyReportFunction"]),
    )
    .await?;
    // 04:00 in Berlin is 03:00 UTC in January.
    h.advance(Duration::from_secs(3 * 3600 + 600)).await?;
    assert_eq!(
        offsets(&h, "nightshift-DailyReportFunction", "2026-01-01T03:00:00Z"),
        [0, 60, 180]
    );
    let records = bodies(&h, "report-failures")?;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["requestContext"]["condition"],
        "RetriesExhausted"
    );
    assert_eq!(
        records[0]["requestPayload"],
        json!({"scheduled_time": "2026-01-01T03:00:00Z"})
    );
    assert!(h.messages("report-schedule-dlq")?.is_empty());
    h.shutdown().await;
    Ok(())
}
