//! How the emulator's long-running tasks are told to stop: one [`Shutdown`] per owner (the
//! emulator, the schedule runner, the async invoke queue, a test), and a [`Signal`] for each
//! task that listens (the SQS pollers, the schedule tasks, the async retries, the endpoint).
//!
//! A stop is one-way: once triggered it stays triggered. A task waits for it with
//! [`Signal::recv`] inside a `select!`, or checks [`Signal::is_triggered`] between steps.
//! Dropping every [`Shutdown`] handle counts as a stop too, so a task never outlives its owner
//! waiting on a stop nobody can send.

use std::sync::Arc;

use tokio::sync::watch;

/// The stopping side: [`Shutdown::trigger`] stops every [`Signal`] handed out by
/// [`Shutdown::signal`]. Clones share the one stop.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A stop not triggered yet.
    pub fn new() -> Self {
        Shutdown {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Triggers the stop; idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the stop was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A listener for this stop, to hand to a task.
    pub fn signal(&self) -> Signal {
        Signal {
            rx: self.tx.subscribe(),
        }
    }
}

/// The listening side of a [`Shutdown`]; clones listen to the same stop.
#[derive(Debug, Clone)]
pub struct Signal {
    rx: watch::Receiver<bool>,
}

impl Signal {
    /// Whether the stop was triggered (or every [`Shutdown`] handle dropped).
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Completes once the stop is triggered (or every [`Shutdown`] handle dropped); at once if
    /// it already was.
    pub async fn recv(&mut self) {
        // An error means every sender is gone, which is a stop as well.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_every_signal_once_and_for_all() {
        let shutdown = Shutdown::new();
        let mut early = shutdown.signal();
        let copy = early.clone();
        assert!(!early.is_triggered() && !shutdown.is_triggered());
        shutdown.trigger();
        early.recv().await;
        let mut late = shutdown.signal();
        late.recv().await;
        assert!(copy.is_triggered() && late.is_triggered() && shutdown.is_triggered());
    }

    #[tokio::test]
    async fn dropping_every_handle_is_a_stop() {
        let shutdown = Shutdown::new();
        let mut signal = shutdown.signal();
        let kept = shutdown.clone();
        drop(shutdown);
        assert!(!signal.is_triggered());
        drop(kept);
        assert!(signal.is_triggered());
        signal.recv().await;
    }
}
