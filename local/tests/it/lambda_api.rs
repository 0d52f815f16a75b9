//! Lambda's Invoke API on the emulator's endpoint (`POST /2015-03-31/functions/{name}/
//! invocations`) and `nightshift invoke`, against the fixture template of `async_harness`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use nightshift_local::harness::{Harness, HarnessOptions};
use nightshift_local::invoker::{
    FunctionError, InProcessInvoker, InvokeRequest, Invoker, RemoteInvoker,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::invoke_async::assert_record;

fn local_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn fixture() -> Result<Harness> {
    let mut options = HarnessOptions::new(local_dir());
    options.up.template = local_dir().join("tests/fixtures/templates/async-invoke.yaml");
    options.up.env_file = None;
    let invoker = InProcessInvoker::new()
        .with_function("failing", |_payload: Bytes, _ctx| async {
            Err(FunctionError::new("ReportError", "the store is down"))
        })
        .with_function("echo", |payload: Bytes, _ctx| async move { Ok(payload) });
    Ok(Harness::start(options, invoker).await?)
}

/// An HTTP answer: status, lower-cased headers, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 POST to the emulator, written by hand so the test needs no client crate.
async fn post(h: &Harness, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer> {
    request(h, "POST", path, headers, body).await
}

/// One HTTP/1.1 request to the emulator.
pub(crate) async fn request(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer> {
    let addr = h.emulator().addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("an HTTP answer")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("a status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

const ECHO: &str = "/2015-03-31/functions/echo/invocations";

#[tokio::test]
async fn invoke_api_request_response_answers_with_the_function_result() -> Result<()> {
    let h = fixture().await?;
    let a = post(&h, ECHO, &[], br#"{"a":1}"#).await?;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({"a": 1}));
    assert_eq!(a.headers["x-amz-executed-version"], "$LATEST");
    assert!(!a.headers.contains_key("x-amz-function-error"));
    let id = &a.headers["x-amzn-requestid"];
    assert_eq!(h.invocations_of("echo")[0].request_id, *id);

    // A function error: still 200, with the error document and X-Amz-Function-Error.
    let a = post(
        &h,
        "/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:failing:$LATEST/invocations",
        &[("x-amz-invocation-type", "RequestResponse"), ("x-amz-log-type", "Tail")],
        b"{}",
    )
    .await?;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["x-amz-function-error"], "Unhandled");
    assert_eq!(
        a.json(),
        json!({"errorType": "ReportError", "errorMessage": "the store is down"})
    );
    let log = base64::engine::general_purpose::STANDARD.decode(&a.headers["x-amz-log-result"])?;
    let log = String::from_utf8(log)?;
    assert!(log.starts_with("START RequestId: "), "{log}");
    assert!(log.contains("REPORT RequestId: "), "{log}");

    // The library's own Invoke API client understands the answers.
    let remote = RemoteInvoker::new(h.endpoint());
    let ok = remote
        .invoke(InvokeRequest::new("FailingFunction", "{}"))
        .await?;
    assert_eq!(
        ok.lambda_error().context("an error")?.error_type,
        "ReportError"
    );
    h.shutdown().await;
    Ok(())
}

/// A traced caller's `X-Amzn-Trace-Id` is continued, as Lambda with active tracing does ("will
/// respect any tracing header it receives from an upstream service",
/// <https://docs.aws.amazon.com/lambda/latest/api/API_TracingConfig.html>): the function's
/// header has the caller's root and sampling decision under a new parent. Without the header,
/// or with one that names no root, the invocation starts a new trace.
#[tokio::test]
async fn invoke_api_continues_the_callers_trace() -> Result<()> {
    let h = fixture().await?;
    let caller = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let header_of = |a: &Answer| {
        h.history()
            .get(&a.headers["x-amzn-requestid"])
            .expect("the invocation is in the history")
            .trace_header
    };
    for extra in [None, Some(("x-amz-log-type", "Tail"))] {
        let mut headers = vec![("x-amzn-trace-id", caller)];
        headers.extend(extra);
        let a = post(&h, ECHO, &headers, b"{}").await?;
        assert_eq!(a.status, 200);
        let seen = header_of(&a);
        assert!(
            seen.starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent="),
            "{seen}"
        );
        assert!(seen.ends_with(";Sampled=1"), "{seen}");
        assert_ne!(seen, caller, "the invocation is a segment of its own");
    }
    for headers in [vec![], vec![("x-amzn-trace-id", "Parent=53995c3f42cd8ad8")]] {
        let a = post(&h, ECHO, &headers, b"{}").await?;
        let seen = header_of(&a);
        assert!(!seen.contains("5759e988"), "a new trace: {seen}");
        assert!(seen.starts_with("Root=1-"), "{seen}");
    }
    // The library's Invoke API client sends its request's trace header: one trace end to end.
    let request = InvokeRequest::new("echo", "{}").with_trace_header(caller);
    let answer = RemoteInvoker::new(h.endpoint()).invoke(request).await?;
    let recorded = h.history().get(&answer.request_id).context("recorded")?;
    assert_eq!(
        recorded.summary.trace_id.as_deref(),
        Some("1-5759e988-bd862e3fe1be46a994272793")
    );
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invoke_api_event_continues_the_callers_trace_in_every_attempt() -> Result<()> {
    // "Lambda will respect any tracing header it receives from an upstream service"
    // (https://docs.aws.amazon.com/lambda/latest/api/API_TracingConfig.html), whatever the
    // invocation type: the queued event's attempts are segments of the caller's trace.
    let h = fixture().await?;
    let caller = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let a = post(
        &h,
        "/2015-03-31/functions/failing/invocations",
        &[
            ("x-amz-invocation-type", "Event"),
            ("x-amzn-trace-id", caller),
        ],
        br#"{"n":1}"#,
    )
    .await?;
    assert_eq!(a.status, 202);
    h.run_until_idle().await?;
    h.advance(Duration::from_secs(300)).await?;
    let chain = h.history().chain("1-5759e988-bd862e3fe1be46a994272793");
    let attempts: Vec<_> = chain
        .invocations
        .iter()
        .filter(|i| i.function == "failing")
        .collect();
    assert_eq!(attempts.len(), 3, "the first attempt and two retries");
    assert!(
        attempts
            .iter()
            .all(|i| i.request_id == a.headers["x-amzn-requestid"])
    );
    // Without a header, the event starts a trace of its own.
    let b = post(
        &h,
        "/2015-03-31/functions/failing/invocations",
        &[("x-amz-invocation-type", "Event")],
        br#"{"n":2}"#,
    )
    .await?;
    h.run_until_idle().await?;
    let own = h
        .history()
        .get(&b.headers["x-amzn-requestid"])
        .context("recorded")?;
    assert!(
        !own.trace_header.contains("5759e988"),
        "{}",
        own.trace_header
    );
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invoke_api_event_is_accepted_at_once_and_retried_on_the_clock() -> Result<()> {
    let h = fixture().await?;
    let a = post(
        &h,
        "/2015-03-31/functions/failing/invocations",
        &[("x-amz-invocation-type", "Event")],
        br#"{"n":1}"#,
    )
    .await?;
    assert_eq!(a.status, 202);
    assert!(a.body.is_empty());
    let request_id = a.headers["x-amzn-requestid"].clone();
    h.run_until_idle().await?;
    h.advance(Duration::from_secs(300)).await?;
    let attempts = h.invocations_of("failing");
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|i| i.request_id == request_id));
    let records = h.messages("failures")?;
    assert_eq!(records.len(), 1);
    let record: Value = serde_json::from_str(&records[0].body)?;
    assert_record(&record, "RetriesExhausted", 3);
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invoke_api_dry_run_and_errors_have_awss_shapes() -> Result<()> {
    let h = fixture().await?;
    let a = post(&h, ECHO, &[("x-amz-invocation-type", "DryRun")], b"{}").await?;
    assert_eq!(a.status, 204);
    assert!(h.invocations_of("echo").is_empty());

    let a = post(&h, "/2015-03-31/functions/nope/invocations", &[], b"{}").await?;
    assert_eq!(a.status, 404);
    assert_eq!(a.headers["x-amzn-errortype"], "ResourceNotFoundException");
    assert_eq!(a.json()["message"], "Function not found: nope");

    let big = vec![b' '; 1024 * 1024 + 1];
    let a = post(&h, ECHO, &[("x-amz-invocation-type", "Event")], &big).await?;
    assert_eq!(a.status, 413);
    assert_eq!(a.headers["x-amzn-errortype"], "RequestTooLargeException");

    let a = post(&h, ECHO, &[], b"{not json").await?;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.headers["x-amzn-errortype"],
        "InvalidRequestContentException"
    );

    let a = post(&h, ECHO, &[("x-amz-invocation-type", "Later")], b"{}").await?;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.headers["x-amzn-errortype"],
        "InvalidParameterValueException"
    );
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn nightshift_invoke_prints_the_answer_or_the_request_id() -> Result<()> {
    let h = fixture().await?;
    let port = h.emulator().addr().port().to_string();
    let run = |args: Vec<&str>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_nightshift"));
        cmd.arg("--port")
            .arg(&port)
            .args(args)
            .env_remove("NIGHTSHIFT_PORT");
        cmd
    };
    let out = run(vec!["invoke", "echo", r#"{"x":2}"#]).output().await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("success "), "{stdout}");
    assert!(stdout.contains("\"x\": 2"), "{stdout}");

    let out = run(vec!["invoke", "failing"]).output().await?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("error "));

    let out = run(vec!["invoke", "failing", "--async"]).output().await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("accepted "));
    h.run_until_idle().await?;
    // The sync call above and the async event's first attempt.
    assert_eq!(h.invocations_of("failing").len(), 2);
    h.shutdown().await;
    Ok(())
}

/// The AWS CLI against the endpoint, both invocation types; skipped (with a note) where no
/// `aws` is installed, except under CI.
#[tokio::test]
async fn aws_cli_lambda_invoke_works_against_the_endpoint() -> Result<()> {
    let Ok(version) = std::process::Command::new("aws").arg("--version").output() else {
        // CI installs the CLI (.ci/run): there a missing `aws` is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "the AWS CLI is missing; .ci/run installs it"
        );
        eprintln!("aws CLI not installed: skipped");
        return Ok(());
    };
    // Version 2 reads --payload as base64 unless told otherwise; version 1 takes it raw.
    let v1 = [&version.stdout[..], &version.stderr[..]]
        .iter()
        .any(|o| String::from_utf8_lossy(o).starts_with("aws-cli/1."));
    let binary_format: &[&str] = if v1 {
        &[]
    } else {
        &["--cli-binary-format", "raw-in-base64-out"]
    };
    let h = fixture().await?;
    let dir = tempfile::tempdir()?;
    let out_file = dir.path().join("out.json");
    let aws = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("aws");
        cmd.args(["lambda", "invoke", "--endpoint-url", &h.endpoint()])
            .args(["--region", "us-east-1"])
            .args(binary_format)
            .args(args)
            .arg(&out_file)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", dir.path().join("none"))
            .env("AWS_PAGER", "");
        cmd
    };
    let out = aws(&[
        "--function-name",
        "echo",
        "--payload",
        r#"{"date":"2026-01-01"}"#,
    ])
    .output()
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(answer["StatusCode"], 200);
    assert_eq!(answer["ExecutedVersion"], "$LATEST");
    let written: Value = serde_json::from_slice(&std::fs::read(&out_file)?)?;
    assert_eq!(written, json!({"date": "2026-01-01"}));

    let out = aws(&[
        "--function-name",
        "FailingFunction",
        "--invocation-type",
        "Event",
        "--payload",
        "{}",
    ])
    .output()
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(answer["StatusCode"], 202);
    h.run_until_idle().await?;
    assert_eq!(h.invocations_of("failing").len(), 1);
    h.shutdown().await;
    Ok(())
}
