//! The batch operations: SendMessageBatch, DeleteMessageBatch and
//! ChangeMessageVisibilityBatch, each entry through the single-message path, failures by id.

use super::messages::Prepared;
use super::{SqsEngine, failure, lock};
use crate::sqs::attributes::MAX_MESSAGE_SIZE;
use crate::sqs::error::SqsError;
use crate::sqs::journal::Record;
use crate::sqs::model::{BatchFailure, BatchOutcome, OutgoingMessage, SendReceipt};
use crate::sqs::validate::validate_batch_ids;

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
            let mut duplicates = Vec::new();
            let mut failed = Vec::new();
            for (id, message) in &entries {
                match self.prepare_send(&mut state, message, now) {
                    Err(err) => failed.push(BatchFailure {
                        id: id.clone(),
                        code: err.batch_entry_code().to_string(),
                        message: err.aws_message(),
                        sender_fault: true,
                    }),
                    Ok(Prepared::Duplicate(receipt)) => duplicates.push((id.clone(), receipt)),
                    Ok(Prepared::New {
                        seq,
                        visible_at,
                        data,
                    }) => {
                        records.push(Record::Send {
                            queue: handle.name.clone(),
                            seq,
                            visible_at,
                            now,
                            data: data.clone(),
                        });
                        accepted.push((id.clone(), seq, visible_at, data));
                    }
                }
            }
            if let Err(err) = self.journal(&records) {
                for (_, _, _, data) in &accepted {
                    Self::unsend(&mut state, data);
                }
                return Err(err);
            }
            let mut ok = Vec::with_capacity(accepted.len() + duplicates.len());
            for (id, seq, visible_at, data) in accepted {
                ok.push((id, Self::store_sent(&mut state, seq, visible_at, data, now)));
            }
            ok.extend(duplicates);
            // Successes in the order of the request's entries.
            ok.sort_by_key(|(id, _)| entries.iter().position(|(e, _)| e == id));
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
