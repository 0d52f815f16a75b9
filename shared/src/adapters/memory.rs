//! In-memory adapters: fast, inspectable doubles for tests and for the emulator's
//! in-process invoker. Each can be told to fail, to exercise the retry and DLQ paths.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::contracts::JobOutcome;
use crate::ports::{
    Attribute, BlobError, Blobs, Claim, ClaimRequest, Clock, Existing, MailError, Mailer,
    OutgoingEmail, Queue, QueueDepth, QueueError, SendOptions, SequenceOutcome, Settled, Store,
    StoreError, claim_decision,
};

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Starts at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }

    /// Jumps to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// An idempotency record as every store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `None` while in progress, the result once completed.
    pub result: Option<String>,
    /// When the record stops counting.
    pub expires_at: DateTime<Utc>,
    /// The token of the claim's owner.
    pub owner: String,
    /// The payload hash it was claimed with.
    pub payload_hash: String,
}

/// A store in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<String, Record>>,
    /// Every recorded outcome by (job id, finish time), as the stores keep them.
    outcomes: Mutex<BTreeMap<(String, DateTime<Utc>), JobOutcome>>,
    complete_failures: Mutex<VecDeque<StoreError>>,
    sequences: Mutex<BTreeMap<String, Sequence>>,
    consume_failures: Mutex<BTreeMap<(String, u64), StoreError>>,
}

/// One sequence number of a key as [`MemoryStore`] consumed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// The sequence number.
    pub sequence: u64,
    /// The delta applied, `None` when it was skipped.
    pub delta: Option<i64>,
}

/// A key's sequence state in [`MemoryStore`].
#[derive(Debug, Clone, Default)]
struct Sequence {
    balance: i64,
    consumed: Vec<Consumed>,
}

impl MemoryStore {
    /// Each job's latest recorded outcome, by job id.
    pub fn outcomes(&self) -> BTreeMap<String, JobOutcome> {
        // Keys sort by (job id, finish time): the last insert per job id is its latest.
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .map(|((job_id, _), o)| (job_id.clone(), o.clone()))
            .collect()
    }

    /// The idempotency record of `key`, if any.
    pub fn record(&self, key: &str) -> Option<Record> {
        self.records.lock().unwrap().get(key).cloned()
    }

    /// The sequence numbers of `key` in the order they were consumed, with their deltas:
    /// what [`Store::apply_in_sequence`] and [`Store::skip_in_sequence`] did to it.
    pub fn consumed(&self, key: &str) -> Vec<Consumed> {
        self.sequences
            .lock()
            .unwrap()
            .get(key)
            .map(|s| s.consumed.clone())
            .unwrap_or_default()
    }

    /// Makes the next attempt to consume `sequence` of `key` fail with `error` (once), as a
    /// store that times out on that write.
    pub fn fail_consume_once(&self, key: &str, sequence: u64, error: StoreError) {
        self.consume_failures
            .lock()
            .unwrap()
            .insert((key.to_string(), sequence), error);
    }

    /// Consumes `sequence` of `key` with `delta` (`None`: a skip), under the one lock.
    fn consume(
        &self,
        key: &str,
        sequence: u64,
        delta: Option<i64>,
    ) -> Result<SequenceOutcome, StoreError> {
        let failure = self
            .consume_failures
            .lock()
            .unwrap()
            .remove(&(key.to_string(), sequence));
        if let Some(error) = failure {
            return Err(error);
        }
        let mut sequences = self.sequences.lock().unwrap();
        let state = sequences.entry(key.to_string()).or_default();
        if let Some(answer) = SequenceOutcome::decide(state.consumed.len() as u64, sequence) {
            return Ok(answer);
        }
        let balance = state
            .balance
            .checked_add(delta.unwrap_or(0))
            .ok_or_else(|| StoreError::Permanent(format!("balance of {key:?} would overflow")))?;
        state.balance = balance;
        state.consumed.push(Consumed { sequence, delta });
        Ok(SequenceOutcome::Applied { balance })
    }

    /// Makes the next `complete` fail with `error` (queued: one failure per call), as a
    /// store that cannot be reached just after the work was done.
    pub fn fail_next_complete(&self, error: StoreError) {
        self.complete_failures.lock().unwrap().push_back(error);
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim(&self, key: &str, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let mut records = self.records.lock().unwrap();
        let existing = records.get(key).map(|r| Existing {
            result: r.result.clone(),
            expires_at: r.expires_at,
            payload_hash: Some(r.payload_hash.clone()),
        });
        let claim = claim_decision(existing, request);
        if claim == Claim::Acquired {
            records.insert(
                key.to_string(),
                Record {
                    result: None,
                    expires_at: request.until,
                    owner: request.owner.to_string(),
                    payload_hash: request.payload_hash.to_string(),
                },
            );
        }
        Ok(claim)
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        if let Some(e) = self.complete_failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let mut records = self.records.lock().unwrap();
        match records.get_mut(key) {
            Some(r) if r.owner == owner => {
                r.result = Some(result.to_string());
                r.expires_at = expires_at;
                Ok(Settled::Done)
            }
            _ => Ok(Settled::NotOwner),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<Settled, StoreError> {
        let mut records = self.records.lock().unwrap();
        match records.get(key) {
            Some(r) if r.owner == owner && r.result.is_none() => {
                records.remove(key);
                Ok(Settled::Done)
            }
            _ => Ok(Settled::NotOwner),
        }
    }

    async fn consume_in_sequence(
        &self,
        key: &str,
        sequence: u64,
        delta: Option<i64>,
    ) -> Result<SequenceOutcome, StoreError> {
        self.consume(key, sequence, delta)
    }

    async fn record_outcome(&self, outcome: &JobOutcome) -> Result<(), StoreError> {
        self.outcomes.lock().unwrap().insert(
            (outcome.job_id.clone(), outcome.finished_at),
            outcome.clone(),
        );
        Ok(())
    }

    async fn outcomes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<JobOutcome>, StoreError> {
        let mut found: Vec<JobOutcome> = self
            .outcomes
            .lock()
            .unwrap()
            .values()
            .filter(|o| o.finished_at >= from && o.finished_at < to)
            .cloned()
            .collect();
        crate::ports::latest_per_job(&mut found);
        Ok(found)
    }
}

/// A message sent through [`MemoryQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Target queue URL.
    pub queue_url: String,
    /// Body.
    pub body: String,
    /// Attributes.
    pub attributes: Vec<Attribute>,
    /// The FIFO group and deduplication ids it was sent with (default for a standard send).
    pub options: SendOptions,
}

/// A queue client in memory that records what it was asked to do.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<SentMessage>>,
    visibility: Mutex<Vec<(String, String, i32)>>,
    failures: Mutex<VecDeque<QueueError>>,
}

impl MemoryQueue {
    /// Everything sent so far.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.sent.lock().unwrap().clone()
    }

    /// Messages sent to `queue_url`.
    pub fn sent_to(&self, queue_url: &str) -> Vec<SentMessage> {
        self.sent()
            .into_iter()
            .filter(|m| m.queue_url == queue_url)
            .collect()
    }

    /// Visibility changes so far: (queue URL, receipt handle, timeout).
    pub fn visibility_changes(&self) -> Vec<(String, String, i32)> {
        self.visibility.lock().unwrap().clone()
    }

    /// Makes the next call fail with `error` (queued: one failure per call).
    pub fn fail_next(&self, error: QueueError) {
        self.failures.lock().unwrap().push_back(error);
    }

    fn injected(&self) -> Result<(), QueueError> {
        match self.failures.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &[Attribute],
        options: &SendOptions,
    ) -> Result<String, QueueError> {
        self.injected()?;
        let mut sent = self.sent.lock().unwrap();
        sent.push(SentMessage {
            queue_url: queue_url.to_string(),
            body: body.to_string(),
            attributes: attributes.to_vec(),
            options: options.clone(),
        });
        Ok(format!("msg-{}", sent.len()))
    }

    async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        timeout_seconds: i32,
    ) -> Result<(), QueueError> {
        self.injected()?;
        self.visibility.lock().unwrap().push((
            queue_url.to_string(),
            receipt_handle.to_string(),
            timeout_seconds,
        ));
        Ok(())
    }

    /// Nothing ever leaves a [`MemoryQueue`] (it has no receive), so what a queue holds is
    /// everything sent to it, all visible.
    async fn depth(&self, queue_url: &str) -> Result<QueueDepth, QueueError> {
        self.injected()?;
        Ok(QueueDepth {
            visible: self.sent_to(queue_url).len() as u64,
            ..QueueDepth::default()
        })
    }
}

/// A mailer in memory.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<OutgoingEmail>>,
    failures: Mutex<VecDeque<MailError>>,
}

impl MemoryMailer {
    /// Every email sent so far.
    pub fn sent(&self) -> Vec<OutgoingEmail> {
        self.sent.lock().unwrap().clone()
    }

    /// Makes the next send fail with `error` (queued: one failure per send).
    pub fn fail_next(&self, error: MailError) {
        self.failures.lock().unwrap().push_back(error);
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let mut sent = self.sent.lock().unwrap();
        sent.push(email.clone());
        Ok(format!("mem-{}", sent.len()))
    }
}

/// A blob store in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<BTreeMap<String, (Bytes, String)>>,
}

impl MemoryBlobs {
    /// Keys stored so far, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.blobs.lock().unwrap().keys().cloned().collect()
    }

    /// Content type stored with `key`.
    pub fn content_type(&self, key: &str) -> Option<String> {
        self.blobs.lock().unwrap().get(key).map(|(_, t)| t.clone())
    }
}

#[async_trait]
impl Blobs for MemoryBlobs {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<String, BlobError> {
        self.blobs
            .lock()
            .unwrap()
            .insert(key.to_string(), (bytes, content_type.to_string()));
        Ok(format!("memory://{key}"))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        Ok(self.blobs.lock().unwrap().get(key).map(|(b, _)| b.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::conformance;

    #[tokio::test]
    async fn sequences_follow_the_store_rules() {
        let store = MemoryStore::default();
        conformance::check_sequences(&store, "").await;
        assert_eq!(
            store.consumed("sku-a"),
            [
                (1, Some(10)),
                (2, Some(-3)),
                (3, None),
                (4, Some(1)),
                (5, Some(2))
            ]
            .map(|(sequence, delta)| Consumed { sequence, delta })
        );
        conformance::check_sequence_race(&store, "race", 8).await;
    }

    #[tokio::test]
    async fn a_consume_told_to_fail_fails_once_and_changes_nothing() {
        let store = MemoryStore::default();
        store.fail_consume_once("k", 1, StoreError::Transient("down".into()));
        assert_eq!(
            store.apply_in_sequence("k", 1, 3).await,
            Err(StoreError::Transient("down".into()))
        );
        assert!(store.consumed("k").is_empty());
        assert_eq!(
            store.apply_in_sequence("k", 1, 3).await,
            Ok(SequenceOutcome::Applied { balance: 3 })
        );
    }
}
