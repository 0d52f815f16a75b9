//! Record and replay with the real handlers: a session on the emulator (real template, the
//! three functions in process, manual clock) is recorded into a trace, and replaying the trace
//! against fresh functions gives back every recorded response. Also replays the trace built
//! from the real AWS event fixtures.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nightshift_local::emulator::EmulatorOptions;
use nightshift_local::harness::{Harness, HarnessInvoker, HarnessOptions};
use nightshift_local::invoker::Invoker;
use nightshift_local::trace::{
    NormalizeOptions, ReplayOptions, ReplayReport, Sandbox, TimeMode, Trace, TraceHeader,
    TraceRecorder, TraceWriter, Verdict, load_trace, read_trace, replay,
};
use serde_json::{Value, json};

use crate::emulator::{
    DAILY_REPORT, Dirs, EMAIL_SENDER, EmulatorClockImpl, QUEUE_PROCESSOR, in_process_functions,
    workspace_root,
};
use crate::support::{fixture, fixture_path};

const START: &str = "2026-11-21T09:30:00Z";

/// A `Write` the test reads back while the recorder holds it.
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

/// The three real handlers in process, their state in `dirs`, behind a trace recorder, on a
/// harness: what `nightshift record` does, with in-process functions.
async fn recording_harness(dirs: &Dirs, out: Shared) -> (Harness, Arc<TraceRecorder>) {
    let endpoint: Arc<OnceLock<String>> = Arc::default();
    let clock = Arc::new(EmulatorClockImpl(OnceLock::new()));
    let functions = in_process_functions(dirs, endpoint.clone(), clock.clone());
    let mut writer = TraceWriter::new(Box::new(out) as Box<dyn Write + Send>);
    let mut header = TraceHeader::new(TimeMode::Keep);
    header.clock = Some("manual".into());
    header.clock_start = Some(START.parse().unwrap());
    header.source = Some("tests/it/replay.rs".into());
    writer.write_header(&header).unwrap();
    let recorder = Arc::new(TraceRecorder::new(
        Arc::new(functions),
        writer,
        NormalizeOptions::keep_times(),
    ));
    let options = HarnessOptions::new(workspace_root()).starting_at(START.parse().unwrap());
    let harness = Harness::start(options, HarnessInvoker::Custom(recorder.clone()))
        .await
        .unwrap();
    endpoint.set(harness.endpoint()).unwrap();
    let _ = clock.0.set(harness.emulator().clock().clone());
    recorder.set_clock(harness.emulator().clock().clone());
    (harness, recorder)
}

/// Jobs and emails, one at a time so every batch and every id is the same in every run: an
/// order, the same order again, a signup, a malformed job, an unknown kind, an email with an
/// unknown template.
async fn jobs_and_emails(h: &Harness) {
    let steps: [(&str, String); 6] = [
        ("jobs", fixture("jobs/order-placed.json")),
        ("jobs", fixture("jobs/order-placed.json")),
        ("jobs", fixture("jobs/user-signup.json")),
        ("jobs", "not json".to_string()),
        ("jobs", fixture("jobs/unknown-kind.json")),
        (
            "emails",
            r#"{"v":1,"id":"e-missing","to":["a@example.com"],"subject":"x","template":"missing"}"#
                .to_string(),
        ),
    ];
    for (queue, body) in steps {
        h.send(queue, body).unwrap();
        h.run_until_idle().await.unwrap();
    }
}

/// A recorded session: its trace text and the functions' state.
struct Recording {
    text: String,
    dirs: Dirs,
}

async fn record(with_report: bool) -> Recording {
    let dirs = Dirs {
        root: tempfile::tempdir().unwrap(),
    };
    let out = Shared::default();
    let (h, recorder) = recording_harness(&dirs, out.clone()).await;
    jobs_and_emails(&h).await;
    if with_report {
        // To 04:30 in Berlin the next day: the daily report for 2026-11-21 runs, and mails.
        h.advance(Duration::from_secs(18 * 3600)).await.unwrap();
    }
    h.shutdown().await;
    recorder.flush().unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    Recording { text, dirs }
}

/// Fresh functions (empty state) on a sandbox: its own SQS endpoint with the template's
/// queues and no pollers, a manual clock at `start` that the replay moves along the trace.
async fn fresh_functions(start: DateTime<Utc>) -> (Sandbox, Dirs) {
    let dirs = Dirs {
        root: tempfile::tempdir().unwrap(),
    };
    let sandbox = sandbox_for(&dirs, start).await;
    (sandbox, dirs)
}

async fn sandbox_for(dirs: &Dirs, start: DateTime<Utc>) -> Sandbox {
    let endpoint: Arc<OnceLock<String>> = Arc::default();
    let clock = Arc::new(EmulatorClockImpl(OnceLock::new()));
    let functions: Arc<dyn Invoker> =
        Arc::new(in_process_functions(dirs, endpoint.clone(), clock.clone()));
    let mut options = EmulatorOptions::new(workspace_root());
    options.log_format = nightshift_local::logs::LogFormat::Tracing;
    options.addr = ([127, 0, 0, 1], 0).into();
    options.clock_start = start;
    let sandbox = Sandbox::start(&options, Some(functions)).await.unwrap();
    endpoint.set(sandbox.endpoint()).unwrap();
    let _ = clock.0.set(sandbox.clock().clone());
    sandbox
}

async fn replay_checked(sandbox: &Sandbox, trace: &Trace) -> ReplayReport {
    let options = ReplayOptions {
        check: true,
        normalize: NormalizeOptions {
            times: trace.times(),
        },
        clock: Some(sandbox.clock().clone()),
        ..ReplayOptions::default()
    };
    replay(sandbox.invoker().as_ref(), &trace.entries, &options).await
}

fn functions_of(trace: &Trace) -> Vec<&str> {
    trace.entries.iter().map(|e| e.function.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_against_fresh_functions_with_every_response_equal() {
    let recording = record(true).await;
    let trace = read_trace(recording.text.as_bytes()).unwrap();
    assert_eq!(
        functions_of(&trace),
        [
            QUEUE_PROCESSOR,
            EMAIL_SENDER,
            QUEUE_PROCESSOR,
            QUEUE_PROCESSOR,
            EMAIL_SENDER,
            QUEUE_PROCESSOR,
            QUEUE_PROCESSOR,
            EMAIL_SENDER,
            DAILY_REPORT,
            EMAIL_SENDER,
        ],
        "{}",
        recording.text
    );
    assert!(
        trace
            .entries
            .iter()
            .all(|e| e.outcome.as_deref() == Some("success"))
    );
    let report_entry = &trace.entries[8];
    assert_eq!(
        report_entry.event,
        json!({"scheduled_time": "2026-11-22T03:00:00Z"})
    );
    // `dead_letters`: what waits in the DLQs the template's REPORT_DLQ_URLS names when the
    // report is made (the session's dead-lettered job, unknown kind and rejected email).
    assert_eq!(
        report_entry.response.as_ref().unwrap(),
        &json!({
            "date": "2026-11-21", "total": 3, "failed": 1, "dead_letters": 3,
            "csv_key": "reports/2026-11-21.csv", "html_key": "reports/2026-11-21.html",
            "already_done": false
        })
    );
    // Every SQS id is a placeholder, numbered across the trace.
    let first = &trace.entries[0].event["Records"][0];
    assert_eq!(first["messageId"], "msg-1");
    assert_eq!(first["receiptHandle"], "rh-1");
    assert_eq!(trace.entries[1].event["Records"][0]["messageId"], "msg-2");

    if std::env::var_os("NIGHTSHIFT_BLESS_TRACES").is_some() {
        std::fs::write(example_trace_path(), &recording.text).unwrap();
    }

    let (sandbox, fresh) = fresh_functions(START.parse().unwrap()).await;
    let report = replay_checked(&sandbox, &trace).await;
    assert_eq!(
        (report.replayed(), report.matched(), report.differed()),
        (10, 10, 0),
        "{}",
        report.mismatches()
    );
    // The replay did what the recording did: the same emails, the same report files.
    assert_eq!(fresh.emails().len(), 3);
    assert_eq!(fresh.emails().len(), recording.dirs.emails().len());
    let csv =
        |d: &Dirs| std::fs::read_to_string(d.reports().join("reports/2026-11-21.csv")).unwrap();
    assert_eq!(
        csv(&fresh).lines().next(),
        csv(&recording.dirs).lines().next()
    );
    // What the functions sent landed in the sandbox's queues, where nothing consumed it.
    let jobs_dlq = sandbox
        .engine()
        .peek_messages("nightshift-jobs-dlq", 10)
        .unwrap();
    assert_eq!(jobs_dlq.len(), 2);
    let emails = sandbox
        .engine()
        .peek_messages("nightshift-emails", 10)
        .unwrap();
    assert_eq!(emails.len(), 3, "two job emails and the report email");
    sandbox.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_against_the_state_that_recorded_it_the_report_is_already_done() {
    let recording = record(true).await;
    let trace = read_trace(recording.text.as_bytes()).unwrap();
    // Same store, outbox and reports as the recording: idempotency finds everything done.
    let sandbox = sandbox_for(&recording.dirs, START.parse().unwrap()).await;
    let report = replay_checked(&sandbox, &trace).await;
    assert_eq!(report.differed(), 1, "{}", report.mismatches());
    let differed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Differed)
        .collect();
    assert_eq!(differed[0].function, DAILY_REPORT);
    assert_eq!(
        differed[0].line,
        Some(10),
        "header, then nine entries before it"
    );
    assert_eq!(
        report.mismatches(),
        "line 10 (seq 8) nightshift-DailyReportFunction: $.already_done: expected false, got true\n"
    );
    // Duplicates were skipped: no email went out twice.
    assert_eq!(recording.dirs.emails().len(), 3);
    sandbox.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recordings_of_one_session_are_the_same_trace() {
    let first = record(false).await;
    let second = record(false).await;
    assert_eq!(first.text, second.text);
    let trace = read_trace(first.text.as_bytes()).unwrap();
    assert_eq!(trace.entries.len(), 8, "{}", first.text);
    // The malformed job and the unknown kind were dead-lettered and acknowledged.
    for entry in &trace.entries {
        assert_eq!(
            entry.response,
            Some(json!({"batchItemFailures": []})),
            "{entry:?}"
        );
    }
}

fn example_trace_path() -> PathBuf {
    fixture_path("traces/order-pipeline.jsonl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_trace_replays_clean() {
    let trace = load_trace(&example_trace_path()).unwrap();
    assert_eq!(trace.entries.len(), 10);
    let start = trace.header.as_ref().and_then(|h| h.clock_start).unwrap();
    let (sandbox, fresh) = fresh_functions(start).await;
    let report = replay_checked(&sandbox, &trace).await;
    assert!(report.is_clean(), "{}", report.mismatches());
    assert_eq!(report.matched(), 10);
    assert_eq!(fresh.emails().len(), 3);
    sandbox.shutdown(Duration::from_secs(1)).await;
}

fn response_of(report: &ReplayReport, seq: u64) -> (&str, &Value) {
    let r = report.results.iter().find(|r| r.seq == seq).unwrap();
    (r.outcome.as_str(), &r.response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_fixture_events_replay_and_show_their_responses() {
    let trace = load_trace(&fixture_path("traces/aws-fixtures.jsonl")).unwrap();
    assert_eq!(trace.entries.len(), 5);
    // The fixtures are real AWS event JSON, byte for byte what the fixture files hold.
    let jobs: Value = serde_json::from_str(&fixture("sqs-event-jobs.json")).unwrap();
    assert_eq!(trace.entries[0].event, jobs);
    let (sandbox, fresh) = fresh_functions(START.parse().unwrap()).await;
    let report = replay_checked(&sandbox, &trace).await;
    assert_eq!(report.replayed(), 5);
    assert_eq!(report.unchecked(), 5, "nothing recorded, nothing compared");
    let ok = json!({"batchItemFailures": []});
    // Four jobs: two done, the malformed and the unknown one dead-lettered; then the order
    // again (the same message id: msg-1), skipped as a duplicate.
    assert_eq!(response_of(&report, 0), ("success", &ok));
    assert_eq!(response_of(&report, 1), ("success", &ok));
    // The confirmation goes out; the header injection is dead-lettered.
    assert_eq!(response_of(&report, 2), ("success", &ok));
    let summary = json!({
        "date": "2026-11-21", "total": 3, "failed": 1, "dead_letters": 3,
        "csv_key": "reports/2026-11-21.csv", "html_key": "reports/2026-11-21.html",
        "already_done": false
    });
    assert_eq!(response_of(&report, 3), ("success", &summary));
    // The legacy rule's event names the same day: already done.
    let mut again = summary.clone();
    again["already_done"] = json!(true);
    assert_eq!(response_of(&report, 4), ("success", &again));
    assert_eq!(fresh.emails().len(), 1);
    let dlq = |q: &str| sandbox.engine().peek_messages(q, 10).unwrap().len();
    assert_eq!(
        (dlq("nightshift-jobs-dlq"), dlq("nightshift-emails-dlq")),
        (2, 1)
    );
    sandbox.shutdown(Duration::from_secs(1)).await;
}
