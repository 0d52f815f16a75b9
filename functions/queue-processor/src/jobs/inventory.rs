//! `inventory.adjusted`: one change to a SKU's stock, applied in the producer's order.
//!
//! Payload: `{"sku": "A-1", "sequence": 3, "delta": -2}`. `sequence` is the producer's
//! counter for the SKU (1, 2, 3, ...): the handler applies the delta only when every earlier
//! number of the SKU was consumed ([`nightshift::ports::Store::apply_in_sequence`]), so
//! adjustments can never apply out of order nor twice. Producers send them to the inventory
//! FIFO queue with `MessageGroupId` = the SKU, so SQS delivers each SKU's adjustments in
//! order, one at a time.

use nightshift::contracts::JobEnvelope;
use serde::Deserialize;
use serde_json::json;

use super::{Adjustment, Effects, Job, JobError, SequenceSlot, payload};

/// Longest SKU, in characters.
pub const MAX_SKU_LEN: usize = 64;
/// Largest change of one adjustment, either way.
pub const MAX_DELTA: i64 = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    sku: String,
    sequence: u64,
    delta: i64,
}

/// The `inventory.adjusted` job.
#[derive(Debug, Default, Clone, Copy)]
pub struct InventoryAdjusted;

/// The store key of a SKU's sequence and balance.
pub fn store_key(sku: &str) -> String {
    format!("inventory:{sku}")
}

/// Checks a SKU: 1 to [`MAX_SKU_LEN`] characters of `A-Z a-z 0-9 - _`.
fn check_sku(sku: &str) -> Result<(), String> {
    if sku.is_empty() || sku.chars().count() > MAX_SKU_LEN {
        return Err(format!(
            "`sku` {sku:?} must be 1 to {MAX_SKU_LEN} characters"
        ));
    }
    match sku
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(format!(
            "`sku` {sku:?} contains {c:?}; only A-Z, a-z, 0-9, - and _ are allowed"
        )),
        None => Ok(()),
    }
}

impl Job for InventoryAdjusted {
    fn kind(&self) -> &'static str {
        "inventory.adjusted"
    }

    fn run(&self, envelope: &JobEnvelope) -> Result<Effects, JobError> {
        let p: Payload = payload(envelope)?;
        let invalid = |m: String| Err(JobError::InvalidPayload(m));
        if let Err(reason) = check_sku(&p.sku) {
            return invalid(reason);
        }
        if p.sequence == 0 {
            return invalid("`sequence` must be at least 1".into());
        }
        if p.delta == 0 || p.delta.unsigned_abs() > MAX_DELTA.unsigned_abs() {
            return invalid(format!(
                "`delta` {} must be non-zero and within -{MAX_DELTA}..={MAX_DELTA}",
                p.delta
            ));
        }
        Ok(Effects {
            result: json!({"sku": p.sku, "sequence": p.sequence, "delta": p.delta}),
            adjustment: Some(Adjustment {
                key: store_key(&p.sku),
                sequence: p.sequence,
                delta: p.delta,
            }),
            ..Effects::default()
        })
    }

    /// The SKU and sequence number when both are valid, even if the rest is not: a
    /// dead-lettered adjustment gives up its number so the SKU's next one can apply.
    fn slot(&self, envelope: &JobEnvelope) -> Option<SequenceSlot> {
        let sku = envelope.payload.get("sku")?.as_str()?;
        let sequence = envelope.payload.get("sequence")?.as_u64()?;
        (check_sku(sku).is_ok() && sequence >= 1).then(|| SequenceSlot {
            key: store_key(sku),
            sequence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(payload: serde_json::Value) -> JobEnvelope {
        JobEnvelope::new(
            "inv-1",
            "inventory.adjusted",
            payload,
            "2026-11-21T10:00:00Z".parse().unwrap(),
        )
    }

    #[test]
    fn a_valid_adjustment_asks_for_its_place_in_the_sequence() {
        let e = envelope(json!({"sku": "A-1_b", "sequence": 3, "delta": -2}));
        let effects = InventoryAdjusted.run(&e).unwrap();
        assert_eq!(
            effects.adjustment,
            Some(Adjustment {
                key: "inventory:A-1_b".into(),
                sequence: 3,
                delta: -2
            })
        );
        assert!(effects.emails.is_empty());
        assert_eq!(
            effects.result,
            json!({"sku": "A-1_b", "sequence": 3, "delta": -2})
        );
        assert_eq!(
            InventoryAdjusted.slot(&e),
            Some(SequenceSlot {
                key: "inventory:A-1_b".into(),
                sequence: 3
            })
        );
        let edge = json!({"sku": "x".repeat(64), "sequence": u64::MAX, "delta": MAX_DELTA});
        InventoryAdjusted.run(&envelope(edge)).unwrap();
        let edge = json!({"sku": "x", "sequence": 1, "delta": -MAX_DELTA});
        InventoryAdjusted.run(&envelope(edge)).unwrap();
    }

    #[test]
    fn rejects_bad_payloads_naming_the_field() {
        let cases = [
            (json!({"sku": "A", "sequence": 1}), "missing field `delta`"),
            (
                json!({"sku": "", "sequence": 1, "delta": 1}),
                "`sku` \"\" must be 1 to 64",
            ),
            (
                json!({"sku": "x".repeat(65), "sequence": 1, "delta": 1}),
                "must be 1 to 64 characters",
            ),
            (
                json!({"sku": "A 1", "sequence": 1, "delta": 1}),
                "`sku` \"A 1\" contains ' '",
            ),
            (
                json!({"sku": "Ä", "sequence": 1, "delta": 1}),
                "contains 'Ä'",
            ),
            (
                json!({"sku": "A", "sequence": 0, "delta": 1}),
                "`sequence` must be at least 1",
            ),
            (
                json!({"sku": "A", "sequence": -1, "delta": 1}),
                "invalid value: integer `-1`",
            ),
            (
                json!({"sku": "A", "sequence": 1, "delta": 0}),
                "`delta` 0 must be non-zero",
            ),
            (
                json!({"sku": "A", "sequence": 1, "delta": 1_000_001}),
                "`delta` 1000001 must be non-zero and within -1000000..=1000000",
            ),
            (
                json!({"sku": "A", "sequence": 1, "delta": i64::MIN}),
                "`delta` -9223372036854775808",
            ),
            (
                json!({"sku": "A", "sequence": 1, "delta": 1.5}),
                "invalid type: floating point",
            ),
            (
                json!({"sku": "A", "sequence": 1, "delta": 1, "x": 1}),
                "unknown field `x`",
            ),
        ];
        for (payload, expected) in cases {
            let err = InventoryAdjusted
                .run(&envelope(payload.clone()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{payload}: {err} should contain {expected}"
            );
        }
    }

    #[test]
    fn an_invalid_adjustment_keeps_its_slot_when_sku_and_sequence_are_valid() {
        let slot = |p| InventoryAdjusted.slot(&envelope(p));
        assert_eq!(
            slot(json!({"sku": "A", "sequence": 2, "delta": 0})),
            Some(SequenceSlot {
                key: "inventory:A".into(),
                sequence: 2
            })
        );
        assert_eq!(slot(json!({"sku": "A b", "sequence": 2, "delta": 1})), None);
        assert_eq!(slot(json!({"sku": "A", "sequence": 0, "delta": 1})), None);
        assert_eq!(slot(json!({"sku": "A", "delta": 1})), None);
    }
}
