//! Record and replay: JSONL traces of the events delivered to functions and their responses.
//!
//! `nightshift record` writes every invocation of a running emulator to a trace
//! ([`TraceRecorder`]); `nightshift replay` feeds a trace's events to the functions again
//! ([`replay()`]) and, with `--check`, reports every response that differs from the recorded one
//! ([`diff()`]). A trace of real AWS events without responses replays the same way.
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
//!   `md5OfMessageAttributes` is computed again over the mapped attributes; an
//!   `AWSTraceHeader` attribute (the X-Ray trace of the message's sender, [`crate::xray`])
//!   becomes `Root=trace-N`, numbered by its root. Bodies and other attributes are never
//!   rewritten, so `md5OfBody` stays valid.
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

mod diff;
mod format;
mod normalize;
mod recorder;
mod replay;
mod sandbox;

pub use diff::{Difference, diff};
pub use format::{
    MASKED_TIMESTAMP, NormalizeOptions, TRACE_VERSION, TimeMode, Trace, TraceEntry, TraceHeader,
    TraceWriter, load_trace, read_trace,
};
pub use normalize::{Normalizer, entries_from_invocations};
pub use recorder::{RecorderSlot, TraceRecorder, recording_wrap};
pub use replay::{ReplayOptions, ReplayReport, ReplayResult, Verdict, replay, to_replay};
pub use sandbox::Sandbox;

use crate::emulator::EmulatorError;

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
