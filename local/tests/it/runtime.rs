//! Runtime and invokers: the real `test-function` binary (local/examples) run by the
//! process pool, the in-process invoker, and the remote invoker against a small
//! imitation of the Lambda Invoke API.
//!
//! Process tests use real time by necessity (they start and kill real processes);
//! the only long wait is the 1 s function timeout.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use nightshift_local::invoker::{
    ExitInfo, FunctionError, InProcessInvoker, InvokeError, InvokeOutcome, InvokeRequest,
    InvokeResponse, Invoker, PANIC_ERROR_TYPE, RemoteInvoker,
};
use nightshift_local::runtime::{
    FunctionConfig, LogLine, LogStream, ProcessInvoker, Runtime, RuntimeOptions, ShutdownReport,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The `test-function` example binary, built next to this test binary.
pub(crate) fn test_function() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/it-<hash> -> target/<profile>/examples/test-function
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile directory");
        let path = profile_dir.join("examples").join("test-function");
        if !path.exists() {
            let status = std::process::Command::new(env!("CARGO"))
                .args([
                    "build",
                    "-p",
                    "nightshift-local",
                    "--example",
                    "test-function",
                ])
                .status()
                .expect("run cargo build --example test-function");
            assert!(status.success(), "building the test function failed");
        }
        assert!(path.exists(), "{} is missing", path.display());
        path
    })
    .clone()
}

/// Collects every log line and wakes waiters on each one.
#[derive(Clone, Default)]
struct Capture {
    lines: Arc<Mutex<Vec<Captured>>>,
    notify: Arc<Notify>,
}

#[derive(Debug, Clone)]
struct Captured {
    function: String,
    request_id: Option<String>,
    stream: LogStream,
    line: String,
}

impl Capture {
    fn sink(&self) -> nightshift_local::runtime::LogSink {
        let this = self.clone();
        Arc::new(move |line: &LogLine<'_>| {
            this.lines.lock().unwrap().push(Captured {
                function: line.function.to_owned(),
                request_id: line.request_id.map(str::to_owned),
                stream: line.stream,
                line: line.line.to_owned(),
            });
            this.notify.notify_waiters();
        })
    }

    fn find(&self, pred: &dyn Fn(&Captured) -> bool) -> Option<Captured> {
        self.lines.lock().unwrap().iter().find(|l| pred(l)).cloned()
    }

    /// Waits (at most 5 s) for a line matching `pred`.
    async fn wait_for(&self, pred: impl Fn(&Captured) -> bool) -> Result<Captured> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(found) = self.find(&pred) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("no matching log line in {:#?}", self.lines.lock().unwrap());
            }
        }
    }
}

fn runtime_with(functions: Vec<FunctionConfig>) -> (Runtime, Capture) {
    let capture = Capture::default();
    let options = RuntimeOptions {
        log_sink: capture.sink(),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::new(options);
    for config in functions {
        runtime.add_function(config).expect("add function");
    }
    (runtime, capture)
}

fn function(name: &str) -> FunctionConfig {
    FunctionConfig::new(name, test_function())
}

async fn call(invoker: &dyn Invoker, function: &str, payload: Value) -> Result<InvokeResponse> {
    Ok(invoker
        .invoke(InvokeRequest::new(function, payload.to_string()))
        .await?)
}

fn json_of(response: &InvokeResponse) -> Result<Value> {
    let payload = response
        .payload()
        .with_context(|| format!("expected success, got {:?}", response.outcome))?;
    Ok(serde_json::from_slice(payload)?)
}

fn pid_of(response: &InvokeResponse) -> Result<u64> {
    json_of(response)?["pid"].as_u64().context("pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip_then_warm_reuse_with_report_lines() -> Result<()> {
    let (runtime, logs) = runtime_with(vec![function("echo")]);
    let invoker: Arc<dyn Invoker> = Arc::new(ProcessInvoker::new(runtime.clone()));

    let event = json!({"action": "echo", "records": [1, 2, 3], "text": "héllo"});
    let first = call(&*invoker, "echo", event.clone()).await?;
    assert_eq!(json_of(&first)?, event);
    assert!(
        first.init_duration.is_some(),
        "first invoke is a cold start"
    );

    let second = call(&*invoker, "echo", json!({"action": "pid"})).await?;
    let third = call(&*invoker, "echo", json!({"action": "pid"})).await?;
    assert_eq!(second.init_duration, None, "second invoke is warm");
    assert_eq!(pid_of(&second)?, pid_of(&third)?, "same instance");

    let stats = runtime.function_stats("echo").context("stats")?;
    assert_eq!(
        (
            stats.cold_starts,
            stats.invocations,
            stats.instances,
            stats.idle,
            stats.busy
        ),
        (1, 3, 1, 1, 0)
    );

    let cold_report = logs
        .wait_for(|l| {
            l.line
                .starts_with(&format!("REPORT RequestId: {}\t", first.request_id))
        })
        .await?;
    assert_eq!(cold_report.stream, LogStream::Platform);
    assert_eq!(cold_report.function, "echo");
    assert!(cold_report.line.contains("\tDuration: "));
    assert!(cold_report.line.contains("\tBilled Duration: "));
    assert!(cold_report.line.contains("\tMemory Size: 128 MB"));
    assert!(cold_report.line.contains("\tInit Duration: "));
    if cfg!(target_os = "linux") {
        assert!(cold_report.line.contains("\tMax Memory Used: "));
    }
    let warm_report = logs
        .wait_for(|l| {
            l.line
                .starts_with(&format!("REPORT RequestId: {}\t", second.request_id))
        })
        .await?;
    assert!(!warm_report.line.contains("Init Duration"));
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_bounds_instances_and_every_invoke_succeeds() -> Result<()> {
    let (runtime, _logs) = runtime_with(vec![function("capped").with_concurrency(2)]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let calls = (0..6).map(|_| call(&invoker, "capped", json!({"action": "sleep", "ms": 100})));
    let responses = futures::future::try_join_all(calls).await?;
    let pids: HashSet<u64> = responses.iter().map(pid_of).collect::<Result<_>>()?;
    assert!(pids.len() <= 2, "more than 2 instances: {pids:?}");
    let stats = runtime.function_stats("capped").context("stats")?;
    assert_eq!(stats.invocations, 6);
    assert_eq!(stats.errors, 0);
    assert!(stats.cold_starts <= 2, "{stats:?}");
    assert!(stats.instances <= 2, "{stats:?}");
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_place_is_the_one_the_invocation_runs_in() -> Result<()> {
    // The SQS poller reserves a place before it receives (issue 9): with one place, a
    // reservation makes every other invocation wait, and the reserved invocation runs in it
    // instead of waiting for a second one.
    let (runtime, _logs) = runtime_with(vec![
        function("single").with_concurrency(1),
        function("other").with_concurrency(1),
    ]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let slot = invoker.reserve("single").await?;
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        call(&invoker, "single", json!({"action": "echo"})),
    )
    .await;
    assert!(waiting.is_err(), "an invocation ran without room");
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        invoker.invoke_in(
            slot,
            InvokeRequest::new("single", json!({"action": "echo"}).to_string()),
        ),
    )
    .await
    .context("the reserved invocation waited for a place it holds")??;
    assert!(matches!(response.outcome, InvokeOutcome::Success(_)));
    // A place of another function is given back, not used.
    let foreign = invoker.reserve("single").await?;
    let other = invoker
        .invoke_in(
            foreign,
            InvokeRequest::new("other", json!({"action": "echo"}).to_string()),
        )
        .await?;
    assert!(matches!(other.outcome, InvokeOutcome::Success(_)));
    tokio::time::timeout(Duration::from_secs(5), invoker.reserve("single"))
        .await
        .context("the foreign place was not given back")??;
    assert!(matches!(
        invoker.reserve("missing").await,
        Err(InvokeError::UnknownFunction(_))
    ));
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_instance_and_the_next_invoke_cold_starts() -> Result<()> {
    let config = function("slow").with_timeout(Duration::from_secs(1));
    let (runtime, logs) = runtime_with(vec![config]);
    let invoker = ProcessInvoker::new(runtime.clone());

    let pid = pid_of(&call(&invoker, "slow", json!({"action": "pid"})).await?)?;
    let started = std::time::Instant::now();
    let timed_out = call(&invoker, "slow", json!({"action": "sleep", "ms": 10_000})).await?;
    let waited = started.elapsed();
    assert_eq!(
        timed_out.outcome,
        InvokeOutcome::Timeout {
            after: Duration::from_secs(1)
        }
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let error = timed_out.lambda_error().context("timeout is an error")?;
    assert_eq!(error.error_type, "Sandbox.Timedout");
    assert!(
        error
            .error_message
            .ends_with("Task timed out after 1.00 seconds")
    );
    if cfg!(target_os = "linux") {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "instance {pid} still runs"
        );
    }
    let stats = runtime.function_stats("slow").context("stats")?;
    assert_eq!((stats.timeouts, stats.errors, stats.instances), (1, 1, 0));
    logs.wait_for(|l| {
        l.request_id.as_deref() == Some(timed_out.request_id.as_str())
            && l.line.ends_with("Task timed out after 1.00 seconds")
    })
    .await?;
    // Lambda's REPORT line of a timed-out invocation ends with its status.
    logs.wait_for(|l| {
        l.line
            .starts_with(&format!("REPORT RequestId: {}\t", timed_out.request_id))
            && l.line.ends_with("\tStatus: timeout")
    })
    .await?;

    let next = call(&invoker, "slow", json!({"action": "pid"})).await?;
    assert!(next.init_duration.is_some(), "a new instance was started");
    assert_ne!(pid_of(&next)?, pid);
    assert_eq!(
        runtime.function_stats("slow").context("stats")?.cold_starts,
        2
    );
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_is_a_crash_and_the_instance_is_replaced() -> Result<()> {
    let (runtime, _logs) = runtime_with(vec![function("crashy")]);
    let invoker = ProcessInvoker::new(runtime.clone());
    call(&invoker, "crashy", json!({"action": "pid"})).await?;

    let crashed = call(&invoker, "crashy", json!({"action": "exit", "code": 7})).await?;
    assert_eq!(
        crashed.outcome,
        InvokeOutcome::Crashed(ExitInfo {
            code: Some(7),
            signal: None
        })
    );
    let error = crashed.lambda_error().context("crash is an error")?;
    assert_eq!(error.error_type, "Runtime.ExitError");
    assert!(
        error
            .error_message
            .ends_with("Runtime exited with error: exit status 7")
    );

    let next = call(&invoker, "crashy", json!({"action": "pid"})).await?;
    assert!(next.init_duration.is_some(), "replaced on demand");
    let stats = runtime.function_stats("crashy").context("stats")?;
    assert_eq!((stats.crashes, stats.errors, stats.cold_starts), (1, 1, 2));
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_panics_are_function_errors_on_a_kept_instance() -> Result<()> {
    let (runtime, _logs) = runtime_with(vec![function("faulty")]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let pid = pid_of(&call(&invoker, "faulty", json!({"action": "pid"})).await?)?;

    let failed = call(&invoker, "faulty", json!({"action": "error"})).await?;
    let InvokeOutcome::FunctionError(error) = &failed.outcome else {
        bail!("expected a function error, got {:?}", failed.outcome);
    };
    assert_eq!(error.error_message, "the test function failed on purpose");
    assert!(!error.error_type.is_empty());

    let panicked = call(&invoker, "faulty", json!({"action": "panic"})).await?;
    assert_eq!(
        panicked.outcome,
        InvokeOutcome::FunctionError(FunctionError::new(
            PANIC_ERROR_TYPE,
            "Lambda panicked: the test function panicked on purpose"
        ))
    );

    let after = call(&invoker, "faulty", json!({"action": "pid"})).await?;
    assert_eq!(pid_of(&after)?, pid, "errors keep the instance");
    let stats = runtime.function_stats("faulty").context("stats")?;
    assert_eq!((stats.errors, stats.crashes, stats.cold_starts), (2, 0, 1));
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_is_lambdas_plus_the_functions_own() -> Result<()> {
    let config = function("env-fn")
        .with_env("GREETING", "hello")
        .with_env("AWS_REGION", "ignored-reserved")
        .with_memory_mb(256);
    let (runtime, _logs) = runtime_with(vec![config]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let env = |name: &'static str| {
        let invoker = &invoker;
        async move {
            let response = call(invoker, "env-fn", json!({"action": "env", "name": name})).await?;
            Ok::<_, anyhow::Error>(json_of(&response)?["value"].clone())
        }
    };
    assert_eq!(env("GREETING").await?, "hello");
    assert_eq!(env("AWS_LAMBDA_FUNCTION_NAME").await?, "env-fn");
    assert_eq!(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").await?, "256");
    assert_eq!(env("AWS_LAMBDA_FUNCTION_VERSION").await?, "$LATEST");
    assert_eq!(
        env("AWS_LAMBDA_LOG_GROUP_NAME").await?,
        "/aws/lambda/env-fn"
    );
    assert!(
        env("AWS_LAMBDA_LOG_STREAM_NAME")
            .await?
            .as_str()
            .unwrap_or_default()
            .contains("[$LATEST]")
    );
    assert_eq!(env("AWS_REGION").await?, "us-east-1");
    assert_eq!(env("AWS_DEFAULT_REGION").await?, "us-east-1");
    assert_eq!(env("_HANDLER").await?, "bootstrap");
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        assert!(env(name).await?.is_string(), "{name} is set");
    }
    let api = env("AWS_LAMBDA_RUNTIME_API").await?;
    assert!(
        api.as_str().unwrap_or_default().starts_with("127.0.0.1:"),
        "{api}"
    );
    // The emulator's own environment does not leak into the function.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    assert_eq!(env("CARGO_MANIFEST_DIR").await?, Value::Null);
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_is_absolute_and_within_the_timeout() -> Result<()> {
    let config = function("deadline").with_timeout(Duration::from_secs(3));
    let (runtime, _logs) = runtime_with(vec![config]);
    let invoker = ProcessInvoker::new(runtime.clone());
    for _ in 0..2 {
        let response = call(&invoker, "deadline", json!({"action": "deadline"})).await?;
        let remaining = json_of(&response)?["remaining_ms"]
            .as_i64()
            .context("remaining_ms")?;
        assert!(
            (2_500..=3_000).contains(&remaining),
            "remaining {remaining} ms"
        );
    }
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_past_the_init_limit_runs_again_within_the_function_timeout() -> Result<()> {
    // AWS: "The Init phase is limited to 10 seconds. If all three tasks do not complete
    // within 10 seconds, Lambda retries the Init phase at the time of the first function
    // invocation with the configured function timeout."
    // (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html)
    // The 10 s limit is shortened to 300 ms here so the test runs in about a second.
    let capture = Capture::default();
    let runtime = Runtime::new(RuntimeOptions {
        log_sink: capture.sink(),
        init_timeout: Duration::from_millis(300),
        ..RuntimeOptions::default()
    });
    // An init of 600 ms: past the init phase, well within a 3 s function timeout.
    runtime.add_function(function("slow-init").with_env("TEST_INIT", "sleep:600"))?;
    // An init of 1.5 s against a 1 s function timeout: the retried init times out too.
    runtime.add_function(
        function("too-slow")
            .with_env("TEST_INIT", "sleep:1500")
            .with_timeout(Duration::from_secs(1)),
    )?;
    let invoker = ProcessInvoker::new(runtime.clone());

    let slow = call(&invoker, "slow-init", json!({"action": "deadline"})).await?;
    let body = json_of(&slow)?;
    // The deadline counts from the retried init's start, not from the pickup.
    let remaining = body["remaining_ms"].as_u64().context("remaining_ms")?;
    assert!(
        remaining <= 2_500,
        "remaining {remaining} ms of 3 s after a 600 ms init"
    );
    assert!(slow.init_duration.is_some());
    capture
        .wait_for(|l| {
            l.line
                .starts_with("INIT_REPORT Init Duration: 300.00 ms Phase: init Status: timeout")
        })
        .await?;
    let stats = runtime.function_stats("slow-init").context("stats")?;
    // Two environments started: the one killed at the limit and the one that served.
    assert_eq!(
        (stats.cold_starts, stats.timeouts, stats.instances),
        (2, 0, 1)
    );

    let too_slow = call(&invoker, "too-slow", json!({})).await?;
    assert_eq!(
        too_slow.outcome,
        InvokeOutcome::Timeout {
            after: Duration::from_secs(1)
        }
    );
    let stats = runtime.function_stats("too-slow").context("stats")?;
    assert_eq!(
        (stats.cold_starts, stats.timeouts, stats.instances),
        (2, 1, 0)
    );
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_log_is_the_invocations_own_and_its_last_4_kb() -> Result<()> {
    // `X-Amz-Log-Type: Tail`: "The last 4 KB of the execution log"
    // (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html).
    let (runtime, _logs) = runtime_with(vec![function("talker")]);
    let invoker = ProcessInvoker::new(runtime.clone());
    // An invocation nobody captures, on the same instance, must not show up below.
    call(
        &invoker,
        "talker",
        json!({"action": "log", "message": "before"}),
    )
    .await?;

    let req = InvokeRequest::new(
        "talker",
        json!({"action": "log", "message": "héllo from the handler"}).to_string(),
    );
    let capture = runtime.capture_log(&req.request_id);
    let id = req.request_id.clone();
    invoker.invoke(req).await?;
    let log = capture.finish().await;
    assert!(log.starts_with(&format!("START RequestId: {id}")), "{log}");
    assert!(log.contains("héllo from the handler\n"), "{log}");
    assert!(log.contains(&format!("END RequestId: {id}")), "{log}");
    assert!(log.contains(&format!("REPORT RequestId: {id}")), "{log}");
    assert!(!log.contains("before"), "{log}");

    // A long log keeps its end, cut at a character boundary.
    let long = "é".repeat(3_000);
    let req = InvokeRequest::new(
        "talker",
        json!({"action": "log", "message": long}).to_string(),
    );
    let capture = runtime.capture_log(&req.request_id);
    invoker.invoke(req).await?;
    let log = capture.finish().await;
    assert!(
        log.len() <= nightshift_local::runtime::LOG_TAIL_BYTES,
        "{}",
        log.len()
    );
    assert!(log.len() > 4_000, "{}", log.len());
    assert!(log.contains("REPORT RequestId: "), "the end is kept");
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_errors_fail_the_invocation() -> Result<()> {
    let (runtime, _logs) = runtime_with(vec![
        function("exits-early").with_env("TEST_INIT", "exit"),
        function("reports-init-error").with_env("TEST_INIT", "error"),
    ]);
    let invoker = ProcessInvoker::new(runtime.clone());

    let exited = call(&invoker, "exits-early", json!({})).await?;
    let InvokeOutcome::InitError(error) = &exited.outcome else {
        bail!("expected an init error, got {:?}", exited.outcome);
    };
    assert_eq!(error.error_type, "Runtime.ExitError");
    assert!(
        error
            .error_message
            .ends_with("Runtime exited with error: exit status 3")
    );

    let reported = call(&invoker, "reports-init-error", json!({})).await?;
    assert_eq!(
        reported.outcome,
        InvokeOutcome::InitError(FunctionError::new(
            "TestInitError",
            "init failed on purpose"
        ))
    );
    for name in ["exits-early", "reports-init-error"] {
        let stats = runtime.function_stats(name).context("stats")?;
        assert_eq!(
            (stats.init_errors, stats.errors, stats.instances),
            (1, 1, 0),
            "{name}"
        );
    }
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lines_carry_function_and_request_id() -> Result<()> {
    let (runtime, logs) = runtime_with(vec![function("chatty")]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let marker = format!("marker-{}", fastrand::u64(..));
    let response = call(
        &invoker,
        "chatty",
        json!({"action": "log", "message": marker}),
    )
    .await?;
    assert!(response.is_success());
    let id = Some(response.request_id.clone());
    let out = logs.wait_for(|l| l.line == marker).await?;
    assert_eq!(
        (out.stream, &out.function, &out.request_id),
        (LogStream::Stdout, &"chatty".to_owned(), &id)
    );
    let err = logs
        .wait_for(|l| l.line == format!("{marker} (stderr)"))
        .await?;
    assert_eq!((err.stream, &err.request_id), (LogStream::Stderr, &id));
    runtime.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_terminates_then_kills_what_ignores_sigterm() -> Result<()> {
    let (runtime, _logs) = runtime_with(vec![function("polite"), function("stubborn")]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let polite = pid_of(&call(&invoker, "polite", json!({"action": "pid"})).await?)?;
    let stubborn = pid_of(&call(&invoker, "stubborn", json!({"action": "pid"})).await?)?;
    assert!(
        call(&invoker, "stubborn", json!({"action": "ignore_sigterm"}))
            .await?
            .is_success()
    );

    let report = runtime.shutdown(Duration::from_millis(300)).await;
    assert_eq!(
        report,
        ShutdownReport {
            terminated: 1,
            killed: 1
        }
    );
    if cfg!(target_os = "linux") {
        for pid in [polite, stubborn] {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "{pid} still runs"
            );
        }
    }
    for stats in runtime.stats() {
        assert_eq!(stats.instances, 0, "{stats:?}");
    }
    let refused = invoker.invoke(InvokeRequest::new("polite", "{}")).await;
    assert!(
        matches!(refused, Err(InvokeError::ShuttingDown)),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_throttled_oversized_and_missing_binary_are_invoke_errors() -> Result<()> {
    let (runtime, _logs) = runtime_with(vec![
        function("throttled").with_concurrency(0),
        FunctionConfig::new("missing", "/nonexistent/nightshift/bootstrap"),
        function("present"),
    ]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let result = invoker.invoke(InvokeRequest::new("nope", "{}")).await;
    assert!(matches!(result, Err(InvokeError::UnknownFunction(name)) if name == "nope"));
    let result = invoker.invoke(InvokeRequest::new("throttled", "{}")).await;
    assert!(
        matches!(result, Err(InvokeError::Throttled(_))),
        "{result:?}"
    );
    let result = invoker.invoke(InvokeRequest::new("missing", "{}")).await;
    assert!(
        matches!(result, Err(InvokeError::Spawn { .. })),
        "{result:?}"
    );
    let big = vec![b' '; 6 * 1024 * 1024 + 1];
    let result = invoker.invoke(InvokeRequest::new("present", big)).await;
    assert!(
        matches!(result, Err(InvokeError::PayloadTooLarge { .. })),
        "{result:?}"
    );
    assert_eq!(
        runtime
            .function_stats("missing")
            .context("stats")?
            .instances,
        0
    );
    let duplicate = runtime.add_function(function("present"));
    assert!(duplicate.is_err());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn in_process_invoker_reports_results_errors_panics_and_timeouts() -> Result<()> {
    let invoker = InProcessInvoker::new()
        .with_function("upper", |payload: Bytes, ctx| async move {
            assert_eq!(ctx.function_name, "upper");
            Ok(Bytes::from(
                String::from_utf8_lossy(&payload).to_uppercase(),
            ))
        })
        .with_function("fails", |_, _| async {
            Err(FunctionError::new("Bad", "no good"))
        })
        .with_function("panics-in-future", |_, _| async { panic!("boom") })
        .with_function("panics-before-future", |_, _| -> std::future::Ready<_> {
            panic!("{}", String::from("early boom"))
        })
        .with_function_timeout(
            "sleeps",
            Some(Duration::from_secs(1)),
            |_, ctx| async move {
                assert_eq!(ctx.remaining(), Some(Duration::from_secs(1)));
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Bytes::new())
            },
        );
    let invoker: &dyn Invoker = &invoker;

    let ok = invoker
        .invoke(InvokeRequest::new("upper", "abc").with_request_id("r-1"))
        .await?;
    assert_eq!(
        (ok.request_id.as_str(), ok.payload()),
        ("r-1", Some(&Bytes::from("ABC")))
    );
    let failed = invoker.invoke(InvokeRequest::new("fails", "")).await?;
    assert_eq!(
        failed.outcome,
        InvokeOutcome::FunctionError(FunctionError::new("Bad", "no good"))
    );
    let panicked = invoker
        .invoke(InvokeRequest::new("panics-in-future", ""))
        .await?;
    assert_eq!(
        panicked.outcome,
        InvokeOutcome::FunctionError(FunctionError::new(
            PANIC_ERROR_TYPE,
            "Lambda panicked: boom"
        ))
    );
    let early = invoker
        .invoke(InvokeRequest::new("panics-before-future", ""))
        .await?;
    assert_eq!(
        early.outcome,
        InvokeOutcome::FunctionError(FunctionError::new(
            PANIC_ERROR_TYPE,
            "Lambda panicked: early boom"
        ))
    );
    let slow = invoker.invoke(InvokeRequest::new("sleeps", "")).await?;
    assert_eq!(
        slow.outcome,
        InvokeOutcome::Timeout {
            after: Duration::from_secs(1)
        }
    );
    assert_eq!(slow.duration, Duration::from_secs(1));
    let unknown = invoker.invoke(InvokeRequest::new("nope", "")).await;
    assert!(matches!(unknown, Err(InvokeError::UnknownFunction(_))));
    Ok(())
}

/// A tiny imitation of the Lambda Invoke API, in AWS's and `cargo lambda watch`'s styles.
async fn invoke_api(
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let json = [("content-type", "application/json")];
    match name.as_str() {
        "echo" if headers.get("x-amz-invocation-type").is_some_and(|v| v == "RequestResponse") => {
            (StatusCode::OK, [("x-amzn-requestid", "remote-request-id")], body).into_response()
        }
        "aws-error" => (
            StatusCode::OK,
            [("x-amz-function-error", "Unhandled"), ("content-type", "application/json")],
            r#"{"errorType":"Boom","errorMessage":"it broke"}"#,
        )
            .into_response(),
        "aws-timeout" => (
            StatusCode::OK,
            [("x-amz-function-error", "Unhandled"), ("content-type", "application/json")],
            r#"{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: x Error: Task timed out after 3.00 seconds"}"#,
        )
            .into_response(),
        "watch-error" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json,
            r#"{"errorType":"WatchBoom","errorMessage":"broke under watch"}"#,
        )
            .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            json,
            r#"{"Type":"User","Message":"Function not found"}"#,
        )
            .into_response(),
    }
}

#[tokio::test]
async fn remote_invoker_speaks_the_invoke_api() -> Result<()> {
    let app = Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke_api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let invoker = RemoteInvoker::new(endpoint);
    let invoker: &dyn Invoker = &invoker;

    let ok = invoker
        .invoke(InvokeRequest::new("echo", r#"{"a":1}"#))
        .await?;
    assert_eq!(ok.request_id, "remote-request-id");
    assert_eq!(ok.payload(), Some(&Bytes::from(r#"{"a":1}"#)));

    let failed = invoker
        .invoke(InvokeRequest::new("aws-error", "{}"))
        .await?;
    assert_eq!(
        failed.outcome,
        InvokeOutcome::FunctionError(FunctionError::new("Boom", "it broke"))
    );
    let timed_out = invoker
        .invoke(InvokeRequest::new("aws-timeout", "{}"))
        .await?;
    assert_eq!(
        timed_out.outcome,
        InvokeOutcome::Timeout {
            after: Duration::from_secs(3)
        }
    );
    let watch = invoker
        .invoke(InvokeRequest::new("watch-error", "{}"))
        .await?;
    assert_eq!(
        watch.outcome,
        InvokeOutcome::FunctionError(FunctionError::new("WatchBoom", "broke under watch"))
    );
    let missing = invoker.invoke(InvokeRequest::new("missing", "{}")).await;
    assert!(
        matches!(missing, Err(InvokeError::Remote { status: 404, .. })),
        "{missing:?}"
    );
    server.abort();

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dead_endpoint = format!("http://{}", closed.local_addr()?);
    drop(closed);
    let unreachable = RemoteInvoker::new(dead_endpoint)
        .invoke(InvokeRequest::new("echo", "{}"))
        .await;
    assert!(
        matches!(unreachable, Err(InvokeError::Unreachable { .. })),
        "{unreachable:?}"
    );
    Ok(())
}

/// The Runtime API takes a response of up to 6,291,556 bytes and fails a larger one with
/// `Function.ResponseSizeTooLarge`, as Lambda does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_up_to_the_runtime_api_limit_pass_larger_ones_fail() -> Result<()> {
    use nightshift_local::runtime::MAX_RESPONSE_BYTES;
    assert_eq!(MAX_RESPONSE_BYTES, 6_291_556);
    let (runtime, _logs) = runtime_with(vec![function("big")]);
    let invoker = ProcessInvoker::new(runtime.clone());
    let fits = call(
        &invoker,
        "big",
        json!({"action": "bytes", "len": MAX_RESPONSE_BYTES}),
    )
    .await?;
    match &fits.outcome {
        InvokeOutcome::Success(body) => assert_eq!(body.len(), MAX_RESPONSE_BYTES),
        other => bail!("a response at the limit failed: {other:?}"),
    }
    let over = call(
        &invoker,
        "big",
        json!({"action": "bytes", "len": MAX_RESPONSE_BYTES + 1}),
    )
    .await?;
    let error = over
        .lambda_error()
        .context("an oversized response is an error")?;
    assert_eq!(error.error_type, "Function.ResponseSizeTooLarge");
    assert!(
        error.error_message.contains("(6291556 bytes)"),
        "{}",
        error.error_message
    );
    Ok(())
}
