//! Idempotency, after Powertools for AWS Lambda, and stricter: claim a key before doing the
//! work, record the result after, release the claim on failure.
//!
//! - `begin(key, payload)` returns [`Begin::Started`] (you own it: here is your [`Ticket`]),
//!   [`Begin::AlreadyCompleted`] (skip it, here is what it returned), [`Begin::InProgress`]
//!   (someone else is on it: retry after its deadline) or [`Begin::PayloadMismatch`].
//! - The claim stores a hash of the payload ([`fingerprint`]): the same key with a different
//!   payload is a reused key, which Powertools also rejects ("payload validation"); the
//!   callers make it a permanent failure, never a silent duplicate.
//! - A claim carries an owner token: only its owner completes or releases it, so an
//!   invocation that overran its deadline cannot delete or overwrite the claim of the retry
//!   that took the key over.
//! - The in-progress record expires at the invocation's deadline, so a killed invocation never
//!   blocks its retries past that point.
//! - Completed records live [`DEFAULT_TTL`] by default ([`ttl_for`]): as long as a message and
//!   then its dead letter can wait, so redriving any dead-lettered message finds its record
//!   and is safe.
//! - A handler error releases the claim so the retry can run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::Digest;

use crate::contracts::JobOutcome;
use crate::ports::{Claim, ClaimRequest, Clock, Retryable, Settled, Store, StoreError};

/// SQS's longest message retention, 14 days.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-basic-architecture.html>
pub const SQS_MAX_RETENTION: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// How long a completed record must live so that redriving any dead letter of its message is
/// safe: the message can wait in its source queue for that queue's retention (and be retried
/// for the retry horizon); a copy the functions dead-letter themselves is a new message, whose
/// DLQ retention starts then (only SQS's own redrive keeps the original enqueue time:
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/setting-up-dead-letter-queue-retention.html>).
pub fn ttl_for(source_retention: Duration, dlq_retention: Duration, horizon: Duration) -> Duration {
    source_retention + dlq_retention + horizon
}

/// Default time a completed record is kept: [`ttl_for`] the longest retentions SQS allows and
/// the default retry horizon, so any redrive is safe whatever the queues' settings.
pub const DEFAULT_TTL: Duration =
    Duration::from_secs(2 * SQS_MAX_RETENTION.as_secs() + crate::retry::DEFAULT_HORIZON.as_secs());

/// The longest a claim can be held: Lambda's maximum function timeout, 900 s.
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>
pub const MAX_CLAIM: Duration = Duration::from_secs(900);

/// The hash of a payload as claims store it: SHA-256, hex.
pub fn fingerprint(payload: &[u8]) -> String {
    let digest = sha2::Sha256::digest(payload);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Proof of a claim: the key and the owner token that completes or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    key: String,
    owner: String,
}

impl Ticket {
    /// The claimed key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The result of [`Idempotency::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key was free: do the work, then [`Idempotency::complete`] or
    /// [`Idempotency::abandon`] with this ticket.
    Started(Ticket),
    /// The work was done before; this is the recorded result.
    AlreadyCompleted(String),
    /// Another invocation holds the key until the given time.
    InProgress(DateTime<Utc>),
    /// The key was claimed for a different payload.
    PayloadMismatch {
        /// The payload hash stored with the key.
        stored: String,
        /// The hash of this payload.
        this: String,
    },
}

impl Begin {
    /// The reason to give for [`Begin::PayloadMismatch`], naming both hashes.
    pub fn mismatch_reason(key: &str, stored: &str, this: &str) -> String {
        format!(
            "idempotency key {key} was already used for another payload (stored sha256 {}, this one {}): \
             a reused id, not a duplicate",
            &stored[..stored.len().min(16)],
            &this[..this.len().min(16)]
        )
    }
}

/// Idempotency failed because the store did.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("idempotency store: {0}")]
pub struct IdempotencyError(#[from] pub StoreError);

impl Retryable for IdempotencyError {
    fn is_retryable(&self) -> bool {
        self.0.is_retryable()
    }
}

/// Claims, completes and releases idempotency keys in a [`Store`].
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

impl Idempotency {
    /// Uses `store`, reading "now" from `clock`, keeping completed records for `ttl`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Idempotency { store, clock, ttl }
    }

    /// The clock claims are dated by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How long completed records are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long until a claim held `until` lapses, by this instance's clock, at most
    /// [`MAX_CLAIM`]: no invocation holds a claim longer than Lambda lets it run.
    pub fn remaining(&self, until: DateTime<Utc>) -> Duration {
        (until - self.clock.now())
            .to_std()
            .unwrap_or_default()
            .min(MAX_CLAIM)
    }

    /// Tries to claim `key` for `payload` until `deadline` (the invocation's deadline).
    pub async fn begin(
        &self,
        key: &str,
        payload: &[u8],
        deadline: DateTime<Utc>,
    ) -> Result<Begin, IdempotencyError> {
        let now = self.clock.now();
        // A deadline already past would create a claim that is expired on arrival.
        let until = deadline.max(now + chrono::Duration::seconds(1));
        let owner = uuid::Uuid::new_v4().to_string();
        let payload_hash = fingerprint(payload);
        let request = ClaimRequest {
            now,
            until,
            owner: &owner,
            payload_hash: &payload_hash,
        };
        Ok(match self.store.claim(key, &request).await? {
            Claim::Acquired => Begin::Started(Ticket {
                key: key.to_string(),
                owner,
            }),
            Claim::Completed(result) => Begin::AlreadyCompleted(result),
            Claim::InProgress { until } => Begin::InProgress(until),
            Claim::PayloadMismatch { stored } => Begin::PayloadMismatch {
                stored,
                this: payload_hash,
            },
        })
    }

    /// Records the result of the work of `ticket`.
    pub async fn complete(
        &self,
        ticket: &Ticket,
        result: &str,
    ) -> Result<Settled, IdempotencyError> {
        let settled = self
            .store
            .complete(&ticket.key, &ticket.owner, result, self.completed_until())
            .await?;
        warn_if_lost(ticket, settled);
        Ok(settled)
    }

    /// Records the result of the work of `ticket` together with the job's `outcome`, in one
    /// store operation ([`Store::complete_with_outcome`]).
    pub async fn complete_with_outcome(
        &self,
        ticket: &Ticket,
        result: &str,
        outcome: &JobOutcome,
    ) -> Result<Settled, IdempotencyError> {
        let settled = self
            .store
            .complete_with_outcome(
                &ticket.key,
                &ticket.owner,
                result,
                self.completed_until(),
                outcome,
            )
            .await?;
        warn_if_lost(ticket, settled);
        Ok(settled)
    }

    /// When a record completed now expires.
    fn completed_until(&self) -> DateTime<Utc> {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(14));
        self.clock.now() + ttl
    }

    /// Releases the claim of `ticket` after a failure, so the retry can claim it.
    pub async fn abandon(&self, ticket: &Ticket) -> Result<Settled, IdempotencyError> {
        Ok(self.store.release(&ticket.key, &ticket.owner).await?)
    }
}

fn warn_if_lost(ticket: &Ticket, settled: Settled) {
    if settled == Settled::NotOwner {
        tracing::warn!(
            key = %ticket.key,
            "claim lapsed and was taken over before completion, its record left to the new owner"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{ManualClock, MemoryStore};

    fn setup() -> (Idempotency, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
        let idem = Idempotency::new(
            Arc::new(MemoryStore::default()),
            clock.clone(),
            Duration::from_secs(3600),
        );
        (idem, clock)
    }

    fn ticket(begin: Begin) -> Ticket {
        match begin {
            Begin::Started(t) => t,
            other => panic!("expected Started, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn begin_complete_then_already_completed() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        let t = ticket(idem.begin("k", b"p", deadline).await.unwrap());
        assert_eq!(
            idem.begin("k", b"p", deadline).await.unwrap(),
            Begin::InProgress(deadline)
        );
        assert_eq!(idem.complete(&t, "sent").await.unwrap(), Settled::Done);
        assert_eq!(
            idem.begin("k", b"p", deadline).await.unwrap(),
            Begin::AlreadyCompleted("sent".into())
        );
    }

    #[tokio::test]
    async fn a_reused_key_with_another_payload_is_a_mismatch() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        let t = ticket(idem.begin("k", b"first", deadline).await.unwrap());
        let Begin::PayloadMismatch { stored, this } =
            idem.begin("k", b"second", deadline).await.unwrap()
        else {
            panic!("in progress for another payload must be a mismatch");
        };
        assert_eq!(stored, fingerprint(b"first"));
        assert_eq!(this, fingerprint(b"second"));
        idem.complete(&t, "done").await.unwrap();
        assert!(matches!(
            idem.begin("k", b"second", deadline).await.unwrap(),
            Begin::PayloadMismatch { .. }
        ));
        let reason = Begin::mismatch_reason("k", &stored, &this);
        assert!(
            reason.contains(&stored[..16]) && reason.contains(&this[..16]),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn in_progress_expires_at_deadline_and_the_late_owner_cannot_touch_the_new_claim() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        let late = ticket(idem.begin("k", b"p", deadline).await.unwrap());
        clock.advance(chrono::Duration::seconds(31));
        let later = clock.now() + chrono::Duration::seconds(30);
        let current = ticket(idem.begin("k", b"p", later).await.unwrap());
        // The first invocation overran its deadline: neither its release nor its completion
        // may touch the claim the retry holds now.
        assert_eq!(idem.abandon(&late).await.unwrap(), Settled::NotOwner);
        assert_eq!(
            idem.begin("k", b"p", later).await.unwrap(),
            Begin::InProgress(later)
        );
        assert_eq!(idem.complete(&late, "x").await.unwrap(), Settled::NotOwner);
        assert_eq!(
            idem.begin("k", b"p", later).await.unwrap(),
            Begin::InProgress(later)
        );
        assert_eq!(idem.complete(&current, "y").await.unwrap(), Settled::Done);
        assert_eq!(
            idem.begin("k", b"p", later).await.unwrap(),
            Begin::AlreadyCompleted("y".into())
        );
    }

    #[tokio::test]
    async fn completed_expires_after_ttl() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        let t = ticket(idem.begin("k", b"p", deadline).await.unwrap());
        idem.complete(&t, "done").await.unwrap();
        clock.advance(chrono::Duration::seconds(3599));
        assert!(matches!(
            idem.begin("k", b"p", clock.now()).await.unwrap(),
            Begin::AlreadyCompleted(_)
        ));
        clock.advance(chrono::Duration::seconds(2));
        assert!(matches!(
            idem.begin("k", b"other", clock.now()).await.unwrap(),
            Begin::Started(_)
        ));
    }

    #[tokio::test]
    async fn abandon_frees_the_key() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        let t = ticket(idem.begin("k", b"p", deadline).await.unwrap());
        assert_eq!(idem.abandon(&t).await.unwrap(), Settled::Done);
        assert!(matches!(
            idem.begin("k", b"p", deadline).await.unwrap(),
            Begin::Started(_)
        ));
    }

    #[test]
    fn default_ttl_outlives_any_dead_letter() {
        assert_eq!(
            DEFAULT_TTL,
            ttl_for(
                SQS_MAX_RETENTION,
                SQS_MAX_RETENTION,
                crate::retry::DEFAULT_HORIZON
            )
        );
        assert_eq!(fingerprint(b"").len(), 64);
    }
}
