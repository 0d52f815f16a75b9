//! record: what Lambda sends when an asynchronous event is done: the invocation record of a
//! destination, and the bare event with three attributes for a dead-letter queue.
//!
//! Shapes as documented in "Capturing records of Lambda asynchronous invocations",
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>.

use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::invoker::{FunctionError, InvokeError, InvokeResponse};
use crate::sqs::{MessageAttributeValue, OutgoingMessage};

/// Longest `ErrorMessage` attribute of a dead-lettered event: "the first 1 KB of the error
/// message".
const MAX_DLQ_ERROR_MESSAGE_BYTES: usize = 1024;

/// Why an event left the queue, the record's `requestContext.condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The function returned a result.
    Success,
    /// Every attempt allowed by `MaximumRetryAttempts` failed (or the error cannot clear).
    RetriesExhausted,
    /// The event grew older than `MaximumEventAgeInSeconds` before it could be retried.
    EventAgeExceeded,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
        })
    }
}

/// How the last attempt of an event ended, kept for its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastOutcome {
    /// The function returned this payload.
    Success(Bytes),
    /// The function failed (error, timeout, crash); the error document Lambda reports.
    FunctionError(FunctionError),
    /// The invocation did not reach the function (throttled, unknown, unreachable): the HTTP
    /// status Lambda's service would answer, and the error.
    NotInvoked {
        /// `429` for throttling, `404` for an unknown function, `500` otherwise.
        status: u16,
        /// What went wrong.
        error: FunctionError,
    },
}

impl LastOutcome {
    /// The outcome of one attempt.
    pub fn of(result: &Result<InvokeResponse, InvokeError>) -> Self {
        match result {
            Ok(response) => match response.lambda_error() {
                None => LastOutcome::Success(response.payload().cloned().unwrap_or_default()),
                Some(error) => LastOutcome::FunctionError(error),
            },
            Err(error) => {
                let (status, code) = match error {
                    InvokeError::Throttled(_) => (429, "TooManyRequestsException"),
                    InvokeError::UnknownFunction(_) => (404, "ResourceNotFoundException"),
                    InvokeError::PayloadTooLarge { .. } => (413, "RequestTooLargeException"),
                    _ => (500, "ServiceException"),
                };
                LastOutcome::NotInvoked {
                    status,
                    error: FunctionError::new(code, error.to_string()),
                }
            }
        }
    }
}

/// What an event's record says about it.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    /// When the record is made, on the emulator's clock.
    pub timestamp: DateTime<Utc>,
    /// The request id of the asynchronous invocation (the same for every attempt).
    pub request_id: &'a str,
    /// The function's unqualified ARN.
    pub function_arn: &'a str,
    /// Why the event left the queue.
    pub condition: Condition,
    /// How many times the function was invoked.
    pub invoke_count: u32,
}

/// The invocation record sent to a destination:
/// `{"version":"1.0","timestamp",..,"requestContext":{..},"requestPayload":..,
/// "responseContext":{..},"responsePayload":..}`.
pub fn invocation_record(ctx: &RecordContext<'_>, event: &[u8], last: &LastOutcome) -> Value {
    let (response_context, response_payload) = match last {
        LastOutcome::Success(payload) => (
            json!({"statusCode": 200, "executedVersion": "$LATEST"}),
            json_or_string(payload),
        ),
        LastOutcome::FunctionError(error) => (
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}),
            error_json(error),
        ),
        LastOutcome::NotInvoked { status, error } => (
            json!({"statusCode": status, "executedVersion": "$LATEST"}),
            error_json(error),
        ),
    };
    json!({
        "version": "1.0",
        "timestamp": ctx.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "requestContext": {
            "requestId": ctx.request_id,
            "functionArn": format!("{}:$LATEST", ctx.function_arn),
            "condition": ctx.condition.to_string(),
            "approximateInvokeCount": ctx.invoke_count,
        },
        "requestPayload": json_or_string(event),
        "responseContext": response_context,
        "responsePayload": response_payload,
    })
}

/// The message a function's dead-letter queue receives: the event as body, with `RequestID`,
/// `ErrorCode` (the service's status code, a number) and `ErrorMessage` (its first 1 KB).
pub fn dead_letter_message(request_id: &str, event: &[u8], last: &LastOutcome) -> OutgoingMessage {
    let (status, message) = match last {
        LastOutcome::Success(_) => (200, String::new()),
        LastOutcome::FunctionError(error) => (200, error.error_message.clone()),
        LastOutcome::NotInvoked { status, error } => (*status, error.error_message.clone()),
    };
    let mut message_text = message;
    if message_text.len() > MAX_DLQ_ERROR_MESSAGE_BYTES {
        let mut end = MAX_DLQ_ERROR_MESSAGE_BYTES;
        while !message_text.is_char_boundary(end) {
            end -= 1;
        }
        message_text.truncate(end);
    }
    let mut out = OutgoingMessage::new(String::from_utf8_lossy(event).into_owned())
        .attribute("RequestID", MessageAttributeValue::string(request_id))
        .attribute("ErrorCode", MessageAttributeValue::number(status));
    // SQS refuses empty attribute values.
    if !message_text.is_empty() {
        out = out.attribute("ErrorMessage", MessageAttributeValue::string(message_text));
    }
    out
}

fn error_json(error: &FunctionError) -> Value {
    json!({"errorType": error.error_type, "errorMessage": error.error_message})
}

fn json_or_string(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_record_has_awss_shape() {
        let ctx = RecordContext {
            timestamp: "2026-01-01T00:03:00.5Z".parse().unwrap(),
            request_id: "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f",
            condition: Condition::RetriesExhausted,
            invoke_count: 3,
        };
        let last = LastOutcome::FunctionError(FunctionError::new("Boom", "it broke"));
        assert_eq!(
            invocation_record(&ctx, br#"{"date":"2026-01-01"}"#, &last),
            json!({
                "version": "1.0",
                "timestamp": "2026-01-01T00:03:00.500Z",
                "requestContext": {
                    "requestId": "c2a6f2ae-7dbb-4d22-8782-d0485c9877e2",
                    "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": 3
                },
                "requestPayload": {"date": "2026-01-01"},
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": {"errorType": "Boom", "errorMessage": "it broke"}
            })
        );
    }

    #[test]
    fn dead_letter_message_cuts_the_error_message_to_1_kb() {
        let last = LastOutcome::FunctionError(FunctionError::new("Boom", "é".repeat(600)));
        let m = dead_letter_message("r", b"{}", &last);
        assert_eq!(m.body, "{}");
        let text = m.message_attributes["ErrorMessage"]
            .string_value
            .clone()
            .unwrap();
        assert_eq!(text.len(), 1024);
        assert_eq!(m.message_attributes["ErrorCode"].data_type, "Number");
    }
}
