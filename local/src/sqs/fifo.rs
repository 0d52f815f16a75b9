//! What FIFO queues add to a queue's state: the message groups (which group may be received
//! next, in what order) and the deduplication table, both kept up to date by
//! [`super::queue::QueueState`].
//!
//! The rules come from the SQS developer guide's FIFO pages,
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-key-terms.html>
//! and
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html>:
//! messages of one group are received in the order they were sent and never while another
//! message of the group is in flight; a receive returns as many messages of one group as it
//! can before it takes another group; a deduplication id seen within 5 minutes of its first
//! send is accepted but not enqueued again, even after that message was deleted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The deduplication interval: 5 minutes (SendMessage reference, MessageDeduplicationId).
pub const DEDUPLICATION_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// How long a ReceiveRequestAttemptId can be retried: 5 minutes (ReceiveMessage reference).
pub const RECEIVE_ATTEMPT_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// The SequenceNumber SQS gives the message stored under `seq`: a decimal string that grows
/// with every send (AWS's are 20 digits; so are these).
pub fn sequence_number(seq: u64) -> String {
    (10_000_000_000_000_000_000u128 + u128::from(seq)).to_string()
}

/// The deduplication id of a message sent without one to a queue with
/// ContentBasedDeduplication: the SHA-256 of the body, not of its attributes.
pub fn content_deduplication_id(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// The message groups of a FIFO queue: the visible messages of each group in send order, how
/// many of each group are in flight, and, for the groups a receive may take from (visible
/// messages, none in flight), their oldest message, so the next group is found in O(log n).
#[derive(Debug, Default)]
pub(crate) struct Groups {
    visible: HashMap<Arc<str>, BTreeSet<u64>>,
    in_flight: HashMap<Arc<str>, usize>,
    /// (oldest visible seq, group) of every group that is not blocked.
    heads: BTreeSet<(u64, Arc<str>)>,
}

impl Groups {
    /// A message of `group` became visible.
    pub fn visible(&mut self, group: &Arc<str>, seq: u64) {
        self.unhead(group);
        self.visible.entry(group.clone()).or_default().insert(seq);
        self.rehead(group);
    }

    /// A visible message of `group` was taken or removed.
    pub fn hidden(&mut self, group: &Arc<str>, seq: u64) {
        self.unhead(group);
        if let Some(seqs) = self.visible.get_mut(group) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.visible.remove(group);
            }
        }
        self.rehead(group);
    }

    /// A message of `group` went in flight.
    pub fn hold(&mut self, group: &Arc<str>) {
        self.unhead(group);
        *self.in_flight.entry(group.clone()).or_default() += 1;
    }

    /// An in-flight message of `group` became visible again or was removed.
    pub fn release(&mut self, group: &Arc<str>) {
        if let Some(count) = self.in_flight.get_mut(group) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(group);
            }
        }
        self.rehead(group);
    }

    /// The group a receive should take from next: the unblocked group whose oldest visible
    /// message is the oldest.
    pub fn next(&self) -> Option<Arc<str>> {
        self.heads.first().map(|(_, group)| group.clone())
    }

    /// The oldest visible message of `group`.
    pub fn oldest_visible(&self, group: &str) -> Option<u64> {
        self.visible.get(group).and_then(|s| s.first().copied())
    }

    /// How many visible messages a receive could take now: those of unblocked groups.
    pub fn receivable(&self) -> usize {
        self.heads
            .iter()
            .map(|(_, g)| self.visible.get(g).map_or(0, BTreeSet::len))
            .sum()
    }

    /// Forgets everything (purge).
    pub fn clear(&mut self) {
        *self = Groups::default();
    }

    fn unhead(&mut self, group: &Arc<str>) {
        if let Some(first) = self.visible.get(group).and_then(|s| s.first()) {
            self.heads.remove(&(*first, group.clone()));
        }
    }

    fn rehead(&mut self, group: &Arc<str>) {
        if self.in_flight.contains_key(group) {
            return;
        }
        if let Some(first) = self.visible.get(group).and_then(|s| s.first()) {
            self.heads.insert((*first, group.clone()));
        }
    }
}

/// A deduplication id already used, and the message it enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Deduplicated {
    /// The key it is known by: the id, prefixed by the group under `messageGroup` scope.
    pub key: String,
    /// The message it enqueued (what a duplicate's send answers).
    pub message_id: String,
    /// Where that message was stored (its sequence number derives from it).
    pub seq: u64,
    /// When the interval ends (epoch ms).
    pub expires_ms: i64,
}

/// The deduplication ids of a FIFO queue seen within the last 5 minutes.
#[derive(Debug, Default)]
pub(crate) struct DedupTable {
    by_key: HashMap<String, Deduplicated>,
    by_expiry: BTreeSet<(i64, String)>,
}

impl DedupTable {
    /// Drops the entries whose interval has ended by `now`.
    pub fn expire(&mut self, now: i64) {
        while let Some((at, key)) = self.by_expiry.first().cloned() {
            if at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.by_key.remove(&key);
        }
    }

    /// The entry of `key`, if its interval has not ended (the caller expires first).
    pub fn get(&self, key: &str) -> Option<&Deduplicated> {
        self.by_key.get(key)
    }

    /// Records `entry` (a later one for the same key replaces it).
    pub fn insert(&mut self, entry: Deduplicated) {
        if let Some(old) = self.by_key.remove(&entry.key) {
            self.by_expiry.remove(&(old.expires_ms, old.key));
        }
        self.by_expiry.insert((entry.expires_ms, entry.key.clone()));
        self.by_key.insert(entry.key.clone(), entry);
    }

    /// Forgets `key` (a send whose journal write failed).
    pub fn remove(&mut self, key: &str) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_expiry.remove(&(old.expires_ms, old.key));
        }
    }

    /// Every live entry, for compaction.
    pub fn entries(&self) -> impl Iterator<Item = &Deduplicated> {
        self.by_key.values()
    }
}

/// The key a deduplication id is known by under the queue's scope.
pub fn dedup_key(scope_by_group: bool, group: &str, dedup_id: &str) -> String {
    if scope_by_group {
        // Group ids cannot hold a newline (alphanumerics and punctuation only).
        format!("{group}\n{dedup_id}")
    } else {
        dedup_id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn the_oldest_unblocked_group_comes_next() {
        let mut groups = Groups::default();
        let (a, b) = (g("a"), g("b"));
        groups.visible(&a, 1);
        groups.visible(&b, 2);
        groups.visible(&a, 3);
        assert_eq!(groups.next(), Some(a.clone()));
        assert_eq!(groups.oldest_visible("a"), Some(1));
        // a's first message goes in flight: a is blocked, b comes next.
        groups.hidden(&a, 1);
        groups.hold(&a);
        assert_eq!(groups.next(), Some(b.clone()));
        groups.hidden(&b, 2);
        groups.hold(&b);
        assert_eq!(groups.next(), None);
        assert_eq!(groups.oldest_visible("a"), Some(3));
        // a's message comes back (visibility timeout): a again, in send order.
        groups.visible(&a, 1);
        groups.release(&a);
        assert_eq!(groups.next(), Some(a.clone()));
        assert_eq!(groups.oldest_visible("a"), Some(1));
        groups.clear();
        assert_eq!(groups.next(), None);
    }

    #[test]
    fn dedup_entries_expire_after_their_interval() {
        let mut table = DedupTable::default();
        table.insert(Deduplicated {
            key: "k".into(),
            message_id: "m".into(),
            seq: 1,
            expires_ms: 1_000,
        });
        table.expire(999);
        assert_eq!(table.get("k").map(|d| d.seq), Some(1));
        table.expire(1_000);
        assert!(table.get("k").is_none());
        assert_eq!(dedup_key(true, "g", "d"), "g\nd");
        assert_eq!(dedup_key(false, "g", "d"), "d");
        assert_eq!(sequence_number(1).len(), 20);
        assert!(sequence_number(2) > sequence_number(1));
        assert_eq!(
            content_deduplication_id("hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
