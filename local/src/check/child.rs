//! The emulator as a child process: `nightshift up` started, killed with SIGKILL and started
//! again on one port, journal and work dir; and the dead letters read back from its journal.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::process::{Child, Command};
use tracing::warn;

use nightshift_contract::record::ERROR_ATTRIBUTE;

use super::store::read_outcomes;
use super::verdict::DeadLetter;
use super::{CheckError, io};
use crate::control::{ControlClient, ControlError};
use crate::sqs::SqsEngine;

/// Starts `nightshift up` processes on one port, journal and work dir.
pub(super) struct Launcher {
    pub(super) binary: PathBuf,
    pub(super) root: PathBuf,
    pub(super) args: Vec<String>,
    pub(super) log: PathBuf,
    pub(super) endpoint: String,
}

/// One running `nightshift up`.
pub(super) struct Running {
    pub(super) child: Child,
    pub(super) client: ControlClient,
}

impl Launcher {
    pub(super) fn emulator_error(&self, reason: impl Into<String>) -> CheckError {
        CheckError::Emulator {
            reason: reason.into(),
            log: self.log.clone(),
        }
    }

    /// A control call failed: name the log, where the emulator says why.
    pub(super) fn lost(&self, e: ControlError) -> CheckError {
        self.emulator_error(format!("stopped answering: {e}"))
    }

    pub(super) async fn start(&self, clock_start: DateTime<Utc>) -> Result<Running, CheckError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io(format!("cannot open {}", self.log.display())))?;
        let err_log = log
            .try_clone()
            .map_err(io(format!("cannot open {}", self.log.display())))?;
        let mut child = Command::new(&self.binary)
            .current_dir(&self.root)
            .args(&self.args)
            .arg("--clock-start")
            .arg(clock_start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("cannot start {}", self.binary.display())))?;
        let client = ControlClient::new(&self.endpoint);
        // Template loading and binding take well under a second; a minute allows for a
        // loaded machine and a port still held by the previous process.
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(exit) = child
                .try_wait()
                .map_err(io("cannot wait for the emulator"))?
            {
                return Err(self.emulator_error(format!("exited at start with {exit}")));
            }
            if client.status().await.is_ok() {
                return Ok(Running { child, client });
            }
            if Instant::now() > give_up {
                return Err(self.emulator_error("did not answer within 60 s of its start"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Running {
    /// SIGKILL once some jobs have had their effects and a function is busy (or after
    /// `wait`), so that the kill lands mid-batch with work done on both sides of it.
    pub(super) async fn kill_when_busy(
        mut self,
        wait: Duration,
        store: &Path,
        clock: &mut DateTime<Utc>,
    ) -> Result<(), CheckError> {
        let give_up = Instant::now() + wait;
        while Instant::now() < give_up {
            if let Ok(status) = self.client.status().await {
                *clock = status.now;
                let busy = status.functions.iter().any(|f| f.busy > 0);
                if busy && read_outcomes(store).is_ok_and(|o| !o.is_empty()) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.child
            .start_kill()
            .map_err(io("cannot kill the emulator"))?;
        self.child
            .wait()
            .await
            .map_err(io("cannot wait for the emulator"))?;
        warn!(at = %clock, "emulator killed with SIGKILL");
        Ok(())
    }

    /// Ctrl-C (SIGINT), then SIGKILL if it has not stopped within 30 s.
    pub(super) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGINT);
            }
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            warn!("the emulator did not stop on SIGINT, killing it");
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

pub(super) fn free_port() -> Result<u16, CheckError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io("cannot find a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("cannot find a free port"))?
        .port())
}

pub(super) fn human(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

pub(super) fn dead_letters(engine: &SqsEngine, queue: &str) -> Result<Vec<DeadLetter>, CheckError> {
    Ok(engine
        .peek_messages(queue, usize::MAX)?
        .into_iter()
        .map(|m| {
            let reason = m
                .message_attributes
                .get(ERROR_ATTRIBUTE)
                .and_then(|v| v.string_value.clone())
                .or_else(|| {
                    m.dead_letter_source_arn.as_ref().map(|from| {
                        format!(
                            "maxReceiveCount exceeded: received {} times from {from}",
                            m.receive_count
                        )
                    })
                });
            DeadLetter {
                body: m.body,
                reason,
            }
        })
        .collect())
}
