//! Adapters: the ports of [`crate::ports`] implemented for real systems.
//!
//! - [`sqlite`]: the store on SQLite (local default);
//! - [`mail`]: an outbox directory of `.eml` files (local default) and SMTP, both with lettre;
//! - [`blobs`]: report files on the local filesystem through `object_store`;
//! - [`sqs`]: the queue through aws-sdk-sqs (the emulator or AWS);
//! - [`dynamodb`]: the store on DynamoDB (cloud default);
//! - [`ses`]: mail through SES v2 (cloud default);
//! - [`s3`]: report files on S3 through `object_store` (cloud default);
//! - [`memory`]: in-memory doubles for tests and in-process runs.

pub mod blobs;
pub mod dynamodb;
pub mod mail;
pub mod memory;
pub mod s3;
pub mod ses;
pub mod sqlite;
pub mod sqs;

use chrono::{DateTime, Utc};

use crate::ports::Claim;

/// The idempotency rule every store applies to the record it finds for a key: a live
/// completed record answers with its result, a live in-progress one blocks, anything expired
/// or absent is taken.
pub(crate) fn claim_decision(
    existing: Option<(Option<String>, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Claim {
    match existing {
        Some((Some(result), expires_at)) if expires_at > now => Claim::Completed(result),
        Some((None, until)) if until > now => Claim::InProgress { until },
        _ => Claim::Acquired,
    }
}
