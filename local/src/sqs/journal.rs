//! Durability of the SQS engine: an append-only journal of every state change, one file per
//! engine (`<state dir>/sqs.journal`), replayed on open and compacted when it grows.
//!
//! Format: JSON lines, the first a header. Each operation appends its records with a single
//! `write` before it answers, so a SIGKILL of the emulator never loses an acknowledged change
//! (the data is in the kernel). A torn last line (power loss mid-write) is ignored on replay.
//!
//! fsync policy ([`FsyncPolicy`]): `Never` relies on the kernel (survives process crashes,
//! not power loss); `Always` calls `fdatasync` before every answer; `Interval(d)` (the
//! default, 1 s) calls it on an append when the last sync is older than `d`, so at most `d`
//! of acknowledged changes can be lost to a power cut, at the price of one sync per `d`.
//! Compaction and shutdown always sync.
//!
//! Compaction rewrites the live state (queues, stored messages with their receive counts and
//! visibility, move tasks) into `sqs.journal.tmp`, syncs it and renames it over the journal.
//! It runs when the journal exceeds both `compact_min_bytes` and twice its size after the
//! previous compaction.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::SqsError;
use super::model::MoveTask;
use super::queue::{MessageData, StoredMessage};

/// When the journal calls `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Never on appends: survives a killed process, not a power cut.
    Never,
    /// After every append, before the operation answers.
    Always,
    /// On an append when the last sync is older than this.
    Interval(Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

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

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    nightshift_sqs_journal: u32,
}

const FILE_NAME: &str = "sqs.journal";
const VERSION: u32 = 1;

/// The open journal file.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    config: JournalConfig,
    bytes: u64,
    compacted_bytes: u64,
    last_sync: Instant,
    buffer: Vec<u8>,
}

impl Journal {
    /// Opens (or creates) the journal in `config.dir`, returning it with the records to replay.
    pub fn open(config: JournalConfig) -> Result<(Journal, Vec<Record>), SqsError> {
        std::fs::create_dir_all(&config.dir)?;
        let path = config.dir.join(FILE_NAME);
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        lock_exclusively(&file, &path)?;
        let (records, good_len) = read_records(&path)?;
        let mut bytes = file.metadata()?.len();
        if bytes > good_len {
            // Cut a torn tail, so that the next append starts on a line of its own.
            file.set_len(good_len)?;
            file.sync_data()?;
            bytes = good_len;
        }
        if bytes == 0 {
            let mut line = serde_json::to_vec(&Header {
                nightshift_sqs_journal: VERSION,
            })
            .map_err(|e| SqsError::Internal(e.to_string()))?;
            line.push(b'\n');
            file.write_all(&line)?;
            file.sync_data()?;
            bytes = line.len() as u64;
        }
        tracing::info!(path = %path.display(), records = records.len(), bytes, "sqs journal opened");
        Ok((
            Journal {
                path,
                file,
                compacted_bytes: bytes,
                config,
                bytes,
                last_sync: Instant::now(),
                buffer: Vec::new(),
            },
            records,
        ))
    }

    /// Appends `records` with one write, syncing per the policy.
    pub fn append(&mut self, records: &[Record]) -> Result<(), SqsError> {
        if records.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        for record in records {
            serde_json::to_writer(&mut self.buffer, record)
                .map_err(|e| SqsError::Internal(e.to_string()))?;
            self.buffer.push(b'\n');
        }
        self.file.write_all(&self.buffer)?;
        self.bytes += self.buffer.len() as u64;
        let sync = match self.config.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        if sync {
            self.file.sync_data()?;
            self.last_sync = Instant::now();
        }
        // Keeps one large batch from pinning memory.
        if self.buffer.capacity() > 4 << 20 {
            self.buffer = Vec::new();
        }
        Ok(())
    }

    /// Whether the journal has grown enough to compact.
    pub fn wants_compaction(&self) -> bool {
        self.bytes > self.config.compact_min_bytes
            && self.bytes > self.compacted_bytes.saturating_mul(2)
    }

    /// Replaces the journal by `records` (the live state), atomically.
    pub fn rewrite(&mut self, records: &[Record]) -> Result<(), SqsError> {
        let tmp = self.path.with_extension("journal.tmp");
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        let header = serde_json::to_vec(&Header {
            nightshift_sqs_journal: VERSION,
        })
        .map_err(|e| SqsError::Internal(e.to_string()))?;
        out.write_all(&header)?;
        out.write_all(b"\n")?;
        for record in records {
            serde_json::to_writer(&mut out, record)
                .map_err(|e| SqsError::Internal(e.to_string()))?;
            out.write_all(b"\n")?;
        }
        let file = out
            .into_inner()
            .map_err(|e| SqsError::Internal(e.to_string()))?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.config.dir);
        let before = self.bytes;
        let file = OpenOptions::new().append(true).open(&self.path)?;
        lock_exclusively(&file, &self.path)?;
        self.file = file;
        self.bytes = self.file.metadata()?.len();
        self.compacted_bytes = self.bytes;
        self.last_sync = Instant::now();
        tracing::info!(
            before,
            after = self.bytes,
            records = records.len(),
            "sqs journal compacted"
        );
        Ok(())
    }

    /// Syncs everything written so far.
    pub fn sync(&mut self) -> Result<(), SqsError> {
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Current size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Takes an advisory lock so that two emulators never append to one journal; it is released
/// when the file is closed, including when the process dies.
fn lock_exclusively(file: &File, path: &Path) -> Result<(), SqsError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(SqsError::Internal(format!(
            "{} is in use by another emulator (or another engine in this process)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => Err(err.into()),
    }
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; not every platform lets a directory be opened, hence best effort.
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Reads the records, and how many leading bytes of the file are whole, valid lines.
fn read_records(path: &Path) -> Result<(Vec<Record>, u64), SqsError> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut records = Vec::new();
    let mut good_len = 0u64;
    let mut line = Vec::new();
    for index in 0.. {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        let at_end = !complete || reader.fill_buf()?.is_empty();
        if line.iter().all(u8::is_ascii_whitespace) {
            if complete {
                good_len += read as u64;
            }
            continue;
        }
        if index == 0 {
            if !complete {
                // The header itself was cut while the file was being created.
                break;
            }
            let header: Header = serde_json::from_slice(&line).map_err(|e| {
                SqsError::Internal(format!("{}: not an sqs journal: {e}", path.display()))
            })?;
            if header.nightshift_sqs_journal != VERSION {
                return Err(SqsError::Internal(format!(
                    "{}: journal version {} is not supported",
                    path.display(),
                    header.nightshift_sqs_journal
                )));
            }
            good_len += read as u64;
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) if complete => {
                records.push(record);
                good_len += read as u64;
            }
            Ok(_) => {
                // A whole record without its newline: the write was cut just before it.
                tracing::warn!(line = index + 1, "ignoring unterminated last journal line");
            }
            Err(err) if at_end => {
                // Only the last line can be torn by a crash mid-write.
                tracing::warn!(line = index + 1, error = %err, "ignoring torn last journal line");
            }
            Err(err) => {
                return Err(SqsError::Internal(format!(
                    "{}: corrupt journal at line {}: {err}",
                    path.display(),
                    index + 1
                )));
            }
        }
    }
    Ok((records, good_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_reopen_and_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig::new(dir.path());
        let (mut journal, records) = Journal::open(config.clone()).unwrap();
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
        // A crash mid-write leaves half a line.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        file.write_all(br#"{"op":"delete","queue":"q","se"#)
            .unwrap();
        drop(file);
        let (mut journal, records) = Journal::open(config.clone()).unwrap();
        assert_eq!(records, vec![create.clone(), delete.clone()]);
        // The torn tail was cut: a later append is readable.
        journal.append(std::slice::from_ref(&delete)).unwrap();
        drop(journal);
        let (journal, records) = Journal::open(config.clone()).unwrap();
        assert_eq!(records, vec![create.clone(), delete.clone(), delete]);
        drop(journal);

        let (mut journal, _) = Journal::open(config.clone()).unwrap();
        journal.rewrite(std::slice::from_ref(&create)).unwrap();
        journal
            .append(&[Record::DeleteQueue { name: "q".into() }])
            .unwrap();
        drop(journal);
        let (_, records) = Journal::open(config).unwrap();
        assert_eq!(
            records,
            vec![create, Record::DeleteQueue { name: "q".into() }]
        );
    }

    #[test]
    fn a_journal_in_use_cannot_be_opened_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(JournalConfig::new(dir.path())).unwrap();
        let err = Journal::open(JournalConfig::new(dir.path())).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(journal);
        Journal::open(JournalConfig::new(dir.path())).unwrap();
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
            Journal::open(JournalConfig::new(dir.path())),
            Err(SqsError::Internal(_))
        ));
    }
}
