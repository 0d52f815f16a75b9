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
//!
//! This file holds the engine's state, its construction and the plumbing every operation
//! shares (lookups, the gate, journal appends). The operations, by role:
//! - `queues`: queue administration (create, delete, purge, attributes, tags);
//! - `messages`: send, receive, delete and change visibility of one message;
//! - `batches`: the batch forms of those, entry by entry;
//! - `redrive`: message move tasks out of dead-letter queues;
//! - `observation`: counts and stored messages, read without changing anything;
//! - `subscription`: waiting for visible messages without receiving them;
//! - `durability`: compaction, shutdown sync and replay of the journal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::error::SqsError;
/// Re-exported so the engine's settings can be imported from one place.
pub use super::journal::{FsyncPolicy, JournalConfig};
use super::journal::{Journal, Record};
use super::model::{BatchFailure, MessageState, MoveTask};
use super::queue::{QueueState, StoredMessage};
use crate::clock::SharedClock;

mod batches;
mod durability;
mod messages;
mod observation;
mod queues;
mod redrive;
mod subscription;

pub use subscription::QueueSubscription;

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

impl SqsEngine {
    /// An engine with `config`; replays the journal when one is configured.
    pub fn new(config: SqsConfig, clock: SharedClock) -> Result<Self, SqsError> {
        let (journal, records) = match config.journal.clone() {
            Some(journal_config) => {
                let (journal, records) = super::journal::open(journal_config)?;
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
            Some(journal) => lock(journal).append(records).map_err(|err| {
                tracing::error!(error = %err, "sqs journal append failed");
                err.into()
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
}

/// A message arriving in a dead-letter queue: visible at once, same id, body, attributes,
/// send time and receive count, tagged with the queue it came from.
fn dead_lettered(mut message: StoredMessage, source_arn: &str, now: i64) -> StoredMessage {
    let mut data = (*message.data).clone();
    data.dead_letter_source_arn = Some(source_arn.to_string());
    // "When a message is moved from a FIFO queue to a FIFO DLQ, the original message's
    // deduplication ID will be replaced with the original message's ID"
    // (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html>).
    if data.dedup_id.is_some() {
        data.dedup_id = Some(data.id.clone());
    }
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
}
