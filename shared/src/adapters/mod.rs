//! Adapters: the ports of [`crate::ports`] implemented for real systems.
//!
//! - [`aws`]: the SDK configuration and HTTPS client the cloud adapters share;
//! - [`sqlite`]: the store on SQLite (local default);
//! - [`mail`]: an outbox directory of `.eml` files (local default) and SMTP, both with lettre;
//! - [`blobs`]: report files on the local filesystem through `object_store`;
//! - [`sqs`]: the queue through aws-sdk-sqs (the emulator or AWS);
//! - [`dynamodb`]: the store on DynamoDB (cloud default);
//! - [`ses`]: mail through SES v2 (cloud default);
//! - [`s3`]: report files on S3 through `object_store` (cloud default);
//! - [`simulator`]: SES's mailbox simulator for the local mailers (feedback events on a queue);
//! - `scheduler` (feature `scheduler`): run-time schedules on EventBridge Scheduler through
//!   aws-sdk-scheduler (the emulator or AWS);
//! - `memory` (tests, and feature `test-util`): in-memory doubles for tests and in-process runs;
//! - `conformance` (tests, and feature `test-util`): the checks every store adapter passes.

pub mod aws;
pub mod blobs;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod dynamodb;
pub mod mail;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod s3;
#[cfg(feature = "scheduler")]
pub mod scheduler;
pub mod ses;
pub mod simulator;
pub mod sqlite;
pub mod sqs;
