//! history: the recent invocations of every function, with their event, their answer and their
//! own log lines, so that `nightshift logs`, the control endpoint and the dashboard can show and
//! find one job among thousands (by request id, message id or any text of its event).
//!
//! It is fed by two taps: [`History::decorate`] wraps the emulator's invoker (an invocation
//! starts and ends) and [`History::tee`] wraps the runtime's log sink (every line, filed under
//! the request id its instance held). Everything is bounded: the last [`KEEP_PER_FUNCTION`]
//! invocations of each function, [`KEEP_LOG_LINES`] lines of each, events and answers cut at
//! [`KEEP_PAYLOAD_BYTES`]. Changes are also broadcast as [`LiveEvent`]s for the live views; a
//! broadcast with no subscriber costs a failed send.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::clock::SharedClock;
use crate::invoker::{
    Decorator, InvokeError, InvokeOutcome, InvokeRequest, InvokeResponse, Invoker, Slot,
};
use crate::logs::LogRecord;
use crate::metrics::MetricStore;
use crate::runtime::{LogLine, LogSink, LogStream};

/// Invocations kept per function (the oldest are dropped first).
pub const KEEP_PER_FUNCTION: usize = 500;
/// Log lines kept per invocation (the first ones; a line says how many were dropped).
pub const KEEP_LOG_LINES: usize = 1000;
/// Bytes of an event or an answer kept (the rest is cut, and marked so).
pub const KEEP_PAYLOAD_BYTES: usize = 256 * 1024;
/// Log lines kept per function outside any invocation (init, shutdown).
const KEEP_LOOSE_LINES: usize = 500;
/// Events buffered for a slow live subscriber before it skips ahead.
const LIVE_BUFFER: usize = 4096;

/// How an invocation ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationStatus {
    /// Still running.
    Running,
    /// The function returned a result.
    Success,
    /// The function reported an error.
    Error,
    /// The function did not answer within its timeout.
    Timeout,
    /// The instance exited while it held the event.
    Crash,
    /// The instance failed to initialise.
    InitError,
    /// The invoker refused it (throttled, unknown function, shutting down).
    Rejected,
}

impl InvocationStatus {
    fn of(result: &Result<InvokeResponse, InvokeError>) -> Self {
        match result {
            Ok(r) => match r.outcome {
                InvokeOutcome::Success(_) => Self::Success,
                InvokeOutcome::FunctionError(_) => Self::Error,
                InvokeOutcome::InitError(_) => Self::InitError,
                InvokeOutcome::Timeout { .. } => Self::Timeout,
                InvokeOutcome::Crashed(_) => Self::Crash,
            },
            Err(_) => Self::Rejected,
        }
    }

    /// Its name as the API and the filters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Crash => "crash",
            Self::InitError => "init_error",
            Self::Rejected => "rejected",
        }
    }

    /// True for every ending but success.
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Running | Self::Success)
    }
}

/// One invocation as lists show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InvocationSummary {
    /// Position in the history, increasing with every invocation of any function.
    pub seq: u64,
    /// The request id.
    pub request_id: String,
    /// The function's name.
    pub function: String,
    /// What caused it (see [`InvokeRequest::trigger`]).
    pub trigger: String,
    /// How it ended.
    pub status: InvocationStatus,
    /// When it started, on the emulator's clock.
    pub started_at: DateTime<Utc>,
    /// How long the function ran, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// The cold start's init time, when this invocation started an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_duration_ms: Option<f64>,
    /// Max memory used, from the REPORT line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u64>,
    /// The SQS message ids of a mapping's batch (empty for other invocations).
    #[serde(default)]
    pub message_ids: Vec<String>,
    /// The X-Ray trace id (the `Root` of the trace header the function saw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The trace ids its trace is linked to: for an SQS batch, the traces of its messages
    /// (Lambda starts a new trace per batch and links it to them). [`History::chain`] follows
    /// these links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace_links: Vec<String>,
    /// The error type and message of a failed invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One invocation with its event, its answer and its log lines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Invocation {
    /// What lists show.
    #[serde(flatten)]
    pub summary: InvocationSummary,
    /// The event (cut at [`KEEP_PAYLOAD_BYTES`]).
    pub event: String,
    /// The whole trace header the function saw (`Lambda-Runtime-Trace-Id`).
    #[serde(default)]
    pub trace_header: String,
    /// The answer: the response payload, or the error document (cut likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Its log lines, in order.
    pub logs: Vec<LogRecord>,
    /// Lines dropped past [`KEEP_LOG_LINES`].
    #[serde(default)]
    pub logs_dropped: u64,
}

/// What lists ask for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InvocationQuery {
    /// Only this function (name, exactly).
    #[serde(default)]
    pub function: Option<String>,
    /// Only this trigger (exactly, e.g. `schedule:nightshift-daily-report`).
    #[serde(default)]
    pub trigger: Option<String>,
    /// Only this status (`success`, `error`, `timeout`, `crash`, `init_error`, `running`,
    /// `rejected`), or `failed` for every ending but success.
    #[serde(default)]
    pub status: Option<String>,
    /// Only invocations whose request id, trigger, message ids or event contain this text
    /// (a job id is in the event).
    #[serde(default)]
    pub q: Option<String>,
    /// At most this many, newest first (100 when unset).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The invocations one message or job caused (`nightshift trace`, `GET
/// /_nightshift/trace/{id}`): see [`History::chain`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TraceChain {
    /// What was looked for.
    pub id: String,
    /// The trace ids (roots) of the flow, sorted: those of the invocations that matched it and
    /// every trace linked to or from them, transitively; empty when nothing matched.
    pub trace_ids: Vec<String>,
    /// The links between those traces: each invocation's trace to a trace it links to, once
    /// per pair, in the order the invocations started.
    #[serde(default)]
    pub links: Vec<TraceLink>,
    /// Every kept invocation of those traces, in the order they started.
    pub invocations: Vec<InvocationSummary>,
}

/// One link of a [`TraceChain`]: the trace `from` (an invocation's, e.g. an SQS batch's) is
/// linked to the trace `to` (e.g. the producer's of one of its messages).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceLink {
    /// The linking trace id (downstream).
    pub from: String,
    /// The linked trace id (upstream).
    pub to: String,
}

/// A change the live views are told about.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// An invocation started or ended.
    Invocation(Arc<InvocationSummary>),
    /// A function wrote a line.
    Log(Arc<LogRecord>),
}

/// Counters of ended invocations, for the overview's rates.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// Successes.
    pub succeeded: u64,
    /// Errors, crashes, init errors and rejections.
    pub failed: u64,
    /// Timeouts.
    pub timed_out: u64,
}

/// Duration percentiles of a function's kept invocations.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Median, milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile, milliseconds.
    pub p95_ms: Option<f64>,
}

struct Entry {
    summary: InvocationSummary,
    event: bytes::Bytes,
    trace_header: String,
    response: Option<String>,
    logs: Vec<LogRecord>,
    logs_dropped: u64,
}

#[derive(Default)]
struct FunctionLog {
    /// Oldest first, by increasing seq.
    entries: VecDeque<Entry>,
    loose: VecDeque<LogRecord>,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    functions: HashMap<String, FunctionLog>,
    /// request id → (function, seq).
    index: HashMap<String, (String, u64)>,
    totals: Totals,
}

impl Inner {
    fn entry_mut(&mut self, request_id: &str) -> Option<&mut Entry> {
        let (function, seq) = self.index.get(request_id)?;
        let log = self.functions.get_mut(function)?;
        // Sequence numbers are global but pushed in order: each function's are sorted.
        let at = log
            .entries
            .binary_search_by_key(seq, |e| e.summary.seq)
            .ok()?;
        log.entries.get_mut(at)
    }
}

/// The invocation history; cheap to clone (one shared store).
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
    live: broadcast::Sender<LiveEvent>,
    /// Live events published so far, so a subscriber that stops listening for a while
    /// (over its rate cap) knows how many it missed.
    published: Arc<AtomicU64>,
    clock: SharedClock,
    metrics: MetricStore,
}

impl History {
    /// An empty history whose start times read `clock`.
    pub fn new(clock: SharedClock) -> Self {
        History {
            inner: Arc::default(),
            live: broadcast::channel(LIVE_BUFFER).0,
            published: Arc::default(),
            metrics: MetricStore::new(clock.clone()),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The metrics read from the functions' EMF lines, which reach the history's tee.
    pub fn metrics(&self) -> &MetricStore {
        &self.metrics
    }

    fn publish(&self, event: LiveEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let _ = self.live.send(event);
    }

    /// Live events published so far ([`History::subscribe`]).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Subscribes to the changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Wraps `inner` so that every invocation through it is recorded.
    pub fn decorate(&self, inner: Arc<dyn Invoker>) -> Arc<dyn Invoker> {
        Arc::new(Recording {
            inner,
            history: self.clone(),
        })
    }

    /// Wraps `sink` so that every line also lands in the history.
    pub fn tee(&self, sink: LogSink) -> LogSink {
        let history = self.clone();
        Arc::new(move |line: &LogLine<'_>| {
            history.log(LogRecord::from_line(line));
            sink(line);
        })
    }

    fn start(&self, req: &InvokeRequest) {
        let summary = {
            let mut inner = self.lock();
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let summary = InvocationSummary {
                seq,
                request_id: req.request_id.clone(),
                function: req.function.clone(),
                trigger: req.trigger.clone(),
                status: InvocationStatus::Running,
                started_at: self.clock.now(),
                duration_ms: None,
                init_duration_ms: None,
                max_memory_mb: None,
                message_ids: req.message_ids.clone(),
                trace_id: crate::xray::root(&req.trace_header).map(str::to_owned),
                trace_links: req.trace_links.clone(),
                error: None,
            };
            let log = inner.functions.entry(req.function.clone()).or_default();
            let evicted = if log.entries.len() >= KEEP_PER_FUNCTION {
                log.entries.pop_front()
            } else {
                None
            };
            log.entries.push_back(Entry {
                summary: summary.clone(),
                event: req.payload.clone(),
                trace_header: req.trace_header.clone(),
                response: None,
                logs: Vec::new(),
                logs_dropped: 0,
            });
            if let Some(old) = evicted {
                inner.index.remove(&old.summary.request_id);
            }
            inner
                .index
                .insert(req.request_id.clone(), (req.function.clone(), seq));
            summary
        };
        self.publish(LiveEvent::Invocation(Arc::new(summary)));
    }

    fn end(&self, request_id: &str, result: &Result<InvokeResponse, InvokeError>) {
        let status = InvocationStatus::of(result);
        let summary = {
            let mut inner = self.lock();
            match status {
                InvocationStatus::Success => inner.totals.succeeded += 1,
                InvocationStatus::Timeout => inner.totals.timed_out += 1,
                _ => inner.totals.failed += 1,
            }
            let Some(entry) = inner.entry_mut(request_id) else {
                return;
            };
            entry.summary.status = status;
            match result {
                Ok(r) => {
                    entry.summary.duration_ms = Some(millis(r.duration));
                    entry.summary.init_duration_ms = r.init_duration.map(millis);
                    let (response, error) = answer(&r.outcome);
                    entry.response = Some(response);
                    entry.summary.error = error;
                }
                Err(e) => entry.summary.error = Some(e.to_string()),
            }
            entry.summary.clone()
        };
        self.publish(LiveEvent::Invocation(Arc::new(summary)));
    }

    fn log(&self, record: LogRecord) {
        // EMF documents are what a function prints on stdout (CloudWatch Logs reads them
        // from there); they stay log lines as well, as in CloudWatch.
        if record.stream == LogStream::Stdout {
            self.metrics.observe(&record.function, &record.line);
        }
        let record = Arc::new(record);
        {
            let mut inner = self.lock();
            let filed = match record.request_id.as_deref() {
                Some(id) => match inner.entry_mut(id) {
                    Some(entry) => {
                        if record.stream == LogStream::Platform
                            && let Some(mb) = report_memory_mb(&record.line)
                        {
                            entry.summary.max_memory_mb = Some(mb);
                        }
                        if entry.logs.len() < KEEP_LOG_LINES {
                            entry.logs.push((*record).clone());
                        } else {
                            entry.logs_dropped += 1;
                        }
                        true
                    }
                    None => false,
                },
                None => false,
            };
            if !filed {
                let log = inner.functions.entry(record.function.clone()).or_default();
                if log.loose.len() >= KEEP_LOOSE_LINES {
                    log.loose.pop_front();
                }
                log.loose.push_back((*record).clone());
            }
        }
        self.publish(LiveEvent::Log(record));
    }

    /// Ended invocations so far, by kind of ending.
    pub fn totals(&self) -> Totals {
        self.lock().totals
    }

    /// The kept invocations matching `query`, newest first.
    pub fn list(&self, query: &InvocationQuery) -> Vec<InvocationSummary> {
        let limit = query.limit.unwrap_or(100);
        let needle = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let inner = self.lock();
        let mut all: Vec<&Entry> = inner
            .functions
            .iter()
            .filter(|(name, _)| query.function.as_ref().is_none_or(|f| f == *name))
            .flat_map(|(_, log)| log.entries.iter())
            .filter(|e| {
                query
                    .trigger
                    .as_ref()
                    .is_none_or(|t| *t == e.summary.trigger)
            })
            .filter(|e| match query.status.as_deref() {
                None | Some("") | Some("all") => true,
                Some("failed") => e.summary.status.is_failure(),
                Some(s) => e.summary.status.as_str() == s,
            })
            .filter(|e| needle.is_none_or(|q| matches(e, q)))
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.summary.seq));
        all.into_iter()
            .take(limit)
            .map(|e| e.summary.clone())
            .collect()
    }

    /// One invocation with its event, answer and logs.
    pub fn get(&self, request_id: &str) -> Option<Invocation> {
        let mut inner = self.lock();
        let entry = inner.entry_mut(request_id)?;
        Some(Invocation {
            summary: entry.summary.clone(),
            event: cut(&entry.event),
            trace_header: entry.trace_header.clone(),
            response: entry.response.clone(),
            logs: entry.logs.clone(),
            logs_dropped: entry.logs_dropped,
        })
    }

    /// The chain of invocations `id` (a message id, a job id, a request id: any text
    /// [`InvocationQuery::q`] finds, or a trace id an invocation has or links to) is part of:
    /// the traces of the invocations that match it, then, until nothing is added, every trace
    /// linked to or from a trace already found; the chain is every kept invocation of those
    /// traces, in the order they started. Lambda starts a new trace for each SQS batch and links it to its
    /// messages' traces, so a job's chain is the queue-processor's invocation that ran it (and
    /// its retries) and the email-sender's invocation of the email it enqueued, whose trace
    /// links to the job's; from the email's message id, the same chain.
    pub fn chain(&self, id: &str) -> TraceChain {
        let id = id.trim();
        let inner = self.lock();
        let entries = || inner.functions.values().flat_map(|log| log.entries.iter());
        let mut roots: BTreeSet<&str> = entries()
            .filter(|e| {
                !id.is_empty()
                    && (matches(e, id)
                        || e.summary.trace_id.as_deref() == Some(id)
                        || e.summary.trace_links.iter().any(|l| l == id))
            })
            .filter_map(|e| e.summary.trace_id.as_deref())
            .collect();
        // The closure over links in both directions: a pass adds the links of the traces
        // found and the traces that link to one found; it stops when a pass adds nothing.
        loop {
            let before = roots.len();
            for e in entries() {
                let Some(trace) = e.summary.trace_id.as_deref() else {
                    continue;
                };
                let links = e.summary.trace_links.iter().map(String::as_str);
                if roots.contains(trace) {
                    roots.extend(links);
                } else if e
                    .summary
                    .trace_links
                    .iter()
                    .any(|l| roots.contains(l.as_str()))
                {
                    roots.insert(trace);
                    roots.extend(links);
                }
            }
            if roots.len() == before {
                break;
            }
        }
        let mut invocations: Vec<InvocationSummary> = entries()
            .filter(|e| {
                e.summary
                    .trace_id
                    .as_deref()
                    .is_some_and(|t| roots.contains(t))
            })
            .map(|e| e.summary.clone())
            .collect();
        invocations.sort_by_key(|s| s.seq);
        let mut seen = BTreeSet::new();
        let mut links: Vec<TraceLink> = Vec::new();
        for s in &invocations {
            let Some(from) = s.trace_id.as_deref() else {
                continue;
            };
            for to in &s.trace_links {
                if seen.insert((from, to.as_str())) {
                    links.push(TraceLink {
                        from: from.to_owned(),
                        to: to.clone(),
                    });
                }
            }
        }
        TraceChain {
            id: id.to_owned(),
            trace_ids: roots.into_iter().map(str::to_owned).collect(),
            links,
            invocations,
        }
    }

    /// The kept log lines of `function` (every function when `None`), or of one request,
    /// oldest first: lines outside invocations and the lines of the kept invocations.
    pub fn logs(&self, function: Option<&str>, request_id: Option<&str>) -> Vec<LogRecord> {
        let mut inner = self.lock();
        if let Some(id) = request_id {
            return inner
                .entry_mut(id)
                .map(|e| e.logs.clone())
                .unwrap_or_default();
        }
        let mut lines: Vec<LogRecord> = inner
            .functions
            .iter()
            .filter(|(name, _)| function.is_none_or(|f| f == *name))
            .flat_map(|(_, log)| {
                log.loose
                    .iter()
                    .chain(log.entries.iter().flat_map(|e| e.logs.iter()))
            })
            .cloned()
            .collect();
        lines.sort_by_key(|l| l.time);
        lines
    }

    /// Duration percentiles of each function's kept, ended invocations.
    pub fn percentiles(&self) -> HashMap<String, Percentiles> {
        let inner = self.lock();
        inner
            .functions
            .iter()
            .map(|(name, log)| {
                let mut d: Vec<f64> = log
                    .entries
                    .iter()
                    .filter_map(|e| e.summary.duration_ms)
                    .collect();
                d.sort_by(f64::total_cmp);
                let at = |p: f64| {
                    (!d.is_empty()).then(|| d[((d.len() as f64 * p).ceil() as usize).max(1) - 1])
                };
                (
                    name.clone(),
                    Percentiles {
                        p50_ms: at(0.50),
                        p95_ms: at(0.95),
                    },
                )
            })
            .collect()
    }
}

fn matches(e: &Entry, q: &str) -> bool {
    e.summary.request_id.contains(q)
        || e.summary.trigger.contains(q)
        || e.summary.message_ids.iter().any(|m| m.contains(q))
        || memchr_find(&e.event, q.as_bytes())
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn cut(bytes: &[u8]) -> String {
    if bytes.len() <= KEEP_PAYLOAD_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    format!(
        "{}… ({} bytes, cut at {KEEP_PAYLOAD_BYTES})",
        String::from_utf8_lossy(&bytes[..KEEP_PAYLOAD_BYTES]),
        bytes.len()
    )
}

/// The answer's text and, for a failure, its one-line error.
fn answer(outcome: &InvokeOutcome) -> (String, Option<String>) {
    match outcome {
        InvokeOutcome::Success(b) => (cut(b), None),
        InvokeOutcome::FunctionError(e) | InvokeOutcome::InitError(e) => (
            serde_json::to_string_pretty(e).unwrap_or_default(),
            Some(e.to_string()),
        ),
        InvokeOutcome::Timeout { after } => {
            let text = format!("Task timed out after {:.2} seconds", after.as_secs_f64());
            (text.clone(), Some(text))
        }
        InvokeOutcome::Crashed(exit) => {
            let text = format!("Runtime exited: {exit}");
            (text.clone(), Some(text))
        }
    }
}

/// `Max Memory Used: N MB` of a REPORT line.
fn report_memory_mb(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("REPORT ")?;
    let at = rest.find("Max Memory Used: ")? + "Max Memory Used: ".len();
    rest[at..].split(' ').next()?.parse().ok()
}

struct Recording {
    inner: Arc<dyn Invoker>,
    history: History,
}

impl Decorator for Recording {
    fn inner(&self) -> &Arc<dyn Invoker> {
        &self.inner
    }

    fn invoke_through(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> futures::future::BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        Box::pin(async move {
            let request_id = req.request_id.clone();
            self.history.start(&req);
            let result = self.inner.invoke_in(slot, req).await;
            self.history.end(&request_id, &result);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockSpec;

    fn history() -> History {
        History::new(ClockSpec::Manual.build(Utc::now()))
    }

    fn response(id: &str, outcome: InvokeOutcome) -> Result<InvokeResponse, InvokeError> {
        Ok(InvokeResponse {
            request_id: id.into(),
            outcome,
            duration: Duration::from_micros(7_600),
            init_duration: None,
        })
    }

    fn sqs_event(ids: &[&str]) -> String {
        let records: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"messageId": id, "eventSource": "aws:sqs", "body": format!("{{\"id\":\"job-{id}\"}}")}))
            .collect();
        serde_json::json!({ "Records": records }).to_string()
    }

    #[test]
    fn an_invocation_is_kept_with_its_event_answer_and_logs() {
        let h = history();
        let mut req = InvokeRequest::new("worker", sqs_event(&["m-1", "m-2"]))
            .with_request_id("r-1")
            .with_trigger("sqs:jobs");
        req.message_ids = vec!["m-1".into(), "m-2".into()];
        h.start(&req);
        let line = |stream, text: &str| {
            LogRecord::from_line(&LogLine {
                function: "worker",
                instance: 1,
                request_id: Some("r-1"),
                stream,
                line: text,
            })
        };
        h.log(line(LogStream::Stdout, "job done"));
        h.log(line(
            LogStream::Platform,
            "REPORT RequestId: r-1\tDuration: 7.60 ms\tBilled Duration: 8 ms\tMemory Size: 128 MB\tMax Memory Used: 25 MB",
        ));
        h.end("r-1", &response("r-1", InvokeOutcome::Success("{}".into())));
        let got = h.get("r-1").unwrap();
        assert_eq!(got.summary.status, InvocationStatus::Success);
        assert_eq!(got.summary.trigger, "sqs:jobs");
        assert_eq!(got.summary.message_ids, ["m-1", "m-2"]);
        assert_eq!(got.summary.duration_ms, Some(7.6));
        assert_eq!(got.summary.max_memory_mb, Some(25));
        assert_eq!(got.response.as_deref(), Some("{}"));
        assert_eq!(got.logs.len(), 2);
        assert_eq!(got.logs[0].line, "job done");
        assert_eq!(h.totals().succeeded, 1);
    }

    #[test]
    fn lists_filter_by_function_status_and_text() {
        let h = history();
        for (i, (f, ok)) in [("a", true), ("a", false), ("b", true)].iter().enumerate() {
            let id = format!("r-{i}");
            let req = InvokeRequest::new(*f, sqs_event(&[&format!("m-{i}")])).with_request_id(&id);
            h.start(&req);
            let outcome = if *ok {
                InvokeOutcome::Success("null".into())
            } else {
                InvokeOutcome::FunctionError(crate::invoker::FunctionError::new("Boom", "it broke"))
            };
            h.end(&id, &response(&id, outcome));
        }
        let ids = |q: InvocationQuery| -> Vec<String> {
            h.list(&q).into_iter().map(|s| s.request_id).collect()
        };
        assert_eq!(ids(InvocationQuery::default()), ["r-2", "r-1", "r-0"]);
        let only_a = InvocationQuery {
            function: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(ids(only_a), ["r-1", "r-0"]);
        let failed = InvocationQuery {
            status: Some("failed".into()),
            ..Default::default()
        };
        assert_eq!(ids(failed), ["r-1"]);
        // A job id is found in the event's bodies, a message id in the batch.
        let by_job = InvocationQuery {
            q: Some("job-m-2".into()),
            ..Default::default()
        };
        assert_eq!(ids(by_job), ["r-2"]);
        let by_message = InvocationQuery {
            q: Some("m-0".into()),
            ..Default::default()
        };
        assert_eq!(ids(by_message), ["r-0"]);
        assert_eq!(
            h.get("r-1").unwrap().summary.error.as_deref(),
            Some("Boom: it broke")
        );
        assert_eq!(
            h.totals(),
            Totals {
                succeeded: 2,
                failed: 1,
                timed_out: 0
            }
        );
    }

    /// Runs one successful invocation `id` of `function` on `messages` in the trace `header`,
    /// linked to `links`.
    fn run(
        h: &History,
        id: &str,
        function: &str,
        messages: &[&str],
        header: String,
        links: &[&str],
    ) {
        let req = InvokeRequest::new(function, sqs_event(messages))
            .with_request_id(id)
            .with_trigger(format!("sqs:{function}"))
            .with_trace_header(header)
            .with_trace_links(links.iter().map(|l| l.to_string()).collect());
        h.start(&req);
        h.end(id, &response(id, InvokeOutcome::Success("{}".into())));
    }

    fn ids(chain: &TraceChain) -> Vec<&str> {
        chain
            .invocations
            .iter()
            .map(|s| s.request_id.as_str())
            .collect()
    }

    #[test]
    fn a_chain_is_every_invocation_of_the_traces_an_id_matches() {
        let h = history();
        let job = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
        run(&h, "r-job", "worker", &["m-1"], job.into(), &[]);
        run(
            &h,
            "r-other",
            "worker",
            &["m-2"],
            crate::xray::new_header(),
            &[],
        );
        let retry = crate::xray::continue_header(job).unwrap();
        run(&h, "r-retry", "worker", &["m-1b"], retry, &[]);
        // By the job id in the event, by a message id, by the trace id: the same chain.
        assert_eq!(ids(&h.chain("job-m-1")), ["r-job", "r-retry"]);
        let chain = h.chain("m-1b");
        assert_eq!(chain.trace_ids, ["1-5759e988-bd862e3fe1be46a994272793"]);
        assert!(chain.links.is_empty());
        assert_eq!(ids(&chain), ["r-job", "r-retry"]);
        assert_eq!(
            ids(&h.chain("1-5759e988-bd862e3fe1be46a994272793")),
            ["r-job", "r-retry"]
        );
        assert_eq!(ids(&h.chain("m-2")), ["r-other"]);
        assert_eq!(
            h.chain("no-such-id"),
            TraceChain {
                id: "no-such-id".into(),
                ..TraceChain::default()
            }
        );
        assert!(h.chain("  ").invocations.is_empty());
        let detail = h.get("r-retry").unwrap();
        assert!(
            detail.trace_header.starts_with("Root=1-5759e988-"),
            "{}",
            detail.trace_header
        );
        assert_eq!(
            detail.summary.trace_id.as_deref(),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
    }

    /// Each SQS batch starts a new trace linked to its messages' traces, as Lambda does: a
    /// job's trace (A), the email batch it fed (B, linked to A and to another job's trace X),
    /// the feedback batch the email caused (C, linked to B). From any id of the flow the chain
    /// is the closure over links in both directions: three hops from A to C and back.
    #[test]
    fn a_chain_follows_links_both_ways_until_closure() {
        let h = history();
        let root = |n: u32| format!("1-5759e988-{n:024x}");
        let header = |n: u32| format!("Root={};Parent=53995c3f42cd8ad8;Sampled=0", root(n));
        let (a, x, b, c) = (root(1), root(2), root(3), root(4));
        run(&h, "r-a", "jobs", &["m-a"], header(1), &[]);
        run(&h, "r-x", "jobs", &["m-x"], header(2), &[]);
        run(&h, "r-b", "emails", &["m-b1", "m-b2"], header(3), &[&a, &x]);
        run(&h, "r-unrelated", "emails", &["m-u"], header(5), &[]);
        run(&h, "r-c", "feedback", &["m-c"], header(4), &[&b]);

        let from_job = h.chain("job-m-a");
        assert_eq!(ids(&from_job), ["r-a", "r-x", "r-b", "r-c"]);
        assert_eq!(
            from_job.trace_ids,
            [a.clone(), x.clone(), b.clone(), c.clone()]
        );
        let link = |from: &str, to: &str| TraceLink {
            from: from.into(),
            to: to.into(),
        };
        assert_eq!(from_job.links, [link(&b, &a), link(&b, &x), link(&c, &b)]);
        // From the last hop back to the first, and from the middle: the same flow.
        assert_eq!(h.chain("m-c").invocations, from_job.invocations);
        assert_eq!(h.chain(&b).invocations, from_job.invocations);
        assert_eq!(ids(&h.chain("m-u")), ["r-unrelated"]);
        // A link to a trace no kept invocation has (a producer outside the emulator) is part
        // of the flow's traces all the same.
        run(
            &h,
            "r-d",
            "jobs",
            &["m-d"],
            header(6),
            &["1-5759e988-ffffffffffffffffffffffff"],
        );
        assert_eq!(
            h.chain("m-d").trace_ids,
            [root(6), "1-5759e988-ffffffffffffffffffffffff".into()]
        );
        // That trace's id finds the invocation linked to it (the dashboard's link to it).
        assert_eq!(
            ids(&h.chain("1-5759e988-ffffffffffffffffffffffff")),
            ["r-d"]
        );
        let summary = h.get("r-b").unwrap().summary;
        assert_eq!(summary.trace_links, [a, x]);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["trace_links"], serde_json::json!(summary.trace_links));
    }

    #[test]
    fn the_history_is_bounded_per_function() {
        let h = history();
        for i in 0..KEEP_PER_FUNCTION + 3 {
            let id = format!("r-{i}");
            h.start(&InvokeRequest::new("f", "{}").with_request_id(&id));
            h.end(&id, &response(&id, InvokeOutcome::Success("1".into())));
        }
        let all = h.list(&InvocationQuery {
            limit: Some(usize::MAX),
            ..Default::default()
        });
        assert_eq!(all.len(), KEEP_PER_FUNCTION);
        assert!(h.get("r-0").is_none(), "the oldest are dropped");
        assert!(h.get(&format!("r-{}", KEEP_PER_FUNCTION + 2)).is_some());
        assert_eq!(h.totals().succeeded as usize, KEEP_PER_FUNCTION + 3);
    }

    #[test]
    fn lines_outside_invocations_are_kept_per_function() {
        let h = history();
        h.log(LogRecord::from_line(&LogLine {
            function: "f",
            instance: 1,
            request_id: None,
            stream: LogStream::Stderr,
            line: "starting",
        }));
        let lines = h.logs(Some("f"), None);
        assert_eq!(lines.len(), 1);
        assert!(h.logs(Some("g"), None).is_empty());
    }
}
