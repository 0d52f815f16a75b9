//! Record and replay: JSONL traces of the events delivered to functions and their responses.
//!
//! `nightshift record` writes every invocation of a running emulator to a trace
//! ([`TraceRecorder`]); `nightshift replay` feeds a trace's events to the functions again
//! ([`replay`]) and, with `--check`, reports every response that differs from the recorded one
//! ([`diff`]). A trace of real AWS events without responses replays the same way.
//!
//! # Format (version 1)
//!
//! JSON Lines: UTF-8, one JSON object per line; blank lines are ignored. The first line may be
//! a header, marked by `"kind":"header"`:
//!
//! ```json
//! {"v":1,"kind":"header","times":"keep","clock":"manual","clock_start":"2026-11-21T09:30:00Z","source":"nightshift record"}
//! ```
//!
//! Every other line is one invocation, in the order the invocations completed:
//!
//! ```json
//! {"v":1,"seq":0,"function":"nightshift-QueueProcessorFunction","event":{"Records":[]},"outcome":"success","response":{"batchItemFailures":[]},"at":"2026-11-21T09:30:01Z"}
//! ```
//!
//! - `v`: the format version, `1`; other versions are refused.
//! - `seq`: position from 0; optional when reading (the entry's position is used).
//! - `function`: the function's name, as in the template.
//! - `event`: the payload as JSON; with `"raw":true` it is a string holding a payload that was
//!   not JSON, sent verbatim.
//! - `outcome`: `success`, `error`, `init_error`, `timeout`, `crash` or `invoke_error` (see
//!   [`crate::harness::describe`]); absent when no response was recorded, as in a trace of
//!   events only.
//! - `response`: the result (`success`), `{"errorType","errorMessage"}` (`error`,
//!   `init_error`), the exit status (`crash`) or the error text (`invoke_error`); absent for
//!   `timeout` and when nothing was recorded.
//! - `at`: when the invocation started, on the emulator's clock; absent when times are masked.
//!
//! Key order inside `event` and `response` carries no meaning (readers compare JSON values).
//!
//! # Normalisation
//!
//! Two recordings of the same session give the same trace: what the emulator draws at random
//! is replaced by placeholders numbered in order of first appearance in the trace, the same
//! placeholder wherever the same value appears (event and response alike). [`Normalizer`]
//! applies these rules, and applying them twice changes nothing:
//!
//! - SQS records (`eventSource` `aws:sqs`): `messageId` becomes `msg-N` (a redelivered message
//!   keeps its `msg-N`); `receiptHandle` becomes `rh-N`; a `nightshift-original-message-id`
//!   message attribute (a redriven dead letter) is mapped like a `messageId`, and
//!   `md5OfMessageAttributes` is computed again over the mapped attributes. Bodies and other
//!   attributes are never rewritten, so `md5OfBody` stays valid.
//! - Legacy scheduled events (`"detail-type":"Scheduled Event"`): `id` becomes `event-N`.
//! - Any other event: a string under a key named `executionId`, `execution_id` or
//!   `execution-id` (a substituted `<aws.scheduler.execution-id>`) becomes `exec-N`.
//! - Responses: each non-empty `batchItemFailures[].itemIdentifier` is mapped like a
//!   `messageId`, and the list is sorted by it (Lambda reads it as a set); any other string
//!   equal to a value mapped so far takes its placeholder. Request ids are not recorded.
//! - Times ([`TimeMode`]): with `keep`, times stay: on a manual clock with a fixed start they
//!   are the same in every run, and the functions read them (`SentTimestamp` for queue wait,
//!   the scheduled time for the report date). With `mask` (real or accelerated clocks),
//!   `SentTimestamp` and `ApproximateFirstReceiveTimestamp` become `"0"` and `at` is dropped.
//!   Scheduled times (`scheduled_time`, a scheduled event's `time`) always stay: they decide
//!   what a function does. A masked trace replays its masked events, so a response that
//!   depended on a receive timestamp would differ; the nightshift functions only use them for
//!   the latency they store.
//!
//! # Replaying deterministically
//!
//! A replay sends the events one at a time, in trace order, and compares what comes back. The
//! functions keep state (idempotency claims, outcomes, reports): replayed against the store that
//! recorded the trace, a job already done is skipped and a report says `already_done`. A replay
//! must therefore start from fresh state, the state the recording started from: `nightshift
//! replay` runs the functions in a new empty working directory, and [`Sandbox`] gives them an
//! SQS endpoint of their own (the template's queues, no pollers, no schedules), so what they
//! send lands there and triggers nothing. For the same reason a trace meant to be checked is
//! recorded from fresh state too (`nightshift record --fresh`). Invocations that overlapped
//! while recording (two batches racing for one job) replay one after the other and may then
//! answer differently; so may functions that read the system clock where the emulator's
//! matters ([`ReplayOptions::clock`] moves a manual clock along the recorded `at` for those
//! that read the emulator's).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::{info, warn};

use nightshift_contract::record::ORIGINAL_ID_ATTRIBUTE;

use crate::clock::{ClockSpec, SharedClock};
use crate::emulator::{EmulatorError, EmulatorOptions, InvokerChoice, Wrap};
use crate::harness::{Invocation, describe};
use crate::invoker::{InvokeError, InvokeRequest, InvokeResponse, Invoker, Slot};
use crate::runtime::{ProcessInvoker, Runtime};
use crate::sqs::{MessageAttributeValue, SqsConfig, SqsEngine, SqsServer};
use crate::template::{LoadOptions, Template};

/// The trace format version this module reads and writes.
pub const TRACE_VERSION: u32 = 1;

/// What masked SQS timestamps become.
pub const MASKED_TIMESTAMP: &str = "0";

/// The SQS record attributes that hold receive-time clock readings.
const CLOCK_ATTRIBUTES: [&str; 2] = ["SentTimestamp", "ApproximateFirstReceiveTimestamp"];

/// Marks an entry read without a `seq`, until the reader numbers it.
const NO_SEQ: u64 = u64::MAX;

/// Why a trace could not be read, written or replayed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading or writing the trace failed.
    #[error("trace i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A line of the trace is not a valid entry.
    #[error("line {line}: {message}")]
    Line {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Setting up the functions for a replay failed.
    #[error(transparent)]
    App(#[from] EmulatorError),
}

/// Whether clock readings stay in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeMode {
    /// Times stay as recorded (a manual clock with a fixed start: the same in every run).
    #[default]
    Keep,
    /// SQS receive timestamps become [`MASKED_TIMESTAMP`] and `at` is dropped.
    Mask,
}

impl fmt::Display for TimeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeMode::Keep => "keep",
            TimeMode::Mask => "mask",
        })
    }
}

impl std::str::FromStr for TimeMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(TimeMode::Keep),
            "mask" => Ok(TimeMode::Mask),
            other => Err(format!("{other:?} is not a time mode (keep, mask)")),
        }
    }
}

/// How [`Normalizer`] treats what is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NormalizeOptions {
    /// What happens to clock readings.
    pub times: TimeMode,
}

impl NormalizeOptions {
    /// Times kept.
    pub fn keep_times() -> Self {
        NormalizeOptions {
            times: TimeMode::Keep,
        }
    }

    /// Times masked.
    pub fn mask_times() -> Self {
        NormalizeOptions {
            times: TimeMode::Mask,
        }
    }
}

/// The optional first line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// The format version.
    pub v: u32,
    /// Whether times were kept or masked.
    #[serde(default)]
    pub times: TimeMode,
    /// The clock the recording ran on (`manual`, `real`, `x60`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// Where that clock started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_start: Option<DateTime<Utc>>,
    /// What wrote the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl TraceHeader {
    /// A version-1 header with `times` and nothing else.
    pub fn new(times: TimeMode) -> Self {
        TraceHeader {
            v: TRACE_VERSION,
            times,
            clock: None,
            clock_start: None,
            source: None,
        }
    }
}

/// The header as written: `kind` right after `v`, so a reader can tell it from an entry.
#[derive(Serialize)]
struct HeaderLine<'a> {
    v: u32,
    kind: &'static str,
    times: TimeMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock_start: &'a Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: &'a Option<String>,
}

/// One invocation of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// The format version.
    #[serde(default = "default_version")]
    pub v: u32,
    /// Position in the trace, from 0.
    #[serde(default = "no_seq")]
    pub seq: u64,
    /// The function's name.
    pub function: String,
    /// The payload, as JSON (a string holding it verbatim when `raw`).
    pub event: Value,
    /// True when the payload was not JSON: `event` is a string sent as is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
    /// How the invocation ended; `None` when nothing was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The response; `None` when there was none (`timeout`) or nothing was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// When the invocation started, on the emulator's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// The line it was read from, for messages (never written).
    #[serde(skip)]
    pub line: Option<usize>,
}

fn default_version() -> u32 {
    TRACE_VERSION
}

fn no_seq() -> u64 {
    NO_SEQ
}

impl TraceEntry {
    /// An event for `function` with nothing recorded about its response.
    pub fn event(function: impl Into<String>, event: Value) -> Self {
        TraceEntry {
            v: TRACE_VERSION,
            seq: 0,
            function: function.into(),
            event,
            raw: false,
            outcome: None,
            response: None,
            at: None,
            line: None,
        }
    }

    /// The same entry with a recorded outcome and response (`null` is stored as no response).
    pub fn with_response(mut self, outcome: impl Into<String>, response: Value) -> Self {
        self.outcome = Some(outcome.into());
        self.response = (!response.is_null()).then_some(response);
        self
    }

    /// The payload bytes to invoke with.
    pub fn payload(&self) -> Vec<u8> {
        match (&self.event, self.raw) {
            (Value::String(text), true) => text.clone().into_bytes(),
            (event, _) => serde_json::to_vec(event).unwrap_or_default(),
        }
    }
}

/// A whole trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// The header, when the trace has one.
    pub header: Option<TraceHeader>,
    /// The invocations, in order.
    pub entries: Vec<TraceEntry>,
}

impl Trace {
    /// The time mode of the trace (its header's, else `keep`).
    pub fn times(&self) -> TimeMode {
        self.header.as_ref().map(|h| h.times).unwrap_or_default()
    }

    /// The trace as JSONL text.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        let mut writer = TraceWriter::new(&mut out);
        if let Some(header) = &self.header {
            // Writing to a Vec cannot fail.
            let _ = writer.write_header(header);
        }
        for entry in &self.entries {
            let _ = writer.write_entry(entry);
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Reads a JSONL trace. A line that is not a valid entry is an error naming its line number.
pub fn read_trace(reader: impl BufRead) -> Result<Trace, TraceError> {
    let mut trace = Trace::default();
    let mut seen_line = false;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let bad = |message: String| TraceError::Line {
            line: number,
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Value::Object(fields) = &value else {
            return Err(bad("not a JSON object".into()));
        };
        let version = fields.get("v").and_then(Value::as_u64);
        if let Some(v) = version
            && v != u64::from(TRACE_VERSION)
        {
            return Err(bad(format!(
                "trace version {v} is not supported (this nightshift reads version {TRACE_VERSION})"
            )));
        }
        if fields.get("kind").and_then(Value::as_str) == Some("header") {
            if seen_line {
                return Err(bad("a header may only be the first line".into()));
            }
            let header: TraceHeader =
                serde_json::from_value(value).map_err(|e| bad(format!("bad header: {e}")))?;
            trace.header = Some(header);
            seen_line = true;
            continue;
        }
        seen_line = true;
        let mut entry: TraceEntry =
            serde_json::from_value(value).map_err(|e| bad(format!("bad entry: {e}")))?;
        if entry.function.is_empty() {
            return Err(bad("empty function name".into()));
        }
        if entry.raw && !entry.event.is_string() {
            return Err(bad("a raw event must be a string".into()));
        }
        if entry.seq == NO_SEQ {
            entry.seq = trace.entries.len() as u64;
        }
        entry.line = Some(number);
        trace.entries.push(entry);
    }
    Ok(trace)
}

/// Reads the trace at `path`.
pub fn load_trace(path: &Path) -> Result<Trace, TraceError> {
    let file = std::fs::File::open(path)?;
    read_trace(std::io::BufReader::new(file))
}

/// Writes a trace line by line, flushing each line (a killed recording loses nothing).
pub struct TraceWriter<W: Write> {
    out: W,
}

impl<W: Write> TraceWriter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        TraceWriter { out }
    }

    /// Writes the header line.
    pub fn write_header(&mut self, header: &TraceHeader) -> Result<(), TraceError> {
        self.write_line(&HeaderLine {
            v: header.v,
            kind: "header",
            times: header.times,
            clock: &header.clock,
            clock_start: &header.clock_start,
            source: &header.source,
        })
    }

    /// Writes one entry line, its fields in the documented order.
    pub fn write_entry(&mut self, entry: &TraceEntry) -> Result<(), TraceError> {
        self.write_line(entry)
    }

    fn write_line(&mut self, value: &impl Serialize) -> Result<(), TraceError> {
        serde_json::to_writer(&mut self.out, value).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }

    /// The writer, back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Placeholders for one kind of id, numbered from 1 in order of first appearance.
#[derive(Debug, Default, Clone)]
struct IdMap {
    map: HashMap<String, String>,
    next: u64,
}

impl IdMap {
    fn map(&mut self, prefix: &str, raw: &str) -> String {
        if let Some(known) = self.map.get(raw) {
            return known.clone();
        }
        self.next += 1;
        let placeholder = format!("{prefix}-{}", self.next);
        self.map.insert(raw.to_owned(), placeholder.clone());
        placeholder
    }
}

/// Applies the normalisation rules of the [module docs](self) across one trace: the
/// placeholders depend on everything seen before, so one normalizer serves one trace, event
/// then response, in trace order.
#[derive(Debug, Default, Clone)]
pub struct Normalizer {
    options: NormalizeOptions,
    messages: IdMap,
    receipts: IdMap,
    events: IdMap,
    executions: IdMap,
}

impl Normalizer {
    /// A normalizer that has seen nothing yet.
    pub fn new(options: NormalizeOptions) -> Self {
        Normalizer {
            options,
            ..Normalizer::default()
        }
    }

    /// The options it applies.
    pub fn options(&self) -> NormalizeOptions {
        self.options
    }

    /// The placeholder a raw message id got, if it was seen.
    pub fn message_id(&self, raw: &str) -> Option<&str> {
        self.messages.map.get(raw).map(String::as_str)
    }

    /// A normalised copy of an event.
    pub fn event(&mut self, event: &Value) -> Value {
        let mut event = event.clone();
        let sqs = match event.get_mut("Records").and_then(Value::as_array_mut) {
            Some(records) => {
                let mut any = false;
                for record in records.iter_mut() {
                    if record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs") {
                        self.sqs_record(record);
                        any = true;
                    }
                }
                any
            }
            None => false,
        };
        if sqs {
            return event;
        }
        let scheduled = event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
        if scheduled && let Some(id) = event.get_mut("id") {
            if let Value::String(raw) = id {
                *raw = self.events.map("event", raw);
            }
            return event;
        }
        self.execution_ids(&mut event);
        event
    }

    fn sqs_record(&mut self, record: &mut Value) {
        let Some(fields) = record.as_object_mut() else {
            return;
        };
        if let Some(Value::String(id)) = fields.get_mut("messageId") {
            *id = self.messages.map("msg", id);
        }
        if let Some(Value::String(handle)) = fields.get_mut("receiptHandle") {
            *handle = self.receipts.map("rh", handle);
        }
        if self.options.times == TimeMode::Mask
            && let Some(Value::Object(attributes)) = fields.get_mut("attributes")
        {
            for name in CLOCK_ATTRIBUTES {
                if let Some(value) = attributes.get_mut(name) {
                    *value = Value::from(MASKED_TIMESTAMP);
                }
            }
        }
        let mut remapped = false;
        if let Some(Value::Object(attributes)) = fields.get_mut("messageAttributes")
            && let Some(Value::String(original)) = attributes
                .get_mut(ORIGINAL_ID_ATTRIBUTE)
                .and_then(|a| a.get_mut("stringValue"))
        {
            let mapped = self.messages.map("msg", original);
            remapped = mapped != *original;
            *original = mapped;
        }
        if remapped
            && fields.contains_key("md5OfMessageAttributes")
            && let Some(Value::Object(attributes)) = fields.get("messageAttributes")
            && let Some(md5) = md5_of_event_attributes(attributes)
        {
            fields.insert("md5OfMessageAttributes".into(), Value::from(md5));
        }
    }

    fn execution_ids(&mut self, value: &mut Value) {
        match value {
            Value::Object(fields) => {
                // Keys in sorted order, so the numbering does not depend on how the map
                // iterates (serde_json's `preserve_order` or not).
                let mut keys: Vec<String> = fields.keys().cloned().collect();
                keys.sort_unstable();
                for key in keys {
                    let Some(child) = fields.get_mut(&key) else {
                        continue;
                    };
                    match child {
                        Value::String(raw) if is_execution_id_key(&key) => {
                            *raw = self.executions.map("exec", raw);
                        }
                        _ => self.execution_ids(child),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.execution_ids(item);
                }
            }
            _ => {}
        }
    }

    /// A normalised copy of a response.
    pub fn response(&mut self, response: &Value) -> Value {
        let mut response = response.clone();
        if let Some(failures) = response
            .get_mut("batchItemFailures")
            .and_then(Value::as_array_mut)
        {
            for failure in failures.iter_mut() {
                if let Some(Value::String(id)) = failure.get_mut("itemIdentifier")
                    && !id.is_empty()
                {
                    *id = self.messages.map("msg", id);
                }
            }
            failures.sort_by(|a, b| {
                let id = |v: &Value| {
                    v.get("itemIdentifier")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                id(a).cmp(&id(b))
            });
        }
        self.known_strings(&mut response);
        response
    }

    fn known_strings(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                let known = [
                    &self.messages,
                    &self.receipts,
                    &self.events,
                    &self.executions,
                ]
                .into_iter()
                .find_map(|ids| ids.map.get(text.as_str()));
                if let Some(placeholder) = known {
                    *text = placeholder.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.known_strings(v)),
            Value::Object(fields) => fields.values_mut().for_each(|v| self.known_strings(v)),
            _ => {}
        }
    }

    /// A normalised copy of an entry: its event, its response and its time.
    pub fn entry(&mut self, entry: &TraceEntry) -> TraceEntry {
        let mut out = entry.clone();
        if !entry.raw {
            out.event = self.event(&entry.event);
        }
        out.response = entry.response.as_ref().map(|r| self.response(r));
        if self.options.times == TimeMode::Mask {
            out.at = None;
        }
        out
    }
}

/// Whether a key names an execution id, in any of its spellings (`executionId`,
/// `execution_id`, `Execution-Id`, ...).
fn is_execution_id_key(key: &str) -> bool {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .eq("executionid".chars())
}

/// The `md5OfMessageAttributes` of an SQS record's `messageAttributes`, as SQS computes it.
fn md5_of_event_attributes(attributes: &Map<String, Value>) -> Option<String> {
    let mut parsed = BTreeMap::new();
    for (name, value) in attributes {
        let data_type = value.get("dataType").and_then(Value::as_str)?.to_owned();
        let string_value = value
            .get("stringValue")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let binary_value = match value.get("binaryValue").and_then(Value::as_str) {
            Some(b64) => Some(base64::engine::general_purpose::STANDARD.decode(b64).ok()?),
            None => None,
        };
        parsed.insert(
            name.clone(),
            MessageAttributeValue {
                data_type,
                string_value,
                binary_value,
            },
        );
    }
    crate::sqs::md5::md5_of_attributes(&parsed)
}

/// Normalises the invocations a [`crate::harness::Harness`] recorded into trace entries, in
/// order of `seq`.
pub fn entries_from_invocations(
    invocations: &[Invocation],
    options: NormalizeOptions,
) -> Vec<TraceEntry> {
    let mut sorted: Vec<&Invocation> = invocations.iter().collect();
    sorted.sort_by_key(|i| i.seq);
    let mut normalizer = Normalizer::new(options);
    sorted
        .into_iter()
        .enumerate()
        .map(|(seq, i)| {
            let mut entry = TraceEntry::event(i.function.clone(), i.event.clone())
                .with_response(i.outcome.clone(), i.response.clone());
            entry.seq = seq as u64;
            entry.at = Some(i.at);
            normalizer.entry(&entry)
        })
        .collect()
}

/// One difference between a recorded and a replayed response.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// Where: `outcome`, or a JSON path into the response (`$.batchItemFailures[0]`).
    pub path: String,
    /// The recorded value; `None` when it was absent.
    pub expected: Option<Value>,
    /// The replayed value; `None` when it is absent.
    pub actual: Option<Value>,
}

/// Longest rendering of a value in a difference, in characters.
const SHOWN_CHARS: usize = 300;

fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{cut}…")
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.expected, &self.actual) {
            (Some(e), Some(a)) => write!(f, "{}: expected {}, got {}", self.path, show(e), show(a)),
            (Some(e), None) => write!(f, "{}: expected {}, missing", self.path, show(e)),
            (None, Some(a)) => write!(f, "{}: unexpected {}", self.path, show(a)),
            (None, None) => write!(f, "{}: differs", self.path),
        }
    }
}

/// Every place where `actual` differs from `expected`, with its JSON path: objects key by
/// key, arrays index by index, anything else by value.
pub fn diff(expected: &Value, actual: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_at("$".to_owned(), expected, actual, &mut out);
    out
}

fn child_path(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::from(key))
    }
}

fn diff_at(path: String, expected: &Value, actual: &Value, out: &mut Vec<Difference>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                let child = child_path(&path, key);
                match a.get(key) {
                    Some(av) => diff_at(child, ev, av, out),
                    None => out.push(Difference {
                        path: child,
                        expected: Some(ev.clone()),
                        actual: None,
                    }),
                }
            }
            for (key, av) in a {
                if !e.contains_key(key) {
                    out.push(Difference {
                        path: child_path(&path, key),
                        expected: None,
                        actual: Some(av.clone()),
                    });
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for i in 0..e.len().max(a.len()) {
                let child = format!("{path}[{i}]");
                match (e.get(i), a.get(i)) {
                    (Some(ev), Some(av)) => diff_at(child, ev, av, out),
                    (ev, av) => out.push(Difference {
                        path: child,
                        expected: ev.cloned(),
                        actual: av.cloned(),
                    }),
                }
            }
        }
        _ if expected == actual => {}
        _ => out.push(Difference {
            path,
            expected: Some(expected.clone()),
            actual: Some(actual.clone()),
        }),
    }
}

/// How [`replay`] runs.
#[derive(Clone, Default)]
pub struct ReplayOptions {
    /// Compare each response with the recorded one.
    pub check: bool,
    /// Replay only this function's events.
    pub function: Option<String>,
    /// The normalisation applied to responses (the trace header's time mode).
    pub normalize: NormalizeOptions,
    /// A manual clock moved to each entry's `at` before it is sent (never backwards), so that
    /// functions reading the emulator's clock see the recorded time.
    pub clock: Option<SharedClock>,
}

/// How one replayed response compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Same outcome and response as recorded.
    Matched,
    /// Something differs.
    Differed,
    /// Not compared: nothing was recorded, or no check was asked for.
    Unchecked,
}

/// One replayed invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayResult {
    /// The entry's `seq`.
    pub seq: u64,
    /// The line it came from, if read from a file.
    pub line: Option<usize>,
    /// The function.
    pub function: String,
    /// How the replayed invocation ended.
    pub outcome: String,
    /// Its normalised response.
    pub response: Value,
    /// The verdict.
    pub verdict: Verdict,
    /// What differs (empty unless [`Verdict::Differed`]).
    pub differences: Vec<Difference>,
}

impl ReplayResult {
    fn location(&self) -> String {
        match self.line {
            Some(line) => format!("line {line} (seq {})", self.seq),
            None => format!("seq {}", self.seq),
        }
    }
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayReport {
    /// One result per replayed entry, in order.
    pub results: Vec<ReplayResult>,
    /// Entries left out by [`ReplayOptions::function`].
    pub skipped: usize,
}

impl ReplayReport {
    /// Entries replayed.
    pub fn replayed(&self) -> usize {
        self.results.len()
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }

    /// Responses equal to the recorded ones.
    pub fn matched(&self) -> usize {
        self.count(Verdict::Matched)
    }

    /// Responses that differ.
    pub fn differed(&self) -> usize {
        self.count(Verdict::Differed)
    }

    /// Responses not compared.
    pub fn unchecked(&self) -> usize {
        self.count(Verdict::Unchecked)
    }

    /// True when nothing differs.
    pub fn is_clean(&self) -> bool {
        self.differed() == 0
    }

    /// `replayed=N matched=M differed=K unchecked=U skipped=S`.
    pub fn summary(&self) -> String {
        format!(
            "replayed={} matched={} differed={} unchecked={} skipped={}",
            self.replayed(),
            self.matched(),
            self.differed(),
            self.unchecked(),
            self.skipped
        )
    }

    /// One line per difference: where (line, seq), which function, the JSON path, expected
    /// and actual values.
    pub fn mismatches(&self) -> String {
        let mut out = String::new();
        for result in self
            .results
            .iter()
            .filter(|r| r.verdict == Verdict::Differed)
        {
            for difference in &result.differences {
                out.push_str(&format!(
                    "{} {}: {difference}\n",
                    result.location(),
                    result.function
                ));
            }
        }
        out
    }
}

/// Sends each event of `entries` to its function through `invoker`, one at a time and in
/// order, and normalises each response as the recording did. With
/// [`ReplayOptions::check`], compares every entry that has a recorded outcome with what came
/// back. The functions must start from the state the recording started from (see the
/// [module docs](self)).
pub async fn replay(
    invoker: &dyn Invoker,
    entries: &[TraceEntry],
    options: &ReplayOptions,
) -> ReplayReport {
    let mut normalizer = Normalizer::new(options.normalize);
    let mut report = ReplayReport::default();
    for entry in entries {
        // Every event teaches the normalizer its ids, replayed or not, so responses get the
        // placeholders the recording gave them.
        if !entry.raw {
            let _ = normalizer.event(&entry.event);
        }
        let expected = entry.outcome.as_ref().map(|outcome| {
            (
                outcome.clone(),
                entry.response.as_ref().map(|r| normalizer.response(r)),
            )
        });
        if options
            .function
            .as_ref()
            .is_some_and(|f| *f != entry.function)
        {
            report.skipped += 1;
            continue;
        }
        if let (Some(clock), Some(at)) = (&options.clock, entry.at)
            && let Some(manual) = clock.as_manual()
            && at > clock.now()
        {
            let _ = manual.set(at);
        }
        let result = invoker
            .invoke(InvokeRequest::new(entry.function.clone(), entry.payload()))
            .await;
        let (outcome, response) = describe(&result);
        let response = normalizer.response(&response);
        let (verdict, differences) = match (&expected, options.check) {
            (Some((expected_outcome, expected_response)), true) => {
                let mut differences = Vec::new();
                if *expected_outcome != outcome {
                    differences.push(Difference {
                        path: "outcome".into(),
                        expected: Some(Value::from(expected_outcome.clone())),
                        actual: Some(Value::from(outcome.clone())),
                    });
                }
                let expected_response = expected_response.clone().unwrap_or(Value::Null);
                differences.extend(diff(&expected_response, &response));
                if differences.is_empty() {
                    (Verdict::Matched, differences)
                } else {
                    (Verdict::Differed, differences)
                }
            }
            _ => (Verdict::Unchecked, Vec::new()),
        };
        report.results.push(ReplayResult {
            seq: entry.seq,
            line: entry.line,
            function: entry.function.clone(),
            outcome,
            response,
            verdict,
            differences,
        });
    }
    report
}

struct RecorderState {
    writer: TraceWriter<Box<dyn Write + Send>>,
    normalizer: Normalizer,
    next_seq: u64,
    error: Option<String>,
}

/// Wraps an invoker and appends every invocation, normalised, to a trace as it completes.
pub struct TraceRecorder {
    inner: Arc<dyn Invoker>,
    clock: OnceLock<SharedClock>,
    state: Mutex<RecorderState>,
}

impl TraceRecorder {
    /// Records what goes through `inner` to `writer` (whose header, if any, is written already).
    pub fn new(
        inner: Arc<dyn Invoker>,
        writer: TraceWriter<Box<dyn Write + Send>>,
        options: NormalizeOptions,
    ) -> Self {
        TraceRecorder {
            inner,
            clock: OnceLock::new(),
            state: Mutex::new(RecorderState {
                writer,
                normalizer: Normalizer::new(options),
                next_seq: 0,
                error: None,
            }),
        }
    }

    /// Stamps entries with this clock's time (the emulator's); the system clock until set.
    pub fn set_clock(&self, clock: SharedClock) {
        let _ = self.clock.set(clock);
    }

    /// Invocations written so far.
    pub fn recorded(&self) -> u64 {
        self.lock().next_seq
    }

    /// Flushes the trace; fails if any write failed since the recording began.
    pub fn flush(&self) -> Result<(), TraceError> {
        let mut state = self.lock();
        if let Some(error) = &state.error {
            return Err(TraceError::Io(std::io::Error::other(error.clone())));
        }
        state.writer.out.flush()?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderState> {
        // A panic while holding the lock leaves whole lines behind: the state stays usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(
        &self,
        function: String,
        payload: &[u8],
        at: DateTime<Utc>,
        result: &Result<InvokeResponse, InvokeError>,
    ) {
        let (event, raw) = match serde_json::from_slice::<Value>(payload) {
            Ok(event) => (event, false),
            Err(_) => (
                Value::String(String::from_utf8_lossy(payload).into_owned()),
                true,
            ),
        };
        let (outcome, response) = describe(result);
        let mut entry = TraceEntry::event(function, event).with_response(outcome, response);
        entry.raw = raw;
        entry.at = Some(at);
        let mut state = self.lock();
        entry.seq = state.next_seq;
        let entry = state.normalizer.entry(&entry);
        match state.writer.write_entry(&entry) {
            Ok(()) => state.next_seq += 1,
            Err(e) => {
                if state.error.is_none() {
                    warn!(error = %e, "cannot write the trace");
                }
                state.error = Some(e.to_string());
            }
        }
    }
}

impl Invoker for TraceRecorder {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        self.invoke_in(Slot::unlimited(), req)
    }

    fn reserve<'a>(&'a self, function: &'a str) -> BoxFuture<'a, Result<Slot, InvokeError>> {
        self.inner.reserve(function)
    }

    fn invoke_in(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        let at = self.clock.get().map(|c| c.now()).unwrap_or_else(Utc::now);
        Box::pin(async move {
            let function = req.function.clone();
            let payload = req.payload.clone();
            let result = self.inner.invoke_in(slot, req).await;
            self.record(function, &payload, at, &result);
            result
        })
    }
}

/// Where [`recording_wrap`] leaves the recorder once the emulator has built it.
pub type RecorderSlot = Arc<OnceLock<Arc<TraceRecorder>>>;

/// A [`Wrap`] for [`crate::emulator::Emulator::start_wrapped`] that records every invocation to
/// `writer`; the recorder appears in the slot when the emulator wraps its invoker.
pub fn recording_wrap(
    writer: TraceWriter<Box<dyn Write + Send>>,
    options: NormalizeOptions,
) -> (Wrap, RecorderSlot) {
    let slot: RecorderSlot = Arc::default();
    let filled = slot.clone();
    let wrap: Wrap = Box::new(move |inner: Arc<dyn Invoker>| -> Arc<dyn Invoker> {
        let recorder = Arc::new(TraceRecorder::new(inner, writer, options));
        let _ = filled.set(recorder.clone());
        recorder
    });
    (wrap, slot)
}

/// Where a replay runs: the template's queues on an SQS endpoint of their own (no pollers, no
/// schedules: what the functions send lands there and triggers nothing) and the functions,
/// reached like `nightshift up` reaches them.
pub struct Sandbox {
    template: Template,
    engine: SqsEngine,
    clock: SharedClock,
    server: Option<SqsServer>,
    runtime: Option<Runtime>,
    invoker: Arc<dyn Invoker>,
}

impl Sandbox {
    /// Starts the endpoint on `options.addr` and the functions `options.invoker` names (or
    /// `invoker`, for in-process functions), running in `options.work_dir`. Queues live in
    /// memory (`state_dir` is ignored) on a manual clock at `options.clock_start`.
    pub async fn start(
        options: &EmulatorOptions,
        invoker: Option<Arc<dyn Invoker>>,
    ) -> Result<Sandbox, TraceError> {
        let clock = ClockSpec::Manual.build(options.clock_start);
        let engine = SqsEngine::new(
            SqsConfig {
                region: options.region.clone(),
                ..SqsConfig::default()
            },
            clock.clone(),
        )
        .map_err(EmulatorError::from)?;
        let server = crate::sqs::serve(engine.clone(), options.addr)
            .await
            .map_err(|e| EmulatorError::Setup(format!("cannot serve sqs: {e}")))?;
        let endpoint = server.endpoint_url();
        let template = Template::load(
            &options.template,
            &LoadOptions {
                env_file: options.env_file.clone(),
                port: server.local_addr().port(),
                region: options.region.clone(),
                stack_name: options.stack_name.clone(),
                ..LoadOptions::default()
            },
        )
        .map_err(EmulatorError::from)?;
        crate::emulator::create_queues(&engine, &template).map_err(EmulatorError::from)?;
        let mut runtime = None;
        let invoker: Arc<dyn Invoker> = match (invoker, &options.invoker) {
            (Some(invoker), _) => invoker,
            (None, InvokerChoice::Remote(url)) => crate::emulator::remote_by_binary(url, &template),
            (None, InvokerChoice::Process { release, build }) => {
                let rt = crate::emulator::process_runtime(
                    options,
                    &template,
                    &endpoint,
                    (*release, *build),
                    &[],
                )
                .await?;
                runtime = Some(rt.clone());
                Arc::new(ProcessInvoker::new(rt))
            }
        };
        info!(%endpoint, functions = template.functions.len(), "replay sandbox up");
        Ok(Sandbox {
            template,
            engine,
            clock,
            server: Some(server),
            runtime,
            invoker,
        })
    }

    /// The SQS endpoint the functions use (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.engine.endpoint_url()
    }

    /// The queues the functions send to.
    pub fn engine(&self) -> &SqsEngine {
        &self.engine
    }

    /// The manual clock of the queues; pass it as [`ReplayOptions::clock`].
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The loaded template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The invoker to replay through.
    pub fn invoker(&self) -> Arc<dyn Invoker> {
        self.invoker.clone()
    }

    /// Stops the functions (SIGTERM, then SIGKILL after `grace`) and the endpoint.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(rt) = &self.runtime {
            rt.shutdown(grace).await;
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("endpoint", &self.endpoint())
            .field("functions", &self.template.functions.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(child_path("$", "batchItemFailures"), "$.batchItemFailures");
        assert_eq!(child_path("$", "detail-type"), "$[\"detail-type\"]");
        assert_eq!(child_path("$", "0x"), "$[\"0x\"]");
    }

    #[test]
    fn long_values_are_cut_when_shown() {
        let long = Value::from("x".repeat(1000));
        let shown = show(&long);
        assert_eq!(shown.chars().count(), SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
    }
}
