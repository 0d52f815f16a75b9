//! invoke_async: Lambda's asynchronous invocation, as the `Event` invocation type runs it.
//!
//! [`AsyncInvoker::invoke_async`] accepts an event at once (Lambda's `202`) and runs it in a
//! task of its own through the emulator's [`Invoker`]: at once when an instance is free (the
//! invoker's pool decides), then again on the emulator's clock after a function error or
//! timeout, per the function's `EventInvokeConfig`:
//! - `MaximumRetryAttempts` (0-2, default 2) retries, [`FUNCTION_ERROR_RETRY_DELAYS`] apart;
//! - throttling and service errors are retried with a backoff from 1 s to 5 minutes that does
//!   not count as an attempt; a function with reserved concurrency 0 sends its events to the
//!   on-failure destination at once, without retries;
//! - no retry after `MaximumEventAgeInSeconds` (60-21600, default 6 hours) from acceptance: the
//!   event leaves the queue at that age.
//!
//! A discarded event's invocation record goes to the on-failure destination (an SQS queue of
//! the emulator, or a function, invoked asynchronously with the record), or, without one, the
//! event itself to the function's dead-letter queue; a success's record goes to the on-success
//! destination. See [`record`] for the shapes. Every attempt of one event carries the same
//! request id, as Lambda's retries do.
//!
//! Layout: this file holds the configuration and the API, [`record`] the records, `event`
//! the life of one event (attempts, retries, where it ends).
//!
//! Source of the rules: "How Lambda handles errors and retries with asynchronous invocation",
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html>, and
//! "Capturing records of Lambda asynchronous invocations",
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>.

mod event;
pub mod record;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::activity::Activity;
use crate::clock::SharedClock;
use crate::invoker::{InvokeError, InvokeResponse, Invoker};
use crate::shutdown::Shutdown;
use crate::sqs::SqsEngine;
use crate::template::{self, Destination, Template};

/// Waits before the first and the second retry after a function error: "If the function returns
/// an error, by default Lambda attempts to run it two more times, with a one-minute wait between
/// the first two attempts, and two minutes between the second and third attempts."
/// (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html>)
pub const FUNCTION_ERROR_RETRY_DELAYS: [Duration; 2] =
    [Duration::from_secs(60), Duration::from_secs(120)];

/// First wait after a throttle or service error: "The retry interval increases exponentially
/// from 1 second after the first attempt to a maximum of 5 minutes." (same page)
pub const SYSTEM_RETRY_BASE: Duration = Duration::from_secs(1);

/// Longest wait after a throttle or service error; see [`SYSTEM_RETRY_BASE`].
pub const SYSTEM_RETRY_MAX: Duration = Duration::from_secs(300);

/// Largest event an asynchronous invocation accepts: "For asynchronous invocations, the maximum
/// payload size is 1 MB." (<https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html>)
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Where an invocation record (or a dead-lettered event) goes, resolved to emulator names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An SQS queue of the engine, by name.
    Queue(String),
    /// A function, by name, invoked asynchronously with the record.
    Function(String),
    /// Not modelled (SNS, EventBridge, S3): the record is logged and dropped.
    Unmodelled {
        /// `SNS`, `EventBridge`, `S3`.
        kind: String,
        /// The destination as written.
        target: String,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Queue(q) => write!(f, "queue {q}"),
            Target::Function(name) => write!(f, "function {name}"),
            Target::Unmodelled { kind, target } => write!(f, "{kind} {target}"),
        }
    }
}

/// One function's asynchronous invocation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncFunction {
    /// The function's name (what the invoker knows it by).
    pub name: String,
    /// Its unqualified ARN, in records.
    pub arn: String,
    /// `MaximumRetryAttempts` after a function error (0-2).
    pub max_retry_attempts: u32,
    /// `MaximumEventAgeInSeconds`.
    pub max_event_age: Duration,
    /// The on-success destination.
    pub on_success: Option<Target>,
    /// The on-failure destination.
    pub on_failure: Option<Target>,
    /// The dead-letter queue (engine name), used when there is no on-failure destination.
    pub dead_letter_queue: Option<String>,
}

impl AsyncFunction {
    /// A function with Lambda's defaults (2 retries, 6 hours, no destination), its ARN in
    /// `us-east-1` and the emulator's account.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let defaults = template::EventInvokeConfig::default();
        AsyncFunction {
            arn: format!(
                "arn:aws:lambda:us-east-1:{}:function:{name}",
                template::ACCOUNT_ID
            ),
            name,
            max_retry_attempts: defaults.max_retry_attempts,
            max_event_age: Duration::from_secs(defaults.max_event_age_s.into()),
            on_success: None,
            on_failure: None,
            dead_letter_queue: None,
        }
    }

    /// The settings of a template function, its destinations resolved to queue and function
    /// names.
    pub fn from_template(function: &template::FunctionDef, template: &Template) -> Self {
        let target = |d: &Destination| match d {
            Destination::Queue(id) => Target::Queue(
                template
                    .queue(id)
                    .map_or_else(|| id.clone(), |q| q.name.clone()),
            ),
            Destination::Function(id) => Target::Function(
                template
                    .function(id)
                    .map_or_else(|| id.clone(), |f| f.name.clone()),
            ),
            Destination::Unmodelled { kind, target } => Target::Unmodelled {
                kind: kind.clone(),
                target: target.clone(),
            },
        };
        let config = &function.event_invoke;
        AsyncFunction {
            name: function.name.clone(),
            arn: function.arn.clone(),
            max_retry_attempts: config.max_retry_attempts,
            max_event_age: Duration::from_secs(config.max_event_age_s.into()),
            on_success: config.on_success.as_ref().map(target),
            on_failure: config.on_failure.as_ref().map(target),
            dead_letter_queue: function.dead_letter_queue.as_ref().map(|id| {
                template
                    .queue(id)
                    .map_or_else(|| id.clone(), |q| q.name.clone())
            }),
        }
    }
}

/// One function's asynchronous invocations, for `nightshift status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncStats {
    /// The function's name.
    pub function: String,
    /// Events accepted.
    pub accepted: u64,
    /// Attempts made (retries included, whether or not they reached the function).
    pub attempts: u64,
    /// Events the function processed successfully.
    pub succeeded: u64,
    /// Events discarded after their retries or their age ran out (sent to the on-failure
    /// destination or the dead-letter queue, or dropped without either).
    pub discarded: u64,
    /// Events accepted and not yet done: running, or waiting for a retry.
    pub pending: u64,
}

/// The first attempt of an accepted event, for callers that show it (`fire`, the CLI).
#[derive(Debug)]
pub struct FirstAttempt {
    /// What the first attempt returned.
    pub result: Result<InvokeResponse, InvokeError>,
    /// When the event will be tried again, if it will.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// An event the queue accepted.
#[derive(Debug)]
pub struct Accepted {
    /// The request id every attempt of the event carries.
    pub request_id: String,
    first_attempt: oneshot::Receiver<FirstAttempt>,
}

impl Accepted {
    /// Waits for the event's first attempt; `None` if it was never made (the emulator stopped).
    pub async fn first_attempt(self) -> Option<FirstAttempt> {
        self.first_attempt.await.ok()
    }
}

/// The asynchronous event queues of the emulator's functions; cheap to clone.
#[derive(Clone)]
pub struct AsyncInvoker {
    inner: Arc<Inner>,
}

impl fmt::Debug for AsyncInvoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncInvoker")
            .field("functions", &self.inner.functions.len())
            .field("pending", &self.pending())
            .finish()
    }
}

struct Inner {
    functions: HashMap<String, Arc<AsyncFunction>>,
    /// By function name; every function of `functions` has an entry.
    stats: HashMap<String, Mutex<AsyncStats>>,
    invoker: Arc<dyn Invoker>,
    sqs: Option<SqsEngine>,
    clock: SharedClock,
    activity: Activity,
    stop: Shutdown,
}

impl AsyncInvoker {
    /// Queues for `functions`, run through `invoker` on `clock`; records and dead-lettered
    /// events go to `sqs` (`None`: they are logged and dropped).
    pub fn new(
        functions: impl IntoIterator<Item = AsyncFunction>,
        invoker: Arc<dyn Invoker>,
        sqs: Option<SqsEngine>,
        clock: SharedClock,
    ) -> Self {
        let functions: HashMap<String, Arc<AsyncFunction>> = functions
            .into_iter()
            .map(|f| (f.name.clone(), Arc::new(f)))
            .collect();
        let stats = functions
            .keys()
            .map(|name| {
                let stats = AsyncStats {
                    function: name.clone(),
                    ..AsyncStats::default()
                };
                (name.clone(), Mutex::new(stats))
            })
            .collect();
        AsyncInvoker {
            inner: Arc::new(Inner {
                functions,
                stats,
                invoker,
                sqs,
                clock,
                activity: Activity::default(),
                stop: Shutdown::new(),
            }),
        }
    }

    /// Queues for every function of `template`, with its settings.
    pub fn from_template(
        template: &Template,
        invoker: Arc<dyn Invoker>,
        sqs: Option<SqsEngine>,
        clock: SharedClock,
    ) -> Self {
        let functions = template
            .functions
            .values()
            .map(|f| AsyncFunction::from_template(f, template));
        Self::new(functions, invoker, sqs, clock)
    }

    /// The settings of a function, by name or ARN.
    pub fn function(&self, name: &str) -> Option<&AsyncFunction> {
        self.inner.find(name).map(Arc::as_ref)
    }

    /// Accepts `payload` for `function` (name or ARN) and runs it in the background. Fails,
    /// as Lambda's Invoke API does, for an unknown function, a payload over
    /// [`MAX_ASYNC_PAYLOAD_BYTES`], or once the emulator is stopping.
    pub fn invoke_async(
        &self,
        function: &str,
        payload: impl Into<Bytes>,
    ) -> Result<Accepted, InvokeError> {
        self.inner.accept(
            function,
            payload.into(),
            crate::invoker::TRIGGER_EVENT,
            None,
        )
    }

    /// [`Self::invoke_async`] with the trigger the invocation history shows (a schedule's
    /// `schedule:<name>`).
    pub fn invoke_async_from(
        &self,
        function: &str,
        payload: impl Into<Bytes>,
        trigger: &str,
    ) -> Result<Accepted, InvokeError> {
        self.inner.accept(function, payload.into(), trigger, None)
    }

    /// [`Self::invoke_async`] continuing a caller's trace: every attempt's invocation carries
    /// `trace_header` (an `X-Amzn-Trace-Id` value for the function) instead of a new trace.
    pub fn invoke_async_traced(
        &self,
        function: &str,
        payload: impl Into<Bytes>,
        trace_header: String,
    ) -> Result<Accepted, InvokeError> {
        self.inner.accept(
            function,
            payload.into(),
            crate::invoker::TRIGGER_EVENT,
            Some(trace_header),
        )
    }

    /// Resolves once every accepted event is waiting for an instant after the clock's now (or
    /// done): everything due has run.
    pub async fn wait_idle(&self) {
        self.inner.activity.wait_idle(&self.inner.clock).await;
    }

    /// True when every accepted event waits for an instant after the clock's now (or is done).
    pub fn is_idle(&self) -> bool {
        self.inner.activity.is_idle(self.inner.clock.now())
    }

    /// The queues' tasks, for a component that hands them work and waits with them
    /// ([`Activity::sibling`]).
    pub(crate) fn activity(&self) -> &Activity {
        &self.inner.activity
    }

    /// Events accepted and not yet done (running or waiting for a retry).
    pub fn pending(&self) -> usize {
        self.inner.activity.len()
    }

    /// The earliest instant an event waits for, if any.
    pub fn next_retry(&self) -> Option<DateTime<Utc>> {
        self.inner.activity.next_parked(self.inner.clock.now())
    }

    /// Per-function counters, by function name.
    pub fn stats(&self) -> Vec<AsyncStats> {
        let mut all: Vec<AsyncStats> = self.inner.stats.values().map(|s| lock(s).clone()).collect();
        all.sort_by(|a, b| a.function.cmp(&b.function));
        all
    }

    /// Stops accepting events and abandons the waiting ones (logged); resolves once every
    /// event's task has ended.
    pub async fn stop(&self) {
        self.inner.stop.trigger();
        self.inner.activity.wait_empty().await;
    }
}

// Poisoning only means a panic elsewhere; counters stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Updates the counters of `function`.
    fn count(&self, function: &str, update: impl FnOnce(&mut AsyncStats)) {
        if let Some(stats) = self.stats.get(function) {
            update(&mut lock(stats));
        }
    }

    fn find(&self, name: &str) -> Option<&Arc<AsyncFunction>> {
        self.functions
            .get(name)
            .or_else(|| self.functions.values().find(|f| f.arn == name))
    }

    fn accept(
        self: &Arc<Self>,
        function: &str,
        payload: Bytes,
        trigger: &str,
        trace_header: Option<String>,
    ) -> Result<Accepted, InvokeError> {
        if self.stop.is_triggered() {
            return Err(InvokeError::ShuttingDown);
        }
        let function = self
            .find(function)
            .cloned()
            .ok_or_else(|| InvokeError::UnknownFunction(function.to_owned()))?;
        if payload.len() > MAX_ASYNC_PAYLOAD_BYTES {
            return Err(InvokeError::PayloadTooLarge {
                size: payload.len(),
                limit: MAX_ASYNC_PAYLOAD_BYTES,
            });
        }
        let request_id = crate::ids::uuid_string();
        let accepted_at = self.clock.now();
        let age = TimeDelta::from_std(function.max_event_age).unwrap_or(TimeDelta::MAX);
        let (first_tx, first_rx) = oneshot::channel();
        let event = event::Event {
            function,
            request_id: request_id.clone(),
            payload,
            trigger: trigger.to_owned(),
            trace_header,
            expires_at: accepted_at
                .checked_add_signed(age)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            invoke_count: 0,
            system_retries: 0,
            first_attempt: Some(first_tx),
        };
        self.count(&event.function.name, |s| {
            s.accepted += 1;
            s.pending += 1;
        });
        let tracker = self.activity.track();
        let inner = self.clone();
        tokio::spawn(async move { inner.run(event, accepted_at, tracker).await });
        Ok(Accepted {
            request_id,
            first_attempt: first_rx,
        })
    }
}
