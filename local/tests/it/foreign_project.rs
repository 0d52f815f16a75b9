//! nightshift on a project it was not written for (issue 14): `nightshift up` in the directory
//! of `local/tests/fixtures/sqs-project`, a SAM project whose functions use only
//! lambda_runtime, aws_lambda_events and aws-sdk-sqs, as a user runs it: no `--template`, no
//! env file, cargo building that project's own workspace. The emulator runs the real binaries
//! on a manual clock and the test checks the three behaviours a user of the template expects:
//! the schedule fires the ticker, whose message the worker drains; the validator's partial
//! batch response sends its bad record back until `maxReceiveCount` moves it to the DLQ.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sqs-project")
}

/// `nightshift up` in the project's directory.
struct Up {
    child: tokio::process::Child,
    port: u16,
}

impl Up {
    async fn start(state: &Path) -> Result<Up> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
            .current_dir(project())
            .args(["--port", &port.to_string(), "up", "--state-dir"])
            .arg(state.join("state"))
            .arg("--work-dir")
            .arg(state)
            .args(["--clock", "manual", "--clock-start", "2026-03-02T08:00:00Z"])
            .env_remove("NIGHTSHIFT_PORT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await? {
            if line.contains("ctrl-c to stop") {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(Up { child, port });
            }
            seen.push(line);
        }
        bail!("nightshift up ended before it served:\n{}", seen.join("\n"))
    }

    async fn stop(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    async fn cli(&self, args: &[&str]) -> Result<Output> {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
            .arg("--port")
            .arg(self.port.to_string())
            .args(args)
            .env_remove("NIGHTSHIFT_PORT")
            .output()
            .await?;
        ensure!(
            out.status.success(),
            "nightshift {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    }

    async fn status(&self) -> Result<Value> {
        let out = self.cli(&["status", "--json"]).await?;
        serde_json::from_slice(&out.stdout).context("status --json")
    }

    /// Polls `status` until `done` holds (the functions are processes running in real time),
    /// at most 60 times 0.5 s.
    async fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        for _ in 0..60 {
            let status = self.status().await?;
            if done(&status) {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("{what}: not reached; last status {}", self.status().await?)
    }
}

fn queue<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == name))
        .unwrap_or(&Value::Null)
}

/// The counters of the mapping that polls `queue`.
fn mapping<'a>(status: &'a Value, queue: &str) -> &'a Value {
    status["mappings"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["queue"] == queue))
        .map(|m| &m["stats"])
        .unwrap_or(&Value::Null)
}

fn invocations(status: &Value, function: &str) -> u64 {
    status["functions"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == function))
        .and_then(|f| f["invocations"].as_u64())
        .unwrap_or(0)
}

fn empty(q: &Value) -> bool {
    q["visible"] == 0 && q["in_flight"] == 0 && q["delayed"] == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightshift_up_runs_a_plain_lambda_runtime_project() -> Result<()> {
    let state = tempfile::tempdir()?;
    let up = Up::start(state.path()).await?;

    // The template's own names: SAM's <stack>-<logical id> for functions and queues.
    let status = up.status().await?;
    for function in [
        "nightshift-TickerFunction",
        "nightshift-WorkerFunction",
        "nightshift-ValidatorFunction",
    ] {
        ensure!(
            status["functions"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f["name"] == function)),
            "{function} not started: {status}"
        );
    }

    // rate(5 minutes), the parameter's default: a tick when the schedule starts, one 5
    // minutes later; each sends one message, which the worker takes (one batch or two).
    up.cli(&["advance", "5m"]).await?;
    up.wait_for("the ticks' messages worked", |s| {
        invocations(s, "nightshift-TickerFunction") == 2
            && mapping(s, "nightshift-WorkQueue")["deleted"] == 2
            && empty(queue(s, "nightshift-WorkQueue"))
    })
    .await?;
    let status = up.status().await?;
    let ticker = &status["functions"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == "nightshift-TickerFunction"))
        .cloned()
        .unwrap_or_default();
    ensure!(ticker["errors"] == 0, "the ticker failed: {ticker}");

    // A good record is deleted.
    up.cli(&["send", "ValidateQueue", r#"{"n": 1}"#]).await?;
    up.wait_for("the good record deleted", |s| {
        mapping(s, "nightshift-ValidateQueue")["deleted"] == 1
            && empty(queue(s, "nightshift-ValidateQueue"))
    })
    .await?;
    // A bad one is returned by the partial batch response: received once now, again after
    // the visibility timeout (60 s), then moved to the DLQ (maxReceiveCount 2).
    up.cli(&["send", "ValidateQueue", "not json"]).await?;
    up.wait_for("the first receive", |s| {
        invocations(s, "nightshift-ValidatorFunction") == 2
            && queue(s, "nightshift-ValidateQueue")["in_flight"] == 1
    })
    .await?;
    up.cli(&["advance", "61s"]).await?;
    up.wait_for("the second receive", |s| {
        invocations(s, "nightshift-ValidatorFunction") == 3
            && queue(s, "nightshift-ValidateQueue")["in_flight"] == 1
    })
    .await?;
    up.cli(&["advance", "61s"]).await?;
    up.wait_for("the bad record dead-lettered", |s| {
        empty(queue(s, "nightshift-ValidateQueue"))
            && queue(s, "nightshift-ValidateDLQ")["visible"] == 1
    })
    .await?;
    let listed = up.cli(&["dlq", "list", "ValidateDLQ"]).await?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    ensure!(listed.contains("not json"), "{listed}");
    ensure!(!listed.contains(r#"{"n": 1}"#), "{listed}");

    up.stop().await
}

/// The README shows the fixture's harness test as the example to copy: they must not drift.
#[test]
fn the_readme_example_is_the_fixture_test() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let test = std::fs::read_to_string(project().join("checks/tests/pipeline.rs"))
        .expect("the fixture's test");
    assert!(
        readme.contains(&format!("```rust\n{test}```")),
        "README's harness example differs from {}",
        project().join("checks/tests/pipeline.rs").display()
    );
}

/// `nightshift up` in `dir`: its exit code and standard error.
fn up_in(dir: &Path) -> Result<(Option<i32>, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .current_dir(dir)
        .args(["--port", &port.to_string(), "up", "--ephemeral"])
        .env_remove("NIGHTSHIFT_PORT")
        .output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

const BAD_HEAD: &str = "Transform: AWS::Serverless-2016-10-31\nResources:\n";

/// Issue 14 item 5: a project that cannot be run stops `up` with one message naming the
/// function, its line in the template and what to do, and exit code 2.
#[test]
fn a_project_that_cannot_run_stops_up_naming_the_function_its_line_and_the_fix() -> Result<()> {
    let crate_files = |dir: &Path, main: &str| -> Result<()> {
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"consumer\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
        )?;
        std::fs::create_dir_all(dir.join("src"))?;
        std::fs::write(dir.join("src/main.rs"), main)?;
        Ok(())
    };
    let cases: [(&str, &str, Option<&str>, &[&str]); 4] = [
        (
            "only another language",
            "  Web:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: web/\n      Handler: index.handler\n      Runtime: nodejs20.x\n",
            None,
            &[
                "no function of",
                "Web (",
                "template.yaml:3)",
                "nodejs20.x",
                "provided.al2023",
            ],
        ),
        (
            "a CodeUri that does not exist",
            "  Queue:\n    Type: AWS::SQS::Queue\n  Consumer:\n    Type: AWS::Serverless::Function\n    Properties:\n      Runtime: provided.al2023\n      CodeUri: ./missing\n",
            None,
            &[
                "function Consumer (",
                "template.yaml:5)",
                "missing does not exist",
                "Cargo.toml",
            ],
        ),
        (
            "a binary cargo does not know",
            "  Consumer:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties: {Binary: nope}\n    Properties:\n      CodeUri: .\n",
            Some("fn main() {}\n"),
            &[
                "function Consumer (",
                "template.yaml:3)",
                "binary named nope",
                "(consumer)",
                "Metadata.BuildProperties.Binary",
            ],
        ),
        (
            "a build that fails",
            "  Consumer:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: .\n",
            Some("fn main() { this is not rust }\n"),
            &[
                "build failed",
                "Consumer (binary consumer)",
                "cargo's errors are above",
            ],
        ),
    ];
    for (what, resources, main, expected) in cases {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("template.yaml"),
            format!("{BAD_HEAD}{resources}"),
        )?;
        if let Some(main) = main {
            crate_files(dir.path(), main)?;
        }
        let (code, stderr) = up_in(dir.path())?;
        assert_eq!(code, Some(2), "{what}: {stderr}");
        // The emulator's own message is the last; cargo's errors, if any, come before it.
        let message = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default();
        for part in expected {
            assert!(
                message.contains(part),
                "{what}: {part:?} not in {message:?}"
            );
        }
    }
    Ok(())
}
