//! The instances of one function: start, reuse, cap, deadline, kill, report.
//!
//! An invocation holds a concurrency permit for its whole life and owns its
//! instance exclusively while it runs; the instance goes back to the idle stack
//! (most recently used first, as Lambda favours warm environments) before the
//! permit is released, so `idle + busy` never exceeds the cap.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::api::{self, ApiEvent, ApiState, Dispatch};
use super::process::{self, LogTarget, ProcessHandle, Registry, Signal, SpawnError};
use super::{FunctionConfig, FunctionStats, LogLine, LogStream, RuntimeOptions};
use crate::invoker::{
    FunctionError, InvokeError, InvokeOutcome, InvokeRequest, InvokeResponse, MAX_PAYLOAD_BYTES,
};

/// How long to wait for a SIGKILLed process to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// One running function process and its Runtime API.
struct Instance {
    id: u64,
    _api: Arc<ApiState>,
    dispatch: mpsc::Sender<Dispatch>,
    events: mpsc::UnboundedReceiver<ApiEvent>,
    process: ProcessHandle,
    server: JoinHandle<()>,
    spawned_at: Instant,
    initialized: bool,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // An instance leaves the pool only when it is broken or the pool closes.
        self.process.signal(Signal::Kill);
        self.server.abort();
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Instance>,
    /// Instances taken out of `idle` or being started.
    busy: usize,
}

#[derive(Default)]
struct Counters {
    invocations: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    crashes: AtomicU64,
    init_errors: AtomicU64,
    cold_starts: AtomicU64,
}

/// The instances of one function.
pub(crate) struct FunctionPool {
    config: FunctionConfig,
    name: Arc<str>,
    arn: String,
    options: RuntimeOptions,
    registry: Arc<Registry>,
    next_instance: Arc<AtomicU64>,
    permits: Arc<Semaphore>,
    state: Mutex<PoolState>,
    counters: Counters,
}

/// How one attempt on an instance ended.
enum Attempt {
    /// A cold instance did not finish its init within the init phase's limit; Lambda runs
    /// the init again on the invocation, within the function timeout.
    InitTimedOut,
    /// A warm instance died before taking the event: safe to retry elsewhere.
    NotDelivered,
    Done(Finished),
}

struct Finished {
    outcome: InvokeOutcome,
    duration: Duration,
    init_duration: Option<Duration>,
    /// The instance is healthy and may serve again.
    keep: bool,
}

impl FunctionPool {
    pub(crate) fn new(
        config: FunctionConfig,
        options: RuntimeOptions,
        registry: Arc<Registry>,
        next_instance: Arc<AtomicU64>,
    ) -> Self {
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            options.region, options.account_id, config.name
        );
        Self {
            name: Arc::from(config.name.as_str()),
            permits: Arc::new(Semaphore::new(config.concurrency as usize)),
            config,
            arn,
            options,
            registry,
            next_instance,
            state: Mutex::new(PoolState::default()),
            counters: Counters::default(),
        }
    }

    pub(crate) fn config(&self) -> &FunctionConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses new invocations; waiting ones fail with `ShuttingDown`.
    pub(crate) fn close(&self) {
        self.permits.close();
    }

    /// Drops every idle instance.
    pub(crate) fn drain_idle(&self) {
        let idle = std::mem::take(&mut self.lock().idle);
        drop(idle);
    }

    pub(crate) fn stats(&self) -> FunctionStats {
        let (idle, busy) = {
            let state = self.lock();
            let idle = state
                .idle
                .iter()
                .filter(|i| i.process.exited().is_none())
                .count();
            (idle, state.busy)
        };
        let c = &self.counters;
        FunctionStats {
            name: self.config.name.clone(),
            instances: idle + busy,
            busy,
            idle,
            invocations: c.invocations.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            crashes: c.crashes.load(Ordering::Relaxed),
            init_errors: c.init_errors.load(Ordering::Relaxed),
            cold_starts: c.cold_starts.load(Ordering::Relaxed),
        }
    }

    /// Takes the most recently used live idle instance, counting it busy.
    fn take_idle(&self) -> Option<Instance> {
        let mut state = self.lock();
        // Bounded by the idle stack; dead instances are dropped on the way.
        while let Some(instance) = state.idle.pop() {
            if instance.process.exited().is_none() {
                state.busy += 1;
                return Some(instance);
            }
        }
        None
    }

    /// Ends a busy slot, putting the instance back if it may serve again.
    fn release(&self, instance: Option<Instance>) {
        let mut state = self.lock();
        state.busy -= 1;
        if let Some(instance) = instance {
            state.idle.push(instance);
        }
    }

    /// Waits for a free place (a concurrency permit) and holds it.
    pub(crate) async fn reserve(&self) -> Result<OwnedSemaphorePermit, InvokeError> {
        if self.config.concurrency == 0 {
            return Err(InvokeError::Throttled(self.config.name.clone()));
        }
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| InvokeError::ShuttingDown)
    }

    /// Runs `req` on a warm or new instance, in the place `reserved` holds when it is one of
    /// this pool's permits.
    pub(crate) async fn invoke(
        self: Arc<Self>,
        req: InvokeRequest,
        reserved: Option<OwnedSemaphorePermit>,
    ) -> Result<InvokeResponse, InvokeError> {
        if self.config.concurrency == 0 {
            return Err(InvokeError::Throttled(self.config.name.clone()));
        }
        if req.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::PayloadTooLarge {
                size: req.payload.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        // A permit of another pool (a slot reserved for another function) is given back.
        let permit = match reserved.filter(|p| Arc::ptr_eq(p.semaphore(), &self.permits)) {
            Some(permit) => permit,
            None => self.reserve().await?,
        };
        let request_id: Arc<str> = Arc::from(req.request_id.as_str());
        // A warm instance can die between the idle check and taking the event; the
        // retry then starts a fresh one, which never answers `NotDelivered`. A cold one
        // whose init outlasts the init phase is replaced once, by an init in the invoke
        // phase.
        let mut reinit = false;
        for attempt in 0..3 {
            let warm = if attempt == 0 { self.take_idle() } else { None };
            let (mut instance, cold) = match warm {
                Some(instance) => (instance, false),
                None => {
                    self.lock().busy += 1;
                    match self.start_instance().await {
                        Ok(instance) => (instance, true),
                        Err(error) => {
                            self.release(None);
                            return Err(error);
                        }
                    }
                }
            };
            let dispatch = Dispatch {
                request_id: request_id.clone(),
                payload: req.payload.clone(),
                trace_id: req.trace_header.clone(),
                // Lambda: the retried init runs "with the configured function timeout",
                // which the invocation then shares.
                deadline: reinit.then(|| instance.spawned_at + self.config.timeout),
            };
            match self.run(&mut instance, cold, reinit, dispatch).await {
                Attempt::InitTimedOut => {
                    drop(instance);
                    self.release(None);
                    reinit = true;
                }
                Attempt::NotDelivered => {
                    tracing::debug!(
                        function = %self.name,
                        instance = instance.id,
                        "idle instance died, retrying on a new one"
                    );
                    drop(instance);
                    self.release(None);
                }
                Attempt::Done(done) => {
                    self.count(&done.outcome);
                    self.release(done.keep.then_some(instance));
                    drop(permit);
                    return Ok(InvokeResponse {
                        request_id: req.request_id,
                        outcome: done.outcome,
                        duration: done.duration,
                        init_duration: done.init_duration,
                    });
                }
            }
        }
        Err(InvokeError::Unreachable {
            endpoint: self.config.name.clone(),
            message: "no instance took the event".to_owned(),
        })
    }

    fn count(&self, outcome: &InvokeOutcome) {
        let c = &self.counters;
        c.invocations.fetch_add(1, Ordering::Relaxed);
        let specific = match outcome {
            InvokeOutcome::Success(_) => return,
            InvokeOutcome::FunctionError(_) => None,
            InvokeOutcome::InitError(_) => Some(&c.init_errors),
            InvokeOutcome::Timeout { .. } => Some(&c.timeouts),
            InvokeOutcome::Crashed(_) => Some(&c.crashes),
        };
        c.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(counter) = specific {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands `dispatch` to `instance` and follows it to its end.
    ///
    /// A cold instance has the init phase's limit to take the event; past it, Lambda kills
    /// the environment and runs the init again when the function is invoked, within the
    /// function timeout (`reinit`): "The Init phase is limited to 10 seconds. If all three
    /// tasks do not complete within 10 seconds, Lambda retries the Init phase at the time of
    /// the first function invocation with the configured function timeout."
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html>)
    async fn run(
        &self,
        instance: &mut Instance,
        cold: bool,
        reinit: bool,
        dispatch: Dispatch,
    ) -> Attempt {
        let request_id = dispatch.request_id.clone();
        let queued = Instant::now();
        if instance.dispatch.try_send(dispatch).is_err() {
            // The slot holds an event nobody took: the instance is not usable.
            return Attempt::NotDelivered;
        }
        let timeout = self.config.timeout;
        let pickup_limit = if cold && !reinit {
            self.options.init_timeout
        } else {
            timeout
        };
        let pickup_deadline = if cold {
            instance.spawned_at + pickup_limit
        } else {
            queued + pickup_limit
        };

        // Phase 1: the instance takes the event (a cold one first initialises).
        let (picked_at, deadline) = loop {
            tokio::select! {
                biased;
                event = instance.events.recv() => match event {
                    Some(ApiEvent::Picked { request_id: id, at, deadline }) if id == request_id => {
                        break (at, deadline);
                    }
                    Some(ApiEvent::InitError(error)) => {
                        return self.init_failed(instance, &request_id, queued, error);
                    }
                    // Leftovers of an earlier invocation; the API rejects most of them.
                    Some(_) => continue,
                    None => return Attempt::NotDelivered,
                },
                exit = instance.process.wait() => {
                    if instance.initialized {
                        return Attempt::NotDelivered;
                    }
                    let error = FunctionError::new(
                        "Runtime.ExitError",
                        format!("RequestId: {request_id} Error: Runtime exited with error: {exit}"),
                    );
                    return self.init_failed(instance, &request_id, queued, error);
                }
                _ = tokio::time::sleep_until(pickup_deadline) => {
                    self.kill(instance).await;
                    if cold && !reinit {
                        self.platform(instance, Some(&request_id), &format!(
                            "INIT_REPORT Init Duration: {} Phase: init Status: timeout",
                            ms(pickup_limit)
                        ));
                        return Attempt::InitTimedOut;
                    }
                    self.timed_out(instance, &request_id, pickup_limit);
                    return Attempt::Done(Finished {
                        outcome: InvokeOutcome::Timeout { after: pickup_limit },
                        duration: queued.elapsed(),
                        init_duration: cold.then(|| instance.spawned_at.elapsed()),
                        keep: false,
                    });
                }
            }
        };
        let init_duration = (!instance.initialized).then(|| picked_at - instance.spawned_at);
        instance.initialized = true;
        self.platform(
            instance,
            Some(&request_id),
            &format!("START RequestId: {request_id} Version: $LATEST"),
        );

        // Phase 2: the function runs until it answers, exits or runs out of time.
        let pid = instance.process.pid;
        let (outcome, ended_at, keep, killed_memory_kb) = loop {
            tokio::select! {
                biased;
                event = instance.events.recv() => match event {
                    Some(ApiEvent::Response { request_id: id, at, body }) if id == request_id => {
                        break (InvokeOutcome::Success(body), at, true, None);
                    }
                    Some(ApiEvent::Error { request_id: id, at, error }) if id == request_id => {
                        break (InvokeOutcome::FunctionError(error), at, true, None);
                    }
                    Some(_) => continue,
                    None => {
                        let exit = instance.process.wait().await;
                        break (InvokeOutcome::Crashed(exit), Instant::now(), false, None);
                    }
                },
                exit = instance.process.wait() => {
                    let ended_at = Instant::now();
                    self.platform(instance, Some(&request_id), &format!(
                        "RequestId: {request_id} Error: Runtime exited with error: {exit}"
                    ));
                    break (InvokeOutcome::Crashed(exit), ended_at, false, None);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    // Read before the kill: the process and its counters go with it.
                    let memory = process::max_memory_kb(pid);
                    self.kill(instance).await;
                    self.timed_out(instance, &request_id, timeout);
                    break (InvokeOutcome::Timeout { after: timeout }, deadline, false, memory);
                }
            }
        };
        let max_memory_kb = if keep {
            process::max_memory_kb(pid)
        } else {
            killed_memory_kb
        };
        let duration = ended_at.saturating_duration_since(picked_at);
        self.platform(
            instance,
            Some(&request_id),
            &format!("END RequestId: {request_id}"),
        );
        let status = match &outcome {
            InvokeOutcome::Timeout { .. } => Some("timeout"),
            InvokeOutcome::Crashed(_) => Some("error\tError Type: Runtime.ExitError"),
            _ => None,
        };
        let report = report_line(
            &request_id,
            duration,
            init_duration,
            self.config.memory_mb,
            max_memory_kb,
            status,
        );
        self.platform(instance, Some(&request_id), &report);
        Attempt::Done(Finished {
            outcome,
            duration,
            init_duration,
            keep,
        })
    }

    /// Fails an invocation whose instance never got through init.
    fn init_failed(
        &self,
        instance: &Instance,
        request_id: &str,
        queued: Instant,
        error: FunctionError,
    ) -> Attempt {
        let init = instance.spawned_at.elapsed();
        self.platform(
            instance,
            Some(request_id),
            &format!(
                "INIT_REPORT Init Duration: {} Phase: init Status: error Error Type: {}",
                ms(init),
                error.error_type
            ),
        );
        Attempt::Done(Finished {
            outcome: InvokeOutcome::InitError(error),
            duration: queued.elapsed(),
            init_duration: Some(init),
            keep: false,
        })
    }

    fn timed_out(&self, instance: &Instance, request_id: &str, after: Duration) {
        let line = format!(
            "{} {request_id} Task timed out after {:.2} seconds",
            timestamp(),
            after.as_secs_f64()
        );
        self.platform(instance, Some(request_id), &line);
    }

    /// SIGKILLs the instance and waits (bounded) until it is reaped.
    async fn kill(&self, instance: &mut Instance) {
        instance.process.signal(Signal::Kill);
        if tokio::time::timeout(KILL_WAIT, instance.process.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                function = %self.name,
                instance = instance.id,
                "killed instance not reaped in time"
            );
        }
    }

    fn platform(&self, instance: &Instance, request_id: Option<&str>, line: &str) {
        (self.options.log_sink)(&LogLine {
            function: &self.name,
            instance: instance.id,
            request_id,
            stream: LogStream::Platform,
            line,
        });
    }

    async fn start_instance(&self) -> Result<Instance, InvokeError> {
        let spawn_error = |source| InvokeError::Spawn {
            function: self.config.name.clone(),
            source,
        };
        let id = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let (dispatch_tx, dispatch_rx) = mpsc::channel(1);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let api = Arc::new(ApiState::new(
            self.arn.clone(),
            self.config.timeout,
            dispatch_rx,
            events_tx,
        ));
        let (addr, server) = api::serve(api.clone()).await.map_err(spawn_error)?;
        let cmd = self.command(addr);
        let spawned_at = Instant::now();
        let log = LogTarget {
            sink: self.options.log_sink.clone(),
            function: self.name.clone(),
            instance: id,
            api: api.clone(),
        };
        let process = match process::spawn(cmd, id, &self.registry, log) {
            Ok(process) => process,
            Err(error) => {
                server.abort();
                return Err(match error {
                    SpawnError::Io(source) => spawn_error(source),
                    SpawnError::Closed => InvokeError::ShuttingDown,
                });
            }
        };
        self.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            function = %self.name,
            instance = id,
            pid = process.pid,
            %addr,
            "instance started"
        );
        Ok(Instance {
            id,
            _api: api,
            dispatch: dispatch_tx,
            events: events_rx,
            process,
            server,
            spawned_at,
            initialized: false,
        })
    }

    /// The process command with Lambda's environment around the function's own.
    fn command(&self, addr: SocketAddr) -> Command {
        let config = &self.config;
        let options = &self.options;
        let mut cmd = Command::new(&config.binary);
        if options.inherit_env {
            // The runtime client would run concurrent pollers on this.
            cmd.env_remove("AWS_LAMBDA_MAX_CONCURRENCY");
        } else {
            cmd.env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                cmd.env("PATH", path);
            }
        }
        let defaults = [
            ("LANG", "en_US.UTF-8"),
            ("TZ", ":UTC"),
            ("AWS_ACCESS_KEY_ID", "ASIANIGHTSHIFTLOCAL0"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "nightshift-local-secret-access-key",
            ),
            ("AWS_SESSION_TOKEN", "nightshift-local-session-token"),
        ];
        for (key, value) in defaults {
            if !options.inherit_env || std::env::var_os(key).is_none() {
                cmd.env(key, value);
            }
        }
        cmd.envs(&options.env).envs(&config.env);
        let task_root = config
            .binary
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log_stream = format!(
            "{}/[$LATEST]{:032x}",
            chrono::Utc::now().format("%Y/%m/%d"),
            fastrand::u128(..)
        );
        // Reserved variables: a function cannot override them on Lambda either.
        cmd.env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", log_stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &options.region)
            .env("AWS_DEFAULT_REGION", &options.region)
            .env("_HANDLER", &config.handler)
            .env("LAMBDA_TASK_ROOT", &task_root)
            .env("LAMBDA_RUNTIME_DIR", &task_root);
        if let Some(dir) = &options.working_dir {
            cmd.current_dir(dir);
        }
        cmd
    }
}

/// Lambda's `REPORT` line. Custom runtimes are billed for init too. An invocation that timed
/// out or whose runtime exited ends with `Status: timeout` or `Status: error` (and its error
/// type), as Lambda writes them.
pub(crate) fn report_line(
    request_id: &str,
    duration: Duration,
    init_duration: Option<Duration>,
    memory_mb: u32,
    max_memory_kb: Option<u64>,
    status: Option<&str>,
) -> String {
    let billed = (duration + init_duration.unwrap_or_default())
        .as_micros()
        .div_ceil(1000)
        .max(1);
    let mut line = format!(
        "REPORT RequestId: {request_id}\tDuration: {}\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB",
        ms(duration)
    );
    if let Some(kb) = max_memory_kb {
        line.push_str(&format!("\tMax Memory Used: {} MB", kb.div_ceil(1024)));
    }
    if let Some(init) = init_duration {
        line.push_str(&format!("\tInit Duration: {}", ms(init)));
    }
    if let Some(status) = status {
        line.push_str(&format!("\tStatus: {status}"));
    }
    line
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_has_lambdas_fields_and_bills_init() {
        let line = report_line(
            "abc",
            Duration::from_micros(1234),
            Some(Duration::from_micros(8100)),
            128,
            Some(12 * 1024 + 1),
            None,
        );
        assert_eq!(
            line,
            "REPORT RequestId: abc\tDuration: 1.23 ms\tBilled Duration: 10 ms\tMemory Size: 128 MB\tMax Memory Used: 13 MB\tInit Duration: 8.10 ms"
        );
        let warm = report_line("abc", Duration::from_micros(10), None, 256, None, None);
        assert_eq!(
            warm,
            "REPORT RequestId: abc\tDuration: 0.01 ms\tBilled Duration: 1 ms\tMemory Size: 256 MB"
        );
        let timed_out = report_line(
            "abc",
            Duration::from_secs(3),
            None,
            128,
            Some(40 * 1024),
            Some("timeout"),
        );
        assert_eq!(
            timed_out,
            "REPORT RequestId: abc\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\tStatus: timeout"
        );
    }
}
