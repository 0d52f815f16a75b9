//! The functions' artifacts, read-only: the SQLite store (outcomes, live idempotency claims)
//! and the outbox directory of sent emails.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::info;

use super::{CheckError, io};

fn open_store(path: &Path) -> Result<Option<rusqlite::Connection>, CheckError> {
    use rusqlite::OpenFlags;
    if !path.exists() {
        return Ok(None);
    }
    let err = |e: rusqlite::Error| CheckError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    // Read-only; a WAL database whose -shm is gone may refuse that, so fall back to a
    // connection that refuses writes at the SQL level.
    let conn = match rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) if conn.query_row("SELECT 1", [], |_| Ok(())).is_ok() => conn,
        _ => {
            let conn = rusqlite::Connection::open(path).map_err(err)?;
            conn.execute_batch("PRAGMA query_only = ON;").map_err(err)?;
            conn
        }
    };
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    Ok(Some(conn))
}

fn has_table(conn: &rusqlite::Connection, table: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The latest expiry of an in-progress idempotency claim that is still live, in real time.
fn live_claims_until(path: &Path) -> Result<Option<DateTime<Utc>>, CheckError> {
    let Some(conn) = open_store(path)? else {
        return Ok(None);
    };
    let err = |e: rusqlite::Error| CheckError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if !has_table(&conn, "idempotency").map_err(err)? {
        return Ok(None);
    }
    let now = Utc::now().timestamp_millis();
    let until: Option<i64> = conn
        .query_row(
            "SELECT max(expires_at_ms) FROM idempotency WHERE result IS NULL AND expires_at_ms > ?1",
            [now],
            |row| row.get(0),
        )
        .map_err(err)?;
    Ok(until.and_then(DateTime::from_timestamp_millis))
}

pub(super) fn read_outcomes(path: &Path) -> Result<HashMap<String, String>, CheckError> {
    let Some(conn) = open_store(path)? else {
        return Ok(HashMap::new());
    };
    let err = |e: rusqlite::Error| CheckError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    // nightshift's SqliteStore keeps one row per (job, finish time); the latest is the job's
    // outcome, so rows come in finish order and a later one replaces an earlier in the map.
    if !has_table(&conn, "job_outcomes").map_err(err)? {
        return Ok(HashMap::new());
    }
    let mut statement = conn
        .prepare("SELECT job_id, status FROM job_outcomes ORDER BY job_id, finished_at_ms")
        .map_err(err)?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

/// Waits, in real time, until no live in-progress claim is left (see the module docs).
pub(super) async fn wait_for_claims(path: &Path, bound: Duration) -> Result<(), CheckError> {
    let give_up = Instant::now() + bound;
    loop {
        let Some(until) = live_claims_until(path)? else {
            return Ok(());
        };
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CheckError::Bound(format!(
                "idempotency claims still in progress until {until} after waiting {bound:?}"
            )));
        }
        let wait = (until - Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_add(Duration::from_millis(100))
            .min(left);
        info!(
            wait_ms = wait.as_millis() as u64,
            "waiting for the claims of dead invocations to expire"
        );
        tokio::time::sleep(wait).await;
    }
}

/// The request id of each `.eml` file in `dir`.
pub(super) fn read_outbox(dir: &Path) -> Result<Vec<Option<String>>, CheckError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(format!("cannot read {}", dir.display()))(e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(io(format!("cannot read {}", dir.display())))?
            .path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(io(format!("cannot read {}", path.display())))?;
        ids.push(request_id_of(&text));
    }
    Ok(ids)
}

/// The `X-Nightshift-Request-Id` header of an email.
pub fn request_id_of(eml: &str) -> Option<String> {
    const HEADER: &str = "x-nightshift-request-id:";
    eml.lines()
        .take_while(|l| !l.trim().is_empty())
        .find(|l| {
            l.len() >= HEADER.len()
                && l.as_bytes()[..HEADER.len()].eq_ignore_ascii_case(HEADER.as_bytes())
        })
        .map(|l| l[HEADER.len()..].trim().to_string())
        .filter(|id| !id.is_empty())
}

/// Each store sequence (`key` → last sequence number consumed, balance), as queue-processor
/// keeps them for ordered jobs; empty when the store has no sequences yet.
pub(super) fn read_sequences(path: &Path) -> Result<HashMap<String, (u64, i64)>, CheckError> {
    let Some(conn) = open_store(path)? else {
        return Ok(HashMap::new());
    };
    let err = |e: rusqlite::Error| CheckError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if !has_table(&conn, "sequences").map_err(err)? {
        return Ok(HashMap::new());
    }
    let mut statement = conn
        .prepare("SELECT key, last, balance FROM sequences")
        .map_err(err)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                (row.get::<_, i64>(1)? as u64, row.get::<_, i64>(2)?),
            ))
        })
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}
