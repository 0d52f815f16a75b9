//! The emulator as a test harness: start it from the real template on a manual clock, drive
//! it (`send`, `fire`, `invoke`, `invoke_async`, `advance`, `run_until_idle`), then read back
//! what happened: every invocation with its event and response, each queue and DLQ.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nightshift_local::harness::{Harness, HarnessOptions};
//! use nightshift_local::invoker::InProcessInvoker;
//!
//! let invoker = InProcessInvoker::new()
//!     .with_function("nightshift-QueueProcessorFunction", |payload, _ctx| async move {
//!         // decode the SqsEvent, run your handler, encode the SqsBatchResponse
//!         Ok(bytes::Bytes::from_static(b"{\"batchItemFailures\":[]}"))
//!     });
//! let harness = Harness::start(HarnessOptions::new("."), invoker).await?;
//! harness.send("jobs", r#"{"v":1}"#)?;
//! harness.run_until_idle().await?;
//! assert_eq!(harness.invocations_of("nightshift-QueueProcessorFunction").len(), 1);
//! harness.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The in-process invoker runs your handlers in this process (fast, debuggable); pass
//! [`HarnessInvoker::Process`] to run the real binaries under the emulator's Lambda runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::clock::ClockSpec;
use crate::control::{ControlClient, ControlError};
use crate::emulator::{Emulator, EmulatorError, EmulatorOptions, InvokerChoice};
use crate::history::TraceChain;
use crate::invoker::{
    Decorator, InProcessInvoker, InvokeError, InvokeOutcome, InvokeRequest, InvokeResponse,
    Invoker, Slot,
};
use crate::sqs::model::MessageSnapshot;

/// The harness gave up waiting.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The emulator failed.
    #[error(transparent)]
    App(#[from] EmulatorError),
    /// The control endpoint did not answer as it should.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// One recorded invocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Invocation {
    /// Sequence number, from 0, in order of invocation start.
    pub seq: u64,
    /// The function name.
    pub function: String,
    /// The request id.
    pub request_id: String,
    /// The event, as JSON.
    pub event: serde_json::Value,
    /// The outcome: `success`, `error`, `timeout`, `crash`, `init_error` or `invoke_error`.
    pub outcome: String,
    /// The response (or error document) as JSON; strings when not JSON.
    pub response: serde_json::Value,
    /// The emulator clock's time when the invocation started.
    pub at: DateTime<Utc>,
}

fn json_or_string(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Describes a response for records and traces.
pub fn describe(result: &Result<InvokeResponse, InvokeError>) -> (String, serde_json::Value) {
    match result {
        Ok(r) => match &r.outcome {
            InvokeOutcome::Success(b) => ("success".into(), json_or_string(b)),
            InvokeOutcome::FunctionError(e) => {
                ("error".into(), serde_json::to_value(e).unwrap_or_default())
            }
            InvokeOutcome::InitError(e) => (
                "init_error".into(),
                serde_json::to_value(e).unwrap_or_default(),
            ),
            InvokeOutcome::Timeout { .. } => ("timeout".into(), serde_json::Value::Null),
            InvokeOutcome::Crashed(exit) => {
                ("crash".into(), serde_json::Value::String(exit.to_string()))
            }
        },
        Err(e) => (
            "invoke_error".into(),
            serde_json::Value::String(e.to_string()),
        ),
    }
}

/// Wraps an invoker and records every invocation (event and response) in order; counts the
/// invocations in flight so the harness knows when work is done.
pub struct RecordingInvoker {
    inner: Arc<dyn Invoker>,
    clock: Mutex<Option<crate::clock::SharedClock>>,
    log: Arc<Mutex<Vec<Invocation>>>,
}

impl RecordingInvoker {
    /// Records what goes through `inner`.
    pub fn new(inner: Arc<dyn Invoker>) -> Self {
        RecordingInvoker {
            inner,
            clock: Mutex::new(None),
            log: Arc::default(),
        }
    }

    /// Stamps records with this clock's time (the emulator's).
    pub fn set_clock(&self, clock: crate::clock::SharedClock) {
        *self.clock.lock().unwrap() = Some(clock);
    }

    /// Everything recorded so far.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.log.lock().unwrap().clone()
    }
}

impl Decorator for RecordingInvoker {
    fn inner(&self) -> &Arc<dyn Invoker> {
        &self.inner
    }

    fn invoke_through(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        let at = self
            .clock
            .lock()
            .unwrap()
            .as_ref()
            .map(|c| c.now())
            .unwrap_or_else(Utc::now);
        let function = req.function.clone();
        let event = json_or_string(&req.payload);
        Box::pin(async move {
            let result = self.inner.invoke_in(slot, req).await;
            let (outcome, response) = describe(&result);
            let request_id = result
                .as_ref()
                .map(|r| r.request_id.clone())
                .unwrap_or_default();
            {
                let mut log = self.log.lock().unwrap();
                let seq = log.len() as u64;
                log.push(Invocation {
                    seq,
                    function,
                    request_id,
                    event,
                    outcome,
                    response,
                    at,
                });
            }
            result
        })
    }
}

/// How the harness reaches the functions.
pub enum HarnessInvoker {
    /// Handlers in this process.
    InProcess(InProcessInvoker),
    /// The built binaries under the emulator's Lambda runtime.
    Process {
        /// Run `cargo build` first.
        build: bool,
    },
    /// Any other invoker.
    Custom(Arc<dyn Invoker>),
}

impl From<InProcessInvoker> for HarnessInvoker {
    fn from(invoker: InProcessInvoker) -> Self {
        HarnessInvoker::InProcess(invoker)
    }
}

/// Harness settings.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// The emulator options; the clock defaults to manual and the port to a free one.
    pub up: EmulatorOptions,
    /// How long `run_until_idle` waits, in real time, before failing.
    pub idle_timeout: Duration,
}

impl HarnessOptions {
    /// The project at `root` (its `infra/template.yaml` and `infra/env.local.json`), a manual
    /// clock starting at 2026-01-01T00:00:00Z, a free port, queues in memory, function logs
    /// through `tracing` (the test's subscriber shows them).
    pub fn new(root: impl AsRef<Path>) -> Self {
        let mut up = EmulatorOptions::new(root.as_ref().to_path_buf());
        up.addr = ([127, 0, 0, 1], 0).into();
        up.clock = ClockSpec::Manual;
        up.clock_start = "2026-01-01T00:00:00Z".parse().expect("valid time");
        up.state_dir = None;
        // A test's output is its own: function lines go to its tracing subscriber, if any.
        up.log_format = crate::logs::LogFormat::Tracing;
        HarnessOptions {
            up,
            idle_timeout: Duration::from_secs(60),
        }
    }

    /// Starts the manual clock at `at`.
    pub fn starting_at(mut self, at: DateTime<Utc>) -> Self {
        self.up.clock_start = at;
        self
    }

    /// Journals queues under `dir` (to test restarts).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.up.state_dir = Some(dir.into());
        self
    }
}

/// A running emulator under test control.
pub struct Harness {
    emulator: Arc<Emulator>,
    recorder: Arc<RecordingInvoker>,
    idle_timeout: Duration,
}

impl Harness {
    /// Starts the emulator described by `options` with `invoker`.
    pub async fn start(
        options: HarnessOptions,
        invoker: impl Into<HarnessInvoker>,
    ) -> Result<Self, HarnessError> {
        let mut up = options.up;
        let inner: Option<Arc<dyn Invoker>> = match invoker.into() {
            HarnessInvoker::InProcess(i) => Some(Arc::new(i)),
            HarnessInvoker::Custom(i) => Some(i),
            HarnessInvoker::Process { build } => {
                up.invoker = InvokerChoice::Process {
                    release: false,
                    build,
                };
                None
            }
        };
        let slot: Arc<Mutex<Option<Arc<RecordingInvoker>>>> = Arc::default();
        let filled = slot.clone();
        let wrap: crate::emulator::Wrap =
            Box::new(move |inner: Arc<dyn Invoker>| -> Arc<dyn Invoker> {
                let recorder = Arc::new(RecordingInvoker::new(inner));
                *filled.lock().unwrap() = Some(recorder.clone());
                recorder
            });
        let emulator = Emulator::start_wrapped(up, inner, Some(wrap)).await?;
        let recorder = slot
            .lock()
            .unwrap()
            .take()
            .expect("the emulator wraps its invoker at start");
        recorder.set_clock(emulator.clock().clone());
        Ok(Harness {
            emulator,
            recorder,
            idle_timeout: options.idle_timeout,
        })
    }

    /// The emulator, for everything the harness does not wrap.
    pub fn emulator(&self) -> &Arc<Emulator> {
        &self.emulator
    }

    /// The SQS endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }

    /// Now on the emulator's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.emulator.clock().now()
    }

    /// Sends a message to a queue (logical id, name or short name); returns its id.
    pub fn send(&self, queue: &str, body: impl Into<String>) -> Result<String, HarnessError> {
        Ok(self.emulator.send(queue, body)?)
    }

    /// Fires a schedule now and returns the first attempt of the asynchronous invocation it
    /// makes; Lambda's retries of a failed attempt follow on the clock (`advance`).
    pub async fn fire(&self, schedule: &str) -> Result<InvokeResponse, HarnessError> {
        Ok(self.emulator.fire(schedule).await?)
    }

    /// Invokes a function (logical id, name or short name) synchronously, as
    /// `InvocationType: RequestResponse` does, and returns its answer.
    pub async fn invoke(
        &self,
        function: &str,
        payload: impl Into<Bytes>,
    ) -> Result<InvokeResponse, HarnessError> {
        Ok(self.emulator.invoke(function, payload).await?)
    }

    /// Invokes a function asynchronously, as `InvocationType: Event` does: queued at once,
    /// retried on the clock per its `EventInvokeConfig`, its record sent to its destination
    /// (read it with [`Self::messages`]). Returns the request id every attempt carries.
    pub fn invoke_async(
        &self,
        function: &str,
        payload: impl Into<Bytes>,
    ) -> Result<String, HarnessError> {
        Ok(self.emulator.invoke_async(function, payload)?.request_id)
    }

    /// Advances the manual clock by `by`, delivering every schedule occurrence and queue timer
    /// in between at its own time, then waits until the work it started is done.
    pub async fn advance(&self, by: Duration) -> Result<DateTime<Utc>, HarnessError> {
        let now = self.emulator.advance(by).await?;
        self.run_until_idle().await?;
        Ok(now)
    }

    /// What is still busy (see [`Emulator::busy`]); empty when idle.
    pub fn busy(&self) -> Vec<String> {
        self.emulator.busy()
    }

    /// Waits until nothing is in progress (see [`Emulator::run_until_idle`]), bounded by the
    /// idle timeout of real time.
    pub async fn run_until_idle(&self) -> Result<(), HarnessError> {
        Ok(self.emulator.run_until_idle(self.idle_timeout).await?)
    }

    /// Every invocation so far, in order.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.recorder.invocations()
    }

    /// The invocations of one function.
    pub fn invocations_of(&self, function: &str) -> Vec<Invocation> {
        self.invocations()
            .into_iter()
            .filter(|i| i.function == function)
            .collect()
    }

    /// The messages of a queue (visible, in flight and delayed).
    pub fn messages(&self, queue: &str) -> Result<Vec<MessageSnapshot>, HarnessError> {
        let name = self.emulator.resolve_queue(queue)?;
        Ok(self
            .emulator
            .engine()
            .peek_messages(&name, usize::MAX)
            .map_err(EmulatorError::from)?)
    }

    /// Purges a queue (the dashboard's **purge**, `nightshift purge`).
    pub fn purge(&self, queue: &str) -> Result<(), HarnessError> {
        self.emulator.purge(queue)?;
        Ok(())
    }

    /// Moves a dead-letter queue's messages back to their source (the dashboard's
    /// **redrive**, `nightshift dlq redrive`): all of them when `message_ids` is empty, else
    /// those; then waits until the work it started is done. Returns how many chosen messages
    /// moved (0 for a whole-queue redrive, which is a move task).
    pub async fn redrive(&self, dlq: &str, message_ids: &[String]) -> Result<u64, HarnessError> {
        let moved = if message_ids.is_empty() {
            self.emulator.redrive(dlq)?;
            0
        } else {
            self.emulator.redrive_messages(dlq, message_ids)?
        };
        self.run_until_idle().await?;
        Ok(moved)
    }

    /// Enables or disables a schedule (the dashboard's switch,
    /// `nightshift schedule enable|disable`).
    pub fn set_schedule_enabled(&self, schedule: &str, enabled: bool) -> Result<(), HarnessError> {
        Ok(self.emulator.set_schedule_enabled(schedule, enabled)?)
    }

    /// The chain of invocations a message or job caused, in the order they started, as
    /// `nightshift trace` prints it: asked of the control endpoint, the CLI's path.
    pub async fn trace(&self, id: &str) -> Result<TraceChain, HarnessError> {
        Ok(ControlClient::new(self.endpoint()).trace(id).await?)
    }

    /// The invocation history the dashboard shows (events, answers, log lines).
    pub fn history(&self) -> &crate::history::History {
        self.emulator.history()
    }

    /// The functions' EMF metrics matching `query` (`nightshift metrics`).
    pub fn metrics(
        &self,
        query: &crate::metrics::MetricsQuery,
    ) -> Vec<crate::metrics::MetricSummary> {
        self.emulator.history().metrics().query(query)
    }

    /// Stops everything.
    pub async fn shutdown(&self) {
        self.emulator.shutdown(Duration::from_secs(2)).await;
    }
}

/// Reads a payload as bytes for handlers: a helper for in-process closures.
pub fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("response serializes"))
}
