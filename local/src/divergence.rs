//! divergence: every place where the emulator knowingly behaves otherwise than AWS, in one
//! list, so that a user can tell an emulator artefact from a bug of their own.
//!
//! [`ALL`] is the single source: the README's table "Where the emulator differs from AWS" is
//! checked against it row by row (`tests/it/divergence.rs`), and [`announce`] prints, once at
//! start-up, every row that concerns what the template and the options use
//! ([`Divergence::applies`]). Rows about the Invoke API (not something a template uses) are
//! printed once, the first time a request uses the feature ([`announce_once`]).

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::clock::ClockSpec;
use crate::template::{Destination, ScheduleKind, Template};

/// What decides whether a row concerns this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A virtual clock (manual or accelerated).
    VirtualClock,
    /// A virtual clock with the real function binaries.
    VirtualClockWithProcesses,
    /// An SQS event source with `FilterCriteria`.
    FilterCriteria,
    /// An SNS, EventBridge or S3 destination of an asynchronous invocation.
    UnmodelledDestination,
    /// Any schedule.
    Schedules,
    /// A Scheduler `rate()` schedule (their start is remembered across restarts).
    SchedulerRates,
    /// A schedule without `Input`.
    ScheduleWithoutInput,
    /// Any SQS event source.
    EventSources,
    /// A function without `ReservedConcurrentExecutions`.
    UnreservedFunction,
    /// An SES configuration set's event destination (mail feedback).
    SesEventDestination,
    /// A request that uses the feature (announced on first use, not at start-up).
    Request,
    /// A template that declares the feature (refused at load with its own error).
    Refused,
}

impl Trigger {
    /// When the row is printed, as the README's last column says it.
    pub fn describe(self) -> &'static str {
        match self {
            Trigger::VirtualClock => "at start-up on a manual or accelerated clock",
            Trigger::VirtualClockWithProcesses => {
                "at start-up on a manual or accelerated clock with the function binaries"
            }
            Trigger::FilterCriteria => "at start-up when an SQS event source has `FilterCriteria`",
            Trigger::UnmodelledDestination => {
                "at start-up when a destination is SNS, EventBridge or S3"
            }
            Trigger::Schedules => "at start-up when the template has schedules",
            Trigger::SchedulerRates => "at start-up when the template has a Scheduler `rate()`",
            Trigger::ScheduleWithoutInput => "at start-up when a schedule has no `Input`",
            Trigger::EventSources => "at start-up when the template has SQS event sources",
            Trigger::UnreservedFunction => {
                "at start-up when a function has no reserved concurrency"
            }
            Trigger::SesEventDestination => {
                "at start-up when the template has an SES event destination"
            }
            Trigger::Request => "on the first request that uses it",
            Trigger::Refused => "at load, as the error",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    /// Short name, used as the log field `divergence`.
    pub id: &'static str,
    /// Where (the README's first column, markdown).
    pub place: &'static str,
    /// What AWS does.
    pub aws: &'static str,
    /// What the emulator does instead.
    pub emulator: &'static str,
    /// When the row is printed.
    pub trigger: Trigger,
}

/// Every known divergence, in the README's order.
pub const ALL: &[Divergence] = &[
    Divergence {
        id: "virtual-clock-timeouts",
        place: "function timeouts under a virtual clock",
        aws: "one clock",
        emulator: "timeouts are real time while queues and schedules follow the manual or accelerated clock; an accelerated factor that would end a mapped queue's visibility timeout before its function's timeout is refused",
        trigger: Trigger::VirtualClock,
    },
    Divergence {
        id: "function-now",
        place: "\"now\" inside the function binaries",
        aws: "the system clock",
        emulator: "the process runtime's binaries read the system clock (outcome finish times, claim expiries); the in-process handlers of the harness read the emulator's clock",
        trigger: Trigger::VirtualClockWithProcesses,
    },
    Divergence {
        id: "filter-criteria",
        place: "SQS `FilterCriteria`",
        aws: "EventBridge pattern syntax, including `$or` and wildcards",
        emulator: "applied as Lambda does (no match: deleted without an invocation) with literals, `prefix`, `suffix`, `equals-ignore-case`, `anything-but`, `numeric`, `exists`; `$or` and `wildcard` are refused with the place in the pattern",
        trigger: Trigger::FilterCriteria,
    },
    Divergence {
        id: "async-destinations",
        place: "async destinations",
        aws: "SQS, SNS, Lambda, EventBridge, S3",
        emulator: "SQS and Lambda; SNS, EventBridge and S3 records are logged and dropped",
        trigger: Trigger::UnmodelledDestination,
    },
    Divergence {
        id: "scheduler-retries",
        place: "Scheduler retries of a failed invoke",
        aws: "exponential backoff with jitter, constants undocumented",
        emulator: "1 s doubling to 8 min, no jitter, so runs replay exactly",
        trigger: Trigger::Schedules,
    },
    Divergence {
        id: "poller-scaling",
        place: "event source scaling",
        aws: "pollers scale up gradually to `MaximumConcurrency`",
        emulator: "up to `MaximumConcurrency` at once",
        trigger: Trigger::EventSources,
    },
    Divergence {
        id: "function-concurrency",
        place: "function concurrency without `ReservedConcurrentExecutions`",
        aws: "up to the account's unreserved concurrency (1,000 by default)",
        emulator: "at most 10 instances, or the sum of its SQS mappings' `MaximumConcurrency` when larger; further invocations wait for an instance (a poller waits before it receives, so no batch ages waiting)",
        trigger: Trigger::UnreservedFunction,
    },
    Divergence {
        id: "mail-feedback",
        place: "SES mail feedback",
        aws: "SES publishes bounce, complaint and delivery events of every email through the configuration set's SNS topic to the subscribed queue",
        emulator: "SES, SNS and the subscription are not modelled: the outbox (or SMTP) mailer puts the events of the mailbox simulator's addresses (`bounce@`, `complaint@`, `suppressionlist@`, `success@`, `ooto@simulator.amazonses.com`) on the feedback queue itself; other recipients cause no event",
        trigger: Trigger::SesEventDestination,
    },
    Divergence {
        id: "schedule-restart",
        place: "restarting with a state dir",
        aws: "a schedule exists from its deploy on",
        emulator: "the emulator remembers where each Scheduler `rate()` started (`schedules.json` in the state dir): a restart does not fire it at once again but continues its grid, and occurrences while it was down are not made up",
        trigger: Trigger::SchedulerRates,
    },
    Divergence {
        id: "schedule-targets",
        place: "Scheduler schedule targets",
        aws: "Lambda, SQS, SNS, Step Functions, universal `aws-sdk` targets and more",
        emulator: "Lambda functions and SQS queues of the template; any other target fails the template load, naming the schedule and the ARN (EventBridge rules still ignore non-Lambda targets)",
        trigger: Trigger::Refused,
    },
    Divergence {
        id: "scheduler-api-targets",
        place: "Scheduler API targets",
        aws: "any well-formed ARN is accepted; a bad target fails at delivery",
        emulator: "`CreateSchedule` and `UpdateSchedule` refuse (`ValidationException`) a target that is not a function or queue of the template, a FIFO queue without `MessageGroupId`, and a dead-letter queue that is not a standard queue of the template",
        trigger: Trigger::Request,
    },
    Divergence {
        id: "schedule-default-input",
        place: "Scheduler target without `Input`",
        aws: "a \"default notification\", shape undocumented",
        emulator: "`{}`, to functions and queues alike",
        trigger: Trigger::ScheduleWithoutInput,
    },
    Divergence {
        id: "log-tail",
        place: "Invoke API `--log-type Tail`",
        aws: "the last 4 KB of the function's log",
        emulator: "the same under the emulator's runtime; with `--invoke-endpoint` or in-process handlers, whose output is elsewhere, `START`/`END`/`REPORT` only",
        trigger: Trigger::Request,
    },
    Divergence {
        id: "qualifiers",
        place: "versions and aliases",
        aws: "qualifiers select versions",
        emulator: "every qualifier is `$LATEST`",
        trigger: Trigger::Request,
    },
];

impl Divergence {
    /// Whether this row concerns a run of `template` on `clock` (`processes`: the real
    /// function binaries rather than a remote or in-process invoker). Rows announced on use
    /// or refused at load never apply here.
    pub fn applies(&self, template: &Template, clock: &ClockSpec, processes: bool) -> bool {
        let virtual_clock = !matches!(clock, ClockSpec::Real);
        match self.trigger {
            Trigger::VirtualClock => virtual_clock,
            Trigger::VirtualClockWithProcesses => virtual_clock && processes,
            Trigger::FilterCriteria => template
                .event_sources
                .iter()
                .any(|s| !s.filter_patterns.is_empty()),
            Trigger::UnmodelledDestination => template.functions.values().any(|f| {
                [&f.event_invoke.on_success, &f.event_invoke.on_failure]
                    .into_iter()
                    .flatten()
                    .any(|d| matches!(d, Destination::Unmodelled { .. }))
            }),
            Trigger::Schedules => !template.schedules.is_empty(),
            Trigger::SchedulerRates => template.schedules.iter().any(|s| {
                s.kind == ScheduleKind::ScheduleV2 && s.expression.trim_start().starts_with("rate(")
            }),
            Trigger::ScheduleWithoutInput => template.schedules.iter().any(|s| s.input.is_none()),
            Trigger::EventSources => !template.event_sources.is_empty(),
            Trigger::UnreservedFunction => template
                .functions
                .values()
                .any(|f| f.reserved_concurrency.is_none()),
            Trigger::SesEventDestination => template.ses_event_destinations,
            Trigger::Request | Trigger::Refused => false,
        }
    }

    /// The row by its id.
    pub fn by_id(id: &str) -> Option<&'static Divergence> {
        ALL.iter().find(|d| d.id == id)
    }
}

/// The rows that concern a run of `template` on `clock`.
pub fn applicable(
    template: &Template,
    clock: &ClockSpec,
    processes: bool,
) -> Vec<&'static Divergence> {
    ALL.iter()
        .filter(|d| d.applies(template, clock, processes))
        .collect()
}

/// Prints each row that concerns this run, once, at start-up.
pub fn announce(template: &Template, clock: &ClockSpec, processes: bool) {
    for d in applicable(template, clock, processes) {
        log(d);
    }
}

/// Prints the row `id` the first time it is asked for in this process (for features a
/// request uses rather than the template).
pub fn announce_once(id: &str) {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let Some(d) = Divergence::by_id(id) else {
        return;
    };
    if SEEN.lock().unwrap_or_else(|e| e.into_inner()).insert(d.id) {
        log(d);
    }
}

fn log(d: &Divergence) {
    tracing::warn!(
        divergence = d.id,
        aws = %d.aws.replace('`', ""),
        "emulator differs from aws: {}: {}",
        d.place.replace('`', ""),
        d.emulator.replace('`', "")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let ids: BTreeSet<_> = ALL.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), ALL.len());
    }

    #[test]
    fn an_empty_template_on_the_real_clock_concerns_nothing() {
        let template = Template {
            functions: Default::default(),
            queues: Default::default(),
            event_sources: Vec::new(),
            schedules: Vec::new(),
            schedule_groups: Vec::new(),
            skipped_functions: Vec::new(),
            skipped_events: Vec::new(),
            ses_event_destinations: false,
        };
        assert!(applicable(&template, &ClockSpec::Real, true).is_empty());
        let manual = applicable(&template, &ClockSpec::Manual, true);
        let ids: Vec<_> = manual.iter().map(|d| d.id).collect();
        assert_eq!(ids, ["virtual-clock-timeouts", "function-now"]);
        let in_process = applicable(&template, &ClockSpec::Manual, false);
        assert_eq!(in_process.len(), 1);
    }
}
