//! Ports: the I/O the functions need, as traits, with their error classes.
//!
//! Domain code and handlers talk only to these traits; [`crate::adapters`] implements them for
//! SQS, SQLite, DynamoDB, an outbox directory, SMTP, SES, the filesystem, S3 and (feature
//! `scheduler`) EventBridge Scheduler, and [`crate::wiring`] opens one per port from the
//! configuration. Every error says whether retrying can help
//! ([`Retryable::is_retryable`]), which decides between backoff and the DLQ.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::contracts::{JobEnvelope, JobOutcome};

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

/// A message attribute to attach to a sent message: a String, Number or Binary value with its
/// SQS data type, so a copy of a received message (a dead letter) keeps what it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// The value of a String or Number attribute (a Number travels as its decimal text);
    /// empty for a Binary one.
    pub value: String,
    /// SQS's `DataType`: `String`, `Number` or `Binary`, optionally with a custom label
    /// (`Number.float`, `Binary.gzip`).
    pub data_type: String,
    /// The bytes of a Binary attribute; `None` for the others.
    pub binary: Option<Bytes>,
}

impl Attribute {
    /// A String attribute.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute::typed(name, "String", value)
    }

    /// A String or Number attribute with the data type given (`Number`, `String.json`).
    pub fn typed(
        name: impl Into<String>,
        data_type: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Attribute {
            name: name.into(),
            value: value.into(),
            data_type: data_type.into(),
            binary: None,
        }
    }

    /// A Binary attribute; `data_type` is `Binary` or `Binary.<label>`.
    pub fn binary(name: impl Into<String>, data_type: impl Into<String>, bytes: Bytes) -> Self {
        Attribute {
            name: name.into(),
            value: String::new(),
            data_type: data_type.into(),
            binary: Some(bytes),
        }
    }
}

/// The parameters of a send beyond body and attributes: FIFO ids and the trace; the default
/// (all `None`) is an untraced send to a standard queue.
///
/// A FIFO queue (its name ends in `.fifo`) requires `MessageGroupId` on every send, and a
/// `MessageDeduplicationId` unless the queue has content-based deduplication; a message sent
/// with the deduplication id of one sent in the last 5 minutes is accepted but not delivered
/// again (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-key-terms.html>).
/// A standard queue rejects a deduplication id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// `MessageGroupId`: the messages of one group are delivered in order, one at a time.
    pub group_id: Option<String>,
    /// `MessageDeduplicationId`: resending with the same id within 5 minutes delivers once.
    pub dedup_id: Option<String>,
    /// The X-Ray trace header the message carries (the `AWSTraceHeader` system attribute): the
    /// trace of the invocation that sends it, so that the work it causes downstream is linked
    /// to that trace (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>).
    pub trace_header: Option<String>,
}

impl SendOptions {
    /// The parameters of a send to a FIFO queue.
    pub fn fifo(group_id: impl Into<String>, dedup_id: impl Into<String>) -> Self {
        SendOptions {
            group_id: Some(group_id.into()),
            dedup_id: Some(dedup_id.into()),
            trace_header: None,
        }
    }

    /// The same parameters, carrying `trace_header` (an invocation's `Lambda-Runtime-Trace-Id`,
    /// `Context::xray_trace_id`) when there is one.
    pub fn traced(mut self, trace_header: Option<&str>) -> Self {
        self.trace_header = trace_header.filter(|h| !h.is_empty()).map(str::to_owned);
        self
    }
}

/// Sending to queues and steering in-flight messages.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends `body` to `queue_url` with `attributes`, the trace header of `options` and, for a
    /// FIFO queue, its group and deduplication ids; returns the message id.
    async fn send(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &[Attribute],
        options: &SendOptions,
    ) -> Result<String, QueueError>;

    /// Sets the visibility timeout of an in-flight message, so a retry waits that long.
    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        timeout_seconds: i32,
    ) -> Result<(), QueueError>;

    /// How many messages `queue_url` holds now (SQS's approximate counts), e.g. what waits in
    /// a dead-letter queue when a report is made.
    async fn depth(&self, queue_url: &str) -> Result<QueueDepth, QueueError>;
}

/// A queue's messages by state, from SQS's `ApproximateNumberOfMessages`,
/// `ApproximateNumberOfMessagesNotVisible` and `ApproximateNumberOfMessagesDelayed`
/// attributes: approximate, as SQS says, but a message is in exactly one of them.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html>
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Available for retrieval.
    pub visible: u64,
    /// Received and not deleted yet (in flight).
    pub in_flight: u64,
    /// Not available yet: delayed by a queue or message delay.
    pub delayed: u64,
}

impl QueueDepth {
    /// Every message the queue holds.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
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
    /// A live record of this key was made for a different payload: the key was reused, and
    /// neither "duplicate" nor "run it again" would be right.
    PayloadMismatch {
        /// The payload hash stored with the record.
        stored: String,
    },
}

/// One attempt to claim an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest<'a> {
    /// Now, by the caller's clock.
    pub now: DateTime<Utc>,
    /// When the claim lapses if its owner never completes nor releases it (its deadline).
    pub until: DateTime<Utc>,
    /// A token only this attempt knows: completing and releasing require it.
    pub owner: &'a str,
    /// Hash of the payload the key stands for ([`crate::idempotency::fingerprint`]).
    pub payload_hash: &'a str,
}

/// What completing or releasing a claim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The record was ours and is now completed (or released).
    Done,
    /// The record is no longer ours: our claim lapsed and another invocation took the key
    /// over (or completed it), so we left its record alone.
    NotOwner,
}

/// An idempotency record as a store finds it, for [`claim_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// `None` while in progress, the result once completed.
    pub result: Option<String>,
    /// When the record stops counting.
    pub expires_at: DateTime<Utc>,
    /// The payload hash it was claimed with (`None` for records written before hashes).
    pub payload_hash: Option<String>,
}

/// The idempotency rule every store applies to the record it finds for a key: a live record
/// of another payload is a mismatch, a live completed record answers with its result, a live
/// in-progress one blocks, anything expired or absent is taken.
pub fn claim_decision(existing: Option<Existing>, request: &ClaimRequest<'_>) -> Claim {
    let Some(existing) = existing.filter(|e| e.expires_at > request.now) else {
        return Claim::Acquired;
    };
    match (existing.payload_hash, existing.result) {
        (Some(stored), _) if stored != request.payload_hash => Claim::PayloadMismatch { stored },
        (_, Some(result)) => Claim::Completed(result),
        (_, None) => Claim::InProgress {
            until: existing.expires_at,
        },
    }
}

/// What [`Store::apply_in_sequence`] or [`Store::skip_in_sequence`] did with one sequence
/// number of a key.
///
/// A key's sequence numbers start at 1 and are consumed one after the other, each exactly
/// once: applied (its delta added to the key's balance) or skipped (consumed without a
/// delta, when its adjustment was dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceOutcome {
    /// The sequence number was the next one and is now consumed; `balance` is the key's
    /// balance after it (unchanged by a skip).
    Applied {
        /// The key's balance once this sequence number is consumed.
        balance: i64,
    },
    /// The sequence number was consumed before (a redelivery): nothing changed.
    AlreadyApplied,
    /// An earlier sequence number is not consumed yet: nothing changed, `expected` is the
    /// next one the key takes.
    Gap {
        /// The sequence number the key takes next.
        expected: u64,
    },
}

impl SequenceOutcome {
    /// The rule every store applies to a key whose last consumed sequence number is `last`
    /// (0 when none is) when asked for `sequence`: `None` when `sequence` is the next one
    /// (the store consumes it), otherwise what to answer.
    pub fn decide(last: u64, sequence: u64) -> Option<SequenceOutcome> {
        match sequence.checked_sub(last) {
            Some(1) => None,
            Some(0) | None => Some(SequenceOutcome::AlreadyApplied),
            Some(_) => Some(SequenceOutcome::Gap { expected: last + 1 }),
        }
    }
}

/// Why a recipient is suppressed: the mail feedback that put it on the list
/// ([`crate::feedback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionCause {
    /// A permanent (hard) bounce: the address does not exist or refuses mail for good.
    Bounce,
    /// The recipient marked a message as spam.
    Complaint,
}

impl SuppressionCause {
    /// The stored form: `bounce` or `complaint`.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionCause::Bounce => "bounce",
            SuppressionCause::Complaint => "complaint",
        }
    }

    /// The cause of a stored form; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bounce" => Some(SuppressionCause::Bounce),
            "complaint" => Some(SuppressionCause::Complaint),
            _ => None,
        }
    }
}

/// A recipient email-sender no longer sends to, and why. Sending again to an address that
/// hard-bounced or complained is what raises the bounce and complaint rates SES reviews
/// accounts for, so a request to it is a permanent failure with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The address, lowercased ([`suppression_key`]).
    pub address: String,
    /// Bounce or complaint.
    pub cause: SuppressionCause,
    /// What the feedback said (bounce type and subtype, the diagnostic code, the complaint's
    /// feedback type), for people reading the reason.
    pub detail: String,
    /// When the bounce or complaint happened (the feedback's timestamp).
    pub at: DateTime<Utc>,
}

impl std::fmt::Display for Suppression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.cause {
            SuppressionCause::Bounce => "permanent bounce",
            SuppressionCause::Complaint => "complaint",
        };
        write!(f, "{what} at {}", self.at.to_rfc3339())?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// The key a suppression is stored under: the address lowercased and trimmed. Mail
/// providers treat addresses case-insensitively in practice, and a list that missed
/// `Ada@Example.com` after `ada@example.com` bounced would send the bounce again.
pub fn suppression_key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Idempotency records and job outcomes.
#[async_trait]
pub trait Store: Send + Sync {
    /// Claims `key` for `request.owner` unless a live record exists. An in-progress record
    /// whose expiry has passed (its invocation died) is taken over; so is a completed one past
    /// its TTL.
    async fn claim(&self, key: &str, request: &ClaimRequest<'_>) -> Result<Claim, StoreError>;

    /// Marks `key` completed with `result`, kept until `expires_at`, if `owner` still holds it.
    async fn complete(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Settled, StoreError>;

    /// Deletes `owner`'s in-progress claim on `key` so a retry can claim it again; a completed
    /// record or another owner's claim stays.
    async fn release(&self, key: &str, owner: &str) -> Result<Settled, StoreError>;

    /// Records (or replaces, by job id) a job outcome.
    async fn record_outcome(&self, outcome: &JobOutcome) -> Result<(), StoreError>;

    /// Records `outcome` and marks `key` completed with `result` if `owner` still holds it,
    /// as one step where the store can (one SQLite transaction, one DynamoDB
    /// `TransactWriteItems`): a crash between the two can never leave an outcome with a live
    /// claim. The outcome is recorded even when the claim is no longer ours. The default
    /// records the outcome, then completes.
    async fn complete_with_outcome(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: DateTime<Utc>,
        outcome: &JobOutcome,
    ) -> Result<Settled, StoreError> {
        self.record_outcome(outcome).await?;
        self.complete(key, owner, result, expires_at).await
    }

    /// Consumes `sequence` of `key` if it is the key's next sequence number (the first is
    /// 1), adding `delta` to the key's balance (`None`: a skip, the balance stays), as one
    /// atomic step (one SQLite transaction, one conditional DynamoDB `UpdateItem`): of two
    /// concurrent calls for one number, one consumes it and the other finds it
    /// [`SequenceOutcome::AlreadyApplied`]. A number already consumed changes nothing; one
    /// beyond the next is a [`SequenceOutcome::Gap`] and changes nothing. So a key's deltas
    /// apply in sequence order, each at most once, whatever order they arrive in. Callers use
    /// [`Store::apply_in_sequence`] and [`Store::skip_in_sequence`].
    async fn consume_in_sequence(
        &self,
        key: &str,
        sequence: u64,
        delta: Option<i64>,
    ) -> Result<SequenceOutcome, StoreError>;

    /// Adds `delta` to the balance of `key` if `sequence` is its next sequence number
    /// ([`Store::consume_in_sequence`]).
    async fn apply_in_sequence(
        &self,
        key: &str,
        sequence: u64,
        delta: i64,
    ) -> Result<SequenceOutcome, StoreError> {
        self.consume_in_sequence(key, sequence, Some(delta)).await
    }

    /// Consumes `sequence` of `key` without changing its balance, by the same rules
    /// ([`Store::consume_in_sequence`]): for an adjustment that was dead-lettered for good,
    /// so that the key's next sequence number can apply. [`SequenceOutcome::Applied`]
    /// carries the unchanged balance.
    async fn skip_in_sequence(
        &self,
        key: &str,
        sequence: u64,
    ) -> Result<SequenceOutcome, StoreError> {
        self.consume_in_sequence(key, sequence, None).await
    }

    /// Puts `suppression.address` on the suppression list, replacing an earlier entry of it
    /// (the latest feedback is the reason shown). Kept until someone deletes it: SES's own
    /// account-level list works the same way.
    async fn suppress(&self, suppression: &Suppression) -> Result<(), StoreError>;

    /// The suppression list's entry for `address` ([`suppression_key`]), if any.
    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError>;

    /// Outcomes of jobs that finished in `[from, to)` (by [`JobOutcome::finished_at`]),
    /// oldest first, one per job: its latest in the range ([`latest_per_job`]). A store keeps
    /// every (job, finish time), so a job given up on one day and redriven to success on a
    /// later one is found in both days.
    async fn outcomes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<JobOutcome>, StoreError>;
}

/// Keeps each job's latest outcome of `outcomes` (a job recorded twice in one range: a retry
/// after its end was recorded, a lapsed claim whose late owner recorded too), ordered by
/// finish time then job id. Every [`Store::outcomes_between`] ends with it, so each store
/// counts a job once per range in the same way.
pub fn latest_per_job(outcomes: &mut Vec<JobOutcome>) {
    outcomes.sort_by(|a, b| (&a.job_id, b.finished_at).cmp(&(&b.job_id, a.finished_at)));
    outcomes.dedup_by(|later, kept| later.job_id == kept.job_id);
    outcomes.sort_by(|a, b| (a.finished_at, &a.job_id).cmp(&(b.finished_at, &b.job_id)));
}

/// Header carrying an email's request id, so an outbox can be checked for duplicates and
/// mail feedback traced to its request.
pub const REQUEST_ID_HEADER: &str = "X-Nightshift-Request-Id";

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
///
/// The classes differ in what the provider may have done: after [`MailError::Transient`] and
/// [`MailError::Rejected`] the email was certainly not accepted, after
/// [`MailError::Unconfirmed`] it may have been. The sender keeps its idempotency claim on
/// the last, so no other delivery sends the email while the first attempt may still go out.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MailError {
    /// Not accepted, and a retry may succeed: throttled (send rate or quota), unreachable
    /// before the request went out, or a 4xx SMTP reply.
    #[error("mailer temporarily unavailable: {0}")]
    Transient(String),
    /// Rejected recipient or content, or a 5xx SMTP reply.
    #[error("mail rejected: {0}")]
    Rejected(String),
    /// The request went out but no answer came back (a timeout after sending, a connection
    /// lost mid-request, a server error): the provider may have accepted the email. Retryable,
    /// at the risk of a duplicate.
    #[error("mail outcome unknown: {0}")]
    Unconfirmed(String),
}

impl Retryable for MailError {
    fn is_retryable(&self) -> bool {
        !matches!(self, MailError::Rejected(_))
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

/// A scheduler operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// Throttled, timed out, unreachable or a server error.
    #[error("scheduler temporarily unavailable: {0}")]
    Transient(String),
    /// The request can never succeed (an id that is no schedule name, a cron expression or
    /// target the scheduler refuses, a missing group or permission).
    #[error("schedule request rejected: {0}")]
    Rejected(String),
}

impl Retryable for ScheduleError {
    fn is_retryable(&self) -> bool {
        matches!(self, ScheduleError::Transient(_))
    }
}

/// Longest schedule name EventBridge Scheduler accepts.
pub const MAX_SCHEDULE_NAME: usize = 64;

/// The schedule name of the job schedule `id`: the id itself, which must already satisfy
/// Scheduler's name rule, 1 to 64 of `[0-9a-zA-Z-_.]`
/// (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html>,
/// `Name`). The identity keeps the mapping deterministic and one-to-one, so the same id
/// always names the same schedule (idempotency, cancel) and two ids never share one; an id
/// outside the rule is refused, naming it, rather than rewritten into a name another id could
/// also map to.
pub fn schedule_name(id: &str) -> Result<&str, ScheduleError> {
    if id.is_empty() || id.len() > MAX_SCHEDULE_NAME {
        return Err(ScheduleError::Rejected(format!(
            "schedule id {id:?} is {} characters; a schedule name has 1 to {MAX_SCHEDULE_NAME}",
            id.len()
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(ScheduleError::Rejected(format!(
            "schedule id {id:?} contains {c:?}; a schedule name has only ASCII letters, digits \
             and - _ ."
        )));
    }
    Ok(id)
}

/// Checks the six fields of a Scheduler cron expression (`minutes hours day-of-month month
/// day-of-week year`, like `0 9 ? * MON *`) for their number only; the scheduler checks
/// each field's syntax
/// (<https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based>).
pub fn check_cron_fields(id: &str, cron: &str) -> Result<(), ScheduleError> {
    let fields = cron.split_whitespace().count();
    if fields != 6 {
        return Err(ScheduleError::Rejected(format!(
            "schedule {id}: cron expression {cron:?} has {fields} fields; Scheduler's has six \
             (minutes hours day-of-month month day-of-week year), like \"0 9 ? * MON *\""
        )));
    }
    Ok(())
}

/// Where and as whom a scheduler's schedules send their job envelopes: what the scheduler
/// adapter is built with besides the endpoint
/// ([`crate::config::Env::scheduler_target`] reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerTarget {
    /// The schedule group holding the schedules (the functions' IAM policy is scoped to it).
    pub group: String,
    /// The role Scheduler assumes to send to the queue (the caller needs `iam:PassRole` on
    /// it).
    pub role_arn: String,
    /// The ARN of the jobs queue.
    pub queue_arn: String,
}

/// Puts job envelopes on the jobs queue at a later time: EventBridge Scheduler schedules
/// whose target is the jobs queue. Every operation is keyed by a schedule id
/// ([`schedule_name`]): scheduling an id again replaces its schedule, so a retried job never
/// leaves two.
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Sends `envelope` to the jobs queue once, at `at` (to the second), then forgets the
    /// schedule. Replaces a schedule of the same id.
    async fn schedule_job(
        &self,
        id: &str,
        at: DateTime<Utc>,
        envelope: &JobEnvelope,
    ) -> Result<(), ScheduleError>;

    /// Sends `envelope` to the jobs queue at every time of `cron` (Scheduler's six fields,
    /// like `0 9 ? * MON *`, see [`check_cron_fields`]) in `time_zone`, until cancelled.
    /// Each occurrence carries its own job id, `ID:SCHEDULED-TIME` (`weekly-7:2026-11-23T08:00:00Z`),
    /// and that time as `submitted_at`, so the idempotency of job ids lets each occurrence run
    /// once and every occurrence run. Replaces a schedule of the same id.
    async fn schedule_recurring(
        &self,
        id: &str,
        cron: &str,
        time_zone: chrono_tz::Tz,
        envelope: &JobEnvelope,
    ) -> Result<(), ScheduleError>;

    /// Deletes the schedule `id`; true when there was one, false when there was none (never
    /// made, already fired, or cancelled before).
    async fn cancel(&self, id: &str) -> Result<bool, ScheduleError>;
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
