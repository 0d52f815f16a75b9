//! `order.placed`: validate the items, compute the total, confirm by email; an order with a
//! `customer_id` cancels that user's "getting started" follow-up ([`super::follow_up`]): they
//! got started.

use std::collections::BTreeMap;

use nightshift::contracts::{EmailRequest, JobEnvelope};
use serde::Deserialize;
use serde_json::json;

use super::{Effects, Job, JobError, address, follow_up, payload};

/// Largest quantity of one line item.
pub const MAX_QUANTITY: u32 = 10_000;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stock keeping unit.
    pub sku: String,
    /// How many, 1 to [`MAX_QUANTITY`].
    pub quantity: u32,
    /// Price of one unit in the currency's minor unit (cents).
    pub unit_price_cents: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    order_id: String,
    customer_email: String,
    #[serde(default)]
    customer_name: Option<String>,
    /// The `user_id` of `user.signup`, when the customer has an account.
    #[serde(default)]
    customer_id: Option<String>,
    currency: String,
    items: Vec<Item>,
}

/// The `order.placed` job.
#[derive(Debug, Default, Clone, Copy)]
pub struct OrderPlaced;

/// Formats minor units as `12.34`.
fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Job for OrderPlaced {
    fn kind(&self) -> &'static str {
        "order.placed"
    }

    fn run(&self, envelope: &JobEnvelope) -> Result<Effects, JobError> {
        let p: Payload = payload(envelope)?;
        let invalid = |m: String| Err(JobError::InvalidPayload(m));
        if p.order_id.trim().is_empty() {
            return invalid("`order_id` must not be empty".into());
        }
        address("customer_email", &p.customer_email)?;
        if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return invalid(format!(
                "`currency` {:?} is not an ISO 4217 code like EUR",
                p.currency
            ));
        }
        if p.items.is_empty() {
            return invalid("`items` must not be empty".into());
        }
        let mut total: u64 = 0;
        for (i, item) in p.items.iter().enumerate() {
            if item.sku.trim().is_empty() {
                return invalid(format!("`items[{i}].sku` must not be empty"));
            }
            if item.quantity == 0 || item.quantity > MAX_QUANTITY {
                return invalid(format!(
                    "`items[{i}].quantity` {} is outside 1..={MAX_QUANTITY}",
                    item.quantity
                ));
            }
            let line = item
                .unit_price_cents
                .checked_mul(item.quantity as u64)
                .and_then(|l| total.checked_add(l));
            match line {
                Some(t) => total = t,
                None => return invalid(format!("`items[{i}]` makes the total overflow")),
            }
        }
        let items: Vec<_> = p
            .items
            .iter()
            .map(|i| json!({"sku": i.sku, "quantity": i.quantity, "line_total": money(i.unit_price_cents * i.quantity as u64)}))
            .collect();
        let vars = BTreeMap::from([
            ("order_id".to_string(), json!(p.order_id)),
            (
                "customer_name".to_string(),
                json!(p.customer_name.clone().unwrap_or_else(|| "customer".into())),
            ),
            ("currency".to_string(), json!(p.currency)),
            ("total".to_string(), json!(money(total))),
            ("items".to_string(), json!(items)),
        ]);
        // The email id derives from the job id: a re-run of the same job enqueues the same
        // request, which the email sender sends at most once.
        let email = EmailRequest::from_template(
            format!("order-confirmation-{}", envelope.id),
            vec![p.customer_email],
            format!("Your order {} is confirmed", p.order_id),
            "order_confirmation",
            vars,
        );
        // A customer id that cannot name a follow-up schedule never had one: nothing to cancel.
        let cancels = p
            .customer_id
            .as_deref()
            .and_then(follow_up::schedule_id)
            .into_iter()
            .collect();
        Ok(Effects {
            emails: vec![email],
            cancels,
            result: json!({"order_id": p.order_id, "total_cents": total, "currency": p.currency}),
            ..Effects::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(payload: serde_json::Value) -> JobEnvelope {
        JobEnvelope::new(
            "job-1",
            "order.placed",
            payload,
            "2026-11-21T10:00:00Z".parse().unwrap(),
        )
    }

    fn good() -> serde_json::Value {
        json!({"order_id":"o-1","customer_email":"ada@example.com","customer_name":"Ada","currency":"EUR",
               "items":[{"sku":"A","quantity":2,"unit_price_cents":1250},{"sku":"B","quantity":1,"unit_price_cents":99}]})
    }

    #[test]
    fn computes_total_and_confirms() {
        let effects = OrderPlaced.run(&envelope(good())).unwrap();
        assert_eq!(
            effects.result,
            json!({"order_id":"o-1","total_cents":2599,"currency":"EUR"})
        );
        let email = &effects.emails[0];
        assert_eq!(email.id, "order-confirmation-job-1");
        assert_eq!(email.to, vec!["ada@example.com"]);
        assert_eq!(email.vars["total"], json!("25.99"));
        email.validate().unwrap();
        // Without a customer id there is no follow-up to cancel.
        assert!(effects.cancels.is_empty());
    }

    #[test]
    fn an_order_with_a_customer_id_cancels_their_follow_up() {
        let mut payload = good();
        payload["customer_id"] = json!("u-7");
        let effects = OrderPlaced.run(&envelope(payload.clone())).unwrap();
        assert_eq!(effects.cancels, ["follow-up-u-7"]);
        assert!(effects.schedules.is_empty());
        // An id no follow-up could have been scheduled under cancels nothing, and the order
        // goes through.
        payload["customer_id"] = json!("tenant/7");
        let effects = OrderPlaced.run(&envelope(payload)).unwrap();
        assert!(effects.cancels.is_empty());
        assert_eq!(effects.emails.len(), 1);
    }

    #[test]
    fn rejects_bad_payloads_precisely() {
        let cases = [
            (
                json!({"order_id":"o"}),
                "order.placed payload: missing field",
            ),
            (
                json!({"order_id":"o-1","customer_email":"nope","currency":"EUR","items":[]}),
                "`customer_email`",
            ),
            (
                json!({"order_id":"o-1","customer_email":"a@b.co","currency":"eur","items":[]}),
                "`currency`",
            ),
            (
                json!({"order_id":"o-1","customer_email":"a@b.co","currency":"EUR","items":[]}),
                "`items` must not be empty",
            ),
            (
                json!({"order_id":"o-1","customer_email":"a@b.co","currency":"EUR","items":[{"sku":"A","quantity":0,"unit_price_cents":1}]}),
                "`items[0].quantity` 0",
            ),
            (
                json!({"order_id":"o-1","customer_email":"a@b.co","currency":"EUR","items":[{"sku":"","quantity":1,"unit_price_cents":1}]}),
                "`items[0].sku`",
            ),
            (
                json!({"order_id":"o-1","customer_email":"a@b.co","currency":"EUR","items":[{"sku":"A","quantity":10000,"unit_price_cents":u64::MAX}]}),
                "overflow",
            ),
            (
                json!({"order_id":"o-1","customer_email":"a@b.co","currency":"EUR","items":[{"sku":"A","quantity":"2","unit_price_cents":1}]}),
                "invalid type",
            ),
        ];
        for (payload, expected) in cases {
            let err = OrderPlaced.run(&envelope(payload)).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }
}
