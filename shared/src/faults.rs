//! Fault injection inside the functions, for the emulator's reliability checker
//! (`nightshift check`) and for `nightshift up --faults`.
//!
//! It is compiled only with the crate's `faults` feature, which the emulator's builds turn on
//! and deploy builds (`sam build`, `cargo lambda build --release`) leave off: a deployed
//! function cannot be made to crash or duplicate emails by editing its environment, and one
//! that finds `NIGHTSHIFT_FAULTS` set refuses to start ([`crate::wiring::apply_faults`]).
//!
//! Nothing here does anything unless [`FAULTS_VAR`] (`NIGHTSHIFT_FAULTS`) is set in the
//! function's environment. Its value is a comma-separated list of `[function:]fault[=rate]`:
//!
//! ```text
//! NIGHTSHIFT_FAULTS=crash=0.02,timeout=0.005,error=0.05,email-sender:mail-throttle=0.1
//! NIGHTSHIFT_FAULT_SEED=7
//! ```
//!
//! - `crash`: before starting a record, the batch processor waits for the records it already
//!   started, then calls [`std::process::abort`]: the invocation dies mid-batch with the
//!   earlier records' effects done and the later ones not begun, and never answers;
//! - `timeout`: the same, but it sleeps past the invocation's deadline instead (the runtime
//!   kills the instance at the deadline; if nothing does, it aborts itself after it);
//! - `error`: the record's handler fails with a retryable error without running;
//! - `mail-throttle`: the mailer answers a retryable throttling error without sending;
//! - `crash-before-complete`: the store aborts the process when the handler completes an
//!   idempotency record, that is after all of the record's effects: in queue-processor the
//!   retry runs the job again and enqueues its email again, which email-sender must send
//!   once; in email-sender it is the same gap as `crash-after-send`;
//! - `crash-after-send`: the mailer sends, then the process aborts before the handler can
//!   complete the idempotency record. This is the at-least-once gap no idempotency store can
//!   close (see the README's "Reliability checker"): the retry sends the email again.
//!
//! `crash` and `timeout` wait for the records already started so that they never land inside
//! one at a random point: their outcome is reproducible. The two `crash-…` faults land inside
//! a record at the points that matter, and may also cut short other records of the batch.
//!
//! A fault given without a rate takes [`Fault::default_rate`]. A `function:` prefix limits an
//! item to the functions whose name (`AWS_LAMBDA_FUNCTION_NAME`) contains it, ignoring case
//! and punctuation (`email-sender` matches `nightshift-EmailSenderFunction`); later items
//! override earlier ones.
//!
//! Decisions are deterministic: each is a hash of the seed ([`FAULT_SEED_VAR`]), the fault
//! and what is being processed (a record's body and `ApproximateReceiveCount`), so the same
//! delivery meets the same fate in every process and every run, and a redelivery rolls
//! again. Every injected fault is logged as `injected fault: <name>` at warn level.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsMessage;
use tokio::time::Instant;

use crate::config::{ConfigError, Env};
use crate::contracts::JobOutcome;
use crate::ports::{
    Claim, ClaimRequest, MailError, Mailer, OutgoingEmail, SequenceOutcome, Settled, Store,
    StoreError,
};
use crate::record::receive_count;

pub use nightshift_contract::faults::{
    FAULT_SEED_VAR, FAULTS_VAR, FUNCTION_NAME_VAR, Fault, FaultError, FaultItem, parse_items,
    selects, unit,
};

/// The names of the faults the functions know, for errors.
fn known() -> String {
    let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    names.join(", ")
}

/// The faults one function injects, with their rates and the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    seed: u64,
    rates: BTreeMap<Fault, f64>,
}

impl Faults {
    /// The faults of `spec` that apply to the function called `function` (items with a
    /// `function:` prefix are skipped when the name is unknown).
    pub fn parse(spec: &str, seed: u64, function: Option<&str>) -> Result<Faults, FaultError> {
        let mut rates = BTreeMap::new();
        for item in parse_items(spec)? {
            // Every item is checked, also those meant for another function.
            let fault = Fault::from_name(&item.name).ok_or_else(|| item.unknown(&known()))?;
            let rate = item.rate_or(fault.default_rate())?;
            let applies = match (&item.function, function) {
                (None, _) => true,
                (Some(prefix), Some(name)) => selects(prefix, name),
                (Some(_), None) => false,
            };
            if applies {
                rates.insert(fault, rate);
            }
        }
        Ok(Faults { seed, rates })
    }

    /// The faults configured by `env`: `None` when [`FAULTS_VAR`] is unset or blank.
    pub fn from_env(env: &Env) -> Result<Option<Faults>, FaultError> {
        let Some(spec) = env.get(FAULTS_VAR) else {
            return Ok(None);
        };
        let seed = match env.get(FAULT_SEED_VAR) {
            None => 0,
            Some(s) => s.trim().parse().map_err(|_| FaultError::Seed(s.clone()))?,
        };
        let function = env.get(FUNCTION_NAME_VAR);
        Faults::parse(&spec, seed, function.as_deref()).map(Some)
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The rate of `fault` (0 when not injected).
    pub fn rate(&self, fault: Fault) -> f64 {
        self.rates.get(&fault).copied().unwrap_or(0.0)
    }

    /// Whether `fault` strikes the work identified by `key`.
    pub fn strikes(&self, fault: Fault, key: &str) -> bool {
        let rate = self.rate(fault);
        rate > 0.0 && unit(self.seed, &[fault.name().as_bytes(), key.as_bytes()]) < rate
    }

    /// The batch-level fault (crash or timeout) that strikes before `record` starts, if any.
    pub fn batch_fault(&self, record: &SqsMessage) -> Option<BatchFault> {
        let key = record_key(record);
        if self.strikes(Fault::Crash, &key) {
            Some(BatchFault::Crash)
        } else if self.strikes(Fault::Timeout, &key) {
            Some(BatchFault::Timeout)
        } else {
            None
        }
    }

    /// The reason of an injected retryable error for `record`, if one strikes.
    pub fn record_error(&self, record: &SqsMessage) -> Option<String> {
        self.strikes(Fault::Error, &record_key(record)).then(|| {
            tracing::warn!(fault = "error", "injected fault: error");
            // Not the log line's wording, so that counting the log counts each fault once.
            "retryable error (fault injection)".to_string()
        })
    }
}

/// A fault that takes the whole invocation down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFault {
    /// Abort the process now.
    Crash,
    /// Sleep past the deadline, then abort if still alive.
    Timeout,
}

impl BatchFault {
    /// Strikes. Never returns: the process aborts (after the deadline for a timeout, unless
    /// the runtime kills it first, as Lambda does).
    pub async fn strike(self, deadline: Instant) {
        match self {
            BatchFault::Crash => {
                tracing::warn!(fault = "crash", "injected fault: crash");
            }
            BatchFault::Timeout => {
                tracing::warn!(fault = "timeout", "injected fault: timeout");
                tokio::time::sleep_until(deadline + Duration::from_secs(2)).await;
                tracing::warn!("still alive after the deadline, aborting");
            }
        }
        std::process::abort();
    }
}

/// What identifies one delivery of a record for fault decisions: a hash of its body and its
/// receive count (message ids are random, bodies are what the sender chose).
pub fn record_key(record: &SqsMessage) -> String {
    let body = record.body.as_deref().unwrap_or("");
    let hash = unit(0, &[body.as_bytes()]);
    format!("{:016x}#{}", hash.to_bits(), receive_count(record))
}

tokio::task_local! {
    static RECORD_KEY: String;
}

/// Runs `fut` with `key` as the current record, so the mailer's faults roll per delivery.
pub async fn scoped<F: Future>(key: String, fut: F) -> F::Output {
    RECORD_KEY.scope(key, fut).await
}

/// The key of the record being processed by the current task, if any.
pub fn current_key() -> Option<String> {
    RECORD_KEY.try_with(Clone::clone).ok()
}

/// A mailer that injects `mail-throttle` and `crash-after-send`.
pub struct FaultyMailer {
    inner: Arc<dyn Mailer>,
    faults: Arc<Faults>,
}

impl FaultyMailer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Mailer>, faults: Arc<Faults>) -> Self {
        FaultyMailer { inner, faults }
    }
}

#[async_trait]
impl Mailer for FaultyMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        // Outside a record (no batch), the request id alone decides: the same every time.
        let key = current_key().unwrap_or_else(|| format!("email:{}", email.request_id));
        if self.faults.strikes(Fault::MailThrottle, &key) {
            tracing::warn!(fault = "mail-throttle", request_id = %email.request_id, "injected fault: mail-throttle");
            return Err(MailError::Transient(
                "throttling: maximum sending rate exceeded (injected fault)".into(),
            ));
        }
        let sent = self.inner.send(email).await?;
        if self.faults.strikes(Fault::CrashAfterSend, &key) {
            tracing::warn!(fault = "crash-after-send", request_id = %email.request_id, "injected fault: crash-after-send");
            std::process::abort();
        }
        Ok(sent)
    }
}

/// `mailer` wrapped in a [`FaultyMailer`] when `env` sets faults for it, unchanged otherwise.
pub fn wrap_mailer(env: &Env, mailer: Arc<dyn Mailer>) -> Result<Arc<dyn Mailer>, ConfigError> {
    Ok(match faults_of(env)? {
        Some(f) if f.rate(Fault::MailThrottle) > 0.0 || f.rate(Fault::CrashAfterSend) > 0.0 => {
            Arc::new(FaultyMailer::new(mailer, Arc::new(f)))
        }
        _ => mailer,
    })
}

/// A store that injects `crash-before-complete`.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, faults: Arc<Faults>) -> Self {
        FaultyStore { inner, faults }
    }

    /// Aborts the process when the fault strikes `key`: the work is done, its claim is not.
    fn crash_before_complete(&self, key: &str) {
        // Outside a record, the idempotency key alone decides.
        let roll = current_key().unwrap_or_else(|| key.to_string());
        if self.faults.strikes(Fault::CrashBeforeComplete, &roll) {
            tracing::warn!(
                fault = "crash-before-complete",
                key,
                "injected fault: crash-before-complete"
            );
            std::process::abort();
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn claim(&self, key: &str, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        self.inner.claim(key, request).await
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Settled, StoreError> {
        self.crash_before_complete(key);
        self.inner.complete(key, owner, result, expires_at).await
    }

    async fn complete_with_outcome(
        &self,
        key: &str,
        owner: &str,
        result: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
        outcome: &JobOutcome,
    ) -> Result<Settled, StoreError> {
        self.crash_before_complete(key);
        self.inner
            .complete_with_outcome(key, owner, result, expires_at, outcome)
            .await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<Settled, StoreError> {
        self.inner.release(key, owner).await
    }

    async fn consume_in_sequence(
        &self,
        key: &str,
        sequence: u64,
        delta: Option<i64>,
    ) -> Result<SequenceOutcome, StoreError> {
        self.inner.consume_in_sequence(key, sequence, delta).await
    }

    async fn record_outcome(&self, outcome: &JobOutcome) -> Result<(), StoreError> {
        self.inner.record_outcome(outcome).await
    }

    async fn outcomes_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<JobOutcome>, StoreError> {
        self.inner.outcomes_between(from, to).await
    }

    async fn suppress(&self, suppression: &crate::ports::Suppression) -> Result<(), StoreError> {
        self.inner.suppress(suppression).await
    }

    async fn suppression(
        &self,
        address: &str,
    ) -> Result<Option<crate::ports::Suppression>, StoreError> {
        self.inner.suppression(address).await
    }
}

fn faults_of(env: &Env) -> Result<Option<Faults>, ConfigError> {
    Faults::from_env(env).map_err(|e| ConfigError::Invalid {
        var: FAULTS_VAR.to_string(),
        value: env.get(FAULTS_VAR).unwrap_or_default(),
        reason: e.to_string(),
    })
}

/// `store` wrapped in a [`FaultyStore`] when `env` sets `crash-before-complete`, unchanged
/// otherwise.
pub fn wrap_store(env: &Env, store: Arc<dyn Store>) -> Result<Arc<dyn Store>, ConfigError> {
    Ok(match faults_of(env)? {
        Some(f) if f.rate(Fault::CrashBeforeComplete) > 0.0 => {
            Arc::new(FaultyStore::new(store, Arc::new(f)))
        }
        _ => store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryMailer;

    fn record(body: &str, receives: u32) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.body = Some(body.into());
        r.attributes
            .insert("ApproximateReceiveCount".into(), receives.to_string());
        r
    }

    #[test]
    fn parses_names_rates_and_prefixes() {
        let f = Faults::parse(
            "crash, error=0.5, email-sender:mail-throttle=1, queue-processor:timeout=0.3",
            9,
            Some("nightshift-EmailSenderFunction"),
        )
        .unwrap();
        assert_eq!(f.rate(Fault::Crash), 0.02);
        assert_eq!(f.rate(Fault::Error), 0.5);
        assert_eq!(f.rate(Fault::MailThrottle), 1.0);
        assert_eq!(f.rate(Fault::Timeout), 0.0);
        assert_eq!(f.seed(), 9);
        // Later items override earlier ones; prefixed items need a known function name.
        let f = Faults::parse("error=0.1,error=0.2,x:crash=1", 0, None).unwrap();
        assert_eq!(f.rate(Fault::Error), 0.2);
        assert_eq!(f.rate(Fault::Crash), 0.0);
    }

    #[test]
    fn rejects_bad_lists() {
        assert!(matches!(
            Faults::parse("crash=2", 0, None),
            Err(FaultError::Value { .. })
        ));
        assert!(matches!(
            Faults::parse("crash=lots", 0, None),
            Err(FaultError::Value { .. })
        ));
        assert!(matches!(
            Faults::parse(":crash", 0, None),
            Err(FaultError::Malformed { .. })
        ));
        let err = Faults::parse("malformed-response", 0, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown fault \"malformed-response\"")
        );
        let env = Env::from_map([(FAULTS_VAR, "crash"), (FAULT_SEED_VAR, "-1")]);
        assert_eq!(
            Faults::from_env(&env).unwrap_err(),
            FaultError::Seed("-1".into())
        );
        assert_eq!(
            Faults::from_env(&Env::from_map([("X", "1")])).unwrap(),
            None
        );
    }

    #[test]
    fn decisions_are_deterministic_and_follow_the_rate() {
        let f = Faults::parse("error=0.25", 42, None).unwrap();
        let hits: Vec<bool> = (0..4000)
            .map(|i| f.strikes(Fault::Error, &format!("job-{i}")))
            .collect();
        let again: Vec<bool> = (0..4000)
            .map(|i| f.strikes(Fault::Error, &format!("job-{i}")))
            .collect();
        assert_eq!(hits, again);
        let share = hits.iter().filter(|h| **h).count() as f64 / 4000.0;
        assert!((0.22..0.28).contains(&share), "{share}");
        // Another seed decides differently; a redelivery rolls again.
        let other = Faults::parse("error=0.25", 43, None).unwrap();
        assert!((0..4000).any(|i| {
            let k = format!("job-{i}");
            f.strikes(Fault::Error, &k) != other.strikes(Fault::Error, &k)
        }));
        assert_ne!(record_key(&record("a", 1)), record_key(&record("a", 2)));
        assert_eq!(record_key(&record("a", 1)), record_key(&record("a", 1)));
        let none = Faults::parse("", 42, None).unwrap();
        assert!(!none.strikes(Fault::Error, "job-1"));
    }

    #[test]
    fn record_faults() {
        let always = Faults::parse("crash=1,timeout=1,error=1", 1, None).unwrap();
        // Crash wins over timeout when both strike.
        assert_eq!(always.batch_fault(&record("x", 1)), Some(BatchFault::Crash));
        let timeout = Faults::parse("timeout=1", 1, None).unwrap();
        assert_eq!(
            timeout.batch_fault(&record("x", 1)),
            Some(BatchFault::Timeout)
        );
        assert_eq!(
            always.record_error(&record("x", 1)).as_deref(),
            Some("retryable error (fault injection)")
        );
        assert_eq!(timeout.record_error(&record("x", 1)), None);
    }

    #[tokio::test]
    async fn the_batch_processor_injects_errors_and_scopes_records() {
        use crate::adapters::memory::MemoryQueue;
        use crate::batch::{BatchConfig, BatchProcessor};
        let queue = Arc::new(MemoryQueue::default());
        let config = BatchConfig {
            source_queue_url: Some("http://q/000000000000/jobs".into()),
            jitter_seed: Some(1),
            faults: Some(Arc::new(Faults::parse("error=0.5", 11, None).unwrap())),
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(queue.clone(), config);
        let records: Vec<SqsMessage> = (0..40)
            .map(|i| {
                let mut r = record(&format!("body-{i}"), 1);
                r.message_id = Some(format!("m-{i}"));
                r.receipt_handle = Some(format!("h-{i}"));
                r
            })
            .collect();
        let expected: Vec<String> = records
            .iter()
            .filter(|r| {
                Faults::parse("error=0.5", 11, None)
                    .unwrap()
                    .strikes(Fault::Error, &record_key(r))
            })
            .map(|r| r.message_id.clone().unwrap())
            .collect();
        assert!((5..35).contains(&expected.len()), "{}", expected.len());
        let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = ran.clone();
        let report = processor
            .process(
                records.clone(),
                Instant::now() + Duration::from_secs(60),
                move |r: SqsMessage| {
                    let seen = seen.clone();
                    async move {
                        // The mailer's faults see the record being processed.
                        assert_eq!(current_key(), Some(record_key(&r)));
                        seen.lock().unwrap().push(r.message_id.unwrap());
                        Ok(())
                    }
                },
            )
            .await;
        let mut failed: Vec<String> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        failed.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(failed, expected_sorted);
        assert_eq!(report.succeeded, 40 - expected.len());
        // A failed record's handler never ran; it backs off like any retryable failure.
        assert!(ran.lock().unwrap().iter().all(|id| !expected.contains(id)));
        assert_eq!(queue.visibility_changes().len(), expected.len());
        assert_eq!(current_key(), None);
    }

    #[tokio::test]
    async fn the_store_is_wrapped_only_for_its_fault_and_delegates() {
        use crate::adapters::memory::MemoryStore;
        let inner: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let plain = wrap_store(&Env::from_map([(FAULTS_VAR, "crash,error")]), inner.clone());
        assert!(Arc::ptr_eq(&plain.unwrap(), &inner));
        let env = Env::from_map([(FAULTS_VAR, "crash-before-complete=0.5")]);
        let faults = Faults::from_env(&env).unwrap().unwrap();
        let wrapped = wrap_store(&env, inner.clone()).unwrap();
        assert!(!Arc::ptr_eq(&wrapped, &inner));
        // A key this seed spares: the completion goes through to the inner store.
        let key = (0..100)
            .map(|i| format!("job:{i}"))
            .find(|k| !faults.strikes(Fault::CrashBeforeComplete, k))
            .unwrap();
        let now: chrono::DateTime<chrono::Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
        let later = now + chrono::Duration::seconds(30);
        let request = ClaimRequest {
            now,
            until: later,
            owner: "o",
            payload_hash: "h",
        };
        assert_eq!(
            wrapped.claim(&key, &request).await.unwrap(),
            Claim::Acquired
        );
        wrapped.complete(&key, "o", "done", later).await.unwrap();
        assert_eq!(
            inner.claim(&key, &request).await.unwrap(),
            Claim::Completed("done".into())
        );
        let bad = Env::from_map([(FAULTS_VAR, "crash=9")]);
        assert!(wrap_store(&bad, inner).is_err());
    }

    #[tokio::test]
    async fn throttled_mailer_sends_nothing_and_is_retryable() {
        let inner = Arc::new(MemoryMailer::default());
        let env = Env::from_map([(FAULTS_VAR, "mail-throttle=1")]);
        let mailer = wrap_mailer(&env, inner.clone()).unwrap();
        let email = OutgoingEmail {
            request_id: "r-1".into(),
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            subject: "s".into(),
            text: "t".into(),
            html: None,
        };
        let err = mailer.send(&email).await.unwrap_err();
        assert!(
            matches!(err, MailError::Transient(ref m) if m.contains("throttling")),
            "{err}"
        );
        assert!(inner.sent().is_empty());
        // Within a record's scope the decision follows the delivery: with a rate of one half,
        // some of many deliveries pass and others are throttled.
        let half = wrap_mailer(
            &Env::from_map([(FAULTS_VAR, "mail-throttle=0.5"), (FAULT_SEED_VAR, "3")]),
            inner.clone(),
        )
        .unwrap();
        let mut passed = 0;
        for receives in 1..=20 {
            let key = record_key(&record("same body", receives));
            if scoped(key, half.send(&email)).await.is_ok() {
                passed += 1;
            }
        }
        assert!((1..20).contains(&passed), "{passed}");
        assert_eq!(inner.sent().len(), passed);
        // Without faults for the mailer, it is returned as is.
        let plain = wrap_mailer(&Env::from_map([(FAULTS_VAR, "crash")]), inner.clone()).unwrap();
        assert!(Arc::ptr_eq(&plain, &(inner.clone() as Arc<dyn Mailer>)));
    }
}
