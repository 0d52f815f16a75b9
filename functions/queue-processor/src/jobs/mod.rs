//! Job kinds. A job is pure: it validates its payload and says what should happen (emails to
//! enqueue, jobs to schedule or cancel, a result to record); the handler does the I/O. Adding
//! a kind = one type implementing [`Job`], registered in [`Registry::standard`].

pub mod follow_up;
pub mod inventory;
mod order;
mod signup;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use nightshift::contracts::{EmailRequest, JobEnvelope};

pub use follow_up::UserFollowUp;
pub use inventory::InventoryAdjusted;
pub use order::{Item, OrderPlaced};
pub use signup::UserSignup;

/// What a job asks the world to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effects {
    /// Emails to enqueue on the emails queue.
    pub emails: Vec<EmailRequest>,
    /// A short result recorded with the idempotency key.
    pub result: serde_json::Value,
    /// A change to apply to a key's balance in its sequence order (`inventory.adjusted`).
    pub adjustment: Option<Adjustment>,
    /// Jobs to put on the jobs queue later, through the scheduler.
    pub schedules: Vec<LaterJob>,
    /// Ids of scheduled jobs to cancel (one not scheduled, or already sent, is no error).
    pub cancels: Vec<String>,
}

/// A job to put on the jobs queue at a later time ([`nightshift::ports::Scheduler::schedule_job`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LaterJob {
    /// The schedule id (a schedule name: [`nightshift::ports::schedule_name`]); scheduling
    /// it again replaces the schedule, and [`Effects::cancels`] names it.
    pub id: String,
    /// When the job goes on the queue.
    pub at: DateTime<Utc>,
    /// The job.
    pub envelope: JobEnvelope,
}

/// A delta for a key's balance, to apply only as the key's next sequence number
/// ([`nightshift::ports::Store::apply_in_sequence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// The store key (one sequence and balance per key).
    pub key: String,
    /// The producer's sequence number for the key, from 1.
    pub sequence: u64,
    /// The change to the balance.
    pub delta: i64,
}

/// The place of a job in a key's sequence: what a dead-lettered job gives up
/// ([`nightshift::ports::Store::skip_in_sequence`]) so the key's next job can apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSlot {
    /// The store key.
    pub key: String,
    /// The sequence number.
    pub sequence: u64,
}

impl Effects {
    /// The bodies to enqueue for [`Effects::emails`], each read back with
    /// [`EmailRequest::parse`], the parser email-sender reads them with: an email it would
    /// dead-letter (an id over 128 characters once prefixed, a subject with a line break, an
    /// oversized body) fails the job here as [`JobError::InvalidPayload`] instead of being
    /// recorded as a success whose email never goes out. All or nothing: none is enqueued
    /// when one is invalid.
    pub fn email_bodies(&self) -> Result<Vec<String>, JobError> {
        self.emails
            .iter()
            .map(|email| {
                let body = serde_json::to_string(email).map_err(|e| {
                    JobError::InvalidPayload(format!("email {:?} cannot be encoded: {e}", email.id))
                })?;
                EmailRequest::parse(&body).map_err(|e| {
                    JobError::InvalidPayload(format!("email {:?} is invalid: {e}", email.id))
                })?;
                Ok(body)
            })
            .collect()
    }
}

/// A job could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The payload is invalid: permanent, the message goes to the DLQ.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
}

/// One kind of job.
pub trait Job: Send + Sync {
    /// The `kind` this job handles, like `order.placed`.
    fn kind(&self) -> &'static str;

    /// Validates the payload and decides the effects.
    fn run(&self, envelope: &JobEnvelope) -> Result<Effects, JobError>;

    /// For a kind applied in a per-key order: the job's place in that order, when the
    /// payload tells it (even if it is otherwise invalid). `None` (the default) for kinds
    /// without an order.
    fn slot(&self, _envelope: &JobEnvelope) -> Option<SequenceSlot> {
        None
    }
}

/// The job kinds a processor knows.
pub struct Registry {
    jobs: BTreeMap<&'static str, Box<dyn Job>>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry {
            jobs: BTreeMap::new(),
        }
    }

    /// The kinds this crate ships: `inventory.adjusted`, `order.placed`, `user.follow_up`,
    /// `user.signup`.
    pub fn standard() -> Self {
        Registry::empty()
            .with(InventoryAdjusted)
            .with(OrderPlaced)
            .with(UserFollowUp)
            .with(UserSignup)
    }

    /// Adds a job kind (replacing one of the same kind).
    pub fn with(mut self, job: impl Job + 'static) -> Self {
        self.jobs.insert(job.kind(), Box::new(job));
        self
    }

    /// The job for `kind`.
    pub fn get(&self, kind: &str) -> Option<&dyn Job> {
        self.jobs.get(kind).map(|j| j.as_ref())
    }

    /// Known kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.jobs.keys().copied().collect()
    }
}

/// Deserializes a payload with errors that name the field.
pub(crate) fn payload<T: serde::de::DeserializeOwned>(
    envelope: &JobEnvelope,
) -> Result<T, JobError> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| JobError::InvalidPayload(format!("{} payload: {e}", envelope.kind)))
}

/// Checks an address field of a payload.
pub(crate) fn address(field: &str, value: &str) -> Result<(), JobError> {
    nightshift::contracts::validate_address(value)
        .map_err(|reason| JobError::InvalidPayload(format!("`{field}`: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(id: &str, subject: &str) -> EmailRequest {
        EmailRequest::from_template(
            id,
            vec!["ada@example.com".into()],
            subject,
            "welcome",
            BTreeMap::new(),
        )
    }

    #[test]
    fn email_bodies_are_what_email_sender_parses() {
        let effects = Effects {
            emails: vec![email("welcome-1", "Hi"), email("welcome-2", "Hello")],
            result: serde_json::Value::Null,
            ..Effects::default()
        };
        let bodies = effects.email_bodies().unwrap();
        let parsed: Vec<_> = bodies
            .iter()
            .map(|b| EmailRequest::parse(b).unwrap())
            .collect();
        assert_eq!(parsed, effects.emails);
    }

    #[test]
    fn one_invalid_email_fails_them_all() {
        let effects = Effects {
            emails: vec![
                email("welcome-1", "Hi"),
                email("welcome-2", "Hi\nBcc: x@y.zz"),
            ],
            result: serde_json::Value::Null,
            ..Effects::default()
        };
        assert_eq!(
            effects.email_bodies().unwrap_err(),
            JobError::InvalidPayload(
                "email \"welcome-2\" is invalid: field `subject`: contains a line break at byte 2 \
                 (header injection)"
                    .into()
            )
        );
        let long = Effects {
            emails: vec![email(&"x".repeat(129), "Hi")],
            result: serde_json::Value::Null,
            ..Effects::default()
        };
        assert!(
            long.email_bodies()
                .unwrap_err()
                .to_string()
                .contains("is 129 characters, over the 128 limit")
        );
    }
}
