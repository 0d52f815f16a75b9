//! Idempotency, after Powertools for AWS Lambda: claim a key before doing the work, record the
//! result after, release the claim on failure.
//!
//! - `begin(key)` returns [`Begin::Started`] (you own it), [`Begin::AlreadyCompleted`] (skip
//!   it, here is what it returned) or [`Begin::InProgress`] (someone else is on it: retry
//!   later).
//! - The in-progress record expires at the invocation's deadline, so a killed invocation never
//!   blocks its retries past that point.
//! - Completed records live for a configurable window (default 24 h).
//! - A handler error releases the claim so the retry can run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::contracts::JobOutcome;
use crate::ports::{Claim, Clock, Retryable, Store, StoreError};

/// Default time a completed record is kept.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The result of [`Idempotency::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key was free: do the work, then [`Idempotency::complete`] or
    /// [`Idempotency::abandon`].
    Started,
    /// The work was done before; this is the recorded result.
    AlreadyCompleted(String),
    /// Another invocation holds the key until the given time.
    InProgress(DateTime<Utc>),
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

    /// Tries to claim `key` until `deadline` (the invocation's deadline).
    pub async fn begin(
        &self,
        key: &str,
        deadline: DateTime<Utc>,
    ) -> Result<Begin, IdempotencyError> {
        let now = self.clock.now();
        // A deadline already past would create a claim that is expired on arrival.
        let until = deadline.max(now + chrono::Duration::seconds(1));
        Ok(match self.store.claim(key, now, until).await? {
            Claim::Acquired => Begin::Started,
            Claim::Completed(result) => Begin::AlreadyCompleted(result),
            Claim::InProgress { until } => Begin::InProgress(until),
        })
    }

    /// Records the result of the work for `key`.
    pub async fn complete(&self, key: &str, result: &str) -> Result<(), IdempotencyError> {
        self.store
            .complete(key, result, self.completed_until())
            .await?;
        Ok(())
    }

    /// Records the result of the work for `key` together with the job's `outcome`, in one
    /// store operation ([`Store::complete_with_outcome`]).
    pub async fn complete_with_outcome(
        &self,
        key: &str,
        result: &str,
        outcome: &JobOutcome,
    ) -> Result<(), IdempotencyError> {
        self.store
            .complete_with_outcome(key, result, self.completed_until(), outcome)
            .await?;
        Ok(())
    }

    /// When a record completed now expires.
    fn completed_until(&self) -> DateTime<Utc> {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(1));
        self.clock.now() + ttl
    }

    /// Releases `key` after a failure, so the retry can claim it.
    pub async fn abandon(&self, key: &str) -> Result<(), IdempotencyError> {
        self.store.release(key).await?;
        Ok(())
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

    #[tokio::test]
    async fn begin_complete_then_already_completed() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        assert_eq!(idem.begin("k", deadline).await.unwrap(), Begin::Started);
        assert_eq!(
            idem.begin("k", deadline).await.unwrap(),
            Begin::InProgress(deadline)
        );
        idem.complete("k", "sent").await.unwrap();
        assert_eq!(
            idem.begin("k", deadline).await.unwrap(),
            Begin::AlreadyCompleted("sent".into())
        );
    }

    #[tokio::test]
    async fn in_progress_expires_at_deadline() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        assert_eq!(idem.begin("k", deadline).await.unwrap(), Begin::Started);
        clock.advance(chrono::Duration::seconds(31));
        let later = clock.now() + chrono::Duration::seconds(30);
        assert_eq!(idem.begin("k", later).await.unwrap(), Begin::Started);
    }

    #[tokio::test]
    async fn completed_expires_after_ttl() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        idem.begin("k", deadline).await.unwrap();
        idem.complete("k", "done").await.unwrap();
        clock.advance(chrono::Duration::seconds(3599));
        assert!(matches!(
            idem.begin("k", clock.now()).await.unwrap(),
            Begin::AlreadyCompleted(_)
        ));
        clock.advance(chrono::Duration::seconds(2));
        assert_eq!(idem.begin("k", clock.now()).await.unwrap(), Begin::Started);
    }

    #[tokio::test]
    async fn abandon_frees_the_key() {
        let (idem, clock) = setup();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        idem.begin("k", deadline).await.unwrap();
        idem.abandon("k").await.unwrap();
        assert_eq!(idem.begin("k", deadline).await.unwrap(), Begin::Started);
    }
}
