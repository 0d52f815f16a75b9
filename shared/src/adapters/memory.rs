//! In-memory adapters: fast, inspectable doubles for tests and for the emulator's
//! in-process invoker. Each can be told to fail, to exercise the retry and DLQ paths.
//! [`MemoryScheduler`] keeps schedules without firing them: a test asks it what is due.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::contracts::{JobEnvelope, JobOutcome};
use crate::ports::{
    Attribute, BlobError, Blobs, Claim, ClaimRequest, Clock, Existing, MailError, Mailer,
    OutgoingEmail, Queue, QueueDepth, QueueError, ScheduleError, Scheduler, SendOptions,
    SequenceOutcome, Settled, Store, StoreError, Suppression, check_cron_fields, claim_decision,
    schedule_name, suppression_key,
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
    suppressions: Mutex<BTreeMap<String, Suppression>>,
    suppress_failures: Mutex<VecDeque<StoreError>>,
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

    /// Makes the next `suppress` fail with `error` (queued: one failure per call), as a store
    /// that cannot be reached while mail feedback arrives.
    pub fn fail_next_suppress(&self, error: StoreError) {
        self.suppress_failures.lock().unwrap().push_back(error);
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

    async fn suppress(&self, suppression: &Suppression) -> Result<(), StoreError> {
        if let Some(e) = self.suppress_failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let key = suppression_key(&suppression.address);
        let stored = Suppression {
            address: key.clone(),
            ..suppression.clone()
        };
        self.suppressions.lock().unwrap().insert(key, stored);
        Ok(())
    }

    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        Ok(self
            .suppressions
            .lock()
            .unwrap()
            .get(&suppression_key(address))
            .cloned())
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

/// A metrics sink that keeps the EMF documents written to it, each checked against the
/// specification ([`crate::metrics::validate`]) as it arrives.
#[derive(Debug, Default)]
pub struct MemoryMetrics(Mutex<Vec<serde_json::Value>>);

impl MemoryMetrics {
    /// Takes the documents written so far, oldest first.
    pub fn take(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl crate::metrics::MetricsSink for MemoryMetrics {
    fn write_line(&self, line: &str) {
        let document: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Err(e) = crate::metrics::validate(&document) {
            panic!("not an EMF document ({e}): {line}");
        }
        self.0.lock().unwrap().push(document);
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

/// When a schedule of [`MemoryScheduler`] sends its envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// Once, at this time ([`Scheduler::schedule_job`]).
    At(DateTime<Utc>),
    /// At every time of a cron expression ([`Scheduler::schedule_recurring`]).
    Cron {
        /// The six fields.
        expression: String,
        /// The zone they are read in.
        time_zone: chrono_tz::Tz,
    },
}

/// One schedule of [`MemoryScheduler`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledJob {
    /// The schedule id.
    pub id: String,
    /// When it sends.
    pub when: When,
    /// What it sends.
    pub envelope: JobEnvelope,
}

/// A scheduler in memory: keeps the schedules by id under the adapter's rules (name rule,
/// six cron fields, one schedule per id) and fires nothing; [`MemoryScheduler::take_due`]
/// plays the scheduler's part of sending what is due.
#[derive(Debug, Default)]
pub struct MemoryScheduler {
    schedules: Mutex<BTreeMap<String, ScheduledJob>>,
    failures: Mutex<VecDeque<ScheduleError>>,
}

impl MemoryScheduler {
    /// Every schedule, by id.
    pub fn schedules(&self) -> Vec<ScheduledJob> {
        self.schedules.lock().unwrap().values().cloned().collect()
    }

    /// The schedule `id`, if there is one.
    pub fn get(&self, id: &str) -> Option<ScheduledJob> {
        self.schedules.lock().unwrap().get(id).cloned()
    }

    /// The one-time schedules due at `now` (their time is `now` or earlier), earliest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<ScheduledJob> {
        let mut due: Vec<ScheduledJob> = self
            .schedules()
            .into_iter()
            .filter(|s| matches!(s.when, When::At(at) if at <= now))
            .collect();
        due.sort_by_key(|s| match s.when {
            When::At(at) => at,
            When::Cron { .. } => now,
        });
        due
    }

    /// Removes the one-time schedules due at `now` and returns their envelopes, earliest
    /// first: what the scheduler sends then, deleting each schedule after it fired
    /// (`ActionAfterCompletion: DELETE`).
    pub fn take_due(&self, now: DateTime<Utc>) -> Vec<JobEnvelope> {
        let due = self.due(now);
        let mut schedules = self.schedules.lock().unwrap();
        for s in &due {
            schedules.remove(&s.id);
        }
        due.into_iter().map(|s| s.envelope).collect()
    }

    /// Makes the next call fail with `error` (queued: one failure per call).
    pub fn fail_next(&self, error: ScheduleError) {
        self.failures.lock().unwrap().push_back(error);
    }

    fn injected(&self) -> Result<(), ScheduleError> {
        match self.failures.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn put(&self, id: &str, when: When, envelope: &JobEnvelope) -> Result<(), ScheduleError> {
        self.injected()?;
        schedule_name(id)?;
        self.schedules.lock().unwrap().insert(
            id.to_string(),
            ScheduledJob {
                id: id.to_string(),
                when,
                envelope: envelope.clone(),
            },
        );
        Ok(())
    }
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    async fn schedule_job(
        &self,
        id: &str,
        at: DateTime<Utc>,
        envelope: &JobEnvelope,
    ) -> Result<(), ScheduleError> {
        self.put(id, When::At(at), envelope)
    }

    async fn schedule_recurring(
        &self,
        id: &str,
        cron: &str,
        time_zone: chrono_tz::Tz,
        envelope: &JobEnvelope,
    ) -> Result<(), ScheduleError> {
        check_cron_fields(id, cron)?;
        let when = When::Cron {
            expression: cron.to_string(),
            time_zone,
        };
        self.put(id, when, envelope)
    }

    async fn cancel(&self, id: &str) -> Result<bool, ScheduleError> {
        self.injected()?;
        schedule_name(id)?;
        Ok(self.schedules.lock().unwrap().remove(id).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::conformance;
    use crate::ports::Retryable;

    #[tokio::test]
    async fn suppressions_follow_the_store_rules() {
        conformance::check_suppressions(&MemoryStore::default(), "").await;
    }

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

    fn envelope(id: &str) -> JobEnvelope {
        JobEnvelope::new(
            id,
            "user.follow_up",
            serde_json::json!({"user_id": "u-1"}),
            "2026-11-21T10:00:00Z".parse().unwrap(),
        )
    }

    #[tokio::test]
    async fn one_schedule_per_id_and_due_ones_are_taken_once() {
        let scheduler = MemoryScheduler::default();
        let t0: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        scheduler
            .schedule_job("follow-up-u-1", t0, &envelope("a"))
            .await
            .unwrap();
        // Scheduling the same id again replaces it: one schedule, the later envelope.
        let later = t0 + chrono::Duration::hours(1);
        scheduler
            .schedule_job("follow-up-u-1", later, &envelope("b"))
            .await
            .unwrap();
        scheduler
            .schedule_recurring(
                "weekly-u-1",
                "0 9 ? * MON *",
                chrono_tz::Europe::Berlin,
                &envelope("w"),
            )
            .await
            .unwrap();
        assert_eq!(scheduler.schedules().len(), 2);
        assert!(scheduler.due(t0).is_empty(), "replaced by the later time");
        assert_eq!(scheduler.due(later).len(), 1);
        assert_eq!(
            scheduler
                .take_due(later)
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert!(scheduler.take_due(later).is_empty(), "deleted after firing");
        // The recurring schedule is never "due" as a one-time one, and stays until cancelled.
        assert!(scheduler.cancel("weekly-u-1").await.unwrap());
        assert!(!scheduler.cancel("weekly-u-1").await.unwrap());
        assert!(!scheduler.cancel("follow-up-u-1").await.unwrap());
        assert!(scheduler.schedules().is_empty());
    }

    #[tokio::test]
    async fn ids_outside_the_name_rule_and_bad_crons_are_refused_naming_them() {
        let scheduler = MemoryScheduler::default();
        let at: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let err = scheduler
            .schedule_job("follow-up:u/1", at, &envelope("a"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "schedule request rejected: schedule id \"follow-up:u/1\" contains ':'; a schedule \
             name has only ASCII letters, digits and - _ ."
        );
        assert!(!err.is_retryable());
        let long = "x".repeat(65);
        assert!(
            scheduler
                .schedule_job(&long, at, &envelope("a"))
                .await
                .unwrap_err()
                .to_string()
                .contains("is 65 characters; a schedule name has 1 to 64")
        );
        let err = scheduler
            .schedule_recurring("weekly", "0 9 * *", chrono_tz::UTC, &envelope("a"))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("schedule weekly: cron expression \"0 9 * *\" has 4 fields"),
            "{err}"
        );
        assert!(scheduler.schedules().is_empty());
        scheduler.fail_next(ScheduleError::Transient("throttled".into()));
        let err = scheduler.cancel("weekly").await.unwrap_err();
        assert!(err.is_retryable());
    }
}
