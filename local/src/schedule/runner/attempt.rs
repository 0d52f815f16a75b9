//! One delivery attempt: hands the payload to the function's asynchronous queue or the
//! target queue, classifies a failure, and schedules the retry or finishes the occurrence.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{AttemptStatus, Deliver, Failure, Inner, Occurrence};
use crate::invoke_async::Accepted;
use crate::invoker::InvokeError;
use crate::schedule::new_execution_id;
use crate::shutdown::Signal;
use crate::sqs::OutgoingMessage;
use crate::sqs::error::SqsError;

/// What a successful attempt handed over.
pub(super) enum Sent {
    /// The function's asynchronous queue accepted the event.
    Accepted(Accepted),
    /// The message went to the target queue.
    Message { message_id: String },
}

/// Why an attempt failed.
pub(super) enum AttemptError {
    /// The function's asynchronous queue did not take the event.
    Invoke(InvokeError),
    /// The target queue did not take the message (or there is no SQS engine).
    Send { queue: String, error: SqsError },
}

impl AttemptError {
    fn failure(&self) -> Failure {
        match self {
            AttemptError::Invoke(error) => invoke_failure(error),
            AttemptError::Send { error, .. } => send_failure(error),
        }
    }
}

/// What one attempt did.
pub(super) struct Attempted {
    pub(super) execution_id: String,
    pub(super) payload: Bytes,
    pub(super) result: Result<Sent, AttemptError>,
    /// When the next attempt is due, if one is.
    pub(super) next_attempt_at: Option<DateTime<Utc>>,
}

impl Inner {
    /// Makes attempt `occ.attempt`; on a retryable failure moves `occ` to its next attempt,
    /// otherwise finishes it (success, dead-letter queue or drop).
    pub(super) async fn attempt(
        &self,
        occ: &mut Occurrence,
        rng: &mut fastrand::Rng,
        stop: &mut Signal,
    ) -> Attempted {
        let entry = occ.entry.clone();
        let entry = &*entry;
        let execution_id = new_execution_id(rng);
        let payload = entry.payload(&self.config, occ, &execution_id);
        let result = self.deliver_payload(&entry.target, &payload, &entry.def.name);
        let now = self.clock.now();
        let failure = result.as_ref().err().map(AttemptError::failure);
        let Some(failure) = failure else {
            tracing::debug!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempt = occ.attempt,
                "schedule delivered"
            );
            entry.record(occ, now, AttemptStatus::Succeeded);
            return Attempted {
                execution_id,
                payload,
                result,
                next_attempt_at: None,
            };
        };
        if stop.is_triggered()
            && matches!(result, Err(AttemptError::Invoke(InvokeError::ShuttingDown)))
        {
            tracing::warn!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempt = occ.attempt,
                "schedule invocation abandoned at shutdown"
            );
            return Attempted {
                execution_id,
                payload,
                result,
                next_attempt_at: None,
            };
        }
        let policy = entry.schedule.retry_policy;
        let retry_at = failure
            .retryable
            .then(|| policy.next_retry(occ.attempt, occ.first_attempt_at, now))
            .flatten();
        if let Some(at) = retry_at {
            tracing::warn!(
                schedule = %entry.def.id,
                scheduled_time = %occ.scheduled,
                attempt = occ.attempt,
                error = %failure,
                retry_at = %at,
                "schedule invocation failed, will retry"
            );
            entry.record(
                occ,
                now,
                AttemptStatus::Retrying {
                    failure,
                    next_attempt_at: at,
                },
            );
            occ.attempt += 1;
            occ.due = at;
            return Attempted {
                execution_id,
                payload,
                result,
                next_attempt_at: Some(at),
            };
        }
        let condition = if !failure.retryable {
            None
        } else if occ.attempt > policy.maximum_retry_attempts {
            Some("MaximumRetryAttempts")
        } else {
            Some("MaximumEventAgeInSeconds")
        };
        let status = self.dead_letter(entry, occ, &failure, condition, &execution_id, &payload);
        entry.record(occ, now, status);
        Attempted {
            execution_id,
            payload,
            result,
            next_attempt_at: None,
        }
    }

    /// Hands `payload` to the target: the function's asynchronous queue, or a message on the
    /// target queue.
    fn deliver_payload(
        &self,
        target: &Deliver,
        payload: &Bytes,
        schedule: &str,
    ) -> Result<Sent, AttemptError> {
        match target {
            Deliver::Function(name) => self
                .queues
                .invoke_async_from(name, payload.clone(), &format!("schedule:{schedule}"))
                .map(Sent::Accepted)
                .map_err(AttemptError::Invoke),
            Deliver::Queue {
                name,
                message_group_id,
            } => {
                let send_error = |error| AttemptError::Send {
                    queue: name.clone(),
                    error,
                };
                // No engine at all: as if the queue did not exist.
                let sqs = self
                    .sqs
                    .as_ref()
                    .ok_or_else(|| send_error(SqsError::QueueDoesNotExist))?;
                // The payload is the Input as given (a String), so it is valid UTF-8; characters
                // SQS refuses make the send fail as they would on AWS.
                let mut message = OutgoingMessage::new(String::from_utf8_lossy(payload));
                message.message_group_id = message_group_id.clone();
                sqs.send_message(name, message)
                    .map(|receipt| Sent::Message {
                        message_id: receipt.message_id,
                    })
                    .map_err(send_error)
            }
        }
    }
}

/// The failure of an invocation that did not reach the function.
fn invoke_failure(error: &InvokeError) -> Failure {
    let (code, retryable) = match error {
        InvokeError::UnknownFunction(_) => ("ResourceNotFoundException", false),
        InvokeError::PayloadTooLarge { .. } => ("RequestEntityTooLargeException", false),
        InvokeError::Throttled(_) => ("TooManyRequestsException", true),
        InvokeError::Remote { status: 429, .. } => ("TooManyRequestsException", true),
        InvokeError::Remote { status: 404, .. } => ("ResourceNotFoundException", false),
        InvokeError::Remote { status, .. } if *status < 500 => {
            ("InvalidRequestContentException", false)
        }
        InvokeError::Remote { .. }
        | InvokeError::ShuttingDown
        | InvokeError::Spawn { .. }
        | InvokeError::Unreachable { .. } => ("ServiceException", true),
    };
    Failure {
        code: code.to_owned(),
        message: error.to_string(),
        retryable,
    }
}

/// The failure of a message the target queue did not take. A queue that does not exist
/// (deleted, or not created yet) may come back, so it is retried like a service error; other
/// refusals of the caller's message (too large, characters SQS refuses) cannot clear.
fn send_failure(error: &SqsError) -> Failure {
    let wire = error.wire();
    Failure {
        code: wire.query_code.to_owned(),
        message: error.aws_message(),
        retryable: matches!(error, SqsError::QueueDoesNotExist) || !wire.sender_fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_errors_classify() {
        let unknown = invoke_failure(&InvokeError::UnknownFunction("f".into()));
        assert_eq!(unknown.code, "ResourceNotFoundException");
        assert!(!unknown.retryable);
        let throttled = invoke_failure(&InvokeError::Throttled("f".into()));
        assert_eq!(throttled.code, "TooManyRequestsException");
        assert!(throttled.retryable);
        let remote = |status| {
            invoke_failure(&InvokeError::Remote {
                status,
                body: String::new(),
            })
        };
        assert!(remote(503).retryable);
        assert!(remote(429).retryable);
        assert!(!remote(400).retryable);
        assert_eq!(remote(404).code, "ResourceNotFoundException");
    }
}
