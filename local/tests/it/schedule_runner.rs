//! Integration tests of `nightshift_local::schedule::runner`: schedules fired on a manual clock
//! through the asynchronous queues of an in-process invoker whose handlers record what they
//! receive, dead-letter queues on the in-memory SQS engine, `fire`, `status` counters, shutdown,
//! and a year-long replay.
//!
//! As on AWS, a schedule invokes its function asynchronously: a function error is retried by
//! Lambda (1 and 2 minutes later) and its record goes to the function's on-failure destination
//! (`failures` here), never to the schedule's dead-letter queue, which only receives events the
//! Scheduler could not hand to Lambda (an unknown function, a queue that refuses events).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use nightshift_local::clock::{self, ManualClock, SharedClock};
use nightshift_local::invoke_async::{AsyncFunction, AsyncInvoker, Target};
use nightshift_local::invoker::{FunctionError, InProcessInvoker};
use nightshift_local::schedule::{
    AttemptStatus, RunnerConfig, RunnerError, ScheduleRunner, ScheduleStats,
};
use nightshift_local::shutdown::Shutdown;
use nightshift_local::sqs::SqsEngine;
use nightshift_local::template::{
    RetryPolicy, ScheduleDef, ScheduleKind, ScheduleTarget, Template,
};
use serde_json::Value;

use crate::invoke_async::assert_record;

const DAY: Duration = Duration::from_secs(86_400);
/// Bound on every wait for the runner, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

fn def(id: &str, expression: &str) -> ScheduleDef {
    ScheduleDef {
        id: id.to_owned(),
        name: id.to_owned(),
        target: ScheduleTarget::Function("Fn".to_owned()),
        expression: expression.to_owned(),
        timezone: "UTC".to_owned(),
        kind: ScheduleKind::ScheduleV2,
        input: None,
        retry_policy: RetryPolicy::default(),
        dead_letter_queue: None,
        flexible_window_minutes: None,
        enabled: true,
        start_date: None,
        end_date: None,
    }
}

/// Fires, invocations, failures, dead-lettered and dropped events of a schedule.
fn counts(stats: &ScheduleStats) -> (u64, u64, u64, u64, u64) {
    (
        stats.fires,
        stats.invocations,
        stats.failures,
        stats.dead_lettered,
        stats.dropped,
    )
}

fn template(schedules: Vec<ScheduleDef>) -> Template {
    Template {
        functions: BTreeMap::new(),
        queues: BTreeMap::new(),
        event_sources: Vec::new(),
        schedules,
        schedule_groups: Vec::new(),
        skipped_functions: Vec::new(),
        skipped_events: Vec::new(),
        ses_event_destinations: false,
    }
}

/// One invocation as the function saw it.
#[derive(Debug, Clone)]
struct Call {
    payload: String,
    /// The clock's time during the invocation.
    at: DateTime<Utc>,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload).expect("payload is JSON")
    }

    fn field(&self, key: &str) -> String {
        match &self.json()[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// Function `name` that records each call and answers `Ok(null)`, or fails when `fail` is set.
fn recording(
    invoker: InProcessInvoker,
    name: &str,
    clock: &SharedClock,
    fail: bool,
) -> (InProcessInvoker, Calls) {
    let calls: Calls = Arc::default();
    let (seen, clock) = (calls.clone(), clock.clone());
    let invoker = invoker.with_function(name, move |payload: Bytes, _ctx| {
        seen.lock().unwrap().push(Call {
            payload: String::from_utf8_lossy(&payload).into_owned(),
            at: clock.now(),
        });
        async move {
            if fail {
                Err(FunctionError::new("ReportError", "the store is down"))
            } else {
                Ok(Bytes::from_static(b"null"))
            }
        }
    });
    (invoker, calls)
}

struct Harness {
    clock: SharedClock,
    manual: Arc<ManualClock>,
    sqs: SqsEngine,
    queues: AsyncInvoker,
    runner: ScheduleRunner,
    shutdown: Shutdown,
    stopped: tokio::task::JoinHandle<()>,
}

impl Harness {
    /// Starts a runner over `schedules` at `start`, with `functions` built on its clock (each
    /// with Lambda's default retries and the on-failure destination `failures`), and waits
    /// until every schedule task waits on the clock.
    async fn start(
        start: &str,
        schedules: Vec<ScheduleDef>,
        functions: impl FnOnce(&SharedClock) -> InProcessInvoker,
    ) -> Result<Harness> {
        Self::start_with(start, schedules, functions, false).await
    }

    /// [`Self::start`]; with `refusing`, the asynchronous queues are stopped first, so every
    /// invoke the Scheduler makes fails (a service error it retries).
    async fn start_with(
        start: &str,
        schedules: Vec<ScheduleDef>,
        functions: impl FnOnce(&SharedClock) -> InProcessInvoker,
        refusing: bool,
    ) -> Result<Harness> {
        Self::start_full(start, schedules, functions, refusing, None).await
    }

    /// [`Self::start_with`], keeping the runner's state (rate anchors) in `state_dir`.
    async fn start_full(
        start: &str,
        schedules: Vec<ScheduleDef>,
        functions: impl FnOnce(&SharedClock) -> InProcessInvoker,
        refusing: bool,
        state_dir: Option<std::path::PathBuf>,
    ) -> Result<Harness> {
        let (clock, manual) = clock::manual(t(start));
        let sqs = SqsEngine::in_memory(clock.clone());
        let no_attrs = BTreeMap::new();
        sqs.create_queue("schedule-dlq", &no_attrs, &no_attrs)?;
        sqs.create_queue("failures", &no_attrs, &no_attrs)?;
        let invoker = functions(&clock);
        let settings: Vec<AsyncFunction> = invoker
            .function_names()
            .map(|name| AsyncFunction {
                on_failure: Some(Target::Queue("failures".to_owned())),
                ..AsyncFunction::new(name)
            })
            .collect();
        let queues = AsyncInvoker::new(
            settings,
            Arc::new(invoker),
            Some(sqs.clone()),
            clock.clone(),
        );
        if refusing {
            queues.stop().await;
        }
        let enabled = schedules.iter().filter(|s| s.enabled).count();
        let runner = ScheduleRunner::new(
            &template(schedules),
            queues.clone(),
            Some(sqs.clone()),
            clock.clone(),
            RunnerConfig {
                seed: Some(7),
                state_dir,
                ..RunnerConfig::default()
            },
        )?;
        let shutdown = Shutdown::new();
        let stopped = runner.start(shutdown.signal())?;
        tokio::time::timeout(PATIENCE, manual.wait_for_waiters(enabled))
            .await
            .context("schedule tasks never waited on the clock")?;
        Ok(Harness {
            clock,
            manual,
            sqs,
            queues,
            runner,
            shutdown,
            stopped,
        })
    }

    /// One jump of the manual clock, then wait until the runner has caught up.
    async fn jump(&self, by: Duration) -> Result<()> {
        self.manual.advance(by)?;
        self.idle().await
    }

    async fn idle(&self) -> Result<()> {
        tokio::time::timeout(PATIENCE, self.runner.wait_idle())
            .await
            .context("the runner never became idle")
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.trigger();
        tokio::time::timeout(PATIENCE, self.stopped)
            .await
            .context("the runner did not stop")??;
        tokio::time::timeout(PATIENCE, self.queues.stop())
            .await
            .context("the async queues did not stop")?;
        Ok(())
    }

    /// The invocation records in the functions' on-failure queue.
    fn failure_records(&self) -> Result<Vec<Value>> {
        Ok(self
            .sqs
            .peek_messages("failures", 100)?
            .iter()
            .map(|m| serde_json::from_str(&m.body).expect("record is JSON"))
            .collect())
    }
}

/// A harness at 2026-01-01 over `schedule`, whose function `Fn` always fails; and its calls.
async fn start_failing(schedule: ScheduleDef) -> Result<(Harness, Calls)> {
    let mut calls = None;
    let h = Harness::start("2026-01-01T00:00:00Z", vec![schedule], |clock| {
        let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, true);
        calls = Some(c);
        invoker
    })
    .await?;
    Ok((h, calls.expect("the functions were built")))
}

fn daily_report(tz: &str) -> ScheduleDef {
    ScheduleDef {
        timezone: tz.to_owned(),
        input: Some(r#"{"scheduled_time":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
        ..def("DailyReport", "cron(0 2 * * ? *)")
    }
}

#[tokio::test]
async fn schedule_runner_daily_cron_in_berlin_fires_once_a_day_across_the_october_dst_change()
-> Result<()> {
    let mut calls = None;
    let h = Harness::start(
        "2026-10-10T12:00:00Z",
        vec![daily_report("Europe/Berlin")],
        |clock| {
            let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
            calls = Some(c);
            invoker
        },
    )
    .await?;
    let calls = calls.unwrap();

    // One advance over 31 days, crossing the change back to CET on Sunday 2026-10-25.
    h.jump(31 * DAY).await?;

    // 02:00 in Berlin is 00:00Z in CEST (through 25 October: the repeated 02:00 hour fires
    // once, at its first occurrence) and 01:00Z in CET.
    let expected: Vec<String> = (0..31)
        .map(|d| {
            let day = NaiveDate::from_ymd_opt(2026, 10, 11).unwrap() + TimeDelta::days(d);
            let utc_hour = if day <= NaiveDate::from_ymd_opt(2026, 10, 25).unwrap() {
                0
            } else {
                1
            };
            format!("{day}T{utc_hour:02}:00:00Z")
        })
        .collect();
    let got: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.field("scheduled_time"))
        .collect();
    assert_eq!(got, expected);

    let stats = h.runner.schedule_stats("DailyReport")?;
    assert_eq!(stats.fires, 31);
    assert_eq!(stats.invocations, 31);
    assert_eq!(stats.failures, 0);
    assert_eq!(stats.last_fire, Some(t("2026-11-10T01:00:00Z")));
    assert_eq!(stats.next_fire, Some(t("2026-11-11T01:00:00Z")));
    assert_eq!(stats.expression, "cron(0 2 * * ? *)");
    assert_eq!(stats.timezone, "Europe/Berlin");
    assert_eq!(
        stats.last_result.map(|r| r.status),
        Some(AttemptStatus::Succeeded)
    );
    // Caught up: the task waits for the next day, nothing else.
    assert_eq!(h.manual.pending_waiters(), 1);
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_stepped_advance_invokes_at_each_scheduled_instant() -> Result<()> {
    let mut calls = None;
    let h = Harness::start(
        "2026-10-20T12:00:00Z",
        vec![
            daily_report("Europe/Berlin"),
            ScheduleDef {
                input: Some(r#"{"scheduled_time":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
                ..def("SixHourly", "rate(6 hours)")
            },
        ],
        |clock| {
            let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
            calls = Some(c);
            invoker
        },
    )
    .await?;
    let calls = calls.unwrap();

    let steps = h.runner.advance_to(t("2026-10-30T12:00:00Z")).await?;
    assert_eq!(h.clock.now(), t("2026-10-30T12:00:00Z"));

    let calls = calls.lock().unwrap().clone();
    // 10 daily reports and 41 six-hourly runs (the rate has no StartDate, so it fires when it
    // starts, at 12:00, then every 6 hours: 40 more), each seeing the clock at its scheduled
    // time, the two schedules interleaved in time order.
    assert_eq!(calls.len(), 51);
    assert_eq!(calls[0].field("scheduled_time"), "2026-10-20T12:00:00Z");
    for call in &calls {
        assert_eq!(
            call.field("scheduled_time"),
            call.at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        );
    }
    assert!(calls.windows(2).all(|w| w[0].at <= w[1].at));
    // One clock move per distinct fire time before the target, plus the move to the target
    // (the last six-hourly run): 39 six-hourly instants, and 5 daily ones, because through
    // 25 October 02:00 in Berlin is 00:00Z, which a six-hourly run already stops at.
    assert_eq!(steps, 45);
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_rate_five_minutes_fires_at_start_then_288_times_a_day() -> Result<()> {
    let mut calls = None;
    let h = Harness::start(
        "2026-03-01T00:00:00Z",
        vec![ScheduleDef {
            input: Some(r#"{"t":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
            ..def("Poll", "rate(5 minutes)")
        }],
        |clock| {
            let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
            calls = Some(c);
            invoker
        },
    )
    .await?;
    let calls = calls.unwrap();

    // Without StartDate, a rate fires as soon as it is created (the runner's start), before
    // any time passes.
    h.idle().await?;
    assert_eq!(calls.lock().unwrap().len(), 1);

    h.jump(DAY).await?;

    let times: Vec<DateTime<Utc>> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| t(&c.field("t")))
        .collect();
    // The start, then 288 periods.
    assert_eq!(times.len(), 289);
    assert_eq!(times[0], t("2026-03-01T00:00:00Z"));
    assert_eq!(times[1], t("2026-03-01T00:05:00Z"));
    assert_eq!(times[288], t("2026-03-02T00:00:00Z"));
    assert!(
        times
            .windows(2)
            .all(|w| w[1] - w[0] == TimeDelta::minutes(5))
    );
    assert_eq!(h.runner.schedule_stats("Poll")?.fires, 289);

    // The next advance continues on the same grid, without repeating the last one.
    h.jump(Duration::from_secs(600)).await?;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 291);
    assert_eq!(calls[289].field("t"), "2026-03-02T00:05:00Z");
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_restart_with_a_state_dir_continues_the_rate_without_firing_again()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let schedule = || ScheduleDef {
        input: Some(r#"{"t":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
        ..def("Hourly", "rate(1 hour)")
    };
    let run = |start: &'static str, advance: Duration| {
        let dir = dir.path().to_owned();
        async move {
            let mut calls = None;
            let h = Harness::start_full(
                start,
                vec![schedule()],
                |clock| {
                    let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
                    calls = Some(c);
                    invoker
                },
                false,
                Some(dir),
            )
            .await?;
            h.jump(advance).await?;
            h.stop().await?;
            let times: Vec<String> = calls
                .context("the functions were built")?
                .lock()
                .unwrap()
                .iter()
                .map(|c| c.field("t"))
                .collect();
            anyhow::Ok(times)
        }
    };

    // First start: the immediate fire, then one an hour later.
    let first = run("2026-01-01T00:00:00Z", Duration::from_secs(3600)).await?;
    assert_eq!(first, ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"]);
    // A restart at 01:30 does not fire at once again: the schedule continues on its grid.
    let second = run("2026-01-01T01:30:00Z", Duration::from_secs(3600)).await?;
    assert_eq!(second, ["2026-01-01T02:00:00Z"]);

    // Without the state dir (or with a changed expression) it is a new schedule.
    let fresh = Harness::start("2026-01-01T01:30:00Z", vec![schedule()], |clock| {
        recording(InProcessInvoker::new(), "Fn", clock, false).0
    })
    .await?;
    fresh.idle().await?;
    assert_eq!(fresh.runner.schedule_stats("Hourly")?.fires, 1);
    fresh.stop().await
}

#[tokio::test]
async fn schedule_runner_legacy_rule_sends_the_scheduled_event_envelope() -> Result<()> {
    let mut rule_calls = None;
    let mut input_calls = None;
    let h = Harness::start(
        "2026-05-01T00:00:00Z",
        vec![
            ScheduleDef {
                kind: ScheduleKind::LegacyRule,
                target: ScheduleTarget::Function("Hourly".to_owned()),
                name: "nightshift-HourlyRule".to_owned(),
                ..def("HourlyRule", "rate(1 hour)")
            },
            ScheduleDef {
                kind: ScheduleKind::LegacyRule,
                target: ScheduleTarget::Function("Constant".to_owned()),
                // Rules send Input as is: context attributes are a Scheduler feature.
                input: Some(r#"{"at":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
                ..def("ConstantRule", "cron(30 0 * * ? *)")
            },
        ],
        |clock| {
            let (invoker, a) = recording(InProcessInvoker::new(), "Hourly", clock, false);
            let (invoker, b) = recording(invoker, "Constant", clock, false);
            rule_calls = Some(a);
            input_calls = Some(b);
            invoker
        },
    )
    .await?;

    h.jump(Duration::from_secs(2 * 3600)).await?;

    // A rule's rate starts one period after the rule (unlike a Scheduler rate, no fire at
    // start): 01:00 and 02:00.
    let calls = rule_calls.unwrap().lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    let event = calls[1].json();
    let raw = &calls[1].payload;
    let mut keys: Vec<(usize, &str)> = event
        .as_object()
        .context("envelope is an object")?
        .keys()
        .map(|k| {
            (
                raw.find(&format!("\"{k}\":")).expect("key in payload"),
                k.as_str(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>(),
        [
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail"
        ],
        "AWS field order"
    );
    assert_eq!(event["version"], "0");
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["account"], "000000000000");
    assert_eq!(event["region"], "us-east-1");
    assert_eq!(event["time"], "2026-05-01T02:00:00Z");
    assert_eq!(
        event["resources"],
        serde_json::json!(["arn:aws:events:us-east-1:000000000000:rule/nightshift-HourlyRule"])
    );
    assert_eq!(event["detail"], serde_json::json!({}));
    let id = event["id"].as_str().context("id")?;
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_ne!(calls[0].field("id"), id, "one event id per occurrence");
    assert_eq!(calls[0].field("time"), "2026-05-01T01:00:00Z");

    let constant = input_calls.unwrap().lock().unwrap().clone();
    assert_eq!(constant.len(), 1);
    assert_eq!(
        constant[0].payload,
        r#"{"at":"<aws.scheduler.scheduled-time>"}"#
    );
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_substitutes_context_attributes_and_sends_empty_object_without_input()
-> Result<()> {
    let mut with_input = None;
    let mut without_input = None;
    let h = Harness::start(
        "2026-01-01T00:00:00Z",
        vec![
            ScheduleDef {
                name: "ctx-schedule".to_owned(),
                input: Some(
                    r#"{"time":"<aws.scheduler.scheduled-time>","id":"<aws.scheduler.execution-id>","attempt":<aws.scheduler.attempt-number>,"arn":"<aws.scheduler.schedule-arn>","other":"<aws.scheduler.unknown>"}"#
                        .to_owned(),
                ),
                ..def("Ctx", "rate(1 hour)")
            },
            ScheduleDef {
                target: ScheduleTarget::Function("Bare".to_owned()),
                ..def("Bare", "rate(1 hour)")
            },
        ],
        |clock| {
            let (invoker, a) = recording(InProcessInvoker::new(), "Fn", clock, false);
            let (invoker, b) = recording(invoker, "Bare", clock, false);
            with_input = Some(a);
            without_input = Some(b);
            invoker
        },
    )
    .await?;

    h.jump(Duration::from_secs(2 * 3600)).await?;

    // At start (no StartDate: the rate fires at once), 01:00 and 02:00.
    let calls = with_input.unwrap().lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    let first = calls[0].json();
    assert_eq!(first["time"], "2026-01-01T00:00:00Z");
    assert_eq!(calls[1].json()["time"], "2026-01-01T01:00:00Z");
    assert_eq!(first["attempt"], 1);
    assert_eq!(
        first["arn"],
        "arn:aws:scheduler:us-east-1:000000000000:schedule/default/ctx-schedule"
    );
    assert_eq!(first["other"], "<aws.scheduler.unknown>");
    let id = first["id"].as_str().context("execution id")?;
    assert_eq!(id.len(), 16);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    );
    assert_ne!(calls[1].field("id"), id, "one execution id per invocation");

    let bare = without_input.unwrap().lock().unwrap().clone();
    assert_eq!(bare.len(), 3);
    assert!(bare.iter().all(|c| c.payload == "{}"));
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_failing_function_is_retried_by_lambda_and_never_reaches_the_schedule_dlq()
-> Result<()> {
    let (h, calls) = start_failing(ScheduleDef {
        input: Some(
            r#"{"scheduled_time":"<aws.scheduler.scheduled-time>","attempt":<aws.scheduler.attempt-number>}"#
                .to_owned(),
        ),
        dead_letter_queue: Some("schedule-dlq".to_owned()),
        ..def("DailyReport", "cron(0 2 * * ? *)")
    })
    .await?;

    h.runner.advance_to(t("2026-01-01T02:10:00Z")).await?;

    // Lambda's retries, 1 and then 2 minutes apart, of the one event the Scheduler delivered.
    let calls = calls.lock().unwrap().clone();
    let at: Vec<_> = calls.iter().map(|c| c.at).collect();
    assert_eq!(
        at,
        [
            t("2026-01-01T02:00:00Z"),
            t("2026-01-01T02:01:00Z"),
            t("2026-01-01T02:03:00Z"),
        ]
    );
    assert!(calls.iter().all(|c| c.payload == calls[0].payload));
    assert_eq!(
        calls[0].field("attempt"),
        "1",
        "the Scheduler made one attempt"
    );
    // The function's on-failure destination has the record; the schedule's DLQ has nothing.
    let records = h.failure_records()?;
    assert_eq!(records.len(), 1);
    assert_record(&records[0], "RetriesExhausted", 3);
    assert_eq!(records[0]["requestPayload"], calls[0].json());
    assert!(h.sqs.peek_messages("schedule-dlq", 10)?.is_empty());
    let stats = h.runner.schedule_stats("DailyReport")?;
    assert_eq!(counts(&stats), (1, 1, 0, 0, 0));
    assert!(matches!(
        stats.last_result.map(|r| r.status),
        Some(AttemptStatus::Succeeded)
    ));
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_retries_a_refused_invoke_with_growing_backoff_then_dead_letters()
-> Result<()> {
    // The function's asynchronous queue refuses every event: the Scheduler could not invoke,
    // so the schedule's RetryPolicy and dead-letter queue apply.
    let mut calls = None;
    let h = Harness::start_with(
        "2026-01-01T00:00:00Z",
        vec![ScheduleDef {
            input: Some(
                r#"{"scheduled_time":"<aws.scheduler.scheduled-time>","attempt":<aws.scheduler.attempt-number>,"id":"<aws.scheduler.execution-id>"}"#
                    .to_owned(),
            ),
            retry_policy: RetryPolicy {
                max_event_age_s: 3600,
                max_retry_attempts: 3,
            },
            dead_letter_queue: Some("schedule-dlq".to_owned()),
            ..def("DailyReport", "cron(0 2 * * ? *)")
        }],
        |clock| {
            let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
            calls = Some(c);
            invoker
        },
        true,
    )
    .await?;
    let attempts = || {
        h.runner
            .schedule_stats("DailyReport")
            .map(|s| s.invocations)
            .unwrap_or_default()
    };

    // The first attempt at 02:00; its retry waits on the clock next to the next day's fire.
    h.jump(Duration::from_secs(2 * 3600)).await?;
    assert_eq!(attempts(), 1);
    assert_eq!(h.manual.pending_waiters(), 2);
    let stats = h.runner.schedule_stats("DailyReport")?;
    assert_eq!(stats.failures, 1);
    match stats.last_result.map(|r| r.status) {
        Some(AttemptStatus::Retrying {
            failure,
            next_attempt_at,
        }) => {
            assert_eq!(failure.code, "ServiceException");
            assert_eq!(next_attempt_at, t("2026-01-01T02:00:01Z"));
        }
        other => panic!("expected a pending retry, got {other:?}"),
    }

    // Walk the backoff: 1 s, then 2 s, then 4 s; nothing happens in between.
    for (wait, expected) in [(1, 2), (1, 2), (1, 3), (3, 3), (1, 4)] {
        h.jump(Duration::from_secs(wait)).await?;
        assert_eq!(attempts(), expected, "at {}", h.clock.now());
    }
    assert_eq!(h.clock.now(), t("2026-01-01T02:00:07Z"));
    assert!(calls.unwrap().lock().unwrap().is_empty(), "never invoked");

    // Retries are used up: the last payload goes to the dead-letter queue.
    let dlq = h.sqs.peek_messages("schedule-dlq", 10)?;
    assert_eq!(dlq.len(), 1);
    let message = &dlq[0];
    let body: Value = serde_json::from_str(&message.body)?;
    assert_eq!(body["attempt"], 4);
    assert_eq!(body["scheduled_time"], "2026-01-01T02:00:00Z");
    let attrs: BTreeMap<&str, &str> = message
        .message_attributes
        .iter()
        .map(|(k, v)| {
            assert_eq!(v.data_type, "String", "{k}");
            (k.as_str(), v.string_value.as_deref().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        attrs,
        BTreeMap::from([
            ("ERROR_CODE", "ServiceException"),
            ("ERROR_MESSAGE", "the runtime is shutting down"),
            ("EXECUTION_ID", body["id"].as_str().unwrap_or_default()),
            ("EXHAUSTED_RETRY_CONDITION", "MaximumRetryAttempts"),
            ("IS_PAYLOAD_TRUNCATED", "false"),
            ("RETRY_ATTEMPTS", "3"),
            ("SCHEDULED_TIME", "2026-01-01T02:00:00Z"),
            (
                "SCHEDULE_ARN",
                "arn:aws:scheduler:us-east-1:000000000000:schedule/default/DailyReport"
            ),
            (
                "TARGET_ARN",
                "arn:aws:lambda:us-east-1:000000000000:function:Fn"
            ),
        ])
    );
    let stats = h.runner.schedule_stats("DailyReport")?;
    assert_eq!(counts(&stats), (1, 4, 4, 1, 0));
    assert!(matches!(
        stats.last_result.map(|r| r.status),
        Some(AttemptStatus::DeadLettered { queue, .. }) if queue == "schedule-dlq"
    ));
    // Only the next day's fire is left on the clock.
    assert_eq!(h.manual.pending_waiters(), 1);
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_event_age_ends_retries_which_never_block_the_next_occurrence() -> Result<()>
{
    let h = Harness::start_with(
        "2026-01-01T00:00:00Z",
        vec![ScheduleDef {
            retry_policy: RetryPolicy {
                max_event_age_s: 60,
                max_retry_attempts: 185,
            },
            ..def("EveryMinute", "rate(1 minute)")
        }],
        |clock| recording(InProcessInvoker::new(), "Fn", clock, false).0,
        true,
    )
    .await?;

    // Up to 00:03:40: four occurrences (00:00, at start, as the rate has no StartDate, then
    // every minute), the last one's retries over by 00:03:31.
    h.runner.advance(Duration::from_secs(220)).await?;

    // Each occurrence: attempts at +0, +1, +3, +7, +15, +31 s; the next (+63 s) would pass the
    // 60 s event age. Each first attempt ran on time, while the previous one was retrying.
    let stats = h.runner.schedule_stats("EveryMinute")?;
    let last = stats.last_result.clone().context("a last result")?;
    assert_eq!(
        (last.scheduled_time, last.attempt, last.at),
        (t("2026-01-01T00:03:00Z"), 6, t("2026-01-01T00:03:31Z"))
    );
    assert!(matches!(last.status, AttemptStatus::Dropped { .. }));
    // No dead-letter queue: each exhausted event is dropped (with an error log).
    assert_eq!(
        (
            stats.fires,
            stats.failures,
            stats.dead_lettered,
            stats.dropped
        ),
        (4, 24, 0, 4)
    );
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_unknown_function_goes_to_the_dlq_without_retries() -> Result<()> {
    let h = Harness::start(
        "2026-01-01T00:00:00Z",
        vec![ScheduleDef {
            target: ScheduleTarget::Function("Missing".to_owned()),
            dead_letter_queue: Some("schedule-dlq".to_owned()),
            ..def("Orphan", "rate(1 hour)")
        }],
        |_| InProcessInvoker::new(),
    )
    .await?;

    h.jump(Duration::from_secs(3600)).await?;

    // Two occurrences, at start (no StartDate) and at 01:00, each dead-lettered at once.
    let dlq = h.sqs.peek_messages("schedule-dlq", 10)?;
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0].body, "{}");
    let attr = |k: &str| {
        dlq[0]
            .message_attributes
            .get(k)
            .and_then(|v| v.string_value.clone())
    };
    assert_eq!(
        attr("ERROR_CODE").as_deref(),
        Some("ResourceNotFoundException")
    );
    assert_eq!(attr("RETRY_ATTEMPTS").as_deref(), Some("0"));
    assert_eq!(attr("EXHAUSTED_RETRY_CONDITION"), None, "it never retried");
    let stats = h.runner.schedule_stats("Orphan")?;
    assert_eq!((stats.invocations, stats.dead_lettered), (2, 2));
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_fire_invokes_now_and_reports_the_result() -> Result<()> {
    let mut calls = None;
    let h = Harness::start(
        "2026-06-15T09:30:00Z",
        vec![
            daily_report("Europe/Berlin"),
            ScheduleDef {
                enabled: false,
                ..def("Paused", "rate(1 minute)")
            },
        ],
        |clock| {
            let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
            calls = Some(c);
            invoker
        },
    )
    .await?;
    let calls = calls.unwrap();

    let fired = h.runner.fire("DailyReport").await?;
    assert_eq!(fired.schedule, "DailyReport");
    assert_eq!(fired.scheduled_time, t("2026-06-15T09:30:00Z"));
    assert_eq!(
        fired.payload,
        Bytes::from_static(br#"{"scheduled_time":"2026-06-15T09:30:00Z"}"#)
    );
    let response = fired.result?;
    assert!(response.is_success());
    assert_eq!(response.payload(), Some(&Bytes::from_static(b"null")));
    assert_eq!(fired.next_attempt_at, None);
    assert_eq!(calls.lock().unwrap().len(), 1);

    // A disabled schedule can be fired by hand.
    h.runner.fire("Paused").await?.result?;
    assert_eq!(calls.lock().unwrap().len(), 2);
    assert!(matches!(
        h.runner.fire("Nope").await,
        Err(RunnerError::UnknownSchedule(name)) if name == "Nope"
    ));

    let stats = h.runner.schedule_stats("DailyReport")?;
    assert_eq!((stats.fires, stats.invocations), (1, 1));
    assert_eq!(stats.last_fire, Some(t("2026-06-15T09:30:00Z")));
    // The schedule itself still waits for its next 02:00 (00:00Z in summer).
    assert_eq!(stats.next_fire, Some(t("2026-06-16T00:00:00Z")));
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_fire_of_a_failing_function_returns_the_first_error_and_lambda_retries()
-> Result<()> {
    let (h, calls) = start_failing(ScheduleDef {
        retry_policy: RetryPolicy {
            max_event_age_s: 3600,
            max_retry_attempts: 1,
        },
        dead_letter_queue: Some("schedule-dlq".to_owned()),
        ..def("Daily", "cron(0 2 * * ? *)")
    })
    .await?;

    // `fire` waits for the first attempt of the asynchronous invocation and returns it.
    let fired = h.runner.fire("Daily").await?;
    let response = fired.result?;
    let error = response.lambda_error().context("a function error")?;
    assert_eq!(error.error_type, "ReportError");
    assert_eq!(fired.next_attempt_at, Some(t("2026-01-01T00:01:00Z")));

    h.jump(Duration::from_secs(60)).await?;
    assert_eq!(calls.lock().unwrap().len(), 2);
    h.jump(Duration::from_secs(120)).await?;
    assert_eq!(calls.lock().unwrap().len(), 3);
    assert_eq!(h.failure_records()?.len(), 1);
    assert!(h.sqs.peek_messages("schedule-dlq", 10)?.is_empty());
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_disabled_schedules_do_not_fire() -> Result<()> {
    let mut on = None;
    let mut off = None;
    let h = Harness::start(
        "2026-01-01T00:00:00Z",
        vec![
            ScheduleDef {
                target: ScheduleTarget::Function("On".to_owned()),
                ..def("On", "rate(1 minute)")
            },
            ScheduleDef {
                target: ScheduleTarget::Function("Off".to_owned()),
                enabled: false,
                ..def("Off", "rate(1 minute)")
            },
        ],
        |clock| {
            let (invoker, a) = recording(InProcessInvoker::new(), "On", clock, false);
            let (invoker, b) = recording(invoker, "Off", clock, false);
            on = Some(a);
            off = Some(b);
            invoker
        },
    )
    .await?;

    h.jump(Duration::from_secs(600)).await?;

    // At start (no StartDate) and then every minute for 10 minutes.
    assert_eq!(on.unwrap().lock().unwrap().len(), 11);
    assert_eq!(off.unwrap().lock().unwrap().len(), 0);
    let stats = h.runner.stats();
    assert_eq!(stats.len(), 2);
    let off_stats = &stats[1];
    assert_eq!(off_stats.id, "Off");
    assert!(!off_stats.enabled);
    assert_eq!((off_stats.fires, off_stats.next_fire), (0, None));
    // Only the enabled schedule waits on the clock.
    assert_eq!(h.manual.pending_waiters(), 1);
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_start_and_end_dates_bound_the_fires() -> Result<()> {
    let mut calls = None;
    let h = Harness::start(
        "2026-01-01T00:00:00Z",
        vec![ScheduleDef {
            input: Some(r#"{"t":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
            start_date: Some(t("2026-01-01T00:30:00Z")),
            end_date: Some(t("2026-01-01T02:00:00Z")),
            ..def("Window", "rate(30 minutes)")
        }],
        |clock| {
            let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
            calls = Some(c);
            invoker
        },
    )
    .await?;

    h.jump(DAY).await?;

    let times: Vec<String> = calls
        .unwrap()
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.field("t"))
        .collect();
    assert_eq!(
        times,
        [
            "2026-01-01T00:30:00Z",
            "2026-01-01T01:00:00Z",
            "2026-01-01T01:30:00Z",
            "2026-01-01T02:00:00Z"
        ]
    );
    // The schedule is over: its task ended and left nothing on the clock.
    assert_eq!(h.manual.pending_waiters(), 0);
    assert_eq!(h.runner.schedule_stats("Window")?.next_fire, None);
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_flexible_window_delays_within_the_window_deterministically() -> Result<()>
{
    async fn run() -> Result<Vec<Call>> {
        let mut calls = None;
        let h = Harness::start(
            "2026-01-01T00:00:00Z",
            vec![ScheduleDef {
                input: Some(r#"{"t":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
                flexible_window_minutes: Some(15),
                ..def("Flex", "rate(1 hour)")
            }],
            |clock| {
                let (invoker, c) = recording(InProcessInvoker::new(), "Fn", clock, false);
                calls = Some(c);
                invoker
            },
        )
        .await?;
        h.runner
            .advance(Duration::from_secs(6 * 3600 + 1800))
            .await?;
        h.stop().await?;
        let calls = calls.unwrap().lock().unwrap().clone();
        Ok(calls)
    }
    let calls = run().await?;
    // At start (no StartDate, within the window after it) and every hour up to 06:00.
    assert_eq!(calls.len(), 7);
    for call in &calls {
        let scheduled = t(&call.field("t"));
        let delay = call.at - scheduled;
        assert!(
            delay >= TimeDelta::zero() && delay < TimeDelta::minutes(15),
            "{scheduled} invoked at {}",
            call.at
        );
    }
    assert!(
        calls.iter().any(|c| c.at != t(&c.field("t"))),
        "the window is used"
    );
    // Same seed, same invocation instants.
    let again: Vec<_> = run().await?.iter().map(|c| c.at).collect();
    assert_eq!(again, calls.iter().map(|c| c.at).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn schedule_runner_stops_cleanly_on_shutdown() -> Result<()> {
    let mut calls = None;
    let h = Harness::start(
        "2026-01-01T00:00:00Z",
        vec![
            def("A", "rate(1 minute)"),
            ScheduleDef {
                retry_policy: RetryPolicy {
                    max_event_age_s: 3600,
                    max_retry_attempts: 5,
                },
                target: ScheduleTarget::Function("Failing".to_owned()),
                ..def("B", "rate(1 hour)")
            },
        ],
        |clock| {
            let (invoker, a) = recording(InProcessInvoker::new(), "Fn", clock, false);
            let (invoker, _) = recording(invoker, "Failing", clock, true);
            calls = Some(a);
            invoker
        },
    )
    .await?;
    let calls = calls.unwrap();
    // B fails at start (stepping the clock, Lambda's retries of that event end at 00:03) and
    // again at 01:00, which leaves a retry waiting on the clock.
    h.runner.advance(Duration::from_secs(3600)).await?;
    assert_eq!(h.manual.pending_waiters(), 3);
    let runner = h.runner.clone();
    let manual = h.manual.clone();

    h.stop().await?;

    // Every task ended and unregistered its waiter; time passing fires nothing.
    assert_eq!(manual.pending_waiters(), 0);
    let before = calls.lock().unwrap().len();
    manual.advance(DAY)?;
    tokio::time::timeout(PATIENCE, runner.wait_idle()).await?;
    assert_eq!(calls.lock().unwrap().len(), before);
    assert!(matches!(runner.fire("A").await, Err(RunnerError::Stopped)));
    let shutdown = Shutdown::new();
    assert!(matches!(
        runner.start(shutdown.signal()),
        Err(RunnerError::Stopped)
    ));
    Ok(())
}

#[tokio::test]
async fn schedule_runner_rejects_bad_definitions_and_double_start() -> Result<()> {
    let (clock, _manual) = clock::manual(t("2026-01-01T00:00:00Z"));
    let queues = AsyncInvoker::new([], Arc::new(InProcessInvoker::new()), None, clock.clone());
    let build = |d: ScheduleDef| {
        ScheduleRunner::new(
            &template(vec![d]),
            queues.clone(),
            None,
            clock.clone(),
            RunnerConfig::default(),
        )
    };
    let err = build(def("Bad", "cron(0 2 * * *)")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule Bad: cron expects 6 fields, got 5"
    );
    let err = build(ScheduleDef {
        timezone: "Mars/Olympus".to_owned(),
        ..def("Zone", "rate(1 day)")
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("schedule Zone: unknown time zone"),
        "{err}"
    );

    let runner = build(def("Ok", "rate(1 day)"))?;
    let shutdown = Shutdown::new();
    let stopped = runner.start(shutdown.signal())?;
    assert!(matches!(
        runner.start(shutdown.signal()),
        Err(RunnerError::AlreadyStarted)
    ));
    shutdown.trigger();
    tokio::time::timeout(PATIENCE, stopped).await??;
    Ok(())
}

/// Replays one year of `rate(5 minutes)` plus a daily cron through the runner with a no-op
/// in-process function, and prints how long it took (a measurement, not an assertion; the
/// budget in `docs/ARCHITECTURE.md`, section 6 "Budgets", is 2 s). Run with `--nocapture` to
/// see the numbers.
#[tokio::test]
async fn schedule_runner_replays_a_year_of_schedules() -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let count = Arc::new(AtomicU64::new(0));
    let noop = |clock: &SharedClock| {
        let _ = clock;
        let count = count.clone();
        InProcessInvoker::new().with_function("Fn", move |_payload, _ctx| {
            count.fetch_add(1, Ordering::Relaxed);
            async { Ok(Bytes::from_static(b"null")) }
        })
    };
    let schedules = || {
        vec![
            def("Poll", "rate(5 minutes)"),
            ScheduleDef {
                timezone: "Europe/Berlin".to_owned(),
                input: Some(r#"{"scheduled_time":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
                ..def("Daily", "cron(0 2 * * ? *)")
            },
        ]
    };
    let year = 365 * DAY;
    // The five-minute rate's run at start (it has no StartDate), 365 days of 288 more, and
    // 364 reports: 02:00 does not exist in Berlin on 29 March 2026 (the clocks jump from 02:00
    // to 03:00), so that day's run is skipped.
    const INVOCATIONS: u64 = 1 + 365 * 288 + 364;
    assert_eq!(
        t("2026-01-01T00:00:00Z") + TimeDelta::from_std(year)?,
        t("2027-01-01T00:00:00Z")
    );

    // One jump: each schedule catches up in order with the clock at the end of the year.
    let h = Harness::start("2026-01-01T00:00:00Z", schedules(), noop).await?;
    let started = Instant::now();
    h.jump(year).await?;
    let one_jump = started.elapsed();
    assert_eq!(count.load(Ordering::Relaxed), INVOCATIONS);
    h.stop().await?;

    // Stepped: the clock visits every fire time, so functions see now == scheduled time.
    count.store(0, Ordering::Relaxed);
    let h = Harness::start("2026-01-01T00:00:00Z", schedules(), noop).await?;
    let started = Instant::now();
    let steps = h.runner.advance_to(t("2027-01-01T00:00:00Z")).await?;
    let stepped = started.elapsed();
    assert_eq!(count.load(Ordering::Relaxed), INVOCATIONS);
    // The daily 02:00 in Berlin is on the five-minute grid: 105,120 distinct instants.
    assert_eq!(steps, 105_120);
    h.stop().await?;

    eprintln!(
        "schedule replay of one year ({INVOCATIONS} invocations): one advance {one_jump:?}, \
         stepped advance_to {stepped:?} ({steps} clock moves)"
    );
    Ok(())
}

/// A Scheduler schedule delivering to engine queue `work` (a template without the queue, so
/// its engine name is the logical id).
fn queue_schedule(id: &str, expression: &str, group: Option<&str>) -> ScheduleDef {
    ScheduleDef {
        target: ScheduleTarget::Queue {
            queue: "work".to_owned(),
            message_group_id: group.map(str::to_owned),
        },
        ..def(id, expression)
    }
}

#[tokio::test]
async fn schedule_runner_queue_target_sends_the_input_as_the_message_body() -> Result<()> {
    let h = Harness::start(
        "2026-01-01T00:00:00Z",
        vec![ScheduleDef {
            input: Some(
                "tick <aws.scheduler.scheduled-time> #<aws.scheduler.attempt-number> <aws.scheduler.schedule-arn>"
                    .to_owned(),
            ),
            ..queue_schedule("Tick", "cron(0 * * * ? *)", Some("ticks"))
        }],
        |_| InProcessInvoker::new(),
    )
    .await?;
    h.sqs
        .create_queue("work", &BTreeMap::new(), &BTreeMap::new())?;

    h.runner.advance(Duration::from_secs(2 * 3600)).await?;

    let bodies: Vec<String> = h
        .sqs
        .peek_messages("work", 10)?
        .into_iter()
        .map(|m| m.body)
        .collect();
    let arn = "arn:aws:scheduler:us-east-1:000000000000:schedule/default/Tick";
    assert_eq!(
        bodies,
        [
            format!("tick 2026-01-01T01:00:00Z #1 {arn}"),
            format!("tick 2026-01-01T02:00:00Z #1 {arn}"),
        ]
    );
    // SqsParameters.MessageGroupId is the message's group id.
    let received = h
        .sqs
        .receive_message(
            "work",
            &nightshift_local::sqs::ReceiveOptions {
                max_messages: 10,
                system_attribute_names: vec!["MessageGroupId".to_owned()],
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|m| m.attributes.get("MessageGroupId").map(String::as_str) == Some("ticks"))
    );
    let stats = h.runner.schedule_stats("Tick")?;
    assert_eq!(stats.target, "sqs:work");
    assert_eq!(counts(&stats), (2, 2, 0, 0, 0));

    // Fired by hand: SendMessage's answer comes back.
    let fired = h.runner.fire("Tick").await?;
    let response = fired.result?;
    assert!(response.is_success());
    let answer: Value = serde_json::from_slice(response.payload().context("a payload")?)?;
    assert_eq!(answer["MessageId"], response.request_id.as_str());
    assert_eq!(h.sqs.peek_messages("work", 10)?.len(), 3);
    h.stop().await
}

#[tokio::test]
async fn schedule_runner_queue_target_deleted_is_retried_then_dead_lettered() -> Result<()> {
    let h = Harness::start(
        "2026-01-01T00:00:00Z",
        vec![ScheduleDef {
            input: Some(r#"{"at":"<aws.scheduler.scheduled-time>"}"#.to_owned()),
            retry_policy: RetryPolicy {
                max_event_age_s: 60,
                max_retry_attempts: 185,
            },
            dead_letter_queue: Some("schedule-dlq".to_owned()),
            ..queue_schedule("Tick", "cron(0 * * * ? *)", None)
        }],
        |_| InProcessInvoker::new(),
    )
    .await?;
    let no_attrs = BTreeMap::new();
    h.sqs.create_queue("work", &no_attrs, &no_attrs)?;
    h.runner.advance(Duration::from_secs(3600)).await?;
    assert_eq!(h.sqs.peek_messages("work", 10)?.len(), 1);

    // The queue is deleted before the 02:00 fire: each send fails, and is retried on the
    // clock (+1, +3, +7, +15, +31 s) until the next (+63 s) would pass the 60 s event age.
    h.sqs.delete_queue("work")?;
    h.runner.advance(Duration::from_secs(3600 + 120)).await?;

    let stats = h.runner.schedule_stats("Tick")?;
    assert_eq!(counts(&stats), (2, 7, 6, 1, 0));
    let last = stats.last_result.context("a last result")?;
    assert_eq!(
        (last.scheduled_time, last.attempt, last.at),
        (t("2026-01-01T02:00:00Z"), 6, t("2026-01-01T02:00:31Z"))
    );
    let dlq = h.sqs.peek_messages("schedule-dlq", 10)?;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].body, r#"{"at":"2026-01-01T02:00:00Z"}"#);
    let attr = |k: &str| {
        dlq[0]
            .message_attributes
            .get(k)
            .and_then(|v| v.string_value.clone())
    };
    assert_eq!(
        attr("ERROR_CODE").as_deref(),
        Some("AWS.SimpleQueueService.NonExistentQueue")
    );
    assert_eq!(
        attr("EXHAUSTED_RETRY_CONDITION").as_deref(),
        Some("MaximumEventAgeInSeconds")
    );
    assert_eq!(attr("RETRY_ATTEMPTS").as_deref(), Some("5"));
    assert_eq!(
        attr("TARGET_ARN").as_deref(),
        Some("arn:aws:sqs:us-east-1:000000000000:work")
    );

    // A queue that comes back during the retries gets the message on the next attempt.
    h.runner.advance(Duration::from_secs(3600 - 120)).await?;
    h.runner.advance(Duration::from_secs(2)).await?;
    h.sqs.create_queue("work", &no_attrs, &no_attrs)?;
    h.runner.advance(Duration::from_secs(5)).await?;
    let bodies: Vec<String> = h
        .sqs
        .peek_messages("work", 10)?
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, [r#"{"at":"2026-01-01T03:00:00Z"}"#]);
    let last = h
        .runner
        .schedule_stats("Tick")?
        .last_result
        .context("a last result")?;
    assert_eq!((last.attempt, last.at), (3, t("2026-01-01T03:00:03Z")));
    assert_eq!(last.status, AttemptStatus::Succeeded);
    h.stop().await
}
