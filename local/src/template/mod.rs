//! template: the SAM template and `env.local.json`, resolved into the model the emulator runs.
//!
//! [`Template::load`] reads `infra/template.yaml` (CloudFormation short and long intrinsic
//! forms), applies `Globals.Function`, resolves parameters, pseudo parameters, `!Ref`,
//! `!GetAtt`, `!Sub` and `!Join` to *local* values (queue URLs on the emulator's port, ARNs in
//! account `000000000000`), merges the env file the way `sam local --env-vars` does, and
//! returns the functions, queues, SQS event sources, schedules and schedule groups.
//!
//! Functions of Lambda's OS-only runtimes (`provided.al2023`, `provided.al2`, or no
//! `Runtime`) are run; those of other languages and container images are listed in
//! [`Template::skipped_functions`] with the events that target them, and the rest runs. A
//! `CodeUri` naming a built artifact (a `bootstrap`, a directory holding one, a `.zip`) is
//! run as it is ([`Prebuilt`]).
//!
//! Only what the emulator runs has to resolve: resources of other types (tables, alarms, ...)
//! are ignored unless a modelled function or event depends on them, in which case the error
//! names both ends. `AWS::IAM::Role` is not run but resolves (`!Ref` its name, `!GetAtt
//! .Arn` a local role ARN), so a function can be given the role its run-time schedules send
//! with.

mod build;
mod env;
mod error;
mod expr;
mod params;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use error::TemplateError;

/// The account id every local ARN and queue URL uses.
pub const ACCOUNT_ID: &str = "000000000000";

/// Inputs of template resolution that come from the running emulator, not the template.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `sam local --env-vars` file whose values override the template's environment.
    pub env_file: Option<PathBuf>,
    /// Port of the emulator's SQS endpoint, used in queue URLs.
    pub port: u16,
    /// Region of local ARNs and of `AWS::Region`.
    pub region: String,
    /// Value of `AWS::StackName` and prefix of derived physical names.
    pub stack_name: String,
    /// Template parameter values, as `sam deploy --parameter-overrides` gives them.
    pub parameter_overrides: BTreeMap<String, String>,
}

impl Default for LoadOptions {
    /// No env file, port 9324, `us-east-1`, stack `nightshift`, no overrides.
    fn default() -> Self {
        Self {
            env_file: None,
            port: 9324,
            region: "us-east-1".to_owned(),
            stack_name: "nightshift".to_owned(),
            parameter_overrides: BTreeMap::new(),
        }
    }
}

/// Everything of a template the emulator runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Lambda functions by logical id.
    pub functions: BTreeMap<String, FunctionDef>,
    /// SQS queues by logical id.
    pub queues: BTreeMap<String, QueueDef>,
    /// SQS event source mappings (SAM `SQS` events and `AWS::Lambda::EventSourceMapping`).
    pub event_sources: Vec<SqsEventSource>,
    /// Schedules targeting a function or (Scheduler only) a queue (SAM `Schedule`/`ScheduleV2`
    /// events, `AWS::Scheduler::Schedule`, `AWS::Events::Rule` with a `ScheduleExpression`).
    pub schedules: Vec<ScheduleDef>,
    /// Names of the template's `AWS::Scheduler::ScheduleGroup`s, which the Scheduler API
    /// serves besides `default` (functions create run-time schedules in them).
    pub schedule_groups: Vec<String>,
    /// Functions of the template the emulator does not run (another language's runtime, a
    /// container image), with the reason; they are absent from `functions`.
    pub skipped_functions: Vec<SkippedFunction>,
    /// Event sources and schedules left out because their function is skipped; their queues
    /// still exist.
    pub skipped_events: Vec<SkippedEvent>,
    /// Whether the template publishes SES events (an `AWS::SES::ConfigurationSetEventDestination`),
    /// which the emulator does not model: the local mailers' mailbox simulator puts the
    /// events on the queue itself (`nightshift::adapters::simulator`).
    pub ses_event_destinations: bool,
}

/// A function the emulator leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFunction {
    /// Logical id in the template.
    pub logical_id: String,
    /// Why it is not run, e.g. `runtime nodejs20.x is not an OS-only runtime ...`.
    pub reason: String,
}

/// An SQS event source or a schedule left out because the function it feeds is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    /// Id of the event source or schedule, as [`SqsEventSource::id`] or [`ScheduleDef::id`]
    /// would have it.
    pub id: String,
    /// `event source` or `schedule`.
    pub kind: &'static str,
    /// Logical id of the skipped function it targets.
    pub function: String,
    /// Why it is left out.
    pub reason: String,
}

/// A Lambda function (`AWS::Serverless::Function` or `AWS::Lambda::Function`).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    /// Logical id in the template.
    pub logical_id: String,
    /// Function name: `FunctionName`, else `{stack}-{logical id}`.
    pub name: String,
    /// Local function ARN.
    pub arn: String,
    /// Binary (cargo-lambda target) that runs the function: `Metadata.BuildProperties.Binary`,
    /// else the package name at `CodeUri`, else its last path segment (the crate directory;
    /// for a prebuilt artifact, the directory `cargo lambda build` named after the binary).
    pub binary: String,
    /// `CodeUri` (or a local `Code` path) joined to the template's directory.
    pub code_uri: Option<PathBuf>,
    /// The deployment package at `code_uri` when it is already built (a `bootstrap`
    /// executable or a `.zip` holding one): run as it is, not built with cargo.
    pub prebuilt: Option<Prebuilt>,
    /// `Runtime` (after `Globals`), if set: an OS-only runtime (`provided.al2023`,
    /// `provided.al2`), since functions of other runtimes are skipped.
    pub runtime: Option<String>,
    /// `Timeout` in seconds (default 3).
    pub timeout_s: u32,
    /// `MemorySize` in MB (default 128).
    pub memory_mb: u32,
    /// `ReservedConcurrentExecutions`, if set.
    pub reserved_concurrency: Option<u32>,
    /// Environment variables, resolved, with env-file overrides applied.
    pub env: BTreeMap<String, String>,
    /// `LoggingConfig.LogFormat` (`Text` or `JSON`); Lambda exports it as
    /// `AWS_LAMBDA_LOG_FORMAT`.
    pub log_format: Option<String>,
    /// `LoggingConfig.ApplicationLogLevel`; Lambda exports it as `AWS_LAMBDA_LOG_LEVEL`.
    pub log_level: Option<String>,
    /// How asynchronous (`Event`) invocations are retried and where their records go: SAM's
    /// `EventInvokeConfig`, or an `AWS::Lambda::EventInvokeConfig` naming the function.
    pub event_invoke: EventInvokeConfig,
    /// Logical id of the SQS queue of `DeadLetterQueue` (SAM) or `DeadLetterConfig`: where a
    /// discarded asynchronous event goes when there is no on-failure destination.
    pub dead_letter_queue: Option<String>,
}

/// A deployment package found at a function's `CodeUri` (or `Code`), which the emulator runs
/// instead of building the crate: what `cargo lambda build` leaves in
/// `target/lambda/<name>/` (`bootstrap`, or `bootstrap.zip` with `--output-format zip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prebuilt {
    /// A `bootstrap` executable: the file `CodeUri` names, or the one in the directory it
    /// names.
    Bootstrap(PathBuf),
    /// A `.zip` deployment package with `bootstrap` at its root, extracted before it runs.
    Zip(PathBuf),
}

/// Lambda's error handling of asynchronous invocations for one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInvokeConfig {
    /// `MaximumRetryAttempts` after a function error (0..=2, default 2).
    pub max_retry_attempts: u32,
    /// `MaximumEventAgeInSeconds` an event may stay in the queue (60..=21600, default 21600).
    pub max_event_age_s: u32,
    /// `DestinationConfig.OnSuccess`: where the record of a successful invocation goes.
    pub on_success: Option<Destination>,
    /// `DestinationConfig.OnFailure`: where the record of a discarded event goes.
    pub on_failure: Option<Destination>,
}

impl Default for EventInvokeConfig {
    /// AWS's defaults: 2 retries, 6 hours, no destinations.
    fn default() -> Self {
        Self {
            max_retry_attempts: 2,
            max_event_age_s: 21_600,
            on_success: None,
            on_failure: None,
        }
    }
}

/// Where Lambda sends the record of an asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An SQS queue of the template, by logical id.
    Queue(String),
    /// A function of the template, by logical id (invoked asynchronously with the record).
    Function(String),
    /// A destination the emulator does not model (SNS, EventBridge, S3): records meant for it
    /// are logged and dropped.
    Unmodelled {
        /// `SNS`, `EventBridge` or `S3`.
        kind: String,
        /// The destination as resolved (an ARN), or the logical id it refers to.
        target: String,
    },
}

/// An SQS queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDef {
    /// Logical id in the template.
    pub logical_id: String,
    /// Queue name: `QueueName`, else `{stack}-{logical id}` (plus `.fifo` for FIFO queues).
    pub name: String,
    /// Local queue URL, `http://127.0.0.1:{port}/000000000000/{name}`.
    pub url: String,
    /// Local queue ARN, `arn:aws:sqs:{region}:000000000000:{name}`.
    pub arn: String,
    /// `FifoQueue`.
    pub fifo: bool,
    /// `ContentBasedDeduplication` (FIFO only).
    pub content_based_deduplication: bool,
    /// `DeduplicationScope` (FIFO only): `queue` or `messageGroup`.
    pub deduplication_scope: Option<String>,
    /// `FifoThroughputLimit` (FIFO only): `perQueue` or `perMessageGroupId`.
    pub fifo_throughput_limit: Option<String>,
    /// `VisibilityTimeout` in seconds (default 30).
    pub visibility_timeout_s: u32,
    /// `DelaySeconds` (default 0).
    pub delay_s: u32,
    /// `MessageRetentionPeriod` in seconds (default 345600, four days).
    pub retention_s: u32,
    /// `MaximumMessageSize` in bytes (default 1048576).
    pub max_message_size: u32,
    /// `ReceiveMessageWaitTimeSeconds` (default 0).
    pub receive_wait_s: u32,
    /// `RedrivePolicy`, if set.
    pub redrive: Option<Redrive>,
    /// `RedriveAllowPolicy`, if set: which queues may name this one as their dead-letter queue.
    pub redrive_allow_policy: Option<crate::sqs::attributes::RedriveAllowPolicy>,
}

/// Where a queue moves messages received too often.
#[derive(Debug, Clone, PartialEq)]
pub struct Redrive {
    /// Logical id of the dead-letter queue.
    pub dlq_logical_id: String,
    /// Name of the dead-letter queue.
    pub dlq_name: String,
    /// `maxReceiveCount`.
    pub max_receive_count: u32,
}

/// An SQS event source mapping: a poller feeding batches of one queue to one function.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsEventSource {
    /// Logical id of the mapping (`{function}{event}` for SAM events, as SAM names it).
    pub id: String,
    /// Logical id of the function.
    pub function: String,
    /// Logical id of the queue.
    pub queue: String,
    /// `BatchSize` (default 10).
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds` (default 0).
    pub maximum_batching_window_s: u32,
    /// `FunctionResponseTypes` contains `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`, if set.
    pub maximum_concurrency: Option<u32>,
    /// `Enabled` (default true).
    pub enabled: bool,
    /// `FilterCriteria.Filters[].Pattern`, as written (JSON text).
    pub filter_patterns: Vec<String>,
}

/// Which AWS service a schedule imitates; their payloads and time zones differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// EventBridge Scheduler (`ScheduleV2`, `AWS::Scheduler::Schedule`): time zones,
    /// flexible windows, plain JSON input.
    ScheduleV2,
    /// EventBridge rule (`Schedule`, `AWS::Events::Rule`): UTC, the `Scheduled Event`
    /// envelope unless `Input` is set.
    LegacyRule,
}

/// Retries of a failed schedule invocation before the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `MaximumEventAgeInSeconds` (60..=86400, default 86400).
    pub max_event_age_s: u32,
    /// `MaximumRetryAttempts` (0..=185, default 185).
    pub max_retry_attempts: u32,
}

impl Default for RetryPolicy {
    /// AWS's defaults: 24 hours, 185 attempts.
    fn default() -> Self {
        Self {
            max_event_age_s: 86_400,
            max_retry_attempts: 185,
        }
    }
}

/// What a schedule delivers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleTarget {
    /// A Lambda function, invoked asynchronously; its logical id.
    Function(String),
    /// An SQS queue of the template (Scheduler's templated `SendMessage` target): the message
    /// body is the Input.
    Queue {
        /// Logical id of the queue.
        queue: String,
        /// `SqsParameters.MessageGroupId`, passed on as the message's group id: required for a
        /// FIFO queue (checked at load); on a standard queue kept as SQS keeps it.
        message_group_id: Option<String>,
    },
}

impl ScheduleTarget {
    /// The function's logical id, when the target is a function.
    pub fn function(&self) -> Option<&str> {
        match self {
            ScheduleTarget::Function(id) => Some(id),
            ScheduleTarget::Queue { .. } => None,
        }
    }
}

/// A schedule delivering to one function or queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDef {
    /// Logical id of the schedule (`{function}{event}` for SAM events, as SAM names it).
    pub id: String,
    /// Schedule or rule name.
    pub name: String,
    /// What it delivers to.
    pub target: ScheduleTarget,
    /// `rate(...)`, `cron(...)` or `at(...)`, unparsed.
    pub expression: String,
    /// IANA time zone of the expression (default `UTC`; always `UTC` for legacy rules).
    pub timezone: String,
    /// Scheduler or legacy rule.
    pub kind: ScheduleKind,
    /// Constant input, if set (context attributes such as
    /// `<aws.scheduler.scheduled-time>` still unsubstituted).
    pub input: Option<String>,
    /// Retry policy of the target.
    pub retry_policy: RetryPolicy,
    /// Logical id of the dead-letter queue, if any.
    pub dead_letter_queue: Option<String>,
    /// `FlexibleTimeWindow.MaximumWindowInMinutes` when the mode is `FLEXIBLE`.
    pub flexible_window_minutes: Option<u32>,
    /// Whether the schedule is enabled (`State`/`Enabled`).
    pub enabled: bool,
    /// `StartDate`, if set.
    pub start_date: Option<DateTime<Utc>>,
    /// `EndDate`, if set.
    pub end_date: Option<DateTime<Utc>>,
}

impl Template {
    /// Loads and resolves a template file; relative `CodeUri`s are taken from its directory.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_yaml(&text, base_dir, options)
    }

    /// Resolves template text; `base_dir` stands for the template's directory.
    pub fn from_yaml(
        text: &str,
        base_dir: &Path,
        options: &LoadOptions,
    ) -> Result<Self, TemplateError> {
        let env = match &options.env_file {
            Some(path) => Some(env::EnvOverrides::read(path)?),
            None => None,
        };
        build::build(text, base_dir, options, env.as_ref())
    }

    /// A function by logical id.
    pub fn function(&self, logical_id: &str) -> Option<&FunctionDef> {
        self.functions.get(logical_id)
    }

    /// A queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueDef> {
        self.queues.get(logical_id)
    }

    /// A queue by queue name.
    pub fn queue_by_name(&self, name: &str) -> Option<&QueueDef> {
        self.queues.values().find(|q| q.name == name)
    }

    /// Queues ordered so that every dead-letter queue comes before the queues redriving to
    /// it, the order in which they can be created.
    pub fn queues_in_creation_order(&self) -> Vec<&QueueDef> {
        let mut out: Vec<&QueueDef> = Vec::with_capacity(self.queues.len());
        // Redrive chains are acyclic in a valid template, but stay bounded regardless.
        for _ in 0..=self.queues.len() {
            for q in self.queues.values() {
                let placed = |id: &str| out.iter().any(|p| p.logical_id == id);
                let ready = q
                    .redrive
                    .as_ref()
                    .is_none_or(|r| r.dlq_logical_id == q.logical_id || placed(&r.dlq_logical_id));
                if !placed(&q.logical_id) && ready {
                    out.push(q);
                }
            }
        }
        for q in self.queues.values() {
            if !out.iter().any(|p| p.logical_id == q.logical_id) {
                out.push(q);
            }
        }
        out
    }
}
