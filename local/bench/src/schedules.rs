//! The schedules group: a stepped year of schedules on the manual clock and the async invoke
//! queue.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{BENCH_FUNCTION, BUDGET_ONE_TIME, BUDGET_SCHEDULE_YEAR, STALL};
use nightshift_local::clock::{self, ManualClock};
use nightshift_local::invoke_async::{AsyncFunction, AsyncInvoker};
use nightshift_local::invoker::{FunctionError, InProcessInvoker};
use nightshift_local::schedule::runner::{RunnerConfig, ScheduleRunner};
use nightshift_local::scheduler_api::ListQuery;
use nightshift_local::scheduler_api::SchedulerApi;
use nightshift_local::scheduler_api::model::ScheduleRequest;
use nightshift_local::shutdown::Shutdown;
use nightshift_local::template::{
    LoadOptions, RetryPolicy, ScheduleDef, ScheduleKind, ScheduleTarget, Template,
};

use crate::output::{Row, per_second};

fn schedule_def(id: &str, expression: &str, timezone: &str, input: Option<&str>) -> ScheduleDef {
    ScheduleDef {
        id: id.to_owned(),
        name: id.to_owned(),
        target: ScheduleTarget::Function(BENCH_FUNCTION.to_owned()),
        expression: expression.to_owned(),
        timezone: timezone.to_owned(),
        kind: ScheduleKind::ScheduleV2,
        input: input.map(str::to_owned),
        retry_policy: RetryPolicy::default(),
        dead_letter_queue: None,
        flexible_window_minutes: None,
        enabled: true,
        start_date: None,
        end_date: None,
    }
}

/// A started schedule runner on a manual clock.
struct ScheduleBench {
    template: Template,
    runner: ScheduleRunner,
    manual: Arc<ManualClock>,
    shutdown: Shutdown,
    count: Arc<AtomicU64>,
}

impl ScheduleBench {
    /// A runner over `rate(5 minutes)` and the daily report's cron (02:00 Europe/Berlin) on a
    /// manual clock at 2026-01-01, with a counting no-op function, waiting on the clock.
    async fn start() -> Result<Self> {
        let schedules = vec![
            schedule_def("Poll", "rate(5 minutes)", "UTC", None),
            schedule_def(
                "Daily",
                "cron(0 2 * * ? *)",
                "Europe/Berlin",
                Some(r#"{"scheduled_time":"<aws.scheduler.scheduled-time>"}"#),
            ),
        ];
        Self::with(schedules).await
    }

    /// A runner over `schedules`, started, on a manual clock at 2026-01-01, with a counting
    /// no-op function; waits until each schedule waits on the clock.
    async fn with(schedules: Vec<ScheduleDef>) -> Result<Self> {
        let template = Template {
            functions: BTreeMap::new(),
            queues: BTreeMap::new(),
            event_sources: Vec::new(),
            schedules,
            schedule_groups: Vec::new(),
            skipped_functions: Vec::new(),
            skipped_events: Vec::new(),
            ses_event_destinations: false,
        };
        Self::over(template).await
    }

    /// A runner over `template`'s schedules, started, on a manual clock at 2026-01-01, with a
    /// counting no-op function; waits until each schedule waits on the clock.
    async fn over(template: Template) -> Result<Self> {
        let waiting = template.schedules.len();
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse()?;
        let (clock, manual) = clock::manual(start);
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let invoker =
            InProcessInvoker::new().with_function(BENCH_FUNCTION, move |_payload, _ctx| {
                counter.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, FunctionError>(Bytes::from_static(b"null")) }
            });
        // Scheduler → Lambda is an asynchronous invocation, as on AWS.
        let queues = AsyncInvoker::new(
            [AsyncFunction::new(BENCH_FUNCTION)],
            Arc::new(invoker),
            None,
            clock.clone(),
        );
        let runner = ScheduleRunner::new(
            &template,
            queues,
            None,
            clock,
            RunnerConfig {
                seed: Some(7),
                ..RunnerConfig::default()
            },
        )?;
        let shutdown = Shutdown::new();
        runner.start(shutdown.signal())?;
        tokio::time::timeout(STALL, manual.wait_for_waiters(waiting))
            .await
            .context("schedule tasks never waited on the clock")?;
        Ok(ScheduleBench {
            template,
            runner,
            manual,
            shutdown,
            count,
        })
    }

    fn stop(self) -> u64 {
        self.shutdown.trigger();
        self.count.load(Ordering::Relaxed)
    }
}

/// A year of [`ScheduleBench`] through `ScheduleRunner::advance`: wall time and invocations.
async fn stepped_year(year: Duration) -> Result<(Duration, u64)> {
    let bench = ScheduleBench::start().await?;
    let started = Instant::now();
    tokio::time::timeout(STALL, bench.runner.advance(year))
        .await
        .context("advance did not finish")??;
    let elapsed = started.elapsed();
    Ok((elapsed, bench.stop()))
}

pub(super) async fn schedules(scratch: &Path) -> Result<Vec<Row>> {
    // The five-minute rate's run at start (it has no StartDate), 365 days of 288 more, and 364
    // reports: 02:00 does not exist in Berlin on 29 March 2026, so that day's run is skipped.
    const EXPECTED: u64 = 1 + 365 * 288 + 364;
    let year = Duration::from_secs(365 * 86_400);
    let budget = format!("≤ {:.0} s", BUDGET_SCHEDULE_YEAR.as_secs_f64());
    let mut rows = Vec::new();

    eprintln!("schedules: one year, stepped (ScheduleRunner::advance)");
    let (stepped, invocations) = stepped_year(year).await?;
    ensure!(
        invocations == EXPECTED,
        "stepped advance made {invocations} invocations, expected {EXPECTED}"
    );
    rows.push(Row::new(
        "emulator",
        "1 year of rate(5 minutes) + daily cron: ScheduleRunner::advance (each fire at its time)",
        budget.clone(),
        format!("{:.3} s ({invocations} invocations)", stepped.as_secs_f64()),
        stepped <= BUDGET_SCHEDULE_YEAR,
    ));

    eprintln!("schedules: one year, stepped, on a current-thread runtime");
    // The stepped advance is 105,120 wake-ups in a row; on one thread none of them crosses
    // threads, which shows how much of the time is scheduling between the two workers.
    let (single, invocations) = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(stepped_year(year))
    })
    .await??;
    ensure!(
        invocations == EXPECTED,
        "stepped advance made {invocations} invocations, expected {EXPECTED}"
    );
    rows.push(Row::info(
        "emulator",
        "  same, on a current-thread tokio runtime",
        format!("{:.3} s", single.as_secs_f64()),
    ));

    eprintln!("schedules: one year, one clock jump");
    let bench = ScheduleBench::start().await?;
    let started = Instant::now();
    // Each schedule catches up in order, with the clock already at the end of the year.
    bench.manual.advance(year)?;
    tokio::time::timeout(STALL, bench.runner.wait_idle())
        .await
        .context("the runner never caught up")?;
    let jumped = started.elapsed();
    let invocations = bench.stop();
    ensure!(
        invocations == EXPECTED,
        "one jump made {invocations} invocations, expected {EXPECTED}"
    );
    rows.push(Row::new(
        "emulator",
        "1 year of rate(5 minutes) + daily cron: one ManualClock::advance + wait_idle",
        budget,
        format!("{:.3} s ({invocations} invocations)", jumped.as_secs_f64()),
        jumped <= BUDGET_SCHEDULE_YEAR,
    ));

    eprintln!("schedules: {ONE_TIME} one-time schedules added at run time");
    let (added, fired, invocations) = one_time_schedules(ONE_TIME, scratch).await?;
    ensure!(
        invocations == ONE_TIME as u64,
        "{invocations} of {ONE_TIME} one-time schedules fired"
    );
    rows.push(Row::new(
        "emulator",
        format!(
            "{ONE_TIME} one-time at() schedules: CreateSchedule each (journaled), then one clock jump + wait_idle"
        ),
        format!(
            "created ≤ {} s, fired ≤ {} s",
            BUDGET_ONE_TIME.as_secs(),
            BUDGET_ONE_TIME.as_secs()
        ),
        format!(
            "created in {:.3} s, fired in {:.3} s ({invocations} invocations)",
            added.as_secs_f64(),
            fired.as_secs_f64()
        ),
        added <= BUDGET_ONE_TIME && fired <= BUDGET_ONE_TIME,
    ));

    eprintln!("schedules: asynchronous invocations");
    const EVENTS: usize = 100_000;
    let (elapsed, invocations) = async_invocations(EVENTS).await?;
    ensure!(
        invocations == EVENTS as u64,
        "{invocations} of {EVENTS} async events ran"
    );
    rows.push(Row::info(
        "emulator",
        "async (Event) invocations of a no-op in-process function: accepted, run, done",
        format!(
            "{}/s ({EVENTS} in {:.3} s)",
            per_second(EVENTS as f64 / elapsed.as_secs_f64()),
            elapsed.as_secs_f64()
        ),
    ));
    Ok(rows)
}

/// How many one-time schedules the run-time row creates (issue 12: an application's "send
/// this in 3 days" at scale).
const ONE_TIME: usize = 100_000;

/// The bench function, as a template gives it, so that the Scheduler API accepts its ARN as
/// a target.
const ONE_TIME_TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  BenchFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: bench-function
      CodeUri: .
    Metadata:
      BuildProperties: {Binary: bench-function}
"#;

/// `n` one-time `at()` schedules, one second apart from 2026-01-01T00:00:01, created as an
/// application creates them: `CreateSchedule` of the Scheduler API (validation, the runner,
/// the journal in a state dir under `scratch`), `ActionAfterCompletion: DELETE`, the bench
/// function as target; then fired by one jump of the manual clock past the last, each
/// deleted after it fired. The wall time of the creates, of the fires, and how many ran.
async fn one_time_schedules(n: usize, scratch: &Path) -> Result<(Duration, Duration, u64)> {
    let template = Template::from_yaml(ONE_TIME_TEMPLATE, Path::new("."), &LoadOptions::default())?;
    let bench = ScheduleBench::over(template).await?;
    let state_dir = scratch.join("scheduler-api");
    let config = RunnerConfig::default();
    let api = SchedulerApi::open(
        &bench.template,
        bench.runner.clone(),
        bench.manual.clone(),
        Some(&state_dir),
        &config,
    )?;
    let function_arn = bench.template.functions["BenchFunction"].arn.clone();
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse()?;
    let started = Instant::now();
    for i in 0..n {
        let at = start + chrono::Duration::seconds(i as i64 + 1);
        let request: ScheduleRequest = serde_json::from_value(serde_json::json!({
            "ScheduleExpression": format!("at({})", at.format("%Y-%m-%dT%H:%M:%S")),
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {
                "Arn": function_arn,
                "RoleArn": "arn:aws:iam::000000000000:role/scheduler",
                "Input": format!(r#"{{"user_id":"u-{i}"}}"#),
            },
        }))?;
        api.create_schedule(&format!("follow-up-u-{i}"), request)
            .map_err(|e| anyhow::anyhow!("schedule {i}: {e}"))?;
    }
    let added = started.elapsed();
    tokio::time::timeout(STALL, bench.manual.wait_for_waiters(n))
        .await
        .context("the one-time schedules never waited on the clock")?;
    let started = Instant::now();
    bench.manual.advance(Duration::from_secs(n as u64 + 60))?;
    tokio::time::timeout(STALL, bench.runner.wait_idle())
        .await
        .context("the runner never caught up")?;
    let fired = started.elapsed();
    let left = api.list_schedules(&ListQuery::default())?;
    ensure!(
        left["Schedules"].as_array().is_some_and(Vec::is_empty),
        "schedules left after firing: {left}"
    );
    Ok((added, fired, bench.stop()))
}

/// `events` Event invocations through the asynchronous queue of a counting no-op function:
/// the wall time until every one has run, and how many ran.
async fn async_invocations(events: usize) -> Result<(Duration, u64)> {
    let (clock, _manual) = clock::manual("2026-01-01T00:00:00Z".parse()?);
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let invoker = InProcessInvoker::new().with_function(BENCH_FUNCTION, move |_payload, _ctx| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, FunctionError>(Bytes::from_static(b"null")) }
    });
    let queues = AsyncInvoker::new(
        [AsyncFunction::new(BENCH_FUNCTION)],
        Arc::new(invoker),
        None,
        clock,
    );
    let started = Instant::now();
    for _ in 0..events {
        queues.invoke_async(BENCH_FUNCTION, Bytes::from_static(b"{}"))?;
    }
    tokio::time::timeout(STALL, queues.wait_idle())
        .await
        .context("the async queue never finished")?;
    let elapsed = started.elapsed();
    Ok((elapsed, count.load(Ordering::Relaxed)))
}
