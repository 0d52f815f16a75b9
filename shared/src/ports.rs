//! Ports: the I/O the functions need, as traits, with their error classes.
//!
//! Domain code and handlers talk only to these traits; [`crate::adapters`] implements them for
//! SQS, SQLite, DynamoDB, an outbox directory, SMTP, SES, the filesystem and S3, and
//! [`crate::config`] picks
//! one per port from a URL. Every error says whether retrying can help
//! ([`Retryable::is_retryable`]), which decides between backoff and the DLQ.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::contracts::JobOutcome;

/// Errors that know whether a retry can succeed.
pub trait Retryable {
    /// True for throttling, timeouts, 5xx and lost connections; false for errors that will
    /// repeat identically (bad input, missing resources, rejected recipients).
    fn is_retryable(&self) -> bool;
}

/// A queue operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// Throttled, timed out, unreachable or a server error.
    #[error("queue temporarily unavailable: {0}")]
    Transient(String),
    /// The request can never succeed (no such queue, invalid parameter, too large).
    #[error("queue request rejected: {0}")]
    Rejected(String),
}

impl Retryable for QueueError {
    fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Transient(_))
    }
}

/// A string message attribute to attach to a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// String value.
    pub value: String,
}

impl Attribute {
    /// Builds an attribute.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Sending to queues and steering in-flight messages.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends `body` to `queue_url` with string attributes; returns the message id.
    async fn send(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &[Attribute],
    ) -> Result<String, QueueError>;

    /// Sets the visibility timeout of an in-flight message, so a retry waits that long.
    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        timeout_seconds: i32,
    ) -> Result<(), QueueError>;
}

/// A store operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Busy, throttled or unreachable: retry later.
    #[error("store temporarily unavailable: {0}")]
    Transient(String),
    /// Corrupt data, schema mismatch, or a request that can never succeed.
    #[error("store request failed: {0}")]
    Permanent(String),
}

impl Retryable for StoreError {
    fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient(_))
    }
}

/// The state of an idempotency key after trying to claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the key now and must complete or release it.
    Acquired,
    /// The work was done already; here is its recorded result.
    Completed(String),
    /// Another invocation holds the key until `until` (its deadline).
    InProgress {
        /// When the other claim expires.
        until: DateTime<Utc>,
    },
}

/// Idempotency records and job outcomes.
#[async_trait]
pub trait Store: Send + Sync {
    /// Claims `key` unless a live record exists. An in-progress record whose expiry has passed
    /// (its invocation died) is taken over; so is a completed one past its TTL.
    async fn claim(
        &self,
        key: &str,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;

    /// Marks `key` completed with `result`, kept until `expires_at`.
    async fn complete(
        &self,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Deletes the claim on `key` so a retry can claim it again.
    async fn release(&self, key: &str) -> Result<(), StoreError>;

    /// Records (or replaces, by job id) a job outcome.
    async fn record_outcome(&self, outcome: &JobOutcome) -> Result<(), StoreError>;

    /// Records `outcome` and marks `key` completed with `result`, as one step where the
    /// store can (one transaction on SQLite): a job's end costs one round trip instead of
    /// two, and a crash between the two can no longer leave an outcome with a live claim.
    /// The default records the outcome, then completes.
    async fn complete_with_outcome(
        &self,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
        outcome: &JobOutcome,
    ) -> Result<(), StoreError> {
        self.record_outcome(outcome).await?;
        self.complete(key, result, expires_at).await
    }

    /// Outcomes of jobs submitted in `[from, to)`, oldest first.
    async fn outcomes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<JobOutcome>, StoreError>;
}

/// A fully rendered email, ready for a mailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The request id, sent as `X-Nightshift-Request-Id` so duplicates can be detected.
    pub request_id: String,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML alternative, when there is one.
    pub html: Option<String>,
}

/// Sending an email failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MailError {
    /// Throttled (send rate or quota), timed out, or a 4xx SMTP reply.
    #[error("mailer temporarily unavailable: {0}")]
    Transient(String),
    /// Rejected recipient or content, or a 5xx SMTP reply.
    #[error("mail rejected: {0}")]
    Rejected(String),
}

impl Retryable for MailError {
    fn is_retryable(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
}

/// Sends emails.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email; returns the provider's message id (or the file written).
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError>;
}

/// A blob operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BlobError {
    /// Throttled, timed out or unreachable.
    #[error("blob store temporarily unavailable: {0}")]
    Transient(String),
    /// Invalid key, permission denied, or any error a retry will repeat.
    #[error("blob request failed: {0}")]
    Permanent(String),
}

impl Retryable for BlobError {
    fn is_retryable(&self) -> bool {
        matches!(self, BlobError::Transient(_))
    }
}

/// Stores report files.
#[async_trait]
pub trait Blobs: Send + Sync {
    /// Writes `bytes` at `key` (like `reports/2026-11-21.csv`), replacing what was there;
    /// returns where it landed (a path or URL) for logs.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<String, BlobError>;

    /// Reads `key`, `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError>;
}

/// The current time; injected so tests and replays decide what "now" is.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
