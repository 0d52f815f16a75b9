//! The bad-input corpus (`tests/fixtures/bad/`, listed in its `index.json`) fed through the
//! real paths: job bodies through queue-processor, email bodies through email-sender,
//! schedule events through daily-report, schedule expressions through the parser, templates
//! through the loader (and the schedule runner that `up` builds from them), and SQS requests
//! through the emulator's JSON 1.0 dispatch.
//!
//! Each entry must fail with its exact error text, and lose nothing: an SQS record ends in the
//! DLQ with the reason in `nightshift-error` (never acknowledged without a copy), a schedule
//! event fails the invocation (so the Scheduler retries it and dead-letters it) without leaving
//! anything written, and a rejected SQS request leaves the queue as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use nightshift::batch::{
    ERROR_ATTRIBUTE, ORIGINAL_ID_ATTRIBUTE, RECEIVE_COUNT_ATTRIBUTE, SOURCE_ATTRIBUTE,
};
use nightshift::ports::Retryable;
use nightshift_local::invoke_async::AsyncInvoker;
use nightshift_local::invoker::InProcessInvoker;
use nightshift_local::schedule::{RunnerConfig, ScheduleExpression, ScheduleRunner};
use nightshift_local::sqs::protocol::dispatch;
use nightshift_local::sqs::{OutgoingMessage, SqsEngine};
use nightshift_local::template::{LoadOptions, Template};
use serde::Deserialize;

use crate::support::*;

/// Marker a corpus file carries where its padding goes (see the corpus README).
const PAD_MARKER: &str = "@@PAD@@";
/// Files of the corpus directory that are not corpus entries.
const NOT_ENTRIES: [&str; 3] = ["index.json", "README.md", "valid-template.yaml"];
/// The queue the SQS entries address.
const SQS_QUEUE: &str = "bad-input";
/// What the SQS queue holds before each SQS entry is fed.
const SENTINEL: &str = "sentinel: must survive every bad request";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Feed {
    Job,
    Email,
    Schedule,
    Expression,
    Template,
    Sqs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Stage {
    /// `Template::from_yaml` rejects it.
    #[default]
    Load,
    /// The template loads; `ScheduleRunner::new` (what `nightshift up` builds next) rejects it.
    Schedules,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    file: String,
    feed: Feed,
    /// The exact error text.
    error: String,
    /// SQS only: the operation (`X-Amz-Target: AmazonSQS.<operation>`).
    #[serde(default)]
    operation: Option<String>,
    /// SQS only: the error's `__type`, or for a failed batch entry its `Code`.
    #[serde(default)]
    error_type: Option<String>,
    /// SQS batches only: the request succeeds and this entry id is reported as failed.
    #[serde(default)]
    batch_failed_id: Option<String>,
    /// Pad the file at its marker so the fed text is exactly this many bytes.
    #[serde(default)]
    pad_to: Option<usize>,
    /// Templates only: which step must reject it.
    #[serde(default)]
    stage: Stage,
}

fn corpus_dir() -> PathBuf {
    fixture_path("bad")
}

fn index() -> Vec<Entry> {
    let text = std::fs::read_to_string(corpus_dir().join("index.json")).expect("corpus index");
    serde_json::from_str(&text).expect("corpus index is a list of entries")
}

/// The entries fed through `feed`.
fn entries(feed: Feed) -> Vec<Entry> {
    let found: Vec<Entry> = index().into_iter().filter(|e| e.feed == feed).collect();
    assert!(!found.is_empty(), "no {feed:?} entries in the corpus");
    found
}

/// The text an entry feeds: the file without its final newline (files end with one for
/// editors), padded at the marker with `x` to `pad_to` bytes when asked.
fn input(entry: &Entry) -> String {
    let raw = std::fs::read_to_string(corpus_dir().join(&entry.file))
        .unwrap_or_else(|e| panic!("{}: {e}", entry.file));
    let text = raw.strip_suffix('\n').unwrap_or(&raw).to_string();
    match entry.pad_to {
        None => {
            assert!(
                !text.contains(PAD_MARKER),
                "{}: marker without pad_to",
                entry.file
            );
            text
        }
        Some(size) => {
            let base = text.len() - PAD_MARKER.len();
            assert!(
                text.contains(PAD_MARKER) && size > base,
                "{}: pad_to needs a marker",
                entry.file
            );
            let padded = text.replacen(PAD_MARKER, &"x".repeat(size - base), 1);
            assert_eq!(padded.len(), size);
            padded
        }
    }
}

/// Collects every mismatch so one run shows them all.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn check(&mut self, file: &str, what: &str, expected: &str, actual: &str) {
        if expected != actual {
            self.0.push(format!(
                "{file}: {what}\n    expected: {expected}\n    actual:   {actual}"
            ));
        }
    }

    fn fail(&mut self, file: &str, message: String) {
        self.0.push(format!("{file}: {message}"));
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} mismatches:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

#[test]
fn index_lists_every_corpus_file_once() {
    let listed: Vec<String> = index().into_iter().map(|e| e.file).collect();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a file is listed twice");
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !NOT_ENTRIES.contains(&name.as_str()))
        .collect();
    let listed: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(on_disk, listed, "corpus files and index entries differ");
    for entry in index() {
        assert!(
            !entry.error.is_empty(),
            "{}: empty expected error",
            entry.file
        );
        let sqs_fields = entry.operation.is_some() || entry.error_type.is_some();
        assert_eq!(entry.feed == Feed::Sqs, sqs_fields, "{}", entry.file);
        if entry.feed != Feed::Template {
            assert_eq!(
                entry.stage,
                Stage::Load,
                "{}: stage is for templates",
                entry.file
            );
        }
        if entry.batch_failed_id.is_some() {
            assert_eq!(
                entry.operation.as_deref(),
                Some("SendMessageBatch"),
                "{}",
                entry.file
            );
        }
    }
}

fn attribute<'a>(message: &'a nightshift::adapters::memory::SentMessage, name: &str) -> &'a str {
    message
        .attributes
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.value.as_str())
        .unwrap_or("<absent>")
}

/// Feeds `bad` records (id = file name) plus one valid record through an SQS-triggered
/// handler and checks that each bad one is in `dlq_url` exactly once, byte for byte, with its
/// reason, and that none is left unaccounted for.
fn check_dead_letters(
    world: &World,
    bad: &[(Entry, String)],
    response: &aws_lambda_events::sqs::SqsBatchResponse,
    dlq_url: &str,
) -> Mismatches {
    let mut m = Mismatches::default();
    let failed: Vec<String> = failed_ids(response);
    let dlq = world.queue.sent_to(dlq_url);
    for (entry, body) in bad {
        let copies: Vec<_> = dlq
            .iter()
            .filter(|d| attribute(d, ORIGINAL_ID_ATTRIBUTE) == entry.file)
            .collect();
        let reported = failed.contains(&entry.file);
        match (copies.as_slice(), reported) {
            ([copy], false) => {
                m.check(
                    &entry.file,
                    "nightshift-error",
                    &entry.error,
                    attribute(copy, ERROR_ATTRIBUTE),
                );
                if copy.body != *body {
                    m.fail(&entry.file, "dlq body differs from the record body".into());
                }
                m.check(
                    &entry.file,
                    "source",
                    "arn:aws:sqs:us-east-1:000000000000:nightshift-jobs",
                    attribute(copy, SOURCE_ATTRIBUTE),
                );
                m.check(
                    &entry.file,
                    "receive count",
                    "1",
                    attribute(copy, RECEIVE_COUNT_ATTRIBUTE),
                );
            }
            // A permanent failure is never left to redrive: it must be dead-lettered at once.
            ([], true) => m.fail(&entry.file, "retried instead of dead-lettered".into()),
            ([], false) => m.fail(
                &entry.file,
                "acknowledged without a DLQ copy (processed as valid, or lost)".into(),
            ),
            (copies, _) => m.fail(
                &entry.file,
                format!("{} DLQ copies, reported={reported}", copies.len()),
            ),
        }
    }
    if !failed.is_empty() {
        m.fail(
            "batch",
            format!("unexpected batch item failures {failed:?}"),
        );
    }
    if dlq.len() != bad.len() {
        m.fail(
            "batch",
            format!("{} DLQ messages for {} bad records", dlq.len(), bad.len()),
        );
    }
    m
}

/// Feeds `entries` as one batch, with a valid job, through queue-processor.
async fn feed_jobs(entries: Vec<Entry>) -> Mismatches {
    let world = World::new();
    let bad: Vec<(Entry, String)> = entries
        .into_iter()
        .map(|e| {
            let body = input(&e);
            (e, body)
        })
        .collect();
    // One good job in the same batch: bad records never fail their batch.
    let mut records = vec![record("good", &fixture("jobs/order-placed.json"), 1)];
    records.extend(bad.iter().map(|(e, body)| record(&e.file, body, 1)));
    let response =
        queue_processor::handler(world.queue_processor(), lambda_event(event_of(records)))
            .await
            .unwrap();
    let mut m = check_dead_letters(&world, &bad, &response, JOBS_DLQ_URL);
    let emails = world.queue.sent_to(EMAILS_URL);
    if emails.len() != 1 || !emails[0].body.contains("order-confirmation-job-order-1001") {
        let ids: Vec<&str> = emails.iter().map(|e| e.body.as_str()).collect();
        m.fail(
            "batch",
            format!("only the good job may enqueue an email, got {ids:?}"),
        );
    }
    // Entries that got as far as a claim released it: a fixed job can run after a redrive.
    if world.store.record("job:job-bad-1").is_some() {
        m.fail("batch", "a bad job's idempotency claim was kept".into());
    }
    if world.store.record("job:job-order-1001").is_none() {
        m.fail("batch", "the good job did not complete".into());
    }
    m
}

#[tokio::test]
async fn job_bodies_are_dead_lettered_with_their_exact_reason() {
    feed_jobs(entries(Feed::Job)).await.assert_none();
}

/// Feeds `entries` as one batch, with a valid request, through email-sender.
async fn feed_emails(entries: Vec<Entry>) -> Mismatches {
    let world = World::new();
    let bad: Vec<(Entry, String)> = entries
        .into_iter()
        .map(|e| {
            let body = input(&e);
            (e, body)
        })
        .collect();
    let mut records = vec![record(
        "good",
        &fixture("emails/order-confirmation.json"),
        1,
    )];
    records.extend(bad.iter().map(|(e, body)| record(&e.file, body, 1)));
    let response =
        email_sender::handler(world.email_sender(1000.0), lambda_event(event_of(records)))
            .await
            .unwrap();
    let mut m = check_dead_letters(&world, &bad, &response, EMAILS_DLQ_URL);
    let sent: Vec<Vec<String>> = world.mailer.sent().into_iter().map(|e| e.to).collect();
    if sent != [["ada@example.com"]] {
        m.fail(
            "batch",
            format!("only the good request may be sent, sent to {sent:?}"),
        );
    }
    if world.store.record("email:mail-bad-1").is_some() {
        m.fail("batch", "a bad request's idempotency claim was kept".into());
    }
    m
}

#[tokio::test]
async fn email_bodies_are_dead_lettered_with_their_exact_reason() {
    feed_emails(entries(Feed::Email)).await.assert_none();
}

/// Feeds each of `entries` to daily-report.
async fn feed_schedule_events(entries: Vec<Entry>) -> Mismatches {
    let mut m = Mismatches::default();
    for entry in entries {
        let world = World::new();
        let event: serde_json::Value = serde_json::from_str(&input(&entry))
            .unwrap_or_else(|e| panic!("{}: schedule events are JSON: {e}", entry.file));
        match daily_report::handler(world.daily_report("Europe/Berlin"), lambda_event(event)).await
        {
            Ok(summary) => m.fail(&entry.file, format!("accepted: {summary:?}")),
            Err(err) => {
                m.check(&entry.file, "error", &entry.error, &err.to_string());
                if err.is_retryable() {
                    m.fail(&entry.file, "classified retryable".into());
                }
                let diagnostic = lambda_runtime::Diagnostic::from(err);
                m.check(
                    &entry.file,
                    "error type",
                    "InvalidEvent",
                    &diagnostic.error_type,
                );
            }
        }
        // A function error: the Scheduler retries it, then dead-letters the event. Nothing
        // half-done stays behind.
        if !world.blobs.keys().is_empty() || !world.queue.sent().is_empty() {
            m.fail(&entry.file, "wrote a report or enqueued an email".into());
        }
    }
    m
}

#[tokio::test]
async fn schedule_events_fail_the_invocation_with_their_exact_reason() {
    feed_schedule_events(entries(Feed::Schedule))
        .await
        .assert_none();
}

fn feed_expressions(entries: Vec<Entry>) -> Mismatches {
    let mut m = Mismatches::default();
    for entry in entries {
        match ScheduleExpression::parse(&input(&entry)) {
            Ok(parsed) => m.fail(&entry.file, format!("accepted as {parsed}")),
            Err(err) => m.check(&entry.file, "error", &entry.error, &err.to_string()),
        }
    }
    m
}

#[test]
fn schedule_expressions_are_rejected_with_their_exact_reason() {
    feed_expressions(entries(Feed::Expression)).assert_none();
}

fn load_template(text: &str) -> Result<Template, nightshift_local::template::TemplateError> {
    Template::from_yaml(text, &corpus_dir(), &LoadOptions::default())
}

fn schedule_runner(template: &Template) -> Result<ScheduleRunner, String> {
    let (clock, _manual) = nightshift_local::clock::manual("2026-11-22T00:00:00Z".parse().unwrap());
    let queues = AsyncInvoker::new([], Arc::new(InProcessInvoker::new()), None, clock.clone());
    ScheduleRunner::new(template, queues, None, clock, RunnerConfig::default())
        .map_err(|e| e.to_string())
}

#[test]
fn the_template_baseline_is_valid() {
    // Every template entry is this file with one mistake: the errors come from the mistake.
    let text = std::fs::read_to_string(corpus_dir().join("valid-template.yaml")).unwrap();
    let template = load_template(&text).expect("the baseline loads");
    assert_eq!(template.schedules.len(), 2);
    assert_eq!(template.event_sources.len(), 1);
    schedule_runner(&template).expect("the baseline's schedules are valid");
    // Its CodeUri, relative to the corpus directory, is the real function crate.
    assert!(
        corpus_dir()
            .join("../../../functions/queue-processor/Cargo.toml")
            .is_file()
    );
}

fn feed_templates(entries: Vec<Entry>) -> Mismatches {
    let mut m = Mismatches::default();
    for entry in entries {
        let loaded = load_template(&input(&entry));
        match (entry.stage, loaded) {
            (Stage::Load, Ok(_)) => m.fail(&entry.file, "loaded".into()),
            (Stage::Load, Err(err)) => {
                m.check(&entry.file, "error", &entry.error, &err.to_string())
            }
            (Stage::Schedules, Err(err)) => m.fail(
                &entry.file,
                format!("rejected by the loader already: {err}"),
            ),
            (Stage::Schedules, Ok(template)) => match schedule_runner(&template) {
                Ok(_) => m.fail(&entry.file, "schedule runner accepted it".into()),
                Err(err) => m.check(&entry.file, "error", &entry.error, &err),
            },
        }
    }
    m
}

#[test]
fn templates_are_rejected_with_their_exact_reason() {
    feed_templates(entries(Feed::Template)).assert_none();
}

/// The bodies of every message an engine holds, sorted.
fn bodies(engine: &SqsEngine) -> Vec<String> {
    let mut all: Vec<String> = engine
        .queue_names(None)
        .iter()
        .flat_map(|q| engine.peek_messages(q, usize::MAX).unwrap())
        .map(|m| m.body)
        .collect();
    all.sort();
    all
}

/// Feeds each of `entries` to the SQS dispatch of a fresh engine holding one message.
async fn feed_sqs_requests(entries: Vec<Entry>) -> Mismatches {
    let mut m = Mismatches::default();
    for entry in entries {
        let (clock, _manual) =
            nightshift_local::clock::manual("2026-11-22T00:00:00Z".parse().unwrap());
        let engine = SqsEngine::in_memory(clock);
        engine
            .create_queue(SQS_QUEUE, &BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        engine
            .send_message(SQS_QUEUE, OutgoingMessage::new(SENTINEL))
            .unwrap();
        let operation = entry
            .operation
            .as_deref()
            .expect("sqs entries name their operation");
        let error_type = entry
            .error_type
            .as_deref()
            .expect("sqs entries name their type");
        let result = dispatch(&engine, operation, input(&entry).as_bytes()).await;
        let mut expected_bodies = vec![SENTINEL.to_string()];
        match (&entry.batch_failed_id, result) {
            (None, Ok(response)) => m.fail(&entry.file, format!("accepted: {response}")),
            (None, Err(err)) => {
                m.check(&entry.file, "__type", error_type, err.wire().type_name);
                m.check(&entry.file, "message", &entry.error, &err.aws_message());
                if !err.wire().sender_fault || err.wire().status != 400 {
                    m.fail(
                        &entry.file,
                        format!("not a 400 sender fault: {:?}", err.wire()),
                    );
                }
            }
            (Some(_), Err(err)) => m.fail(&entry.file, format!("whole batch rejected: {err}")),
            (Some(id), Ok(response)) => {
                let failed = &response["Failed"];
                let expected = serde_json::json!([{
                    "Id": id, "SenderFault": true, "Code": error_type, "Message": entry.error,
                }]);
                m.check(
                    &entry.file,
                    "Failed",
                    &expected.to_string(),
                    &failed.to_string(),
                );
                // The other entries of the batch went in.
                let ok = response["Successful"].as_array().map_or(0, Vec::len);
                let request: serde_json::Value = serde_json::from_str(&input(&entry)).unwrap();
                for sent in request["Entries"].as_array().unwrap() {
                    if sent["Id"] != *id {
                        expected_bodies.push(sent["MessageBody"].as_str().unwrap().to_string());
                    }
                }
                if ok != expected_bodies.len() - 1 {
                    m.fail(&entry.file, format!("{ok} successful entries"));
                }
            }
        }
        expected_bodies.sort();
        let held = bodies(&engine);
        if held != expected_bodies {
            m.fail(&entry.file, format!("queue changed: holds {held:?}"));
        }
    }
    m
}

#[tokio::test]
async fn sqs_requests_get_the_exact_aws_error_and_change_nothing() {
    feed_sqs_requests(entries(Feed::Sqs)).await.assert_none();
}
