//! logs: the functions' log lines as the emulator keeps, serves and prints them.
//!
//! A [`LogRecord`] is one line of a function's stdout or stderr, or one of the runtime's own
//! platform lines (`START`, `END`, `REPORT`), with the function, the instance and the request id
//! the instance held when the line was read. The invocation history keeps them per invocation,
//! the control endpoint streams them (`nightshift logs`), and the terminal renders them
//! ([`render`]: for people or as JSON; [`terminal_sink`]: every line to stdout).

pub mod render;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use render::{render_human, render_json};

use crate::runtime::{LogLine, LogSink, LogStream};

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

/// How the functions' log lines (and the emulator's own log) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people ([`render_human`]); `START` and `END` only when the emulator's log is at
    /// debug (`NIGHTSHIFT_LOG=debug`).
    Human {
        /// ANSI colours.
        color: bool,
    },
    /// One JSON object per line ([`render_json`]), for machines.
    Json,
    /// Through `tracing` (target `nightshift::function`), as events of whatever subscriber
    /// the process has: what tests and programs embedding the emulator want.
    Tracing,
}

impl LogFormat {
    /// For a terminal on stdout, [`LogFormat::Human`] (coloured unless `NO_COLOR` is set);
    /// for a file or a pipe, [`LogFormat::Json`].
    pub fn detect() -> Self {
        if std::io::stdout().is_terminal() {
            LogFormat::human()
        } else {
            LogFormat::Json
        }
    }

    /// [`LogFormat::Human`], coloured when stdout is a terminal and `NO_COLOR` is not set.
    pub fn human() -> Self {
        LogFormat::Human {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

impl Default for LogFormat {
    fn default() -> Self {
        LogFormat::detect()
    }
}

/// A sink that writes every line to stdout in `format`, one write per line under the lock
/// (lines of concurrent functions never interleave); [`LogFormat::Tracing`] forwards them
/// through `tracing` instead ([`crate::runtime::tracing_log_sink`]). Write errors (a closed
/// pipe) are ignored: the functions keep running.
pub fn terminal_sink(format: LogFormat) -> LogSink {
    match format {
        LogFormat::Tracing => crate::runtime::tracing_log_sink(),
        LogFormat::Json => Arc::new(|line: &LogLine<'_>| {
            write_line(&render_json(&LogRecord::from_line(line)));
        }),
        LogFormat::Human { color } => Arc::new(move |line: &LogLine<'_>| {
            let record = LogRecord::from_line(line);
            if render::is_quiet(&record)
                && !tracing::enabled!(target: "nightshift::function", tracing::Level::DEBUG)
            {
                return;
            }
            write_line(&render_human(&record, color));
        }),
    }
}

/// Writes `text` and a line ending to stdout in one write, over a progress bar if one is
/// drawn ([`crate::progress`]).
fn write_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 8);
    line.push_str(crate::progress::clear_for_line());
    line.push_str(text);
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}
