//! settle: what happens to a batch's messages once the function has answered, by AWS's rules
//! for SQS event source mappings ("Handling errors for an SQS event source in Lambda").
//!
//! Without `ReportBatchItemFailures`: a successful invocation deletes the whole batch, anything
//! else deletes nothing. With it, a successful invocation's response decides:
//! - complete success (delete all): an empty or null response, an object without
//!   `batchItemFailures`, a null or empty `batchItemFailures` list;
//! - partial success (delete all but the listed ids): a list of `{"itemIdentifier": id}`;
//! - complete failure (delete nothing): a response that is not JSON or not of that shape, an
//!   empty, null or missing `itemIdentifier`, or an id that is not in the batch.
//!
//! A function error, an init error, a timeout, a crash, or an invocation that never reached the
//! function deletes nothing either. Kept messages are left alone: they come back when their
//! visibility timeout (or what the function set with ChangeMessageVisibility) expires.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::invoker::InvokeOutcome;

/// How one batch's messages are settled: which are deleted, which are left to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Message ids to delete, in batch order.
    pub delete: Vec<String>,
    /// Message ids left in the queue, in batch order.
    pub keep: Vec<String>,
    /// Why.
    pub reason: SettleReason,
}

impl Settlement {
    /// The whole batch failed for `reason`: nothing is deleted.
    pub fn failed(batch_ids: &[String], reason: SettleReason) -> Self {
        Settlement {
            delete: Vec::new(),
            keep: batch_ids.to_vec(),
            reason,
        }
    }

    /// The whole batch succeeded: everything is deleted.
    pub fn succeeded(batch_ids: &[String]) -> Self {
        Settlement {
            delete: batch_ids.to_vec(),
            keep: Vec::new(),
            reason: SettleReason::Success,
        }
    }

    /// Success, partial failure or failure.
    pub fn verdict(&self) -> Verdict {
        self.reason.verdict()
    }
}

/// The three ways a batch can end, as the mapping's statistics count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every message was deleted.
    Success,
    /// The function reported some messages as failed; the others were deleted.
    PartialFailure,
    /// Nothing was deleted.
    Failure,
}

/// Why a batch was settled the way it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleReason {
    /// The function succeeded and reported no failed item.
    Success,
    /// The function reported these many items (distinct ids) as failed.
    PartialFailure {
        /// How many distinct message ids were listed.
        failed: usize,
    },
    /// The response is not JSON or not of the `{"batchItemFailures": [...]}` shape.
    MalformedResponse(String),
    /// A listed failure has an empty, null or missing `itemIdentifier`.
    EmptyItemIdentifier,
    /// A listed failure names a message id that is not in the batch.
    UnknownItemIdentifier(String),
    /// The function returned an error (`errorType`).
    FunctionError(String),
    /// The function failed to initialise (`errorType`).
    InitError(String),
    /// The function did not answer within its timeout.
    Timeout,
    /// The function's instance exited while it held the event.
    Crashed(String),
    /// The invocation never reached the function (throttled, unknown, unreachable).
    InvokeFailed(String),
}

impl SettleReason {
    /// Success, partial failure or failure.
    pub fn verdict(&self) -> Verdict {
        match self {
            SettleReason::Success => Verdict::Success,
            SettleReason::PartialFailure { .. } => Verdict::PartialFailure,
            _ => Verdict::Failure,
        }
    }
}

impl fmt::Display for SettleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettleReason::Success => f.write_str("success"),
            SettleReason::PartialFailure { failed } => {
                write!(f, "{failed} batch item failure(s) reported")
            }
            SettleReason::MalformedResponse(detail) => write!(f, "malformed response: {detail}"),
            SettleReason::EmptyItemIdentifier => {
                f.write_str("empty, null or missing itemIdentifier")
            }
            SettleReason::UnknownItemIdentifier(id) => {
                write!(f, "itemIdentifier {id:?} is not a message of the batch")
            }
            SettleReason::FunctionError(kind) => write!(f, "function error {kind}"),
            SettleReason::InitError(kind) => write!(f, "init error {kind}"),
            SettleReason::Timeout => f.write_str("function timed out"),
            SettleReason::Crashed(exit) => write!(f, "runtime exited ({exit})"),
            SettleReason::InvokeFailed(why) => write!(f, "invoke failed: {why}"),
        }
    }
}

/// Applies AWS's rules to one invocation's outcome (see the module docs).
pub fn settle(
    batch_ids: &[String],
    outcome: &InvokeOutcome,
    report_batch_item_failures: bool,
) -> Settlement {
    let payload = match outcome {
        InvokeOutcome::Success(payload) => payload,
        InvokeOutcome::FunctionError(e) => {
            return Settlement::failed(
                batch_ids,
                SettleReason::FunctionError(e.error_type.clone()),
            );
        }
        InvokeOutcome::InitError(e) => {
            return Settlement::failed(batch_ids, SettleReason::InitError(e.error_type.clone()));
        }
        InvokeOutcome::Timeout { .. } => {
            return Settlement::failed(batch_ids, SettleReason::Timeout);
        }
        InvokeOutcome::Crashed(exit) => {
            return Settlement::failed(batch_ids, SettleReason::Crashed(exit.to_string()));
        }
    };
    if !report_batch_item_failures {
        // The response is not even looked at: a success is a success.
        return Settlement::succeeded(batch_ids);
    }
    match failed_ids(payload, batch_ids) {
        Err(reason) => Settlement::failed(batch_ids, reason),
        Ok(failed) if failed.is_empty() => Settlement::succeeded(batch_ids),
        Ok(failed) => {
            let (keep, delete) = batch_ids
                .iter()
                .cloned()
                .partition(|id| failed.contains(id.as_str()));
            Settlement {
                delete,
                keep,
                reason: SettleReason::PartialFailure {
                    failed: failed.len(),
                },
            }
        }
    }
}

/// A record acknowledged after a failed record of its message group, in a batch of a FIFO queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBreak {
    /// The message group.
    pub group: String,
    /// The failed record, which comes back later.
    pub failed: String,
    /// The record after it that the response acknowledged (and Lambda deletes).
    pub acknowledged: String,
}

/// On a FIFO queue, the records a partial batch response acknowledges after a failed record of
/// the same message group. Lambda deletes them as it deletes any record the response does not
/// list, so the failed record runs again after them and the group's order is broken; the
/// Lambda guide puts the duty on the function: "your function should stop processing messages
/// after the first failure and return all failed and unprocessed messages in
/// batchItemFailures" (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>).
/// `records` are (message id, group id) in batch order.
pub fn fifo_order_breaks(records: &[(&str, Option<&str>)], keep: &[String]) -> Vec<OrderBreak> {
    let mut failed_in: HashMap<&str, &str> = HashMap::new();
    let mut breaks = Vec::new();
    for (id, group) in records {
        let Some(group) = group else { continue };
        let failed = keep.iter().any(|k| k == id);
        match failed_in.get(group) {
            Some(first) if !failed => breaks.push(OrderBreak {
                group: (*group).to_string(),
                failed: (*first).to_string(),
                acknowledged: (*id).to_string(),
            }),
            Some(_) => {}
            None if failed => {
                failed_in.insert(group, id);
            }
            None => {}
        }
    }
    breaks
}

/// The distinct ids a partial batch response lists, or why the response fails the batch.
fn failed_ids<'a>(
    payload: &[u8],
    batch_ids: &'a [String],
) -> Result<HashSet<&'a str>, SettleReason> {
    let malformed = |detail: &str| SettleReason::MalformedResponse(detail.to_owned());
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashSet::new());
    }
    let response: Value =
        serde_json::from_slice(payload).map_err(|e| malformed(&format!("not JSON ({e})")))?;
    let list = match response {
        Value::Null => return Ok(HashSet::new()),
        Value::Object(mut object) => match object.remove("batchItemFailures") {
            None | Some(Value::Null) => return Ok(HashSet::new()),
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(malformed(&format!(
                    "batchItemFailures is {}, not a list",
                    kind_of(&other)
                )));
            }
        },
        other => {
            return Err(malformed(&format!(
                "the response is {}, not an object",
                kind_of(&other)
            )));
        }
    };
    let mut failed = HashSet::with_capacity(list.len());
    for item in list {
        let Value::Object(mut item) = item else {
            return Err(malformed(&format!(
                "a batch item failure is {}, not an object",
                kind_of(&item)
            )));
        };
        let id = match item.remove("itemIdentifier") {
            None | Some(Value::Null) => return Err(SettleReason::EmptyItemIdentifier),
            Some(Value::String(id)) if id.is_empty() => {
                return Err(SettleReason::EmptyItemIdentifier);
            }
            Some(Value::String(id)) => id,
            Some(other) => {
                return Err(malformed(&format!(
                    "itemIdentifier is {}, not a string",
                    kind_of(&other)
                )));
            }
        };
        match batch_ids.iter().find(|b| **b == id) {
            Some(known) => {
                failed.insert(known.as_str());
            }
            None => return Err(SettleReason::UnknownItemIdentifier(id)),
        }
    }
    Ok(failed)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn ok(body: &str) -> InvokeOutcome {
        InvokeOutcome::Success(Bytes::from(body.to_owned()))
    }

    #[test]
    fn whitespace_response_is_success() {
        let s = settle(&ids(), &ok(" \n"), true);
        assert_eq!(s, Settlement::succeeded(&ids()));
    }

    #[test]
    fn duplicate_listed_ids_count_once() {
        let body = r#"{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"b"}]}"#;
        let s = settle(&ids(), &ok(body), true);
        assert_eq!(s.delete, vec!["a".to_string(), "c".to_string()]);
        assert_eq!(s.keep, vec!["b".to_string()]);
        assert_eq!(s.reason, SettleReason::PartialFailure { failed: 1 });
    }

    #[test]
    fn non_string_identifier_is_malformed() {
        let body = r#"{"batchItemFailures":[{"itemIdentifier":7}]}"#;
        let s = settle(&ids(), &ok(body), true);
        assert!(matches!(s.reason, SettleReason::MalformedResponse(_)));
        assert!(s.delete.is_empty());
    }

    #[test]
    fn fifo_acknowledgements_after_a_failure_in_the_group_are_found() {
        let records = [
            ("a1", Some("a")),
            ("b1", Some("b")),
            ("a2", Some("a")),
            ("b2", Some("b")),
            ("a3", Some("a")),
        ];
        // a1 failed, a2 failed too (right), a3 acknowledged (wrong); b untouched.
        let keep = vec!["a1".to_string(), "a2".to_string()];
        assert_eq!(
            fifo_order_breaks(&records, &keep),
            [OrderBreak {
                group: "a".into(),
                failed: "a1".into(),
                acknowledged: "a3".into(),
            }]
        );
        // Every record after the first failure reported: nothing broken.
        let keep: Vec<String> = ["b1", "b2"].map(String::from).to_vec();
        assert!(fifo_order_breaks(&records, &keep).is_empty());
        assert!(fifo_order_breaks(&records, &[]).is_empty());
    }

    #[test]
    fn reasons_display_lowercase() {
        for reason in [
            SettleReason::Success,
            SettleReason::EmptyItemIdentifier,
            SettleReason::Timeout,
            SettleReason::UnknownItemIdentifier("x".into()),
        ] {
            let text = reason.to_string();
            assert!(text.chars().next().unwrap().is_lowercase(), "{text}");
        }
    }
}
