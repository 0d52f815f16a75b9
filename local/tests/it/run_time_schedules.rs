//! The app's run-time schedule across `kill -9` (issue 12 item 4): `nightshift up` on the real
//! template with the real function binaries on the manual clock; a signup's "getting started"
//! follow-up is scheduled by queue-processor through the Scheduler API, the emulator is killed
//! with SIGKILL and started again on the same state dir, and the follow-up email is sent once,
//! three days after the signup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use tokio::io::AsyncBufReadExt;

use crate::scheduler_api::client_at;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `nightshift up` on the real template, its functions running in `work`, its queues and
/// schedules kept in `state`.
pub(crate) struct App {
    child: tokio::process::Child,
    pub(crate) port: u16,
}

impl App {
    pub(crate) async fn start(
        work: &Path,
        state: &Path,
        clock_start: &str,
        build: bool,
    ) -> Result<App> {
        let root = workspace_root();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_nightshift"));
        command
            .current_dir(&root)
            .args(["--port", &port.to_string(), "up", "--state-dir"])
            .arg(state)
            .arg("--work-dir")
            .arg(work)
            .args(["--clock", "manual", "--clock-start", clock_start])
            .env_remove("NIGHTSHIFT_PORT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if !build {
            command.arg("--no-build");
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            if line.contains("ctrl-c to stop") {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(App { child, port });
            }
        }
        bail!("nightshift up ended before it served")
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `nightshift <args>` against this emulator; its stdout, or its stderr as the error.
    pub(crate) async fn cli(&self, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
            .args(["--port", &self.port.to_string()])
            .args(args)
            .env_remove("NIGHTSHIFT_PORT")
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    pub(crate) async fn advance(&self, by: &str) -> Result<()> {
        self.cli(&["advance", by]).await.map(drop)
    }

    /// Whether queue-processor's follow-up schedule of `user` exists.
    async fn follow_up_scheduled(&self, user: &str) -> Result<bool> {
        let got = client_at(&self.endpoint())
            .get_schedule()
            .name(format!("follow-up-{user}"))
            .group_name("nightshift-jobs")
            .send()
            .await;
        match got {
            Ok(_) => Ok(true),
            Err(e)
                if aws_sdk_scheduler::error::ProvideErrorMetadata::code(&e)
                    == Some("ResourceNotFoundException") =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// SIGKILL, as `kill -9`.
    pub(crate) async fn kill(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

/// The recipients of the outbox's emails with `subject`.
fn sent(work: &Path, subject: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(work.join(".nightshift/outbox")) else {
        return vec![];
    };
    let mut to: Vec<String> = dir
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter(|eml| eml.lines().any(|l| l == format!("Subject: {subject}")))
        .filter_map(|eml| {
            eml.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .map(str::to_string)
        })
        .collect();
    to.sort();
    to
}

/// Moves the clock a minute at a time (the functions run as processes, in real time) until
/// `done`, at most `minutes` times.
async fn advance_until(app: &App, minutes: u32, mut done: impl FnMut() -> bool) -> Result<bool> {
    for _ in 0..minutes {
        if done() {
            return Ok(true);
        }
        app.advance("1m").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(done())
}

const GETTING_STARTED: &str = "Getting started with nightshift";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_scheduling_and_firing_sends_the_follow_up_once() -> Result<()> {
    let work = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    let app = App::start(work.path(), state.path(), "2026-11-21T09:30:00Z", true).await?;
    let signup = serde_json::json!({
        "v": 1, "id": "job-signup-9", "kind": "user.signup",
        "payload": {"user_id": "u-9", "email": "u-9@example.com", "name": "Ada"},
        "submitted_at": "2026-11-21T09:30:00Z",
    });
    crate::sqs::client(&app.endpoint())
        .send_message()
        .queue_url(format!("{}/000000000000/nightshift-jobs", app.endpoint()))
        .message_body(signup.to_string())
        .send()
        .await?;
    // Until queue-processor (the real binary) has scheduled the follow-up on the endpoint.
    let mut scheduled = false;
    for _ in 0..30 {
        app.advance("1s").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if app.follow_up_scheduled("u-9").await? {
            scheduled = true;
            break;
        }
    }
    ensure!(scheduled, "the signup's follow-up was never scheduled");
    app.kill().await?;

    // Back a day later on the same state dir: the schedule is kept and fires at its time.
    let app = App::start(work.path(), state.path(), "2026-11-22T09:30:00Z", false).await?;
    ensure!(app.follow_up_scheduled("u-9").await?, "kept across kill -9");
    app.advance("2d").await?;
    let got = advance_until(&app, 30, || !sent(work.path(), GETTING_STARTED).is_empty()).await?;
    ensure!(got, "no follow-up after three days");
    assert_eq!(sent(work.path(), GETTING_STARTED), ["u-9@example.com"]);
    assert!(!app.follow_up_scheduled("u-9").await?, "deleted once fired");
    app.kill().await?;

    // Killed again and back before the follow-up's time: it fired, so it does not again.
    let app = App::start(work.path(), state.path(), "2026-11-23T09:30:00Z", false).await?;
    app.advance("3d").await?;
    advance_until(&app, 10, || false).await?;
    assert_eq!(sent(work.path(), GETTING_STARTED), ["u-9@example.com"]);
    app.kill().await?;
    Ok(())
}
