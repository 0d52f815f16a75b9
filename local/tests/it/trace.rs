//! Record and replay: normalisation, the JSONL reader and writer, diffs, replays against
//! in-process functions, and recording through the emulator.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::Parser;
use nightshift_local::cli::{Cli, Command, render_replay};
use nightshift_local::clock::{self, ClockSpec};
use nightshift_local::emulator::{Emulator, EmulatorOptions};
use nightshift_local::invoker::{FunctionError, InProcessInvoker, InvokeRequest, Invoker};
use nightshift_local::sqs::MessageAttributeValue;
use nightshift_local::sqs::md5::md5_of_attributes;
use nightshift_local::trace::{
    Difference, MASKED_TIMESTAMP, NormalizeOptions, Normalizer, ReplayOptions, Sandbox, TimeMode,
    TraceEntry, TraceError, TraceHeader, TraceRecorder, TraceWriter, Verdict, diff,
    entries_from_invocations, read_trace, recording_wrap, replay,
};
use serde_json::{Value, json};

const QP: &str = "nightshift-QueueProcessorFunction";
const DR: &str = "nightshift-DailyReportFunction";

/// An SQS record as Lambda delivers it.
fn record(id: &str, receipt: &str, body: &str, sent_ms: u64) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": receipt,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent_ms.to_string(),
            "SenderId": "000000000000",
            "ApproximateFirstReceiveTimestamp": (sent_ms + 250).to_string()
        },
        "messageAttributes": {},
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:nightshift-jobs",
        "awsRegion": "us-east-1"
    })
}

fn sqs_event(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

fn failures(ids: &[&str]) -> Value {
    json!({ "batchItemFailures": ids.iter().map(|id| json!({"itemIdentifier": id})).collect::<Vec<_>>() })
}

/// A recording of one session whose ids are `prefix`-flavoured, as two runs would draw them.
fn session(prefix: &str) -> Vec<TraceEntry> {
    let a = format!("{prefix}-aaaa");
    let b = format!("{prefix}-bbbb");
    vec![
        TraceEntry::event(
            QP,
            sqs_event(vec![
                record(&a, &format!("{prefix}-rh1"), "ok", 1_795_253_470_000),
                record(&b, &format!("{prefix}-rh2"), "fail", 1_795_253_470_000),
            ]),
        )
        .with_response("success", failures(&[&b])),
        // The failed message comes back with a new receipt handle.
        TraceEntry::event(
            QP,
            sqs_event(vec![record(
                &b,
                &format!("{prefix}-rh3"),
                "fail",
                1_795_253_470_000,
            )]),
        )
        .with_response("success", failures(&[&b])),
    ]
}

fn normalise_all(entries: &[TraceEntry], options: NormalizeOptions) -> Vec<TraceEntry> {
    let mut n = Normalizer::new(options);
    entries.iter().map(|e| n.entry(e)).collect()
}

#[test]
fn ids_become_sequence_placeholders_that_do_not_depend_on_the_run() {
    let first = normalise_all(&session("run1"), NormalizeOptions::keep_times());
    let second = normalise_all(&session("run2"), NormalizeOptions::keep_times());
    assert_eq!(first, second);
    let records = &first[0].event["Records"];
    assert_eq!(records[0]["messageId"], "msg-1");
    assert_eq!(records[1]["messageId"], "msg-2");
    assert_eq!(records[0]["receiptHandle"], "rh-1");
    assert_eq!(records[1]["receiptHandle"], "rh-2");
    // Redelivered: the same message id, a new receipt handle.
    assert_eq!(first[1].event["Records"][0]["messageId"], "msg-2");
    assert_eq!(first[1].event["Records"][0]["receiptHandle"], "rh-3");
    // Bodies and other attributes are untouched.
    assert_eq!(records[1]["body"], "fail");
    assert_eq!(records[1]["md5OfBody"], "00000000000000000000000000000000");
    assert_eq!(records[1]["attributes"]["SenderId"], "000000000000");
}

#[test]
fn a_failure_names_the_same_placeholder_as_its_record() {
    let entries = normalise_all(&session("x"), NormalizeOptions::keep_times());
    for entry in &entries {
        let failed = entry.response.as_ref().unwrap()["batchItemFailures"][0]["itemIdentifier"]
            .as_str()
            .unwrap()
            .to_string();
        let ids: Vec<&str> = entry.event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["messageId"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&failed.as_str()), "{failed} not in {ids:?}");
        assert_eq!(failed, "msg-2");
    }
}

#[test]
fn normalising_twice_changes_nothing() {
    for options in [
        NormalizeOptions::keep_times(),
        NormalizeOptions::mask_times(),
    ] {
        let mut entries = session("abc");
        entries[0].at = Some("2026-11-21T09:30:01Z".parse().unwrap());
        let once = normalise_all(&entries, options);
        let twice = normalise_all(&once, options);
        assert_eq!(once, twice, "{options:?}");
    }
}

#[test]
fn times_stay_on_keep_and_are_masked_on_mask() {
    let mut entries = session("t");
    let at: DateTime<Utc> = "2026-11-21T09:30:01Z".parse().unwrap();
    entries[0].at = Some(at);
    let kept = normalise_all(&entries, NormalizeOptions::keep_times());
    let attributes = &kept[0].event["Records"][0]["attributes"];
    assert_eq!(attributes["SentTimestamp"], "1795253470000");
    assert_eq!(
        attributes["ApproximateFirstReceiveTimestamp"],
        "1795253470250"
    );
    assert_eq!(kept[0].at, Some(at));

    let masked = normalise_all(&entries, NormalizeOptions::mask_times());
    let attributes = &masked[0].event["Records"][0]["attributes"];
    assert_eq!(attributes["SentTimestamp"], MASKED_TIMESTAMP);
    assert_eq!(
        attributes["ApproximateFirstReceiveTimestamp"],
        MASKED_TIMESTAMP
    );
    assert_eq!(attributes["ApproximateReceiveCount"], "1");
    assert_eq!(masked[0].at, None);
}

#[test]
fn schedule_events_keep_their_times_and_lose_their_random_ids() {
    let mut n = Normalizer::new(NormalizeOptions::mask_times());
    let legacy = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "time": "2026-11-22T01:00:00Z", "detail": {}
    });
    let out = n.event(&legacy);
    assert_eq!(out["id"], "event-1");
    assert_eq!(out["time"], "2026-11-22T01:00:00Z");
    let input = json!({
        "scheduled_time": "2026-11-22T01:00:00Z",
        "meta": {"executionId": "d32c5kddcf5bb8c3", "execution-id": "d32c5kddcf5bb8c3"},
        "attempts": [{"execution_id": "zzzz5kddcf5bb8c3"}]
    });
    let out = n.event(&input);
    assert_eq!(out["scheduled_time"], "2026-11-22T01:00:00Z");
    // Numbered in sorted key order: `attempts` before `meta`.
    assert_eq!(out["attempts"][0]["execution_id"], "exec-1");
    assert_eq!(out["meta"]["executionId"], "exec-2");
    assert_eq!(out["meta"]["execution-id"], "exec-2");
    // A response quoting an id the events carried quotes its placeholder.
    let response = n.response(&json!({"errorMessage": "x", "execution": "zzzz5kddcf5bb8c3"}));
    assert_eq!(response["execution"], "exec-1");
    assert_eq!(response["errorMessage"], "x");
}

#[test]
fn a_redriven_dead_letter_maps_its_original_id_and_gets_a_matching_md5() {
    let original = "11111111-2222-4333-8444-555555555555";
    let mut first = record(original, "h1", "bad", 1);
    first["messageId"] = json!(original);
    let mut redriven = record("99999999-2222-4333-8444-555555555555", "h2", "bad", 2);
    let attributes = json!({
        "nightshift-original-message-id": {
            "stringValue": original, "stringListValues": [], "binaryListValues": [],
            "dataType": "String"
        },
        "nightshift-error": {
            "stringValue": "malformed job", "stringListValues": [], "binaryListValues": [],
            "dataType": "String"
        }
    });
    redriven["messageAttributes"] = attributes;
    redriven["md5OfMessageAttributes"] = json!("stale");
    let mut n = Normalizer::new(NormalizeOptions::keep_times());
    let _ = n.event(&sqs_event(vec![first]));
    let out = n.event(&sqs_event(vec![redriven]));
    let r = &out["Records"][0];
    assert_eq!(r["messageId"], "msg-2");
    assert_eq!(
        r["messageAttributes"]["nightshift-original-message-id"]["stringValue"],
        "msg-1"
    );
    let expected = md5_of_attributes(
        &[
            (
                "nightshift-error".to_string(),
                MessageAttributeValue::string("malformed job"),
            ),
            (
                "nightshift-original-message-id".to_string(),
                MessageAttributeValue::string("msg-1"),
            ),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    assert_eq!(r["md5OfMessageAttributes"], json!(expected));
}

/// The trace a message was sent in is drawn at random per run: numbered by its root, so the
/// records of one trace share a placeholder and two runs give the same text.
#[test]
fn trace_headers_are_numbered_by_their_root() {
    let traced = |id: &str, header: &str| {
        let mut r = record(id, id, "{}", 1);
        r["attributes"]["AWSTraceHeader"] = json!(header);
        r
    };
    let mut n = Normalizer::new(NormalizeOptions::keep_times());
    let out = n.event(&sqs_event(vec![
        traced(
            "a",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        ),
        traced(
            "b",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000001;Sampled=0",
        ),
        traced(
            "c",
            "Root=1-5759e989-000000000000000000000002;Parent=0000000000000002;Sampled=0",
        ),
    ]));
    let headers: Vec<&Value> = (0..3)
        .map(|i| &out["Records"][i]["attributes"]["AWSTraceHeader"])
        .collect();
    assert_eq!(
        headers,
        [
            &json!("Root=trace-1"),
            &json!("Root=trace-1"),
            &json!("Root=trace-2")
        ]
    );
    // Normalising the normalised record changes nothing.
    let mut again = Normalizer::new(NormalizeOptions::keep_times());
    assert_eq!(again.event(&out), out);
}

#[test]
fn batch_item_failures_are_sorted_and_an_empty_identifier_stays_empty() {
    let mut n = Normalizer::new(NormalizeOptions::keep_times());
    let _ = n.event(&sqs_event(vec![
        record("a", "ra", "", 0),
        record("b", "rb", "", 0),
        record("c", "rc", "", 0),
    ]));
    let response = n.response(&failures(&["c", "", "a"]));
    assert_eq!(response, failures(&["", "msg-1", "msg-3"]));
}

#[test]
fn jsonl_round_trips_header_entries_raw_payloads_and_timeouts() {
    let mut header = TraceHeader::new(TimeMode::Keep);
    header.clock = Some("manual".into());
    header.clock_start = Some("2026-11-21T09:30:00Z".parse().unwrap());
    header.source = Some("test".into());
    let mut raw = TraceEntry::event(QP, json!("not json {")).with_response(
        "error",
        json!({"errorType": "Runtime.UnmarshalError", "errorMessage": "expected value"}),
    );
    raw.raw = true;
    raw.seq = 1;
    let mut timeout = TraceEntry::event(DR, json!({"scheduled_time": "2026-11-22T01:00:00Z"}))
        .with_response("timeout", Value::Null);
    timeout.seq = 2;
    timeout.at = Some("2026-11-22T01:00:00Z".parse().unwrap());
    let first = TraceEntry::event(QP, sqs_event(vec![])).with_response("success", failures(&[]));
    let mut buffer = Vec::new();
    let mut writer = TraceWriter::new(&mut buffer);
    writer.write_header(&header).unwrap();
    for e in [&first, &raw, &timeout] {
        writer.write_entry(e).unwrap();
    }
    let text = String::from_utf8(buffer).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].contains("\"kind\":\"header\""), "{}", lines[0]);
    assert!(
        lines[1].starts_with("{\"v\":1,\"seq\":0,\"function\":"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("\"raw\":true"), "{}", lines[2]);
    assert!(!lines[3].contains("\"response\""), "{}", lines[3]);

    let trace = read_trace(text.as_bytes()).unwrap();
    assert_eq!(trace.header, Some(header));
    assert_eq!(trace.entries.len(), 3);
    assert_eq!(trace.entries[1].line, Some(3));
    assert_eq!(trace.entries[1].payload(), b"not json {");
    assert_eq!(trace.entries[2].outcome.as_deref(), Some("timeout"));
    assert_eq!(trace.entries[2].response, None);
    let mut read_back = trace.entries.clone();
    for e in &mut read_back {
        e.line = None;
    }
    assert_eq!(read_back, vec![first, raw, timeout]);
    assert_eq!(read_trace(trace.to_jsonl().as_bytes()).unwrap(), trace);
}

#[test]
fn entries_without_seq_are_numbered_and_blank_lines_are_skipped() {
    let text = format!(
        "\n{}\n\n{}\n",
        json!({"function": QP, "event": {"Records": []}}),
        json!({"v": 1, "function": DR, "event": {}})
    );
    let trace = read_trace(text.as_bytes()).unwrap();
    assert_eq!(trace.header, None);
    let seqs: Vec<(u64, Option<usize>)> = trace.entries.iter().map(|e| (e.seq, e.line)).collect();
    assert_eq!(seqs, [(0, Some(2)), (1, Some(4))]);
    assert_eq!(trace.entries[0].outcome, None);
}

fn line_error(text: &str) -> (usize, String) {
    match read_trace(text.as_bytes()) {
        Err(TraceError::Line { line, message }) => (line, message),
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn bad_lines_are_reported_with_their_line_number() {
    let good = json!({"v": 1, "seq": 0, "function": QP, "event": {}}).to_string();
    let (line, message) = line_error(&format!("{good}\n\n{{\"v\":1,\"seq\":1,"));
    assert_eq!(line, 3);
    assert!(message.starts_with("not JSON"), "{message}");

    let (line, message) = line_error(&format!("{good}\n{}", json!({"v": 1, "event": {}})));
    assert_eq!(line, 2);
    assert!(message.contains("missing field `function`"), "{message}");

    let (line, message) = line_error(&format!("{good}\n{}", json!({"v": 1, "kind": "header"})));
    assert_eq!(line, 2);
    assert_eq!(message, "a header may only be the first line");

    let (line, message) = line_error(&json!({"v": 2, "function": QP, "event": {}}).to_string());
    assert_eq!(line, 1);
    assert!(
        message.contains("trace version 2 is not supported"),
        "{message}"
    );

    let (line, message) = line_error("[1,2]");
    assert_eq!((line, message.as_str()), (1, "not a JSON object"));

    let (line, message) =
        line_error(&json!({"function": QP, "event": {"a": 1}, "raw": true}).to_string());
    assert_eq!(
        (line, message.as_str()),
        (1, "a raw event must be a string")
    );

    let (line, message) = line_error(&json!({"function": "", "event": {}}).to_string());
    assert_eq!((line, message.as_str()), (1, "empty function name"));
}

#[test]
fn diff_names_every_difference_by_json_path() {
    let expected = json!({
        "batchItemFailures": [{"itemIdentifier": "msg-1"}, {"itemIdentifier": "msg-2"}],
        "date": "2026-11-21",
        "detail-type": "x",
        "same": {"deep": [1, 2]}
    });
    let actual = json!({
        "batchItemFailures": [{"itemIdentifier": "msg-3"}],
        "detail-type": "y",
        "same": {"deep": [1, 2]},
        "extra": true
    });
    let found: Vec<String> = diff(&expected, &actual)
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        found,
        [
            "$.batchItemFailures[0].itemIdentifier: expected \"msg-1\", got \"msg-3\"",
            "$.batchItemFailures[1]: expected {\"itemIdentifier\":\"msg-2\"}, missing",
            "$.date: expected \"2026-11-21\", missing",
            "$[\"detail-type\"]: expected \"x\", got \"y\"",
            "$.extra: unexpected true",
        ]
    );
    assert!(diff(&expected, &expected).is_empty());
    assert_eq!(
        diff(&json!(1), &json!("1")),
        [Difference {
            path: "$".into(),
            expected: Some(json!(1)),
            actual: Some(json!("1")),
        }]
    );
}

/// A queue processor that fails the records whose body contains "fail".
fn deterministic_processor() -> InProcessInvoker {
    InProcessInvoker::new().with_function(QP, |payload: Bytes, _ctx| async move {
        let event: Value = serde_json::from_slice(&payload)
            .map_err(|e| FunctionError::new("Runtime.UnmarshalError", e.to_string()))?;
        let failed: Vec<Value> = event["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["body"].as_str().unwrap_or("").contains("fail"))
            .map(|r| json!({"itemIdentifier": r["messageId"]}))
            .collect();
        Ok(Bytes::from(
            json!({ "batchItemFailures": failed }).to_string(),
        ))
    })
}

fn recorded_session() -> Vec<TraceEntry> {
    normalise_all(&session("rec"), NormalizeOptions::keep_times())
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.seq = i as u64;
            e.line = Some(i + 2);
            e
        })
        .collect()
}

#[tokio::test]
async fn a_deterministic_function_replays_to_the_recorded_responses() {
    let invoker = deterministic_processor();
    let options = ReplayOptions {
        check: true,
        ..ReplayOptions::default()
    };
    let report = replay(&invoker, &recorded_session(), &options).await;
    assert_eq!(report.replayed(), 2);
    assert_eq!(report.matched(), 2, "{}", report.mismatches());
    assert!(report.is_clean());
    assert_eq!(
        report.summary(),
        "replayed=2 matched=2 differed=0 unchecked=0 skipped=0"
    );
    assert_eq!(report.results[0].response, failures(&["msg-2"]));
    assert_eq!(
        render_replay(&report, true),
        "replayed=2 matched=2 differed=0 unchecked=0 skipped=0\n"
    );
    // Raw events replay too: the normalizer learns their ids on the way.
    let raw_session = session("raw");
    let report = replay(&invoker, &raw_session, &options).await;
    assert_eq!(report.matched(), 2, "{}", report.mismatches());
    assert_eq!(report.results[1].response, failures(&["msg-2"]));
}

#[tokio::test]
async fn a_changed_function_is_reported_with_the_json_path_of_each_difference() {
    // This version fails every record.
    let invoker = InProcessInvoker::new().with_function(QP, |payload: Bytes, _ctx| async move {
        let event: Value = serde_json::from_slice(&payload).unwrap();
        let ids: Vec<Value> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!({"itemIdentifier": r["messageId"]}))
            .collect();
        Ok(Bytes::from(json!({ "batchItemFailures": ids }).to_string()))
    });
    let options = ReplayOptions {
        check: true,
        ..ReplayOptions::default()
    };
    let report = replay(&invoker, &recorded_session(), &options).await;
    assert_eq!(report.differed(), 1);
    assert_eq!(report.matched(), 1);
    assert!(!report.is_clean());
    assert_eq!(report.results[0].verdict, Verdict::Differed);
    assert_eq!(
        report.mismatches(),
        "line 2 (seq 0) nightshift-QueueProcessorFunction: $.batchItemFailures[0].itemIdentifier: expected \"msg-2\", got \"msg-1\"\n\
         line 2 (seq 0) nightshift-QueueProcessorFunction: $.batchItemFailures[1]: unexpected {\"itemIdentifier\":\"msg-2\"}\n"
    );
    assert!(
        render_replay(&report, true)
            .ends_with("replayed=2 matched=1 differed=1 unchecked=0 skipped=0\n")
    );
}

#[tokio::test]
async fn a_function_error_instead_of_a_result_differs_in_outcome() {
    let invoker = InProcessInvoker::new().with_function(QP, |_payload, _ctx| async {
        Err::<Bytes, _>(FunctionError::new("Runtime.ExitError", "boom"))
    });
    let options = ReplayOptions {
        check: true,
        ..ReplayOptions::default()
    };
    let report = replay(&invoker, &recorded_session()[..1], &options).await;
    let first = &report.results[0];
    assert_eq!(first.outcome, "error");
    assert_eq!(
        first.differences[0].to_string(),
        "outcome: expected \"success\", got \"error\""
    );
    assert!(
        first
            .differences
            .iter()
            .any(|d| d.path == "$.errorType" && d.actual == Some(json!("Runtime.ExitError")))
    );
}

#[tokio::test]
async fn without_check_or_recorded_responses_nothing_is_compared() {
    let invoker = deterministic_processor();
    let report = replay(&invoker, &recorded_session(), &ReplayOptions::default()).await;
    assert_eq!(report.unchecked(), 2);
    assert_eq!(
        render_replay(&report, false),
        "line 2 (seq 0) nightshift-QueueProcessorFunction success {\"batchItemFailures\":[{\"itemIdentifier\":\"msg-2\"}]}\n\
         line 3 (seq 1) nightshift-QueueProcessorFunction success {\"batchItemFailures\":[{\"itemIdentifier\":\"msg-2\"}]}\n\
         replayed=2 matched=0 differed=0 unchecked=2 skipped=0\n"
    );
    let events_only: Vec<TraceEntry> = recorded_session()
        .into_iter()
        .map(|e| TraceEntry::event(e.function, e.event))
        .collect();
    let options = ReplayOptions {
        check: true,
        ..ReplayOptions::default()
    };
    let report = replay(&invoker, &events_only, &options).await;
    assert_eq!((report.unchecked(), report.differed()), (2, 0));
}

#[tokio::test]
async fn a_function_filter_skips_the_others_but_keeps_their_ids_numbered() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let invoker = deterministic_processor().with_function(DR, move |payload: Bytes, _ctx| {
        log.lock().unwrap().push(payload);
        async { Ok(Bytes::from_static(b"{}")) }
    });
    let mut entries = vec![TraceEntry::event(
        DR,
        json!({"scheduled_time": "2026-11-22T01:00:00Z"}),
    )];
    entries.extend(session("f"));
    let options = ReplayOptions {
        check: true,
        function: Some(QP.into()),
        ..ReplayOptions::default()
    };
    let report = replay(&invoker, &entries, &options).await;
    assert_eq!(report.skipped, 1);
    assert_eq!(report.matched(), 2, "{}", report.mismatches());
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_manual_clock_follows_the_recorded_times_and_raw_payloads_go_out_verbatim() {
    let (shared, manual) = clock::manual("2026-11-21T00:00:00Z".parse().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let clock_for_fn = shared.clone();
    let invoker = InProcessInvoker::new().with_function(QP, move |payload: Bytes, _ctx| {
        log.lock().unwrap().push((clock_for_fn.now(), payload));
        async { Ok(Bytes::from_static(b"{\"batchItemFailures\":[]}")) }
    });
    let mut late = TraceEntry::event(QP, sqs_event(vec![]));
    late.at = Some("2026-11-21T09:30:00Z".parse().unwrap());
    let mut raw = TraceEntry::event(QP, json!("{\"Records\": [] "));
    raw.raw = true;
    // An earlier time never moves the clock back.
    raw.at = Some("2026-11-21T08:00:00Z".parse().unwrap());
    let options = ReplayOptions {
        clock: Some(shared.clone()),
        ..ReplayOptions::default()
    };
    replay(&invoker, &[late, raw], &options).await;
    let seen = seen.lock().unwrap();
    let nine_thirty: DateTime<Utc> = "2026-11-21T09:30:00Z".parse().unwrap();
    assert_eq!(seen[0].0, nine_thirty);
    assert_eq!(seen[1].0, nine_thirty);
    assert_eq!(&seen[1].1[..], b"{\"Records\": [] ");
    assert_eq!(manual.next_wakeup(), None);
}

/// A `Write` the test can read back while the recorder holds it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn the_recorder_appends_each_invocation_normalised_as_it_completes() {
    let out = Shared::default();
    let mut writer = TraceWriter::new(Box::new(out.clone()) as Box<dyn Write + Send>);
    writer
        .write_header(&TraceHeader::new(TimeMode::Mask))
        .unwrap();
    let recorder = TraceRecorder::new(
        Arc::new(deterministic_processor()),
        writer,
        NormalizeOptions::mask_times(),
    );
    let event = sqs_event(vec![
        record("uuid-1", "handle-1", "ok", 5),
        record("uuid-2", "handle-2", "fail", 5),
    ]);
    let response = recorder
        .invoke(InvokeRequest::new(QP, event.to_string()))
        .await
        .unwrap();
    // The function got the real event, not the normalised one.
    assert!(response.is_success());
    recorder
        .invoke(InvokeRequest::new(QP, "not json"))
        .await
        .unwrap();
    recorder
        .invoke(InvokeRequest::new("nightshift-Nope", "{}"))
        .await
        .unwrap_err();
    recorder.flush().unwrap();
    assert_eq!(recorder.recorded(), 3);
    let trace = read_trace(out.text().as_bytes()).unwrap();
    assert_eq!(trace.times(), TimeMode::Mask);
    let e = &trace.entries;
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].seq, 0);
    assert_eq!(e[0].event["Records"][1]["messageId"], "msg-2");
    assert_eq!(e[0].event["Records"][1]["attributes"]["SentTimestamp"], "0");
    assert_eq!(e[0].response, Some(failures(&["msg-2"])));
    assert_eq!(e[0].at, None);
    assert_eq!((e[1].raw, &e[1].event), (true, &json!("not json")));
    assert_eq!(e[1].outcome.as_deref(), Some("error"));
    assert_eq!(e[2].outcome.as_deref(), Some("invoke_error"));
    assert_eq!(
        e[2].response,
        Some(json!("function not found: nightshift-Nope"))
    );
}

/// A writer that always fails.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _buf: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_trace_file_does_not_fail_the_invocation_but_fails_the_flush() {
    let recorder = TraceRecorder::new(
        Arc::new(deterministic_processor()),
        TraceWriter::new(Box::new(Broken) as Box<dyn Write + Send>),
        NormalizeOptions::keep_times(),
    );
    let response = recorder
        .invoke(InvokeRequest::new(QP, sqs_event(vec![]).to_string()))
        .await
        .unwrap();
    assert!(response.is_success());
    assert_eq!(recorder.recorded(), 0);
    let err = recorder.flush().unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn emulator_options(at: &str) -> EmulatorOptions {
    let mut up = EmulatorOptions::new(workspace_root());
    up.log_format = nightshift_local::logs::LogFormat::Tracing;
    up.addr = ([127, 0, 0, 1], 0).into();
    up.clock = ClockSpec::Manual;
    up.clock_start = at.parse().unwrap();
    up.state_dir = None;
    up
}

/// Records one session on the emulator (real template, manual clock): an ok and a failing
/// job in one batch, then a fired schedule; returns the trace text.
async fn record_session() -> String {
    let out = Shared::default();
    let mut writer = TraceWriter::new(Box::new(out.clone()) as Box<dyn Write + Send>);
    let mut header = TraceHeader::new(TimeMode::Keep);
    header.clock = Some("manual".into());
    writer.write_header(&header).unwrap();
    let (wrap, slot) = recording_wrap(writer, NormalizeOptions::keep_times());
    let functions =
        deterministic_processor().with_function(DR, |payload: Bytes, _ctx| async move {
            let input: Value = serde_json::from_slice(&payload).unwrap();
            Ok(Bytes::from(
                json!({"for": input["scheduled_time"]}).to_string(),
            ))
        });
    let emulator = Emulator::start_wrapped(
        emulator_options("2026-11-21T09:30:00Z"),
        Some(Arc::new(functions)),
        Some(wrap),
    )
    .await
    .unwrap();
    slot.get().unwrap().set_clock(emulator.clock().clone());
    emulator.send("jobs", "ok").unwrap();
    emulator.send("jobs", "fail").unwrap();
    emulator
        .run_until_idle(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    emulator.fire("DailyReportFunctionDaily").await.unwrap();
    emulator.shutdown(std::time::Duration::from_secs(2)).await;
    slot.get().unwrap().flush().unwrap();
    out.text()
}

// One thread: both messages are on the queue before the poller first runs, so they always
// form one batch (with more threads the poller may take the first alone).
#[tokio::test]
async fn recording_through_the_emulator_is_stable_and_replays_clean() {
    let first = record_session().await;
    let second = record_session().await;
    assert_eq!(first, second, "two recordings of one session differ");
    let trace = read_trace(first.as_bytes()).unwrap();
    assert_eq!(trace.entries.len(), 2, "{first}");
    let jobs = &trace.entries[0];
    assert_eq!(jobs.function, QP);
    let records = jobs.event["Records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{first}");
    assert_eq!(records[1]["messageId"], "msg-2");
    assert_eq!(records[1]["body"], "fail");
    assert_eq!(jobs.response, Some(failures(&["msg-2"])));
    assert_eq!(
        jobs.at,
        Some("2026-11-21T09:30:01Z".parse().unwrap()),
        "the batching window ends 1 s after the send"
    );
    let report_entry = &trace.entries[1];
    assert_eq!(report_entry.function, DR);
    assert_eq!(
        report_entry.response,
        Some(json!({"for": "2026-11-21T09:30:01Z"}))
    );

    let options = ReplayOptions {
        check: true,
        ..ReplayOptions::default()
    };
    let fresh = deterministic_processor().with_function(DR, |payload: Bytes, _ctx| async move {
        let input: Value = serde_json::from_slice(&payload).unwrap();
        Ok(Bytes::from(
            json!({"for": input["scheduled_time"]}).to_string(),
        ))
    });
    let report = replay(&fresh, &trace.entries, &options).await;
    assert_eq!(report.matched(), 2, "{}", report.mismatches());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_serves_the_template_queues_and_nothing_consumes_them() {
    let options = emulator_options("2026-11-21T09:30:00Z");
    let sandbox = Sandbox::start(&options, Some(Arc::new(deterministic_processor())))
        .await
        .unwrap();
    let mut names = sandbox.engine().queue_names(None);
    names.sort();
    assert_eq!(
        names,
        [
            "nightshift-emails",
            "nightshift-emails-dlq",
            "nightshift-inventory-dlq.fifo",
            "nightshift-inventory.fifo",
            "nightshift-jobs",
            "nightshift-jobs-dlq",
            "nightshift-mail-feedback",
            "nightshift-mail-feedback-dlq",
            "nightshift-report-failures",
            "nightshift-report-schedule-dlq"
        ]
    );
    assert!(sandbox.endpoint().starts_with("http://127.0.0.1:"));
    assert_ne!(sandbox.endpoint(), "http://127.0.0.1:0");
    assert_eq!(
        sandbox.clock().now(),
        "2026-11-21T09:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    // The functions' queue URLs point at this endpoint.
    let qp = sandbox
        .template()
        .functions
        .values()
        .find(|f| f.name == QP)
        .unwrap();
    assert_eq!(
        qp.env["EMAILS_QUEUE_URL"],
        format!("{}/000000000000/nightshift-emails", sandbox.endpoint())
    );
    // A message sent there stays: no poller takes it.
    sandbox
        .engine()
        .send_message(
            "nightshift-jobs",
            nightshift_local::sqs::OutgoingMessage::new("left alone"),
        )
        .unwrap();
    let report = replay(
        sandbox.invoker().as_ref(),
        &recorded_session(),
        &ReplayOptions {
            check: true,
            clock: Some(sandbox.clock().clone()),
            ..ReplayOptions::default()
        },
    )
    .await;
    assert_eq!(report.matched(), 2);
    assert_eq!(
        sandbox
            .engine()
            .queue_stats("nightshift-jobs")
            .unwrap()
            .visible,
        1
    );
    sandbox.shutdown(std::time::Duration::from_secs(1)).await;
}

#[test]
fn record_and_replay_parse_their_options() {
    let cli = Cli::try_parse_from([
        "nightshift",
        "record",
        "--out",
        "t.jsonl",
        "--clock",
        "manual",
        "--clock-start",
        "2026-11-21T09:30:00Z",
        "--fresh",
        "--no-build",
    ])
    .unwrap();
    let Command::Record(args) = cli.command else {
        panic!("not record");
    };
    assert_eq!(args.out, PathBuf::from("t.jsonl"));
    assert_eq!(args.times, "auto");
    assert!(args.fresh);
    assert_eq!(args.up.clock, "manual");
    assert!(args.up.no_build);

    let cli = Cli::try_parse_from([
        "nightshift",
        "replay",
        "trace.jsonl",
        "--check",
        "--function",
        QP,
        "--invoke-endpoint",
        "http://127.0.0.1:9000",
    ])
    .unwrap();
    let Command::Replay(args) = cli.command else {
        panic!("not replay");
    };
    assert_eq!(args.trace, PathBuf::from("trace.jsonl"));
    assert!(args.check);
    assert_eq!(args.function.as_deref(), Some(QP));
    assert_eq!(
        args.invoke_endpoint.as_deref(),
        Some("http://127.0.0.1:9000")
    );
    assert_eq!(args.work_dir, None);
    assert!(
        Cli::try_parse_from(["nightshift", "record"]).is_err(),
        "--out is required"
    );
}

#[test]
fn recorded_entries_from_the_harness_are_normalised_in_seq_order() {
    use nightshift_local::harness::Invocation;
    let at: DateTime<Utc> = "2026-11-21T09:30:01Z".parse().unwrap();
    let invocation = |seq, id: &str| Invocation {
        seq,
        function: QP.into(),
        request_id: format!("req-{seq}"),
        event: sqs_event(vec![record(id, &format!("h{seq}"), "fail", 0)]),
        outcome: "success".into(),
        response: failures(&[id]),
        at,
    };
    let entries = entries_from_invocations(
        &[invocation(1, "second"), invocation(0, "first")],
        NormalizeOptions::keep_times(),
    );
    assert_eq!(entries[0].seq, 0);
    assert_eq!(entries[0].event["Records"][0]["messageId"], "msg-1");
    assert_eq!(entries[1].response, Some(failures(&["msg-2"])));
    assert_eq!(entries[1].at, Some(at));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_keeps_run_time_schedules_without_firing_them() {
    // queue-processor schedules a signup's follow-up on AWS_ENDPOINT_URL_SCHEDULER while it is
    // replayed: the sandbox's Scheduler API accepts it in the template's group, and it never
    // fires (what it sent is in the trace already).
    let options = emulator_options("2026-11-21T09:30:00Z");
    let sandbox = Sandbox::start(&options, Some(Arc::new(deterministic_processor())))
        .await
        .unwrap();
    assert_ne!(sandbox.scheduler_endpoint(), sandbox.endpoint());
    let client = crate::scheduler_api::client_at(sandbox.scheduler_endpoint());
    client
        .create_schedule()
        .name("follow-up-u-42")
        .group_name("nightshift-jobs")
        .schedule_expression("at(2026-11-21T10:00:00)")
        .flexible_time_window(
            aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
                .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                .build()
                .unwrap(),
        )
        .target(
            aws_sdk_scheduler::types::Target::builder()
                .arn("arn:aws:sqs:us-east-1:000000000000:nightshift-jobs")
                .role_arn("arn:aws:iam::000000000000:role/nightshift-JobsSchedulerRole")
                .input("{}")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = client
        .get_schedule()
        .name("follow-up-u-42")
        .group_name("nightshift-jobs")
        .send()
        .await
        .unwrap();
    assert_eq!(got.schedule_expression(), Some("at(2026-11-21T10:00:00)"));
    nightshift_local::clock::Clock::as_manual(sandbox.clock().as_ref())
        .expect("a manual clock")
        .advance(std::time::Duration::from_secs(3600))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        sandbox
            .engine()
            .peek_messages("nightshift-jobs", 10)
            .unwrap()
            .is_empty(),
        "the schedule's time passed and nothing was sent"
    );
    sandbox.shutdown(std::time::Duration::from_secs(1)).await;
}
