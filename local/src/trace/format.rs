//! The trace format (see the [module docs](super)): the header and entry lines, a whole
//! [`Trace`], reading one ([`read_trace`], [`load_trace`]) and writing one line by line
//! ([`TraceWriter`]).

use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TraceError;

/// The trace format version this module reads and writes.
pub const TRACE_VERSION: u32 = 1;

/// What masked SQS timestamps become.
pub const MASKED_TIMESTAMP: &str = "0";

/// Marks an entry read without a `seq`, until the reader numbers it.
const NO_SEQ: u64 = u64::MAX;

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

/// How [`Normalizer`](super::Normalizer) treats what is not an id.
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
    pub(super) out: W,
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
