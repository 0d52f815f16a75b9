//! SES's mailbox simulator for the local mailers: mail to `bounce@`, `complaint@`,
//! `suppressionlist@`, `success@` or `ooto@simulator.amazonses.com` goes to the outbox as
//! any other, and the events SES would publish for it ([`crate::feedback::simulate`]) go
//! to the feedback queue, so the whole loop (send, bounce, suppression, the next send
//! refused) runs without AWS.
//!
//! In AWS the path is SES → configuration set → SNS topic → feedback queue (raw delivery);
//! here the mailer puts the same bodies on the same queue directly. Only simulator
//! recipients cause events: a delivery event for every local email would double the
//! emulator's invocations for no signal a developer asked for.

use std::sync::Arc;

use async_trait::async_trait;

use crate::feedback::simulate;
use crate::ports::{Clock, MailError, Mailer, OutgoingEmail, Queue, SendOptions};

/// A mailer that answers simulator addresses with feedback events on a queue.
pub struct MailboxSimulator {
    inner: Arc<dyn Mailer>,
    queue: Arc<dyn Queue>,
    feedback_queue_url: String,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MailboxSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxSimulator")
            .field("feedback_queue_url", &self.feedback_queue_url)
            .finish_non_exhaustive()
    }
}

impl MailboxSimulator {
    /// Sends through `inner`, and puts the simulator's events on `feedback_queue_url`,
    /// stamped by `clock`.
    pub fn new(
        inner: Arc<dyn Mailer>,
        queue: Arc<dyn Queue>,
        feedback_queue_url: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        MailboxSimulator {
            inner,
            queue,
            feedback_queue_url: feedback_queue_url.into(),
            clock,
        }
    }
}

#[async_trait]
impl Mailer for MailboxSimulator {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, MailError> {
        let message_id = self.inner.send(email).await?;
        for event in simulate(email, &message_id, self.clock.now()) {
            // The email is out: failing the send now would send it again. SNS would retry
            // its delivery to the queue; locally the event is logged and dropped.
            if let Err(e) = self
                .queue
                .send(
                    &self.feedback_queue_url,
                    &event,
                    &[],
                    &SendOptions::default(),
                )
                .await
            {
                tracing::error!(error = %e, request_id = %email.request_id, "cannot queue simulated mail feedback");
            }
        }
        Ok(message_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{ManualClock, MemoryMailer, MemoryQueue};

    #[tokio::test]
    async fn simulator_recipients_get_events_others_none() {
        let queue = Arc::new(MemoryQueue::default());
        let mailer = MailboxSimulator::new(
            Arc::new(MemoryMailer::default()),
            queue.clone(),
            "http://q/feedback",
            Arc::new(ManualClock::new("2026-11-21T09:30:00Z".parse().unwrap())),
        );
        let email = |to: &str| OutgoingEmail {
            request_id: "r".into(),
            from: "nightshift@example.com".into(),
            to: vec![to.into()],
            subject: "s".into(),
            text: "t".into(),
            html: None,
        };
        mailer.send(&email("ada@example.com")).await.unwrap();
        assert!(queue.sent_to("http://q/feedback").is_empty());
        mailer
            .send(&email("bounce@simulator.amazonses.com"))
            .await
            .unwrap();
        let sent = queue.sent_to("http://q/feedback");
        assert_eq!(sent.len(), 1);
        let event = crate::feedback::parse(&sent[0].body).unwrap();
        assert_eq!(event.type_name(), "Bounce");
    }
}
