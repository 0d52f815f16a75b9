//! Outages shorter than the retry horizon lose nothing and dead-letter nothing: on the
//! emulator's manual clock, with the real template's queues (visibility timeout,
//! `maxReceiveCount`) and the functions' retry plan, a 15-minute outage of the mail server or
//! of the store ends with every email sent exactly once and every DLQ empty.
//!
//! The mail server is a minimal SMTP server on 127.0.0.1 that answers `421` (service not
//! available, the RFC 5321 reply for "try again later") while it is down; the store is the
//! SQLite store behind a switch that fails every call as a transient error while it is down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use nightshift::adapters::mail::{OutboxMailer, SmtpMailer};
use nightshift::adapters::sqlite::SqliteStore;
use nightshift::contracts::JobOutcome;
use nightshift::ports::{Claim, ClaimRequest, SequenceOutcome, Settled, Store, StoreError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::emulator::{Dirs, EMAIL_SENDER, start_with};

/// An SMTP server that accepts every message while up and answers `421` while down.
struct SmtpServer {
    port: u16,
    down: Arc<AtomicBool>,
    /// Request id (`X-Nightshift-Request-Id`) → times received.
    received: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    /// Connections refused with 421.
    refused: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let received = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (d, r, f) = (down.clone(), received.clone(), refused.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (d, r, f) = (d.clone(), r.clone(), f.clone());
                tokio::spawn(async move {
                    let _ = session(socket, &d, &r, &f).await;
                });
            }
        });
        SmtpServer {
            port,
            down,
            received,
            refused,
            task,
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn received(&self) -> BTreeMap<String, usize> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One SMTP session, just enough of RFC 5321 for lettre: greeting, EHLO, MAIL, RCPT, DATA,
/// QUIT. Bounded: at most 1,000 lines of commands and 10,000 lines of data per session.
async fn session(
    socket: tokio::net::TcpStream,
    down: &AtomicBool,
    received: &std::sync::Mutex<BTreeMap<String, usize>>,
    refused: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    if down.load(Ordering::SeqCst) {
        refused.fetch_add(1, Ordering::SeqCst);
        write
            .write_all(b"421 4.3.2 service not available, try again later\r\n")
            .await?;
        return Ok(());
    }
    write.write_all(b"220 localhost ESMTP test\r\n").await?;
    let mut lines = BufReader::new(read).lines();
    for _ in 0..1000 {
        let Some(line) = lines.next_line().await? else {
            return Ok(());
        };
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut id = None;
                for _ in 0..10_000 {
                    let Some(data) = lines.next_line().await? else {
                        return Ok(());
                    };
                    if data == "." {
                        break;
                    }
                    if let Some(v) = data.strip_prefix("X-Nightshift-Request-Id: ") {
                        id = Some(v.trim().to_string());
                    }
                }
                *received
                    .lock()
                    .unwrap()
                    .entry(id.unwrap_or_default())
                    .or_default() += 1;
                b"250 2.0.0 queued\r\n"
            }
            _ => b"502 5.5.2 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

/// The SQLite store behind a switch: while down, every call fails as a transient error (a
/// throttled or unreachable DynamoDB).
struct OutageStore {
    inner: SqliteStore,
    down: AtomicBool,
}

impl OutageStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Transient(
                "injected outage: store unreachable".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for OutageStore {
    async fn claim(&self, key: &str, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        self.check()?;
        self.inner.claim(key, request).await
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        self.check()?;
        self.inner.complete(key, owner, result, expires_at).await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<Settled, StoreError> {
        self.check()?;
        self.inner.release(key, owner).await
    }

    async fn consume_in_sequence(
        &self,
        key: &str,
        sequence: u64,
        delta: Option<i64>,
    ) -> Result<SequenceOutcome, StoreError> {
        self.check()?;
        self.inner.consume_in_sequence(key, sequence, delta).await
    }

    async fn record_outcome(&self, outcome: &JobOutcome) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_outcome(outcome).await
    }

    async fn complete_with_outcome(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: DateTime<Utc>,
        outcome: &JobOutcome,
    ) -> Result<Settled, StoreError> {
        self.check()?;
        self.inner
            .complete_with_outcome(key, owner, result, expires_at, outcome)
            .await
    }

    async fn outcomes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<JobOutcome>, StoreError> {
        self.check()?;
        self.inner.outcomes_between(from, to).await
    }

    async fn suppress(
        &self,
        suppression: &nightshift::ports::Suppression,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.suppress(suppression).await
    }

    async fn suppression(
        &self,
        address: &str,
    ) -> Result<Option<nightshift::ports::Suppression>, StoreError> {
        self.check()?;
        self.inner.suppression(address).await
    }
}

const JOBS: usize = 5;
const START: &str = "2026-11-21T09:30:00Z";
const OUTAGE: Duration = Duration::from_secs(15 * 60);

fn signup(i: usize) -> String {
    serde_json::json!({
        "v": 1,
        "id": format!("job-signup-{i}"),
        "kind": "user.signup",
        "payload": {"user_id": format!("u-{i}"), "email": format!("user{i}@example.com"), "name": format!("User {i}")},
        "submitted_at": START,
    })
    .to_string()
}

fn dirs() -> Dirs {
    Dirs {
        root: tempfile::tempdir().unwrap(),
    }
}

fn assert_nothing_left(h: &nightshift_local::harness::Harness) {
    for q in ["jobs", "jobs-dlq", "emails", "emails-dlq"] {
        let left = h.messages(q).unwrap();
        assert!(left.is_empty(), "{q}: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifteen_minute_mail_server_outage_loses_nothing_and_dead_letters_nothing() {
    let smtp = SmtpServer::start().await;
    smtp.set_down(true);
    let dirs = dirs();
    let store = Arc::new(SqliteStore::open(dirs.db()).unwrap());
    let mailer = Arc::new(SmtpMailer::new("127.0.0.1", smtp.port));
    let (h, _dirs) = start_with(START, dirs, store, mailer).await;
    for i in 0..JOBS {
        h.send("jobs", signup(i)).unwrap();
    }
    h.run_until_idle().await.unwrap();
    h.advance(OUTAGE).await.unwrap();
    assert!(smtp.received().is_empty());
    let refused = smtp.refused.load(Ordering::SeqCst);
    assert!(
        refused >= JOBS * 3,
        "the sender kept trying: {refused} refusals"
    );
    assert!(h.messages("emails-dlq").unwrap().is_empty());
    // The server comes back; within the retry horizon every email goes out, once.
    smtp.set_down(false);
    h.advance(Duration::from_secs(45 * 60)).await.unwrap();
    let received = smtp.received();
    assert_eq!(received.len(), JOBS, "{received:?}");
    assert!(received.values().all(|n| *n == 1), "{received:?}");
    for i in 0..JOBS {
        assert!(received.contains_key(&format!("welcome-job-signup-{i}")));
    }
    assert_nothing_left(&h);
    let attempts = h.invocations_of(EMAIL_SENDER).len();
    assert!(attempts > 3, "{attempts} email-sender invocations");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifteen_minute_store_outage_loses_nothing_and_dead_letters_nothing() {
    let dirs = dirs();
    let store = Arc::new(OutageStore {
        inner: SqliteStore::open(dirs.db()).unwrap(),
        down: AtomicBool::new(true),
    });
    let mailer = Arc::new(OutboxMailer::new(dirs.outbox()).unwrap());
    let (h, dirs) = start_with(START, dirs, store.clone(), mailer).await;
    for i in 0..JOBS {
        h.send("jobs", signup(i)).unwrap();
    }
    h.run_until_idle().await.unwrap();
    h.advance(OUTAGE).await.unwrap();
    assert!(dirs.emails().is_empty());
    assert!(h.messages("jobs-dlq").unwrap().is_empty());
    store.down.store(false, Ordering::SeqCst);
    h.advance(Duration::from_secs(45 * 60)).await.unwrap();
    let emails = dirs.emails();
    assert_eq!(emails.len(), JOBS, "one welcome email per job");
    let mut ids: Vec<&str> = emails
        .iter()
        .filter_map(|e| {
            e.lines()
                .find_map(|l| l.strip_prefix("X-Nightshift-Request-Id: "))
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), JOBS, "{ids:?}");
    assert_nothing_left(&h);
    h.shutdown().await;
}
