//! runtime: the Lambda Runtime API and a pool of real function processes.
//!
//! A [`Runtime`] knows functions by name ([`FunctionConfig`]) and runs their
//! binaries the way Lambda runs a `provided.al2023` bootstrap:
//! - cold start on demand, warm reuse of idle instances, at most
//!   [`FunctionConfig::concurrency`] instances per function (further invocations
//!   wait for a free one);
//! - each instance gets its own Runtime API listener (`AWS_LAMBDA_RUNTIME_API` =
//!   `127.0.0.1:port`) and the standard Lambda environment;
//! - `Lambda-Runtime-Deadline-Ms` is the absolute wall-clock deadline, and the
//!   timeout is enforced in real time by killing the instance;
//! - an instance that exits mid-invocation fails it as crashed and is replaced on
//!   demand; an init error (`/init/error`, or an exit before the first `/next`)
//!   fails the invocation with that error;
//! - stdout/stderr are forwarded line by line to a [`LogSink`] with the function
//!   name and request id, followed by a Lambda-style `REPORT` line per invocation.
//!
//! Function timeouts are real time on purpose: they kill real processes, whatever
//! the emulator's clock says.

mod api;
pub use api::MAX_RESPONSE_BYTES;
mod invoker;
pub use invoker::ProcessInvoker;
mod pool;
mod process;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::invoker::{InvokeError, InvokeRequest, InvokeResponse, Slot};
use pool::FunctionPool;
use process::{Registry, Signal};

/// Concurrency of a function whose config does not set one.
pub const DEFAULT_CONCURRENCY: u32 = 10;

/// Lambda's default function timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The most log an invocation returns with `X-Amz-Log-Type: Tail`: "the last 4 KB of the
/// execution log" (<https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html>).
pub const LOG_TAIL_BYTES: usize = 4 * 1024;

/// Cuts `text` to its last `max` bytes or fewer, at a character boundary.
fn keep_last(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.drain(..start);
}

/// Lambda's default memory size, MB.
pub const DEFAULT_MEMORY_MB: u32 = 128;

/// How long an instance may take from process start to its first `/next`
/// (Lambda's init phase limit). Past it, the instance is killed and a new one runs its init
/// again within the function timeout, as Lambda retries the init in the invoke phase.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One function as the runtime runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub name: String,
    /// The binary to run (the `bootstrap`).
    pub binary: PathBuf,
    /// The function's environment variables.
    pub env: BTreeMap<String, String>,
    /// The invocation timeout.
    pub timeout: Duration,
    /// Memory size in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; reported, not enforced).
    pub memory_mb: u32,
    /// Reserved (maximum) concurrency: most instances at once. 0 throttles every
    /// invocation, as Lambda does.
    pub concurrency: u32,
    /// The `Handler` (`_HANDLER`).
    pub handler: String,
}

impl FunctionConfig {
    /// A function with Lambda's defaults: 3 s timeout, 128 MB, handler `bootstrap`,
    /// concurrency [`DEFAULT_CONCURRENCY`], no environment.
    pub fn new(name: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            binary: binary.into(),
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            memory_mb: DEFAULT_MEMORY_MB,
            concurrency: DEFAULT_CONCURRENCY,
            handler: "bootstrap".to_owned(),
        }
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the memory size.
    pub fn with_memory_mb(mut self, memory_mb: u32) -> Self {
        self.memory_mb = memory_mb;
        self
    }

    /// Sets the reserved concurrency.
    pub fn with_concurrency(mut self, concurrency: u32) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Adds an environment variable.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The function's stdout.
    Stdout,
    /// The function's stderr.
    Stderr,
    /// The runtime's own lines (`START`, `END`, `REPORT`, timeouts, crashes).
    Platform,
}

/// One line of a function's log.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    /// The function's name.
    pub function: &'a str,
    /// The instance that wrote it (numbered from 1 per runtime).
    pub instance: u64,
    /// The request id the instance held when the line was read.
    pub request_id: Option<&'a str>,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its line ending.
    pub line: &'a str,
}

/// Receives every log line of every instance.
pub type LogSink = Arc<dyn Fn(&LogLine<'_>) + Send + Sync>;

/// A sink that forwards lines through `tracing` (target `nightshift::function`):
/// function output and `REPORT` at info, `START`/`END` at debug.
pub fn tracing_log_sink() -> LogSink {
    Arc::new(|line: &LogLine<'_>| {
        let request_id = line.request_id.unwrap_or("-");
        let quiet = line.stream == LogStream::Platform
            && (line.line.starts_with("START ") || line.line.starts_with("END "));
        let (function, instance, stream) = (line.function, line.instance, line.stream);
        if quiet {
            tracing::debug!(target: "nightshift::function", function, request_id, "{}", line.line);
        } else {
            tracing::info!(
                target: "nightshift::function",
                function,
                request_id,
                instance,
                ?stream,
                "{}",
                line.line
            );
        }
    })
}

/// Settings shared by every function of a runtime.
#[derive(Clone)]
pub struct RuntimeOptions {
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`, and the region of the function ARNs.
    pub region: String,
    /// The account id of the function ARNs.
    pub account_id: String,
    /// Variables every function gets (e.g. `AWS_ENDPOINT_URL_SQS`), under its own.
    pub env: BTreeMap<String, String>,
    /// Inherit the emulator's whole environment instead of only `PATH`.
    pub inherit_env: bool,
    /// The functions' working directory (the emulator's if `None`).
    pub working_dir: Option<PathBuf>,
    /// How long a new instance may take to reach its first `/next` before its init is run
    /// again within the function timeout ([`DEFAULT_INIT_TIMEOUT`]).
    pub init_timeout: Duration,
    /// Where log lines go.
    pub log_sink: LogSink,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            account_id: "000000000000".to_owned(),
            env: BTreeMap::new(),
            inherit_env: false,
            working_dir: None,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            log_sink: tracing_log_sink(),
        }
    }
}

impl std::fmt::Debug for RuntimeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeOptions")
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("env", &self.env)
            .field("inherit_env", &self.inherit_env)
            .field("working_dir", &self.working_dir)
            .field("init_timeout", &self.init_timeout)
            .finish_non_exhaustive()
    }
}

/// Errors of the runtime's own API (invocations report [`InvokeError`]).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A function of that name is already registered.
    #[error("function already registered: {0}")]
    DuplicateFunction(String),
    /// The runtime is shutting down.
    #[error("the runtime is shutting down")]
    ShuttingDown,
}

/// Counters and instances of one function, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionStats {
    /// The function's name.
    pub name: String,
    /// Live instances (busy + idle).
    pub instances: usize,
    /// Instances running an invocation.
    pub busy: usize,
    /// Warm instances waiting for work.
    pub idle: usize,
    /// Invocations that reached an instance.
    pub invocations: u64,
    /// Failed invocations of any kind (function error, init error, timeout, crash).
    pub errors: u64,
    /// Invocations that timed out.
    pub timeouts: u64,
    /// Invocations whose instance exited mid-invocation.
    pub crashes: u64,
    /// Invocations failed by an init error.
    pub init_errors: u64,
    /// Instances started.
    pub cold_starts: u64,
}

/// What [`Runtime::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Instances that exited within the grace period after SIGTERM.
    pub terminated: usize,
    /// Instances killed with SIGKILL after the grace period.
    pub killed: usize,
}

/// The pool of function processes. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    options: RuntimeOptions,
    /// Log buffers of invocations whose log is wanted back, by request id.
    tails: Tails,
    functions: RwLock<HashMap<String, Arc<FunctionPool>>>,
    registry: Arc<Registry>,
    next_instance: Arc<std::sync::atomic::AtomicU64>,
}

impl Runtime {
    /// A runtime with no functions yet.
    pub fn new(mut options: RuntimeOptions) -> Self {
        let tails: Tails = Arc::default();
        let sink = options.log_sink.clone();
        let watched = tails.clone();
        options.log_sink = Arc::new(move |line: &LogLine<'_>| {
            if let Some(id) = line.request_id {
                let mut tails = watched.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tail) = tails.get_mut(id) {
                    tail.push(line);
                }
            }
            sink(line);
        });
        Self {
            inner: Arc::new(Inner {
                options,
                tails,
                functions: RwLock::new(HashMap::new()),
                registry: Arc::new(Registry::default()),
                next_instance: Arc::new(std::sync::atomic::AtomicU64::new(1)),
            }),
        }
    }

    /// The runtime's options.
    pub fn options(&self) -> &RuntimeOptions {
        &self.inner.options
    }

    /// Registers a function; no instance starts until it is invoked.
    pub fn add_function(&self, config: FunctionConfig) -> Result<(), RuntimeError> {
        if self.inner.registry.is_closed() {
            return Err(RuntimeError::ShuttingDown);
        }
        let mut functions = self
            .inner
            .functions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if functions.contains_key(&config.name) {
            return Err(RuntimeError::DuplicateFunction(config.name));
        }
        let pool = FunctionPool::new(
            config.clone(),
            self.inner.options.clone(),
            self.inner.registry.clone(),
            self.inner.next_instance.clone(),
        );
        functions.insert(config.name, Arc::new(pool));
        Ok(())
    }

    /// The registered functions' configs, sorted by name.
    pub fn functions(&self) -> Vec<FunctionConfig> {
        let mut configs: Vec<_> = self.pools().iter().map(|p| p.config().clone()).collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        configs
    }

    fn pools(&self) -> Vec<Arc<FunctionPool>> {
        let functions = self
            .inner
            .functions
            .read()
            .unwrap_or_else(|e| e.into_inner());
        functions.values().cloned().collect()
    }

    fn pool(&self, name: &str) -> Option<Arc<FunctionPool>> {
        let functions = self
            .inner
            .functions
            .read()
            .unwrap_or_else(|e| e.into_inner());
        functions.get(name).cloned()
    }

    /// Invokes `req.function` on a warm or new instance and waits for the outcome.
    ///
    /// The invocation runs on its own task: dropping this future does not disturb
    /// the instance, the invocation still completes in the background.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        self.invoke_in(Slot::unlimited(), req).await
    }

    /// Waits for a free place among `function`'s instances (its concurrency) and holds it:
    /// see [`crate::invoker::Invoker::reserve`].
    pub async fn reserve(&self, function: &str) -> Result<Slot, InvokeError> {
        let pool = self
            .pool(function)
            .ok_or_else(|| InvokeError::UnknownFunction(function.to_owned()))?;
        pool.reserve().await.map(Slot::held)
    }

    /// Invokes as [`Runtime::invoke`] does, in the place `slot` holds when it holds one of
    /// this function's places (otherwise it waits for one as `invoke` does).
    pub async fn invoke_in(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        let pool = self
            .pool(&req.function)
            .ok_or_else(|| InvokeError::UnknownFunction(req.function.clone()))?;
        match tokio::spawn(pool.invoke(req, slot.into_permit())).await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(InvokeError::ShuttingDown),
        }
    }

    /// Starts keeping the log of the invocation `request_id` (its own lines and the
    /// platform's `START`/`END`/`REPORT`), for `X-Amz-Log-Type: Tail`; the capture ends when
    /// [`LogCapture::finish`] returns the last [`LOG_TAIL_BYTES`] or when it is dropped.
    pub fn capture_log(&self, request_id: &str) -> LogCapture {
        self.tails()
            .insert(request_id.to_owned(), CapturedLog::default());
        LogCapture {
            tails: self.inner.tails.clone(),
            request_id: request_id.to_owned(),
        }
    }

    fn tails(&self) -> std::sync::MutexGuard<'_, HashMap<String, CapturedLog>> {
        self.inner.tails.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Per-function counters and instances, sorted by name.
    pub fn stats(&self) -> Vec<FunctionStats> {
        let mut stats: Vec<_> = self.pools().iter().map(|p| p.stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// The counters of one function.
    pub fn function_stats(&self, name: &str) -> Option<FunctionStats> {
        self.pool(name).map(|p| p.stats())
    }

    /// Stops every instance: new invocations are refused, every process gets
    /// SIGTERM, and whatever still runs after `grace` gets SIGKILL.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        for pool in self.pools() {
            pool.close();
        }
        let mut processes = self.inner.registry.close();
        for process in &processes {
            process.signal(Signal::Terminate);
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut report = ShutdownReport::default();
        for process in &mut processes {
            if tokio::time::timeout_at(deadline, process.wait())
                .await
                .is_ok()
            {
                report.terminated += 1;
            } else {
                process.signal(Signal::Kill);
                report.killed += 1;
            }
        }
        // SIGKILL cannot be ignored; the bound only guards against a stuck reaper.
        for process in &mut processes {
            let _ = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
        }
        for pool in self.pools() {
            pool.drain_idle();
        }
        tracing::info!(
            terminated = report.terminated,
            killed = report.killed,
            "runtime shut down"
        );
        report
    }
}

/// Captured logs by request id.
type Tails = Arc<Mutex<HashMap<String, CapturedLog>>>;

/// The log of one invocation, the platform's lines apart: the function's own lines are read
/// from its pipes and can arrive before `START` or after `END`, so the log is put back in
/// Lambda's order when the capture ends.
#[derive(Default)]
struct CapturedLog {
    /// `START`.
    opening: String,
    body: String,
    /// `END` and `REPORT`.
    closing: String,
    /// Lines captured so far, to tell when the pipes have gone quiet.
    lines: usize,
}

impl CapturedLog {
    fn push(&mut self, line: &LogLine<'_>) {
        let platform = line.stream == LogStream::Platform;
        let to = if platform && line.line.starts_with("START ") {
            &mut self.opening
        } else if platform && (line.line.starts_with("END ") || line.line.starts_with("REPORT ")) {
            &mut self.closing
        } else {
            &mut self.body
        };
        to.push_str(line.line);
        to.push('\n');
        keep_last(&mut self.body, LOG_TAIL_BYTES);
        self.lines += 1;
    }
}

/// How long the function's pipes must stay quiet before a capture ends, and the most a
/// capture waits for that: what the function wrote before it answered is already in the
/// pipe, the reader only has to be scheduled.
const QUIET: std::time::Duration = std::time::Duration::from_millis(10);
const QUIET_WAIT_MAX: u32 = 20;

/// The log of one invocation being kept (see [`Runtime::capture_log`]).
pub struct LogCapture {
    tails: Tails,
    request_id: String,
}

impl LogCapture {
    /// The end of the invocation's log, at most [`LOG_TAIL_BYTES`], once the function's
    /// output has been read (its pipes quiet for 10 ms, 200 ms at most); the capture ends.
    pub async fn finish(self) -> String {
        let lines = || {
            self.tails
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&self.request_id)
                .map_or(0, |t| t.lines)
        };
        let mut seen = lines();
        for _ in 0..QUIET_WAIT_MAX {
            tokio::time::sleep(QUIET).await;
            let now = lines();
            if now == seen {
                break;
            }
            seen = now;
        }
        let captured = self
            .tails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.request_id)
            .unwrap_or_default();
        let mut log = captured.opening + &captured.body + &captured.closing;
        keep_last(&mut log, LOG_TAIL_BYTES);
        log
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        self.tails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.request_id);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("options", &self.inner.options)
            .field("functions", &self.functions())
            .finish()
    }
}
