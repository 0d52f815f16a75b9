//! The runner's public values: its settings, its errors, and what it reports (attempt
//! outcomes, per-schedule statistics, the result of a fire by hand).

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::clock::ClockError;
use crate::invoker::InvokeError;
use crate::invoker::InvokeResponse;
use crate::schedule::{ExpressionError, PolicyError};
use crate::template::{self, ScheduleKind};

/// Errors of the schedule runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A schedule's expression or time zone does not parse.
    #[error("schedule {schedule}: {source}")]
    Expression {
        /// The schedule's logical id.
        schedule: String,
        /// Why.
        #[source]
        source: ExpressionError,
    },
    /// A schedule's flexible window or retry policy is out of range.
    #[error("schedule {schedule}: {source}")]
    Policy {
        /// The schedule's logical id.
        schedule: String,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// No schedule has this id or name.
    #[error("no schedule named {0:?}")]
    UnknownSchedule(String),
    /// Several schedules (targets of one rule) share this name.
    #[error("schedule name {name:?} is ambiguous; use one of the ids {ids:?}")]
    Ambiguous {
        /// The name asked for.
        name: String,
        /// The ids that carry it.
        ids: Vec<String>,
    },
    /// [`ScheduleRunner::start`](super::ScheduleRunner::start) was called twice.
    #[error("the schedule runner is already started")]
    AlreadyStarted,
    /// [`ScheduleRunner::add`](super::ScheduleRunner::add) of a name its group already has.
    #[error("schedule {name} already exists in group {group}")]
    Duplicate {
        /// The group.
        group: String,
        /// The name.
        name: String,
    },
    /// The runner has been stopped.
    #[error("the schedule runner is stopped")]
    Stopped,
    /// [`ScheduleRunner::advance_to`](super::ScheduleRunner::advance_to) needs a manual clock.
    #[error("the clock is not manual; only a manual clock can be advanced")]
    NotManual,
    /// The manual clock refused to move.
    #[error(transparent)]
    Clock(#[from] ClockError),
}

/// Settings of the runner that do not come from the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Region of schedule, rule and function ARNs and of the legacy envelope.
    pub region: String,
    /// Account of ARNs and of the legacy envelope.
    pub account_id: String,
    /// Schedule group in schedule ARNs.
    pub schedule_group: String,
    /// Seed of flexible-window offsets, execution ids and event ids; `None` draws one.
    pub seed: Option<u64>,
    /// Directory of the rate anchors ([`super::super::anchors`]): with it, a restart continues
    /// each Scheduler rate on its grid instead of firing it at once again; `None` keeps nothing.
    pub state_dir: Option<PathBuf>,
}

impl Default for RunnerConfig {
    /// `us-east-1`, account [`template::ACCOUNT_ID`], group `default`, random seed, no state.
    fn default() -> Self {
        RunnerConfig {
            region: "us-east-1".to_owned(),
            account_id: template::ACCOUNT_ID.to_owned(),
            schedule_group: "default".to_owned(),
            seed: None,
            state_dir: None,
        }
    }
}

/// Why a delivery attempt failed, as put on dead-letter messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `ERROR_CODE`: a Lambda API error code when the invocation did not reach the function,
    /// or SQS's error code (`AWS.SimpleQueueService.NonExistentQueue`) when the message could
    /// not be sent to a queue target.
    pub code: String,
    /// `ERROR_MESSAGE`.
    pub message: String,
    /// False when retrying cannot help (unknown function, payload too large, a message SQS
    /// refuses).
    pub retryable: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// How the latest attempt of a schedule ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptStatus {
    /// The function returned a result.
    Succeeded,
    /// It failed; another attempt is due.
    Retrying {
        /// Why it failed.
        failure: Failure,
        /// When the next attempt is due.
        next_attempt_at: DateTime<Utc>,
    },
    /// It failed for the last time; the event went to the dead-letter queue.
    DeadLettered {
        /// Why it failed.
        failure: Failure,
        /// The queue it went to.
        queue: String,
    },
    /// It failed for the last time and there is no (working) dead-letter queue: dropped.
    Dropped {
        /// Why it failed.
        failure: Failure,
    },
}

impl fmt::Display for AttemptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptStatus::Succeeded => f.write_str("ok"),
            AttemptStatus::Retrying {
                failure,
                next_attempt_at,
            } => write!(f, "failed ({failure}), retry at {next_attempt_at}"),
            AttemptStatus::DeadLettered { failure, queue } => {
                write!(f, "failed ({failure}), dead-lettered to {queue}")
            }
            AttemptStatus::Dropped { failure } => write!(f, "failed ({failure}), dropped"),
        }
    }
}

/// The latest attempt of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastResult {
    /// The scheduled time of the occurrence it belongs to.
    pub scheduled_time: DateTime<Utc>,
    /// Its attempt number (1 for the first).
    pub attempt: u32,
    /// When it ended, on the clock.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub status: AttemptStatus,
}

/// One schedule's line of `nightshift status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStats {
    /// Logical id.
    pub id: String,
    /// Schedule or rule name.
    pub name: String,
    /// Schedule group (`default` for the template's schedules and rules).
    pub group: String,
    /// Whether it was added at run time (the Scheduler API) rather than by the template.
    pub dynamic: bool,
    /// What it delivers to: the function's name, or `sqs:` and the queue's name.
    pub target: String,
    /// Scheduler or legacy rule.
    pub kind: ScheduleKind,
    /// The expression, as written.
    pub expression: String,
    /// The IANA zone of the expression.
    pub timezone: String,
    /// Whether it fires on its own (disabled ones can still be fired by hand).
    pub enabled: bool,
    /// The next scheduled time, while the runner waits for it.
    pub next_fire: Option<DateTime<Utc>>,
    /// The scheduled time of the latest occurrence (scheduled or fired by hand).
    pub last_fire: Option<DateTime<Utc>>,
    /// The latest attempt.
    pub last_result: Option<LastResult>,
    /// Occurrences started.
    pub fires: u64,
    /// Invocations made, retries included.
    pub invocations: u64,
    /// Invocations that failed.
    pub failures: u64,
    /// Occurrences sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Occurrences given up without a dead-letter queue (or whose send to it failed).
    pub dropped: u64,
}

/// What [`ScheduleRunner::fire`](super::ScheduleRunner::fire) did.
#[derive(Debug)]
pub struct FireOutcome {
    /// The schedule's logical id.
    pub schedule: String,
    /// The scheduled time given to the occurrence: the clock's now.
    pub scheduled_time: DateTime<Utc>,
    /// The execution id of the attempt.
    pub execution_id: String,
    /// The payload sent.
    pub payload: Bytes,
    /// The result of the function's first attempt at the event, or why the event could not
    /// be handed to the function's asynchronous queue. For a queue target: a success whose
    /// payload is SendMessage's answer (`{"MessageId":..}`, the message id also being the
    /// request id), or [`InvokeError::Unreachable`] naming the queue when the send failed.
    pub result: Result<InvokeResponse, InvokeError>,
    /// When the event will be tried again in the background, if it will: Lambda's retry after
    /// a function error, or the Scheduler's after a failed invoke.
    pub next_attempt_at: Option<DateTime<Utc>>,
}
