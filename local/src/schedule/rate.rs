//! `rate(value unit)` expressions: a fixed interval anchored at the schedule's start.
//!
//! AWS measures rates in elapsed time, not wall-clock time: `rate(1 day)` is 24 hours even on
//! a 23- or 25-hour DST day ("EventBridge Scheduler evaluates the rate expression 24 hours
//! after the schedule's last invocation"), so no time zone is involved here.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::ExpressionError;

/// The unit of a rate expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    /// `minute` / `minutes`.
    Minutes,
    /// `hour` / `hours`.
    Hours,
    /// `day` / `days`.
    Days,
}

impl RateUnit {
    /// The unit's name for `value` (singular for 1, plural otherwise, as AWS requires).
    pub fn name(self, value: u32) -> &'static str {
        match (self, value == 1) {
            (RateUnit::Minutes, true) => "minute",
            (RateUnit::Minutes, false) => "minutes",
            (RateUnit::Hours, true) => "hour",
            (RateUnit::Hours, false) => "hours",
            (RateUnit::Days, true) => "day",
            (RateUnit::Days, false) => "days",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            RateUnit::Minutes => 60,
            RateUnit::Hours => 3_600,
            RateUnit::Days => 86_400,
        }
    }
}

/// A parsed `rate(value unit)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// How many units between invocations, at least 1.
    pub value: u32,
    /// The unit.
    pub unit: RateUnit,
}

impl Rate {
    /// Parses the inside of `rate(...)`, e.g. `5 minutes`.
    pub fn parse(body: &str) -> Result<Self, ExpressionError> {
        let parts: Vec<&str> = body.split_whitespace().collect();
        let [value, unit] = parts[..] else {
            return Err(ExpressionError::RateShape {
                body: body.trim().to_owned(),
            });
        };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ExpressionError::RateValue {
                value: value.to_owned(),
            });
        }
        let n: u32 = value.parse().map_err(|_| ExpressionError::RateValue {
            value: value.to_owned(),
        })?;
        if n == 0 {
            return Err(ExpressionError::RateValue {
                value: value.to_owned(),
            });
        }
        let (parsed, plural) = match unit {
            "minute" => (RateUnit::Minutes, false),
            "minutes" => (RateUnit::Minutes, true),
            "hour" => (RateUnit::Hours, false),
            "hours" => (RateUnit::Hours, true),
            "day" => (RateUnit::Days, false),
            "days" => (RateUnit::Days, true),
            _ => {
                return Err(ExpressionError::RateUnit {
                    unit: unit.to_owned(),
                });
            }
        };
        if plural != (n != 1) {
            return Err(ExpressionError::RateUnitNumber {
                unit: unit.to_owned(),
                value: n,
                wanted: if n == 1 { "singular" } else { "plural" },
            });
        }
        Ok(Rate {
            value: n,
            unit: parsed,
        })
    }

    /// The interval between two invocations.
    pub fn period(&self) -> TimeDelta {
        TimeDelta::seconds(self.value as i64 * self.unit.seconds())
    }

    /// The first `anchor + k * period` (k >= 0) strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if after < anchor {
            return Some(anchor);
        }
        let period = self.value as i64 * self.unit.seconds();
        // Truncating the sub-second part of the difference is safe: the period is a whole
        // number of seconds, so k only depends on whole elapsed seconds.
        let elapsed = (after - anchor).num_seconds();
        let k = elapsed / period + 1;
        anchor.checked_add_signed(TimeDelta::try_seconds(k.checked_mul(period)?)?)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate({} {})", self.value, self.unit.name(self.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn parses_singular_and_plural() {
        let r = Rate::parse("5 minutes").unwrap();
        assert_eq!(
            r,
            Rate {
                value: 5,
                unit: RateUnit::Minutes
            }
        );
        assert_eq!(r.period(), TimeDelta::minutes(5));
        assert_eq!(Rate::parse("1 hour").unwrap().to_string(), "rate(1 hour)");
        assert_eq!(
            Rate::parse(" 7   days ").unwrap().to_string(),
            "rate(7 days)"
        );
        assert_eq!(Rate::parse("1 day").unwrap().period(), TimeDelta::hours(24));
    }

    #[test]
    fn rejects_bad_rates() {
        let e = |s: &str| Rate::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("5 minute"),
            "rate unit \"minute\" needs the plural for value 5"
        );
        assert_eq!(
            e("1 hours"),
            "rate unit \"hours\" needs the singular for value 1"
        );
        assert_eq!(
            e("0 minutes"),
            "rate value \"0\" must be a whole number of at least 1"
        );
        assert_eq!(
            e("-5 minutes"),
            "rate value \"-5\" must be a whole number of at least 1"
        );
        assert_eq!(
            e("+5 minutes"),
            "rate value \"+5\" must be a whole number of at least 1"
        );
        assert_eq!(
            e("1.5 hours"),
            "rate value \"1.5\" must be a whole number of at least 1"
        );
        assert_eq!(
            e("99999999999 minutes"),
            "rate value \"99999999999\" must be a whole number of at least 1"
        );
        assert_eq!(
            e("2 weeks"),
            "unknown rate unit \"weeks\"; expected minute(s), hour(s) or day(s)"
        );
        assert_eq!(
            e("5 Minutes"),
            "unknown rate unit \"Minutes\"; expected minute(s), hour(s) or day(s)"
        );
        assert_eq!(
            e("5"),
            "rate expects a value and a unit, as in rate(5 minutes), got \"5\""
        );
        assert_eq!(
            e("5 minutes now"),
            "rate expects a value and a unit, as in rate(5 minutes), got \"5 minutes now\""
        );
    }

    #[test]
    fn anchored_at_start() {
        let r = Rate::parse("5 minutes").unwrap();
        let anchor = t("2026-01-01T00:00:30Z");
        assert_eq!(
            r.next_after(t("2025-12-31T00:00:00Z"), anchor),
            Some(anchor)
        );
        assert_eq!(
            r.next_after(anchor, anchor),
            Some(t("2026-01-01T00:05:30Z"))
        );
        assert_eq!(
            r.next_after(t("2026-01-01T00:05:29.999Z"), anchor),
            Some(t("2026-01-01T00:05:30Z"))
        );
        assert_eq!(
            r.next_after(t("2026-01-01T00:05:30Z"), anchor),
            Some(t("2026-01-01T00:10:30Z"))
        );
        assert_eq!(
            r.next_after(t("2026-01-01T00:05:30.5Z"), anchor),
            Some(t("2026-01-01T00:10:30Z"))
        );
    }
}
