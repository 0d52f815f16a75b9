//! invoker: the one way an event reaches a function.
//!
//! [`Invoker`] is object safe, so the event source mappings and schedules hold an
//! `Arc<dyn Invoker>` and never know what is behind it:
//! - `runtime::ProcessInvoker`: the real function binaries run by the runtime's pool (in
//!   `runtime`, so that this module stays near the bottom: it imports only the leaf `xray`);
//! - [`RemoteInvoker`]: a Lambda Invoke API (`cargo lambda watch`, or anything that
//!   serves `POST /2015-03-31/functions/{name}/invocations`);
//! - [`InProcessInvoker`]: async closures registered by name, for tests.
//!
//! Decorators add one concern around another invoker (the emulator's in-flight count, the
//! harness's and the trace's recorders, injected faults): each implements [`Decorator`], and
//! [`Layers`] composes them.
//!
//! Every implementation reports the same [`InvokeOutcome`]s: success, a function
//! error as Lambda reports it (`errorType`, `errorMessage`), an init error, a timeout
//! or a crashed instance. Failing to reach the function at all is an [`InvokeError`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use bytes::Bytes;
use futures::FutureExt;
/// The boxed future [`Invoker::invoke`] returns.
pub use futures::future::BoxFuture;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

/// Largest synchronous invocation payload Lambda accepts, request or response (6 MB).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Delivers events to functions, whatever runs them.
pub trait Invoker: Send + Sync {
    /// Invokes `req.function` synchronously with `req.payload` and waits for its outcome.
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>>;

    /// Waits until `function` can start one more invocation and holds that place until the
    /// returned [`Slot`] is used by [`Invoker::invoke_in`] or dropped.
    ///
    /// A source whose messages age while they wait (an SQS poller: their visibility timeouts
    /// run from the receive) reserves first and receives second, so it never holds a batch
    /// it cannot start. Invokers without a concurrency limit of their own answer at once;
    /// wrappers pass the call on to what they wrap.
    fn reserve<'a>(&'a self, function: &'a str) -> BoxFuture<'a, Result<Slot, InvokeError>> {
        let _ = function;
        Box::pin(std::future::ready(Ok(Slot::unlimited())))
    }

    /// Invokes as [`Invoker::invoke`] does, in the place `slot` holds.
    fn invoke_in(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        // An invoker that reserves nothing has nothing to hand over.
        drop(slot);
        self.invoke(req)
    }
}

/// A wrapper that adds one concern (counting, recording, faults) around the invoker it wraps.
///
/// A decorator only says what it does with one invocation, in the slot reserved on what it
/// wraps; every decorator is an [`Invoker`] through the one forwarding below: `invoke` is
/// `invoke_in` an unlimited slot, `reserve` asks the wrapped invoker.
pub trait Decorator: Send + Sync {
    /// The invoker this one wraps.
    fn inner(&self) -> &Arc<dyn Invoker>;

    /// Invokes `req` through [`Decorator::inner`] in `slot`, with this decorator's concern.
    fn invoke_through(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>>;
}

impl<D: Decorator> Invoker for D {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        self.invoke_through(Slot::unlimited(), req)
    }

    fn reserve<'a>(&'a self, function: &'a str) -> BoxFuture<'a, Result<Slot, InvokeError>> {
        self.inner().reserve(function)
    }

    fn invoke_in(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        self.invoke_through(slot, req)
    }
}

/// Wraps an invoker in a decorator (to record or inject faults).
pub type Wrap = Box<dyn FnOnce(Arc<dyn Invoker>) -> Arc<dyn Invoker> + Send>;

/// Composes decorators: each layer wraps the ones added before it, so the first added sits
/// next to the functions and the last added sees every invocation first.
#[derive(Default)]
pub struct Layers {
    wraps: Vec<Wrap>,
}

impl Layers {
    /// No decorator yet.
    pub fn new() -> Self {
        Layers::default()
    }

    /// Adds `wrap` around the layers so far.
    pub fn layer(
        mut self,
        wrap: impl FnOnce(Arc<dyn Invoker>) -> Arc<dyn Invoker> + Send + 'static,
    ) -> Self {
        self.wraps.push(Box::new(wrap));
        self
    }

    /// Adds `wrap`, if any, around the layers so far.
    pub fn layer_if(self, wrap: Option<Wrap>) -> Self {
        match wrap {
            Some(wrap) => self.layer(wrap),
            None => self,
        }
    }

    /// `invoker` inside every layer.
    pub fn wrap(self, invoker: Arc<dyn Invoker>) -> Arc<dyn Invoker> {
        self.wraps
            .into_iter()
            .fold(invoker, |inner, wrap| wrap(inner))
    }

    /// The layers as one [`Wrap`], to apply later.
    pub fn into_wrap(self) -> Wrap {
        Box::new(move |invoker| self.wrap(invoker))
    }
}

/// A place reserved for one invocation by [`Invoker::reserve`]: a concurrency permit of the
/// function's instance pool, or nothing where the invoker has no limit.
#[derive(Debug)]
pub struct Slot {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slot {
    /// A slot that holds nothing (an invoker without a concurrency limit).
    pub fn unlimited() -> Self {
        Slot { permit: None }
    }

    /// A slot holding `permit`.
    pub fn held(permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        Slot {
            permit: Some(permit),
        }
    }

    /// The permit, if this slot holds one.
    pub fn into_permit(self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permit
    }
}

/// One synchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeRequest {
    /// The function's name, as in the template.
    pub function: String,
    /// The event, JSON bytes.
    pub payload: Bytes,
    /// The request id the function sees (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// What caused the invocation, for the invocation history: `sqs:<queue>`,
    /// `schedule:<name>`, `destination:<function>` (an on-success or on-failure record), `event`
    /// (an asynchronous invoke), `invoke` (a synchronous one).
    pub trigger: String,
    /// The SQS message ids of the batch when an event source mapping invokes; empty
    /// otherwise. The mapping knows them, so the invocation history need not parse the event.
    pub message_ids: Vec<String>,
    /// The X-Ray trace header the function sees (`Lambda-Runtime-Trace-Id`): a new trace, or
    /// the caller's continued ([`crate::xray`]). Chosen here rather than by the runtime, so the
    /// invocation history records the header the function got.
    pub trace_header: String,
    /// The trace ids (roots) this invocation's trace is linked to: for an event source
    /// mapping's batch, the traces of its messages ([`crate::xray::links`]); empty otherwise.
    pub trace_links: Vec<String>,
}

impl InvokeRequest {
    /// A request with a fresh random request id.
    pub fn new(function: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            function: function.into(),
            payload: payload.into(),
            request_id: crate::ids::uuid_string(),
            trigger: TRIGGER_INVOKE.to_owned(),
            message_ids: Vec::new(),
            trace_header: crate::xray::new_header(),
            trace_links: Vec::new(),
        }
    }

    /// The same request in the trace `trace_header` (a full `Root=…;Parent=…;Sampled=…`).
    pub fn with_trace_header(mut self, trace_header: impl Into<String>) -> Self {
        self.trace_header = trace_header.into();
        self
    }

    /// The same request with its trace linked to the traces `links` (trace ids, roots).
    pub fn with_trace_links(mut self, links: Vec<String>) -> Self {
        self.trace_links = links;
        self
    }

    /// The same request with the given trigger (see [`InvokeRequest::trigger`]).
    pub fn with_trigger(mut self, trigger: impl Into<String>) -> Self {
        self.trigger = trigger.into();
        self
    }

    /// The same request with the given request id.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = request_id.into();
        self
    }
}

/// The trigger of a synchronous invoke (the Invoke API, `nightshift invoke`, the harness).
pub const TRIGGER_INVOKE: &str = "invoke";
/// The trigger of an asynchronous (`Event`) invoke that came from no schedule.
pub const TRIGGER_EVENT: &str = "event";

/// What came back from one invocation that reached the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResponse {
    /// The request id of the invocation.
    pub request_id: String,
    /// How the invocation ended.
    pub outcome: InvokeOutcome,
    /// How long the function ran: for the process runtime, from handing out the
    /// event to its result (the REPORT line's `Duration`, init not included); for
    /// the other invokers, the measured call.
    pub duration: Duration,
    /// The cold start's init time (process start to the first `/next`), if this
    /// invocation started an instance.
    pub init_duration: Option<Duration>,
}

impl InvokeResponse {
    /// True if the function returned a result.
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, InvokeOutcome::Success(_))
    }

    /// The response payload of a successful invocation.
    pub fn payload(&self) -> Option<&Bytes> {
        match &self.outcome {
            InvokeOutcome::Success(payload) => Some(payload),
            _ => None,
        }
    }

    /// The error document Lambda's Invoke API would return for a failed invocation
    /// (with `X-Amz-Function-Error: Unhandled`), or `None` on success.
    pub fn lambda_error(&self) -> Option<FunctionError> {
        let id = &self.request_id;
        match &self.outcome {
            InvokeOutcome::Success(_) => None,
            InvokeOutcome::FunctionError(error) | InvokeOutcome::InitError(error) => {
                Some(error.clone())
            }
            InvokeOutcome::Timeout { after } => Some(FunctionError::new(
                "Sandbox.Timedout",
                format!(
                    "RequestId: {id} Error: Task timed out after {:.2} seconds",
                    after.as_secs_f64()
                ),
            )),
            InvokeOutcome::Crashed(exit) => Some(FunctionError::new(
                "Runtime.ExitError",
                format!("RequestId: {id} Error: Runtime exited with error: {exit}"),
            )),
        }
    }
}

/// How an invocation that reached the function ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The function returned this payload.
    Success(Bytes),
    /// The function reported an error (`/invocation/{id}/error`, or a handler panic).
    FunctionError(FunctionError),
    /// The instance failed to initialise: it posted `/init/error`, or exited
    /// before asking for its first event.
    InitError(FunctionError),
    /// The function did not answer within its timeout; its instance was killed.
    Timeout {
        /// The timeout that was exceeded.
        after: Duration,
    },
    /// The instance exited while it held the event.
    Crashed(ExitInfo),
}

/// A function error as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error_type}: {error_message}")]
pub struct FunctionError {
    /// `errorType`, e.g. the Rust type name of the handler's error.
    #[serde(rename = "errorType", default)]
    pub error_type: String,
    /// `errorMessage`.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
}

impl FunctionError {
    /// A function error with this type and message.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }

    /// Reads an error document, falling back to `fallback_type` and the raw text
    /// when the body is not the JSON Lambda expects.
    pub fn from_body(body: &[u8], fallback_type: &str) -> Self {
        match serde_json::from_slice::<FunctionError>(body) {
            Ok(error) if !error.error_type.is_empty() || !error.error_message.is_empty() => error,
            _ => Self::new(fallback_type, String::from_utf8_lossy(body)),
        }
    }

    /// The JSON document (`{"errorType":…,"errorMessage":…}`).
    pub fn to_json(&self) -> Bytes {
        // Serialising two strings cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitInfo {
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did (Unix).
    pub signal: Option<i32>,
}

impl From<std::process::ExitStatus> for ExitInfo {
    fn from(status: std::process::ExitStatus) -> Self {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal = None;
        Self {
            code: status.code(),
            signal,
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit status {code}"),
            (None, Some(9)) => f.write_str("signal: killed"),
            (None, Some(15)) => f.write_str("signal: terminated"),
            (None, Some(6)) => f.write_str("signal: aborted"),
            (None, Some(11)) => f.write_str("signal: segmentation fault"),
            (None, Some(signal)) => write!(f, "signal: {signal}"),
            (None, None) => f.write_str("exited"),
        }
    }
}

/// The invocation could not reach the function.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No function of that name is known.
    #[error("function not found: {0}")]
    UnknownFunction(String),
    /// The payload is over Lambda's 6 MB limit.
    #[error("request payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The function's reserved concurrency is zero.
    #[error("function {0} is throttled (reserved concurrency 0)")]
    Throttled(String),
    /// The runtime is shutting down.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The function binary could not be started.
    #[error("cannot start function {function}: {source}")]
    Spawn {
        /// The function's name.
        function: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The remote endpoint could not be reached or did not answer.
    #[error("cannot reach {endpoint}: {message}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The remote endpoint refused the invocation (not a function error).
    #[error("remote invoke failed with status {status}: {body}")]
    Remote {
        /// The HTTP status.
        status: u16,
        /// The response body, as text.
        body: String,
    },
}

/// A Lambda Invoke API over HTTP: `cargo lambda watch`'s port, or anything that
/// serves `POST {endpoint}/2015-03-31/functions/{name}/invocations`.
///
/// Requests are not SigV4-signed, so real AWS is only reachable through a signing
/// proxy. A function error is recognised either by AWS's `X-Amz-Function-Error`
/// header or, as `cargo lambda watch` reports it, by a 5xx status whose body is an
/// error document.
#[derive(Clone)]
pub struct RemoteInvoker {
    endpoint: String,
    timeout: Option<Duration>,
    client: Client<HttpConnector, Body>,
}

impl RemoteInvoker {
    /// Invokes through the Invoke API at `endpoint`, e.g. `http://127.0.0.1:9000`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into().trim_end_matches('/').to_owned();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            endpoint,
            timeout: None,
            client,
        }
    }

    /// Gives up on an invocation after `timeout` and reports it as timed out.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The endpoint this invoker posts to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn call(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let started = tokio::time::Instant::now();
        let uri = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.endpoint, req.function
        );
        let unreachable = |message: String| InvokeError::Unreachable {
            endpoint: self.endpoint.clone(),
            message,
        };
        let http_req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .header("lambda-runtime-aws-request-id", &req.request_id)
            // Lambda's Invoke API takes the caller's trace from this header.
            .header("x-amzn-trace-id", &req.trace_header)
            .body(Body::from(req.payload.clone()))
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(http_req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(Body::new(body), MAX_PAYLOAD_BYTES + 1024)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            Ok::<_, InvokeError>((parts, body))
        };
        let (parts, body) = match self.timeout {
            None => exchange.await?,
            Some(timeout) => match tokio::time::timeout(timeout, exchange).await {
                Ok(answer) => answer?,
                Err(_) => {
                    return Ok(InvokeResponse {
                        request_id: req.request_id,
                        outcome: InvokeOutcome::Timeout { after: timeout },
                        duration: started.elapsed(),
                        init_duration: None,
                    });
                }
            },
        };
        let request_id = parts
            .headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or(req.request_id);
        let function_error = parts
            .headers
            .get("x-amz-function-error")
            .map(|v| v.to_str().unwrap_or("Unhandled").to_owned());
        let outcome = match function_error {
            Some(kind) => classify_error(FunctionError::from_body(&body, &kind)),
            None if parts.status.is_success() => InvokeOutcome::Success(body),
            None if parts.status.is_server_error() && is_error_document(&body) => {
                classify_error(FunctionError::from_body(&body, "Unhandled"))
            }
            None => {
                return Err(InvokeError::Remote {
                    status: parts.status.as_u16(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
            }
        };
        Ok(InvokeResponse {
            request_id,
            outcome,
            duration: started.elapsed(),
            init_duration: None,
        })
    }
}

/// True if `body` is a JSON object carrying `errorType` or `errorMessage`.
fn is_error_document(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .map(|doc| doc.contains_key("errorType") || doc.contains_key("errorMessage"))
        .unwrap_or(false)
}

/// Lambda reports a timeout as an ordinary function error; it is a timeout here.
fn classify_error(error: FunctionError) -> InvokeOutcome {
    if error.error_type == "Sandbox.Timedout" || error.error_message.contains("Task timed out") {
        InvokeOutcome::Timeout {
            after: timed_out_after(&error.error_message).unwrap_or_default(),
        }
    } else {
        InvokeOutcome::FunctionError(error)
    }
}

/// Reads the timeout out of Lambda's "Task timed out after 3.00 seconds".
fn timed_out_after(message: &str) -> Option<Duration> {
    let rest = &message[message.find("timed out after ")? + "timed out after ".len()..];
    let secs: f64 = rest.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

impl Invoker for RemoteInvoker {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        self.call(req).boxed()
    }
}

/// What an in-process handler is told about its invocation.
#[derive(Debug, Clone)]
pub struct InvokeContext {
    /// The request id.
    pub request_id: String,
    /// The function's name.
    pub function_name: String,
    /// The X-Ray trace header (`Lambda-Runtime-Trace-Id`, `Context::xray_trace_id`).
    pub trace_header: String,
    /// When the invocation times out, if the function has a timeout (tokio time, so
    /// it follows `tokio::time::pause`).
    pub deadline: Option<tokio::time::Instant>,
}

impl InvokeContext {
    /// Time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(tokio::time::Instant::now()))
    }
}

/// An in-process function: payload and context in, payload or error out.
pub type Handler = Arc<
    dyn Fn(Bytes, InvokeContext) -> BoxFuture<'static, Result<Bytes, FunctionError>> + Send + Sync,
>;

#[derive(Clone)]
struct InProcessFunction {
    handler: Handler,
    timeout: Option<Duration>,
}

/// Async closures registered by function name, for tests. A panic in a handler
/// becomes a function error, as `lambda_runtime` reports it.
#[derive(Clone, Default)]
pub struct InProcessInvoker {
    functions: HashMap<String, InProcessFunction>,
}

impl InProcessInvoker {
    /// An invoker with no functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` as `name`, without a timeout.
    pub fn with_function<F, Fut>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Bytes, InvokeContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, FunctionError>> + Send + 'static,
    {
        self.with_function_timeout(name, None, handler)
    }

    /// Registers `handler` as `name`; past `timeout` an invocation is dropped and
    /// reported as timed out.
    pub fn with_function_timeout<F, Fut>(
        mut self,
        name: impl Into<String>,
        timeout: Option<Duration>,
        handler: F,
    ) -> Self
    where
        F: Fn(Bytes, InvokeContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, FunctionError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |payload, ctx| handler(payload, ctx).boxed());
        self.functions
            .insert(name.into(), InProcessFunction { handler, timeout });
        self
    }

    /// The names of the registered functions.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    async fn call(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let function = self
            .functions
            .get(&req.function)
            .ok_or_else(|| InvokeError::UnknownFunction(req.function.clone()))?;
        if req.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::PayloadTooLarge {
                size: req.payload.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let started = tokio::time::Instant::now();
        let ctx = InvokeContext {
            request_id: req.request_id.clone(),
            function_name: req.function.clone(),
            trace_header: req.trace_header.clone(),
            deadline: function.timeout.map(|t| started + t),
        };
        // A panic can happen while building the future or while polling it.
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            (function.handler)(req.payload.clone(), ctx)
        }));
        let result = match run {
            Err(panic) => Err(panic),
            Ok(fut) => {
                let fut = AssertUnwindSafe(fut).catch_unwind();
                match function.timeout {
                    None => fut.await,
                    Some(timeout) => match tokio::time::timeout(timeout, fut).await {
                        Ok(result) => result,
                        Err(_) => {
                            return Ok(InvokeResponse {
                                request_id: req.request_id,
                                outcome: InvokeOutcome::Timeout { after: timeout },
                                duration: started.elapsed(),
                                init_duration: None,
                            });
                        }
                    },
                }
            }
        };
        let outcome = match result {
            Ok(Ok(payload)) => InvokeOutcome::Success(payload),
            Ok(Err(error)) => InvokeOutcome::FunctionError(error),
            Err(panic) => InvokeOutcome::FunctionError(panic_error(panic.as_ref())),
        };
        Ok(InvokeResponse {
            request_id: req.request_id,
            outcome,
            duration: started.elapsed(),
            init_duration: None,
        })
    }
}

/// The error `lambda_runtime` reports for a panicking handler.
fn panic_error(panic: &(dyn std::any::Any + Send)) -> FunctionError {
    let message = if let Some(msg) = panic.downcast_ref::<&str>() {
        format!("Lambda panicked: {msg}")
    } else if let Some(msg) = panic.downcast_ref::<String>() {
        format!("Lambda panicked: {msg}")
    } else {
        "Lambda panicked".to_owned()
    };
    FunctionError::new(PANIC_ERROR_TYPE, message)
}

/// The `errorType` `lambda_runtime` 1.x gives a panic (the type name of the payload).
pub const PANIC_ERROR_TYPE: &str = "&alloc::boxed::Box<dyn core::any::Any + core::marker::Send>";

impl Invoker for InProcessInvoker {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        self.call(req).boxed()
    }
}
