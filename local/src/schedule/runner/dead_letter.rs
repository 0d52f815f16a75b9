//! The end of a failed occurrence: the dead-letter message with the attributes EventBridge
//! puts on it, sent to the schedule's dead-letter queue, or the event dropped without one.

use super::{AttemptStatus, Entry, Failure, Inner, Occurrence};
use crate::schedule::delivery::format_scheduled_time;
use crate::sqs::{MessageAttributeValue, OutgoingMessage};
use crate::template::ScheduleKind;

/// Largest dead-letter body; longer payloads are cut and flagged `IS_PAYLOAD_TRUNCATED`.
const MAX_DLQ_BODY_BYTES: usize = 256 * 1024;

/// Longest `ERROR_MESSAGE` put on a dead-letter message.
const MAX_ERROR_MESSAGE_CHARS: usize = 1024;

/// The message attributes of a dead-lettered Scheduler event, as AWS documents them for
/// EventBridge Scheduler ("Retrieve the dead-letter event"). All are `String` attributes;
/// `EXHAUSTED_RETRY_CONDITION` is absent when the error could not clear (no retry was made).
/// Legacy rules use EventBridge's set instead: `RULE_ARN` in place of `SCHEDULE_ARN`, without
/// `EXECUTION_ID`, `SCHEDULED_TIME` and `IS_PAYLOAD_TRUNCATED`.
pub const DLQ_ATTRIBUTES: [&str; 9] = [
    "ERROR_CODE",
    "ERROR_MESSAGE",
    "EXECUTION_ID",
    "EXHAUSTED_RETRY_CONDITION",
    "IS_PAYLOAD_TRUNCATED",
    "RETRY_ATTEMPTS",
    "SCHEDULED_TIME",
    "SCHEDULE_ARN",
    "TARGET_ARN",
];

impl Inner {
    /// Sends the failed event to the schedule's dead-letter queue, or drops it.
    pub(super) fn dead_letter(
        &self,
        entry: &Entry,
        occ: &Occurrence,
        failure: &Failure,
        condition: Option<&str>,
        execution_id: &str,
        payload: &[u8],
    ) -> AttemptStatus {
        let (Some(queue), Some(sqs)) = (&entry.dlq, &self.sqs) else {
            tracing::error!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempts = occ.attempt,
                error = %failure,
                "schedule event dropped: delivery failed and there is no dead-letter queue"
            );
            return AttemptStatus::Dropped {
                failure: failure.clone(),
            };
        };
        let message = dead_letter_message(entry, occ, failure, condition, execution_id, payload);
        match sqs.send_message(queue, message) {
            Ok(receipt) => {
                tracing::warn!(
                    schedule = %entry.def.id,
                    scheduled_time = %occ.scheduled,
                    attempts = occ.attempt,
                    error = %failure,
                    queue = %queue,
                    message_id = %receipt.message_id,
                    "schedule event sent to its dead-letter queue"
                );
                AttemptStatus::DeadLettered {
                    failure: failure.clone(),
                    queue: queue.clone(),
                }
            }
            Err(err) => {
                tracing::error!(
                    schedule = %entry.def.id,
                    scheduled_time = %occ.scheduled,
                    error = %failure,
                    queue = %queue,
                    send_error = %err,
                    "schedule event dropped: cannot send it to its dead-letter queue"
                );
                AttemptStatus::Dropped {
                    failure: failure.clone(),
                }
            }
        }
    }
}

/// The dead-letter message of a failed event: its last payload, with EventBridge's attributes.
fn dead_letter_message(
    entry: &Entry,
    occ: &Occurrence,
    failure: &Failure,
    condition: Option<&str>,
    execution_id: &str,
    payload: &[u8],
) -> OutgoingMessage {
    let text = String::from_utf8_lossy(payload);
    let (body, truncated) = truncate(&text, MAX_DLQ_BODY_BYTES);
    let mut attributes: Vec<(&str, String)> = vec![
        ("ERROR_CODE", failure.code.clone()),
        (
            "ERROR_MESSAGE",
            failure
                .message
                .chars()
                .take(MAX_ERROR_MESSAGE_CHARS)
                .collect(),
        ),
        ("RETRY_ATTEMPTS", occ.attempt.saturating_sub(1).to_string()),
        ("TARGET_ARN", entry.target_arn.clone()),
    ];
    if let Some(condition) = condition {
        attributes.push(("EXHAUSTED_RETRY_CONDITION", condition.to_owned()));
    }
    match entry.def.kind {
        ScheduleKind::ScheduleV2 => attributes.extend([
            ("EXECUTION_ID", execution_id.to_owned()),
            ("IS_PAYLOAD_TRUNCATED", truncated.to_string()),
            ("SCHEDULED_TIME", format_scheduled_time(occ.scheduled)),
            ("SCHEDULE_ARN", entry.arn.clone()),
        ]),
        ScheduleKind::LegacyRule => attributes.push(("RULE_ARN", entry.arn.clone())),
    }
    let mut message = OutgoingMessage::new(sqs_text(body));
    for (name, value) in attributes {
        // SQS refuses empty attribute values.
        if !value.is_empty() {
            message = message.attribute(name, MessageAttributeValue::string(sqs_text(&value)));
        }
    }
    message
}

/// `s` cut to at most `max` bytes on a character boundary, and whether it was cut.
fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// `s` with the characters SQS refuses (outside #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
/// #x10000-#x10FFFF) replaced, so an odd error message cannot make the send fail.
fn sqs_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || ('\u{FFFE}'..='\u{FFFF}').contains(&c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 3), ("abc", false));
        assert_eq!(truncate("abcd", 3), ("abc", true));
        // 'é' is two bytes: cutting inside it backs off to before it.
        assert_eq!(truncate("aé", 2), ("a", true));
    }

    #[test]
    fn sqs_text_replaces_refused_characters() {
        assert_eq!(sqs_text("a\u{1}b\tc\n\u{FFFE}"), "a\u{FFFD}b\tc\n\u{FFFD}");
        assert_eq!(sqs_text("plain ✓"), "plain ✓");
    }
}
