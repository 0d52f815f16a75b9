//! The jobs a check sends: a seeded plan of valid and malformed jobs ([`plan_jobs`]) and
//! what each is expected to end as.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

/// How a malformed job is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// The body is not JSON.
    BrokenJson,
    /// A well-formed envelope of a kind nobody handles.
    UnknownKind,
    /// A known kind whose payload fails validation.
    InvalidPayload,
}

/// What a job is expected to become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A valid job: a `succeeded` outcome and this email.
    Valid {
        /// The request id of its email.
        email_id: String,
    },
    /// A malformed job: the jobs DLQ.
    Malformed(Malformation),
}

/// One job the checker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedJob {
    /// The job id.
    pub id: String,
    /// The message body.
    pub body: String,
    /// What should become of it.
    pub expect: Expect,
}

/// The `jobs` jobs of a run: `round(jobs × bad_share)` malformed ones at seeded positions
/// (cycling through broken JSON, unknown kind, invalid payload), the others `order.placed`
/// and `user.signup` at random.
pub fn plan_jobs(
    jobs: usize,
    bad_share: f64,
    seed: u64,
    submitted_at: DateTime<Utc>,
) -> Vec<PlannedJob> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bad = ((jobs as f64) * bad_share.clamp(0.0, 1.0)).round() as usize;
    let mut order: Vec<usize> = (0..jobs).collect();
    rng.shuffle(&mut order);
    let bad_at: BTreeMap<usize, usize> = order[..bad]
        .iter()
        .enumerate()
        .map(|(n, i)| (*i, n))
        .collect();
    let at = submitted_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (0..jobs)
        .map(|i| {
            let id = format!("chk-{seed}-{i:05}");
            let envelope = |kind: &str, payload: serde_json::Value| {
                json!({"v": 1, "id": id, "kind": kind, "payload": payload, "submitted_at": at})
                    .to_string()
            };
            if let Some(n) = bad_at.get(&i) {
                let (malformation, body) = match n % 3 {
                    0 => {
                        let whole = envelope("order.placed", json!({"order_id": format!("o-{i}")}));
                        (Malformation::BrokenJson, whole[..whole.len() - 7].to_string())
                    }
                    1 => (
                        Malformation::UnknownKind,
                        envelope("invoice.paid", json!({"invoice": i})),
                    ),
                    _ => (
                        Malformation::InvalidPayload,
                        envelope(
                            "user.signup",
                            json!({"user_id": format!("u-{i}"), "email": "not-an-address", "name": "X"}),
                        ),
                    ),
                };
                return PlannedJob {
                    id,
                    body,
                    expect: Expect::Malformed(malformation),
                };
            }
            if rng.bool() {
                let quantity = rng.u32(1..=5);
                let body = envelope(
                    "order.placed",
                    json!({
                        "order_id": format!("o-{i}"),
                        "customer_email": format!("customer{i}@example.com"),
                        "customer_name": format!("Customer {i}"),
                        "currency": "EUR",
                        "items": [{"sku": format!("SKU-{}", rng.u32(1..100)), "quantity": quantity,
                                   "unit_price_cents": rng.u64(100..10_000)}],
                    }),
                );
                PlannedJob {
                    expect: Expect::Valid {
                        email_id: format!("order-confirmation-{id}"),
                    },
                    id,
                    body,
                }
            } else {
                let body = envelope(
                    "user.signup",
                    json!({"user_id": format!("u-{i}"), "email": format!("user{i}@example.com"),
                           "name": format!("User {i}")}),
                );
                PlannedJob {
                    expect: Expect::Valid {
                        email_id: format!("welcome-{id}"),
                    },
                    id,
                    body,
                }
            }
        })
        .collect()
}

/// One inventory adjustment the checker sends to the FIFO queue, its SKU as the message group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAdjustment {
    /// The job id.
    pub id: String,
    /// The SKU: the message group and the store's sequence key.
    pub sku: String,
    /// Its place in the SKU's sequence, from 1.
    pub sequence: u64,
    /// What it adds to the SKU's balance; 0 for the invalid one.
    pub delta: i64,
    /// The message body.
    pub body: String,
}

impl PlannedAdjustment {
    /// Whether queue-processor accepts it (a zero delta is an invalid payload).
    pub fn valid(&self) -> bool {
        self.delta != 0
    }
}

/// `per_sku` adjustments for each of `skus` SKUs, interleaved in a seeded order that keeps each
/// SKU's sequence in send order (what its FIFO message group delivers in). The delta of
/// sequence `n` is `2^(n-1)`, so a SKU's balance names exactly which adjustments were applied
/// and how often: a lost one leaves a bit clear, a second application carries into another.
/// With `invalid`, the middle adjustment of the first SKU has a zero delta: queue-processor
/// dead-letters it and gives up its sequence number, and the SKU's later adjustments apply.
pub fn plan_adjustments(
    skus: usize,
    per_sku: u64,
    seed: u64,
    invalid: bool,
    submitted_at: DateTime<Utc>,
) -> Vec<PlannedAdjustment> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_f1f0);
    let at = submitted_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut next: Vec<u64> = vec![1; skus];
    let mut out = Vec::with_capacity(skus * per_sku as usize);
    while out.len() < skus * per_sku as usize {
        let s = rng.usize(..skus);
        if next[s] > per_sku {
            continue;
        }
        let sequence = next[s];
        next[s] += 1;
        let sku = format!("CHK-{seed}-{s}");
        let id = format!("chk-{seed}-inv-{s}-{sequence}");
        let delta = if invalid && s == 0 && sequence == per_sku.div_ceil(2) {
            0
        } else {
            1i64 << (sequence - 1)
        };
        let body = json!({
            "v": 1, "id": id, "kind": "inventory.adjusted",
            "payload": {"sku": sku, "sequence": sequence, "delta": delta},
            "submitted_at": at,
        })
        .to_string();
        out.push(PlannedAdjustment {
            id,
            sku,
            sequence,
            delta,
            body,
        });
    }
    out
}
