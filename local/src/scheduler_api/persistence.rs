//! Where the Scheduler API keeps its groups and schedules: `scheduler.journal` in the state
//! dir, a [`crate::journal`] of [`Change`]s, one line per change, replayed on open and
//! compacted when it grows (the same format, fsync policy and torn-tail rule as the SQS
//! journal). A change is appended before the API answers, so a restart, even after `kill -9`,
//! finds every acknowledged change; each change is a whole put or removal, so replaying one
//! twice (a compaction cut short) changes nothing.
//!
//! Why a journal rather than a file rewritten whole: creating the n-th schedule cost O(n)
//! bytes written, so 100,000 `at()` schedules (a follow-up per signup) took minutes; an append
//! is O(1), and compaction at twice the compacted size keeps the amortised cost O(1).
//!
//! Earlier versions kept the state in `scheduler.json`, rewritten whole; [`Store::open`]
//! reads such a file once, writes its state into the journal and removes it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::model::{SchedulerState, StoredGroup, StoredSchedule};
use crate::journal::{FsyncPolicy, Journal, JournalError, Options};

/// The journal's name in the state dir.
pub const FILE_NAME: &str = "scheduler.journal";

/// The file earlier versions rewrote whole; read once, then removed.
pub const LEGACY_FILE_NAME: &str = "scheduler.json";

const VERSION: u32 = 1;

/// No compaction below this size: about 6,000 schedules' worth of changes.
const COMPACT_MIN_BYTES: u64 = 4 << 20;

/// One change of the kept state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Forget everything (the first record after reading a legacy file).
    Reset,
    /// A group created, or its tags changed.
    PutGroup {
        /// The group as it now is.
        group: StoredGroup,
    },
    /// A group deleted, with its schedules.
    DeleteGroup {
        /// The group's name.
        name: String,
    },
    /// A schedule created, updated or completed.
    PutSchedule {
        /// The schedule as it now is (boxed: it is most of the enum's size).
        schedule: Box<StoredSchedule>,
    },
    /// A schedule deleted.
    DeleteSchedule {
        /// Its group.
        group: String,
        /// Its name.
        name: String,
    },
}

impl SchedulerState {
    /// Applies `change`.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Reset => *self = SchedulerState::default(),
            Change::PutGroup { group } => {
                self.groups.insert(group.name.clone(), group);
            }
            Change::DeleteGroup { name } => {
                self.groups.remove(&name);
                self.schedules.remove(&name);
            }
            Change::PutSchedule { schedule } => {
                self.schedules
                    .entry(schedule.group.clone())
                    .or_default()
                    .insert(schedule.name.clone(), *schedule);
            }
            Change::DeleteSchedule { group, name } => self.remove_schedule(&group, &name),
        }
    }

    /// The changes that rebuild this state from nothing.
    fn changes(&self) -> Vec<Change> {
        let groups = self.groups.values().map(|group| Change::PutGroup {
            group: group.clone(),
        });
        let schedules = self
            .schedules
            .values()
            .flat_map(|s| s.values())
            .map(|schedule| Change::PutSchedule {
                schedule: Box::new(schedule.clone()),
            });
        groups.chain(schedules).collect()
    }
}

/// Why the Scheduler API's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The journal could not be opened, read or appended to.
    #[error("scheduler state: {0}")]
    Journal(#[from] JournalError),
    /// The legacy file could not be read or removed.
    #[error("scheduler state {path}: {source}")]
    Legacy {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The legacy file is not what this emulator wrote.
    #[error("scheduler state {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The Scheduler API's journal in a state dir.
#[derive(Debug)]
pub struct Store {
    journal: Mutex<Journal<Change>>,
}

impl Store {
    /// Opens the journal in `state_dir` (locked to this process) and returns the kept state.
    pub fn open(state_dir: &Path) -> Result<(Store, SchedulerState), StoreError> {
        let (mut journal, changes) = Journal::open(Options {
            path: state_dir.join(FILE_NAME),
            kind: "scheduler",
            version: VERSION,
            fsync: FsyncPolicy::default(),
            compact_min_bytes: COMPACT_MIN_BYTES,
        })?;
        let legacy = state_dir.join(LEGACY_FILE_NAME);
        let mut state = match std::fs::read_to_string(&legacy) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| StoreError::Parse {
                path: legacy.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SchedulerState::default(),
            Err(source) => {
                return Err(StoreError::Legacy {
                    path: legacy,
                    source,
                });
            }
        };
        for change in changes {
            state.apply(change);
        }
        if legacy.exists() {
            // `Reset` first: should the removal below not happen, the next start reads the
            // legacy file, then this journal, and still ends with exactly this state.
            let changes: Vec<Change> = std::iter::once(Change::Reset)
                .chain(state.changes())
                .collect();
            journal.rewrite(&changes)?;
            std::fs::remove_file(&legacy).map_err(|source| StoreError::Legacy {
                path: legacy.clone(),
                source,
            })?;
            tracing::info!(path = %legacy.display(), "legacy scheduler state moved into the journal");
        }
        Ok((
            Store {
                journal: Mutex::new(journal),
            },
            state,
        ))
    }

    /// Appends `change`, which the caller then applies to its state.
    pub fn append(&self, change: &Change) -> Result<(), StoreError> {
        Ok(self.journal().append(std::slice::from_ref(change))?)
    }

    /// Rewrites the journal as `state` when it has grown enough; a failure is logged, as the
    /// journal stays whole and is compacted at a later change.
    pub fn compact_if_due(&self, state: &SchedulerState) {
        let mut journal = self.journal();
        if journal.wants_compaction()
            && let Err(error) = journal.rewrite(&state.changes())
        {
            tracing::error!(%error, "scheduler journal compaction failed");
        }
    }

    /// Syncs the journal to disk; called on orderly shutdown.
    pub fn sync(&self) -> Result<(), StoreError> {
        Ok(self.journal().sync()?)
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal<Change>> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler_api::model::ScheduleRequest;

    fn group(name: &str) -> StoredGroup {
        StoredGroup {
            name: name.into(),
            arn: format!("arn:aws:scheduler:us-east-1:000000000000:schedule-group/{name}"),
            creation_date: "2026-01-01T00:00:00Z".parse().unwrap(),
            tags: [("team".to_owned(), "growth".to_owned())].into(),
            client_token: None,
        }
    }

    fn schedule(group: &str, name: &str) -> StoredSchedule {
        StoredSchedule {
            name: name.into(),
            group: group.into(),
            request: ScheduleRequest::default(),
            arn: format!("arn:aws:scheduler:us-east-1:000000000000:schedule/{group}/{name}"),
            creation_date: "2026-01-01T00:00:00Z".parse().unwrap(),
            last_modification_date: "2026-01-01T00:00:00Z".parse().unwrap(),
            completed: false,
        }
    }

    fn apply_and_append(store: &Store, state: &mut SchedulerState, change: Change) {
        store.append(&change).unwrap();
        state.apply(change);
        store.compact_if_due(state);
    }

    #[test]
    fn changes_survive_reopen_and_compaction_keeps_only_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut state) = Store::open(dir.path()).unwrap();
        assert_eq!(state, SchedulerState::default());
        apply_and_append(
            &store,
            &mut state,
            Change::PutGroup {
                group: group("orders"),
            },
        );
        // Enough churn to pass the compaction floor several times.
        for i in 0..30_000 {
            let name = format!("follow-up-{}", i % 50);
            let change = if i % 3 == 2 {
                Change::DeleteSchedule {
                    group: "orders".into(),
                    name,
                }
            } else {
                Change::PutSchedule {
                    schedule: Box::new(schedule("orders", &name)),
                }
            };
            apply_and_append(&store, &mut state, change);
        }
        let bytes = store.journal().bytes();
        assert!(
            bytes < 2 * COMPACT_MIN_BYTES + 4096,
            "compaction keeps the journal near the state's size, got {bytes}"
        );
        drop(store);
        let (_, reopened) = Store::open(dir.path()).unwrap();
        assert_eq!(reopened, state);
        assert!(reopened.schedules["orders"].len() <= 50);
    }

    #[test]
    fn a_legacy_file_is_moved_into_the_journal_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut legacy = SchedulerState::default();
        legacy.apply(Change::PutGroup {
            group: group("orders"),
        });
        legacy.apply(Change::PutSchedule {
            schedule: Box::new(schedule("orders", "a")),
        });
        std::fs::write(
            dir.path().join(LEGACY_FILE_NAME),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
        let (store, state) = Store::open(dir.path()).unwrap();
        assert_eq!(state, legacy);
        assert!(!dir.path().join(LEGACY_FILE_NAME).exists());
        store
            .append(&Change::DeleteSchedule {
                group: "orders".into(),
                name: "a".into(),
            })
            .unwrap();
        drop(store);
        let (_, state) = Store::open(dir.path()).unwrap();
        assert!(state.schedules.is_empty(), "{state:?}");
        assert!(state.groups.contains_key("orders"));
    }

    #[test]
    fn a_legacy_file_it_did_not_write_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE_NAME), b"not json").unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Parse { .. }));
        assert!(err.to_string().contains("scheduler.json"), "{err}");
    }
}
