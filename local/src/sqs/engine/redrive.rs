//! Redrive out of dead-letter queues: message move tasks (start, list, cancel) and the
//! move itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{QueueHandle, SqsEngine, lock};
use crate::sqs::error::SqsError;
use crate::sqs::journal::Record;
use crate::sqs::model::{MessageState, MoveTask, MoveTaskStatus};
use crate::sqs::queue::{MessageData, StoredMessage};

impl SqsEngine {
    /// StartMessageMoveTask: moves the messages visible in dead-letter queue `source_arn` to
    /// `destination_arn`, or each back to the queue it was dead-lettered from. Moved messages
    /// are new messages (new id, send time and receive count) with the same body and
    /// attributes, as in SQS. The move happens at once; returns the task handle.
    pub fn start_message_move_task(
        &self,
        source_arn: &str,
        destination_arn: Option<&str>,
        max_per_second: Option<u32>,
    ) -> Result<String, SqsError> {
        if let Some(rate) = max_per_second
            && !(1..=500).contains(&rate)
        {
            return Err(SqsError::invalid_value(
                "MaxNumberOfMessagesPerSecond",
                rate,
                "Must be between 1 and 500.",
            ));
        }
        let source = self.lookup_arn(source_arn).ok_or_else(|| {
            SqsError::ResourceNotFound(
                "The resource that you specified for the SourceArn parameter doesn't exist."
                    .to_string(),
            )
        })?;
        if self.dead_letter_sources(&source.arn).is_empty() {
            return Err(SqsError::invalid_value(
                "SourceArn",
                source_arn,
                "Source queue must be configured as a Dead Letter Queue.",
            ));
        }
        let destination = match destination_arn {
            Some(arn) => Some(self.lookup_arn(arn).ok_or_else(|| {
                SqsError::ResourceNotFound(
                    "The resource that you specified for the DestinationArn parameter doesn't exist.".to_string(),
                )
            })?),
            None => None,
        };
        if let Some(dest) = &destination {
            let fifo = |h: &QueueHandle| lock(&h.state).config.is_fifo();
            if fifo(dest) != fifo(&source) {
                // As for a dead-letter queue, messages move only between queues of one type:
                // a FIFO message's group and deduplication id mean nothing elsewhere.
                return Err(SqsError::invalid_value(
                    "DestinationArn",
                    &dest.arn,
                    "The destination queue must be of the same type (standard or FIFO) as the source queue.",
                ));
            }
        }
        let started = self.now_ms();
        let task_handle = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"taskId": crate::ids::uuid_string(), "sourceArn": source.arn})
                .to_string(),
        );

        // Which messages go where, decided before any lock on the destinations is taken.
        let candidates: Vec<(u64, Option<String>)> = {
            let now = self.now_ms();
            let mut state = lock(&source.state);
            state.refresh(now);
            state
                .visible_seqs(usize::MAX)
                .into_iter()
                .filter_map(|seq| {
                    state
                        .get(seq)
                        .map(|m| (seq, m.data.dead_letter_source_arn.clone()))
                })
                .collect()
        };
        let to_move = candidates.len() as u64;
        let mut groups: BTreeMap<String, (Arc<QueueHandle>, Vec<u64>)> = BTreeMap::new();
        let mut unroutable = 0u64;
        for (seq, origin) in candidates {
            let target = match (&destination, origin) {
                (Some(dest), _) => Some(dest.clone()),
                (None, Some(origin)) => self.lookup_arn(&origin),
                (None, None) => None,
            };
            match target {
                Some(target) => groups
                    .entry(target.name.clone())
                    .or_insert_with(|| (target, Vec::new()))
                    .1
                    .push(seq),
                None => unroutable += 1,
            }
        }
        let mut moved = 0u64;
        for (_, (target, seqs)) in groups {
            moved += self.op(|| self.move_messages(&source, &target, &seqs))?;
        }
        let failure_reason = (unroutable > 0).then(|| {
            format!("{unroutable} messages have no existing source queue to return to; they stay in the dead-letter queue")
        });
        let task = MoveTask {
            task_handle: task_handle.clone(),
            status: if failure_reason.is_some() {
                MoveTaskStatus::Failed
            } else {
                MoveTaskStatus::Completed
            },
            source_arn: source.arn.clone(),
            destination_arn: destination.as_ref().map(|d| d.arn.clone()),
            max_number_of_messages_per_second: max_per_second,
            moved,
            to_move,
            failure_reason,
            started_ms: started,
        };
        self.op(|| {
            self.journal(&[Record::Task { task: task.clone() }])?;
            lock(&self.inner.tasks).push(task);
            Ok(())
        })?;
        tracing::info!(source = %source.name, moved, to_move, "message move task done");
        Ok(task_handle)
    }

    /// Moves the messages `message_ids` of dead-letter queue `source` (name or URL) back to
    /// `destination`, as a move task moves them (new id, send time and receive count, same
    /// body and attributes): the redrive of chosen messages the dashboard and
    /// `nightshift dlq redrive --message-id` offer. SQS's own API moves whole queues only;
    /// this is the emulator's tool, not an SQS operation. Only visible messages move (one
    /// received since it was listed stays); returns how many moved.
    pub fn move_selected(
        &self,
        source: &str,
        destination: &str,
        message_ids: &[String],
    ) -> Result<u64, SqsError> {
        let source = self.lookup(source)?;
        let target = self.lookup(destination)?;
        let seqs: Vec<u64> = {
            let mut state = lock(&source.state);
            state.refresh(self.now_ms());
            state
                .visible_seqs(usize::MAX)
                .into_iter()
                .filter(|seq| {
                    state
                        .get(*seq)
                        .is_some_and(|m| message_ids.contains(&m.data.id))
                })
                .collect()
        };
        let moved = self.op(|| self.move_messages(&source, &target, &seqs))?;
        tracing::info!(source = %source.name, destination = %target.name, moved, asked = message_ids.len(), "selected messages redriven");
        Ok(moved)
    }

    fn move_messages(
        &self,
        source: &QueueHandle,
        target: &QueueHandle,
        seqs: &[u64],
    ) -> Result<u64, SqsError> {
        let now = self.now_ms();
        let mut moved = Vec::new();
        {
            let mut state = lock(&source.state);
            state.refresh(now);
            let mut records = Vec::new();
            for &seq in seqs {
                // Skips what was received or deleted since the candidates were listed.
                let Some(message) = state.get(seq).filter(|m| m.state == MessageState::Visible)
                else {
                    continue;
                };
                let new_seq = self.next_seq();
                let data = Arc::new(MessageData {
                    id: crate::ids::uuid_string(),
                    sent_ms: now,
                    dead_letter_source_arn: None,
                    ..(*message.data).clone()
                });
                records.push(Record::Delete {
                    queue: source.name.clone(),
                    seq,
                });
                records.push(Record::Send {
                    queue: target.name.clone(),
                    seq: new_seq,
                    visible_at: now,
                    now,
                    data: data.clone(),
                });
                moved.push((seq, new_seq, data));
            }
            self.journal(&records)?;
            for (seq, _, _) in &moved {
                state.remove(*seq);
            }
        }
        let count = moved.len() as u64;
        {
            let mut state = lock(&target.state);
            for (_, new_seq, data) in moved {
                // As the journal's replay of the Send record does.
                state.note_dedup(new_seq, &data);
                state.insert(new_seq, StoredMessage::new(data, now, now));
            }
        }
        target.notify.notify_waiters();
        Ok(count)
    }

    /// ListMessageMoveTasks: the most recent tasks of `source_arn`, newest first.
    pub fn list_message_move_tasks(
        &self,
        source_arn: &str,
        max_results: usize,
    ) -> Result<Vec<MoveTask>, SqsError> {
        let source = self.lookup_arn(source_arn).ok_or_else(|| {
            SqsError::ResourceNotFound(
                "The resource that you specified for the SourceArn parameter doesn't exist."
                    .to_string(),
            )
        })?;
        Ok(lock(&self.inner.tasks)
            .iter()
            .rev()
            .filter(|t| t.source_arn == source.arn)
            .take(max_results)
            .cloned()
            .collect())
    }

    /// CancelMessageMoveTask: tasks finish at once here, so there is never one to cancel.
    pub fn cancel_message_move_task(&self, task_handle: &str) -> Result<u64, SqsError> {
        let known = lock(&self.inner.tasks)
            .iter()
            .any(|t| t.task_handle == task_handle);
        Err(SqsError::ResourceNotFound(if known {
            "The task has already completed and cannot be cancelled.".to_string()
        } else {
            "The task handle does not exist.".to_string()
        }))
    }
}
