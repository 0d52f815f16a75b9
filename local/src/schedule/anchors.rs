//! anchors: where each Scheduler rate without `StartDate` was first started, kept in the state
//! directory so that a restart continues the schedule instead of creating it again.
//!
//! On AWS such a schedule fires once when it is created and then every period; it is created
//! once, at deploy time, not each time something restarts. The emulator "creates" its schedules
//! when it starts, so without this file every `nightshift up` would fire every rate schedule at
//! once again. With it, a schedule whose anchor is stored (for the same expression) keeps its
//! grid `anchor + k * period` and its first fire after a restart is the next grid point after
//! the clock's now; occurrences that fell while the emulator was down are not made up.
//!
//! The file is `schedules.json` (`{"<logical id>": {"expression": .., "anchor": ..}}`). A
//! missing file means nothing was started yet; an unreadable one is logged and treated as
//! missing (the worst outcome is one extra immediate fire), a failed write is logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// File name of the anchors inside the state directory.
pub const FILE_NAME: &str = "schedules.json";

/// Where a schedule's rate grid starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The expression the anchor belongs to; a changed expression starts afresh.
    pub expression: String,
    /// When the schedule was first started (its immediate first fire).
    pub anchor: DateTime<Utc>,
}

/// The anchors file of one state directory.
#[derive(Debug, Clone)]
pub struct AnchorStore {
    path: PathBuf,
}

impl AnchorStore {
    /// The store in directory `dir` (created on first save).
    pub fn new(dir: &Path) -> Self {
        AnchorStore {
            path: dir.join(FILE_NAME),
        }
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored anchors by logical id; empty when there is no (readable) file.
    pub fn load(&self) -> BTreeMap<String, Anchor> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the schedule anchors; rate schedules start afresh");
                return BTreeMap::new();
            }
        };
        serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "unreadable schedule anchors; rate schedules start afresh");
            BTreeMap::new()
        })
    }

    /// Replaces the file with `anchors` (written to a temporary file, then renamed).
    pub fn save(&self, anchors: &BTreeMap<String, Anchor>) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("json.tmp");
            let text = serde_json::to_string_pretty(anchors).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot store the schedule anchors; a restart fires rate schedules at once again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_missing_or_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = AnchorStore::new(&dir.path().join("state"));
        assert!(store.load().is_empty());
        let anchors = BTreeMap::from([(
            "Poll".to_owned(),
            Anchor {
                expression: "rate(5 minutes)".to_owned(),
                anchor: "2026-01-01T00:00:00Z".parse().unwrap(),
            },
        )]);
        store.save(&anchors);
        assert_eq!(store.load(), anchors);
        std::fs::write(store.path(), "not json").unwrap();
        assert!(store.load().is_empty());
    }
}
