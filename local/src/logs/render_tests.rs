//! Rendering real lines: the functions' output captured from `nightshift up` in both of
//! `lambda_runtime`'s formats (`local/tests/fixtures/logs/`), and the runtime's platform lines.

use serde_json::{Value, json};

use super::*;
use crate::runtime::LogStream;

/// `AWS_LAMBDA_LOG_FORMAT=JSON` (the template's setting), from queue-processor and
/// email-sender.
const JSON_LINES: &str = include_str!("../../tests/fixtures/logs/json-format.log");
/// The text format with ANSI escapes (`LogFormat: Text`), with injected faults.
const TEXT_LINES: &str = include_str!("../../tests/fixtures/logs/text-format.log");

fn record(function: &str, stream: LogStream, line: &str) -> LogRecord {
    LogRecord {
        time: "2026-12-02T12:18:43.153Z".parse().unwrap(),
        function: function.into(),
        instance: 1,
        request_id: Some("b2f6dd87-17f4-499a-be33-dc6b87063985".into()),
        stream,
        line: line.into(),
    }
}

fn stdout(line: &str) -> LogRecord {
    record("nightshift-QueueProcessorFunction", LogStream::Stdout, line)
}

fn platform(line: &str) -> LogRecord {
    record(
        "nightshift-QueueProcessorFunction",
        LogStream::Platform,
        line,
    )
}

fn line_with(lines: &str, needle: &str) -> String {
    lines
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no fixture line with {needle:?}"))
        .to_owned()
}

#[test]
fn a_json_line_reads_as_time_function_level_message_and_fields() {
    let line = line_with(JSON_LINES, "job processed");
    assert_eq!(
        render_human(&stdout(&line), false),
        "12:18:43.153 queue-processor  INFO job processed job_id=job-order-1001 \
         kind=order.placed message_id=c22a0b40-456c-463f-a921-2ddd178d75db receive_count=1"
    );
    let line = line_with(JSON_LINES, "permanent failure");
    assert_eq!(
        render_human(&stdout(&line), false),
        "12:18:43.153 queue-processor ERROR permanent failure, moved to dlq \
         error=\"malformed job: malformed json at line 1 column 5: EOF while parsing a string\" \
         dlq_message_id=175baf42-75c5-4e13-84e1-049d16a4a163 \
         message_id=c457bb4c-9b36-42db-8b7d-56079891abe7 receive_count=1"
    );
}

#[test]
fn a_text_line_with_ansi_reads_like_the_json_line() {
    let line = line_with(TEXT_LINES, "job processed");
    assert!(line.contains('\x1b'), "the fixture keeps the escapes");
    assert_eq!(
        render_human(&stdout(&line), false),
        "12:18:43.153 queue-processor  INFO job processed job_id=job-order-1001 \
         kind=order.placed message_id=8eef37c6-02c1-4fd4-a53d-a25a75dbb468 receive_count=1"
    );
    // A value with spaces (Display) ends where the next field starts.
    let line = line_with(TEXT_LINES, "retryable error (fault injection)");
    let Parsed::Event(event) = parse(&stdout(&line)) else {
        panic!("an event")
    };
    assert_eq!(event.level.as_deref(), Some("WARN"));
    assert_eq!(event.message, "record failed, will retry");
    assert_eq!(
        event.fields,
        vec![
            (
                "error".to_owned(),
                json!("retryable error (fault injection)")
            ),
            ("retry_in_s".to_owned(), json!(9)),
        ]
    );
    assert_eq!(event.span[0].0, "requestId");
    assert_eq!(
        event.span[2..],
        [
            (
                "message_id".to_owned(),
                json!("c7ad0635-306f-460e-8439-d3099d7e5b29")
            ),
            ("receive_count".to_owned(), json!(1)),
        ]
    );
}

#[test]
fn every_captured_line_parses_the_same_with_and_without_escapes() {
    for line in TEXT_LINES.lines() {
        let styled = parse(&stdout(line));
        let plain = parse(&stdout(&strip_ansi(line)));
        assert_eq!(styled, plain, "{line:?}");
        let Parsed::Event(event) = styled else {
            panic!("an event: {line:?}")
        };
        assert!(event.level.is_some(), "{line:?}");
        assert!(!event.message.is_empty(), "{line:?}");
        assert!(!event.message.contains(['\x1b', '{', '=']), "{line:?}");
    }
    for line in JSON_LINES.lines() {
        let Parsed::Event(event) = parse(&stdout(line)) else {
            panic!("an event: {line:?}")
        };
        assert!(
            event.level.is_some() && !event.message.is_empty(),
            "{line:?}"
        );
    }
}

#[test]
fn a_report_is_one_compact_line() {
    let report = platform(
        "REPORT RequestId: b2f6dd87-17f4-499a-be33-dc6b87063985\tDuration: 7.62 ms\tBilled \
         Duration: 56 ms\tMemory Size: 256 MB\tMax Memory Used: 25 MB\tInit Duration: 48.18 ms",
    );
    assert_eq!(
        render_human(&report, false),
        "12:18:43.153 REPORT queue-processor 7.6 ms (init 48 ms) 25 MB"
    );
    let warm = platform(
        "REPORT RequestId: x\tDuration: 0.41 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax \
         Memory Used: 13 MB",
    );
    assert_eq!(
        render_human(&warm, false),
        "12:18:43.153 REPORT queue-processor 0.4 ms 13 MB"
    );
    let timed_out = platform(
        "REPORT RequestId: x\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 128 \
         MB\tMax Memory Used: 40 MB\tStatus: timeout",
    );
    assert_eq!(
        render_human(&timed_out, false),
        "12:18:43.153 REPORT queue-processor 3.00 s 40 MB timeout"
    );
    let crashed = platform(
        "REPORT RequestId: x\tDuration: 2.00 ms\tBilled Duration: 3 ms\tMemory Size: 128 \
         MB\tStatus: error\tError Type: Runtime.ExitError",
    );
    assert_eq!(
        render_human(&crashed, false),
        "12:18:43.153 REPORT queue-processor 2.0 ms error (Runtime.ExitError)"
    );
    let init = platform("INIT_REPORT Init Duration: 300.00 ms Phase: init Status: timeout");
    assert_eq!(
        render_human(&init, false),
        "12:18:43.153 INIT_REPORT queue-processor 300 ms timeout"
    );
}

#[test]
fn a_report_in_json_carries_its_numbers() {
    let report = platform(
        "REPORT RequestId: b2f6dd87-17f4-499a-be33-dc6b87063985\tDuration: 19.36 ms\tBilled \
         Duration: 239 ms\tMemory Size: 256 MB\tMax Memory Used: 28 MB\tInit Duration: 219.18 ms",
    );
    let json: Value = serde_json::from_str(&render_json(&report)).unwrap();
    assert_eq!(
        json,
        json!({
            "time": "2026-12-02T12:18:43.153000Z",
            "function": "nightshift-QueueProcessorFunction",
            "instance": 1,
            "request_id": "b2f6dd87-17f4-499a-be33-dc6b87063985",
            "stream": "platform",
            "type": "platform.report",
            "duration_ms": 19.36,
            "billed_duration_ms": 239,
            "memory_size_mb": 256,
            "max_memory_used_mb": 28,
            "init_duration_ms": 219.18,
            "message": report.line,
        })
    );
}

#[test]
fn a_function_line_in_json_is_one_object_with_the_parsed_event_merged_in() {
    let line = line_with(JSON_LINES, "batch processed");
    let rendered = render_json(&stdout(&line));
    assert!(!rendered.contains('\n'));
    assert!(rendered.starts_with(r#"{"time":"2026-12-02T12:18:43.153000Z","function":"#));
    let json: Value = serde_json::from_str(&rendered).unwrap();
    assert_eq!(json["type"], "function");
    assert_eq!(json["stream"], "stdout");
    assert_eq!(json["level"], "INFO");
    assert_eq!(json["message"], "batch processed");
    assert!(
        rendered.contains(
            r#""fields":{"succeeded":1,"retried":0,"dead_lettered":1,"not_started":0,"skipped":0}"#
        ),
        "the fields keep their order: {rendered}"
    );
    assert_eq!(
        json["span"]["requestId"],
        "b2f6dd87-17f4-499a-be33-dc6b87063985"
    );
    // The same event in the text format renders to the same JSON, but for its ids.
    let text = line_with(TEXT_LINES, "batch processed");
    let json: Value = serde_json::from_str(&render_json(&stdout(&text))).unwrap();
    assert_eq!(json["level"], "INFO");
    assert_eq!(json["message"], "batch processed");
    assert_eq!(json["fields"]["retried"], 3);
}

#[test]
fn other_lines_keep_their_text() {
    let panic = record(
        "nightshift-EmailSenderFunction",
        LogStream::Stderr,
        "thread 'main' panicked at src/main.rs:3:5:",
    );
    assert_eq!(
        render_human(&panic, false),
        "12:18:43.153 email-sender      err thread 'main' panicked at src/main.rs:3:5:"
    );
    let json: Value = serde_json::from_str(&render_json(&panic)).unwrap();
    assert_eq!(json["message"], panic.line);
    assert_eq!(json["stream"], "stderr");
    assert!(json.get("level").is_none());
    // An object that is no log event: its keys are its fields.
    let Parsed::Event(event) = parse(&stdout(r#"{"_aws":{"Timestamp":1},"jobs":3}"#)) else {
        panic!("an event")
    };
    assert_eq!(event.level, None);
    assert_eq!(event.fields.len(), 2);
}

#[test]
fn platform_errors_lose_the_request_id_and_start_and_end_are_quiet() {
    let timeout = platform(
        "2026-12-02T12:18:46.153Z b2f6dd87-17f4-499a-be33-dc6b87063985 Task timed out after 3.00 \
         seconds",
    );
    assert_eq!(
        render_human(&timeout, false),
        "12:18:43.153 queue-processor ERROR Task timed out after 3.00 seconds"
    );
    let start = platform("START RequestId: b2f6dd87-17f4-499a-be33-dc6b87063985 Version: $LATEST");
    let end = platform("END RequestId: b2f6dd87-17f4-499a-be33-dc6b87063985");
    assert!(is_quiet(&start) && is_quiet(&end) && !is_quiet(&timeout));
    assert_eq!(
        render_human(&start, false),
        "12:18:43.153 START queue-processor"
    );
    let json: Value = serde_json::from_str(&render_json(&end)).unwrap();
    assert_eq!(json["type"], "platform.end");
}

#[test]
fn short_names_drop_the_stack_and_the_function_suffix() {
    assert_eq!(
        short_name("nightshift-QueueProcessorFunction"),
        "queue-processor"
    );
    assert_eq!(short_name("nightshift-daily-report"), "daily-report");
    assert_eq!(short_name("echo"), "echo");
    assert_eq!(short_name("Function"), "function");
    assert_eq!(short_name("other-stack-Worker"), "other-stack-Worker");
}

#[test]
fn colour_marks_the_function_stably_and_the_level() {
    let line = line_with(JSON_LINES, "job processed");
    let coloured = render_human(&stdout(&line), true);
    assert_eq!(coloured, render_human(&stdout(&line), true));
    assert!(coloured.contains("\x1b[32m INFO\x1b[0m"), "{coloured:?}");
    let color = function_color("nightshift-QueueProcessorFunction");
    assert!(coloured.contains(&format!("\x1b[{color}mqueue-processor\x1b[0m")));
    assert_eq!(strip_ansi(&coloured), render_human(&stdout(&line), false));
    let colors: std::collections::BTreeSet<u8> = [
        "nightshift-QueueProcessorFunction",
        "nightshift-EmailSenderFunction",
        "nightshift-DailyReportFunction",
    ]
    .iter()
    .map(|f| function_color(f))
    .collect();
    assert_eq!(colors.len(), 3, "the template's functions are told apart");
}
