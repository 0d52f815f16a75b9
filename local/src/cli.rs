//! The `nightshift` command line: `up` runs the emulator; the other commands talk to a running
//! one over its control endpoint (same `--port`), except `schedule next`, which needs none.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::app::{Emulator, InvokerChoice, Status, UpOptions};
use crate::clock::ClockSpec;
use crate::control::ControlClient;

/// Docker-free emulator for nightshift: SQS, event source mappings, schedules and a Lambda
/// runtime, driven by infra/template.yaml.
#[derive(Debug, Parser)]
#[command(name = "nightshift", version)]
pub struct Cli {
    /// Port of the emulator's SQS and control endpoint on 127.0.0.1.
    #[arg(long, global = true, default_value_t = 9324, env = "NIGHTSHIFT_PORT")]
    pub port: u16,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the functions and run everything the template describes.
    Up(UpArgs),
    /// Send a message to a queue: a body, @file, or - for stdin.
    Send {
        /// Queue: logical id (JobsQueue), name (nightshift-jobs) or short name (jobs).
        queue: String,
        /// The body, `@path` to read a file, or `-` to read stdin.
        body: String,
    },
    /// Fire a schedule now and print the function's answer.
    Fire {
        /// Schedule name, as `status` lists it.
        schedule: String,
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
    },
}

/// `nightshift schedule ...`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
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

/// `nightshift up` options.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The SAM template.
    #[arg(long, default_value = "infra/template.yaml")]
    pub template: PathBuf,
    /// The `sam local --env-vars` file (`none` for none).
    #[arg(long, default_value = "infra/env.local.json")]
    pub env_file: String,
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
    /// Region in ARNs and AWS_REGION.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
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

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let endpoint = format!("http://127.0.0.1:{}", cli.port);
    let client = ControlClient::new(&endpoint);
    match cli.command {
        Command::Up(args) => up(cli.port, args).await,
        Command::Send { queue, body } => {
            let body = read_body(&body)?;
            let sent = client.send(&queue, &body).await?;
            println!("sent {} to {}", sent.message_id, sent.queue);
            Ok(())
        }
        Command::Fire { schedule } => {
            let fired = client.fire(&schedule).await?;
            println!(
                "{} {} in {:.1} ms\n{}",
                fired.outcome,
                fired.request_id,
                fired.duration_ms,
                serde_json::to_string_pretty(&fired.payload)?
            );
            if fired.outcome != "success" {
                bail!("schedule {schedule} failed: {}", fired.outcome);
            }
            Ok(())
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
            command: DlqCommand::Redrive { dlq },
        } => {
            let task = client.redrive(&dlq).await?;
            println!("redrive started: {}", task.task_handle);
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

async fn up(port: u16, args: UpArgs) -> anyhow::Result<()> {
    let root = std::env::current_dir().context("no current directory")?;
    let clock: ClockSpec = args
        .clock
        .parse()
        .with_context(|| format!("--clock {}", args.clock))?;
    let mut options = UpOptions::new(&root);
    options.template = root.join(&args.template);
    options.env_file = (args.env_file != "none").then(|| root.join(&args.env_file));
    options.addr = SocketAddr::from(([127, 0, 0, 1], port));
    options.state_dir = (!args.ephemeral).then(|| root.join(&args.state_dir));
    options.clock = clock;
    if let Some(start) = &args.clock_start {
        options.clock_start = parse_time(start)?;
    }
    options.invoker = match args.invoke_endpoint {
        Some(url) => InvokerChoice::Remote(url),
        None => InvokerChoice::Process {
            release: args.release,
            build: !args.no_build,
        },
    };
    options.stack_name = args.stack_name;
    options.region = args.region;
    let emulator = Emulator::start(options, None).await?;
    print!("{}", render_started(&emulator.status()));
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for ctrl-c")?;
    eprintln!("shutting down: stopping pollers and schedules, letting in-flight work finish");
    emulator.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

fn render_started(status: &Status) -> String {
    let mut out = format!(
        "nightshift emulator up\n  SQS endpoint   {}   (aws --endpoint-url {} sqs list-queues)\n  clock          {} at {}\n",
        status.endpoint,
        status.endpoint,
        status.clock,
        status
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
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
    out.push_str("  ctrl-c to stop\n");
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
    out
}
