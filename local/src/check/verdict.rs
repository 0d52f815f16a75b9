//! The accounting: what a run left behind ([`Observed`]), judged against the planned jobs
//! ([`verify`]) into a [`Verdict`]; and the injected faults counted from the emulator's log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::jobs::{Expect, PlannedAdjustment, PlannedJob};

/// The store key queue-processor keeps a SKU's sequence under
/// (`queue_processor::jobs::inventory::store_key`).
pub const INVENTORY_KEY_PREFIX: &str = "inventory:";

/// A message found in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its body.
    pub body: String,
    /// Why it is there: the function's `nightshift-error`, or SQS's redrive after
    /// `maxReceiveCount`; `None` when nothing says.
    pub reason: Option<String>,
}

/// What the run left behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Job outcomes by job id: `succeeded` or `failed`.
    pub outcomes: HashMap<String, String>,
    /// The request id of each `.eml` in the outbox (`None` when it has no readable header).
    pub outbox: Vec<Option<String>>,
    /// The jobs DLQ.
    pub jobs_dlq: Vec<DeadLetter>,
    /// The emails DLQ.
    pub emails_dlq: Vec<DeadLetter>,
    /// Messages still in the jobs or emails queue (visible, in flight or delayed).
    pub pending: usize,
    /// The store's sequences: key → (last sequence consumed, balance).
    pub sequences: HashMap<String, (u64, i64)>,
    /// The inventory (FIFO) DLQ.
    pub inventory_dlq: Vec<DeadLetter>,
    /// Messages still in the inventory queue.
    pub inventory_pending: usize,
}

/// The verdict on a run's artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Jobs sent.
    pub sent: usize,
    /// Valid jobs among them.
    pub valid: usize,
    /// Malformed jobs among them.
    pub malformed: usize,
    /// Valid jobs with a `succeeded` outcome.
    pub processed: usize,
    /// Jobs (valid or malformed) with at least one copy in the jobs DLQ.
    pub dead_lettered: usize,
    /// Valid jobs in the jobs DLQ without an outcome: retries exhausted.
    pub exhausted: usize,
    /// Emails that processed jobs should have sent.
    pub emails_expected: usize,
    /// Distinct expected request ids in the outbox.
    pub emails_sent: usize,
    /// Expected emails not sent but in the emails DLQ.
    pub emails_dead_lettered: usize,
    /// Jobs or emails in neither their place nor a DLQ.
    pub lost: usize,
    /// Emails sent more than once (each extra send counts one).
    pub duplicates: usize,
    /// Extra copies of a message in a DLQ: at-least-once delivery of a dead letter (a batch
    /// that dead-lettered a record then failed as a whole), harmless.
    pub dlq_copies: usize,
    /// Inventory adjustments sent to the FIFO queue.
    pub adjustments: usize,
    /// Valid adjustments applied, each exactly once and in its SKU's sequence order.
    pub adjustments_applied: usize,
    /// Adjustments in the inventory DLQ (the invalid one, and any whose retries ran out).
    pub adjustments_dead_lettered: usize,
    /// Every violation, one line each.
    pub problems: Vec<String>,
}

impl Verdict {
    /// No loss, no duplicate, nothing else wrong.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.problems.is_empty()
    }

    /// The one summary line: `sent=… processed=… dead_lettered=… lost=… duplicates=…`.
    pub fn summary(&self) -> String {
        format!(
            "sent={} processed={} dead_lettered={} lost={} duplicates={}",
            self.sent, self.processed, self.dead_lettered, self.lost, self.duplicates
        )
    }
}

fn email_id_of(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

/// Judges what a run left behind against the jobs it sent.
pub fn verify(jobs: &[PlannedJob], observed: &Observed) -> Verdict {
    let mut v = Verdict {
        sent: jobs.len(),
        ..Verdict::default()
    };
    let mut jobs_dlq: HashMap<&str, Vec<&DeadLetter>> = HashMap::new();
    for d in &observed.jobs_dlq {
        jobs_dlq.entry(d.body.as_str()).or_default().push(d);
    }
    let mut emails_dlq: HashMap<String, Vec<&DeadLetter>> = HashMap::new();
    for d in &observed.emails_dlq {
        let id = email_id_of(&d.body).unwrap_or_else(|| d.body.clone());
        emails_dlq.entry(id).or_default().push(d);
    }
    let mut outbox: HashMap<&str, usize> = HashMap::new();
    for id in &observed.outbox {
        match id {
            Some(id) => *outbox.entry(id.as_str()).or_default() += 1,
            None => v
                .problems
                .push("an outbox file has no X-Nightshift-Request-Id header".into()),
        }
    }
    let mut expected_emails = BTreeSet::new();
    let mut known_bodies = BTreeSet::new();
    for job in jobs {
        known_bodies.insert(job.body.as_str());
        let copies = jobs_dlq
            .get(job.body.as_str())
            .map_or(&[][..], Vec::as_slice);
        v.dlq_copies += copies.len().saturating_sub(1);
        if copies.iter().any(|c| c.reason.is_none()) {
            v.problems.push(format!(
                "job {} is in the jobs DLQ without a reason",
                job.id
            ));
        }
        if !copies.is_empty() {
            v.dead_lettered += 1;
        }
        let outcome = observed.outcomes.get(&job.id).map(String::as_str);
        match &job.expect {
            Expect::Valid { email_id } => {
                v.valid += 1;
                expected_emails.insert(email_id.as_str());
                let processed = outcome == Some("succeeded");
                if processed {
                    v.processed += 1;
                } else if let Some(other) = outcome {
                    v.problems
                        .push(format!("valid job {} has outcome {other}", job.id));
                }
                if !processed && !copies.is_empty() {
                    v.exhausted += 1;
                }
                if !processed && copies.is_empty() {
                    v.lost += 1;
                    v.problems.push(format!(
                        "job {} is lost: no succeeded outcome and not in the jobs DLQ",
                        job.id
                    ));
                }
                let sent = outbox.get(email_id.as_str()).copied().unwrap_or(0);
                let dead = emails_dlq.get(email_id).map_or(0, Vec::len);
                if sent > 1 {
                    v.duplicates += sent - 1;
                    v.problems
                        .push(format!("email {email_id} was sent {sent} times"));
                }
                if sent > 0 {
                    v.emails_sent += 1;
                }
                if processed {
                    v.emails_expected += 1;
                    if sent == 0 && dead > 0 {
                        v.emails_dead_lettered += 1;
                    }
                    if sent == 0 && dead == 0 {
                        v.lost += 1;
                        v.problems.push(format!(
                            "email {email_id} of processed job {} is lost: not in the outbox nor the emails DLQ",
                            job.id
                        ));
                    }
                }
            }
            Expect::Malformed(kind) => {
                v.malformed += 1;
                if copies.is_empty() {
                    v.lost += 1;
                    v.problems.push(format!(
                        "malformed job {} ({kind:?}) is lost: not in the jobs DLQ",
                        job.id
                    ));
                }
                if outcome == Some("succeeded") {
                    v.problems
                        .push(format!("malformed job {} succeeded", job.id));
                }
            }
        }
    }
    for (id, copies) in &emails_dlq {
        v.dlq_copies += copies.len().saturating_sub(1);
        if copies.iter().any(|c| c.reason.is_none()) {
            v.problems
                .push(format!("email {id} is in the emails DLQ without a reason"));
        }
        if !expected_emails.contains(id.as_str()) {
            v.problems
                .push(format!("unexpected email {id} in the emails DLQ"));
        }
    }
    for (id, count) in &outbox {
        if !expected_emails.contains(id) {
            v.problems
                .push(format!("unexpected email {id} in the outbox ({count}x)"));
        }
    }
    for body in jobs_dlq.keys() {
        if !known_bodies.contains(body) {
            v.problems
                .push(format!("unexpected message in the jobs DLQ: {body}"));
        }
    }
    if observed.pending > 0 {
        v.problems.push(format!(
            "{} messages are still in the jobs and emails queues",
            observed.pending
        ));
    }
    v
}

/// Judges the inventory adjustments a run sent through the FIFO queue, adding to `v`.
///
/// The store applies a SKU's adjustment `n` only when `n - 1` was consumed, so the order is
/// enforced where the balance changes; what a run must show is the result of that: every SKU
/// consumed its whole sequence, and its balance is the sum of exactly the valid adjustments
/// (the deltas are distinct powers of two, so a lost adjustment leaves its bit clear and one
/// applied twice changes another). An adjustment that is not applied must be in the inventory
/// DLQ with its reason; otherwise it is lost.
pub fn verify_adjustments(adjustments: &[PlannedAdjustment], observed: &Observed, v: &mut Verdict) {
    v.adjustments = adjustments.len();
    let mut dlq: HashMap<&str, Vec<&DeadLetter>> = HashMap::new();
    for d in &observed.inventory_dlq {
        dlq.entry(d.body.as_str()).or_default().push(d);
    }
    let mut skus: BTreeMap<&str, Vec<&PlannedAdjustment>> = BTreeMap::new();
    for a in adjustments {
        skus.entry(a.sku.as_str()).or_default().push(a);
    }
    for (sku, planned) in &skus {
        let last_planned = planned.iter().map(|a| a.sequence).max().unwrap_or(0);
        let expected: i64 = planned.iter().filter(|a| a.valid()).map(|a| a.delta).sum();
        let key = format!("{INVENTORY_KEY_PREFIX}{sku}");
        let (last, balance) = observed.sequences.get(&key).copied().unwrap_or((0, 0));
        let dead: i64 = planned
            .iter()
            .filter(|a| a.valid() && dlq.contains_key(a.body.as_str()))
            .map(|a| a.delta)
            .sum();
        let target = expected - dead;
        // Over the target, something was applied twice and the bits no longer say what.
        let twice = balance > target;
        if twice {
            v.duplicates += 1;
            v.problems.push(format!(
                "{sku}: balance {balance}, expected {target} (an adjustment applied twice)"
            ));
        }
        for a in planned {
            let copies = dlq.get(a.body.as_str()).map_or(&[][..], Vec::as_slice);
            if !copies.is_empty() {
                v.adjustments_dead_lettered += 1;
                v.dlq_copies += copies.len().saturating_sub(1);
                if copies.iter().any(|c| c.reason.is_none()) {
                    v.problems.push(format!(
                        "adjustment {} is in the inventory DLQ without a reason",
                        a.id
                    ));
                }
            }
            let applied = a.valid() && (balance & a.delta != 0 || twice) && copies.is_empty();
            if a.valid() && !twice && balance & a.delta != 0 && !copies.is_empty() {
                v.problems.push(format!(
                    "adjustment {} was applied and is also in the inventory DLQ",
                    a.id
                ));
            }
            if applied {
                v.adjustments_applied += 1;
                if observed.outcomes.get(&a.id).map(String::as_str) != Some("succeeded") {
                    v.problems.push(format!(
                        "applied adjustment {} has no succeeded outcome",
                        a.id
                    ));
                }
            } else if copies.is_empty() {
                v.lost += 1;
                v.problems.push(format!(
                    "adjustment {} ({sku} #{}) is lost: not applied and not in the inventory DLQ",
                    a.id, a.sequence
                ));
            }
        }
        if last != last_planned {
            v.problems.push(format!(
                "{sku}: the store consumed its sequence up to {last}, not {last_planned}"
            ));
        }
    }
    let known: BTreeSet<&str> = adjustments.iter().map(|a| a.body.as_str()).collect();
    for body in dlq.keys() {
        if !known.contains(body) {
            v.problems
                .push(format!("unexpected message in the inventory DLQ: {body}"));
        }
    }
    if observed.inventory_pending > 0 {
        v.problems.push(format!(
            "{} messages are still in the inventory queue",
            observed.inventory_pending
        ));
    }
}

/// Counts `injected fault: <name>` lines by name (the functions and the invoker wrapper log
/// one per injected fault).
pub fn count_injected(log: &str) -> BTreeMap<String, u64> {
    let marker = "injected fault: ";
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        if let Some(at) = line.find(marker) {
            let name: String = line[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if !name.is_empty() {
                *counts.entry(name).or_insert(0) += 1;
            }
        }
    }
    counts
}
