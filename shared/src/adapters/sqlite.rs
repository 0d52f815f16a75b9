//! The store on SQLite (`sqlite://path/to/state.db`), the local default.
//!
//! Function instances run as separate processes against one file, so the database is in WAL
//! mode with a busy timeout, and a claim is one `BEGIN IMMEDIATE` transaction: two
//! instances claiming the same key serialize on the write lock and exactly one wins.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::claim_decision;
use crate::contracts::{CONTRACT_VERSION, JobOutcome, OutcomeStatus};
use crate::ports::{Claim, Store, StoreError};

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn classify(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Transient(err.to_string())
        }
        _ => StoreError::Permanent(err.to_string()),
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating it and its directory when missing) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Permanent(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(&path).map_err(classify)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(classify)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS idempotency (
                 key TEXT PRIMARY KEY,
                 result TEXT,
                 expires_at_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS outcomes (
                 job_id TEXT PRIMARY KEY,
                 kind TEXT NOT NULL,
                 status TEXT NOT NULL,
                 submitted_at_ms INTEGER NOT NULL,
                 latency_ms INTEGER NOT NULL,
                 error TEXT
             );
             CREATE INDEX IF NOT EXISTS outcomes_by_time ON outcomes (submitted_at_ms);",
        )
        .map_err(classify)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        // SQLite calls block (and may wait on the busy timeout): keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Transient(format!("store task failed: {e}")))?
        .map_err(classify)
    }
}

fn complete_key(
    conn: &Connection,
    key: &str,
    result: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO idempotency (key, result, expires_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![key, result, ms(expires_at)])
    .map(|_| ())
}

fn insert_outcome(conn: &Connection, o: &JobOutcome) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO outcomes (job_id, kind, status, submitted_at_ms, latency_ms, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        o.job_id,
        o.kind,
        o.status.as_str(),
        ms(o.submitted_at),
        o.latency_ms as i64,
        o.error
    ])
    .map(|_| ())
}

#[async_trait]
impl Store for SqliteStore {
    async fn claim(
        &self,
        key: &str,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let key = key.to_string();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = tx
                .prepare_cached("SELECT result, expires_at_ms FROM idempotency WHERE key = ?1")?
                .query_row(params![key], |row| {
                    Ok((row.get::<_, Option<String>>(0)?, from_ms(row.get(1)?)))
                })
                .optional()?;
            let claim = claim_decision(existing, now);
            if claim == Claim::Acquired {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO idempotency (key, result, expires_at_ms) VALUES (?1, NULL, ?2)",
                )?
                .execute(params![key, ms(in_progress_until)])?;
            }
            tx.commit()?;
            Ok(claim)
        })
        .await
    }

    async fn complete(
        &self,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (key, result) = (key.to_string(), result.to_string());
        self.with_conn(move |conn| complete_key(conn, &key, &result, expires_at))
            .await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.with_conn(move |conn| {
            conn.prepare_cached("DELETE FROM idempotency WHERE key = ?1 AND result IS NULL")?
                .execute(params![key])
                .map(|_| ())
        })
        .await
    }

    async fn record_outcome(&self, outcome: &JobOutcome) -> Result<(), StoreError> {
        let o = outcome.clone();
        self.with_conn(move |conn| insert_outcome(conn, &o)).await
    }

    async fn complete_with_outcome(
        &self,
        key: &str,
        result: &str,
        expires_at: DateTime<Utc>,
        outcome: &JobOutcome,
    ) -> Result<(), StoreError> {
        let (key, result, o) = (key.to_string(), result.to_string(), outcome.clone());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert_outcome(&tx, &o)?;
            complete_key(&tx, &key, &result, expires_at)?;
            tx.commit()
        })
        .await
    }

    async fn outcomes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<JobOutcome>, StoreError> {
        let rows = self
            .with_conn(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT job_id, kind, status, submitted_at_ms, latency_ms, error FROM outcomes
                     WHERE submitted_at_ms >= ?1 AND submitted_at_ms < ?2 ORDER BY submitted_at_ms, job_id",
                )?;
                let rows = stmt.query_map(params![ms(from), ms(to)], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, Option<String>>(5)?,
                    ))
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await?;
        rows.into_iter()
            .map(|(job_id, kind, status, submitted, latency, error)| {
                let status = match status.as_str() {
                    "succeeded" => OutcomeStatus::Succeeded,
                    "failed" => OutcomeStatus::Failed,
                    other => {
                        return Err(StoreError::Permanent(format!(
                            "outcome {job_id} has unknown status {other:?}"
                        )));
                    }
                };
                Ok(JobOutcome {
                    v: CONTRACT_VERSION,
                    job_id,
                    kind,
                    status,
                    submitted_at: from_ms(submitted),
                    latency_ms: latency.max(0) as u64,
                    error,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn claim_complete_release_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("nested/state.db")).unwrap();
        let now = t("2026-11-22T10:00:00Z");
        let until = t("2026-11-22T10:00:30Z");
        assert_eq!(store.claim("k", now, until).await.unwrap(), Claim::Acquired);
        assert_eq!(
            store.claim("k", now, until).await.unwrap(),
            Claim::InProgress { until }
        );
        // After the holder's deadline the claim can be taken over.
        assert_eq!(
            store
                .claim("k", t("2026-11-22T10:00:31Z"), until)
                .await
                .unwrap(),
            Claim::Acquired
        );
        store
            .complete("k", "ok", t("2026-11-23T10:00:00Z"))
            .await
            .unwrap();
        assert_eq!(
            store.claim("k", now, until).await.unwrap(),
            Claim::Completed("ok".into())
        );
        // Release does not delete a completed record.
        store.release("k").await.unwrap();
        assert_eq!(
            store.claim("k", now, until).await.unwrap(),
            Claim::Completed("ok".into())
        );
        assert_eq!(
            store
                .claim("k", t("2026-11-23T10:00:01Z"), until)
                .await
                .unwrap(),
            Claim::Acquired
        );
        store.release("k").await.unwrap();
        assert_eq!(store.claim("k", now, until).await.unwrap(), Claim::Acquired);
    }

    #[tokio::test]
    async fn two_connections_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        let now = t("2026-11-22T10:00:00Z");
        let until = t("2026-11-22T10:00:30Z");
        let mut wins = 0;
        for i in 0..20 {
            let key = format!("k{i}");
            let (ra, rb) = tokio::join!(a.claim(&key, now, until), b.claim(&key, now, until));
            wins += [ra.unwrap(), rb.unwrap()]
                .iter()
                .filter(|c| **c == Claim::Acquired)
                .count();
        }
        assert_eq!(wins, 20);
    }

    #[tokio::test]
    async fn outcomes_by_time_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
        for (id, at) in [
            ("a", "2026-11-21T00:00:00Z"),
            ("b", "2026-11-21T23:59:59Z"),
            ("c", "2026-11-22T00:00:00Z"),
        ] {
            store
                .record_outcome(&JobOutcome {
                    v: 1,
                    job_id: id.into(),
                    kind: "order.placed".into(),
                    status: OutcomeStatus::Succeeded,
                    submitted_at: t(at),
                    latency_ms: 5,
                    error: None,
                })
                .await
                .unwrap();
        }
        let day = store
            .outcomes_between(t("2026-11-21T00:00:00Z"), t("2026-11-22T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(
            day.iter().map(|o| o.job_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[tokio::test]
    async fn complete_with_outcome_writes_both_or_neither() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
        let (now, until) = (t("2026-11-22T10:00:00Z"), t("2026-11-22T10:00:30Z"));
        let outcome = JobOutcome {
            v: 1,
            job_id: "j-1".into(),
            kind: "user.signup".into(),
            status: OutcomeStatus::Succeeded,
            submitted_at: t("2026-11-22T09:59:00Z"),
            latency_ms: 7,
            error: None,
        };
        assert_eq!(
            store.claim("job:j-1", now, until).await.unwrap(),
            Claim::Acquired
        );
        store
            .complete_with_outcome("job:j-1", "done", t("2026-11-23T10:00:00Z"), &outcome)
            .await
            .unwrap();
        assert_eq!(
            store.claim("job:j-1", now, until).await.unwrap(),
            Claim::Completed("done".into())
        );
        let day = t("2026-11-22T00:00:00Z");
        let outcomes = store
            .outcomes_between(day, day + chrono::Duration::days(1))
            .await
            .unwrap();
        assert_eq!(outcomes, std::slice::from_ref(&outcome));

        // When completing the claim fails, after the outcome was written, the outcome is
        // rolled back with it: the claim stays in progress and nothing is recorded.
        assert_eq!(
            store.claim("job:j-2", now, until).await.unwrap(),
            Claim::Acquired
        );
        store
            .with_conn(|conn| {
                conn.execute_batch(
                    "CREATE TRIGGER refuse_completion BEFORE INSERT ON idempotency
                     WHEN NEW.result IS NOT NULL BEGIN SELECT RAISE(ABORT, 'injected'); END;",
                )
            })
            .await
            .unwrap();
        let other = JobOutcome {
            job_id: "j-2".into(),
            ..outcome
        };
        assert!(
            store
                .complete_with_outcome("job:j-2", "done", t("2026-11-23T10:00:00Z"), &other)
                .await
                .is_err()
        );
        assert_eq!(
            store.claim("job:j-2", now, until).await.unwrap(),
            Claim::InProgress { until }
        );
        let outcomes = store
            .outcomes_between(day, day + chrono::Duration::days(1))
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    }
}
