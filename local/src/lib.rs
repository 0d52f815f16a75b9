//! `nightshift-local`: the docker-free emulator for nightshift.
//!
//! It reads `infra/template.yaml` and runs the real function binaries against an
//! in-memory, journaled SQS (served over the AWS JSON 1.0 protocol), event source
//! mappings, schedules and a Lambda Runtime API, all driven by one [`clock`].
//!
//! Layout, one module per role:
//! - [`emulator`]: the emulator assembled from a template, and its library API; [`status`]:
//!   what `status` and `dlq list` show;
//! - [`cli`]: the `nightshift` commands; [`control`]: their HTTP endpoint and client;
//! - [`dashboard`]: the web pages at `/ui` (embedded), which act through [`control`];
//!   [`history`]: recent invocations with their events, answers and logs; [`series`]: the
//!   per-second samples the overview charts; [`metrics`]: the functions' EMF metrics as
//!   CloudWatch would extract them (`nightshift metrics`);
//! - `server`: the one HTTP endpoint (SQS, control, Invoke API) and `Emulator::start`;
//! - [`harness`]: the emulator as a test harness (manual clock, recorded invocations);
//! - [`faults`]: seeded fault injection per function (in the functions, in the invoker, kills);
//! - [`check`]: the reliability checker: jobs through the real functions under faults, verified;
//! - [`trace`]: record and replay: JSONL traces of events and responses, normalised, checked;
//! - [`xray`]: X-Ray trace headers: made per invocation, an SQS batch's linked to its messages'
//!   `AWSTraceHeader` traces (what `nightshift trace` follows; unrelated to [`trace`]);
//! - [`divergence`]: where the emulator knowingly differs from AWS, announced when it matters;
//! - [`duration`]: `6h`, `1d30m` for `advance`; [`ids`]: request and message ids;
//! - [`clock`]: real, accelerated or manual time that every timer reads;
//! - [`shutdown`]: how every long-running task is told to stop;
//! - [`sqs`]: queue engine, journal and the JSON 1.0 HTTP endpoint;
//! - [`schedule`]: AWS cron / rate / at expressions, time zones, schedule targets;
//! - [`template`]: the SAM template and env.local.json, resolved into a model;
//! - [`invoker`]: how an event reaches a function (process runtime, remote Invoke API, in-process);
//! - [`journal`]: the append-only JSON-lines journal that keeps the SQS engine's and the Scheduler
//!   API's state in the state dir;
//! - [`invoke_async`]: Lambda's asynchronous (`Event`) invocation: retries, destinations, DLQ;
//! - [`lambda_api`]: Lambda's Invoke API on the emulator's endpoint;
//! - [`mapping`]: SQS event source mappings: batching, invoking, partial batch responses;
//! - [`runtime`]: the Lambda Runtime API server and the pool of function processes;
//! - [`logs`]: the functions' log lines as kept, streamed and rendered for the terminal;
//! - [`progress`]: how far `check` and `replay` are, as a bar on a terminal;
//! - [`artifact`]: prebuilt deployment packages (`bootstrap`, `.zip`) a function runs as is.

mod activity;
pub mod artifact;
pub mod check;
pub mod cli;
pub mod clock;
pub mod control;
pub mod dashboard;
pub mod divergence;
pub mod duration;
pub mod emulator;
pub mod faults;
pub mod harness;
pub mod history;
pub mod ids;
pub mod invoke_async;
pub mod invoker;
pub mod journal;
pub mod lambda_api;
pub mod logs;
pub mod mapping;
pub mod metrics;
pub mod progress;
pub mod runtime;
pub mod schedule;
pub mod scheduler_api;
pub mod series;
mod server;
pub mod shutdown;
pub mod sqs;
pub mod status;
pub mod template;
pub mod trace;
pub mod xray;
