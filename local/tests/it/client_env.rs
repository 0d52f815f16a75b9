//! What `nightshift up` prints for the AWS CLI and SDKs works as printed on a machine with no
//! AWS profile: with the `export` line pasted, the command printed under it, another AWS CLI
//! command and boto3 reach the emulator.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncBufReadExt;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What `up` printed: the variables of its `export` line and the command under it.
struct Printed {
    env: Vec<(String, String)>,
    example: String,
}

/// Starts `nightshift up` on the queues-only template and returns it with what it printed.
async fn up_and_its_env() -> Result<(tokio::process::Child, Printed)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(["--port", &port.to_string(), "up", "--template"])
        .arg(workspace_root().join("tests/fixtures/templates/queues-only.yaml"))
        .args(["--env-file", "none", "--ephemeral", "--no-build"])
        .env_remove("NIGHTSHIFT_PORT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("piped")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut env = None;
    let mut example = None;
    while let Some(line) = lines.next_line().await? {
        if let Some((_, command)) = line.split_once("then: ") {
            example = Some(command.trim().to_owned());
        }
        if let Some((_, assignments)) = line.split_once("export ") {
            env = Some(
                assignments
                    .split_whitespace()
                    .filter_map(|a| a.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>(),
            );
        }
        if line.contains("ctrl-c to stop") {
            // Keep draining, so the emulator never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            let env = env.context("up printed no export line")?;
            let example = example.context("up printed no command to try")?;
            return Ok((child, Printed { env, example }));
        }
    }
    bail!("nightshift up ended before it served")
}

/// A client's command with the environment of a machine without AWS configuration (no
/// `AWS_*` variables, a `HOME` with no `.aws`) plus `env`.
fn newcomer(program: &str, home: &Path, env: &[(String, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    cmd
}

fn installed(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn the_printed_env_lets_the_aws_cli_and_boto3_reach_the_emulator() -> Result<()> {
    let has_cli = installed("aws", &["--version"]);
    let has_boto3 = installed("python3", &["-c", "import boto3"]);
    // CI installs both (.ci/run): there a missing client is a failure, not a skip.
    assert!(
        std::env::var_os("CI").is_none() || (has_cli && has_boto3),
        "the AWS CLI (installed: {has_cli}) and boto3 (installed: {has_boto3}) are needed; \
         .ci/run installs them"
    );
    if !has_cli && !has_boto3 {
        eprintln!("neither the AWS CLI nor python3 with boto3 is installed: skipped");
        return Ok(());
    }
    let (mut up, Printed { env, example }) = up_and_its_env().await?;
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_DEFAULT_REGION"
        ]
    );
    let home = tempfile::tempdir()?;
    if has_cli {
        // The command as printed, by a shell.
        let out = newcomer("sh", home.path(), &env)
            .args(["-c", &example])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("/000000000000/work-dlq"), "{stdout}");
        // Another service, with no --endpoint-url: AWS_ENDPOINT_URL alone.
        let out = newcomer("aws", home.path(), &env)
            .args(["scheduler", "list-schedules"])
            .output()
            .await?;
        assert!(
            out.status.success(),
            "aws scheduler list-schedules: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Schedules"));
    } else {
        eprintln!("the AWS CLI is not installed: only boto3 is tried");
    }
    if has_boto3 {
        let out = newcomer("python3", home.path(), &env)
            .args([
                "-c",
                "import boto3; print(boto3.client('sqs').list_queues()['QueueUrls'])",
            ])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "boto3 list_queues: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("/000000000000/work-dlq"), "{stdout}");
    } else {
        eprintln!("python3 with boto3 is not installed: only the AWS CLI is tried");
    }
    up.start_kill()?;
    up.wait().await?;
    Ok(())
}
