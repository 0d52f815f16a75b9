//! An append-only journal of JSON lines, the emulator's way of keeping state in its state dir:
//! the SQS engine journals every queue and message change in it, the Scheduler API every
//! group and schedule change. Each keeps its own record type and replays the records on open.
//!
//! Format: the first line is a header `{"nightshift_<kind>_journal": <version>}`, then one
//! record per line. An append is a single `write` before the operation answers, so a SIGKILL
//! of the emulator never loses an acknowledged change (the data is in the kernel). Only the
//! last line can be torn (power loss mid-write): it is ignored on replay and cut, so that the
//! next append starts on a line of its own; a bad line anywhere else is an error naming it.
//!
//! fsync policy ([`FsyncPolicy`]): `Never` relies on the kernel (survives process crashes,
//! not power loss); `Always` calls `fdatasync` before every answer; `Interval(d)` (the
//! default, 1 s) calls it on an append when the last sync is older than `d`, so at most `d`
//! of acknowledged changes can be lost to a power cut, at the price of one sync per `d`.
//! Compaction ([`Journal::rewrite`]) and shutdown always sync.
//!
//! Compaction writes the live state as records into `<file>.tmp`, syncs it and renames it over
//! the journal. The owner runs it when [`Journal::wants_compaction`]: the journal exceeds both
//! its floor and twice its size after the previous compaction, so the work is amortised to a
//! constant per append however large the state.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// Where a journal lives and how it syncs and compacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The journal file (its directory is created if missing).
    pub path: PathBuf,
    /// What the header calls it: `sqs` writes `{"nightshift_sqs_journal": 1}`.
    pub kind: &'static str,
    /// The format version this code reads and writes.
    pub version: u32,
    /// When to sync.
    pub fsync: FsyncPolicy,
    /// No compaction below this size.
    pub compact_min_bytes: u64,
}

/// Why a journal could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file system refused.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The journal.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another emulator (or another engine in this process) has the journal open.
    #[error("{} is in use by another emulator (or another engine in this process)", .0.display())]
    InUse(PathBuf),
    /// The file is not a journal of this kind and version, or a line before the last is bad.
    #[error("{}: {message}", .path.display())]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// What is wrong, and on which line.
        message: String,
    },
}

/// An open journal of records `R`.
#[derive(Debug)]
pub struct Journal<R> {
    options: Options,
    file: File,
    bytes: u64,
    compacted_bytes: u64,
    last_sync: Instant,
    buffer: Vec<u8>,
    records: PhantomData<fn(R)>,
}

impl<R: Serialize + DeserializeOwned> Journal<R> {
    /// Opens (or creates) the journal, locked to this process, with the records to replay.
    pub fn open(options: Options) -> Result<(Self, Vec<R>), JournalError> {
        let path = options.path.clone();
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        lock_exclusively(&file, &path)?;
        let (records, good_len) = read_records(&options)?;
        let mut bytes = file.metadata().map_err(io)?.len();
        if bytes > good_len {
            file.set_len(good_len).map_err(io)?;
            file.sync_data().map_err(io)?;
            bytes = good_len;
        }
        if bytes == 0 {
            let line = header_line(&options);
            file.write_all(&line).map_err(io)?;
            file.sync_data().map_err(io)?;
            bytes = line.len() as u64;
        }
        tracing::info!(path = %path.display(), records = records.len(), bytes, "journal opened");
        Ok((
            Journal {
                options,
                file,
                bytes,
                compacted_bytes: bytes,
                last_sync: Instant::now(),
                buffer: Vec::new(),
                records: PhantomData,
            },
            records,
        ))
    }

    /// Appends `records` with one write, syncing per the policy.
    pub fn append(&mut self, records: &[R]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        for record in records {
            serde_json::to_writer(&mut self.buffer, record).map_err(|e| self.corrupt(e))?;
            self.buffer.push(b'\n');
        }
        self.file.write_all(&self.buffer).map_err(|e| self.io(e))?;
        self.bytes += self.buffer.len() as u64;
        let sync = match self.options.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        if sync {
            self.sync()?;
        }
        // Keeps one large batch from pinning memory.
        if self.buffer.capacity() > 4 << 20 {
            self.buffer = Vec::new();
        }
        Ok(())
    }

    /// Whether the journal has grown enough to compact.
    pub fn wants_compaction(&self) -> bool {
        self.bytes > self.options.compact_min_bytes
            && self.bytes > self.compacted_bytes.saturating_mul(2)
    }

    /// Replaces the journal by `records` (the live state), atomically.
    pub fn rewrite<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a R>,
    ) -> Result<(), JournalError>
    where
        R: 'a,
    {
        let path = &self.options.path;
        let tmp = path.with_extension(match path.extension() {
            Some(ext) => format!("{}.tmp", ext.to_string_lossy()),
            None => "tmp".to_owned(),
        });
        let mut count = 0usize;
        let write = || -> std::io::Result<File> {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            out.write_all(&header_line(&self.options))?;
            for record in records {
                serde_json::to_writer(&mut out, record)?;
                out.write_all(b"\n")?;
                count += 1;
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)?;
            sync_dir(path);
            OpenOptions::new().append(true).open(path)
        };
        let file = write().map_err(|e| self.io(e))?;
        lock_exclusively(&file, path)?;
        let before = self.bytes;
        self.file = file;
        self.bytes = self.file.metadata().map_err(|e| self.io(e))?.len();
        self.compacted_bytes = self.bytes;
        self.last_sync = Instant::now();
        tracing::info!(
            path = %self.options.path.display(),
            before,
            after = self.bytes,
            records = count,
            "journal compacted"
        );
        Ok(())
    }

    /// Syncs everything written so far.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.file.sync_data().map_err(|e| self.io(e))?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Current size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.options.path.clone(),
            source,
        }
    }

    fn corrupt(&self, e: serde_json::Error) -> JournalError {
        JournalError::Corrupt {
            path: self.options.path.clone(),
            message: format!("record not serialisable: {e}"),
        }
    }
}

fn header_key(options: &Options) -> String {
    format!("nightshift_{}_journal", options.kind)
}

fn header_line(options: &Options) -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({ header_key(options): options.version }))
        .expect("a one-key object serialises");
    line.push(b'\n');
    line
}

/// Takes an advisory lock so that two emulators never append to one journal; it is released
/// when the file is closed, including when the process dies.
fn lock_exclusively(file: &File, path: &Path) -> Result<(), JournalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::InUse(path.to_owned())),
        Err(std::fs::TryLockError::Error(source)) => Err(JournalError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn sync_dir(path: &Path) {
    // Makes the rename durable; not every platform lets a directory be opened, hence best effort.
    if let Some(handle) = path.parent().and_then(|dir| File::open(dir).ok()) {
        let _ = handle.sync_all();
    }
}

/// Reads the records, and how many leading bytes of the file are whole, valid lines.
fn read_records<R: DeserializeOwned>(options: &Options) -> Result<(Vec<R>, u64), JournalError> {
    let path = &options.path;
    let io = |source| JournalError::Io {
        path: path.clone(),
        source,
    };
    let corrupt = |message: String| JournalError::Corrupt {
        path: path.clone(),
        message,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut records = Vec::new();
    let mut good_len = 0u64;
    let mut line = Vec::new();
    for index in 0.. {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(io)?;
        if read == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        let at_end = !complete || reader.fill_buf().map_err(io)?.is_empty();
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
            let key = header_key(options);
            let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&line)
                .map_err(|e| corrupt(format!("not a {} journal: {e}", options.kind)))?;
            match header.get(&key).and_then(serde_json::Value::as_u64) {
                Some(v) if v == u64::from(options.version) => {}
                Some(v) => {
                    return Err(corrupt(format!("journal version {v} is not supported")));
                }
                None => {
                    return Err(corrupt(format!(
                        "not a {} journal: its first line has no {key}",
                        options.kind
                    )));
                }
            }
            good_len += read as u64;
            continue;
        }
        match serde_json::from_slice::<R>(&line) {
            Ok(record) if complete => {
                records.push(record);
                good_len += read as u64;
            }
            Ok(_) => {
                // A whole record without its newline: the write was cut just before it.
                tracing::warn!(path = %path.display(), line = index + 1, "ignoring unterminated last journal line");
            }
            Err(err) if at_end => {
                // Only the last line can be torn by a crash mid-write.
                tracing::warn!(path = %path.display(), line = index + 1, error = %err, "ignoring torn last journal line");
            }
            Err(err) => {
                return Err(corrupt(format!(
                    "corrupt journal at line {}: {err}",
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

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Op {
        Put { key: String, value: u32 },
        Remove { key: String },
    }

    fn options(dir: &Path) -> Options {
        Options {
            path: dir.join("test.journal"),
            kind: "test",
            version: 1,
            fsync: FsyncPolicy::Never,
            compact_min_bytes: 0,
        }
    }

    fn put(key: &str, value: u32) -> Op {
        Op::Put {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, records) = Journal::<Op>::open(options(dir.path())).unwrap();
        assert!(records.is_empty());
        journal.append(&[put("a", 1), put("b", 2)]).unwrap();
        drop(journal);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("test.journal"))
            .unwrap();
        file.write_all(br#"{"op":"remove","ke"#).unwrap();
        drop(file);
        let (mut journal, records) = Journal::<Op>::open(options(dir.path())).unwrap();
        assert_eq!(records, vec![put("a", 1), put("b", 2)]);
        journal.append(&[Op::Remove { key: "a".into() }]).unwrap();
        drop(journal);
        let (_, records) = Journal::<Op>::open(options(dir.path())).unwrap();
        assert_eq!(
            records,
            vec![put("a", 1), put("b", 2), Op::Remove { key: "a".into() }]
        );
    }

    #[test]
    fn a_rewrite_replaces_the_history_and_later_appends_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::<Op>::open(options(dir.path())).unwrap();
        journal
            .append(&[put("a", 1), put("a", 2), put("b", 3)])
            .unwrap();
        assert!(journal.wants_compaction());
        journal.rewrite(&[put("a", 2), put("b", 3)]).unwrap();
        assert!(!journal.wants_compaction(), "just compacted");
        journal.append(&[Op::Remove { key: "b".into() }]).unwrap();
        drop(journal);
        let (_, records) = Journal::<Op>::open(options(dir.path())).unwrap();
        assert_eq!(
            records,
            vec![put("a", 2), put("b", 3), Op::Remove { key: "b".into() }]
        );
        assert!(!dir.path().join("test.journal.tmp").exists());
    }

    #[test]
    fn in_use_wrong_kind_and_a_bad_middle_line_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::<Op>::open(options(dir.path())).unwrap();
        let err = Journal::<Op>::open(options(dir.path())).unwrap_err();
        assert!(matches!(err, JournalError::InUse(_)), "{err}");
        drop(journal);

        let other = Options {
            kind: "other",
            ..options(dir.path())
        };
        let err = Journal::<Op>::open(other).unwrap_err();
        assert!(err.to_string().contains("not a other journal"), "{err}");

        std::fs::write(
            dir.path().join("test.journal"),
            "{\"nightshift_test_journal\":1}\nnot json\n{\"op\":\"remove\",\"key\":\"a\"}\n",
        )
        .unwrap();
        let err = Journal::<Op>::open(options(dir.path())).unwrap_err();
        assert!(err.to_string().contains("test.journal"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");

        std::fs::write(
            dir.path().join("test.journal"),
            "{\"nightshift_test_journal\":9}\n",
        )
        .unwrap();
        let err = Journal::<Op>::open(options(dir.path())).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }
}
