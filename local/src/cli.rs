//! The `nightshift` command line: `up` runs the emulator; the other commands talk to a running
//! one over its control endpoint (same `--port`), except `schedule next`, which needs none.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::clock::ClockSpec;
use crate::control::ControlClient;
use crate::emulator::{Emulator, EmulatorOptions, InvokerChoice, Status};
use crate::invoker::Layers;
use crate::logs::LogFormat;

/// Docker-free emulator for nightshift: SQS, event source mappings, schedules and a Lambda
/// runtime, driven by infra/template.yaml.
#[derive(Debug, Parser)]
#[command(name = "nightshift", version)]
pub struct Cli {
    /// Port of the emulator's SQS and control endpoint on 127.0.0.1.
    #[arg(long, global = true, default_value_t = 9324, env = "NIGHTSHIFT_PORT")]
    pub port: u16,
    /// How function logs and the emulator's own log are written: `human` (time, function,
    /// level, message, fields) or `json` (one object per line) [default: human on a terminal,
    /// json to a file or a pipe]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    /// For people: one short line per log line, coloured on a terminal.
    Human,
    /// One JSON object per line, for machines.
    Json,
}

impl Cli {
    /// The log format asked for, else the one for where stdout goes
    /// ([`LogFormat::detect`]).
    pub fn log_format(&self) -> LogFormat {
        match self.log_format {
            Some(LogFormatArg::Human) => LogFormat::human(),
            Some(LogFormatArg::Json) => LogFormat::Json,
            None => LogFormat::detect(),
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the functions and run everything the template describes.
    Up(UpArgs),
    /// Run the emulator like `up` and write every invocation (event and response) to a trace.
    Record(RecordArgs),
    /// Feed a trace's events to fresh functions again; `--check` compares the responses.
    Replay(ReplayArgs),
    /// Reliability check: N jobs through the real functions under injected faults, verified
    /// from the outcomes, the outbox and the DLQs; non-zero exit on any loss or duplicate.
    Check(CheckArgs),
    /// Send a message to a queue: a body, @file, or - for stdin.
    Send {
        /// Queue: logical id (JobsQueue), name (nightshift-jobs) or short name (jobs).
        queue: String,
        /// The body, `@path` to read a file, or `-` to read stdin.
        body: String,
        /// `MessageGroupId`, required on a FIFO queue (e.g. the SKU of an inventory
        /// adjustment).
        #[arg(long)]
        group_id: Option<String>,
        /// `MessageDeduplicationId`, for a FIFO queue without content-based deduplication.
        #[arg(long)]
        dedup_id: Option<String>,
    },
    /// Fire a schedule now and print the function's answer.
    Fire {
        /// Schedule name, as `status` lists it.
        schedule: String,
    },
    /// Invoke a function and print its answer; with --async, queue the event as Lambda's
    /// `Event` invocation type does (retries and destinations per its EventInvokeConfig).
    Invoke {
        /// Function: logical id (DailyReportFunction), name, ARN or short name.
        function: String,
        /// The event: JSON text, `@path` to read a file, or `-` to read stdin.
        #[arg(default_value = "{}")]
        payload: String,
        /// Invoke asynchronously and print the request id.
        #[arg(long = "async")]
        asynchronous: bool,
    },
    /// Move the manual clock forward (emulator started with --clock manual).
    Advance {
        /// How far: 90s, 15m, 6h, 1d, 1h30m.
        duration: String,
    },
    /// Queues, functions, mappings and schedules of the running emulator.
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Dead-letter queues.
    Dlq {
        /// What to do with them.
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Schedule expressions.
    Schedule {
        /// What to do.
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Delete every message of a queue (PurgeQueue: once a minute per queue, as in SQS).
    Purge {
        /// The queue.
        queue: String,
    },
    /// The functions' metrics (their EMF lines, as CloudWatch would extract them): samples,
    /// sum, average, p95 and maximum of each metric over a window of the emulator's clock.
    Metrics {
        /// Only this function: the `Function` dimension it gives its metrics
        /// (`queue-processor`), or its logical id or name.
        #[arg(long)]
        function: Option<String>,
        /// Only the last part of the emulator's clock: 90s, 10m, 1h, 1d.
        #[arg(long)]
        since: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the chain of invocations a message or job caused, in order: the invocations
    /// whose message ids or event match, and every invocation of their X-Ray traces and of the
    /// traces linked to or from them (an SQS batch's trace links to its messages'), then the
    /// links.
    Trace {
        /// A message id, a job id (or any text of the first event), a request id or a trace id.
        id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the functions' log lines the running emulator keeps; --follow keeps printing.
    Logs {
        /// Only this function (logical id, name or short name).
        function: Option<String>,
        /// Keep printing new lines as the functions write them.
        #[arg(long, short)]
        follow: bool,
        /// Only the lines of this invocation.
        #[arg(long)]
        request_id: Option<String>,
        /// One JSON object per line (the default when stdout is not a terminal).
        #[arg(long)]
        json: bool,
    },
}

/// `nightshift dlq ...`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the messages of a queue (usually a DLQ) with their failure reasons.
    List {
        /// The queue.
        queue: String,
    },
    /// Move a DLQ's messages back to their source queues.
    Redrive {
        /// The dead-letter queue.
        dlq: String,
        /// Only this message (repeat for more); every message when absent.
        #[arg(long = "message-id")]
        message_ids: Vec<String>,
    },
}

/// `nightshift schedule ...`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List the running emulator's schedules: the template's and those created through the
    /// Scheduler API.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Let a schedule fire again (the template's until the next start; the Scheduler API's
    /// by an UpdateSchedule, kept).
    Enable {
        /// Schedule name, as `schedule list` shows it.
        name: String,
    },
    /// Stop a schedule from firing (see `enable`).
    Disable {
        /// Schedule name, as `schedule list` shows it.
        name: String,
    },
    /// Print the next fire times of an expression, one RFC 3339 timestamp per line.
    Next {
        /// `cron(...)`, `rate(...)` or `at(...)`.
        expression: String,
        /// IANA time zone the expression is evaluated in.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Start after this time (RFC 3339); now by default.
        #[arg(long)]
        from: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
}

pub use crate::emulator::{ENV_FILE_CANDIDATES, TEMPLATE_CANDIDATES};

/// Where a command finds the SAM template and the environment file, so that `nightshift up`
/// works in any SAM project's directory as `sam local` does.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProjectArgs {
    /// The SAM template [default: the first of template.yaml, template.yml and
    /// infra/template.yaml in the current directory]
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// The `sam local --env-vars` file, `none` for none [default: infra/env.local.json or
    /// env.json when there is one, else none]
    #[arg(long)]
    pub env_file: Option<String>,
}

impl ProjectArgs {
    /// The template and environment file for a project in `root`: those named, else the
    /// first candidate that exists. No template found is an error naming every place looked
    /// at; no environment file is fine (the template's own variables apply).
    pub fn resolve(&self, root: &Path) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
        let template = match &self.template {
            Some(path) => root.join(path),
            None => {
                crate::emulator::first_existing(root, &TEMPLATE_CANDIDATES).ok_or_else(|| {
                    anyhow::anyhow!(
                        "no SAM template in {}: looked for {}; name one with --template",
                        root.display(),
                        TEMPLATE_CANDIDATES.join(", ")
                    )
                })?
            }
        };
        let env_file = match self.env_file.as_deref() {
            Some("none") => None,
            Some(path) => Some(root.join(path)),
            None => crate::emulator::first_existing(root, &ENV_FILE_CANDIDATES),
        };
        Ok((template, env_file))
    }
}

/// `nightshift up` options.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The template and the environment file.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Where queues are journaled.
    #[arg(long, default_value = ".nightshift")]
    pub state_dir: PathBuf,
    /// Keep queues in memory only (nothing survives a restart).
    #[arg(long)]
    pub ephemeral: bool,
    /// `real`, `x60` (accelerated by any factor) or `manual`.
    #[arg(long, default_value = "real")]
    pub clock: String,
    /// Start time of an accelerated or manual clock (RFC 3339); now by default.
    #[arg(long)]
    pub clock_start: Option<String>,
    /// Invoke functions through this Lambda Invoke API instead of running them, e.g.
    /// `http://127.0.0.1:9000` for `cargo lambda watch` (hot reload).
    #[arg(long)]
    pub invoke_endpoint: Option<String>,
    /// Build and run release binaries.
    #[arg(long)]
    pub release: bool,
    /// Do not run `cargo build` first.
    #[arg(long)]
    pub no_build: bool,
    /// Stack name used in resource names.
    #[arg(long, default_value = "nightshift")]
    pub stack_name: String,
    /// Template parameter values, as `sam` takes them: `Key=Value` or
    /// `ParameterKey=Key,ParameterValue=Value`, separated by spaces.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    pub parameter_overrides: Vec<String>,
    /// Region in ARNs and AWS_REGION.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The functions' working directory, where their relative `.nightshift/` paths land
    /// (default: the current directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Inject faults: `[function:]fault[=rate]`, comma-separated, e.g.
    /// `crash=0.02,email-sender:mail-throttle=0.1,malformed-response`. Faults: crash, timeout,
    /// error, mail-throttle, crash-after-send, crash-before-complete (in the functions),
    /// malformed-response, drop-response, invoke-error (in the emulator).
    #[arg(long)]
    pub faults: Option<String>,
    /// Seed of the fault decisions.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
}

fn parse_time(value: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(value)
        .with_context(|| format!("{value:?} is not an RFC 3339 time like 2026-11-22T02:00:00Z"))?
        .with_timezone(&Utc))
}

fn read_body(body: &str) -> anyhow::Result<String> {
    if body == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        return Ok(text);
    }
    if let Some(path) = body.strip_prefix('@') {
        return std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"));
    }
    Ok(body.to_string())
}

/// Prints what a function answered; fails (non-zero exit) when it did not succeed.
fn print_answer(answer: &crate::control::FireResponse, what: &str) -> anyhow::Result<()> {
    println!(
        "{} {} in {:.1} ms\n{}",
        answer.outcome,
        answer.request_id,
        answer.duration_ms,
        serde_json::to_string_pretty(&answer.payload)?
    );
    if answer.outcome != "success" {
        bail!("{what} failed: {}", answer.outcome);
    }
    Ok(())
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let endpoint = format!("http://127.0.0.1:{}", cli.port);
    let client = ControlClient::new(&endpoint);
    let log_format = cli.log_format();
    match cli.command {
        Command::Up(args) => up(cli.port, args, log_format).await,
        Command::Check(args) => check(args).await,
        Command::Record(args) => record(cli.port, args, log_format).await,
        Command::Replay(args) => replay_trace(args, log_format).await,
        Command::Send {
            queue,
            body,
            group_id,
            dedup_id,
        } => {
            let body = read_body(&body)?;
            let sent = client
                .send_message(&crate::control::SendRequest {
                    queue,
                    body,
                    group_id,
                    dedup_id,
                })
                .await?;
            println!("sent {} to {}", sent.message_id, sent.queue);
            Ok(())
        }
        Command::Fire { schedule } => {
            let fired = client.fire(&schedule).await?;
            print_answer(&fired, &format!("schedule {schedule}"))
        }
        Command::Invoke {
            function,
            payload,
            asynchronous,
        } => {
            let payload = read_body(&payload)?;
            let answer = client.invoke(&function, &payload, asynchronous).await?;
            if asynchronous {
                println!("accepted {}", answer.request_id);
                return Ok(());
            }
            print_answer(&answer, &format!("function {function}"))
        }
        Command::Advance { duration } => {
            let moved = client.advance(&duration).await?;
            println!(
                "{}",
                moved.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            Ok(())
        }
        Command::Status { json } => {
            let status = client.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", render_status(&status));
            }
            Ok(())
        }
        Command::Dlq {
            command: DlqCommand::List { queue },
        } => {
            let messages = client.dlq_list(&queue).await?;
            if messages.is_empty() {
                println!("{queue}: empty");
            }
            for m in messages {
                println!(
                    "{}  sent {}  received {}x  reason: {}\n  {}",
                    m.message_id,
                    m.sent_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    m.receive_count,
                    m.reason.as_deref().unwrap_or("-"),
                    m.body
                );
            }
            Ok(())
        }
        Command::Dlq {
            command: DlqCommand::Redrive { dlq, message_ids },
        } => {
            let answer = client.redrive_messages(&dlq, &message_ids).await?;
            match (answer.task_handle, answer.moved) {
                (Some(task), _) => println!("redrive started: {task}"),
                (None, moved) => println!(
                    "{} of {} messages moved back",
                    moved.unwrap_or(0),
                    message_ids.len()
                ),
            }
            Ok(())
        }
        Command::Schedule {
            command: ScheduleCommand::Enable { name },
        } => {
            let detail = client.set_schedule_state(&name, true).await?;
            println!(
                "{} enabled; next fire {}",
                detail.status.name,
                detail
                    .next_fires
                    .first()
                    .map_or("-".to_owned(), |t| t.to_rfc3339())
            );
            Ok(())
        }
        Command::Schedule {
            command: ScheduleCommand::Disable { name },
        } => {
            let detail = client.set_schedule_state(&name, false).await?;
            println!("{} disabled", detail.status.name);
            Ok(())
        }
        Command::Purge { queue } => {
            let queue = client.purge(&queue).await?;
            println!("{queue}: purged");
            Ok(())
        }
        Command::Metrics {
            function,
            since,
            json,
        } => {
            let since_s = since
                .as_deref()
                .map(crate::duration::parse_duration)
                .transpose()?
                .map(|d| d.as_secs());
            let query = crate::metrics::MetricsQuery {
                function: function.clone(),
                since_s,
            };
            let summaries = client.metrics(&query).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
            } else if summaries.is_empty() {
                // Say why, so a typo in --function is not taken for "nothing happened".
                let known: std::collections::BTreeSet<String> = client
                    .status()
                    .await?
                    .metrics
                    .into_iter()
                    .filter_map(|t| t.metric.dimensions.get("Function").cloned())
                    .collect();
                match function {
                    Some(f) if !known.is_empty() => println!(
                        "no metrics of {f} in that window; functions with metrics: {}",
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                    _ => println!("no metrics in that window"),
                }
            } else {
                print!("{}", crate::metrics::render_table(&summaries));
            }
            Ok(())
        }
        Command::Trace { id, json } => {
            let chain = client.trace(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&chain)?);
            } else {
                print!("{}", render_chain(&chain));
            }
            Ok(())
        }
        Command::Logs {
            function,
            follow,
            request_id,
            json,
        } => {
            let query = crate::control::LogsQuery {
                function,
                request_id,
                follow,
            };
            // Rendered as `up` renders them: for people on a terminal, JSON for a pipe.
            let format = if json {
                crate::logs::LogFormat::Json
            } else {
                crate::logs::LogFormat::detect()
            };
            client
                .logs(&query, |record| {
                    let line = match format {
                        crate::logs::LogFormat::Human { color } => {
                            if crate::logs::render::is_quiet(&record) {
                                return;
                            }
                            crate::logs::render_human(&record, color)
                        }
                        _ => crate::logs::render_json(&record),
                    };
                    use std::io::Write as _;
                    // A closed pipe (`| head`) ends the output, not the process with a panic.
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                })
                .await?;
            Ok(())
        }
        Command::Schedule {
            command: ScheduleCommand::List { json },
        } => {
            let status = client.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status.schedules)?);
            } else {
                print!("{}", render_schedules(&status.schedules));
            }
            Ok(())
        }
        Command::Schedule {
            command:
                ScheduleCommand::Next {
                    expression,
                    tz,
                    from,
                    count,
                },
        } => {
            let from = match from {
                Some(f) => parse_time(&f)?,
                None => Utc::now(),
            };
            let times = crate::schedule::next_fire_times(&expression, &tz, from, count)?;
            for t in times {
                println!("{}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            Ok(())
        }
    }
}

async fn up(port: u16, args: UpArgs, log_format: LogFormat) -> anyhow::Result<()> {
    let mut options = up_options_from(port, &args)?;
    options.log_format = log_format;
    let region = options.region.clone();
    let wrap = apply_faults(&mut options, args.faults.as_deref(), args.fault_seed)?;
    let emulator = Emulator::start_wrapped(options, None, wrap).await?;
    print!(
        "{}",
        render_started(&emulator.status(), emulator.template(), &region)
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for ctrl-c")?;
    eprintln!("shutting down: stopping pollers and schedules, letting in-flight work finish");
    emulator.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// The environment that points the AWS CLI, boto3 and the AWS SDKs at the emulator at
/// `endpoint`, on a machine with no AWS profile: `AWS_ENDPOINT_URL` (every service the
/// emulator serves is on it), dummy keys (the emulator checks no signature, but the clients
/// sign every request and refuse to run without credentials) and the emulator's region
/// (`AWS_REGION` for the SDKs, `AWS_DEFAULT_REGION` for the AWS CLI and boto3).
pub fn client_env(endpoint: &str, region: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "nightshift".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "nightshift".to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
    ]
}

/// The command `up` prints under [`client_env`]. It names the endpoint although
/// `AWS_ENDPOINT_URL` is set: version 1 of the AWS CLI sends `sqs` commands to AWS whatever
/// the variable says (<https://github.com/aws/aws-cli/issues/8737>); its other commands, version
/// 2, boto3 and the SDKs need only the variable.
pub const CLIENT_EXAMPLE: &str = "aws --endpoint-url \"$AWS_ENDPOINT_URL\" sqs list-queues";

/// [`client_env`] as the shell line `up` prints to paste: `export AWS_ENDPOINT_URL=… …`.
pub fn render_client_env(endpoint: &str, region: &str) -> String {
    let pairs: Vec<String> = client_env(endpoint, region)
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    format!("export {}", pairs.join(" "))
}

/// What `up` prints once it serves: the endpoint and the environment that points the AWS CLI
/// and SDKs at it, the clock, the queues, mappings and schedules, what was skipped.
fn render_started(status: &Status, template: &crate::template::Template, region: &str) -> String {
    let mut out = format!(
        "nightshift emulator up\n  endpoint       {} (SQS, Lambda, Scheduler)\n  AWS CLI, SDKs  {}\n                 then: {CLIENT_EXAMPLE}\n  clock          {} at {}\n",
        status.endpoint,
        render_client_env(&status.endpoint, region),
        status.clock,
        status
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    out.push_str(&format!("  dashboard      {}/ui\n", status.endpoint));
    for q in &status.queues {
        out.push_str(&format!("  queue          {}\n", q.url));
    }
    for m in &status.mappings {
        out.push_str(&format!("  mapping        {} -> {}\n", m.queue, m.function));
    }
    for s in &status.schedules {
        out.push_str(&format!(
            "  schedule       {} {} ({}) -> {}; next {}\n",
            s.name,
            s.expression,
            s.timezone,
            s.function,
            s.next_fire
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "never".into())
        ));
    }
    out.push_str(&render_skipped(template));
    out.push_str("  ctrl-c to stop\n");
    out
}

/// What `up` prints under what it started: the functions of the template it does not run,
/// and the event sources and schedules left out with them, each with the reason.
pub fn render_skipped(template: &crate::template::Template) -> String {
    let mut out = String::new();
    for f in &template.skipped_functions {
        out.push_str(&format!(
            "  skipped        function {}: {}\n",
            f.logical_id, f.reason
        ));
    }
    for e in &template.skipped_events {
        out.push_str(&format!(
            "  skipped        {} {}: {}\n",
            e.kind, e.id, e.reason
        ));
    }
    out
}

/// Template parameter values from `--parameter-overrides`, in both forms `sam` accepts
/// ("Use the same format as the AWS CLI ... --parameter-overrides ParameterKey=hello,
/// ParameterValue=world ParameterKey=apple,ParameterValue=banana" or `KeyPairName=MyKey
/// InstanceType=t1.micro`:
/// <https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-cli-command-reference-sam-local-invoke.html>):
/// `Key=Value` or `ParameterKey=Key,ParameterValue=Value`, several in one argument separated
/// by spaces (quote a value to keep its spaces) or in several arguments. A later value of a
/// key wins. Keys the template does not declare are refused when it is loaded.
pub fn parse_parameter_overrides(
    args: &[String],
) -> Result<std::collections::BTreeMap<String, String>, ParameterOverrideError> {
    let mut out = std::collections::BTreeMap::new();
    for arg in args {
        for token in split_unquoted(arg) {
            let (key, value) = match token.strip_prefix("ParameterKey=") {
                Some(rest) => rest.split_once(",ParameterValue="),
                None => token.split_once('='),
            }
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| ParameterOverrideError(token.clone()))?;
            out.insert(key.to_owned(), unquote(value).to_owned());
        }
    }
    Ok(out)
}

/// A `--parameter-overrides` entry in neither form `sam` accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--parameter-overrides: {0:?} is neither Key=Value nor ParameterKey=Key,ParameterValue=Value"
)]
pub struct ParameterOverrideError(pub String);

/// Splits on whitespace outside single or double quotes (the quotes are kept, for `unquote`).
fn split_unquoted(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                continue;
            }
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// A value without the quotes around it, if it has a matching pair.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// The table of `nightshift schedule list`: one line per schedule, its group, where it comes
/// from (`template` or `api`), its state, expression and zone, target and next fire time.
pub fn render_schedules(schedules: &[crate::status::ScheduleStatus]) -> String {
    let header = [
        "GROUP/NAME",
        "SOURCE",
        "STATE",
        "EXPRESSION (ZONE)",
        "TARGET",
        "NEXT FIRE",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 6]> = schedules
        .iter()
        .map(|s| {
            [
                format!("{}/{}", s.group, s.name),
                (if s.api { "api" } else { "template" }).to_owned(),
                (if s.enabled { "ENABLED" } else { "DISABLED" }).to_owned(),
                format!("{} ({})", s.expression, s.timezone),
                s.function.clone(),
                s.next_fire
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    columns(&header, &rows)
}

/// `header` and `rows` as a table: each column as wide as its widest cell plus two spaces, so
/// names and expressions of any length never run into the next column.
fn columns<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i] + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The output of `nightshift trace`: the invocations of the chain in the order they started,
/// with function, trigger, status, duration and trace id, then the links between its traces
/// (an SQS batch's trace to its messages' traces), or a line saying nothing matched.
pub fn render_chain(chain: &crate::history::TraceChain) -> String {
    if chain.invocations.is_empty() {
        return format!(
            "no invocation in the history matches {:?} (it keeps the last {} of each function)\n",
            chain.id,
            crate::history::KEEP_PER_FUNCTION
        );
    }
    let header = [
        "#",
        "STARTED",
        "FUNCTION",
        "TRIGGER",
        "STATUS",
        "DURATION",
        "TRACE ID",
        "REQUEST ID",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 8]> = chain
        .invocations
        .iter()
        .enumerate()
        .map(|(i, s)| {
            [
                (i + 1).to_string(),
                s.started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                s.function.clone(),
                s.trigger.clone(),
                s.status.as_str().to_owned(),
                s.duration_ms
                    .map(|ms| format!("{ms:.2} ms"))
                    .unwrap_or_else(|| "-".into()),
                s.trace_id.clone().unwrap_or_else(|| "-".into()),
                s.request_id.clone(),
            ]
        })
        .collect();
    let mut out = columns(&header, &rows);
    if !chain.links.is_empty() {
        // Lambda starts a new trace per SQS batch, linked to its messages' traces: the links
        // are how the traces above make one flow.
        let header = ["TRACE ID", "LINKED TO"].map(str::to_owned);
        let rows: Vec<[String; 2]> = chain
            .links
            .iter()
            .map(|l| [l.from.clone(), l.to.clone()])
            .collect();
        out.push('\n');
        out.push_str(&columns(&header, &rows));
    }
    out
}

/// The `status` tables.
pub fn render_status(status: &Status) -> String {
    let mut out = format!(
        "clock {} {}   endpoint {}\n\nQUEUE                                   VISIBLE  IN-FLIGHT  DELAYED  DLQ\n",
        status.clock,
        status
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        status.endpoint
    );
    for q in &status.queues {
        out.push_str(&format!(
            "{:<40}{:>7}{:>11}{:>9}  {}\n",
            q.name,
            q.visible,
            q.in_flight,
            q.delayed,
            q.dead_letter_queue.as_deref().unwrap_or("-")
        ));
    }
    out.push_str("\nFUNCTION                                INSTANCES  BUSY  INVOCATIONS  ERRORS  TIMEOUTS  CRASHES\n");
    for f in &status.functions {
        out.push_str(&format!(
            "{:<40}{:>9}{:>6}{:>13}{:>8}{:>10}{:>9}\n",
            f.name, f.instances, f.busy, f.invocations, f.errors, f.timeouts, f.crashes
        ));
    }
    out.push_str(
        "\nSCHEDULE                                NEXT FIRE             FIRES  FAILURES\n",
    );
    for s in &status.schedules {
        out.push_str(&format!(
            "{:<40}{:<22}{:>5}{:>10}\n",
            s.name,
            s.next_fire
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "never".into()),
            s.fires,
            s.failures
        ));
    }
    let used: Vec<_> = status
        .async_invocations
        .iter()
        .filter(|a| a.accepted > 0)
        .collect();
    if !used.is_empty() {
        out.push_str(
            "\nASYNC (Event) FUNCTION                  ACCEPTED  ATTEMPTS  SUCCEEDED  DISCARDED  PENDING\n",
        );
        for a in used {
            out.push_str(&format!(
                "{:<40}{:>8}{:>10}{:>11}{:>11}{:>9}\n",
                a.function, a.accepted, a.attempts, a.succeeded, a.discarded, a.pending
            ));
        }
    }
    out
}

/// `nightshift record` options.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Where the trace goes (created or overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Clock readings in the trace: `keep`, `mask`, or `auto`: kept on a manual clock with
    /// `--clock-start` (the same in every run), masked otherwise.
    #[arg(long, default_value = "auto")]
    pub times: String,
    /// Run the functions in a new empty directory, so their state (idempotency records,
    /// outcomes, outbox, reports) starts empty, as a replay's does.
    #[arg(long)]
    pub fresh: bool,
    /// Everything `up` takes.
    #[command(flatten)]
    pub up: UpArgs,
}

/// `nightshift replay` options.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The JSONL trace (`nightshift record --out`, or events written by hand).
    pub trace: PathBuf,
    /// Compare each response with the recorded one; exit non-zero on any difference.
    #[arg(long)]
    pub check: bool,
    /// Replay only this function's events.
    #[arg(long)]
    pub function: Option<String>,
    /// The template and the environment file.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Invoke functions through this Lambda Invoke API instead of running them (their state
    /// is then theirs, not fresh).
    #[arg(long)]
    pub invoke_endpoint: Option<String>,
    /// Build and run release binaries.
    #[arg(long)]
    pub release: bool,
    /// Do not run `cargo build` first.
    #[arg(long)]
    pub no_build: bool,
    /// The functions' working directory; a new empty one (removed afterwards) by default, so
    /// the replay starts from fresh state.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Stack name used in resource names.
    #[arg(long, default_value = "nightshift")]
    pub stack_name: String,
    /// Template parameter values, as `sam` takes them: `Key=Value` or
    /// `ParameterKey=Key,ParameterValue=Value`, separated by spaces.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    pub parameter_overrides: Vec<String>,
    /// Region in ARNs and AWS_REGION.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

/// The emulator options `up` would build from `args`.
fn up_options_from(port: u16, args: &UpArgs) -> anyhow::Result<EmulatorOptions> {
    let root = std::env::current_dir().context("no current directory")?;
    let clock: ClockSpec = args
        .clock
        .parse()
        .with_context(|| format!("--clock {}", args.clock))?;
    let mut options = EmulatorOptions::new(&root);
    (options.template, options.env_file) = args.project.resolve(&root)?;
    options.addr = SocketAddr::from(([127, 0, 0, 1], port));
    options.state_dir = (!args.ephemeral).then(|| root.join(&args.state_dir));
    options.clock = clock;
    if let Some(start) = &args.clock_start {
        options.clock_start = parse_time(start)?;
    }
    options.invoker = match &args.invoke_endpoint {
        Some(url) => InvokerChoice::Remote(url.clone()),
        None => InvokerChoice::Process {
            release: args.release,
            build: !args.no_build,
        },
    };
    options.stack_name = args.stack_name.clone();
    options.parameter_overrides = parse_parameter_overrides(&args.parameter_overrides)?;
    options.region = args.region.clone();
    options.work_dir = args.work_dir.as_ref().map(|d| root.join(d));
    Ok(options)
}

/// A new empty directory under the system's temporary directory.
fn fresh_dir(purpose: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "nightshift-{purpose}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

async fn record(port: u16, args: RecordArgs, log_format: LogFormat) -> anyhow::Result<()> {
    use crate::trace::{NormalizeOptions, TimeMode, TraceHeader, TraceWriter};

    let mut options = up_options_from(port, &args.up)?;
    options.log_format = log_format;
    let times = match args.times.as_str() {
        // Only a manual clock from a fixed start reads the same in every run.
        "auto" if options.clock == ClockSpec::Manual && args.up.clock_start.is_some() => {
            TimeMode::Keep
        }
        "auto" => TimeMode::Mask,
        other => other
            .parse::<TimeMode>()
            .map_err(anyhow::Error::msg)
            .context("--times")?,
    };
    if args.fresh {
        if args.up.work_dir.is_some() {
            bail!("--fresh and --work-dir both choose the functions' directory; give one");
        }
        let dir = fresh_dir("record")?;
        eprintln!("functions run in {}", dir.display());
        options.work_dir = Some(dir);
    }
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out: Box<dyn std::io::Write + Send> = Box::new(std::io::BufWriter::new(file));
    let mut writer = TraceWriter::new(out);
    let mut header = TraceHeader::new(times);
    header.clock = Some(options.clock.to_string());
    header.clock_start = (options.clock != ClockSpec::Real).then_some(options.clock_start);
    header.source = Some("nightshift record".into());
    writer.write_header(&header)?;
    let (record_wrap, slot) = crate::trace::recording_wrap(writer, NormalizeOptions { times });
    // The recorder sits next to the functions: it records what they got and answered, and
    // faults the emulator injects around them (dropped or malformed responses) stay outside.
    let faults = apply_faults(&mut options, args.up.faults.as_deref(), args.up.fault_seed)?;
    let wrap = Layers::new()
        .layer(record_wrap)
        .layer_if(faults)
        .into_wrap();
    let region = options.region.clone();
    let emulator = Emulator::start_wrapped(options, None, Some(wrap)).await?;
    let recorder = slot
        .get()
        .cloned()
        .context("the emulator did not wrap its invoker")?;
    recorder.set_clock(emulator.clock().clone());
    print!(
        "{}",
        render_started(&emulator.status(), emulator.template(), &region)
    );
    println!("  recording to   {} (times: {times})", args.out.display());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for ctrl-c")?;
    eprintln!("shutting down: stopping pollers and schedules, letting in-flight work finish");
    emulator.shutdown(Duration::from_secs(5)).await;
    recorder.flush()?;
    println!(
        "recorded {} invocations to {}",
        recorder.recorded(),
        args.out.display()
    );
    Ok(())
}

async fn replay_trace(args: ReplayArgs, log_format: LogFormat) -> anyhow::Result<()> {
    use crate::trace::{NormalizeOptions, ReplayOptions, Sandbox};

    let trace = crate::trace::load_trace(&args.trace)
        .with_context(|| format!("cannot read trace {}", args.trace.display()))?;
    if let Some(function) = &args.function
        && !trace.entries.iter().any(|e| e.function == *function)
    {
        let mut known: Vec<&str> = trace.entries.iter().map(|e| e.function.as_str()).collect();
        known.sort_unstable();
        known.dedup();
        bail!(
            "the trace has no event for {function}; it has: {}",
            known.join(", ")
        );
    }
    let root = std::env::current_dir().context("no current directory")?;
    let mut options = EmulatorOptions::new(&root);
    (options.template, options.env_file) = args.project.resolve(&root)?;
    options.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    options.state_dir = None;
    options.log_format = log_format;
    options.invoker = match args.invoke_endpoint {
        Some(url) => InvokerChoice::Remote(url),
        None => InvokerChoice::Process {
            release: args.release,
            build: !args.no_build,
        },
    };
    options.stack_name = args.stack_name;
    options.parameter_overrides = parse_parameter_overrides(&args.parameter_overrides)?;
    options.region = args.region;
    if let Some(start) = trace
        .header
        .as_ref()
        .and_then(|h| h.clock_start)
        .or_else(|| trace.entries.iter().find_map(|e| e.at))
    {
        options.clock_start = start;
    }
    let (work_dir, temporary) = match args.work_dir {
        Some(dir) => (root.join(dir), false),
        None => (fresh_dir("replay")?, true),
    };
    options.work_dir = Some(work_dir.clone());
    let sandbox = Sandbox::start(&options, None).await?;
    let mut replay_options = ReplayOptions {
        check: args.check,
        function: args.function,
        normalize: NormalizeOptions {
            times: trace.times(),
        },
        clock: Some(sandbox.clock().clone()),
        progress: None,
    };
    let total = crate::trace::to_replay(&trace.entries, &replay_options);
    replay_options.progress = Some(std::sync::Arc::new(crate::progress::Progress::new(
        "replayed", total,
    )));
    let report =
        crate::trace::replay(sandbox.invoker().as_ref(), &trace.entries, &replay_options).await;
    sandbox.shutdown(Duration::from_secs(5)).await;
    if temporary && let Err(e) = std::fs::remove_dir_all(&work_dir) {
        eprintln!("cannot remove {}: {e}", work_dir.display());
    }
    print!("{}", render_replay(&report, args.check));
    if args.check && !report.is_clean() {
        bail!(
            "{} of {} responses differ from the trace",
            report.differed(),
            report.replayed()
        );
    }
    Ok(())
}

/// What `replay` prints: each response (without `--check`), or each difference with its
/// place (line, seq, function, JSON path), then the summary.
pub fn render_replay(report: &crate::trace::ReplayReport, check: bool) -> String {
    let mut out = String::new();
    if check {
        out.push_str(&report.mismatches());
    } else {
        for r in &report.results {
            let place = match r.line {
                Some(line) => format!("line {line} (seq {})", r.seq),
                None => format!("seq {}", r.seq),
            };
            out.push_str(&format!(
                "{place} {} {} {}\n",
                r.function, r.outcome, r.response
            ));
        }
    }
    out.push_str(&report.summary());
    out.push('\n');
    out
}

/// Sets up the faults of `up --faults`: the functions' variables and the invoker wrapper.
fn apply_faults(
    options: &mut EmulatorOptions,
    spec: Option<&str>,
    seed: u64,
) -> anyhow::Result<Option<crate::emulator::Wrap>> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let plan = crate::faults::FaultPlan::parse(spec, seed).context("--faults")?;
    if plan.sigkills > 0 {
        eprintln!("note: sigkill applies to `nightshift check` only; `up` ignores it");
    }
    eprintln!("injecting faults: {}", plan.describe());
    plan.apply_env(options);
    Ok(plan.wrapper())
}

/// `nightshift check` options.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Jobs to send.
    #[arg(long, default_value_t = 200)]
    pub jobs: usize,
    /// Share of malformed jobs (broken JSON, unknown kind, invalid payload), 0 to 1.
    #[arg(long, default_value_t = 0.1)]
    pub bad_share: f64,
    /// Faults, as for `up --faults`, plus `sigkill[=N]` (kill the emulator N times and restart
    /// it on its journal); names alone take default rates.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed of the jobs and of every fault decision.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The template and the environment file.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Do not run `cargo build` first.
    #[arg(long)]
    pub no_build: bool,
    /// Where to keep the run's files (a temporary directory by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the run's files even when the check passes.
    #[arg(long)]
    pub keep: bool,
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let root = std::env::current_dir().context("no current directory")?;
    let mut options = crate::check::CheckOptions::new(&root);
    (options.template, options.env_file) = args.project.resolve(&root)?;
    options.jobs = args.jobs;
    options.bad_share = args.bad_share;
    options.faults = args.faults;
    options.seed = args.seed;
    options.build = !args.no_build;
    // The emulator is this very binary, run as `nightshift up`.
    options.emulator = Some(std::env::current_exe().context("cannot find this executable")?);
    options.dir = args.dir.map(|d| root.join(d));
    options.keep = args.keep;
    options.progress = Some(std::sync::Arc::new(crate::progress::Progress::new(
        "jobs settled",
        options.jobs,
    )));
    let report = crate::check::run(options).await?;
    print!("{}", report.details());
    println!("{}", report.summary());
    if !report.passed() {
        bail!("reliability check failed: {}", report.summary());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{InvocationStatus, InvocationSummary, TraceChain, TraceLink};

    const JOB_TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const EMAIL_TRACE: &str = "1-5759e98a-000000000000000000000007";

    fn invocation(
        seq: u64,
        function: &str,
        trigger: &str,
        ms: Option<f64>,
        trace: &str,
        links: &[&str],
    ) -> InvocationSummary {
        InvocationSummary {
            seq,
            request_id: format!("r-{seq}"),
            function: function.into(),
            trigger: trigger.into(),
            status: if ms.is_some() {
                InvocationStatus::Success
            } else {
                InvocationStatus::Running
            },
            started_at: "2026-11-21T09:30:00Z".parse().unwrap(),
            duration_ms: ms,
            init_duration_ms: None,
            max_memory_mb: None,
            message_ids: vec![],
            trace_id: Some(trace.into()),
            trace_links: links.iter().map(|l| l.to_string()).collect(),
            error: None,
        }
    }

    #[test]
    fn a_chain_prints_one_line_per_invocation_in_order() {
        let chain = TraceChain {
            id: "job-order-1001".into(),
            trace_ids: vec![JOB_TRACE.into(), EMAIL_TRACE.into()],
            links: vec![TraceLink {
                from: EMAIL_TRACE.into(),
                to: JOB_TRACE.into(),
            }],
            invocations: vec![
                invocation(
                    3,
                    "nightshift-QueueProcessorFunction",
                    "sqs:nightshift-jobs",
                    Some(4.25),
                    JOB_TRACE,
                    &[],
                ),
                invocation(
                    7,
                    "nightshift-EmailSenderFunction",
                    "sqs:nightshift-emails",
                    None,
                    EMAIL_TRACE,
                    &[JOB_TRACE],
                ),
            ],
        };
        let text = render_chain(&chain);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "#  STARTED                   FUNCTION                           TRIGGER                STATUS   DURATION  TRACE ID                             REQUEST ID",
                "1  2026-11-21T09:30:00.000Z  nightshift-QueueProcessorFunction  sqs:nightshift-jobs    success  4.25 ms   1-5759e988-bd862e3fe1be46a994272793  r-3",
                "2  2026-11-21T09:30:00.000Z  nightshift-EmailSenderFunction     sqs:nightshift-emails  running  -         1-5759e98a-000000000000000000000007  r-7",
                "",
                "TRACE ID                             LINKED TO",
                "1-5759e98a-000000000000000000000007  1-5759e988-bd862e3fe1be46a994272793",
            ],
            "{text}"
        );
        let none = render_chain(&TraceChain {
            id: "nope".into(),
            ..TraceChain::default()
        });
        assert!(
            none.starts_with("no invocation in the history matches \"nope\""),
            "{none}"
        );
    }
}
