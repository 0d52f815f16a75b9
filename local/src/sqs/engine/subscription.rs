//! Waiting for messages without receiving them: [`QueueSubscription`] and the engine's
//! `subscribe` and `wait_for_messages`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{QueueHandle, SqsEngine, lock, to_time};
use crate::sqs::error::SqsError;

impl SqsEngine {
    /// A handle to wait until `queue` has visible messages.
    pub fn subscribe(&self, queue: &str) -> Result<QueueSubscription, SqsError> {
        Ok(QueueSubscription {
            engine: self.clone(),
            queue: self.lookup(queue)?,
        })
    }

    /// Waits until `queue` has a visible message (`true`) or `timeout` of clock time passes
    /// (`false`).
    pub async fn wait_for_messages(
        &self,
        queue: &str,
        timeout: Duration,
    ) -> Result<bool, SqsError> {
        self.subscribe(queue)?.wait_visible(Some(timeout)).await
    }
}

/// Waits for visible messages on one queue (see [`SqsEngine::subscribe`]).
pub struct QueueSubscription {
    engine: SqsEngine,
    queue: Arc<QueueHandle>,
}

impl std::fmt::Debug for QueueSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSubscription")
            .field("queue", &self.queue.name)
            .finish()
    }
}

impl QueueSubscription {
    /// The queue's name.
    pub fn queue_name(&self) -> &str {
        &self.queue.name
    }

    /// How many messages a receive could take now: the visible ones, and on a FIFO queue only
    /// those of groups with no message in flight (a poller that counted the others would
    /// receive nothing and try again at once).
    pub fn visible(&self) -> Result<usize, SqsError> {
        if self.queue.deleted.load(Ordering::SeqCst) {
            return Err(SqsError::QueueDoesNotExist);
        }
        let now = self.engine.now_ms();
        let mut state = lock(&self.queue.state);
        state.refresh(now);
        Ok(state.receivable())
    }

    /// Waits until a message is visible (`true`), or until `timeout` of clock time passes
    /// (`false`); `None` waits as long as it takes. `QueueDoesNotExist` if the queue is deleted.
    pub async fn wait_visible(&self, timeout: Option<Duration>) -> Result<bool, SqsError> {
        let deadline = timeout.map(|t| {
            self.engine
                .now_ms()
                .saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
        });
        // Each pass sleeps until the queue changed or the clock reached the next instant
        // that matters, so this only spins as often as something happens.
        loop {
            let notified = self.queue.notify.notified();
            if self.visible()? > 0 {
                return Ok(true);
            }
            let now = self.engine.now_ms();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            let next = lock(&self.queue.state).next_visible_at();
            let wake_at = match (next, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = self.engine.inner.clock.sleep_until(to_time(at)) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}
