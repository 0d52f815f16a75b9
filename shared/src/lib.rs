//! `nightshift`: what every nightshift Lambda function shares.
//!
//! - [`contracts`]: the versioned messages (`JobEnvelope`, `EmailRequest`, `JobOutcome`,
//!   `ReportInput`) with size limits and precise validation errors;
//! - [`batch`]: the SQS batch processor (partial batch failures, backoff, DLQ, panics, deadline);
//! - [`idempotency`]: begin / complete / abandon over a store, Powertools-style;
//! - [`retry`]: the retry horizon and the backoff, `maxReceiveCount` and visibility timeout
//!   derived from it;
//! - [`record`] (from `nightshift-contract`, shared with the emulator): the receive count of
//!   an SQS record and the attributes of a dead letter;
//! - [`feedback`]: SES's bounce, complaint and delivery events, what suppresses a recipient,
//!   and the mailbox simulator's events made up locally;
//! - [`ports`]: the traits for queue, store, mail, blobs, scheduler and clock, with
//!   retryable/permanent errors;
//! - [`adapters`]: SQLite and DynamoDB stores, outbox, SMTP and SES mail, filesystem and S3
//!   blobs, SQS, EventBridge Scheduler (feature `scheduler`), and in-memory doubles;
//! - [`config`]: environment variables parsed into typed values (ports by URL, queue URLs,
//!   limits), importing no adapter;
//! - [`wiring`]: each port's adapter opened from the config, with its decorators;
//! - `faults` (feature `faults`, test builds only): seeded fault injection (crash, timeout,
//!   error, mail throttling) when `NIGHTSHIFT_FAULTS` is set, for the emulator's reliability
//!   checker;
//! - [`metrics`]: CloudWatch Embedded Metric Format, one collector per invocation flushed to
//!   stdout, and a validator of EMF documents;
//! - [`telemetry`]: tracing init (JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`).

pub mod adapters;
pub mod batch;
pub mod config;
pub mod contracts;
#[cfg(feature = "faults")]
pub mod faults;
pub mod feedback;
pub mod idempotency;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod telemetry;

pub use nightshift_contract::record;
pub mod wiring;
