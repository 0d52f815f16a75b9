//! The SQS engine: the registry of queues, every operation's semantics, waiting receivers,
//! the journal and its replay. Both the JSON endpoint ([`super::server`]) and in-process
//! callers (the event source mappings, the CLI, tests) use this API.
//!
//! Concurrency: each queue's state sits behind its own mutex, held only for the synchronous
//! part of an operation (never across an await) and never together with another queue's or
//! with the registry lock. Journal appends happen under the queue's lock, so the journal's
//! order is the order in which each queue changed. A read-write "gate" is held shared by every
//! operation and exclusively by compaction, which therefore sees a quiescent state. An
//! operation that moves messages between queues (dead-lettering, redrive) journals the move and
//! changes both queues inside one gated operation, one queue lock at a time: otherwise a
//! compaction in between would snapshot the messages in neither queue.
//!
//! Waiting: one [`tokio::sync::Notify`] per queue, signalled on every change that can make a
//! message visible sooner (send, visibility change, a receive with a visibility timeout of 0
//! whether asked for or the queue's default, dead-lettering, redrive). A waiting
//! receiver also sleeps on the clock until the next delayed or in-flight message becomes
//! visible, so it wakes on a manual clock's advance without any timer per message.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::attributes::{
    MAX_MESSAGE_SIZE, MAX_VISIBILITY_TIMEOUT, MAX_WAIT_SECONDS, QueueConfig, READABLE_ATTRIBUTES,
    RedriveAllowPolicy, RedrivePolicy, validate_queue_name,
};
use super::error::SqsError;
/// Re-exported so the engine's settings can be imported from one place.
pub use super::journal::{FsyncPolicy, JournalConfig};
use super::journal::{Journal, Record};
use super::md5::{md5_hex, md5_of_attributes};
use super::model::{
    BatchFailure, BatchOutcome, MessageSnapshot, MessageState, MoveTask, MoveTaskStatus,
    OutgoingMessage, QueueStats, ReceiveOptions, ReceivedMessage, SendReceipt,
};
use super::queue::{DeleteOutcome, MessageData, QueueState, Receipt, StoredMessage, Taken};
use super::validate::{validate_batch_ids, validate_message};
use crate::clock::SharedClock;

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConfig {
    /// Region in ARNs (`us-east-1`).
    pub region: String,
    /// Account id in URLs and ARNs (`000000000000`).
    pub account_id: String,
    /// Base of queue URLs until the server binds (`http://127.0.0.1:9324`).
    pub endpoint_url: String,
    /// Where to keep the journal; `None` keeps everything in memory only.
    pub journal: Option<JournalConfig>,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            region: "us-east-1".to_string(),
            account_id: "000000000000".to_string(),
            endpoint_url: "http://127.0.0.1:9324".to_string(),
            journal: None,
        }
    }
}

/// The in-memory SQS service. Cheap to clone; clones share the same queues.
#[derive(Clone)]
pub struct SqsEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsEngine")
            .field("region", &self.inner.region)
            .field("queues", &read(&self.inner.queues).len())
            .finish()
    }
}

struct Inner {
    region: String,
    account_id: String,
    endpoint: RwLock<String>,
    clock: SharedClock,
    gate: RwLock<()>,
    queues: RwLock<BTreeMap<String, Arc<QueueHandle>>>,
    journal: Option<Mutex<Journal>>,
    next_seq: AtomicU64,
    tasks: Mutex<Vec<MoveTask>>,
    /// Runs once at the point where dead-lettered messages are journaled but not yet in the
    /// dead-letter queue, so a test can race a compaction against exactly that instant.
    #[cfg(test)]
    dead_letter_hook: Mutex<Option<TestHook>>,
}

#[cfg(test)]
type TestHook = Box<dyn FnOnce(&SqsEngine) + Send>;

pub(crate) struct QueueHandle {
    name: String,
    id: u64,
    arn: String,
    state: Mutex<QueueState>,
    notify: Notify,
    deleted: AtomicBool,
}

// Poisoning only says another thread panicked mid-operation; the state is still usable and a
// panic there is a bug the tests would show, so poison is ignored rather than spread.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The queue name in a queue URL (`http://host/000000000000/name`), ARN or bare name.
pub fn queue_name_of(reference: &str) -> &str {
    let reference = reference.trim();
    if reference.starts_with("http://") || reference.starts_with("https://") {
        let path = reference.split(['?', '#']).next().unwrap_or(reference);
        return path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    }
    if reference.starts_with("arn:") {
        return reference.rsplit(':').next().unwrap_or("");
    }
    reference
}

fn wants_message_attribute(names: &[String], attribute: &str) -> bool {
    names.iter().any(|n| {
        n == "All"
            || n == ".*"
            || n == attribute
            || (n.ends_with(".*") && attribute.starts_with(&n[..n.len() - 1]))
    })
}

/// Outcome of one non-waiting receive attempt.
struct Attempt {
    messages: Vec<ReceivedMessage>,
    next_visible_at: Option<i64>,
}

impl SqsEngine {
    /// An engine with `config`; replays the journal when one is configured.
    pub fn new(config: SqsConfig, clock: SharedClock) -> Result<Self, SqsError> {
        let (journal, records) = match config.journal.clone() {
            Some(journal_config) => {
                let (journal, records) = Journal::open(journal_config)?;
                (Some(Mutex::new(journal)), records)
            }
            None => (None, Vec::new()),
        };
        let engine = SqsEngine {
            inner: Arc::new(Inner {
                region: config.region,
                account_id: config.account_id,
                endpoint: RwLock::new(config.endpoint_url.trim_end_matches('/').to_string()),
                clock,
                gate: RwLock::new(()),
                queues: RwLock::new(BTreeMap::new()),
                journal,
                next_seq: AtomicU64::new(1),
                tasks: Mutex::new(Vec::new()),
                #[cfg(test)]
                dead_letter_hook: Mutex::new(None),
            }),
        };
        let count = records.len();
        for record in records {
            engine.replay(record);
        }
        if count > 0 {
            tracing::info!(
                records = count,
                queues = read(&engine.inner.queues).len(),
                "sqs state restored"
            );
        }
        Ok(engine)
    }

    /// An engine without a journal, with default settings.
    pub fn in_memory(clock: SharedClock) -> Self {
        // Without a journal nothing can fail.
        match SqsEngine::new(SqsConfig::default(), clock) {
            Ok(engine) => engine,
            Err(err) => unreachable!("in-memory engine cannot fail: {err}"),
        }
    }

    /// An engine journaling under `state_dir` with default settings.
    pub fn open(
        state_dir: impl Into<std::path::PathBuf>,
        clock: SharedClock,
    ) -> Result<Self, SqsError> {
        SqsEngine::new(
            SqsConfig {
                journal: Some(JournalConfig::new(state_dir)),
                ..SqsConfig::default()
            },
            clock,
        )
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The region in ARNs.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// The account id in URLs and ARNs.
    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// Sets the base of queue URLs (`http://127.0.0.1:PORT`); the server does it once bound.
    pub fn set_endpoint_url(&self, url: &str) {
        *write(&self.inner.endpoint) = url.trim_end_matches('/').to_string();
    }

    /// The base of queue URLs.
    pub fn endpoint_url(&self) -> String {
        read(&self.inner.endpoint).clone()
    }

    /// The URL queue `name` has (or would have).
    pub fn url_for(&self, name: &str) -> String {
        format!(
            "{}/{}/{}",
            read(&self.inner.endpoint),
            self.inner.account_id,
            name
        )
    }

    /// The ARN queue `name` has (or would have).
    pub fn arn_for(&self, name: &str) -> String {
        format!(
            "arn:aws:sqs:{}:{}:{}",
            self.inner.region, self.inner.account_id, name
        )
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now().timestamp_millis()
    }

    fn next_seq(&self) -> u64 {
        self.inner.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn lookup(&self, queue: &str) -> Result<Arc<QueueHandle>, SqsError> {
        read(&self.inner.queues)
            .get(queue_name_of(queue))
            .cloned()
            .ok_or(SqsError::QueueDoesNotExist)
    }

    fn lookup_arn(&self, arn: &str) -> Option<Arc<QueueHandle>> {
        let prefix = format!(
            "arn:aws:sqs:{}:{}:",
            self.inner.region, self.inner.account_id
        );
        let name = arn.strip_prefix(&prefix)?;
        read(&self.inner.queues).get(name).cloned()
    }

    fn journal(&self, records: &[Record]) -> Result<(), SqsError> {
        match &self.inner.journal {
            Some(journal) => lock(journal).append(records).inspect_err(|err| {
                tracing::error!(error = %err, "sqs journal append failed");
            }),
            None => Ok(()),
        }
    }

    /// Runs a state-changing operation under the shared gate, then compacts if due.
    fn op<T>(&self, f: impl FnOnce() -> Result<T, SqsError>) -> Result<T, SqsError> {
        let result = {
            let _gate = read(&self.inner.gate);
            f()
        };
        let due = self
            .inner
            .journal
            .as_ref()
            .is_some_and(|j| lock(j).wants_compaction());
        if due && let Err(err) = self.compact() {
            tracing::error!(error = %err, "sqs journal compaction failed");
        }
        result
    }

    #[cfg(test)]
    fn run_dead_letter_hook(&self) {
        let hook = lock(&self.inner.dead_letter_hook).take();
        if let Some(hook) = hook {
            hook(self);
        }
    }

    // ---------------------------------------------------------------- queues

    /// CreateQueue: returns the URL. Idempotent when the given attributes match the existing
    /// queue's; `QueueNameExists` otherwise.
    pub fn create_queue(
        &self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, SqsError> {
        validate_queue_name(name)?;
        let mut config = QueueConfig::default();
        config.apply(attributes, true)?;
        if let Some(policy) = &config.redrive_policy {
            self.check_redrive_target(policy, name)?;
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

    fn handle(&self, name: &str, id: u64, state: QueueState) -> Arc<QueueHandle> {
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
    fn check_redrive_target(&self, policy: &RedrivePolicy, source: &str) -> Result<(), SqsError> {
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
        let source_arn = self.arn_for(source);
        let allow = lock(&target.state).config.redrive_allow_policy.clone();
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
            self.check_redrive_target(policy, &handle.name)?;
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
            state.config = next;
            state.modified_ms = now;
            Ok(())
        })?;
        // A shorter retention or a new policy can change what a waiter should do.
        handle.notify.notify_waiters();
        Ok(())
    }

    /// TagQueue.
    pub fn tag_queue(&self, queue: &str, tags: &BTreeMap<String, String>) -> Result<(), SqsError> {
        self.update_tags(queue, |current| current.extend(tags.clone()))
    }

    /// UntagQueue.
    pub fn untag_queue(&self, queue: &str, keys: &[String]) -> Result<(), SqsError> {
        self.update_tags(queue, |current| {
            for key in keys {
                current.remove(key);
            }
        })
    }

    fn update_tags(
        &self,
        queue: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<(), SqsError> {
        self.op(|| {
            let handle = self.lookup(queue)?;
            let mut state = lock(&handle.state);
            let mut tags = state.tags.clone();
            change(&mut tags);
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

    fn dead_letter_sources(&self, dlq_arn: &str) -> Vec<Arc<QueueHandle>> {
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

    // ---------------------------------------------------------------- messages

    fn build_message(&self, message: &OutgoingMessage, now: i64) -> MessageData {
        MessageData {
            id: uuid::Uuid::new_v4().to_string(),
            body: message.body.clone(),
            md5_body: md5_hex(message.body.as_bytes()),
            md5_attributes: md5_of_attributes(&message.message_attributes),
            md5_system: md5_of_attributes(&message.message_system_attributes),
            attributes: message.message_attributes.clone(),
            system_attributes: message.message_system_attributes.clone(),
            group_id: message.message_group_id.clone(),
            sent_ms: now,
            sender_id: self.inner.account_id.clone(),
            dead_letter_source_arn: None,
        }
    }

    fn receipt_of(data: &MessageData) -> SendReceipt {
        SendReceipt {
            message_id: data.id.clone(),
            md5_of_message_body: data.md5_body.clone(),
            md5_of_message_attributes: data.md5_attributes.clone(),
            md5_of_message_system_attributes: data.md5_system.clone(),
        }
    }

    /// SendMessage.
    pub fn send_message(
        &self,
        queue: &str,
        message: OutgoingMessage,
    ) -> Result<SendReceipt, SqsError> {
        let handle = self.lookup(queue)?;
        let receipt = self.op(|| {
            let now = self.now_ms();
            let mut state = lock(&handle.state);
            validate_message(&message, state.config.maximum_message_size)?;
            let delay = message.delay_seconds.unwrap_or(state.config.delay_seconds);
            let data = Arc::new(self.build_message(&message, now));
            let seq = self.next_seq();
            let visible_at = now + i64::from(delay) * 1000;
            self.journal(&[Record::Send {
                queue: handle.name.clone(),
                seq,
                visible_at,
                now,
                data: data.clone(),
            }])?;
            state.insert(seq, StoredMessage::new(data.clone(), now, visible_at));
            Ok(Self::receipt_of(&data))
        })?;
        handle.notify.notify_waiters();
        Ok(receipt)
    }

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
            let (taken, dead) = state.take(
                now,
                options.max_messages as usize,
                i64::from(visibility) * 1000,
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
            let messages = taken
                .iter()
                .map(|t| self.render(handle, t, options))
                .collect();
            let attempt = Attempt {
                messages,
                next_visible_at: state.next_visible_at(),
            };
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
        if wanted("AWSTraceHeader")
            && let Some(trace) = data
                .system_attributes
                .get("AWSTraceHeader")
                .and_then(|v| v.string_value.clone())
        {
            attributes.insert("AWSTraceHeader".to_string(), trace);
        }
        if wanted("MessageGroupId")
            && let Some(group) = &data.group_id
        {
            attributes.insert("MessageGroupId".to_string(), group.clone());
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

    fn decode_receipt(handle: &QueueHandle, receipt_handle: &str) -> Result<Receipt, SqsError> {
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

    fn delete_one(
        &self,
        handle: &QueueHandle,
        receipt: &Receipt,
    ) -> Result<DeleteOutcome, SqsError> {
        let mut state = lock(&handle.state);
        let current = state
            .get(receipt.seq)
            .is_some_and(|m| m.receive_count == receipt.receive_count);
        if current {
            self.journal(&[Record::Delete {
                queue: handle.name.clone(),
                seq: receipt.seq,
            }])?;
        }
        let outcome = state.delete(receipt);
        if outcome == DeleteOutcome::Stale {
            tracing::debug!(queue = %handle.name, "delete with a stale receipt handle ignored");
        }
        Ok(outcome)
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

    fn change_one(
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

    // ---------------------------------------------------------------- redrive

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
        let started = self.now_ms();
        let task_handle = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"taskId": uuid::Uuid::new_v4().to_string(), "sourceArn": source.arn}).to_string(),
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
                    id: uuid::Uuid::new_v4().to_string(),
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

    // ---------------------------------------------------------------- observation

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

    /// A handle to wait until `queue` has visible messages.
    pub fn subscribe(&self, queue: &str) -> Result<QueueSubscription, SqsError> {
        Ok(QueueSubscription {
            engine: self.clone(),
            queue: self.lookup(queue)?,
        })
    }

    /// Waits until `queue` has a visible message (`true`) or `timeout` of clock time passes
    /// (`false`).
    pub async fn wait_for_messages(
        &self,
        queue: &str,
        timeout: Duration,
    ) -> Result<bool, SqsError> {
        self.subscribe(queue)?.wait_visible(Some(timeout)).await
    }

    // ---------------------------------------------------------------- durability

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
        }
        for task in lock(&self.inner.tasks).iter() {
            records.push(Record::Task { task: task.clone() });
        }
        lock(journal).rewrite(&records)
    }

    /// Syncs the journal to disk; call on orderly shutdown.
    pub fn shutdown(&self) -> Result<(), SqsError> {
        match &self.inner.journal {
            Some(journal) => lock(journal).sync(),
            None => Ok(()),
        }
    }

    /// The journal's size in bytes, `None` without a journal.
    pub fn journal_bytes(&self) -> Option<u64> {
        self.inner.journal.as_ref().map(|j| lock(j).bytes())
    }

    fn replay(&self, record: Record) {
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
                    state.config = replayed_config(&name, &attributes, false);
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
                    lock(&h.state).insert(seq, StoredMessage::new(data, now, visible_at));
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

/// A message arriving in a dead-letter queue: visible at once, same id, body, attributes,
/// send time and receive count, tagged with the queue it came from.
fn dead_lettered(mut message: StoredMessage, source_arn: &str, now: i64) -> StoredMessage {
    let mut data = (*message.data).clone();
    data.dead_letter_source_arn = Some(source_arn.to_string());
    message.data = Arc::new(data);
    message.state = MessageState::Visible;
    message.visible_at = now;
    message
}

fn failure(id: String, err: &SqsError) -> BatchFailure {
    BatchFailure {
        id,
        code: err.batch_entry_code().to_string(),
        message: err.aws_message(),
        sender_fault: err.wire().sender_fault,
    }
}

/// Waits for visible messages on one queue (see [`SqsEngine::subscribe`]).
pub struct QueueSubscription {
    engine: SqsEngine,
    queue: Arc<QueueHandle>,
}

impl std::fmt::Debug for QueueSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSubscription")
            .field("queue", &self.queue.name)
            .finish()
    }
}

impl QueueSubscription {
    /// The queue's name.
    pub fn queue_name(&self) -> &str {
        &self.queue.name
    }

    /// How many messages are visible now.
    pub fn visible(&self) -> Result<usize, SqsError> {
        if self.queue.deleted.load(Ordering::SeqCst) {
            return Err(SqsError::QueueDoesNotExist);
        }
        let now = self.engine.now_ms();
        let mut state = lock(&self.queue.state);
        state.refresh(now);
        Ok(state.counts().0)
    }

    /// Waits until a message is visible (`true`), or until `timeout` of clock time passes
    /// (`false`); `None` waits as long as it takes. `QueueDoesNotExist` if the queue is deleted.
    pub async fn wait_visible(&self, timeout: Option<Duration>) -> Result<bool, SqsError> {
        let deadline = timeout.map(|t| {
            self.engine
                .now_ms()
                .saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
        });
        // Each pass sleeps until the queue changed or the clock reached the next instant
        // that matters, so this only spins as often as something happens.
        loop {
            let notified = self.queue.notify.notified();
            if self.visible()? > 0 {
                return Ok(true);
            }
            let now = self.engine.now_ms();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            let next = lock(&self.queue.state).next_visible_at();
            let wake_at = match (next, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = self.engine.inner.clock.sleep_until(to_time(at)) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_references() {
        assert_eq!(
            queue_name_of("http://127.0.0.1:9/000000000000/jobs"),
            "jobs"
        );
        assert_eq!(
            queue_name_of("https://sqs.us-east-1.amazonaws.com/123/jobs/"),
            "jobs"
        );
        assert_eq!(
            queue_name_of("arn:aws:sqs:us-east-1:000000000000:jobs"),
            "jobs"
        );
        assert_eq!(queue_name_of("jobs"), "jobs");
    }

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
