//! AWS six-field cron expressions (`cron(min hour day-of-month month day-of-week year)`), as
//! EventBridge rules and EventBridge Scheduler accept them, parsed into per-field bitsets and
//! evaluated field by field on a naive (wall-clock) date and time.
//!
//! Time zones are not handled here: [`CronExpression::next_match`] walks local wall-clock time,
//! and the caller ([`super::ScheduleExpression::next_after`]) maps each local candidate to UTC,
//! which is where the daylight-saving rules live.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::ExpressionError;

/// First year the year field accepts.
pub const MIN_YEAR: i32 = 1970;
/// Last year the year field accepts; no cron expression fires after this year.
pub const MAX_YEAR: i32 = 2199;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
// AWS numbers days of the week 1-7 starting on Sunday (not 0-6).
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The six fields of a cron expression, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    /// Field 1, `0-59`.
    Minutes,
    /// Field 2, `0-23`.
    Hours,
    /// Field 3, `1-31`, with `?`, `L` and `W`.
    DayOfMonth,
    /// Field 4, `1-12` or `JAN-DEC`.
    Month,
    /// Field 5, `1-7` or `SUN-SAT` (1 = Sunday), with `?`, `L` and `#`.
    DayOfWeek,
    /// Field 6, `1970-2199`.
    Year,
}

impl CronField {
    /// All fields in expression order.
    pub const ALL: [CronField; 6] = [
        CronField::Minutes,
        CronField::Hours,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
        CronField::Year,
    ];

    /// 1-based position of the field in the expression.
    pub fn position(self) -> usize {
        match self {
            CronField::Minutes => 1,
            CronField::Hours => 2,
            CronField::DayOfMonth => 3,
            CronField::Month => 4,
            CronField::DayOfWeek => 5,
            CronField::Year => 6,
        }
    }

    /// The field's name as used in error messages (`day-of-month`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        }
    }

    /// Inclusive range of numeric values.
    pub fn range(self) -> (u32, u32) {
        match self {
            CronField::Minutes => (0, 59),
            CronField::Hours => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (1, 7),
            CronField::Year => (MIN_YEAR as u32, MAX_YEAR as u32),
        }
    }

    fn names(self) -> Option<&'static [&'static str]> {
        match self {
            CronField::Month => Some(&MONTH_NAMES),
            CronField::DayOfWeek => Some(&DAY_NAMES),
            _ => None,
        }
    }

    // The wildcard table of the EventBridge "cron expressions reference"; `,`, `-` and `*`
    // are allowed everywhere.
    fn allows(self, wildcard: char) -> bool {
        match wildcard {
            '/' => self != CronField::DayOfWeek,
            '?' => matches!(self, CronField::DayOfMonth | CronField::DayOfWeek),
            'L' => matches!(self, CronField::DayOfMonth | CronField::DayOfWeek),
            'W' => self == CronField::DayOfMonth,
            '#' => self == CronField::DayOfWeek,
            _ => true,
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with one item of a cron field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    /// An empty item, as in `1,,2` or a bare `-`.
    #[error("empty value")]
    Empty,
    /// A number outside the field's range.
    #[error("value {value} out of range {min}-{max}")]
    OutOfRange {
        /// The value as given.
        value: String,
        /// Lowest accepted value.
        min: u32,
        /// Highest accepted value.
        max: u32,
    },
    /// Neither a number nor (for month and day-of-week) a name.
    #[error("\"{token}\" is not {expected}")]
    NotAValue {
        /// The offending token.
        token: String,
        /// What the field accepts, in words.
        expected: &'static str,
    },
    /// A `/` increment of zero or larger than the field.
    #[error("increment {step} out of range 1-{max}")]
    BadStep {
        /// The increment as given.
        step: String,
        /// Largest useful increment for the field.
        max: u32,
    },
    /// A wildcard the field does not accept (see the AWS wildcard table).
    #[error("{wildcard} is not allowed in {field}")]
    WildcardNotAllowed {
        /// The wildcard character.
        wildcard: char,
        /// The field name.
        field: &'static str,
    },
    /// `?`, `L`, `W` or `#` used together with other comma-separated values.
    #[error("{0} cannot be combined with other values in the same field")]
    NotAlone(&'static str),
    /// The `k` of `d#k` outside 1-5.
    #[error("occurrence {0} out of range 1-5")]
    BadOccurrence(String),
    /// A year range whose start is after its end (other fields wrap around instead).
    #[error("range {start}-{end} runs backwards")]
    BackwardsRange {
        /// Range start.
        start: u32,
        /// Range end.
        end: u32,
    },
    /// A syntax AWS does not document, such as `L-3` or a bare `W`.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A 256-bit set; bit `i` is value `i` (years are stored as `year - 1970`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Bits([u64; 4]);

impl Bits {
    fn insert(&mut self, i: u32) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn contains(&self, i: u32) -> bool {
        i < 256 && self.0[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Smallest member `>= from`.
    fn next_from(&self, from: u32) -> Option<u32> {
        let mut word = (from / 64) as usize;
        if word >= 4 {
            return None;
        }
        let mut w = self.0[word] & (!0u64 << (from % 64));
        loop {
            if w != 0 {
                return Some(word as u32 * 64 + w.trailing_zeros());
            }
            word += 1;
            if word >= 4 {
                return None;
            }
            w = self.0[word];
        }
    }
}

/// How the day-of-month field picks days when day-of-week is `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonthDays {
    /// Bits 1-31.
    Set(u64),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last weekday (Monday-Friday) of the month.
    LastWeekday,
    /// `nW`: the weekday nearest to day `n`, without leaving the month.
    NearestWeekday(u32),
}

/// How the day-of-week field picks days when day-of-month is `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeekDays {
    /// Bits 1-7 (1 = Sunday).
    Set(u64),
    /// `nL`: the last such weekday of the month (`L` alone = Saturday).
    Last(u32),
    /// `n#k`: the k-th such weekday of the month.
    Nth(u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaySpec {
    Month(MonthDays),
    Week(WeekDays),
}

/// One parsed field before the day-of-month / day-of-week pairing.
enum Parsed {
    Unspecified,
    Bits(Bits),
    Month(MonthDays),
    Week(WeekDays),
}

/// A parsed, validated AWS cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpression {
    text: [String; 6],
    minutes: Bits,
    hours: Bits,
    months: Bits,
    years: Bits,
    days: DaySpec,
}

impl CronExpression {
    /// Parses the inside of `cron(...)`: six whitespace-separated fields.
    pub fn parse(body: &str) -> Result<Self, ExpressionError> {
        let given: Vec<&str> = body.split_whitespace().collect();
        let given: [&str; 6] = given
            .try_into()
            .map_err(|v: Vec<&str>| ExpressionError::FieldCount { got: v.len() })?;
        let mut parsed = Vec::with_capacity(6);
        // Parsing is case-insensitive but works on the text as given, so that errors quote
        // what the user wrote; the canonical form is upper case.
        for (field, text) in CronField::ALL.into_iter().zip(given) {
            parsed.push(parse_field(field, text)?);
        }
        let text = given.map(str::to_ascii_uppercase);
        let bits = |p: &Parsed| match p {
            Parsed::Bits(b) => *b,
            // Only day fields produce other variants; parse_field guarantees it.
            _ => Bits::default(),
        };
        let days = match (&parsed[2], &parsed[4]) {
            (Parsed::Unspecified, Parsed::Unspecified) => {
                return Err(ExpressionError::BothDaysUnspecified);
            }
            (Parsed::Unspecified, Parsed::Bits(b)) => DaySpec::Week(WeekDays::Set(b.0[0])),
            (Parsed::Unspecified, Parsed::Week(w)) => DaySpec::Week(*w),
            (Parsed::Bits(b), Parsed::Unspecified) => DaySpec::Month(MonthDays::Set(b.0[0])),
            (Parsed::Month(m), Parsed::Unspecified) => DaySpec::Month(*m),
            _ => return Err(ExpressionError::BothDaysSpecified),
        };
        let [minutes, hours, _, months, _, years] = [0, 1, 2, 3, 4, 5].map(|i| bits(&parsed[i]));
        Ok(CronExpression {
            text,
            minutes,
            hours,
            months,
            years,
            days,
        })
    }

    /// The canonical text of one field (upper case, as given).
    pub fn field_text(&self, field: CronField) -> &str {
        &self.text[field.position() - 1]
    }

    /// The first wall-clock minute at or after `from` (seconds ignored, rounded up) that the
    /// expression matches, or `None` once the year field (or 2199) is exhausted.
    pub fn next_match(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        // Any part of a minute past its start, down to the nanosecond, rounds up to the next
        // minute: the result must never be before `from`.
        let partial = from.second() != 0 || from.nanosecond() != 0;
        let mut from = from.with_nanosecond(0)?.with_second(0)?;
        if partial {
            from += chrono::TimeDelta::minutes(1);
        }
        if from.year() < MIN_YEAR {
            from = NaiveDate::from_ymd_opt(MIN_YEAR, 1, 1)?.and_hms_opt(0, 0, 0)?;
        }
        let (mut y, mut mo, mut d, mut h, mut mi) = (
            from.year(),
            from.month(),
            from.day(),
            from.hour(),
            from.minute(),
        );
        // Every `continue` moves strictly forward in (y, mo, d, h, mi) and y is capped, so
        // the loop is bounded (a few steps per month at most).
        while y <= MAX_YEAR {
            let idx = (y - MIN_YEAR) as u32;
            let ny = self.years.next_from(idx)? as i32 + MIN_YEAR;
            if ny > MAX_YEAR {
                return None;
            }
            if ny != y {
                (y, mo, d, h, mi) = (ny, 1, 1, 0, 0);
            }
            let Some(nmo) = self.months.next_from(mo).filter(|m| *m <= 12) else {
                (y, mo, d, h, mi) = (y + 1, 1, 1, 0, 0);
                continue;
            };
            if nmo != mo {
                (mo, d, h, mi) = (nmo, 1, 0, 0);
            }
            let days = Bits([self.day_mask(y, mo), 0, 0, 0]);
            let Some(nd) = days.next_from(d).filter(|d| *d <= 31) else {
                (mo, d, h, mi) = (mo + 1, 1, 0, 0);
                continue;
            };
            if nd != d {
                (d, h, mi) = (nd, 0, 0);
            }
            let Some(nh) = self.hours.next_from(h).filter(|h| *h <= 23) else {
                (d, h, mi) = (d + 1, 0, 0);
                continue;
            };
            if nh != h {
                (h, mi) = (nh, 0);
            }
            let Some(nmi) = self.minutes.next_from(mi).filter(|m| *m <= 59) else {
                (h, mi) = (h + 1, 0);
                continue;
            };
            return NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_opt(h, nmi, 0);
        }
        None
    }

    /// Whether the expression matches this wall-clock minute (seconds ignored).
    pub fn matches(&self, at: NaiveDateTime) -> bool {
        let idx = at.year() - MIN_YEAR;
        (0..=(MAX_YEAR - MIN_YEAR)).contains(&idx)
            && self.years.contains(idx as u32)
            && self.months.contains(at.month())
            && self.day_mask(at.year(), at.month()) & (1 << at.day()) != 0
            && self.hours.contains(at.hour())
            && self.minutes.contains(at.minute())
    }

    /// Bits 1-31 of the days of this month the day fields select.
    fn day_mask(&self, year: i32, month: u32) -> u64 {
        let Some(first) = NaiveDate::from_ymd_opt(year, month, 1) else {
            return 0;
        };
        let dim = days_in_month(year, month);
        // 0 = Sunday, the AWS day-of-week minus one.
        let first_wd = first.weekday().num_days_from_sunday();
        let wd = |day: u32| (first_wd + day - 1) % 7;
        let all = ((1u64 << dim) - 1) << 1;
        match self.days {
            DaySpec::Month(MonthDays::Set(b)) => b & all,
            DaySpec::Month(MonthDays::Last) => 1 << dim,
            DaySpec::Month(MonthDays::LastWeekday) => match wd(dim) {
                6 => 1 << (dim - 1),
                0 => 1 << (dim - 2),
                _ => 1 << dim,
            },
            DaySpec::Month(MonthDays::NearestWeekday(n)) => {
                if n > dim {
                    // Like a plain `31` in a 30-day month: no day this month.
                    return 0;
                }
                // The nearest weekday never leaves the month: 1W on a Saturday is Monday
                // the 3rd, and a Sunday last day moves back to Friday.
                let day = match wd(n) {
                    6 if n == 1 => 3,
                    6 => n - 1,
                    0 if n == dim => n - 2,
                    0 => n + 1,
                    _ => n,
                };
                1 << day
            }
            DaySpec::Week(WeekDays::Set(b)) => {
                let mut mask = 0;
                for day in 1..=dim {
                    if b & (1 << (wd(day) + 1)) != 0 {
                        mask |= 1 << day;
                    }
                }
                mask
            }
            DaySpec::Week(WeekDays::Last(w)) => {
                let back = (wd(dim) + 7 - (w - 1)) % 7;
                1 << (dim - back)
            }
            DaySpec::Week(WeekDays::Nth(w, k)) => {
                let first_match = 1 + ((w - 1) + 7 - first_wd) % 7;
                let day = first_match + 7 * (k - 1);
                if day <= dim { 1 << day } else { 0 }
            }
        }
    }
}

impl fmt::Display for CronExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron({})", self.text.join(" "))
    }
}

/// Number of days in a month (28-31).
pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    match (
        NaiveDate::from_ymd_opt(year, month, 1),
        NaiveDate::from_ymd_opt(ny, nm, 1),
    ) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 30,
    }
}

fn field_error(field: CronField, text: &str, problem: FieldProblem) -> ExpressionError {
    ExpressionError::Field {
        field,
        text: text.to_owned(),
        problem,
    }
}

fn parse_field(field: CronField, text: &str) -> Result<Parsed, ExpressionError> {
    let items: Vec<&str> = text.split(',').collect();
    let alone = items.len() == 1;
    let mut bits = Bits::default();
    for item in &items {
        let err = |p| field_error(field, item, p);
        if *item == "?" {
            if !field.allows('?') {
                return Err(err(FieldProblem::WildcardNotAllowed {
                    wildcard: '?',
                    field: field.name(),
                }));
            }
            if !alone {
                return Err(err(FieldProblem::NotAlone("?")));
            }
            return Ok(Parsed::Unspecified);
        }
        if let Some((special, symbol)) = parse_special(field, item).map_err(err)? {
            if !alone {
                return Err(err(FieldProblem::NotAlone(symbol)));
            }
            return Ok(special);
        }
        parse_item(field, item, &mut bits).map_err(err)?;
    }
    Ok(Parsed::Bits(bits))
}

/// `L`, `LW`, `nW`, `nL` and `n#k`, with the symbol to name if it is not alone.
fn parse_special(
    field: CronField,
    item: &str,
) -> Result<Option<(Parsed, &'static str)>, FieldProblem> {
    let not_allowed = |wildcard| FieldProblem::WildcardNotAllowed {
        wildcard,
        field: field.name(),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((day, nth)) = item.split_once('#') {
        if !field.allows('#') {
            return Err(not_allowed('#'));
        }
        let wd = parse_value(field, day)?;
        if !digits(nth) {
            return Err(FieldProblem::NotAValue {
                token: nth.to_owned(),
                expected: "an occurrence number 1-5",
            });
        }
        let k: u64 = nth.parse().unwrap_or(u64::MAX);
        if !(1..=5).contains(&k) {
            return Err(FieldProblem::BadOccurrence(nth.to_owned()));
        }
        return Ok(Some((Parsed::Week(WeekDays::Nth(wd, k as u32)), "#")));
    }
    match field {
        CronField::DayOfMonth => {
            if item.eq_ignore_ascii_case("L") {
                return Ok(Some((Parsed::Month(MonthDays::Last), "L")));
            }
            if item.eq_ignore_ascii_case("LW") {
                return Ok(Some((Parsed::Month(MonthDays::LastWeekday), "LW")));
            }
            if let Some(day) = strip_wildcard(item, 'W') {
                if day.is_empty() {
                    return Err(FieldProblem::Unsupported(
                        "W needs a day before it, as in 15W",
                    ));
                }
                let n = parse_value(field, day)?;
                return Ok(Some((Parsed::Month(MonthDays::NearestWeekday(n)), "W")));
            }
            if item.contains(['L', 'l']) {
                return Err(FieldProblem::Unsupported(
                    "L in day-of-month must stand alone (L) or be LW",
                ));
            }
        }
        CronField::DayOfWeek => {
            // Alone, L is the last day of the week: every Saturday.
            if item.eq_ignore_ascii_case("L") {
                return Ok(Some((Parsed::Week(WeekDays::Set(1 << 7)), "L")));
            }
            if strip_wildcard(item, 'W').is_some() {
                return Err(not_allowed('W'));
            }
            // No day name ends in L, so a trailing L is always the wildcard.
            if let Some(day) = strip_wildcard(item, 'L') {
                let wd = parse_value(field, day)?;
                return Ok(Some((Parsed::Week(WeekDays::Last(wd)), "L")));
            }
        }
        _ => {
            // `JUL` ends in L, so only digits (or nothing) before L/W make it a wildcard.
            for wildcard in ['L', 'W'] {
                if let Some(prefix) = strip_wildcard(item, wildcard)
                    && (prefix.is_empty() || digits(prefix) || prefix.eq_ignore_ascii_case("L"))
                {
                    return Err(not_allowed(wildcard));
                }
            }
        }
    }
    Ok(None)
}

/// `item` without a trailing `wildcard` (either case), if it ends with one.
fn strip_wildcard(item: &str, wildcard: char) -> Option<&str> {
    item.strip_suffix(wildcard)
        .or_else(|| item.strip_suffix(wildcard.to_ascii_lowercase()))
}

/// Adds the values of one plain item (`*`, `n`, `a-b`, with an optional `/step`).
fn parse_item(field: CronField, item: &str, bits: &mut Bits) -> Result<(), FieldProblem> {
    let (min, max) = field.range();
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => {
            if !field.allows('/') {
                return Err(FieldProblem::WildcardNotAllowed {
                    wildcard: '/',
                    field: field.name(),
                });
            }
            if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FieldProblem::NotAValue {
                    token: step.to_owned(),
                    expected: "an increment",
                });
            }
            let span = max - min + 1;
            let s: u64 = step.parse().unwrap_or(u64::MAX);
            if s == 0 || s > span as u64 {
                return Err(FieldProblem::BadStep {
                    step: step.to_owned(),
                    max: span,
                });
            }
            (base, Some(s as u32))
        }
        None => (item, None),
    };
    let (start, end) = if base == "*" {
        (min, max)
    } else if let Some((a, b)) = base.split_once('-') {
        let (a, b) = (parse_value(field, a)?, parse_value(field, b)?);
        if field == CronField::Year && a > b {
            return Err(FieldProblem::BackwardsRange { start: a, end: b });
        }
        (a, b)
    } else {
        let a = parse_value(field, base)?;
        // `5/15` means from 5 to the end of the field, every 15.
        (a, if step.is_some() { max } else { a })
    };
    let step = step.unwrap_or(1);
    let offset = if field == CronField::Year { min } else { 0 };
    // A range whose start is after its end wraps around the field (AWS documents
    // `0/30 20-2 ? * MON-FRI *`: 10 pm to 2 am).
    let len = if start <= end {
        end - start + 1
    } else {
        (max - start + 1) + (end - min + 1)
    };
    let span = max - min + 1;
    let mut i = 0;
    while i < len {
        let v = min + (start - min + i) % span;
        bits.insert(v - offset);
        i += step;
    }
    Ok(())
}

fn parse_value(field: CronField, token: &str) -> Result<u32, FieldProblem> {
    let (min, max) = field.range();
    if token.is_empty() {
        return Err(FieldProblem::Empty);
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let value: u64 = token.parse().unwrap_or(u64::MAX);
        if value < min as u64 || value > max as u64 {
            return Err(FieldProblem::OutOfRange {
                value: token.to_owned(),
                min,
                max,
            });
        }
        return Ok(value as u32);
    }
    if let Some(names) = field.names()
        && let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(token))
    {
        return Ok(i as u32 + 1);
    }
    let expected = match field {
        CronField::Month => "a month number 1-12 or a name JAN-DEC",
        CronField::DayOfWeek => "a day number 1-7 (1 = SUN) or a name SUN-SAT",
        _ => "a number",
    };
    Err(FieldProblem::NotAValue {
        token: token.to_owned(),
        expected,
    })
}

#[cfg(test)]
mod tests;
