//! The dashboard's pages, the control routes they call and the live stream, on the real
//! template with in-process functions and a manual clock: every check reads what the routes
//! answer (the browser test in `browser.rs` drives the same pages through Chromium).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use nightshift_local::harness::{Harness, HarnessOptions};
use nightshift_local::invoker::{FunctionError, InProcessInvoker};
use nightshift_local::sqs::OutgoingMessage;
use nightshift_local::sqs::model::MessageAttributeValue;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::lambda_api::{Answer, request};

const JOBS_FUNCTION: &str = "nightshift-QueueProcessorFunction";
const EMAILS_FUNCTION: &str = "nightshift-EmailSenderFunction";
const REPORT_FUNCTION: &str = "nightshift-DailyReportFunction";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The real template; jobs whose body says `"fail"` fail (reported as batch item failures),
/// the daily report fails when asked to.
async fn start() -> Result<Harness> {
    let ok_batch =
        |_payload: Bytes, _ctx| async { Ok(Bytes::from_static(br#"{"batchItemFailures":[]}"#)) };
    let invoker = InProcessInvoker::new()
        .with_function(JOBS_FUNCTION, |payload: Bytes, _ctx| async move {
            let event: Value = serde_json::from_slice(&payload).unwrap_or_default();
            let failures: Vec<Value> = event["Records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["body"].as_str().unwrap_or("").contains("\"fail\""))
                .map(|r| json!({"itemIdentifier": r["messageId"]}))
                .collect();
            Ok(Bytes::from(
                json!({ "batchItemFailures": failures }).to_string(),
            ))
        })
        .with_function(EMAILS_FUNCTION, ok_batch)
        .with_function(REPORT_FUNCTION, |payload: Bytes, _ctx| async move {
            if payload.windows(4).any(|w| w == b"boom") {
                return Err(FunctionError::new("ReportError", "the store is down"));
            }
            Ok(Bytes::from_static(br#"{"rows":3}"#))
        });
    let options = HarnessOptions::new(workspace_root());
    Ok(Harness::start(options, invoker).await?)
}

async fn get(h: &Harness, path: &str) -> Result<Answer> {
    request(h, "GET", path, &[], b"").await
}

async fn post(h: &Harness, path: &str, body: Value) -> Result<Answer> {
    request(
        h,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await
}

#[tokio::test]
async fn every_page_is_the_embedded_shell_with_the_run_token() -> Result<()> {
    let h = start().await?;
    for path in [
        "/ui",
        "/ui/queues",
        "/ui/queues/nightshift-jobs-dlq",
        "/ui/functions/nightshift-QueueProcessorFunction",
        "/ui/invocations/abc",
        "/ui/traces/1-5759e988-bd862e3fe1be46a994272793",
        "/ui/schedules",
    ] {
        let page = get(&h, path).await?;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.headers["content-type"].starts_with("text/html"),
            "{path}"
        );
        assert!(page.body.contains("/ui/assets/app.js"), "{path}");
        assert!(
            page.body.contains(&format!(
                "name=\"nightshift-token\" content=\"{}\"",
                h.emulator().token()
            )),
            "{path}: the page carries this run's token"
        );
    }
    let script = get(&h, "/ui/assets/app.js").await?;
    assert_eq!(script.status, 200);
    assert!(script.headers["content-type"].starts_with("text/javascript"));
    assert!(script.body.contains("EventSource"));
    // A trace id links to the trace's chain, drawn from the route `nightshift trace` reads.
    assert!(script.body.contains("\"/ui/traces/\""));
    assert!(script.body.contains("api(\"/trace/\""));
    let style = get(&h, "/ui/assets/app.css").await?;
    assert!(style.headers["content-type"].starts_with("text/css"));
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn another_site_cannot_act_and_the_dashboard_can() -> Result<()> {
    let h = start().await?;
    h.send("JobsQueue", r#"{"kind":"x","fail":1}"#)?;
    let purge = br#"{"queue":"ReportFailuresQueue"}"#;
    let json = ("content-type", "application/json");
    // A page of another site: refused, and nothing happened.
    let evil = request(
        &h,
        "POST",
        "/_nightshift/purge",
        &[json, ("origin", "http://evil.test")],
        purge,
    )
    .await?;
    assert_eq!(evil.status, 403, "{}", evil.body);
    assert!(evil.json()["error"].as_str().unwrap().contains("evil.test"));
    // A DNS name rebound to 127.0.0.1 is not a loopback host: the page gets nothing.
    let mut stream = tokio::net::TcpStream::connect(h.emulator().addr()).await?;
    stream
        .write_all(b"GET /_nightshift/status HTTP/1.1\r\nhost: evil.test:9324\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer).await?;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("not a loopback address"), "{answer}");
    // The dashboard's own origin without the token: refused.
    let origin = format!("http://{}", h.emulator().addr());
    let tokenless = request(
        &h,
        "POST",
        "/_nightshift/purge",
        &[json, ("origin", &origin)],
        purge,
    )
    .await?;
    assert_eq!(tokenless.status, 403);
    // With it: done.
    let token = h.emulator().token().to_owned();
    let ours = request(
        &h,
        "POST",
        "/_nightshift/purge",
        &[json, ("origin", &origin), ("x-nightshift-token", &token)],
        purge,
    )
    .await?;
    assert_eq!(ours.status, 200, "{}", ours.body);
    assert_eq!(ours.json()["queue"], "nightshift-report-failures");
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invocations_are_found_by_message_id_and_job_text_with_their_event_and_answer() -> Result<()>
{
    let h = start().await?;
    let ok_id = h.send(
        "JobsQueue",
        r#"{"kind":"order.placed","job_id":"job-ok-1"}"#,
    )?;
    let bad_id = h.send(
        "JobsQueue",
        r#"{"kind":"order.placed","job_id":"job-bad-2","fail":1}"#,
    )?;
    h.run_until_idle().await?;
    let list = get(
        &h,
        &format!("/_nightshift/invocations?function={JOBS_FUNCTION}"),
    )
    .await?;
    assert_eq!(list.status, 200);
    let all = list.json();
    let all = all.as_array().context("a list")?;
    assert!(!all.is_empty());
    assert!(all.iter().all(|i| i["trigger"] == "sqs:nightshift-jobs"));
    // By message id, and by a job id that only the event's body holds.
    for q in [bad_id.as_str(), "job-bad-2"] {
        let found = get(&h, &format!("/_nightshift/invocations?q={q}"))
            .await?
            .json();
        let found = found.as_array().context("a list")?;
        assert!(!found.is_empty(), "{q}");
        assert!(
            found.iter().all(|i| i["message_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == &json!(bad_id))),
            "{q}: {found:?}"
        );
    }
    let request_id = all[0]["request_id"].as_str().unwrap().to_owned();
    let one = get(&h, &format!("/_nightshift/invocations/{request_id}")).await?;
    assert_eq!(one.status, 200);
    let one = one.json();
    assert_eq!(one["status"], "success");
    assert!(one["event"].as_str().unwrap().contains("aws:sqs"));
    assert!(
        one["response"]
            .as_str()
            .unwrap()
            .contains("batchItemFailures")
    );
    assert!(
        one["event"].as_str().unwrap().contains(&ok_id)
            || one["event"].as_str().unwrap().contains(&bad_id)
    );
    // The trace page's data: the chain of the invocation's trace id, which holds it.
    let trace_id = one["trace_id"].as_str().context("a trace id")?;
    let chain = get(&h, &format!("/_nightshift/trace/{trace_id}"))
        .await?
        .json();
    assert!(
        chain["trace_ids"]
            .as_array()
            .context("a list")?
            .contains(&json!(trace_id)),
        "{chain}"
    );
    assert!(
        chain["invocations"]
            .as_array()
            .context("a list")?
            .iter()
            .any(|i| i["request_id"] == json!(request_id)),
        "{chain}"
    );
    let missing = get(&h, "/_nightshift/invocations/no-such-id").await?;
    assert_eq!(missing.status, 404);
    assert!(
        missing.json()["error"]
            .as_str()
            .unwrap()
            .contains("no-such-id")
    );
    // A schedule's run is filed under its trigger, and failed ones are filtered as such.
    let fire = post(
        &h,
        "/_nightshift/fire",
        json!({"schedule": "nightshift-daily-report"}),
    )
    .await?;
    assert_eq!(fire.status, 200, "{}", fire.body);
    let detail = get(&h, "/_nightshift/schedule?name=nightshift-daily-report").await?;
    let detail = detail.json();
    assert_eq!(detail["runs"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(
        detail["runs"][0]["trigger"],
        "schedule:nightshift-daily-report"
    );
    assert_eq!(
        detail["next_fires"].as_array().unwrap().len(),
        5,
        "{detail}"
    );
    let failed = get(&h, "/_nightshift/invocations?status=failed")
        .await?
        .json();
    assert_eq!(failed.as_array().unwrap().len(), 0, "{failed}");
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_dlq_shows_its_reasons_and_redrives_chosen_messages() -> Result<()> {
    let h = start().await?;
    let engine = h.emulator().engine().clone();
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut message = OutgoingMessage::new(format!(r#"{{"kind":"order.placed","n":{n}}}"#));
        message.message_attributes.insert(
            "nightshift-error".into(),
            MessageAttributeValue::string(format!("permanent: bad address {n}")),
        );
        ids.push(
            engine
                .send_message("nightshift-jobs-dlq", message)?
                .message_id,
        );
    }
    let listed = get(&h, "/_nightshift/queues/nightshift-jobs-dlq/messages")
        .await?
        .json();
    let listed = listed.as_array().context("a list")?;
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[1]["reason"], "permanent: bad address 1");
    assert_eq!(listed[1]["state"], "visible");
    let searched = get(
        &h,
        "/_nightshift/queues/nightshift-jobs-dlq/messages?q=address%202",
    )
    .await?
    .json();
    assert_eq!(searched.as_array().unwrap().len(), 1);
    assert_eq!(searched[0]["message_id"], json!(ids[2]));
    let status = get(&h, "/_nightshift/status").await?.json();
    let dlq = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "nightshift-jobs-dlq")
        .context("the dlq")?;
    assert_eq!(dlq["dead_letter_sources"], json!(["nightshift-jobs"]));
    let jobs = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "nightshift-jobs")
        .context("the jobs queue")?;
    assert_eq!(jobs["max_receive_count"], 15);

    // Two of the three go back to the jobs queue, and through the function.
    let before = h.invocations_of(JOBS_FUNCTION).len();
    let moved = post(
        &h,
        "/_nightshift/dlq/redrive",
        json!({"dlq": "nightshift-jobs-dlq", "message_ids": [ids[0], ids[2]]}),
    )
    .await?;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.json()["moved"], 2);
    h.run_until_idle().await?;
    let left = h.messages("JobsDLQ")?;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].message_id, ids[1]);
    assert!(h.invocations_of(JOBS_FUNCTION).len() > before);
    // The harness does the same through the same code path.
    assert_eq!(h.redrive("JobsDLQ", &[ids[1].clone()]).await?, 1);
    assert!(h.messages("JobsDLQ")?.is_empty());
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_schedule_is_disabled_and_enabled_and_purge_is_once_a_minute() -> Result<()> {
    let h = start().await?;
    let off = post(
        &h,
        "/_nightshift/schedules/state",
        json!({"schedule": "nightshift-daily-report", "enabled": false}),
    )
    .await?;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.json()["enabled"], false);
    assert_eq!(off.json()["next_fires"], json!([]));
    // Disabled, a day passes without a run.
    h.advance(Duration::from_secs(86_400)).await?;
    assert!(h.invocations_of(REPORT_FUNCTION).is_empty());
    h.set_schedule_enabled("nightshift-daily-report", true)?;
    h.advance(Duration::from_secs(86_400)).await?;
    assert_eq!(h.invocations_of(REPORT_FUNCTION).len(), 1);
    let unknown = post(
        &h,
        "/_nightshift/schedules/state",
        json!({"schedule": "nope", "enabled": false}),
    )
    .await?;
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"].as_str().unwrap().contains("nope"));

    h.send("ReportFailuresQueue", "{}")?;
    let first = post(
        &h,
        "/_nightshift/purge",
        json!({"queue": "ReportFailuresQueue"}),
    )
    .await?;
    assert_eq!(first.status, 200);
    assert!(h.messages("ReportFailuresQueue")?.is_empty());
    // https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_PurgeQueue.html:
    // one purge per queue every 60 seconds.
    let second = post(
        &h,
        "/_nightshift/purge",
        json!({"queue": "ReportFailuresQueue"}),
    )
    .await?;
    assert_eq!(second.status, 400, "{}", second.body);
    h.shutdown().await;
    Ok(())
}

/// Reads server-sent events until one named `name` whose data satisfies `want` (bounded).
async fn next_event(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
    name: &str,
    want: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let mut event = String::new();
    for _ in 0..10_000 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("an event within 30 s")??
            .context("the stream is open")?;
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ")
            && event == name
        {
            let value: Value = serde_json::from_str(data)?;
            if want(&value) {
                return Ok(value);
            }
        }
    }
    anyhow::bail!("no {name} event")
}

#[tokio::test]
async fn the_live_stream_tells_status_and_invocations_and_ends_with_the_emulator() -> Result<()> {
    let h = start().await?;
    let addr = h.emulator().addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET /_nightshift/events?logs=true HTTP/1.1\r\nhost: {addr}\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut lines = BufReader::new(stream).lines();
    let head = lines.next_line().await?.unwrap_or_default();
    assert!(head.contains("200"), "{head}");
    let status = next_event(&mut lines, "status", |_| true).await?;
    assert!(
        status["status"]["queues"]
            .as_array()
            .is_some_and(|q| !q.is_empty())
    );
    let id = h.send("JobsQueue", r#"{"kind":"order.placed"}"#)?;
    // The manual clock holds the mapping's batching window until the harness moves it on.
    h.run_until_idle().await?;
    let ended = next_event(&mut lines, "invocation", |v| {
        v["status"] == "success"
            && v["message_ids"]
                .as_array()
                .is_some_and(|m| m.contains(&json!(id)))
    })
    .await?;
    assert_eq!(ended["function"], JOBS_FUNCTION);
    assert_eq!(ended["trigger"], "sqs:nightshift-jobs");
    // The stream ends when the emulator stops: shutdown does not wait on an open tab.
    tokio::time::timeout(Duration::from_secs(20), h.shutdown())
        .await
        .context("shutdown with a live subscriber")?;
    let mut ended_stream = false;
    for _ in 0..10_000 {
        match tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await {
            Ok(Ok(Some(_))) => continue,
            _ => {
                ended_stream = true;
                break;
            }
        }
    }
    assert!(ended_stream);
    Ok(())
}

#[tokio::test]
async fn a_burst_over_the_cap_is_counted_as_skipped_not_lost() -> Result<()> {
    let h = start().await?;
    let addr = h.emulator().addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET /_nightshift/events HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut lines = BufReader::new(stream).lines();
    next_event(&mut lines, "status", |_| true).await?;
    // 300 invocations are 600 events (start and end), three times the 200 a second a
    // subscriber is sent: the rest must show up as `skipped` in the status events.
    let before = h.history().published();
    for _ in 0..300 {
        h.emulator().invoke(REPORT_FUNCTION, "{}").await?;
    }
    let published = h.history().published() - before;
    assert_eq!(published, 600);
    let (mut delivered, mut skipped, mut per_second, mut ticks) = (0u64, 0u64, 0u64, 0);
    let mut event = String::new();
    while delivered + skipped < published {
        anyhow::ensure!(
            ticks < 20,
            "{delivered} delivered and {skipped} skipped of {published} after {ticks} s"
        );
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("an event within 30 s")??
            .context("the stream is open")?;
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            match event.as_str() {
                "invocation" => {
                    delivered += 1;
                    per_second += 1;
                    assert!(per_second <= 200, "over the cap between two status events");
                }
                "status" => {
                    skipped += serde_json::from_str::<Value>(data)?["skipped"]
                        .as_u64()
                        .unwrap_or(0);
                    per_second = 0;
                    ticks += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(delivered + skipped, published);
    assert!(delivered >= 200, "{delivered}");
    h.shutdown().await;
    Ok(())
}
