//! One queue's state machine: stored messages and their visibility, delays, retention,
//! receive counts and receipt handles.
//!
//! Time is passed in (epoch milliseconds of the engine's clock) and state is brought up to
//! date lazily by [`QueueState::refresh`] on every access, so no timer runs per message:
//! delayed and in-flight messages sit in one set ordered by the instant they become visible,
//! and retention is checked against a set ordered by send time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::attributes::DeduplicationScope;
use super::attributes::{MAX_VISIBILITY_TIMEOUT, QueueConfig};
use super::error::SqsError;
use super::fifo::{
    DEDUPLICATION_INTERVAL_MS, DedupTable, Deduplicated, Groups, RECEIVE_ATTEMPT_INTERVAL_MS,
    dedup_key,
};
use super::model::{MessageAttributeValue, MessageState};

/// The immutable part of a message: what was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MessageData {
    pub id: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, MessageAttributeValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub system_attributes: BTreeMap<String, MessageAttributeValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The deduplication id a FIFO message was sent with (or derived from its body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    pub sent_ms: i64,
    pub sender_id: String,
    pub md5_body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5_attributes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5_system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_source_arn: Option<String>,
}

/// A message in a queue: what was sent plus where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    #[serde(with = "arc_data")]
    pub data: Arc<MessageData>,
    pub state: MessageState,
    /// When a delayed or in-flight message becomes visible (epoch ms).
    pub visible_at: i64,
    pub receive_count: u32,
    pub first_receive_ms: Option<i64>,
    pub last_receive_ms: Option<i64>,
}

impl StoredMessage {
    /// A freshly sent message, delayed until `visible_at` when that is after `now`.
    pub fn new(data: Arc<MessageData>, now: i64, visible_at: i64) -> Self {
        StoredMessage {
            data,
            state: if visible_at > now {
                MessageState::Delayed
            } else {
                MessageState::Visible
            },
            visible_at: visible_at.max(now),
            receive_count: 0,
            first_receive_ms: None,
            last_receive_ms: None,
        }
    }
}

/// Serde for the shared message data (serde's `rc` feature is not assumed).
pub(crate) mod arc_data {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::MessageData;

    pub fn serialize<S: Serializer>(data: &Arc<MessageData>, s: S) -> Result<S::Ok, S::Error> {
        data.as_ref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<MessageData>, D::Error> {
        MessageData::deserialize(d).map(Arc::new)
    }
}

/// What a receipt handle names: a queue incarnation, a message, and which receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub queue_id: u64,
    pub seq: u64,
    pub receive_count: u32,
}

const RECEIPT_TAG: &[u8; 4] = b"nsq1";

impl Receipt {
    /// The opaque handle given to clients.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(RECEIPT_TAG);
        bytes.extend_from_slice(&self.queue_id.to_be_bytes());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.receive_count.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses a handle; `ReceiptHandleIsInvalid` when this service did not issue it.
    pub fn decode(handle: &str) -> Result<Self, SqsError> {
        let invalid = || {
            SqsError::ReceiptHandleIsInvalid(format!(
                "The input receipt handle \"{handle}\" is not a valid receipt handle."
            ))
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(handle.as_bytes())
            .map_err(|_| invalid())?;
        if bytes.len() != 24 || &bytes[..4] != RECEIPT_TAG {
            return Err(invalid());
        }
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let receive_count = u32::from_be_bytes(bytes[20..24].try_into().unwrap_or([0; 4]));
        if receive_count == 0 {
            return Err(invalid());
        }
        Ok(Receipt {
            queue_id: u64_at(4),
            seq: u64_at(12),
            receive_count,
        })
    }
}

/// A message taken by a receive.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub seq: u64,
    pub message: StoredMessage,
}

/// The outcome of a delete by receipt handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteOutcome {
    /// The message was deleted.
    Deleted,
    /// The handle is not the latest receive of the message: accepted, message kept (as SQS).
    Stale,
    /// No such message any more (already deleted, expired, moved): accepted.
    Gone,
    /// FIFO queues only: the handle's visibility timeout has passed; refused.
    Expired,
}

/// One queue's messages and settings.
#[derive(Debug)]
pub(crate) struct QueueState {
    pub config: QueueConfig,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub tags: BTreeMap<String, String>,
    pub last_purge_ms: Option<i64>,
    /// By sequence number. A B-tree, not a hash map: a hash map doubles by copying every
    /// entry while the queue's lock is held, which stalled every sender for tens of ms once a
    /// queue held a million messages (README, "The SQS endpoint against its peers").
    messages: BTreeMap<u64, StoredMessage>,
    /// Visible messages in send order.
    ready: BTreeSet<u64>,
    /// Delayed and in-flight messages by the instant they become visible.
    pending: BTreeSet<(i64, u64)>,
    /// Every message by send time, for retention.
    by_age: BTreeSet<(i64, u64)>,
    in_flight: usize,
    delayed: usize,
    /// FIFO queues only: the message groups of the visible and in-flight messages.
    groups: Groups,
    /// FIFO queues only: deduplication ids of the last 5 minutes.
    pub dedup: DedupTable,
    /// FIFO queues only: recent receives by ReceiveRequestAttemptId.
    attempts: HashMap<String, Attempt>,
}

/// A receive made with a ReceiveRequestAttemptId: what it returned, as (seq, receive count,
/// visible at) of each message, and until when it can be retried.
#[derive(Debug, Clone)]
struct Attempt {
    expires_ms: i64,
    messages: Vec<(u64, u32, i64)>,
}

impl QueueState {
    /// An empty queue.
    pub fn new(config: QueueConfig, created_ms: i64) -> Self {
        QueueState {
            config,
            created_ms,
            modified_ms: created_ms,
            tags: BTreeMap::new(),
            last_purge_ms: None,
            messages: BTreeMap::new(),
            ready: BTreeSet::new(),
            pending: BTreeSet::new(),
            by_age: BTreeSet::new(),
            in_flight: 0,
            delayed: 0,
            groups: Groups::default(),
            dedup: DedupTable::default(),
            attempts: HashMap::new(),
        }
    }

    /// The FIFO group of `message`, when this is a FIFO queue (on a standard queue a group id
    /// only names a fair-queue tenant and orders nothing).
    fn group_of(&self, message: &StoredMessage) -> Option<Arc<str>> {
        self.config.fifo.as_ref()?;
        message.data.group_id.as_deref().map(Arc::from)
    }

    /// The deduplication key of a FIFO message under this queue's scope, `None` on a
    /// standard queue or for a message without a deduplication id.
    pub fn dedup_key_of(&self, data: &MessageData) -> Option<String> {
        let fifo = self.config.fifo.as_ref()?;
        let id = data.dedup_id.as_deref()?;
        let by_group = fifo.deduplication_scope == DeduplicationScope::MessageGroup;
        Some(dedup_key(
            by_group,
            data.group_id.as_deref().unwrap_or(""),
            id,
        ))
    }

    /// Records that `data`, stored under `seq`, used its deduplication id (on a FIFO queue):
    /// the id is a duplicate until 5 minutes after the send.
    pub fn note_dedup(&mut self, seq: u64, data: &MessageData) {
        if let Some(key) = self.dedup_key_of(data) {
            self.dedup.insert(Deduplicated {
                key,
                message_id: data.id.clone(),
                seq,
                expires_ms: data.sent_ms + DEDUPLICATION_INTERVAL_MS,
            });
        }
    }

    fn make_visible(&mut self, seq: u64) {
        self.ready.insert(seq);
        if let Some(group) = self.messages.get(&seq).and_then(|m| self.group_of(m)) {
            self.groups.visible(&group, seq);
        }
    }

    /// Drops messages past retention and makes visible those whose delay or visibility
    /// timeout has passed. Cost is proportional to what changed.
    pub fn refresh(&mut self, now: i64) {
        let retention_ms = i64::from(self.config.message_retention_period) * 1000;
        while let Some(&(sent, seq)) = self.by_age.first() {
            if sent + retention_ms > now {
                break;
            }
            self.remove(seq);
        }
        while let Some(&(visible_at, seq)) = self.pending.first() {
            if visible_at > now {
                break;
            }
            self.pending.pop_first();
            let Some(message) = self.messages.get_mut(&seq) else {
                continue;
            };
            let was = message.state;
            message.state = MessageState::Visible;
            match was {
                MessageState::InFlight => self.in_flight -= 1,
                MessageState::Delayed => self.delayed -= 1,
                MessageState::Visible => {}
            }
            self.make_visible(seq);
            if was == MessageState::InFlight
                && let Some(group) = self.messages.get(&seq).and_then(|m| self.group_of(m))
            {
                self.groups.release(&group);
            }
        }
        if self.config.fifo.is_some() {
            self.dedup.expire(now);
            self.attempts.retain(|_, a| a.expires_ms > now);
        }
    }

    /// Stores a message under `seq`, in the set its state calls for.
    pub fn insert(&mut self, seq: u64, message: StoredMessage) {
        if let Some(old) = self.messages.get(&seq).cloned() {
            // Replays may re-insert; keep the indexes consistent.
            self.unindex(seq, &old);
        }
        self.by_age.insert((message.data.sent_ms, seq));
        let group = self.group_of(&message);
        let state = message.state;
        match state {
            MessageState::Visible => {}
            MessageState::Delayed => {
                self.delayed += 1;
                self.pending.insert((message.visible_at, seq));
            }
            MessageState::InFlight => {
                self.in_flight += 1;
                self.pending.insert((message.visible_at, seq));
                if let Some(group) = &group {
                    self.groups.hold(group);
                }
            }
        }
        self.messages.insert(seq, message);
        if state == MessageState::Visible {
            self.make_visible(seq);
        }
    }

    fn unindex(&mut self, seq: u64, message: &StoredMessage) {
        self.by_age.remove(&(message.data.sent_ms, seq));
        let group = self.group_of(message);
        match message.state {
            MessageState::Visible => {
                self.ready.remove(&seq);
                if let Some(group) = &group {
                    self.groups.hidden(group, seq);
                }
            }
            MessageState::Delayed => {
                self.delayed -= 1;
                self.pending.remove(&(message.visible_at, seq));
            }
            MessageState::InFlight => {
                self.in_flight -= 1;
                self.pending.remove(&(message.visible_at, seq));
                if let Some(group) = &group {
                    self.groups.release(group);
                }
            }
        }
    }

    /// Removes a message, whatever its state.
    pub fn remove(&mut self, seq: u64) -> Option<StoredMessage> {
        let message = self.messages.remove(&seq)?;
        self.unindex(seq, &message);
        Some(message)
    }

    /// The message stored under `seq`.
    pub fn get(&self, seq: u64) -> Option<&StoredMessage> {
        self.messages.get(&seq)
    }

    /// Takes up to `max` visible messages in send order, hiding each for `visibility_ms` and
    /// counting the receive. With `max_receive_count`, a message already received that many
    /// times is not returned but removed and handed back in the second list (for the DLQ),
    /// which is when SQS moves it: on the receive that would exceed the count.
    ///
    /// On a FIFO queue, only groups with no message in flight are taken from, each in send
    /// order, and as many messages of one group as fit before the next group ("SQS tries to
    /// return as many messages with the same message group ID as possible",
    /// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagegroupid-property.html>).
    pub fn take(
        &mut self,
        now: i64,
        max: usize,
        visibility_ms: i64,
        max_receive_count: Option<u32>,
    ) -> (Vec<Taken>, Vec<Taken>) {
        let mut taken = Vec::new();
        let mut dead = Vec::new();
        // FIFO: the group taken from last while it has visible messages, then the next one.
        let mut group: Option<Arc<str>> = None;
        while taken.len() < max {
            let seq = if self.config.fifo.is_some() {
                let mut next = group.as_deref().and_then(|g| self.groups.oldest_visible(g));
                if next.is_none() {
                    group = self.groups.next();
                    next = group.as_deref().and_then(|g| self.groups.oldest_visible(g));
                }
                let (Some(seq), Some(g)) = (next, &group) else {
                    break;
                };
                self.ready.remove(&seq);
                self.groups.hidden(g, seq);
                seq
            } else {
                let Some(seq) = self.ready.pop_first() else {
                    break;
                };
                seq
            };
            self.take_one(
                seq,
                now,
                visibility_ms,
                max_receive_count,
                &mut taken,
                &mut dead,
            );
        }
        (taken, dead)
    }

    /// Receives the visible message `seq`, already out of the visible indexes, into `taken`,
    /// or into `dead` when it has used up its receives.
    fn take_one(
        &mut self,
        seq: u64,
        now: i64,
        visibility_ms: i64,
        max_receive_count: Option<u32>,
        taken: &mut Vec<Taken>,
        dead: &mut Vec<Taken>,
    ) {
        let Some(mut message) = self.messages.remove(&seq) else {
            return;
        };
        if max_receive_count.is_some_and(|limit| message.receive_count >= limit) {
            self.by_age.remove(&(message.data.sent_ms, seq));
            dead.push(Taken { seq, message });
            return;
        }
        message.receive_count += 1;
        message.first_receive_ms.get_or_insert(now);
        message.last_receive_ms = Some(now);
        message.state = MessageState::InFlight;
        message.visible_at = now + visibility_ms;
        self.in_flight += 1;
        self.pending.insert((message.visible_at, seq));
        if let Some(group) = self.group_of(&message) {
            self.groups.hold(&group);
        }
        taken.push(Taken {
            seq,
            message: message.clone(),
        });
        self.messages.insert(seq, message);
    }

    /// Remembers what a receive with ReceiveRequestAttemptId `attempt` returned.
    pub fn remember_attempt(&mut self, attempt: &str, now: i64, taken: &[Taken]) {
        let messages = taken
            .iter()
            .map(|t| (t.seq, t.message.receive_count, t.message.visible_at))
            .collect();
        self.attempts.insert(
            attempt.to_string(),
            Attempt {
                expires_ms: now + RECEIVE_ATTEMPT_INTERVAL_MS,
                messages,
            },
        );
    }

    /// A retry of the receive made with ReceiveRequestAttemptId `attempt`: the same messages
    /// with the same receipt handles, their visibility timeout started again, when the first
    /// receive was less than 5 minutes ago and none of its messages was deleted or had its
    /// visibility changed since (ReceiveMessage reference). `Ok(None)` for an id not seen in
    /// the last 5 minutes (a new receive); `Err(())` when one of its messages changed, which
    /// AWS answers with an error rather than new messages.
    pub fn retry_attempt(
        &mut self,
        attempt: &str,
        now: i64,
        visibility_ms: i64,
    ) -> Result<Option<Vec<Taken>>, ()> {
        let Some(remembered) = self.attempts.get(attempt).cloned() else {
            return Ok(None);
        };
        let unchanged = remembered.messages.iter().all(|(seq, count, visible_at)| {
            self.messages.get(seq).is_some_and(|m| {
                m.state == MessageState::InFlight
                    && m.receive_count == *count
                    && m.visible_at == *visible_at
            })
        });
        if !unchanged {
            return Err(());
        }
        let mut out = Vec::with_capacity(remembered.messages.len());
        for (seq, _, _) in &remembered.messages {
            self.set_visible_at(*seq, now + visibility_ms, now);
            if let Some(message) = self.messages.get(seq) {
                out.push(Taken {
                    seq: *seq,
                    message: message.clone(),
                });
            }
        }
        self.remember_attempt(
            attempt,
            remembered.expires_ms - RECEIVE_ATTEMPT_INTERVAL_MS,
            &out,
        );
        Ok(Some(out))
    }

    /// Re-applies a journaled receive.
    pub fn replay_receive(&mut self, seq: u64, at: i64, visible_at: i64) {
        if let Some(mut message) = self.remove(seq) {
            message.receive_count += 1;
            message.first_receive_ms.get_or_insert(at);
            message.last_receive_ms = Some(at);
            message.state = MessageState::InFlight;
            message.visible_at = visible_at;
            self.insert(seq, message);
        }
    }

    /// Deletes by receipt. On a FIFO queue a handle whose visibility timeout has passed is
    /// expired even if no one received the message since: deleting it then could let a
    /// message run twice or out of order, and SQS refuses it.
    pub fn delete(&mut self, receipt: &Receipt) -> DeleteOutcome {
        match self.messages.get(&receipt.seq) {
            None => DeleteOutcome::Gone,
            Some(message) if message.receive_count != receipt.receive_count => DeleteOutcome::Stale,
            Some(message) if self.config.is_fifo() && message.state != MessageState::InFlight => {
                DeleteOutcome::Expired
            }
            Some(_) => {
                self.remove(receipt.seq);
                DeleteOutcome::Deleted
            }
        }
    }

    /// Changes the visibility of the message `receipt` names to `seconds` from `now`; returns
    /// the new instant it becomes visible. The caller refreshes first.
    pub fn change_visibility(
        &mut self,
        now: i64,
        receipt: &Receipt,
        handle: &str,
        seconds: u32,
    ) -> Result<i64, SqsError> {
        let unavailable = || {
            SqsError::invalid_value(
                "ReceiptHandle",
                handle,
                "Message does not exist or is not available for visibility timeout change.",
            )
        };
        let message = self.messages.get(&receipt.seq).ok_or_else(unavailable)?;
        if message.receive_count != receipt.receive_count {
            return Err(unavailable());
        }
        if message.state != MessageState::InFlight {
            return Err(SqsError::MessageNotInflight(
                "The message referred to isn't in flight.".to_string(),
            ));
        }
        let received = message.last_receive_ms.unwrap_or(now);
        let visible_at = now + i64::from(seconds) * 1000;
        if visible_at > received + i64::from(MAX_VISIBILITY_TIMEOUT) * 1000 {
            return Err(SqsError::invalid_value(
                "VisibilityTimeout",
                seconds,
                "Total VisibilityTimeout for the message is beyond the limit [43200 seconds].",
            ));
        }
        self.set_visible_at(receipt.seq, visible_at, now);
        Ok(visible_at)
    }

    /// Moves an in-flight message's visibility instant (also used by replay).
    pub fn set_visible_at(&mut self, seq: u64, visible_at: i64, now: i64) {
        if let Some(mut message) = self.remove(seq) {
            if message.state == MessageState::Visible && visible_at > now {
                message.state = MessageState::InFlight;
            }
            if visible_at <= now {
                message.state = MessageState::Visible;
            }
            message.visible_at = visible_at;
            self.insert(seq, message);
        }
    }

    /// Removes every message; returns how many there were.
    pub fn purge(&mut self) -> usize {
        let count = self.messages.len();
        self.messages.clear();
        self.ready.clear();
        self.pending.clear();
        self.by_age.clear();
        self.in_flight = 0;
        self.delayed = 0;
        self.groups.clear();
        self.attempts.clear();
        count
    }

    /// How many visible messages a receive could take now: all of them on a standard queue,
    /// on a FIFO queue those of groups with no message in flight. The caller refreshes first.
    pub fn receivable(&self) -> usize {
        if self.config.is_fifo() {
            self.groups.receivable()
        } else {
            self.ready.len()
        }
    }

    /// Moves the delayed messages to the queue's new delay, counted from their send: on a
    /// FIFO queue "the per-queue delay setting is retroactive"
    /// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-delay-queues.html>).
    /// Returns (seq, new visible instant) of each message moved, for the journal.
    pub fn redelay(&mut self, now: i64, delay_ms: i64) -> Vec<(u64, i64)> {
        let delayed: Vec<(u64, i64)> = self
            .messages
            .iter()
            .filter(|(_, m)| m.state == MessageState::Delayed)
            .map(|(seq, m)| (*seq, m.data.sent_ms + delay_ms))
            .collect();
        for (seq, visible_at) in &delayed {
            self.set_visible_at(*seq, *visible_at, now);
        }
        delayed
    }

    /// (visible, in flight, delayed) counts. The caller refreshes first.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.ready.len(), self.in_flight, self.delayed)
    }

    /// The earliest instant a delayed or in-flight message becomes visible.
    pub fn next_visible_at(&self) -> Option<i64> {
        self.pending.first().map(|(at, _)| *at)
    }

    /// When the oldest message was sent.
    pub fn oldest_sent_ms(&self) -> Option<i64> {
        self.by_age.first().map(|(at, _)| *at)
    }

    /// Visible messages in send order, up to `limit` (for redrive).
    pub fn visible_seqs(&self, limit: usize) -> Vec<u64> {
        self.ready.iter().take(limit).copied().collect()
    }

    /// Every message in send order, up to `limit`.
    pub fn all(&self, limit: usize) -> Vec<(u64, &StoredMessage)> {
        self.messages
            .iter()
            .take(limit)
            .map(|(seq, m)| (*seq, m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(id: &str, sent_ms: i64) -> Arc<MessageData> {
        Arc::new(MessageData {
            id: id.to_string(),
            body: format!("body of {id}"),
            attributes: BTreeMap::new(),
            system_attributes: BTreeMap::new(),
            group_id: None,
            dedup_id: None,
            sent_ms,
            sender_id: "s".into(),
            md5_body: String::new(),
            md5_attributes: None,
            md5_system: None,
            dead_letter_source_arn: None,
        })
    }

    fn queue() -> QueueState {
        QueueState::new(QueueConfig::default(), 0)
    }

    #[test]
    fn receipt_round_trip_and_garbage() {
        let r = Receipt {
            queue_id: 7,
            seq: 42,
            receive_count: 3,
        };
        assert_eq!(Receipt::decode(&r.encode()).unwrap(), r);
        for bad in ["", "abc", "!!!!", &URL_SAFE_NO_PAD.encode([0u8; 24])] {
            assert!(
                matches!(
                    Receipt::decode(bad),
                    Err(SqsError::ReceiptHandleIsInvalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn delay_then_visible_then_in_flight_then_visible_again() {
        let mut q = queue();
        q.insert(1, StoredMessage::new(data("a", 0), 0, 5_000));
        q.refresh(4_999);
        assert_eq!(q.counts(), (0, 0, 1));
        assert_eq!(q.next_visible_at(), Some(5_000));
        q.refresh(5_000);
        assert_eq!(q.counts(), (1, 0, 0));
        let (taken, dead) = q.take(5_000, 10, 30_000, None);
        assert!(dead.is_empty());
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].message.receive_count, 1);
        assert_eq!(q.counts(), (0, 1, 0));
        q.refresh(34_999);
        assert_eq!(q.counts(), (0, 1, 0));
        q.refresh(35_000);
        assert_eq!(q.counts(), (1, 0, 0));
        let (taken, _) = q.take(35_000, 10, 30_000, None);
        assert_eq!(taken[0].message.receive_count, 2);
        assert_eq!(taken[0].message.first_receive_ms, Some(5_000));
    }

    #[test]
    fn stale_receipts_do_not_delete() {
        let mut q = queue();
        q.insert(1, StoredMessage::new(data("a", 0), 0, 0));
        let (first, _) = q.take(0, 1, 0, None);
        let old = Receipt {
            queue_id: 0,
            seq: 1,
            receive_count: first[0].message.receive_count,
        };
        q.refresh(0);
        let (second, _) = q.take(0, 1, 30_000, None);
        assert_eq!(second[0].message.receive_count, 2);
        assert_eq!(q.delete(&old), DeleteOutcome::Stale);
        assert_eq!(q.counts(), (0, 1, 0));
        let current = Receipt {
            receive_count: 2,
            ..old
        };
        assert_eq!(q.delete(&current), DeleteOutcome::Deleted);
        assert_eq!(q.delete(&current), DeleteOutcome::Gone);
        assert_eq!(q.counts(), (0, 0, 0));
    }

    #[test]
    fn retention_drops_old_messages_even_in_flight() {
        let mut q = queue();
        q.config.message_retention_period = 60;
        q.insert(1, StoredMessage::new(data("a", 0), 0, 0));
        q.insert(2, StoredMessage::new(data("b", 30_000), 30_000, 30_000));
        q.take(30_000, 1, 600_000, None);
        q.refresh(59_999);
        assert_eq!(q.counts(), (1, 1, 0));
        q.refresh(60_000);
        assert_eq!(q.counts(), (1, 0, 0));
        q.refresh(90_000);
        assert_eq!(q.counts(), (0, 0, 0));
    }

    #[test]
    fn receive_beyond_max_count_hands_the_message_to_the_dlq() {
        let mut q = queue();
        q.insert(1, StoredMessage::new(data("a", 0), 0, 0));
        for round in 1..=2 {
            q.refresh(round * 1000);
            let (taken, dead) = q.take(round * 1000, 10, 0, Some(2));
            assert_eq!(taken.len(), 1);
            assert!(dead.is_empty());
        }
        q.refresh(5_000);
        let (taken, dead) = q.take(5_000, 10, 0, Some(2));
        assert!(taken.is_empty());
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message.receive_count, 2);
        assert_eq!(q.counts(), (0, 0, 0));
        assert!(q.get(1).is_none());
    }

    #[test]
    fn visibility_changes() {
        let mut q = queue();
        q.insert(1, StoredMessage::new(data("a", 0), 0, 0));
        let (taken, _) = q.take(0, 1, 30_000, None);
        let receipt = Receipt {
            queue_id: 0,
            seq: 1,
            receive_count: taken[0].message.receive_count,
        };
        assert_eq!(
            q.change_visibility(10_000, &receipt, "h", 100).unwrap(),
            110_000
        );
        q.refresh(109_999);
        assert_eq!(q.counts(), (0, 1, 0));
        // 12 hours counted from the receive, not from the change.
        assert!(q.change_visibility(10_000, &receipt, "h", 43_200).is_err());
        assert!(q.change_visibility(10_000, &receipt, "h", 43_190).is_ok());
        q.change_visibility(20_000, &receipt, "h", 0).unwrap();
        q.refresh(20_000);
        assert_eq!(q.counts(), (1, 0, 0));
        assert!(matches!(
            q.change_visibility(20_000, &receipt, "h", 10),
            Err(SqsError::MessageNotInflight(_))
        ));
        let wrong = Receipt {
            receive_count: 9,
            ..receipt
        };
        assert!(matches!(
            q.change_visibility(20_000, &wrong, "h", 10),
            Err(SqsError::InvalidParameterValue(_))
        ));
    }
}
