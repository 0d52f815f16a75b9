//! logs: the functions' log lines as the emulator keeps, serves and prints them.
//!
//! A [`LogRecord`] is one line of a function's stdout or stderr, or one of the runtime's own
//! platform lines (`START`, `END`, `REPORT`), with the function, the instance and the request id
//! the instance held when the line was read. The invocation history keeps them per invocation,
//! the control endpoint streams them (`nightshift logs`), and the terminal renders them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::runtime::{LogLine, LogStream};

/// One log line, owned, as the emulator keeps and serves it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogRecord {
    /// Wall-clock time the line was read (log lines are real-time events, not clock events).
    pub time: DateTime<Utc>,
    /// The function's name.
    pub function: String,
    /// The instance that wrote it.
    pub instance: u64,
    /// The request id the instance held when the line was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its line ending.
    pub line: String,
}

impl LogRecord {
    /// The owned record of a line read now.
    pub fn from_line(line: &LogLine<'_>) -> Self {
        LogRecord {
            time: Utc::now(),
            function: line.function.to_owned(),
            instance: line.instance,
            request_id: line.request_id.map(str::to_owned),
            stream: line.stream,
            line: line.line.to_owned(),
        }
    }
}

/// The record as one plain line: `time function request-id line` (the terminal's renderer
/// does more; this is what `nightshift logs` prints to a pipe).
pub fn plain(record: &LogRecord) -> String {
    format!(
        "{} {} {} {}",
        record
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        record.function,
        record.request_id.as_deref().unwrap_or("-"),
        record.line
    )
}
