//! Looking without changing: counts and settings per queue, and the stored messages of a
//! queue in send order (for `dlq list`).

use super::{SqsEngine, lock, queue_name_of, to_time};
use crate::sqs::error::SqsError;
use crate::sqs::model::{MessageSnapshot, QueueStats};

impl SqsEngine {
    /// Counts and settings of every queue, by name.
    pub fn stats(&self) -> Vec<QueueStats> {
        self.queue_names(None)
            .iter()
            .filter_map(|name| self.queue_stats(name).ok())
            .collect()
    }

    /// Counts and settings of one queue.
    pub fn queue_stats(&self, queue: &str) -> Result<QueueStats, SqsError> {
        let handle = self.lookup(queue)?;
        let sources = self
            .dead_letter_sources(&handle.arn)
            .iter()
            .map(|h| h.name.clone())
            .collect();
        let now = self.now_ms();
        let mut state = lock(&handle.state);
        state.refresh(now);
        let (visible, in_flight, delayed) = state.counts();
        Ok(QueueStats {
            name: handle.name.clone(),
            url: self.url_for(&handle.name),
            arn: handle.arn.clone(),
            visible,
            receivable: state.receivable(),
            in_flight,
            delayed,
            oldest_sent_at: state.oldest_sent_ms().map(to_time),
            dead_letter_queue: state.config.redrive_policy.as_ref().map(|p| {
                (
                    queue_name_of(&p.dead_letter_target_arn).to_string(),
                    p.max_receive_count,
                )
            }),
            dead_letter_sources: sources,
        })
    }

    /// The stored messages of a queue in send order, without receiving them (for `dlq list`).
    pub fn peek_messages(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<MessageSnapshot>, SqsError> {
        let handle = self.lookup(queue)?;
        let now = self.now_ms();
        let mut state = lock(&handle.state);
        state.refresh(now);
        Ok(state
            .all(limit)
            .into_iter()
            .map(|(_, m)| MessageSnapshot {
                message_id: m.data.id.clone(),
                body: m.data.body.clone(),
                message_attributes: m.data.attributes.clone(),
                sent_at: to_time(m.data.sent_ms),
                receive_count: m.receive_count,
                state: m.state,
                visible_at: to_time(m.visible_at),
                dead_letter_source_arn: m.data.dead_letter_source_arn.clone(),
            })
            .collect())
    }
}
