//! record: what nightshift reads from an SQS record and writes onto the copy it dead-letters.
//!
//! The batch processor and fault injection of the functions, and the emulator's tools (the
//! reliability check, record and replay, the DLQ views) agree on these names through it.

use aws_lambda_events::event::sqs::SqsMessage;

/// Message attribute holding the reason a record was dead-lettered.
pub const ERROR_ATTRIBUTE: &str = "nightshift-error";
/// Message attribute holding the ARN of the queue the record came from.
pub const SOURCE_ATTRIBUTE: &str = "nightshift-source";
/// Message attribute holding the original message id.
pub const ORIGINAL_ID_ATTRIBUTE: &str = "nightshift-original-message-id";
/// Message attribute holding how many times the record had been received.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "nightshift-receive-count";

/// `ApproximateReceiveCount` of a record (1 when absent or unreadable).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// The system attribute that names a FIFO record's message group.
pub const MESSAGE_GROUP_ID: &str = "MessageGroupId";

/// `MessageGroupId` of a record: SQS sets it on every record of a FIFO queue (and on records
/// of a standard queue sent with one, for fair queues); `None` when absent or empty.
pub fn message_group_id(record: &SqsMessage) -> Option<&str> {
    record
        .attributes
        .get(MESSAGE_GROUP_ID)
        .map(String::as_str)
        .filter(|g| !g.is_empty())
}

/// The message system attribute that carries an X-Ray trace header (`Root=1-…;Parent=…;
/// Sampled=…`) with a message; a Lambda function triggered by the queue sees it among its
/// record's `attributes`
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>).
pub const TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";

/// `AWSTraceHeader` of a record, the trace of whoever sent it; `None` when absent or empty.
pub fn trace_header(record: &SqsMessage) -> Option<&str> {
    record
        .attributes
        .get(TRACE_HEADER_ATTRIBUTE)
        .map(String::as_str)
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_counts_default_to_one() {
        let mut record = SqsMessage::default();
        assert_eq!(receive_count(&record), 1);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "4".into());
        assert_eq!(receive_count(&record), 4);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "0".into());
        assert_eq!(receive_count(&record), 1);
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "many".into());
        assert_eq!(receive_count(&record), 1);
    }

    #[test]
    fn group_ids_are_read_from_the_system_attributes() {
        let mut record = SqsMessage::default();
        assert_eq!(message_group_id(&record), None);
        record.attributes.insert(MESSAGE_GROUP_ID.into(), "".into());
        assert_eq!(message_group_id(&record), None);
        record
            .attributes
            .insert(MESSAGE_GROUP_ID.into(), "tenant-7".into());
        assert_eq!(message_group_id(&record), Some("tenant-7"));
    }
}
