//! How a [`LogRecord`] reads: parsed ([`parse`]) into what the function said (level, message,
//! fields) or what the platform reported (`START`, `END`, `REPORT`, `INIT_REPORT`), then
//! rendered for people ([`render_human`]) or for machines ([`render_json`]).
//!
//! The functions log through `lambda_runtime`'s tracing subscriber: JSON objects
//! (`{"level":"INFO","fields":{"message":..},"span":..,"spans":[..]}`) when
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (the template's `LoggingConfig.LogFormat`), else tracing's text
//! format with ANSI escapes (` INFO span{k=v}: message k=v`). Both are parsed the same way;
//! any other line is kept as its text.

use serde_json::Value;

use super::LogRecord;
use crate::runtime::LogStream;

/// The stack name in front of the template's function names (`nightshift-QueueProcessorFunction`),
/// dropped for display.
pub const STACK_PREFIX: &str = "nightshift-";

/// Span fields left out of the human rendering: the request id is the record's own, the X-Ray
/// trace id is noise on a terminal (both stay in the JSON rendering).
const HIDDEN_SPAN_FIELDS: [&str; 2] = ["requestId", "xrayTraceId"];

/// A log line, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Something the function (or, for the runtime's own errors, the platform) said.
    Event(Event),
    /// The platform's `START` line of an invocation.
    Start,
    /// The platform's `END` line of an invocation.
    End,
    /// The platform's `REPORT` (`init: false`) or `INIT_REPORT` (`init: true`) line.
    Report(Report),
}

/// A function's log event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// `TRACE` … `ERROR`, when the line says.
    pub level: Option<String>,
    /// The message (the whole text of a line that is no tracing event).
    pub message: String,
    /// The event's fields, in order, without the message.
    pub fields: Vec<(String, Value)>,
    /// The fields of the spans the event is in, outermost first.
    pub span: Vec<(String, Value)>,
}

/// The numbers of a `REPORT` or `INIT_REPORT` line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// `INIT_REPORT` (an init that failed or timed out) rather than `REPORT`.
    pub init: bool,
    /// `Duration`, ms.
    pub duration_ms: Option<f64>,
    /// `Billed Duration`, ms.
    pub billed_duration_ms: Option<f64>,
    /// `Memory Size`, MB.
    pub memory_size_mb: Option<f64>,
    /// `Max Memory Used`, MB.
    pub max_memory_used_mb: Option<f64>,
    /// `Init Duration`, ms (cold starts).
    pub init_duration_ms: Option<f64>,
    /// `Status` (`timeout`, `error`), absent on success.
    pub status: Option<String>,
    /// `Error Type`.
    pub error_type: Option<String>,
}

/// What `record`'s line says.
pub fn parse(record: &LogRecord) -> Parsed {
    let line = record.line.as_str();
    if record.stream == LogStream::Platform {
        return parse_platform(line, record.request_id.as_deref());
    }
    if let Some(event) = parse_json(line).or_else(|| parse_text(line)) {
        return Parsed::Event(event);
    }
    Parsed::Event(Event {
        message: strip_ansi(line),
        ..Event::default()
    })
}

/// `record` as one line for a terminal, without its line ending: time, function (short name,
/// coloured per function when `color`), level, message and fields as `key=value`; a `REPORT`
/// as `REPORT queue-processor 7.6 ms (init 48 ms) 25 MB`.
pub fn render_human(record: &LogRecord, color: bool) -> String {
    let paint = Paint(color);
    let time = paint.dim(&record.time.format("%H:%M:%S%.3f").to_string());
    let name = short_name(&record.function);
    let function = paint.fg(function_color(&record.function), &name);
    match parse(record) {
        Parsed::Start => format!("{time} {} {function}", paint.dim("START")),
        Parsed::End => format!("{time} {} {function}", paint.dim("END")),
        Parsed::Report(report) => {
            let word = if report.init { "INIT_REPORT" } else { "REPORT" };
            let mut out = format!("{time} {} {function} {}", paint.dim(word), report.compact());
            if let Some(status) = &report.status {
                let status = match &report.error_type {
                    Some(kind) => format!("{status} ({kind})"),
                    None => status.clone(),
                };
                out.push(' ');
                out.push_str(&paint.fg(RED, &status));
            }
            out
        }
        Parsed::Event(event) => {
            let level = match &event.level {
                Some(level) => paint.fg(level_color(level), &format!("{level:>5}")),
                None if record.stream == LogStream::Stderr => paint.dim("  err"),
                None => paint.dim("  out"),
            };
            let mut out = format!(
                "{time} {function:<width$} {level} {}",
                event.message,
                // The padding counts the escapes too.
                width = FUNCTION_WIDTH + function.len() - name.len()
            );
            let shown = event
                .fields
                .iter()
                .chain(event.span.iter().filter(|(k, v)| {
                    !HIDDEN_SPAN_FIELDS.contains(&k.as_str())
                        && !event.fields.iter().any(|(fk, fv)| fk == k && fv == v)
                }));
            for (key, value) in shown {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
                out.push_str(&paint.italic(key));
                out.push_str(&paint.dim("="));
                out.push_str(&human_value(value));
            }
            out
        }
    }
}

/// `record` as one JSON object on one line: `time`, `function`, `instance`, `request_id`,
/// `stream`, `type` (`function`, or Lambda's `platform.start`, `platform.end`,
/// `platform.report`, `platform.initReport`, `platform`), then what was parsed: `level`,
/// `message`, `fields` and `span` of an event; the numbers of a report (`duration_ms`,
/// `billed_duration_ms`, `memory_size_mb`, `max_memory_used_mb`, `init_duration_ms`, `status`,
/// `error_type`) with the platform line as `message`.
pub fn render_json(record: &LogRecord) -> String {
    let mut object = Object::default();
    object.put(
        "time",
        record
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    );
    object.put("function", record.function.as_str());
    object.put("instance", record.instance);
    if let Some(id) = &record.request_id {
        object.put("request_id", id.as_str());
    }
    object.put(
        "stream",
        serde_json::to_value(record.stream).unwrap_or_default(),
    );
    match parse(record) {
        Parsed::Start => {
            object.put("type", "platform.start");
            object.put("message", record.line.as_str());
        }
        Parsed::End => {
            object.put("type", "platform.end");
            object.put("message", record.line.as_str());
        }
        Parsed::Report(report) => {
            object.put(
                "type",
                if report.init {
                    "platform.initReport"
                } else {
                    "platform.report"
                },
            );
            let numbers = [
                ("duration_ms", report.duration_ms),
                ("billed_duration_ms", report.billed_duration_ms),
                ("memory_size_mb", report.memory_size_mb),
                ("max_memory_used_mb", report.max_memory_used_mb),
                ("init_duration_ms", report.init_duration_ms),
            ];
            for (key, value) in numbers {
                if let Some(value) = value {
                    object.put(key, number(value));
                }
            }
            if let Some(status) = report.status {
                object.put("status", status);
            }
            if let Some(kind) = report.error_type {
                object.put("error_type", kind);
            }
            object.put("message", record.line.as_str());
        }
        Parsed::Event(event) => {
            let kind = if record.stream == LogStream::Platform {
                "platform"
            } else {
                "function"
            };
            object.put("type", kind);
            if let Some(level) = event.level {
                object.put("level", level);
            }
            object.put("message", event.message);
            for (key, pairs) in [("fields", event.fields), ("span", event.span)] {
                if !pairs.is_empty() {
                    let mut inner = Object::default();
                    for (k, v) in pairs {
                        inner.put(&k, v);
                    }
                    object.put_raw(key, &inner.finish());
                }
            }
        }
    }
    object.finish()
}

/// `START` and `END`: one a side of every invocation, shown on a terminal only when the
/// emulator's own log is at debug.
pub fn is_quiet(record: &LogRecord) -> bool {
    matches!(parse(record), Parsed::Start | Parsed::End)
}

/// A function's name for people: without [`STACK_PREFIX`], and a template logical id
/// (`QueueProcessorFunction`) in kebab case without its `Function` suffix
/// (`queue-processor`).
pub fn short_name(function: &str) -> String {
    let name = function.strip_prefix(STACK_PREFIX).unwrap_or(function);
    let camel = name.chars().any(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if !camel {
        return name.to_owned();
    }
    let name = name
        .strip_suffix("Function")
        .filter(|n| !n.is_empty())
        .unwrap_or(name);
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Report {
    /// `7.6 ms (init 48 ms) 25 MB`: duration, init duration when there was one, most memory
    /// used.
    fn compact(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ms) = self.duration_ms {
            parts.push(duration(ms, 1));
        }
        if let Some(init) = self.init_duration_ms {
            parts.push(if self.init {
                duration(init, 0)
            } else {
                format!("(init {})", duration(init, 0))
            });
        }
        if let Some(mb) = self.max_memory_used_mb {
            parts.push(format!("{mb} MB"));
        }
        parts.join(" ")
    }
}

/// A whole number as an integer (`239`, not `239.0`).
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

/// `7.6 ms` (`decimals` below a second), `3.00 s` from a second on.
fn duration(ms: f64, decimals: usize) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.decimals$} ms")
    }
}

/// Width of the function column.
const FUNCTION_WIDTH: usize = 15;

/// The platform's lines: `START`, `END`, `REPORT`, `INIT_REPORT`, and its error lines
/// (timeouts, crashes), which become `ERROR` events without the request id.
fn parse_platform(line: &str, request_id: Option<&str>) -> Parsed {
    if line.starts_with("START ") {
        return Parsed::Start;
    }
    if line.starts_with("END ") {
        return Parsed::End;
    }
    for (word, init) in [("REPORT ", false), ("INIT_REPORT ", true)] {
        if let Some(rest) = line.strip_prefix(word) {
            return Parsed::Report(parse_report(rest, init));
        }
    }
    let message = request_id
        .and_then(|id| line.split_once(id))
        .map_or(line, |(_, after)| after)
        .trim_start();
    Parsed::Event(Event {
        level: Some("ERROR".into()),
        message: message.to_owned(),
        ..Event::default()
    })
}

/// The keys of `REPORT` and `INIT_REPORT` lines (tab-separated in the first, space-separated
/// in the second).
const REPORT_KEYS: [&str; 9] = [
    "RequestId",
    "Duration",
    "Billed Duration",
    "Memory Size",
    "Max Memory Used",
    "Init Duration",
    "Phase",
    "Status",
    "Error Type",
];

fn parse_report(text: &str, init: bool) -> Report {
    // Where each key starts (`Key: `), longest key first so `Duration` is not found inside
    // `Billed Duration` or `Init Duration`.
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut keys = REPORT_KEYS;
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for key in keys {
        let pattern = format!("{key}: ");
        let mut from = 0;
        while let Some(at) = text[from..].find(&pattern) {
            let at = from + at;
            let taken = starts.iter().any(|(s, k)| *s <= at && at < s + k.len() + 2);
            let boundary = at == 0 || text[..at].ends_with(['\t', ' ']);
            if !taken && boundary {
                starts.push((at, key));
            }
            from = at + pattern.len();
        }
    }
    starts.sort();
    let value = |key: &str| -> Option<&str> {
        let i = starts.iter().position(|(_, k)| *k == key)?;
        let begin = starts[i].0 + key.len() + 2;
        let end = starts.get(i + 1).map_or(text.len(), |(s, _)| *s);
        Some(text[begin..end].trim())
    };
    let number = |key: &str| -> Option<f64> { value(key)?.split_whitespace().next()?.parse().ok() };
    Report {
        init,
        duration_ms: number("Duration"),
        billed_duration_ms: number("Billed Duration"),
        memory_size_mb: number("Memory Size"),
        max_memory_used_mb: number("Max Memory Used"),
        init_duration_ms: number("Init Duration"),
        status: value("Status").map(str::to_owned),
        error_type: value("Error Type").map(str::to_owned),
    }
}

/// A JSON log line: tracing's (`level`, `fields.message`, `span`, `spans`) or any object with
/// `level` and `message` (Lambda's own JSON format); another object is all fields. Fields keep
/// the order the function wrote them in.
fn parse_json(line: &str) -> Option<Event> {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    let JsonLine {
        mut entries,
        mut fields,
        span,
        spans,
    } = serde_json::from_str(trimmed).ok()?;
    let take = |pairs: &mut Vec<(String, Value)>, key: &str| {
        let at = pairs.iter().position(|(k, _)| k == key)?;
        Some(pairs.remove(at).1)
    };
    let level = match take(&mut entries, "level") {
        Some(Value::String(level)) => Some(level.to_ascii_uppercase()),
        _ => None,
    };
    let message = take(&mut fields, "message")
        .or_else(|| take(&mut entries, "message"))
        .or_else(|| take(&mut entries, "msg"))
        .map(|m| match m {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_default();
    let mut merged = Vec::new();
    for (k, v) in spans
        .unwrap_or_else(|| span.into_iter().collect())
        .into_iter()
        .flatten()
    {
        if k != "name" {
            put(&mut merged, k, v);
        }
    }
    entries.retain(|(k, _)| {
        !["timestamp", "time", "target", "requestId", "type"].contains(&k.as_str())
    });
    fields.extend(entries);
    Some(Event {
        level,
        message,
        fields,
        span: merged,
    })
}

/// A JSON object's entries in the order they were written (`serde_json::Map` sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    entries.push((k, v));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// A JSON log line: tracing's `fields`, `span` and `spans` in order, the other entries too.
#[derive(Default)]
struct JsonLine {
    entries: Vec<(String, Value)>,
    fields: Vec<(String, Value)>,
    span: Option<Vec<(String, Value)>>,
    spans: Option<Vec<Vec<(String, Value)>>>,
}

impl<'de> serde::Deserialize<'de> for JsonLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = JsonLine;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonLine, A::Error> {
                let mut line = JsonLine::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "fields" => line.fields = map.next_value::<Ordered>()?.0,
                        "span" => line.span = Some(map.next_value::<Ordered>()?.0),
                        "spans" => {
                            let spans: Vec<Ordered> = map.next_value()?;
                            line.spans = Some(spans.into_iter().map(|s| s.0).collect());
                        }
                        _ => line.entries.push((key, map.next_value()?)),
                    }
                }
                Ok(line)
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Sets `key` in `pairs`, in place when it is there (an inner span's field wins).
fn put(pairs: &mut Vec<(String, Value)>, key: String, value: Value) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key, value)),
    }
}

/// Marks left in a text line where tracing's ANSI styling says what is what: a field's key
/// starts (italic), a field's `=` (dim), a span ends (dim `:`).
const KEY: char = '\u{1}';
const EQUALS: char = '\u{2}';
const SPAN_END: char = '\u{3}';

const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// A line of tracing's text format: `[time] LEVEL [span{k=v}:…:] message k=v …`, with or
/// without ANSI escapes.
fn parse_text(line: &str) -> Option<Event> {
    let styled = line.contains('\x1b');
    let marked = if styled {
        strip_ansi(
            &line
                .replace("\x1b[3m", &KEY.to_string())
                .replace("\x1b[0m\x1b[2m=\x1b[0m", &EQUALS.to_string())
                .replace("\x1b[0m\x1b[2m:\x1b[0m", &SPAN_END.to_string()),
        )
    } else {
        line.replace([KEY, EQUALS, SPAN_END], "")
    };
    let mut rest = marked.trim_start();
    let (mut first, mut after) = rest.split_once(' ').unwrap_or((rest, ""));
    if chrono::DateTime::parse_from_rfc3339(first).is_ok() {
        rest = after.trim_start();
        (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
    }
    if !LEVELS.contains(&first) {
        return None;
    }
    let level = first.to_owned();
    let rest = after.trim_start();
    let (spans, body) = if styled {
        match rest.rfind(SPAN_END) {
            Some(end) => (
                rest[..end].split(SPAN_END).map(str::to_owned).collect(),
                &rest[end + SPAN_END.len_utf8()..],
            ),
            None => (Vec::new(), rest),
        }
    } else {
        plain_spans(rest)
    };
    let mut span = Vec::new();
    for s in spans {
        if let Some(open) = s.find('{') {
            let inner = s[open + 1..].strip_suffix('}').unwrap_or(&s[open + 1..]);
            let inner = if styled {
                inner.to_owned()
            } else {
                mark_fields(inner)
            };
            for (k, v) in split_fields(&inner).1 {
                put(&mut span, k, v);
            }
        }
    }
    let body = body.strip_prefix(' ').unwrap_or(body);
    let body = if styled {
        body.to_owned()
    } else {
        mark_fields(body)
    };
    let (message, fields) = split_fields(&body);
    Some(Event {
        level: Some(level),
        message,
        fields,
        span,
    })
}

/// The spans in front of an unstyled event (`name{k=v}:name{k=v}: message`), and the rest.
/// Spans without fields cannot be told from a message with a colon, and stay in it.
fn plain_spans(text: &str) -> (Vec<String>, &str) {
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let name = &rest[..open];
        if name.is_empty() || name.contains([':', '=', '"', '}']) {
            break;
        }
        let Some(close) = closing_brace(&rest[open..]).map(|c| open + c) else {
            break;
        };
        let Some(after) = rest[close + 1..].strip_prefix(':') else {
            break;
        };
        spans.push(rest[..=close].to_owned());
        rest = after;
        if rest.starts_with(' ') || rest.is_empty() {
            return (spans, rest);
        }
    }
    if spans.is_empty() {
        (spans, text)
    } else {
        // A span list that does not end in `: ` was a message after all.
        (Vec::new(), text)
    }
}

/// The index of the `}` that closes the `{` at the start of `text`, outside quotes.
fn closing_brace(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Marks the fields of unstyled text: `key=` after the start or a space, outside quotes.
fn mark_fields(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut quoted = false;
    let mut escaped = false;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !quoted && (i == 0 || chars[i - 1] == ' ') {
            let key_len = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_' || **c == '.')
                .count();
            let starts_ident = chars[i].is_ascii_alphabetic() || chars[i] == '_';
            if starts_ident && key_len > 0 && chars.get(i + key_len) == Some(&'=') {
                out.push(KEY);
                out.extend(&chars[i..i + key_len]);
                out.push(EQUALS);
                i += key_len + 1;
                continue;
            }
        }
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The text before the first marked field, and the marked fields.
fn split_fields(marked: &str) -> (String, Vec<(String, Value)>) {
    let mut parts = marked.split(KEY);
    let message = parts.next().unwrap_or_default().trim_end().to_owned();
    let mut fields = Vec::new();
    for part in parts {
        let (key, value) = part.split_once(EQUALS).unwrap_or((part, ""));
        let value = value.strip_suffix(' ').unwrap_or(value);
        fields.push((key.to_owned(), typed(value)));
    }
    (message, fields)
}

/// A text field's value: a quoted (Debug) string unquoted, numbers and booleans as such.
fn typed(value: &str) -> Value {
    if value.starts_with('"') && value.ends_with('"') && value.len() >= 2 {
        return serde_json::from_str::<String>(value)
            .map(Value::String)
            .unwrap_or_else(|_| Value::String(value[1..value.len() - 1].to_owned()));
    }
    if let Ok(n) = value.parse::<i64>() {
        return n.into();
    }
    if let Ok(n) = value.parse::<f64>()
        && n.is_finite()
    {
        return n.into();
    }
    match value {
        "true" => true.into(),
        "false" => false.into(),
        _ => Value::String(value.to_owned()),
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`, and lone `ESC x`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// A field value as a person reads it: strings bare unless they hold spaces or are empty.
fn human_value(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() && !s.contains([' ', '"', '=']) => s.clone(),
        other => other.to_string(),
    }
}

const RED: u8 = 31;

/// Colours functions are told apart by (cyan, bright green, bright yellow, blue, magenta,
/// bright cyan, bright magenta), red being kept for errors; seven, which gives the template's
/// three functions three colours.
const FUNCTION_COLORS: [u8; 7] = [36, 92, 93, 34, 35, 96, 95];

/// The same colour for a function every run (FNV-1a of its name).
fn function_color(function: &str) -> u8 {
    let hash = function.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    FUNCTION_COLORS[(hash % FUNCTION_COLORS.len() as u64) as usize]
}

/// The colours tracing gives levels.
fn level_color(level: &str) -> u8 {
    match level {
        "ERROR" => RED,
        "WARN" => 33,
        "INFO" => 32,
        "DEBUG" => 34,
        _ => 35,
    }
}

/// ANSI styling, or none.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn style(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn fg(self, color: u8, text: &str) -> String {
        self.style(&color.to_string(), text)
    }

    fn dim(self, text: &str) -> String {
        self.style("2", text)
    }

    fn italic(self, text: &str) -> String {
        self.style("3", text)
    }
}

/// A JSON object written key by key, in order.
#[derive(Default)]
struct Object(String);

impl Object {
    fn put(&mut self, key: &str, value: impl Into<Value>) {
        self.put_raw(key, &value.into().to_string());
    }

    /// Puts `json`, a JSON text, as the value of `key`.
    fn put_raw(&mut self, key: &str, json: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(&Value::from(key).to_string());
        self.0.push(':');
        self.0.push_str(json);
    }

    fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
