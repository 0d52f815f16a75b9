//! schedule: AWS schedule expressions (`cron(...)`, `rate(...)`, `at(...)`) evaluated in a time
//! zone, plus the pure delivery rules around a fire time (flexible windows, retry policy,
//! context attributes, the legacy rule envelope). No I/O and no timers: the emulator's
//! scheduler asks [`ScheduleExpression::next_after`] and sleeps on its own clock.
//!
//! Time zones and daylight saving time follow EventBridge Scheduler: cron and `at` times are
//! wall-clock times in the schedule's zone. "When the time shifts forward in Spring, your
//! schedule invocation gets skipped if the cron expression falls on a non-existent date and
//! time. When the time shifts back in the Fall, your schedule runs only once and doesn't repeat
//! its invocation." So a local time that does not exist is skipped (never shifted), and a local
//! time that exists twice fires at its first occurrence only. This applies per wall-clock time,
//! also for hourly or per-minute crons: `cron(30 * * * ? *)` fires at 01:30 EDT but not again at
//! 01:30 EST. Rates are elapsed time (`rate(1 day)` = 24 h) and ignore the zone.
//!
//! Layout: [`cron`] parses and walks six-field cron expressions, [`rate`] the fixed intervals,
//! [`delivery`] holds flexible windows, retries, context attributes and the rule envelope,
//! [`runner`] fires a template's schedules on the clock and delivers them (the one part with
//! timers and I/O), [`anchors`] keeps where each rate started across restarts.

pub mod anchors;
pub mod cron;
pub mod delivery;
pub mod rate;
pub mod runner;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

pub use cron::{CronExpression, CronField, FieldProblem};
pub use delivery::{
    ContextAttributes, FlexibleWindow, PolicyError, RetryPolicy, new_execution_id, rule_arn,
    schedule_arn, scheduled_event, scheduled_event_json, substitute_context,
};
pub use rate::{Rate, RateUnit};
pub use runner::{
    AttemptStatus, CompletionHook, Failure, FireOutcome, LastResult, RunnerConfig, RunnerError,
    ScheduleRunner, ScheduleStats,
};

/// Why a schedule expression (or its time zone) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// Not `cron(...)`, `rate(...)` or `at(...)`.
    #[error("unknown expression \"{expr}\"; expected cron(...), rate(...) or at(...)")]
    Unknown {
        /// The expression as given.
        expr: String,
    },
    /// `cron(`, `rate(` or `at(` without the final `)`.
    #[error("expression \"{expr}\" is missing its closing \")\"")]
    Unclosed {
        /// The expression as given.
        expr: String,
    },
    /// A cron expression without exactly six fields.
    #[error("cron expects 6 fields, got {got}")]
    FieldCount {
        /// How many whitespace-separated fields there were.
        got: usize,
    },
    /// One cron field item is invalid.
    #[error("cron field {} ({}) \"{}\": {}", .field.position(), .field.name(), .text, .problem)]
    Field {
        /// Which field.
        field: CronField,
        /// The offending item of the field (the whole field when it has one item).
        text: String,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// Both day fields restrict days (`*` counts as specified).
    #[error("day-of-month and day-of-week cannot both be specified; use ? in one of them")]
    BothDaysSpecified,
    /// Both day fields are `?`.
    #[error("day-of-month and day-of-week cannot both be ?; specify one of them")]
    BothDaysUnspecified,
    /// A rate without exactly a value and a unit.
    #[error("rate expects a value and a unit, as in rate(5 minutes), got \"{body}\"")]
    RateShape {
        /// The inside of `rate(...)`.
        body: String,
    },
    /// A rate value that is not a whole number >= 1.
    #[error("rate value \"{value}\" must be a whole number of at least 1")]
    RateValue {
        /// The value as given.
        value: String,
    },
    /// A rate unit other than minute(s), hour(s), day(s).
    #[error("unknown rate unit \"{unit}\"; expected minute(s), hour(s) or day(s)")]
    RateUnit {
        /// The unit as given.
        unit: String,
    },
    /// A plural unit with 1 or a singular unit with more than 1.
    #[error("rate unit \"{unit}\" needs the {wanted} for value {value}")]
    RateUnitNumber {
        /// The unit as given.
        unit: String,
        /// The value.
        value: u32,
        /// `singular` or `plural`.
        wanted: &'static str,
    },
    /// An `at(...)` time that is not `yyyy-mm-ddThh:mm:ss`.
    #[error("at expects a valid date and time as yyyy-mm-ddThh:mm:ss, got \"{text}\"")]
    At {
        /// The inside of `at(...)`.
        text: String,
    },
    /// A time zone name chrono-tz does not know.
    #[error("unknown time zone \"{zone}\"; expected an IANA name such as Europe/Berlin or UTC")]
    UnknownTimeZone {
        /// The zone as given.
        zone: String,
    },
}

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpression {
    /// `cron(min hour day-of-month month day-of-week year)`.
    /// (Boxed: the parsed fields are much larger than the other variants.)
    Cron(Box<CronExpression>),
    /// `rate(value unit)`.
    Rate(Rate),
    /// `at(yyyy-mm-ddThh:mm:ss)`: one time, in the schedule's zone.
    At(NaiveDateTime),
}

impl ScheduleExpression {
    /// Parses an expression the way EventBridge Scheduler and EventBridge rules accept it.
    pub fn parse(text: &str) -> Result<Self, ExpressionError> {
        let expr = text.trim();
        let unknown = || ExpressionError::Unknown {
            expr: expr.to_owned(),
        };
        let (kind, rest) = expr.split_once('(').ok_or_else(unknown)?;
        if !matches!(kind, "cron" | "rate" | "at") {
            return Err(unknown());
        }
        let body = rest
            .strip_suffix(')')
            .ok_or_else(|| ExpressionError::Unclosed {
                expr: expr.to_owned(),
            })?;
        match kind {
            "cron" => CronExpression::parse(body).map(|c| ScheduleExpression::Cron(Box::new(c))),
            "rate" => Rate::parse(body).map(ScheduleExpression::Rate),
            _ => parse_at(body).map(ScheduleExpression::At),
        }
    }

    /// The first fire time strictly after `after`, or `None` when there is none (an `at` in
    /// the past, a cron whose years are over).
    ///
    /// `start` is the schedule's start (its StartDate, or its creation time): rates are
    /// anchored there (`start + k * period`, k >= 0; without it the anchor is `after`), and
    /// crons do not fire before it. One-time `at` schedules ignore it, as AWS ignores
    /// StartDate for them.
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        tz: Tz,
        start: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            ScheduleExpression::Cron(cron) => {
                let after = match start {
                    // Fire times at or after start: search strictly after just before it.
                    Some(s) if s > after => s - TimeDelta::nanoseconds(1),
                    _ => after,
                };
                let local = after.with_timezone(&tz).naive_local();
                let mut from = local.with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
                // Each round moves `from` forward by at least a minute and next_match gives
                // up after 2199, so this ends; skips only happen inside DST transitions.
                loop {
                    let candidate = cron.next_match(from)?;
                    // `earliest` is the single mapping, the first of two in a repeated hour,
                    // or none in a skipped hour.
                    match tz.from_local_datetime(&candidate).earliest() {
                        Some(t) if t.with_timezone(&Utc) > after => {
                            return Some(t.with_timezone(&Utc));
                        }
                        _ => from = candidate + TimeDelta::minutes(1),
                    }
                }
            }
            ScheduleExpression::Rate(rate) => rate.next_after(after, start.unwrap_or(after)),
            ScheduleExpression::At(local) => {
                // A one-time local time that falls in a spring-forward gap never fires, the
                // same rule AWS states for cron; a repeated one fires at its first occurrence.
                let t = tz
                    .from_local_datetime(local)
                    .earliest()?
                    .with_timezone(&Utc);
                (t > after).then_some(t)
            }
        }
    }

    /// The successive fire times strictly after `after` (see [`Self::next_after`]); ends when
    /// the expression does, never for a rate (bound it with `take` or `take_while`).
    pub fn fire_times(
        &self,
        after: DateTime<Utc>,
        tz: Tz,
        start: Option<DateTime<Utc>>,
    ) -> FireTimes<'_> {
        FireTimes {
            expr: self,
            tz,
            // Pinning the anchor keeps rates on one grid as `after` advances.
            start: Some(start.unwrap_or(after)),
            last: Some(after),
        }
    }
}

impl fmt::Display for ScheduleExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleExpression::Cron(c) => c.fmt(f),
            ScheduleExpression::Rate(r) => r.fmt(f),
            ScheduleExpression::At(t) => write!(f, "at({})", t.format("%Y-%m-%dT%H:%M:%S")),
        }
    }
}

impl FromStr for ScheduleExpression {
    type Err = ExpressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScheduleExpression::parse(s)
    }
}

/// Iterator over fire times, from [`ScheduleExpression::fire_times`].
#[derive(Debug, Clone)]
pub struct FireTimes<'a> {
    expr: &'a ScheduleExpression,
    tz: Tz,
    start: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let next = self.expr.next_after(self.last?, self.tz, self.start);
        self.last = next;
        next
    }
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_time_zone(zone: &str) -> Result<Tz, ExpressionError> {
    zone.trim()
        .parse::<Tz>()
        .map_err(|_| ExpressionError::UnknownTimeZone {
            zone: zone.to_owned(),
        })
}

/// The next `count` fire times of `expr` in zone `tz` strictly after `from`, for
/// `nightshift schedule next "<expr>" [--tz ZONE] [--from RFC3339] [--count N]`. Rates are
/// anchored at `from`. Fewer than `count` come back when the expression runs out.
pub fn next_fire_times(
    expr: &str,
    tz: &str,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Vec<DateTime<Utc>>, ExpressionError> {
    let zone = parse_time_zone(tz)?;
    let expr = ScheduleExpression::parse(expr)?;
    Ok(expr.fire_times(from, zone, None).take(count).collect())
}

/// A schedule definition: `AWS::Scheduler::Schedule` / SAM `ScheduleV2` (or a legacy rule,
/// which is UTC with no window), minus its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// When it fires.
    pub expression: ScheduleExpression,
    /// The zone cron and `at` expressions are evaluated in (`ScheduleExpressionTimezone`).
    pub timezone: Tz,
    /// `StartDate`: no recurring fire before it; rates are anchored here.
    pub start_date: Option<DateTime<Utc>>,
    /// `EndDate`: no recurring fire after it.
    pub end_date: Option<DateTime<Utc>>,
    /// `FlexibleTimeWindow`.
    pub flexible_window: FlexibleWindow,
    /// `RetryPolicy` of the target.
    pub retry_policy: RetryPolicy,
}

impl Schedule {
    /// A UTC schedule with no start or end, no flexible window and the default retry policy.
    pub fn new(expression: ScheduleExpression) -> Self {
        Schedule {
            expression,
            timezone: Tz::UTC,
            start_date: None,
            end_date: None,
            flexible_window: FlexibleWindow::Off,
            retry_policy: RetryPolicy::default(),
        }
    }

    /// The first scheduled time of an EventBridge Scheduler schedule created at `created_at`.
    ///
    /// A rate without `StartDate` fires at `created_at` itself and then every period: "If you
    /// don't provide a `StartDate` for a rate-based schedule, your schedule starts invoking
    /// the target immediately"
    /// (<https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#rate-based>).
    /// With a `StartDate`, "you can use the `StartDate` property to set the first occurrence":
    /// fires are `StartDate + k * period`, the first one not before `created_at`. Crons and `at`
    /// give their first time strictly after `created_at`, as [`Self::next_fire_after`] does.
    /// (Legacy EventBridge rules do not use this: their rates start one period after creation.)
    pub fn first_fire(&self, created_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match (&self.expression, self.start_date) {
            (ScheduleExpression::Rate(_), None) => match self.end_date {
                Some(end) if created_at > end => None,
                _ => Some(created_at),
            },
            _ => self.next_fire_after(created_at, created_at),
        }
    }

    /// The next scheduled time strictly after `after`. `created_at` anchors a rate that has
    /// no `StartDate` (`created_at + k * period`; see [`Self::first_fire`] for the first one).
    /// `at` schedules ignore start and end dates, as AWS does.
    pub fn next_fire_after(
        &self,
        after: DateTime<Utc>,
        created_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if let ScheduleExpression::At(_) = self.expression {
            return self.expression.next_after(after, self.timezone, None);
        }
        let start = self.start_date.unwrap_or(created_at);
        let next = self
            .expression
            .next_after(after, self.timezone, Some(start))?;
        match self.end_date {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }
}

fn parse_at(body: &str) -> Result<NaiveDateTime, ExpressionError> {
    let err = || ExpressionError::At {
        text: body.to_owned(),
    };
    // chrono's %Y and friends accept other widths; AWS wants exactly this shape.
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let bytes = body.as_bytes();
    if bytes.len() != shape.len()
        || !bytes.iter().zip(shape).all(|(b, s)| match s {
            b'd' => b.is_ascii_digit(),
            _ => b == s,
        })
    {
        return Err(err());
    }
    NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S").map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn parse(s: &str) -> ScheduleExpression {
        ScheduleExpression::parse(s).unwrap()
    }

    #[test]
    fn dispatches_on_kind_and_round_trips() {
        for (given, canonical) in [
            ("cron(0 10 * * ? *)", "cron(0 10 * * ? *)"),
            ("  cron( 0  18 ? * mon-fri * ) ", "cron(0 18 ? * MON-FRI *)"),
            ("rate(5 minutes)", "rate(5 minutes)"),
            ("rate(1 day)", "rate(1 day)"),
            ("at(2026-11-22T02:00:00)", "at(2026-11-22T02:00:00)"),
        ] {
            let e = parse(given);
            assert_eq!(e.to_string(), canonical);
            assert_eq!(parse(&e.to_string()), e, "{given}");
        }
        assert!(matches!(
            parse("rate(5 minutes)"),
            ScheduleExpression::Rate(_)
        ));
        assert!(matches!(
            parse("at(2026-11-22T02:00:00)"),
            ScheduleExpression::At(_)
        ));
        assert_eq!(
            "cron(0 10 * * ? *)".parse::<ScheduleExpression>(),
            Ok(parse("cron(0 10 * * ? *)"))
        );
    }

    #[test]
    fn rejects_unknown_and_unclosed() {
        let e = |s: &str| ScheduleExpression::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("foo(1)"),
            "unknown expression \"foo(1)\"; expected cron(...), rate(...) or at(...)"
        );
        assert_eq!(
            e(""),
            "unknown expression \"\"; expected cron(...), rate(...) or at(...)"
        );
        assert_eq!(
            e("0 10 * * ? *"),
            "unknown expression \"0 10 * * ? *\"; expected cron(...), rate(...) or at(...)"
        );
        assert_eq!(
            e("CRON(0 10 * * ? *)"),
            "unknown expression \"CRON(0 10 * * ? *)\"; expected cron(...), rate(...) or at(...)"
        );
        assert_eq!(
            e("cron(0 10 * * ? *"),
            "expression \"cron(0 10 * * ? *\" is missing its closing \")\""
        );
        assert_eq!(
            e("at(2026-11-22 02:00:00)"),
            "at expects a valid date and time as yyyy-mm-ddThh:mm:ss, got \"2026-11-22 02:00:00\""
        );
        assert_eq!(
            e("at(2026-02-30T02:00:00)"),
            "at expects a valid date and time as yyyy-mm-ddThh:mm:ss, got \"2026-02-30T02:00:00\""
        );
        assert_eq!(
            e("at(2026-11-22T02:00)"),
            "at expects a valid date and time as yyyy-mm-ddThh:mm:ss, got \"2026-11-22T02:00\""
        );
    }

    #[test]
    fn cron_respects_start() {
        let e = parse("cron(0 10 * * ? *)");
        let start = t("2026-03-05T10:00:00Z");
        assert_eq!(
            e.next_after(t("2026-03-01T00:00:00Z"), Tz::UTC, Some(start)),
            Some(start)
        );
        assert_eq!(
            e.next_after(start, Tz::UTC, Some(start)),
            Some(t("2026-03-06T10:00:00Z"))
        );
        assert_eq!(
            e.next_after(start, Tz::UTC, None),
            Some(t("2026-03-06T10:00:00Z"))
        );
    }

    #[test]
    fn at_fires_once_in_its_zone() {
        let e = parse("at(2026-11-22T02:00:00)");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            e.next_after(t("2026-01-01T00:00:00Z"), berlin, None),
            Some(t("2026-11-22T01:00:00Z"))
        );
        assert_eq!(e.next_after(t("2026-11-22T01:00:00Z"), berlin, None), None);
        let v: Vec<_> = e
            .fire_times(t("2026-01-01T00:00:00Z"), Tz::UTC, None)
            .collect();
        assert_eq!(v, [t("2026-11-22T02:00:00Z")]);
    }

    #[test]
    fn fire_times_keeps_the_rate_grid() {
        let e = parse("rate(7 minutes)");
        let v: Vec<_> = e
            .fire_times(t("2026-01-01T00:00:00Z"), Tz::UTC, None)
            .take(3)
            .collect();
        assert_eq!(
            v,
            [
                t("2026-01-01T00:07:00Z"),
                t("2026-01-01T00:14:00Z"),
                t("2026-01-01T00:21:00Z")
            ]
        );
    }

    #[test]
    fn schedule_applies_start_end_and_creation_anchor() {
        let mut s = Schedule::new(parse("rate(1 hour)"));
        let created = t("2026-01-01T00:10:00Z");
        assert_eq!(
            s.next_fire_after(created, created),
            Some(t("2026-01-01T01:10:00Z"))
        );
        assert_eq!(
            s.next_fire_after(t("2025-12-31T00:00:00Z"), created),
            Some(created)
        );
        s.start_date = Some(t("2026-01-02T00:00:00Z"));
        s.end_date = Some(t("2026-01-02T01:00:00Z"));
        assert_eq!(
            s.next_fire_after(created, created),
            Some(t("2026-01-02T00:00:00Z"))
        );
        assert_eq!(
            s.next_fire_after(t("2026-01-02T00:00:00Z"), created),
            Some(t("2026-01-02T01:00:00Z"))
        );
        assert_eq!(s.next_fire_after(t("2026-01-02T01:00:00Z"), created), None);
        // A StartDate's grid: the first fire is the StartDate (the creation time is before it).
        assert_eq!(s.first_fire(created), Some(t("2026-01-02T00:00:00Z")));
        let mut once = Schedule::new(parse("at(2026-06-01T00:00:00)"));
        once.start_date = Some(t("2027-01-01T00:00:00Z"));
        once.end_date = Some(t("2026-01-01T00:00:00Z"));
        assert_eq!(
            once.next_fire_after(created, created),
            Some(t("2026-06-01T00:00:00Z"))
        );
    }

    #[test]
    fn rate_without_start_date_fires_at_creation_then_every_period() {
        let mut s = Schedule::new(parse("rate(1 hour)"));
        let created = t("2026-01-01T00:10:00Z");
        assert_eq!(s.first_fire(created), Some(created));
        assert_eq!(
            s.next_fire_after(created, created),
            Some(t("2026-01-01T01:10:00Z"))
        );
        // A StartDate in the past keeps its grid; the first fire is the next grid point.
        s.start_date = Some(t("2026-01-01T00:00:00Z"));
        assert_eq!(s.first_fire(created), Some(t("2026-01-01T01:00:00Z")));
        // An EndDate before the creation time: nothing to fire.
        s.start_date = None;
        s.end_date = Some(t("2026-01-01T00:00:00Z"));
        assert_eq!(s.first_fire(created), None);
        // Crons keep their first time strictly after creation.
        let cron = Schedule::new(parse("cron(10 0 * * ? *)"));
        assert_eq!(cron.first_fire(created), Some(t("2026-01-02T00:10:00Z")));
    }

    #[test]
    fn time_zone_errors() {
        assert_eq!(
            parse_time_zone("Europe/Berlin"),
            Ok(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            parse_time_zone("Mars/Olympus").unwrap_err().to_string(),
            "unknown time zone \"Mars/Olympus\"; expected an IANA name such as Europe/Berlin or UTC"
        );
    }
}
