//! The dashboard group: what the dashboard's live stream costs the emulator. The same
//! throughput run through the whole emulator (`Emulator::start`: the invocation history,
//! the per-second series, the control routes), once without a subscriber and once with one
//! reading `/_nightshift/events` as an open dashboard tab does; DESIGN's budget is
//! the second within 10% of the first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::output::{Row, per_second};
use crate::{BENCH_QUEUE, STALL};
use nightshift_local::emulator::{Emulator, EmulatorOptions, InvokerChoice};
use nightshift_local::invoker::{FunctionError, InProcessInvoker};
use nightshift_local::logs::LogFormat;
use nightshift_local::sqs::OutgoingMessage;

/// Messages of each run.
const MESSAGES: usize = 200_000;
/// Runs of each kind, alternated, best kept: the two kinds see the same machine noise.
const ROUNDS: usize = 5;
/// DESIGN: throughput with the dashboard open is within 10% of without.
const BUDGET_RATIO: f64 = 0.9;

/// One queue and one function fed by it (batch 10, `MaximumConcurrency` 5), the function in
/// process; the emulator names it `bench-live`.
const TEMPLATE: &str = "\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  BenchQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: bench-queue
  BenchFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: bench-live
      CodeUri: .
      Handler: bootstrap
      Runtime: provided.al2023
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt BenchQueue.Arn
            BatchSize: 10
            ScalingConfig:
              MaximumConcurrency: 5
";

/// The rows of the group.
pub(super) async fn dashboard(scratch: &Path) -> Result<Vec<Row>> {
    let dir = scratch.join("dashboard");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("template.yaml"), TEMPLATE)?;
    let mut without: f64 = 0.0;
    let mut with: f64 = 0.0;
    let mut events = 0;
    for round in 0..ROUNDS {
        let (rate, _) = run(&dir, false).await?;
        eprintln!(
            "dashboard: round {} of {ROUNDS}, without a subscriber: {} msg/s",
            round + 1,
            per_second(rate)
        );
        without = without.max(rate);
        let (rate, seen) = run(&dir, true).await?;
        eprintln!(
            "dashboard: round {} of {ROUNDS}, with a subscriber: {} msg/s",
            round + 1,
            per_second(rate)
        );
        with = with.max(rate);
        events = events.max(seen);
    }
    let ratio = with / without;
    Ok(vec![
        Row::info(
            "dashboard",
            "Emulator::start (history, series, control), SendMessageBatch → mapping → \
             in-process no-op → delete, batch 10, concurrency 5, no subscriber",
            format!("{} msg/s", per_second(without)),
        ),
        Row::new(
            "dashboard",
            "  same with a dashboard subscribed to /_nightshift/events",
            format!("≥ {:.0}% of the above", BUDGET_RATIO * 100.0),
            format!(
                "{} msg/s ({:.1}%; the subscriber read {events} events)",
                per_second(with),
                ratio * 100.0
            ),
            ratio >= BUDGET_RATIO,
        ),
    ])
}

/// One run: the emulator on `dir`'s template, [`MESSAGES`] sent in batches of 10 in
/// process; messages/s from the first send until the function has seen them all, and how
/// many events the subscriber read (0 without one).
async fn run(dir: &Path, subscribe: bool) -> Result<(f64, u64)> {
    let seen = Arc::new(AtomicU64::new(0));
    let counted = seen.clone();
    let invoker =
        InProcessInvoker::new().with_function("bench-live", move |payload: Bytes, _ctx| {
            // Records in the batch: the `"messageId"` keys of the event.
            let records = payload
                .windows(b"\"messageId\"".len())
                .filter(|w| *w == b"\"messageId\"")
                .count();
            counted.fetch_add(records as u64, Ordering::Relaxed);
            async { Ok::<_, FunctionError>(Bytes::from_static(br#"{"batchItemFailures":[]}"#)) }
        });
    let mut options = EmulatorOptions::new(dir);
    options.template = dir.join("template.yaml");
    options.env_file = None;
    options.state_dir = None;
    options.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    options.invoker = InvokerChoice::Process {
        release: false,
        build: false,
    };
    options.log_format = LogFormat::Tracing;
    options.parameter_overrides = BTreeMap::new();
    let emulator = Emulator::start(options, Some(Arc::new(invoker))).await?;
    let subscriber = if subscribe {
        Some(subscribe_events(&emulator.endpoint()).await?)
    } else {
        None
    };
    let engine = emulator.engine().clone();
    let started = Instant::now();
    let producer = tokio::spawn(async move {
        let mut sent = 0;
        while sent < MESSAGES {
            let n = (MESSAGES - sent).min(10);
            let entries = (0..n)
                .map(|i| (i.to_string(), OutgoingMessage::new((sent + i).to_string())))
                .collect();
            engine.send_message_batch(BENCH_QUEUE, entries)?;
            sent += n;
            tokio::task::yield_now().await;
        }
        anyhow::Ok(())
    });
    let mut progress = (Instant::now(), 0);
    let finished = loop {
        let now = seen.load(Ordering::Relaxed);
        if now >= MESSAGES as u64 {
            break Instant::now();
        }
        if now != progress.1 {
            progress = (Instant::now(), now);
        } else if progress.0.elapsed() > STALL {
            bail!("the dashboard run stalled at {now} of {MESSAGES} messages");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    producer.await.context("producer")??;
    let events = match subscriber {
        Some(subscriber) => {
            subscriber.task.abort();
            subscriber.events.load(Ordering::Relaxed)
        }
        None => 0,
    };
    emulator.shutdown(Duration::from_secs(2)).await;
    let rate = MESSAGES as f64 / (finished - started).as_secs_f64();
    Ok((rate, events))
}

/// An open live stream: the task reading it and the events it read so far.
struct Subscriber {
    task: tokio::task::JoinHandle<()>,
    events: Arc<AtomicU64>,
}

/// Opens the live stream as a dashboard tab does and reads it until aborted.
async fn subscribe_events(endpoint: &str) -> Result<Subscriber> {
    let addr = endpoint.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    let request = format!(
        "GET /_nightshift/events HTTP/1.1\r\nHost: {addr}\r\nAccept: \
         text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let events = Arc::new(AtomicU64::new(0));
    let counted = events.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let read = buf[..n].windows(5).filter(|w| *w == b"data:").count();
            counted.fetch_add(read as u64, Ordering::Relaxed);
        }
    });
    Ok(Subscriber { task, events })
}
