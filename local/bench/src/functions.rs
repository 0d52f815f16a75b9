//! The functions group: binary sizes, cold starts and warm invocations of the three
//! functions against an SQS endpoint of their own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use chrono::Utc;
use serde_json::{Value, json};

use crate::emulator::LogTail;
use crate::{
    BATCH, BUDGET_INIT, BUDGET_PACKAGE_BYTES, BUDGET_WARM_BATCH, COLD_STARTS, FUNCTIONS, REGION,
    STALL, Scratch, WARM_INVOKES, WARM_WARMUP,
};
use nightshift_local::clock::{self};
use nightshift_local::invoker::{InvokeOutcome, InvokeRequest, InvokeResponse};
use nightshift_local::mapping::event::{Record, assemble};
use nightshift_local::runtime::{FunctionConfig, Runtime, RuntimeOptions};
use nightshift_local::sqs::{self, OutgoingMessage, ReceiveOptions, SqsEngine};

use crate::output::{Dist, Row, ms};

pub(super) async fn functions(
    release: &Path,
    test_function: &Path,
    env: &FunctionsSqs,
    scratch: &Scratch,
    show_logs: bool,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for name in FUNCTIONS {
        let binary = release.join(name);
        ensure!(
            binary.is_file(),
            "{} is missing: build it with `cargo build --release -p {name}` (or drop --no-build)",
            binary.display()
        );
        let size = std::fs::metadata(&binary)?.len();
        let stripped = match stripped_size(&binary, scratch)? {
            // `strip` still drops a few bytes of an already stripped ELF.
            Some(bytes) if size - bytes.min(size) < 4096 => "already stripped".to_owned(),
            Some(bytes) => format!("{} after strip", mb(bytes)),
            None => "strip not found".to_owned(),
        };
        let zipped = zipped_size(&binary)?;
        rows.push(Row::new(
            "functions",
            format!("{name}: deployment package (bootstrap zipped)"),
            format!("≤ {}", mb(BUDGET_PACKAGE_BYTES)),
            format!("{} ({} binary, {stripped})", mb(zipped), mb(size)),
            zipped <= BUDGET_PACKAGE_BYTES,
        ));
    }

    for name in FUNCTIONS {
        eprintln!("functions: {COLD_STARTS} cold starts of {name}");
        let init = cold_starts(name, &release.join(name), env, scratch).await?;
        rows.push(Row::new(
            "functions",
            format!("{name}: process start → first /next (Init Duration)"),
            format!("≤ {}", ms(BUDGET_INIT)),
            init.summary(),
            init.p50 <= BUDGET_INIT,
        ));
    }

    for name in ["queue-processor", "email-sender"] {
        eprintln!("functions: {WARM_INVOKES} warm 10-record invocations of {name}");
        let warm = warm_invokes(name, &release.join(name), env, scratch, show_logs).await?;
        rows.push(Row::new(
            "functions",
            format!("{name}: warm invoke, 10-record batch (REPORT Duration)"),
            format!("≤ {}", ms(BUDGET_WARM_BATCH)),
            warm.function.summary(),
            warm.function.p50 <= BUDGET_WARM_BATCH,
        ));
        rows.push(Row::info(
            "functions",
            format!("  {name}: same, round trip through the runtime pool"),
            warm.round_trip.summary(),
        ));
        if name == "email-sender" {
            rows.push(Row::info(
                "functions",
                "  disk: create + write of a 1.5 KB file in the scratch directory (an outbox email)",
                file_creates(scratch)?.summary(),
            ));
        }
    }

    ensure!(
        test_function.is_file(),
        "{} is missing: build it with `cargo build --release -p nightshift-local --example \
         test-function` (or drop --no-build)",
        test_function.display()
    );
    eprintln!("functions: {WARM_INVOKES} warm 10-record invocations of test-function (echo)");
    let warm = warm_invokes("test-function", test_function, env, scratch, false).await?;
    rows.push(Row::info(
        "functions",
        "  baseline: test-function echo, 10-record batch (REPORT Duration)",
        warm.function.summary(),
    ));
    Ok(rows)
}

/// How long the scratch directory's file system takes to create and write a new file of an
/// outbox email's size, which every email of the outbox mailer costs. It varies by machine and
/// by what the disk did lately: on an ext4 without a journal, a new file skips the inodes
/// deleted in the last minutes (`recently_deleted` in the kernel's inode allocator), so after
/// a large `rm -r` nearby a create took 1 ms instead of 27 µs (2026-12-03). `TMPDIR` moves the
/// scratch directory.
fn file_creates(scratch: &Scratch) -> Result<Dist> {
    use std::io::Write;
    const FILES: usize = 1_000;
    let dir = scratch.work_dir("creates")?;
    let body = vec![b'x'; 1_500];
    let mut samples = Vec::with_capacity(FILES);
    for i in 0..FILES {
        let path = dir.join(format!("{i}.eml"));
        let started = Instant::now();
        std::fs::File::create_new(&path)
            .and_then(|mut file| file.write_all(&body))
            .with_context(|| format!("writing {}", path.display()))?;
        samples.push(started.elapsed());
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(Dist::of(samples))
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

/// The size of `binary` as a Lambda deployment package: a zip holding it as `bootstrap`,
/// deflated at level 9 (what `cargo lambda build --output-format zip` and `zip -9` make).
fn zipped_size(binary: &Path) -> Result<u64> {
    use std::io::Write;
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(&bytes)?;
    Ok(zip.finish()?.into_inner().len() as u64)
}

/// The size of a `strip`ped copy of `binary`, or `None` without a `strip` tool.
fn stripped_size(binary: &Path, scratch: &Scratch) -> Result<Option<u64>> {
    let copy = scratch.dir.join("stripped");
    std::fs::copy(binary, &copy)?;
    let status = std::process::Command::new("strip")
        .arg(&copy)
        .stderr(std::process::Stdio::null())
        .status();
    let size = match status {
        Ok(status) if status.success() => Some(std::fs::metadata(&copy)?.len()),
        _ => None,
    };
    let _ = std::fs::remove_file(&copy);
    Ok(size)
}

/// The emulator's SQS endpoint with the queues the functions use, as `nightshift up` serves it.
pub(super) struct FunctionsSqs {
    pub(super) engine: SqsEngine,
    pub(super) server: sqs::SqsServer,
    /// `--function-env`, applied over each function's own variables.
    pub(super) extra_env: Vec<(String, String)>,
}

const JOBS: &str = "nightshift-jobs";
const JOBS_DLQ: &str = "nightshift-jobs-dlq";
const EMAILS: &str = "nightshift-emails";
const EMAILS_DLQ: &str = "nightshift-emails-dlq";
/// Where event records are staged before they are rendered as if from the source queue.
const STAGING: &str = "bench-staging";

impl FunctionsSqs {
    pub(super) async fn start(extra_env: Vec<(String, String)>) -> Result<Self> {
        let engine = SqsEngine::in_memory(clock::real());
        let server = sqs::serve(engine.clone(), SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        for queue in [JOBS, JOBS_DLQ, EMAILS, EMAILS_DLQ, STAGING] {
            engine.create_queue(queue, &BTreeMap::new(), &BTreeMap::new())?;
        }
        Ok(FunctionsSqs {
            engine,
            server,
            extra_env,
        })
    }

    pub(super) async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// The function's configuration as the template and `infra/env.local.json` give it, with
    /// the mailer's pacing lifted so the measurement is of the function, not of the rate.
    pub(super) fn function(&self, name: &str, binary: &Path) -> FunctionConfig {
        let url = |queue: &str| self.engine.url_for(queue);
        let mut config = FunctionConfig::new(name, binary)
            .with_timeout(Duration::from_secs(30))
            .with_memory_mb(256)
            .with_env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .with_env("RUST_LOG", "info")
            .with_env("IDEMPOTENCY_TTL_SECONDS", "86400")
            .with_env("STORE_URL", "sqlite://.nightshift/state.db")
            .with_env("EMAILS_QUEUE_URL", url(EMAILS));
        config = match name {
            // The template's values for run-time schedules and the inventory queues: a warm
            // batch of orders uses none, but the function refuses to start without them.
            "queue-processor" => config
                .with_env("JOBS_QUEUE_URL", url(JOBS))
                .with_env("JOBS_DLQ_URL", url(JOBS_DLQ))
                .with_env("INVENTORY_QUEUE_URL", url("nightshift-inventory.fifo"))
                .with_env("INVENTORY_DLQ_URL", url("nightshift-inventory-dlq.fifo"))
                .with_env("SCHEDULER_GROUP", "nightshift-jobs")
                .with_env(
                    "SCHEDULER_ROLE_ARN",
                    format!(
                        "arn:aws:iam::{}:role/nightshift-jobs-scheduler",
                        nightshift_local::template::ACCOUNT_ID
                    ),
                )
                .with_env("JOBS_QUEUE_ARN", self.engine.arn_for(JOBS)),
            "email-sender" => config
                .with_env("EMAILS_DLQ_URL", url(EMAILS_DLQ))
                .with_env("MAIL_URL", "file://.nightshift/outbox")
                .with_env("MAIL_FROM", "nightshift@example.com")
                .with_env("MAIL_MAX_PER_SECOND", "1000000")
                .with_env("MAIL_FEEDBACK_QUEUE_URL", url("nightshift-mail-feedback"))
                .with_env("MAIL_FEEDBACK_DLQ_URL", url("nightshift-mail-feedback-dlq")),
            "daily-report" => config
                .with_timeout(Duration::from_secs(60))
                .with_memory_mb(512)
                .with_env("BLOBS_URL", "file://.nightshift/reports")
                .with_env("REPORT_TIME_ZONE", "Europe/Berlin")
                .with_env("REPORT_RECIPIENTS", "ops@example.com"),
            _ => config,
        };
        for (key, value) in &self.extra_env {
            config = config.with_env(key, value);
        }
        config
    }

    pub(super) fn runtime(&self, work_dir: &Path, logs: &LogTail) -> Runtime {
        Runtime::new(RuntimeOptions {
            region: REGION.to_owned(),
            env: BTreeMap::from([(
                "AWS_ENDPOINT_URL_SQS".to_owned(),
                self.server.endpoint_url(),
            )]),
            working_dir: Some(work_dir.to_owned()),
            log_sink: logs.sink(),
            ..RuntimeOptions::default()
        })
    }

    /// An SQS event of `bodies` exactly as the mapping of `source` would send it.
    pub(super) async fn event(&self, source: &str, bodies: &[String]) -> Result<Bytes> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| (i.to_string(), OutgoingMessage::new(body.clone())))
            .collect();
        let outcome = self.engine.send_message_batch(STAGING, entries)?;
        ensure!(
            outcome.failed.is_empty(),
            "staging failed: {:?}",
            outcome.failed
        );
        let arn = self.engine.arn_for(source);
        let mut records = Vec::with_capacity(bodies.len());
        // Bounded: every staged message is visible, so each receive returns at least one.
        for _ in 0..bodies.len() {
            if records.len() == bodies.len() {
                break;
            }
            let options = ReceiveOptions {
                visibility_timeout: Some(43_200),
                wait: Some(Duration::ZERO),
                ..ReceiveOptions::all_attributes((bodies.len() - records.len()) as u32)
            };
            for message in self.engine.receive_message(STAGING, &options).await? {
                records.push(Record::render(message, &arn, REGION));
            }
        }
        ensure!(
            records.len() == bodies.len(),
            "staged messages went missing"
        );
        Ok(Bytes::from(assemble(&records)))
    }
}

/// The event a cold start is measured with: one the function handles without side effects
/// worth mentioning.
fn cold_payload(name: &str) -> Bytes {
    match name {
        "daily-report" => {
            Bytes::from_static(br#"{"scheduled_time":"2026-01-02T01:00:00Z","date":"2026-01-01"}"#)
        }
        _ => Bytes::from_static(br#"{"Records":[]}"#),
    }
}

/// Starts `name` [`COLD_STARTS`] times, each in a fresh runtime, and collects the Init
/// Duration the runtime reports: process spawn → the first `/next` request.
async fn cold_starts(
    name: &str,
    binary: &Path,
    env: &FunctionsSqs,
    scratch: &Scratch,
) -> Result<Dist> {
    let work_dir = scratch.work_dir(name)?;
    let logs = LogTail::default();
    let mut samples = Vec::with_capacity(COLD_STARTS);
    for _ in 0..COLD_STARTS {
        let runtime = env.runtime(&work_dir, &logs);
        runtime.add_function(env.function(name, binary))?;
        let outcome = tokio::time::timeout(
            STALL,
            runtime.invoke(InvokeRequest::new(name, cold_payload(name))),
        )
        .await
        .context("cold start timed out");
        runtime.shutdown(Duration::from_secs(2)).await;
        let response = outcome??;
        ensure_success(name, &response, &logs)?;
        let init = response
            .init_duration
            .with_context(|| format!("{name}: the first invocation reported no init duration"))?;
        samples.push(init);
    }
    Ok(Dist::of(samples))
}

fn ensure_success(name: &str, response: &InvokeResponse, logs: &LogTail) -> Result<()> {
    match &response.outcome {
        InvokeOutcome::Success(body) => {
            let failures = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("batchItemFailures")
                        .and_then(Value::as_array)
                        .map(Vec::len)
                })
                .unwrap_or(0);
            ensure!(
                failures == 0,
                "{name}: {failures} records failed: {}\nfunction output:\n{}",
                String::from_utf8_lossy(body),
                logs.dump()
            );
            Ok(())
        }
        other => bail!(
            "{name}: invocation failed: {other:?}\nfunction output:\n{}",
            logs.dump()
        ),
    }
}

/// Round trip and function duration of warm invocations.
struct Warm {
    pub(super) round_trip: Dist,
    pub(super) function: Dist,
}

/// The body of record `k` of warm invocation `i`: an order job for the queue-processor, an order confirmation for the email-sender. Ids are unique per run, so
/// idempotency never short-cuts a record.
pub(super) fn warm_body(name: &str, run: &str, i: usize, k: usize) -> String {
    let id = format!("bench-{run}-{i}-{k}");
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Orders only: a signup also schedules its follow-up through the Scheduler API, which
    // this bench does not serve (the emulator does), so it would measure a failing call.
    let body = match name {
        "queue-processor" => json!({
            "v": 1,
            "id": id,
            "kind": "order.placed",
            "payload": {
                "order_id": format!("{i}{k}"),
                "customer_email": "ada@example.com",
                "customer_name": "Ada Lovelace",
                "currency": "EUR",
                "items": [
                    { "sku": "NOTEBOOK-A5", "quantity": 2, "unit_price_cents": 1250 },
                    { "sku": "PEN-BLUE", "quantity": 3, "unit_price_cents": 199 }
                ]
            },
            "submitted_at": now
        }),
        _ => json!({
            "v": 1,
            "id": id,
            "to": ["ada@example.com"],
            "subject": format!("Your order {i}{k} is confirmed"),
            "template": "order_confirmation",
            "vars": {
                "order_id": format!("{i}{k}"),
                "customer_name": "Ada Lovelace",
                "currency": "EUR",
                "total": "30.97",
                "items": [
                    { "sku": "NOTEBOOK-A5", "quantity": 2, "line_total": "25.00" },
                    { "sku": "PEN-BLUE", "quantity": 3, "line_total": "5.97" }
                ]
            }
        }),
    };
    body.to_string()
}

/// One instance of `name`, started once, then [`WARM_INVOKES`] 10-record batches one after
/// another (after [`WARM_WARMUP`]); every record must succeed.
async fn warm_invokes(
    name: &str,
    binary: &Path,
    env: &FunctionsSqs,
    scratch: &Scratch,
    show_logs: bool,
) -> Result<Warm> {
    let source = if name == "queue-processor" {
        JOBS
    } else {
        EMAILS
    };
    let work_dir = scratch.work_dir(&format!("{name}-warm"))?;
    let logs = LogTail::default();
    let runtime = env.runtime(&work_dir, &logs);
    runtime.add_function(env.function(name, binary).with_concurrency(1))?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut round_trip = Vec::with_capacity(WARM_INVOKES);
    let mut function = Vec::with_capacity(WARM_INVOKES);
    let result = async {
        for i in 0..WARM_WARMUP + WARM_INVOKES {
            let bodies: Vec<String> = (0..BATCH).map(|k| warm_body(name, &run, i, k)).collect();
            let payload = env.event(source, &bodies).await?;
            let sent = Instant::now();
            let response =
                tokio::time::timeout(STALL, runtime.invoke(InvokeRequest::new(name, payload)))
                    .await
                    .context("invocation timed out")??;
            let elapsed = sent.elapsed();
            ensure_success(name, &response, &logs)?;
            if i == 0 {
                ensure!(
                    response.init_duration.is_some(),
                    "{name}: the first invocation was not cold"
                );
            } else {
                ensure!(
                    response.init_duration.is_none(),
                    "{name}: invocation {i} was not warm"
                );
            }
            if i >= WARM_WARMUP {
                round_trip.push(elapsed);
                function.push(response.duration);
            }
        }
        anyhow::Ok(())
    }
    .await;
    runtime.shutdown(Duration::from_secs(2)).await;
    result?;
    if show_logs {
        eprintln!(
            "--- {name}: output of the last warm invocation\n{}",
            logs.dump_last()
        );
    }
    Ok(Warm {
        round_trip: Dist::of(round_trip),
        function: Dist::of(function),
    })
}
