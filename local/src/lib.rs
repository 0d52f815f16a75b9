//! `nightshift-local`: the docker-free emulator for nightshift.
//!
//! It reads `infra/template.yaml` and runs the real function binaries against an
//! in-memory, journaled SQS (served over the AWS JSON 1.0 protocol), event source
//! mappings, schedules and a Lambda Runtime API, all driven by one [`clock`].
//!
//! Layout, one module per role:
//! - [`clock`]: real, accelerated or manual time that every timer reads;
//! - [`sqs`]: queue engine, journal and the JSON 1.0 HTTP endpoint;
//! - [`schedule`]: AWS cron / rate / at expressions, time zones, schedule targets;
//! - [`template`]: the SAM template and env.local.json, resolved into a model;
//! - [`invoker`]: how an event reaches a function (process runtime, remote Invoke API, in-process);
//! - [`runtime`]: the Lambda Runtime API server and the pool of function processes.

pub mod clock;
pub mod invoker;
pub mod runtime;
pub mod schedule;
pub mod sqs;
pub mod template;
