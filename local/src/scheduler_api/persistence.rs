//! Where the Scheduler API keeps its groups and schedules: `scheduler.json` in the state dir,
//! rewritten whole on every change (written to a temporary file, synced, renamed over the old
//! one, the directory synced), so a restart, even after `kill -9`, finds either the state
//! before a change or the state after it, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::model::SchedulerState;

/// The file's name in the state dir.
pub const FILE_NAME: &str = "scheduler.json";

/// Why the Scheduler API's file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing or renaming failed.
    #[error("scheduler state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what this emulator writes.
    #[error("scheduler state {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The Scheduler API's file in a state dir.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The file in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Store {
            path: state_dir.join(FILE_NAME),
        }
    }

    /// The kept state; empty when there is no file yet.
    pub fn load(&self) -> Result<SchedulerState, StoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SchedulerState::default());
            }
            Err(source) => return Err(self.io(source)),
        };
        serde_json::from_str(&text).map_err(|source| StoreError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    /// Replaces the file by `state`, atomically.
    pub fn save(&self, state: &SchedulerState) -> Result<(), StoreError> {
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let text = serde_json::to_vec_pretty(state).map_err(|source| StoreError::Parse {
            path: self.path.clone(),
            source,
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler_api::model::StoredGroup;

    #[test]
    fn saves_whole_states_and_ignores_a_write_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), SchedulerState::default());
        let mut state = SchedulerState::default();
        state.groups.insert(
            "orders".into(),
            StoredGroup {
                name: "orders".into(),
                arn: "arn:aws:scheduler:us-east-1:000000000000:schedule-group/orders".into(),
                creation_date: "2026-01-01T00:00:00Z".parse().unwrap(),
                tags: [("team".to_owned(), "growth".to_owned())].into(),
                client_token: None,
            },
        );
        store.save(&state).unwrap();
        // A crash while writing the next state leaves only the temporary file.
        std::fs::write(dir.path().join("scheduler.json.tmp"), b"{\"groups\":").unwrap();
        assert_eq!(store.load().unwrap(), state);
    }

    #[test]
    fn a_file_it_did_not_write_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"not json").unwrap();
        let err = Store::new(dir.path()).load().unwrap_err();
        assert!(matches!(err, StoreError::Parse { .. }));
        assert!(err.to_string().contains("scheduler.json"), "{err}");
    }
}
