//! Job kinds. A job is pure: it validates its payload and says what should happen (emails to
//! enqueue, a result to record); the handler does the I/O. Adding a kind = one type
//! implementing [`Job`], registered in [`Registry::standard`].

mod order;
mod signup;

use std::collections::BTreeMap;

use nightshift::contracts::{EmailRequest, JobEnvelope};

pub use order::{Item, OrderPlaced};
pub use signup::UserSignup;

/// What a job asks the world to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effects {
    /// Emails to enqueue on the emails queue.
    pub emails: Vec<EmailRequest>,
    /// A short result recorded with the idempotency key.
    pub result: serde_json::Value,
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

    /// The kinds this crate ships: `order.placed`, `user.signup`.
    pub fn standard() -> Self {
        Registry::empty().with(OrderPlaced).with(UserSignup)
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
