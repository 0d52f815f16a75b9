//! One message at a time: send, receive (with long polling and dead-lettering on the
//! way), delete and change visibility, and how a received message is rendered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nightshift_contract::record::TRACE_HEADER_ATTRIBUTE;

use super::{QueueHandle, SqsEngine, dead_lettered, lock, to_time};
use crate::sqs::attributes::{MAX_VISIBILITY_TIMEOUT, MAX_WAIT_SECONDS};
use crate::sqs::error::SqsError;
use crate::sqs::fifo::{content_deduplication_id, sequence_number};
use crate::sqs::journal::Record;
use crate::sqs::md5::{md5_hex, md5_of_attributes};
use crate::sqs::model::{
    MessageState, OutgoingMessage, ReceiveOptions, ReceivedMessage, SendReceipt,
};
use crate::sqs::queue::{DeleteOutcome, MessageData, QueueState, Receipt, StoredMessage, Taken};
use crate::sqs::validate::validate_message;

fn wants_message_attribute(names: &[String], attribute: &str) -> bool {
    names.iter().any(|n| {
        n == "All"
            || n == ".*"
            || n == attribute
            || (n.ends_with(".*") && attribute.starts_with(&n[..n.len() - 1]))
    })
}

/// A send checked and numbered, before it is journaled and stored.
pub(super) enum Prepared {
    /// A message to journal and store.
    New {
        seq: u64,
        visible_at: i64,
        data: Arc<MessageData>,
    },
    /// A FIFO duplicate: answered, not stored.
    Duplicate(SendReceipt),
}

/// Outcome of one non-waiting receive attempt.
struct Attempt {
    messages: Vec<ReceivedMessage>,
    next_visible_at: Option<i64>,
}

impl SqsEngine {
    pub(super) fn build_message(&self, message: &OutgoingMessage, now: i64) -> MessageData {
        MessageData {
            id: crate::ids::uuid_string(),
            body: message.body.clone(),
            md5_body: md5_hex(message.body.as_bytes()),
            md5_attributes: md5_of_attributes(&message.message_attributes),
            md5_system: md5_of_attributes(&message.message_system_attributes),
            attributes: message.message_attributes.clone(),
            system_attributes: message.message_system_attributes.clone(),
            group_id: message.message_group_id.clone(),
            dedup_id: None,
            sent_ms: now,
            sender_id: self.inner.account_id.clone(),
            dead_letter_source_arn: None,
        }
    }

    pub(super) fn receipt_of(data: &MessageData, seq: u64) -> SendReceipt {
        SendReceipt {
            message_id: data.id.clone(),
            md5_of_message_body: data.md5_body.clone(),
            md5_of_message_attributes: data.md5_attributes.clone(),
            md5_of_message_system_attributes: data.md5_system.clone(),
            sequence_number: data.dedup_id.as_ref().map(|_| sequence_number(seq)),
        }
    }

    /// Validates a send to the locked queue `state` and, unless it is a FIFO duplicate,
    /// gives it its sequence and records its deduplication id. The caller journals the new
    /// messages, then stores them with [`Self::store_sent`] (or calls [`Self::unsend`] on each
    /// when the journal write fails).
    pub(super) fn prepare_send(
        &self,
        state: &mut QueueState,
        message: &OutgoingMessage,
        now: i64,
    ) -> Result<Prepared, SqsError> {
        validate_message(message, &state.config)?;
        let delay = message.delay_seconds.unwrap_or(state.config.delay_seconds);
        let mut data = self.build_message(message, now);
        if let Some(fifo) = &state.config.fifo {
            let id = message
                .message_deduplication_id
                .clone()
                .or_else(|| {
                    fifo.content_based_deduplication
                        .then(|| content_deduplication_id(&message.body))
                })
                .unwrap_or_default();
            data.dedup_id = Some(id);
            state.dedup.expire(now);
            let key = state.dedup_key_of(&data).unwrap_or_default();
            if let Some(original) = state.dedup.get(&key) {
                // Accepted and not enqueued again: the answer names the original message,
                // with this request's digests (clients check them against what they sent).
                let mut receipt = Self::receipt_of(&data, original.seq);
                receipt.message_id = original.message_id.clone();
                tracing::debug!(message_id = %original.message_id, "duplicate send dropped");
                return Ok(Prepared::Duplicate(receipt));
            }
        }
        let seq = self.next_seq();
        state.note_dedup(seq, &data);
        Ok(Prepared::New {
            seq,
            visible_at: now + i64::from(delay) * 1000,
            data: Arc::new(data),
        })
    }

    /// Stores a prepared new message in the locked queue.
    pub(super) fn store_sent(
        state: &mut QueueState,
        seq: u64,
        visible_at: i64,
        data: Arc<MessageData>,
        now: i64,
    ) -> SendReceipt {
        let receipt = Self::receipt_of(&data, seq);
        state.insert(seq, StoredMessage::new(data, now, visible_at));
        receipt
    }

    /// Forgets the deduplication id of a prepared message that will not be stored.
    pub(super) fn unsend(state: &mut QueueState, data: &MessageData) {
        if let Some(key) = state.dedup_key_of(data) {
            state.dedup.remove(&key);
        }
    }

    /// SendMessage. On a FIFO queue, a send whose deduplication id was used in the last 5
    /// minutes succeeds without enqueuing anything.
    pub fn send_message(
        &self,
        queue: &str,
        message: OutgoingMessage,
    ) -> Result<SendReceipt, SqsError> {
        let handle = self.lookup(queue)?;
        let (receipt, fresh) = self.op(|| {
            let now = self.now_ms();
            let mut state = lock(&handle.state);
            let (seq, visible_at, data) = match self.prepare_send(&mut state, &message, now)? {
                Prepared::Duplicate(receipt) => return Ok((receipt, false)),
                Prepared::New {
                    seq,
                    visible_at,
                    data,
                } => (seq, visible_at, data),
            };
            let record = Record::Send {
                queue: handle.name.clone(),
                seq,
                visible_at,
                now,
                data: data.clone(),
            };
            if let Err(err) = self.journal(&[record]) {
                Self::unsend(&mut state, &data);
                return Err(err);
            }
            Ok((
                Self::store_sent(&mut state, seq, visible_at, data, now),
                true,
            ))
        })?;
        if fresh {
            handle.notify.notify_waiters();
        }
        Ok(receipt)
    }

    /// ReceiveMessage: returns at once when messages are visible, else long-polls up to the
    /// wait (the request's, or the queue's ReceiveMessageWaitTimeSeconds) and returns as soon
    /// as one becomes available.
    ///
    /// The wait is measured on the engine's clock, and also capped by the same amount of real
    /// time so a client is never held longer than it asked, even under a stopped manual clock.
    pub async fn receive_message(
        &self,
        queue: &str,
        options: &ReceiveOptions,
    ) -> Result<Vec<ReceivedMessage>, SqsError> {
        if !(1..=10).contains(&options.max_messages) {
            return Err(SqsError::invalid_value(
                "MaxNumberOfMessages",
                options.max_messages,
                "Must be between 1 and 10, if provided.",
            ));
        }
        if let Some(v) = options.visibility_timeout
            && v > MAX_VISIBILITY_TIMEOUT
        {
            return Err(SqsError::invalid_value(
                "VisibilityTimeout",
                v,
                "Must be between 0 and 43200, if provided.",
            ));
        }
        if let Some(wait) = options.wait
            && wait > Duration::from_secs(u64::from(MAX_WAIT_SECONDS))
        {
            return Err(SqsError::invalid_value(
                "WaitTimeSeconds",
                wait.as_secs(),
                "Must be >= 0 and <= 20, if provided.",
            ));
        }
        if let Some(id) = &options.receive_request_attempt_id {
            // "The maximum length of ReceiveRequestAttemptId is 128 characters ...
            // alphanumeric characters and punctuation" (ReceiveMessage reference).
            let valid =
                !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic());
            if !valid {
                return Err(SqsError::invalid_value(
                    "ReceiveRequestAttemptId",
                    id,
                    "ReceiveRequestAttemptId can only include alphanumeric and punctuation characters. 1 to 128 in length.",
                ));
            }
        }
        let handle = self.lookup(queue)?;
        let wait = match options.wait {
            Some(wait) => wait,
            None => Duration::from_secs(u64::from(
                lock(&handle.state).config.receive_message_wait_time_seconds,
            )),
        };
        let deadline = self
            .now_ms()
            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        let real_deadline = tokio::time::Instant::now() + wait;
        // Each pass either returns or sleeps until something changed; the cap only guards
        // against a storm of notifications, and an early empty answer is valid SQS behaviour.
        for _ in 0..100_000 {
            let notified = handle.notify.notified();
            let attempt = self.try_receive(&handle, options)?;
            if !attempt.messages.is_empty() || wait.is_zero() {
                return Ok(attempt.messages);
            }
            if self.now_ms() >= deadline {
                return Ok(Vec::new());
            }
            let wake_at = attempt
                .next_visible_at
                .map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = notified => {}
                () = self.inner.clock.sleep_until(to_time(wake_at)) => {}
                () = tokio::time::sleep_until(real_deadline) => return Ok(Vec::new()),
            }
        }
        Ok(Vec::new())
    }

    fn try_receive(
        &self,
        handle: &Arc<QueueHandle>,
        options: &ReceiveOptions,
    ) -> Result<Attempt, SqsError> {
        if handle.deleted.load(Ordering::SeqCst) {
            return Err(SqsError::QueueDoesNotExist);
        }
        // The DLQ is looked up before locking the source: the registry is never locked while a
        // queue is.
        let policy = lock(&handle.state).config.redrive_policy.clone();
        let dlq = policy.as_ref().and_then(|p| {
            self.lookup_arn(&p.dead_letter_target_arn)
                .map(|h| (h, p.max_receive_count))
        });
        let (attempt, visibility) = self.op(|| {
            let now = self.now_ms();
            let mut state = lock(&handle.state);
            state.refresh(now);
            let visibility = options
                .visibility_timeout
                .unwrap_or(state.config.visibility_timeout);
            let visibility_ms = i64::from(visibility) * 1000;
            let answer = |state: &QueueState, taken: &[Taken]| Attempt {
                messages: taken
                    .iter()
                    .map(|t| self.render(handle, t, options))
                    .collect(),
                next_visible_at: state.next_visible_at(),
            };
            // ReceiveRequestAttemptId applies to FIFO queues only (ReceiveMessage reference).
            let attempt_id = options
                .receive_request_attempt_id
                .as_deref()
                .filter(|_| state.config.is_fifo());
            let retried = match attempt_id {
                Some(id) => state.retry_attempt(id, now, visibility_ms).map_err(|()| {
                    // AWS's answer when a message of the first receive has changed since.
                    SqsError::invalid_value(
                        "ReceiveRequestAttemptId",
                        id,
                        "The receiveRequestAttemptId is not valid anymore since the receive call is not retryable.",
                    )
                })?,
                None => None,
            };
            if let Some(again) = retried {
                let records: Vec<_> = again
                    .iter()
                    .map(|t| Record::Visibility {
                        queue: handle.name.clone(),
                        seq: t.seq,
                        visible_at: t.message.visible_at,
                        now,
                    })
                    .collect();
                self.journal(&records)?;
                return Ok((answer(&state, &again), visibility));
            }
            let (taken, dead) = state.take(
                now,
                options.max_messages as usize,
                visibility_ms,
                dlq.as_ref().map(|(_, max)| *max),
            );
            let mut records = Vec::with_capacity(taken.len() + dead.len());
            for t in &taken {
                records.push(Record::Receive {
                    queue: handle.name.clone(),
                    seq: t.seq,
                    at: now,
                    visible_at: t.message.visible_at,
                });
            }
            if let Some((target, _)) = &dlq {
                for t in &dead {
                    records.push(Record::MoveToDlq {
                        from: handle.name.clone(),
                        to: target.name.clone(),
                        seq: t.seq,
                        at: now,
                    });
                }
            }
            self.journal(&records)?;
            if let Some(attempt_id) = attempt_id
                && !taken.is_empty()
            {
                state.remember_attempt(attempt_id, now, &taken);
            }
            let attempt = answer(&state, &taken);
            // The source's lock goes before the DLQ's is taken (one queue lock at a time, so a
            // DLQ whose own redrive points back cannot deadlock), but the gate stays held: a
            // compaction in between would snapshot the messages in neither queue while the
            // journal's MoveToDlq records are already rewritten away.
            drop(state);
            if let Some((target, _)) = &dlq
                && !dead.is_empty()
            {
                #[cfg(test)]
                self.run_dead_letter_hook();
                self.insert_dead_lettered(handle, target, dead, now);
            }
            Ok((attempt, visibility))
        })?;
        if visibility == 0 && !attempt.messages.is_empty() {
            // Received with no visibility timeout, the request's or the queue's default: visible
            // again at once, so waiting receivers should look. (A waiter that already looked
            // finds it anyway, as the message is visible at the instant it was received; the
            // signal keeps that from depending on who looked when.)
            handle.notify.notify_waiters();
        }
        Ok(attempt)
    }

    /// Puts messages taken from `source` into its dead-letter queue `target` and wakes the
    /// DLQ's waiters. Called inside the gated operation that journaled the move, with no
    /// queue lock held.
    fn insert_dead_lettered(
        &self,
        source: &QueueHandle,
        target: &QueueHandle,
        dead: Vec<Taken>,
        now: i64,
    ) {
        let count = dead.len();
        {
            let mut state = lock(&target.state);
            for t in dead {
                state.insert(t.seq, dead_lettered(t.message, &source.arn, now));
            }
        }
        if target.deleted.load(Ordering::SeqCst) {
            tracing::warn!(queue = %source.name, dlq = %target.name, count, "dead-letter queue deleted while moving messages");
        }
        tracing::debug!(queue = %source.name, dlq = %target.name, count, "messages moved to the dead-letter queue");
        target.notify.notify_waiters();
    }

    fn render(
        &self,
        handle: &QueueHandle,
        taken: &Taken,
        options: &ReceiveOptions,
    ) -> ReceivedMessage {
        let message = &taken.message;
        let data = &message.data;
        let names = &options.system_attribute_names;
        let all = names.iter().any(|n| n == "All");
        let wanted = |name: &str| all || names.iter().any(|n| n == name);
        let mut attributes = BTreeMap::new();
        if wanted("SenderId") {
            attributes.insert("SenderId".to_string(), data.sender_id.clone());
        }
        if wanted("SentTimestamp") {
            attributes.insert("SentTimestamp".to_string(), data.sent_ms.to_string());
        }
        if wanted("ApproximateReceiveCount") {
            attributes.insert(
                "ApproximateReceiveCount".to_string(),
                message.receive_count.to_string(),
            );
        }
        if wanted("ApproximateFirstReceiveTimestamp") {
            let first = message.first_receive_ms.unwrap_or(data.sent_ms);
            attributes.insert(
                "ApproximateFirstReceiveTimestamp".to_string(),
                first.to_string(),
            );
        }
        if wanted(TRACE_HEADER_ATTRIBUTE)
            && let Some(trace) = data
                .system_attributes
                .get(TRACE_HEADER_ATTRIBUTE)
                .and_then(|v| v.string_value.clone())
        {
            attributes.insert(TRACE_HEADER_ATTRIBUTE.to_string(), trace);
        }
        if wanted("MessageGroupId")
            && let Some(group) = &data.group_id
        {
            attributes.insert("MessageGroupId".to_string(), group.clone());
        }
        if let Some(dedup_id) = &data.dedup_id {
            // Only FIFO messages carry a deduplication id.
            if wanted("MessageDeduplicationId") {
                attributes.insert("MessageDeduplicationId".to_string(), dedup_id.clone());
            }
            if wanted("SequenceNumber") {
                attributes.insert("SequenceNumber".to_string(), sequence_number(taken.seq));
            }
        }
        if wanted("DeadLetterQueueSourceArn")
            && let Some(source) = &data.dead_letter_source_arn
        {
            attributes.insert("DeadLetterQueueSourceArn".to_string(), source.clone());
        }
        let message_attributes: BTreeMap<_, _> = data
            .attributes
            .iter()
            .filter(|(name, _)| wants_message_attribute(&options.message_attribute_names, name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The digest covers what is returned, so clients can check it against what they got.
        let md5_of_message_attributes = if message_attributes.len() == data.attributes.len() {
            data.md5_attributes.clone()
        } else {
            md5_of_attributes(&message_attributes)
        };
        ReceivedMessage {
            message_id: data.id.clone(),
            receipt_handle: Receipt {
                queue_id: handle.id,
                seq: taken.seq,
                receive_count: message.receive_count,
            }
            .encode(),
            body: data.body.clone(),
            md5_of_body: data.md5_body.clone(),
            attributes,
            message_attributes,
            md5_of_message_attributes,
        }
    }

    pub(super) fn decode_receipt(
        handle: &QueueHandle,
        receipt_handle: &str,
    ) -> Result<Receipt, SqsError> {
        let receipt = Receipt::decode(receipt_handle)?;
        if receipt.queue_id != handle.id {
            return Err(SqsError::ReceiptHandleIsInvalid(format!(
                "The input receipt handle \"{receipt_handle}\" is not a valid receipt handle for this queue."
            )));
        }
        Ok(receipt)
    }

    /// DeleteMessage. As in SQS, a handle that is not the message's latest receive succeeds
    /// without deleting, and deleting a message already gone succeeds.
    pub fn delete_message(&self, queue: &str, receipt_handle: &str) -> Result<(), SqsError> {
        let handle = self.lookup(queue)?;
        let receipt = Self::decode_receipt(&handle, receipt_handle)?;
        self.op(|| self.delete_one(&handle, &receipt).map(|_| ()))
    }

    pub(super) fn delete_one(
        &self,
        handle: &QueueHandle,
        receipt: &Receipt,
    ) -> Result<DeleteOutcome, SqsError> {
        let now = self.now_ms();
        let mut state = lock(&handle.state);
        state.refresh(now);
        let fifo = state.config.is_fifo();
        let deletable = state.get(receipt.seq).is_some_and(|m| {
            m.receive_count == receipt.receive_count && (!fifo || m.state == MessageState::InFlight)
        });
        if deletable {
            self.journal(&[Record::Delete {
                queue: handle.name.clone(),
                seq: receipt.seq,
            }])?;
        }
        let outcome = state.delete(receipt);
        match outcome {
            DeleteOutcome::Stale => {
                tracing::debug!(queue = %handle.name, "delete with a stale receipt handle ignored");
            }
            // AWS refuses a FIFO delete after the visibility timeout, even with no receive
            // since (the handle has expired).
            DeleteOutcome::Expired => {
                return Err(SqsError::invalid_value(
                    "ReceiptHandle",
                    receipt.encode(),
                    "The receipt handle has expired.",
                ));
            }
            // The message's group may now be received: wake the long-pollers.
            DeleteOutcome::Deleted if fifo => handle.notify.notify_waiters(),
            DeleteOutcome::Deleted | DeleteOutcome::Gone => {}
        }
        Ok(outcome)
    }

    /// ChangeMessageVisibility: 0 to 43200 seconds from now, and no more than 12 hours after
    /// the receive.
    pub fn change_message_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<(), SqsError> {
        let handle = self.lookup(queue)?;
        self.op(|| self.change_one(&handle, receipt_handle, seconds))?;
        handle.notify.notify_waiters();
        Ok(())
    }

    pub(super) fn change_one(
        &self,
        handle: &QueueHandle,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<(), SqsError> {
        if seconds > MAX_VISIBILITY_TIMEOUT {
            return Err(SqsError::invalid_value(
                "VisibilityTimeout",
                seconds,
                "Must be between 0 and 43200, if provided.",
            ));
        }
        let receipt = Self::decode_receipt(handle, receipt_handle)?;
        let now = self.now_ms();
        let mut state = lock(&handle.state);
        state.refresh(now);
        let visible_at = state.change_visibility(now, &receipt, receipt_handle, seconds)?;
        // Journaled after the change: if the write fails, a restart only restores the old
        // visibility, which is harmless.
        self.journal(&[Record::Visibility {
            queue: handle.name.clone(),
            seq: receipt.seq,
            visible_at,
            now,
        }])?;
        tracing::trace!(queue = %handle.name, visible_at, "visibility changed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_attribute_filters() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wants_message_attribute(&names(&["All"]), "x"));
        assert!(wants_message_attribute(&names(&[".*"]), "x"));
        assert!(wants_message_attribute(&names(&["trace.*"]), "trace.id"));
        assert!(!wants_message_attribute(&names(&["trace.*"]), "tracer"));
        assert!(wants_message_attribute(&names(&["a", "b"]), "b"));
        assert!(!wants_message_attribute(&names(&[]), "b"));
    }
}
