//! Queue administration: create, delete, purge, URLs and ARNs, attributes, tags and the
//! dead-letter relations between queues (which queue may redrive into which).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{QueueHandle, SqsEngine, lock, queue_name_of, read, write};
use crate::sqs::attributes::{
    QueueConfig, READABLE_ATTRIBUTES, RedriveAllowPolicy, RedrivePolicy, validate_queue_name,
};
use crate::sqs::error::SqsError;
use crate::sqs::journal::Record;
use crate::sqs::permissions;
use crate::sqs::queue::QueueState;

/// Tags on a queue, and the length of keys and values: 50, 128 and 256, as the SQS quotas
/// state them (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html>).
const MAX_TAGS: usize = 50;

fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), SqsError> {
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(SqsError::InvalidParameterValue(
                "Tag keys must be between 1 and 128 characters in length.".to_string(),
            ));
        }
        if value.chars().count() > 256 {
            return Err(SqsError::InvalidParameterValue(
                "Tag values must be between 0 and 256 characters in length.".to_string(),
            ));
        }
    }
    Ok(())
}

impl SqsEngine {
    /// CreateQueue: returns the URL. Idempotent when the given attributes match the existing
    /// queue's; `QueueNameExists` otherwise.
    pub fn create_queue(
        &self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, SqsError> {
        let mut config = QueueConfig::default();
        config.apply(attributes, true)?;
        validate_queue_name(name, config.is_fifo())?;
        validate_tags(tags)?;
        if tags.len() > MAX_TAGS {
            return Err(SqsError::InvalidParameterValue(format!(
                "Too many tags added for queue {name}."
            )));
        }
        if let Some(policy) = &config.redrive_policy {
            self.check_redrive_target(policy, name, config.is_fifo())?;
        }
        self.op(|| {
            let existing = {
                let mut queues = write(&self.inner.queues);
                match queues.get(name) {
                    Some(existing) => Some(existing.clone()),
                    None => {
                        let now = self.now_ms();
                        let id = self.next_seq();
                        self.journal(&[Record::CreateQueue {
                            name: name.to_string(),
                            id,
                            attributes: config.to_map(),
                            tags: tags.clone(),
                            created_ms: now,
                        }])?;
                        let mut state = QueueState::new(config, now);
                        state.tags = tags.clone();
                        queues.insert(name.to_string(), self.handle(name, id, state));
                        tracing::debug!(queue = name, "queue created");
                        None
                    }
                }
            };
            match existing {
                None => Ok(self.url_for(name)),
                Some(existing) => match lock(&existing.state).config.first_difference(attributes) {
                    None => Ok(self.url_for(name)),
                    Some(attribute) => Err(SqsError::QueueNameExists(attribute)),
                },
            }
        })
    }

    pub(super) fn handle(&self, name: &str, id: u64, state: QueueState) -> Arc<QueueHandle> {
        Arc::new(QueueHandle {
            name: name.to_string(),
            id,
            arn: self.arn_for(name),
            state: Mutex::new(state),
            notify: Notify::new(),
            deleted: AtomicBool::new(false),
        })
    }

    /// Checks that queue `source` may send its dead letters where `policy` says: the target
    /// exists, is another queue, and its RedriveAllowPolicy admits `source`.
    ///
    /// The permission is checked when the RedrivePolicy is set, as the attribute describes it
    /// ("which source queues can specify this queue as the dead-letter queue",
    /// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html>);
    /// tightening a DLQ's RedriveAllowPolicy later does not detach existing sources. AWS's
    /// error for a refused source was not found in its documentation: this answers with the
    /// same InvalidParameterValue as the other RedrivePolicy refusals, naming both queues.
    ///
    /// "The dead-letter queue of a FIFO queue must also be a FIFO queue. Similarly, the
    /// dead-letter queue of a standard queue must also be a standard queue"
    /// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html>).
    fn check_redrive_target(
        &self,
        policy: &RedrivePolicy,
        source: &str,
        source_fifo: bool,
    ) -> Result<(), SqsError> {
        let Some(target) = self.lookup_arn(&policy.dead_letter_target_arn) else {
            return Err(SqsError::invalid_value(
                "RedrivePolicy",
                policy.to_json(),
                "Dead letter target does not exist.",
            ));
        };
        if target.name == source {
            return Err(SqsError::invalid_value(
                "RedrivePolicy",
                policy.to_json(),
                "A queue cannot be its own dead letter queue.",
            ));
        }
        let (allow, target_fifo) = {
            let state = lock(&target.state);
            (
                state.config.redrive_allow_policy.clone(),
                state.config.is_fifo(),
            )
        };
        if target_fifo != source_fifo {
            // AWS's wording, as its InvalidParameterValue answer quotes it.
            return Err(SqsError::invalid_value(
                "RedrivePolicy",
                policy.to_json(),
                "Dead-letter queue must be same type of queue as the source.",
            ));
        }
        let source_arn = self.arn_for(source);
        if let Some(allow) = allow
            && !allow.allows(&source_arn)
        {
            let why = match allow {
                RedriveAllowPolicy::DenyAll => "denyAll".to_string(),
                _ => "byQueue without this queue".to_string(),
            };
            return Err(SqsError::invalid_value(
                "RedrivePolicy",
                policy.to_json(),
                &format!(
                    "Dead letter target {} does not allow {source_arn} as a source queue: its RedriveAllowPolicy is {why}.",
                    target.arn
                ),
            ));
        }
        Ok(())
    }

    /// DeleteQueue. Waiting receivers of the queue get `QueueDoesNotExist`.
    pub fn delete_queue(&self, queue: &str) -> Result<(), SqsError> {
        self.op(|| {
            let name = queue_name_of(queue);
            let handle = {
                let mut queues = write(&self.inner.queues);
                let handle = queues.remove(name).ok_or(SqsError::QueueDoesNotExist)?;
                handle.deleted.store(true, Ordering::SeqCst);
                self.journal(&[Record::DeleteQueue {
                    name: name.to_string(),
                }])?;
                handle
            };
            handle.notify.notify_waiters();
            tracing::debug!(queue = name, "queue deleted");
            Ok(())
        })
    }

    /// PurgeQueue: deletes every message; at most once every 60 seconds per queue.
    pub fn purge_queue(&self, queue: &str) -> Result<(), SqsError> {
        self.op(|| {
            let handle = self.lookup(queue)?;
            let now = self.now_ms();
            let mut state = lock(&handle.state);
            if let Some(last) = state.last_purge_ms
                && now < last + 60_000
            {
                return Err(SqsError::PurgeQueueInProgress(format!(
                    "Only one PurgeQueue operation on {} is allowed every 60 seconds.",
                    handle.name
                )));
            }
            self.journal(&[Record::Purge {
                name: handle.name.clone(),
                at_ms: now,
            }])?;
            let purged = state.purge();
            state.last_purge_ms = Some(now);
            tracing::debug!(queue = %handle.name, purged, "queue purged");
            Ok(())
        })
    }

    /// GetQueueUrl.
    pub fn get_queue_url(&self, name: &str) -> Result<String, SqsError> {
        let handle = self.lookup(name)?;
        Ok(self.url_for(&handle.name))
    }

    /// The names of all queues starting with `prefix`, in order.
    pub fn queue_names(&self, prefix: Option<&str>) -> Vec<String> {
        read(&self.inner.queues)
            .keys()
            .filter(|name| prefix.is_none_or(|p| name.starts_with(p)))
            .cloned()
            .collect()
    }

    /// ListQueues without pagination: URLs of the queues starting with `prefix`.
    pub fn list_queues(&self, prefix: Option<&str>) -> Vec<String> {
        self.queue_names(prefix)
            .iter()
            .map(|n| self.url_for(n))
            .collect()
    }

    /// The ARN of an existing queue.
    pub fn queue_arn(&self, queue: &str) -> Result<String, SqsError> {
        Ok(self.lookup(queue)?.arn.clone())
    }

    /// GetQueueAttributes: `names` may hold `All`; unknown names are `InvalidAttributeName`.
    pub fn get_queue_attributes(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, SqsError> {
        for name in names {
            if name != "All" && !READABLE_ATTRIBUTES.contains(&name.as_str()) {
                return Err(SqsError::InvalidAttributeName(format!(
                    "Unknown Attribute {name}."
                )));
            }
        }
        let handle = self.lookup(queue)?;
        let now = self.now_ms();
        let mut state = lock(&handle.state);
        state.refresh(now);
        let (visible, in_flight, delayed) = state.counts();
        let all = names.iter().any(|n| n == "All");
        let mut out = BTreeMap::new();
        for name in READABLE_ATTRIBUTES {
            if !all && !names.iter().any(|n| n == name) {
                continue;
            }
            let value = match *name {
                "ApproximateNumberOfMessages" => Some(visible.to_string()),
                "ApproximateNumberOfMessagesNotVisible" => Some(in_flight.to_string()),
                "ApproximateNumberOfMessagesDelayed" => Some(delayed.to_string()),
                "CreatedTimestamp" => Some((state.created_ms / 1000).to_string()),
                "LastModifiedTimestamp" => Some((state.modified_ms / 1000).to_string()),
                "QueueArn" => Some(handle.arn.clone()),
                other => state.config.get(other),
            };
            if let Some(value) = value {
                out.insert(name.to_string(), value);
            }
        }
        Ok(out)
    }

    /// SetQueueAttributes.
    pub fn set_queue_attributes(
        &self,
        queue: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), SqsError> {
        let handle = self.lookup(queue)?;
        let mut config = lock(&handle.state).config.clone();
        config.apply(attributes, false)?;
        if attributes.contains_key("RedrivePolicy")
            && let Some(policy) = &config.redrive_policy
        {
            self.check_redrive_target(policy, &handle.name, config.is_fifo())?;
        }
        self.op(|| {
            let now = self.now_ms();
            let mut state = lock(&handle.state);
            // Re-applied under the lock so concurrent updates of other attributes are kept.
            let mut next = state.config.clone();
            next.apply(attributes, false)?;
            self.journal(&[Record::SetAttributes {
                name: handle.name.clone(),
                attributes: next.to_map(),
                modified_ms: now,
            }])?;
            let delay_changed = next.delay_seconds != state.config.delay_seconds;
            state.config = next;
            state.modified_ms = now;
            if delay_changed && state.config.is_fifo() {
                state.refresh(now);
                let delay_ms = i64::from(state.config.delay_seconds) * 1000;
                let records: Vec<_> = state
                    .redelay(now, delay_ms)
                    .into_iter()
                    .map(|(seq, visible_at)| Record::Visibility {
                        queue: handle.name.clone(),
                        seq,
                        visible_at,
                        now,
                    })
                    .collect();
                // After the change, as for ChangeMessageVisibility: a failed write only
                // means a restart keeps the old delays.
                self.journal(&records)?;
            }
            Ok(())
        })?;
        // A shorter retention or a new policy can change what a waiter should do.
        handle.notify.notify_waiters();
        Ok(())
    }

    /// AddPermission: a statement labelled `label` in the queue's `Policy`, granting
    /// `actions` to `accounts` ([`crate::sqs::permissions`]).
    pub fn add_permission(
        &self,
        queue: &str,
        label: &str,
        accounts: &[String],
        actions: &[String],
    ) -> Result<(), SqsError> {
        self.update_policy(queue, |policy, arn| {
            permissions::add(policy, arn, label, accounts, actions).map(Some)
        })
    }

    /// RemovePermission: drops the statement labelled `label` from the queue's `Policy`.
    pub fn remove_permission(&self, queue: &str, label: &str) -> Result<(), SqsError> {
        self.update_policy(queue, |policy, arn| permissions::remove(policy, arn, label))
    }

    fn update_policy(
        &self,
        queue: &str,
        change: impl FnOnce(Option<&str>, &str) -> Result<Option<String>, SqsError>,
    ) -> Result<(), SqsError> {
        let handle = self.lookup(queue)?;
        self.op(|| {
            let now = self.now_ms();
            let mut state = lock(&handle.state);
            let mut next = state.config.clone();
            next.policy = change(state.config.policy.as_deref(), &handle.arn)?;
            self.journal(&[Record::SetAttributes {
                name: handle.name.clone(),
                attributes: next.to_map(),
                modified_ms: now,
            }])?;
            state.config = next;
            state.modified_ms = now;
            Ok(())
        })
    }

    /// TagQueue: adds or replaces tags, at most 50 on a queue.
    pub fn tag_queue(&self, queue: &str, tags: &BTreeMap<String, String>) -> Result<(), SqsError> {
        if tags.is_empty() {
            return Err(SqsError::MissingParameter(
                "The request must contain the parameter Tags.".to_string(),
            ));
        }
        validate_tags(tags)?;
        let name = queue_name_of(queue).to_string();
        self.update_tags(queue, |current| {
            current.extend(tags.clone());
            if current.len() > MAX_TAGS {
                return Err(SqsError::InvalidParameterValue(format!(
                    "Too many tags added for queue {name}."
                )));
            }
            Ok(())
        })
    }

    /// UntagQueue.
    pub fn untag_queue(&self, queue: &str, keys: &[String]) -> Result<(), SqsError> {
        if keys.is_empty() || keys.iter().any(|k| k.is_empty() || k.chars().count() > 128) {
            return Err(SqsError::InvalidParameterValue(
                "Tag keys must be between 1 and 128 characters in length.".to_string(),
            ));
        }
        self.update_tags(queue, |current| {
            for key in keys {
                current.remove(key);
            }
            Ok(())
        })
    }

    fn update_tags(
        &self,
        queue: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), SqsError>,
    ) -> Result<(), SqsError> {
        self.op(|| {
            let handle = self.lookup(queue)?;
            let mut state = lock(&handle.state);
            let mut tags = state.tags.clone();
            change(&mut tags)?;
            self.journal(&[Record::SetTags {
                name: handle.name.clone(),
                tags: tags.clone(),
            }])?;
            state.tags = tags;
            Ok(())
        })
    }

    /// ListQueueTags.
    pub fn list_queue_tags(&self, queue: &str) -> Result<BTreeMap<String, String>, SqsError> {
        let handle = self.lookup(queue)?;
        Ok(lock(&handle.state).tags.clone())
    }

    /// ListDeadLetterSourceQueues: URLs of the queues whose RedrivePolicy targets `queue`.
    pub fn list_dead_letter_source_queues(&self, queue: &str) -> Result<Vec<String>, SqsError> {
        let target = self.lookup(queue)?;
        Ok(self
            .dead_letter_sources(&target.arn)
            .iter()
            .map(|h| self.url_for(&h.name))
            .collect())
    }

    pub(super) fn dead_letter_sources(&self, dlq_arn: &str) -> Vec<Arc<QueueHandle>> {
        let all: Vec<_> = read(&self.inner.queues).values().cloned().collect();
        all.into_iter()
            .filter(|h| {
                lock(&h.state)
                    .config
                    .redrive_policy
                    .as_ref()
                    .is_some_and(|p| p.dead_letter_target_arn == dlq_arn)
            })
            .collect()
    }
}
