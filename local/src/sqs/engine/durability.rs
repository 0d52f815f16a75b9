//! Durability: compaction of the journal into a snapshot of the current state, sync on
//! shutdown, and the replay of journaled records into queues on start.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::{SqsEngine, dead_lettered, lock, read, write};
use crate::sqs::attributes::QueueConfig;
use crate::sqs::error::SqsError;
use crate::sqs::journal::Record;
use crate::sqs::queue::{QueueState, StoredMessage};

impl SqsEngine {
    /// Rewrites the journal as the current state. Blocks every other operation meanwhile.
    pub fn compact(&self) -> Result<(), SqsError> {
        let Some(journal) = &self.inner.journal else {
            return Ok(());
        };
        let _gate = write(&self.inner.gate);
        let handles: Vec<_> = read(&self.inner.queues).values().cloned().collect();
        let mut records = Vec::new();
        for handle in handles {
            let state = lock(&handle.state);
            records.push(Record::CreateQueue {
                name: handle.name.clone(),
                id: handle.id,
                attributes: state.config.to_map(),
                tags: state.tags.clone(),
                created_ms: state.created_ms,
            });
            if state.modified_ms != state.created_ms {
                records.push(Record::SetAttributes {
                    name: handle.name.clone(),
                    attributes: state.config.to_map(),
                    modified_ms: state.modified_ms,
                });
            }
            for (seq, message) in state.all(usize::MAX) {
                records.push(Record::Message {
                    queue: handle.name.clone(),
                    seq,
                    message: message.clone(),
                });
            }
            // Deduplication outlives the message (deleted or not, its id is a duplicate for
            // 5 minutes), so it is written on its own.
            for entry in state.dedup.entries() {
                records.push(Record::Dedup {
                    queue: handle.name.clone(),
                    entry: entry.clone(),
                });
            }
        }
        for task in lock(&self.inner.tasks).iter() {
            records.push(Record::Task { task: task.clone() });
        }
        Ok(lock(journal).rewrite(&records)?)
    }

    /// Syncs the journal to disk; call on orderly shutdown.
    pub fn shutdown(&self) -> Result<(), SqsError> {
        match &self.inner.journal {
            Some(journal) => Ok(lock(journal).sync()?),
            None => Ok(()),
        }
    }

    /// The journal's size in bytes, `None` without a journal.
    pub fn journal_bytes(&self) -> Option<u64> {
        self.inner.journal.as_ref().map(|j| lock(j).bytes())
    }

    pub(super) fn replay(&self, record: Record) {
        let get = |name: &str| read(&self.inner.queues).get(name).cloned();
        let bump = |seq: u64| {
            self.inner.next_seq.fetch_max(seq + 1, Ordering::Relaxed);
        };
        match record {
            Record::CreateQueue {
                name,
                id,
                attributes,
                tags,
                created_ms,
            } => {
                bump(id);
                let config = replayed_config(&name, &attributes, true);
                let mut state = QueueState::new(config, created_ms);
                state.tags = tags;
                let handle = self.handle(&name, id, state);
                write(&self.inner.queues).insert(name, handle);
            }
            Record::SetAttributes {
                name,
                attributes,
                modified_ms,
            } => {
                if let Some(h) = get(&name) {
                    let mut state = lock(&h.state);
                    // The journal holds the whole configuration, FifoQueue included, as
                    // creation would set it.
                    state.config = replayed_config(&name, &attributes, true);
                    state.modified_ms = modified_ms;
                }
            }
            Record::SetTags { name, tags } => {
                if let Some(h) = get(&name) {
                    lock(&h.state).tags = tags;
                }
            }
            Record::DeleteQueue { name } => {
                write(&self.inner.queues).remove(&name);
            }
            Record::Purge { name, at_ms } => {
                if let Some(h) = get(&name) {
                    let mut state = lock(&h.state);
                    state.purge();
                    state.last_purge_ms = Some(at_ms);
                }
            }
            Record::Send {
                queue,
                seq,
                visible_at,
                now,
                data,
            } => {
                bump(seq);
                if let Some(h) = get(&queue) {
                    let mut state = lock(&h.state);
                    state.note_dedup(seq, &data);
                    state.insert(seq, StoredMessage::new(data, now, visible_at));
                }
            }
            Record::Receive {
                queue,
                seq,
                at,
                visible_at,
            } => {
                if let Some(h) = get(&queue) {
                    lock(&h.state).replay_receive(seq, at, visible_at);
                }
            }
            Record::Visibility {
                queue,
                seq,
                visible_at,
                now,
            } => {
                if let Some(h) = get(&queue) {
                    lock(&h.state).set_visible_at(seq, visible_at, now);
                }
            }
            Record::Delete { queue, seq } => {
                if let Some(h) = get(&queue) {
                    lock(&h.state).remove(seq);
                }
            }
            Record::MoveToDlq { from, to, seq, at } => {
                let message = get(&from).and_then(|h| lock(&h.state).remove(seq));
                if let (Some(message), Some(target)) = (message, get(&to)) {
                    let source_arn = self.arn_for(&from);
                    lock(&target.state).insert(seq, dead_lettered(message, &source_arn, at));
                }
            }
            Record::Message {
                queue,
                seq,
                message,
            } => {
                bump(seq);
                if let Some(h) = get(&queue) {
                    lock(&h.state).insert(seq, message);
                }
            }
            Record::Dedup { queue, entry } => {
                if let Some(h) = get(&queue) {
                    lock(&h.state).dedup.insert(entry);
                }
            }
            Record::Task { task } => {
                let mut tasks = lock(&self.inner.tasks);
                tasks.retain(|t| t.task_handle != task.task_handle);
                tasks.push(task);
            }
        }
    }
}

/// The configuration journaled attributes describe. One that no longer passes validation (a
/// journal written before a check existed, such as RedriveAllowPolicy's) is skipped with a
/// warning rather than resetting every other attribute of the queue.
fn replayed_config(
    queue: &str,
    attributes: &BTreeMap<String, String>,
    creating: bool,
) -> QueueConfig {
    let mut config = QueueConfig::default();
    if config.apply(attributes, creating).is_ok() {
        return config;
    }
    for (name, value) in attributes {
        let one = BTreeMap::from([(name.clone(), value.clone())]);
        if let Err(err) = config.apply(&one, creating) {
            tracing::warn!(queue, attribute = %name, error = %err, "journaled queue attribute no longer valid; skipped");
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::sqs::model::{OutgoingMessage, ReceiveOptions};

    use super::super::SqsConfig;
    use super::*;
    use crate::sqs::journal::JournalConfig;

    /// A compaction racing a receive that dead-letters a message must not write a snapshot
    /// where the message is in neither queue: the hook starts one at the worst instant, just
    /// after the move is journaled, and a restart from the journal must find the message.
    #[tokio::test]
    async fn compaction_during_a_dead_letter_move_keeps_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, _manual) = crate::clock::manual("2026-03-01T08:00:00Z".parse().unwrap());
        let config = SqsConfig {
            journal: Some(JournalConfig::new(dir.path())),
            ..SqsConfig::default()
        };
        let engine = SqsEngine::new(config.clone(), shared.clone()).unwrap();
        let none = BTreeMap::new();
        engine.create_queue("dlq", &none, &none).unwrap();
        let policy = BTreeMap::from([(
            "RedrivePolicy".to_string(),
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":1}"#
                .to_string(),
        )]);
        engine.create_queue("source", &policy, &none).unwrap();
        engine
            .send_message("source", OutgoingMessage::new("poison"))
            .unwrap();
        let options = ReceiveOptions::default().visibility_timeout(0);
        assert_eq!(
            engine
                .receive_message("source", &options)
                .await
                .unwrap()
                .len(),
            1
        );

        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let compaction = Arc::new(Mutex::new(None));
        let slot = compaction.clone();
        *lock(&engine.inner.dead_letter_hook) = Some(Box::new(move |engine: &SqsEngine| {
            let engine = engine.clone();
            *lock(&slot) = Some(std::thread::spawn(move || {
                let result = engine.compact();
                let _ = done_tx.send(());
                result
            }));
            // Gives the compaction every chance to run now; if the move is (rightly) still
            // behind the gate, it waits for the receive to finish instead.
            let _ = done_rx.recv_timeout(Duration::from_millis(300));
        }));
        assert!(
            engine
                .receive_message("source", &options)
                .await
                .unwrap()
                .is_empty()
        );
        let compaction = lock(&compaction).take().expect("the hook ran");
        compaction.join().unwrap().unwrap();
        assert_eq!(engine.queue_stats("dlq").unwrap().visible, 1);
        drop(engine);

        let engine = SqsEngine::new(config, shared).unwrap();
        let dlq = engine.peek_messages("dlq", 10).unwrap();
        assert_eq!(
            dlq.len(),
            1,
            "the dead-lettered message survives the restart"
        );
        assert_eq!(dlq[0].body, "poison");
        assert!(engine.peek_messages("source", 10).unwrap().is_empty());
    }
}
