//! One function process: its supervisor, its signals and its log capture.
//!
//! The supervisor task owns the `Child`, so only it reaps the process and a signal
//! is never sent to a reused pid. Everyone else holds a cheap [`ProcessHandle`]:
//! a control channel in and an exit watch out. Stdout and stderr are read line by
//! line and handed to the [`LogSink`] with the request id the instance holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use super::api::ApiState;
use super::{LogLine, LogSink, LogStream};
use crate::invoker::ExitInfo;

/// Longest log line forwarded in one piece; longer lines are split.
const MAX_LOG_LINE: usize = 256 * 1024;

/// A signal for a function process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM: please stop.
    Terminate,
    /// SIGKILL.
    Kill,
}

/// A handle on a running (or exited) process.
#[derive(Debug, Clone)]
pub(crate) struct ProcessHandle {
    pub pid: u32,
    control: mpsc::UnboundedSender<Signal>,
    exit: watch::Receiver<Option<ExitInfo>>,
}

impl ProcessHandle {
    /// Sends `signal`; a no-op once the process has exited.
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = self.control.send(signal);
    }

    /// How the process ended, if it has.
    pub(crate) fn exited(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Waits for the process to end.
    pub(crate) async fn wait(&mut self) -> ExitInfo {
        if let Ok(exit) = self.exit.wait_for(Option::is_some).await {
            return exit.unwrap_or_default();
        }
        // The supervisor is gone only once the process is gone too.
        self.exited().unwrap_or_default()
    }
}

/// Every live process of a runtime, for shutdown.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    closed: bool,
    processes: HashMap<u64, ProcessHandle>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a process; false (and nothing recorded) once the registry is closed.
    fn insert(&self, id: u64, handle: ProcessHandle) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        inner.processes.insert(id, handle);
        true
    }

    fn remove(&self, id: u64) {
        self.lock().processes.remove(&id);
    }

    /// Closes the registry to new processes and returns the live ones.
    pub(crate) fn close(&self) -> Vec<ProcessHandle> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.processes.values().cloned().collect()
    }

    /// True once [`Registry::close`] ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// Where an instance's output goes.
pub(crate) struct LogTarget {
    pub sink: LogSink,
    pub function: Arc<str>,
    pub instance: u64,
    pub api: Arc<ApiState>,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the runtime is shutting down")]
    Closed,
}

/// Starts `cmd` with piped output, under a supervisor, recorded in `registry`.
pub(crate) fn spawn(
    mut cmd: Command,
    id: u64,
    registry: &Arc<Registry>,
    log: LogTarget,
) -> Result<ProcessHandle, SpawnError> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or_default();
    let (control, control_rx) = mpsc::unbounded_channel();
    let (exit_tx, exit) = watch::channel(None);
    let handle = ProcessHandle { pid, control, exit };
    let log = Arc::new(log);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_lines(stdout, LogStream::Stdout, log.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_lines(stderr, LogStream::Stderr, log));
    }
    let registered = registry.insert(id, handle.clone());
    tokio::spawn(supervise(child, control_rx, exit_tx, id, registry.clone()));
    if !registered {
        handle.signal(Signal::Kill);
        return Err(SpawnError::Closed);
    }
    Ok(handle)
}

async fn supervise(
    mut child: Child,
    mut control: mpsc::UnboundedReceiver<Signal>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
    id: u64,
    registry: Arc<Registry>,
) {
    let exit = loop {
        tokio::select! {
            status = child.wait() => {
                break status.map(ExitInfo::from).unwrap_or_default();
            }
            signal = control.recv() => match signal {
                Some(Signal::Terminate) => terminate(&child),
                // Every handle dropped: nobody can stop it later, so stop it now.
                Some(Signal::Kill) | None => {
                    let _ = child.start_kill();
                    break child.wait().await.map(ExitInfo::from).unwrap_or_default();
                }
            },
        }
    };
    registry.remove(id);
    let _ = exit_tx.send(Some(exit));
}

/// Sends SIGTERM while the child is not reaped yet (so its pid is still ours).
fn terminate(child: &Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid belongs to an
        // unreaped child of ours.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    #[cfg(not(unix))]
    let _ = child;
}

async fn forward_lines<R: AsyncRead + Unpin>(reader: R, stream: LogStream, log: Arc<LogTarget>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match read_line_bounded(&mut reader, &mut buf, MAX_LOG_LINE).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let text = String::from_utf8_lossy(&buf);
        let request_id = log.api.current_request_id();
        (log.sink)(&LogLine {
            function: &log.function,
            instance: log.instance,
            request_id: request_id.as_deref(),
            stream,
            line: &text,
        });
    }
}

/// Reads up to and including the next `\n`, at most `max` bytes; 0 at end of input.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    while buf.len() < max {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            break;
        }
        let room = (max - buf.len()).min(available.len());
        let (take, done) = match available[..room].iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (room, false),
        };
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            break;
        }
    }
    Ok(buf.len())
}

/// Peak resident memory (`VmHWM`) of `pid` in kB, where the OS tells it.
pub(crate) fn max_memory_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_split_and_short_ones_kept() {
        let input: &[u8] = b"short\n0123456789abcdef\nlast";
        let mut reader = BufReader::with_capacity(4, input);
        let mut lines = Vec::new();
        for _ in 0..10 {
            let mut buf = Vec::new();
            if read_line_bounded(&mut reader, &mut buf, 8).await.unwrap() == 0 {
                break;
            }
            lines.push(String::from_utf8(buf).unwrap());
        }
        assert_eq!(
            lines,
            ["short\n", "01234567", "89abcdef", "\n", "last"].map(String::from)
        );
    }

    #[test]
    fn reads_own_peak_memory_on_linux() {
        let kb = max_memory_kb(std::process::id());
        if cfg!(target_os = "linux") {
            assert!(kb.unwrap() > 0);
        } else {
            assert!(kb.is_none());
        }
    }
}
