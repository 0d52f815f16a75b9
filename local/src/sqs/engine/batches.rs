//! The batch operations: SendMessageBatch, DeleteMessageBatch and
//! ChangeMessageVisibilityBatch, each entry through the single-message path, failures by id.

use std::sync::Arc;

use super::{SqsEngine, failure, lock};
use crate::sqs::attributes::MAX_MESSAGE_SIZE;
use crate::sqs::error::SqsError;
use crate::sqs::journal::Record;
use crate::sqs::model::{BatchFailure, BatchOutcome, OutgoingMessage, SendReceipt};
use crate::sqs::queue::StoredMessage;
use crate::sqs::validate::{validate_batch_ids, validate_message};

impl SqsEngine {
    /// SendMessageBatch: entries are `(id, message)`; returns the successes by id and the
    /// failed entries. Batch-level problems (count, ids, total size) fail the whole request.
    pub fn send_message_batch(
        &self,
        queue: &str,
        entries: Vec<(String, OutgoingMessage)>,
    ) -> Result<BatchOutcome<(String, SendReceipt)>, SqsError> {
        let handle = self.lookup(queue)?;
        validate_batch_ids(
            "SendMessageBatchRequestEntry",
            entries.iter().map(|(id, _)| id.as_str()),
        )?;
        let total: usize = entries
            .iter()
            .map(|(_, m)| {
                m.body.len()
                    + m.message_attributes
                        .iter()
                        .map(|(k, v)| k.len() + v.size())
                        .sum::<usize>()
            })
            .sum();
        if total > MAX_MESSAGE_SIZE as usize {
            return Err(SqsError::BatchRequestTooLong(format!(
                "Batch requests cannot be longer than {MAX_MESSAGE_SIZE} bytes. You have sent {total} bytes."
            )));
        }
        let result = self.op(|| {
            let now = self.now_ms();
            let mut state = lock(&handle.state);
            let mut records = Vec::new();
            let mut accepted = Vec::new();
            let mut failed = Vec::new();
            for (id, message) in &entries {
                if let Err(err) = validate_message(message, state.config.maximum_message_size) {
                    failed.push(BatchFailure {
                        id: id.clone(),
                        code: err.batch_entry_code().to_string(),
                        message: err.aws_message(),
                        sender_fault: true,
                    });
                    continue;
                }
                let delay = message.delay_seconds.unwrap_or(state.config.delay_seconds);
                let data = Arc::new(self.build_message(message, now));
                let seq = self.next_seq();
                let visible_at = now + i64::from(delay) * 1000;
                records.push(Record::Send {
                    queue: handle.name.clone(),
                    seq,
                    visible_at,
                    now,
                    data: data.clone(),
                });
                accepted.push((id.clone(), seq, visible_at, data));
            }
            self.journal(&records)?;
            let mut ok = Vec::with_capacity(accepted.len());
            for (id, seq, visible_at, data) in accepted {
                ok.push((id, Self::receipt_of(&data)));
                state.insert(seq, StoredMessage::new(data, now, visible_at));
            }
            Ok(BatchOutcome {
                successful: ok,
                failed,
            })
        })?;
        if !result.successful.is_empty() {
            handle.notify.notify_waiters();
        }
        Ok(result)
    }

    /// DeleteMessageBatch: entries are `(id, receipt handle)`.
    pub fn delete_message_batch(
        &self,
        queue: &str,
        entries: Vec<(String, String)>,
    ) -> Result<BatchOutcome<String>, SqsError> {
        let handle = self.lookup(queue)?;
        validate_batch_ids(
            "DeleteMessageBatchRequestEntry",
            entries.iter().map(|(id, _)| id.as_str()),
        )?;
        self.op(|| {
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            for (id, receipt_handle) in entries {
                match Self::decode_receipt(&handle, &receipt_handle)
                    .and_then(|r| self.delete_one(&handle, &r))
                {
                    Ok(_) => ok.push(id),
                    Err(err) => failed.push(failure(id, &err)),
                }
            }
            Ok(BatchOutcome {
                successful: ok,
                failed,
            })
        })
    }

    /// ChangeMessageVisibilityBatch: entries are `(id, receipt handle, seconds)`.
    pub fn change_message_visibility_batch(
        &self,
        queue: &str,
        entries: Vec<(String, String, u32)>,
    ) -> Result<BatchOutcome<String>, SqsError> {
        let handle = self.lookup(queue)?;
        validate_batch_ids(
            "ChangeMessageVisibilityBatchRequestEntry",
            entries.iter().map(|(id, _, _)| id.as_str()),
        )?;
        let result = self.op(|| {
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            for (id, receipt_handle, seconds) in entries {
                match self.change_one(&handle, &receipt_handle, seconds) {
                    Ok(()) => ok.push(id),
                    Err(err) => failed.push(failure(id, &err)),
                }
            }
            Ok(BatchOutcome {
                successful: ok,
                failed,
            })
        })?;
        handle.notify.notify_waiters();
        Ok(result)
    }
}
