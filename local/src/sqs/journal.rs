//! Durability of the SQS engine: every state change is a [`Record`] appended to
//! `<state dir>/sqs.journal` (a [`crate::journal`] of kind `sqs`), replayed on open and
//! compacted when it grows. The format, the fsync policy and the torn-tail rule are the
//! journal module's.
//!
//! Compaction rewrites the live state (queues, stored messages with their receive counts and
//! visibility, move tasks) as records. It runs when the journal exceeds both
//! `compact_min_bytes` and twice its size after the previous compaction.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::journal::FsyncPolicy;
use crate::journal::{JournalError, Options};

use super::error::SqsError;
use super::model::MoveTask;
use super::queue::{MessageData, StoredMessage};

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// The directory holding `sqs.journal` (created if missing).
    pub dir: PathBuf,
    /// When to sync.
    pub fsync: FsyncPolicy,
    /// No compaction below this size.
    pub compact_min_bytes: u64,
}

impl JournalConfig {
    /// A journal in `dir` with the default policy and a 64 MiB compaction floor.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::default(),
            compact_min_bytes: 64 << 20,
        }
    }
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Record {
    CreateQueue {
        name: String,
        id: u64,
        attributes: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
        created_ms: i64,
    },
    SetAttributes {
        name: String,
        attributes: BTreeMap<String, String>,
        modified_ms: i64,
    },
    SetTags {
        name: String,
        tags: BTreeMap<String, String>,
    },
    DeleteQueue {
        name: String,
    },
    Purge {
        name: String,
        at_ms: i64,
    },
    Send {
        queue: String,
        seq: u64,
        visible_at: i64,
        now: i64,
        #[serde(with = "super::queue::arc_data")]
        data: Arc<MessageData>,
    },
    Receive {
        queue: String,
        seq: u64,
        at: i64,
        visible_at: i64,
    },
    Visibility {
        queue: String,
        seq: u64,
        visible_at: i64,
        now: i64,
    },
    Delete {
        queue: String,
        seq: u64,
    },
    /// Dead-lettered on receive: leaves `from`, arrives visible in `to` with its receive count.
    MoveToDlq {
        from: String,
        to: String,
        seq: u64,
        at: i64,
    },
    /// A stored message as compaction writes it.
    Message {
        queue: String,
        seq: u64,
        message: StoredMessage,
    },
    Task {
        task: MoveTask,
    },
    /// A FIFO deduplication id still within its interval, as compaction writes it.
    Dedup {
        queue: String,
        entry: super::fifo::Deduplicated,
    },
}

const FILE_NAME: &str = "sqs.journal";
const VERSION: u32 = 1;

/// The open journal file.
pub(crate) type Journal = crate::journal::Journal<Record>;

/// Opens (or creates) the journal in `config.dir`, returning it with the records to replay.
pub(crate) fn open(config: JournalConfig) -> Result<(Journal, Vec<Record>), SqsError> {
    Ok(Journal::open(Options {
        path: config.dir.join(FILE_NAME),
        kind: "sqs",
        version: VERSION,
        fsync: config.fsync,
        compact_min_bytes: config.compact_min_bytes,
    })?)
}

impl From<JournalError> for SqsError {
    fn from(err: JournalError) -> Self {
        SqsError::Internal(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_records_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig::new(dir.path());
        let (mut journal, records) = open(config.clone()).unwrap();
        assert!(records.is_empty());
        let create = Record::CreateQueue {
            name: "q".into(),
            id: 1,
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
            created_ms: 5,
        };
        let delete = Record::Delete {
            queue: "q".into(),
            seq: 3,
        };
        journal.append(&[create.clone(), delete.clone()]).unwrap();
        drop(journal);
        let (journal, records) = open(config.clone()).unwrap();
        assert_eq!(records, vec![create.clone(), delete.clone()]);
        drop(journal);

        let (mut journal, _) = open(config.clone()).unwrap();
        journal.rewrite(std::slice::from_ref(&create)).unwrap();
        journal
            .append(&[Record::DeleteQueue { name: "q".into() }])
            .unwrap();
        drop(journal);
        let (_, records) = open(config).unwrap();
        assert_eq!(
            records,
            vec![create, Record::DeleteQueue { name: "q".into() }]
        );
    }

    #[test]
    fn a_journal_in_use_cannot_be_opened_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open(JournalConfig::new(dir.path())).unwrap();
        let err = open(JournalConfig::new(dir.path())).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(journal);
        open(JournalConfig::new(dir.path())).unwrap();
    }

    #[test]
    fn corruption_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "{\"nightshift_sqs_journal\":1}\nnot json\n{\"op\":\"delete_queue\",\"name\":\"q\"}\n",
        )
        .unwrap();
        assert!(matches!(
            open(JournalConfig::new(dir.path())),
            Err(SqsError::Internal(_))
        ));
    }
}
