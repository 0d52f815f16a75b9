//! Fault injection in the emulator, per function and seeded: what `nightshift up --faults`
//! and `nightshift check --faults` take, and the invoker wrapper behind it.
//!
//! One list, `[function:]fault[=rate]` separated by commas, covers three layers:
//!
//! - **in the functions** (`crash`, `timeout`, `error`, `mail-throttle`, `crash-after-send`,
//!   `crash-before-complete`): handed to every function as `NIGHTSHIFT_FAULTS` /
//!   `NIGHTSHIFT_FAULT_SEED` through [`EmulatorOptions::extra_env`]; the shared crate's
//!   `nightshift::faults` injects them (abort mid-batch, sleep past the deadline, a retryable
//!   record error, a throttling mailer, an abort right after a send, an abort just before an
//!   idempotency record is completed), on the records of each of a function's SQS event
//!   sources (email-sender's emails and mail feedback alike);
//! - **between the poller and the function** ([`FaultyInvoker`]): `malformed-response` (the
//!   function ran, its answer is replaced by a partial-batch response Lambda rejects: not JSON,
//!   `batchItemFailures` not a list, an empty or an unknown `itemIdentifier`), `drop-response`
//!   (the function ran, its answer is lost) and `invoke-error` (the function is never reached,
//!   as when Lambda throttles); each fails the whole batch, which returns after its visibility
//!   timeout;
//! - **the emulator itself**: `sigkill=N` kills `nightshift up` with SIGKILL N times during a
//!   check and restarts it on its journal (see [`crate::check`]); `up` ignores it.
//!
//! A name without a rate takes its default rate ([`default_rate`]); a `function:` prefix
//! limits an item to the functions whose name contains it, ignoring case and punctuation
//! (`email-sender:` matches `nightshift-EmailSenderFunction`). Decisions are a hash of the seed,
//! the fault, the function and what is delivered (the records' bodies and receive counts), so
//! a run is reproducible as far as the batching is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::emulator::EmulatorOptions;
use crate::invoker::{
    Decorator, InvokeError, InvokeOutcome, InvokeRequest, InvokeResponse, Invoker, Slot, Wrap,
};

pub use nightshift_contract::faults::{
    FAULT_SEED_VAR, FAULTS_VAR, Fault, FaultError, FaultItem, selects, unit,
};

/// The faults of the invoker wrapper, with their default rates.
pub const INVOKER_FAULTS: [(&str, f64); 3] = [
    ("malformed-response", 0.05),
    ("drop-response", 0.02),
    ("invoke-error", 0.02),
];

/// The fault that kills the emulator during a check; its value is a count (default 1).
pub const SIGKILL: &str = "sigkill";

/// The default rate of a function or invoker fault, `None` for unknown names.
pub fn default_rate(name: &str) -> Option<f64> {
    Fault::from_name(name).map(Fault::default_rate).or_else(|| {
        INVOKER_FAULTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
    })
}

fn known_names() -> String {
    let mut names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    names.extend(INVOKER_FAULTS.iter().map(|(n, _)| *n));
    names.push(SIGKILL);
    names.join(", ")
}

/// One fault with its rate, possibly limited to some functions.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The `function:` prefix, if any.
    pub function: Option<String>,
    /// The fault's name.
    pub fault: String,
    /// Its probability per delivery.
    pub rate: f64,
}

impl FaultRule {
    fn applies_to(&self, function: &str) -> bool {
        self.function
            .as_deref()
            .is_none_or(|p| selects(p, function))
    }

    fn render(&self) -> String {
        match &self.function {
            Some(f) => format!("{f}:{}={}", self.fault, self.rate),
            None => format!("{}={}", self.fault, self.rate),
        }
    }
}

/// A parsed fault list: what goes to the functions, what the invoker wrapper does, how often
/// a check kills the emulator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    /// The seed of every decision.
    pub seed: u64,
    /// Faults the functions inject, in the order given.
    pub function_rules: Vec<FaultRule>,
    /// Faults the invoker wrapper injects, in the order given.
    pub invoker_rules: Vec<FaultRule>,
    /// How many times a check kills the emulator.
    pub sigkills: u32,
}

impl FaultPlan {
    /// Parses a fault list; `seed` seeds every decision.
    pub fn parse(spec: &str, seed: u64) -> Result<FaultPlan, FaultError> {
        let mut plan = FaultPlan {
            seed,
            ..FaultPlan::default()
        };
        for item in nightshift_contract::faults::parse_items(spec)? {
            if item.name == SIGKILL {
                if item.function.is_some() {
                    return Err(item.invalid("sigkill kills the emulator, not a function"));
                }
                plan.sigkills = match &item.value {
                    None => 1,
                    Some(v) => v.parse::<u32>().ok().filter(|n| *n <= 100).ok_or_else(|| {
                        item.invalid("the count must be an integer from 0 to 100")
                    })?,
                };
                continue;
            }
            let Some(default) = default_rate(&item.name) else {
                return Err(item.unknown(&known_names()));
            };
            let rule = FaultRule {
                rate: item.rate_or(default)?,
                function: item.function,
                fault: item.name,
            };
            if INVOKER_FAULTS.iter().any(|(n, _)| *n == rule.fault) {
                plan.invoker_rules.push(rule);
            } else {
                plan.function_rules.push(rule);
            }
        }
        Ok(plan)
    }

    /// True when the plan injects nothing.
    pub fn is_empty(&self) -> bool {
        self.function_rules.is_empty() && self.invoker_rules.is_empty() && self.sigkills == 0
    }

    /// The rate of `fault` for `function`: the last rule that applies wins.
    pub fn rate(&self, fault: &str, function: &str) -> f64 {
        self.function_rules
            .iter()
            .chain(self.invoker_rules.iter())
            .rfind(|r| r.fault == fault && r.applies_to(function))
            .map_or(0.0, |r| r.rate)
    }

    /// The variables that make the functions inject their faults (`NIGHTSHIFT_FAULTS` with
    /// explicit rates, `NIGHTSHIFT_FAULT_SEED`); empty when there are none.
    pub fn function_env(&self) -> BTreeMap<String, String> {
        if self.function_rules.is_empty() {
            return BTreeMap::new();
        }
        let spec: Vec<String> = self.function_rules.iter().map(FaultRule::render).collect();
        BTreeMap::from([
            (FAULTS_VAR.to_string(), spec.join(",")),
            (FAULT_SEED_VAR.to_string(), self.seed.to_string()),
        ])
    }

    /// Adds [`FaultPlan::function_env`] to every function of `options` (under `*`).
    pub fn apply_env(&self, options: &mut EmulatorOptions) {
        let env = self.function_env();
        if !env.is_empty() {
            options.extra_env.entry("*".into()).or_default().extend(env);
        }
    }

    /// The invoker wrapper for [`crate::emulator::Emulator::start_wrapped`], `None` without
    /// invoker faults.
    pub fn wrapper(&self) -> Option<Wrap> {
        if self.invoker_rules.is_empty() {
            return None;
        }
        let plan = self.clone();
        Some(Box::new(
            move |inner: Arc<dyn Invoker>| -> Arc<dyn Invoker> {
                Arc::new(FaultyInvoker::new(inner, plan))
            },
        ))
    }

    /// The function and invoker faults as a list with explicit rates, what `up --faults`
    /// takes (kills are not part of it).
    pub fn spec(&self) -> String {
        let items: Vec<String> = self
            .function_rules
            .iter()
            .chain(self.invoker_rules.iter())
            .map(FaultRule::render)
            .collect();
        items.join(",")
    }

    /// The plan as one line, for logs: `crash=0.02,malformed-response=0.05 seed=7`.
    pub fn describe(&self) -> String {
        let spec = self.spec();
        let mut items: Vec<String> = spec
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if self.sigkills > 0 {
            items.push(format!("{SIGKILL}={}", self.sigkills));
        }
        if items.is_empty() {
            return "none".into();
        }
        format!("{} seed={}", items.join(","), self.seed)
    }
}

/// What identifies a delivery: the records' bodies and receive counts for an SQS event (not
/// their random message ids), the payload itself for anything else.
fn delivery_key(payload: &[u8]) -> Vec<u8> {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return payload.to_vec();
    };
    let Some(records) = event.get("Records").and_then(|r| r.as_array()) else {
        return payload.to_vec();
    };
    let mut key = Vec::new();
    for record in records {
        let body = record.get("body").and_then(|b| b.as_str()).unwrap_or("");
        let count = record
            .pointer("/attributes/ApproximateReceiveCount")
            .and_then(|c| c.as_str())
            .unwrap_or("1");
        key.extend_from_slice(body.as_bytes());
        key.push(0);
        key.extend_from_slice(count.as_bytes());
        key.push(0);
    }
    key
}

/// The partial batch responses `malformed-response` answers with; each fails the whole batch
/// by Lambda's rules.
pub const MALFORMED_RESPONSES: [&str; 4] = [
    r#"{"batchItemFailures":[{"itemIdentifier":"not-a-message-of-this-batch"}]}"#,
    r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
    r#"{"batchItemFailures":{"itemIdentifier":"x"}}"#,
    r#"{"batchItemFailures":[{"itemIdentifier":"#,
];

/// Wraps an invoker and injects the plan's invoker faults.
pub struct FaultyInvoker {
    inner: Arc<dyn Invoker>,
    plan: FaultPlan,
    counts: [AtomicU64; 3],
}

impl FaultyInvoker {
    /// Injects `plan`'s invoker faults into what goes through `inner`.
    pub fn new(inner: Arc<dyn Invoker>, plan: FaultPlan) -> Self {
        FaultyInvoker {
            inner,
            plan,
            counts: Default::default(),
        }
    }

    /// How many times each invoker fault struck, by name.
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        INVOKER_FAULTS
            .iter()
            .zip(self.counts.iter())
            .map(|((name, _), n)| (*name, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Whether `fault` (an index into [`INVOKER_FAULTS`]) strikes this delivery; counts it.
    fn strikes(&self, index: usize, function: &str, key: &[u8]) -> bool {
        let name = INVOKER_FAULTS[index].0;
        let rate = self.plan.rate(name, function);
        let hit =
            rate > 0.0 && unit(self.plan.seed, &[name.as_bytes(), function.as_bytes(), key]) < rate;
        if hit {
            self.counts[index].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(fault = name, function, "injected fault: {name}");
        }
        hit
    }
}

impl Decorator for FaultyInvoker {
    fn inner(&self) -> &Arc<dyn Invoker> {
        &self.inner
    }

    fn invoke_through(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        Box::pin(async move {
            let function = req.function.clone();
            let key = delivery_key(&req.payload);
            if self.strikes(2, &function, &key) {
                return Err(InvokeError::Throttled(function));
            }
            let mut result = self.inner.invoke_in(slot, req).await;
            if self.strikes(1, &function, &key) {
                return Err(InvokeError::Unreachable {
                    endpoint: function,
                    message: "the response was lost (injected fault)".into(),
                });
            }
            if let Ok(response) = &mut result
                && matches!(response.outcome, InvokeOutcome::Success(_))
                && self.strikes(0, &function, &key)
            {
                let pick = unit(self.plan.seed, &[b"variant", &key]);
                let variant = ((pick * MALFORMED_RESPONSES.len() as f64) as usize)
                    .min(MALFORMED_RESPONSES.len() - 1);
                response.outcome = InvokeOutcome::Success(Bytes::from_static(
                    MALFORMED_RESPONSES[variant].as_bytes(),
                ));
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_layers_and_fills_default_rates() {
        let plan = FaultPlan::parse(
            "crash, email-sender:mail-throttle=0.5, malformed-response, invoke-error=0.1, sigkill=2",
            7,
        )
        .unwrap();
        assert_eq!(plan.sigkills, 2);
        assert_eq!(plan.function_rules.len(), 2);
        assert_eq!(plan.invoker_rules.len(), 2);
        assert_eq!(plan.rate("crash", "any"), 0.02);
        assert_eq!(
            plan.rate("mail-throttle", "nightshift-EmailSenderFunction"),
            0.5
        );
        assert_eq!(
            plan.rate("mail-throttle", "nightshift-QueueProcessorFunction"),
            0.0
        );
        assert_eq!(plan.rate("malformed-response", "f"), 0.05);
        let env = plan.function_env();
        assert_eq!(
            env["NIGHTSHIFT_FAULTS"],
            "crash=0.02,email-sender:mail-throttle=0.5"
        );
        assert_eq!(env["NIGHTSHIFT_FAULT_SEED"], "7");
        assert_eq!(
            plan.describe(),
            "crash=0.02,email-sender:mail-throttle=0.5,malformed-response=0.05,invoke-error=0.1,sigkill=2 seed=7"
        );
        assert_eq!(
            FaultPlan::parse(&plan.spec(), 7).unwrap(),
            FaultPlan {
                sigkills: 0,
                ..plan.clone()
            },
            "spec() parses back to the same plan"
        );
        let mut up = EmulatorOptions::new("/p");
        plan.apply_env(&mut up);
        assert_eq!(up.extra_env["*"], env);
        assert!(FaultPlan::parse("", 0).unwrap().is_empty());
        assert!(FaultPlan::parse("", 0).unwrap().function_env().is_empty());
    }

    #[test]
    fn rejects_what_it_cannot_apply() {
        let err = FaultPlan::parse("crash,explode", 0).unwrap_err();
        assert!(
            err.to_string().contains("unknown fault \"explode\""),
            "{err}"
        );
        assert!(matches!(
            FaultPlan::parse("error=1.5", 0),
            Err(FaultError::Value { .. })
        ));
        assert!(matches!(
            FaultPlan::parse("x:sigkill", 0),
            Err(FaultError::Value { .. })
        ));
        assert!(matches!(
            FaultPlan::parse("sigkill=0.5", 0),
            Err(FaultError::Value { .. })
        ));
        assert!(matches!(
            FaultPlan::parse("=0.1", 0),
            Err(FaultError::Malformed { .. })
        ));
    }

    #[test]
    fn delivery_keys_ignore_message_ids() {
        let a = br#"{"Records":[{"messageId":"1","body":"b","attributes":{"ApproximateReceiveCount":"1"}}]}"#;
        let b = br#"{"Records":[{"messageId":"2","body":"b","attributes":{"ApproximateReceiveCount":"1"}}]}"#;
        let c = br#"{"Records":[{"messageId":"2","body":"b","attributes":{"ApproximateReceiveCount":"2"}}]}"#;
        assert_eq!(delivery_key(a), delivery_key(b));
        assert_ne!(delivery_key(b), delivery_key(c));
        assert_eq!(delivery_key(b"not json"), b"not json".to_vec());
    }
}
