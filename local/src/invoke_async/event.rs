//! event: the life of one accepted event: attempts on the clock, the retry decision after each,
//! and where the event ends (a destination, the dead-letter queue, or a log line).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::oneshot;

use super::record::{
    Condition, LastOutcome, RecordContext, dead_letter_message, invocation_record,
};
use super::{
    AsyncFunction, FUNCTION_ERROR_RETRY_DELAYS, FirstAttempt, Inner, SYSTEM_RETRY_BASE,
    SYSTEM_RETRY_MAX, Target,
};
use crate::activity::Tracker;
use crate::invoker::{InvokeError, InvokeRequest, InvokeResponse};
use crate::shutdown::Signal;
use crate::sqs::OutgoingMessage;

/// One accepted event.
pub(super) struct Event {
    pub(super) function: Arc<AsyncFunction>,
    pub(super) request_id: String,
    pub(super) payload: Bytes,
    /// What caused it ([`crate::invoker::InvokeRequest::trigger`]).
    pub(super) trigger: String,
    /// The caller's trace, continued by every attempt (`None`: each attempt starts one).
    pub(super) trace_header: Option<String>,
    /// Accepted at + `MaximumEventAgeInSeconds`: no attempt starts later.
    pub(super) expires_at: DateTime<Utc>,
    /// Invocations that reached the function (`approximateInvokeCount`).
    pub(super) invoke_count: u32,
    /// Throttle and service-error retries so far (they do not count as attempts).
    pub(super) system_retries: u32,
    /// Told the result of the first attempt, then `None`.
    pub(super) first_attempt: Option<oneshot::Sender<FirstAttempt>>,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The function succeeded.
    Done,
    /// Try again at this instant.
    RetryAt(DateTime<Utc>),
    /// No more attempts: the event is discarded.
    Discard,
}

impl Event {
    /// Counts the attempt that gave `result` at `now` and decides what follows it.
    fn after(&mut self, result: &Result<InvokeResponse, InvokeError>, now: DateTime<Utc>) -> Next {
        let delay = match result {
            Ok(response) => {
                self.invoke_count += 1;
                if response.is_success() {
                    return Next::Done;
                }
                let retries = self.invoke_count - 1;
                if retries >= self.function.max_retry_attempts {
                    return Next::Discard;
                }
                FUNCTION_ERROR_RETRY_DELAYS[(retries as usize).min(FUNCTION_ERROR_RETRY_DELAYS.len() - 1)]
            }
            // Reserved concurrency 0: "Lambda begins sending new events to the configured
            // dead-letter queue or the on-failure event destination, without any retries."
            // (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)
            Err(InvokeError::Throttled(_))
            // Errors no retry can clear.
            | Err(InvokeError::UnknownFunction(_))
            | Err(InvokeError::PayloadTooLarge { .. }) => return Next::Discard,
            Err(InvokeError::Remote { status, .. }) if *status < 500 && *status != 429 => {
                return Next::Discard;
            }
            Err(_) => {
                self.system_retries += 1;
                system_retry_delay(self.system_retries)
            }
        };
        let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
        Next::RetryAt(
            now.checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }
}

/// The wait before throttle or service-error retry `n` (1-based): 1 s doubling, at most 5 min.
fn system_retry_delay(n: u32) -> Duration {
    SYSTEM_RETRY_BASE
        .checked_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX))
        .map_or(SYSTEM_RETRY_MAX, |d| d.min(SYSTEM_RETRY_MAX))
}

impl Inner {
    /// Runs `event` from `due` until it succeeds or is discarded; `tracker` marks the task.
    pub(super) async fn run(
        self: Arc<Self>,
        mut event: Event,
        mut due: DateTime<Utc>,
        tracker: Tracker,
    ) {
        let mut stop = self.stop.signal();
        loop {
            if !self.wait_until(due, &tracker, &mut stop, &event).await {
                return;
            }
            let mut request =
                InvokeRequest::new(event.function.name.clone(), event.payload.clone())
                    .with_request_id(event.request_id.clone())
                    .with_trigger(event.trigger.clone());
            if let Some(trace) = &event.trace_header {
                request = request.with_trace_header(trace.clone());
            }
            self.count(&event.function.name, |s| s.attempts += 1);
            let result = tokio::select! {
                biased;
                result = self.invoker.invoke(request) => result,
                () = stop.recv() => Err(InvokeError::ShuttingDown),
            };
            if stop.is_triggered() && matches!(result, Err(InvokeError::ShuttingDown)) {
                self.abandon(&event);
                return;
            }
            let now = self.clock.now();
            let next = event.after(&result, now);
            let last = LastOutcome::of(&result);
            let retry_at = match next {
                Next::RetryAt(at) if at <= event.expires_at => Some(at),
                _ => None,
            };
            if let Some(first) = event.first_attempt.take() {
                let _ = first.send(FirstAttempt {
                    result,
                    next_attempt_at: retry_at,
                });
            }
            match (next, retry_at) {
                (Next::Done, _) => return self.finish(&event, Condition::Success, &last),
                (Next::Discard, _) => {
                    return self.finish(&event, Condition::RetriesExhausted, &last);
                }
                (Next::RetryAt(_), Some(at)) => {
                    tracing::warn!(
                        function = %event.function.name,
                        request_id = %event.request_id,
                        attempts = event.invoke_count,
                        retry_at = %at,
                        "async invocation failed, will retry"
                    );
                    due = at;
                }
                (Next::RetryAt(_), None) => {
                    // The retry would come after the event's maximum age: it leaves the
                    // queue when it reaches that age.
                    if self
                        .wait_until(event.expires_at, &tracker, &mut stop, &event)
                        .await
                    {
                        self.finish(&event, Condition::EventAgeExceeded, &last);
                    }
                    return;
                }
            }
        }
    }

    /// Waits on the clock until `at`; false when the emulator stopped first.
    async fn wait_until(
        &self,
        at: DateTime<Utc>,
        tracker: &Tracker,
        stop: &mut Signal,
        event: &Event,
    ) -> bool {
        if at > self.clock.now() {
            // Registered before marking parked, so a stepping caller always sees the waiter.
            let sleep = self.clock.sleep_until(at);
            tracker.park(at);
            tokio::select! {
                biased;
                () = stop.recv() => {}
                () = sleep => {}
            }
            tracker.run();
        }
        if stop.is_triggered() {
            self.abandon(event);
            return false;
        }
        true
    }

    fn abandon(&self, event: &Event) {
        self.count(&event.function.name, |s| s.pending -= 1);
        tracing::warn!(
            function = %event.function.name,
            request_id = %event.request_id,
            attempts = event.invoke_count,
            "async event abandoned at shutdown"
        );
    }

    /// Sends the event's record where its condition sends it.
    fn finish(self: &Arc<Self>, event: &Event, condition: Condition, last: &LastOutcome) {
        let f = &event.function;
        self.count(&f.name, |s| {
            s.pending -= 1;
            match condition {
                Condition::Success => s.succeeded += 1,
                _ => s.discarded += 1,
            }
        });
        let target = match condition {
            Condition::Success => f.on_success.as_ref(),
            _ => f.on_failure.as_ref(),
        };
        let record = || {
            let ctx = RecordContext {
                timestamp: self.clock.now(),
                request_id: &event.request_id,
                function_arn: &f.arn,
                condition,
                invoke_count: event.invoke_count,
            };
            invocation_record(&ctx, &event.payload, last).to_string()
        };
        match (target, condition, &f.dead_letter_queue) {
            (Some(target), _, _) => self.deliver(event, condition, target, record()),
            (None, Condition::Success, _) => {}
            (None, _, Some(queue)) => {
                let message = dead_letter_message(&event.request_id, &event.payload, last);
                self.send(event, condition, queue, message);
            }
            (None, _, None) => tracing::error!(
                function = %f.name,
                request_id = %event.request_id,
                %condition,
                attempts = event.invoke_count,
                "async event discarded: the function has no on-failure destination and no dead-letter queue"
            ),
        }
    }

    fn deliver(
        self: &Arc<Self>,
        event: &Event,
        condition: Condition,
        target: &Target,
        record: String,
    ) {
        match target {
            Target::Queue(queue) => {
                self.send(event, condition, queue, OutgoingMessage::new(record))
            }
            Target::Function(name) => {
                let trigger = format!("destination:{}", event.function.name);
                if let Err(e) = self.accept(name, Bytes::from(record), &trigger, None) {
                    tracing::error!(function = %event.function.name, request_id = %event.request_id, destination = %name, error = %e, "async invocation record lost: the destination function refused it");
                }
            }
            Target::Unmodelled { kind, target } => tracing::warn!(
                function = %event.function.name,
                request_id = %event.request_id,
                %condition,
                destination = %target,
                "async invocation record dropped: {kind} destinations are not modelled by the emulator"
            ),
        }
    }

    fn send(&self, event: &Event, condition: Condition, queue: &str, message: OutgoingMessage) {
        let sent = match &self.sqs {
            Some(sqs) => sqs.send_message(queue, message).map(|r| r.message_id),
            None => {
                tracing::error!(function = %event.function.name, %queue, "async invocation record lost: the emulator has no queues");
                return;
            }
        };
        match sent {
            Ok(message_id) => tracing::info!(
                function = %event.function.name,
                request_id = %event.request_id,
                %condition,
                attempts = event.invoke_count,
                %queue,
                %message_id,
                "async event done, record sent"
            ),
            Err(e) => tracing::error!(
                function = %event.function.name,
                request_id = %event.request_id,
                %queue,
                error = %e,
                "async invocation record lost: cannot send it to its queue"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_retries_double_from_one_second_to_five_minutes() {
        let d: Vec<u64> = (1..=11).map(|n| system_retry_delay(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(system_retry_delay(u32::MAX), SYSTEM_RETRY_MAX);
    }
}
