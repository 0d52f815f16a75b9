//! Integration tests of `nightshift_local::schedule`: every example of the AWS cron references,
//! daylight-saving edges in America/New_York and Europe/Berlin, leap years, year exhaustion,
//! every error message, a year-long replay, and the delivery helpers end to end.

use anyhow::Result;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use nightshift_local::schedule::{
    ContextAttributes, FlexibleWindow, RetryPolicy, Schedule, ScheduleExpression, next_fire_times,
    scheduled_event_json, substitute_context,
};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

/// The next `n` fire times, as `...Z` strings for readable diffs.
fn next(expr: &str, tz: &str, from: &str, n: usize) -> Result<Vec<String>> {
    Ok(next_fire_times(expr, tz, t(from), n)?
        .into_iter()
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect())
}

fn error(expr: &str) -> String {
    match ScheduleExpression::parse(expr) {
        Ok(e) => panic!("{expr} parsed as {e}"),
        Err(e) => e.to_string(),
    }
}

// Examples of the EventBridge "cron expressions reference" table (UTC).

#[test]
fn aws_example_daily_at_ten() -> Result<()> {
    assert_eq!(
        next("cron(0 10 * * ? *)", "UTC", "2026-03-02T12:00:00Z", 2)?,
        ["2026-03-03T10:00:00Z", "2026-03-04T10:00:00Z"]
    );
    Ok(())
}

#[test]
fn aws_example_daily_at_twelve_fifteen_is_strictly_after() -> Result<()> {
    assert_eq!(
        next("cron(15 12 * * ? *)", "UTC", "2026-03-02T12:14:59Z", 1)?,
        ["2026-03-02T12:15:00Z"]
    );
    assert_eq!(
        next("cron(15 12 * * ? *)", "UTC", "2026-03-02T12:15:00Z", 1)?,
        ["2026-03-03T12:15:00Z"]
    );
    Ok(())
}

#[test]
fn aws_example_weekdays_at_six_pm() -> Result<()> {
    // 2026-03-06 is a Friday.
    assert_eq!(
        next("cron(0 18 ? * MON-FRI *)", "UTC", "2026-03-06T18:00:00Z", 2)?,
        ["2026-03-09T18:00:00Z", "2026-03-10T18:00:00Z"]
    );
    Ok(())
}

#[test]
fn aws_example_first_of_month_at_eight() -> Result<()> {
    assert_eq!(
        next("cron(0 8 1 * ? *)", "UTC", "2026-01-15T00:00:00Z", 2)?,
        ["2026-02-01T08:00:00Z", "2026-03-01T08:00:00Z"]
    );
    Ok(())
}

#[test]
fn aws_example_every_fifteen_minutes() -> Result<()> {
    assert_eq!(
        next("cron(0/15 * * * ? *)", "UTC", "2026-03-02T10:07:00Z", 4)?,
        [
            "2026-03-02T10:15:00Z",
            "2026-03-02T10:30:00Z",
            "2026-03-02T10:45:00Z",
            "2026-03-02T11:00:00Z"
        ]
    );
    Ok(())
}

#[test]
fn aws_example_every_ten_minutes_on_weekdays() -> Result<()> {
    assert_eq!(
        next(
            "cron(0/10 * ? * MON-FRI *)",
            "UTC",
            "2026-03-06T23:45:00Z",
            2
        )?,
        ["2026-03-06T23:50:00Z", "2026-03-09T00:00:00Z"]
    );
    Ok(())
}

#[test]
fn aws_example_every_five_minutes_in_business_hours() -> Result<()> {
    assert_eq!(
        next(
            "cron(0/5 8-17 ? * MON-FRI *)",
            "UTC",
            "2026-03-09T17:50:00Z",
            2
        )?,
        ["2026-03-09T17:55:00Z", "2026-03-10T08:00:00Z"]
    );
    // 8:00 to 17:55 is 120 fires a weekday, 600 a week.
    let week = next_fire_times(
        "cron(0/5 8-17 ? * MON-FRI *)",
        "UTC",
        t("2026-03-08T00:00:00Z"),
        1000,
    )?;
    let in_week = week
        .iter()
        .filter(|d| **d < t("2026-03-15T00:00:00Z"))
        .count();
    assert_eq!(in_week, 600);
    Ok(())
}

#[test]
fn aws_example_wrapping_hour_range() -> Result<()> {
    // `20-2` wraps past midnight: hours 20-23 and 0-2. Each fire is matched against its own
    // calendar day, so Saturday 00:00-02:30 does not fire and Monday 00:00 does.
    let fires = next_fire_times(
        "cron(0/30 20-2 ? * MON-FRI *)",
        "UTC",
        t("2026-03-06T19:59:00Z"),
        9,
    )?;
    let got: Vec<String> = fires
        .iter()
        .map(|d| d.format("%a %H:%M").to_string())
        .collect();
    assert_eq!(
        got,
        [
            "Fri 20:00",
            "Fri 20:30",
            "Fri 21:00",
            "Fri 21:30",
            "Fri 22:00",
            "Fri 22:30",
            "Fri 23:00",
            "Fri 23:30",
            "Mon 00:00"
        ]
    );
    Ok(())
}

#[test]
fn aws_example_first_monday_at_nine() -> Result<()> {
    assert_eq!(
        next("cron(0 9 ? * 2#1 *)", "UTC", "2026-01-01T00:00:00Z", 4)?,
        [
            "2026-01-05T09:00:00Z",
            "2026-02-02T09:00:00Z",
            "2026-03-02T09:00:00Z",
            "2026-04-06T09:00:00Z"
        ]
    );
    Ok(())
}

#[test]
fn aws_put_rule_examples() -> Result<()> {
    assert_eq!(
        next("cron(0 12 * * ? *)", "UTC", "2026-03-02T12:00:00Z", 1)?,
        ["2026-03-03T12:00:00Z"]
    );
    assert_eq!(
        next("cron(5,35 14 * * ? *)", "UTC", "2026-03-02T14:05:00Z", 3)?,
        [
            "2026-03-02T14:35:00Z",
            "2026-03-03T14:05:00Z",
            "2026-03-03T14:35:00Z"
        ]
    );
    Ok(())
}

#[test]
fn aws_example_last_friday_in_2019_to_2022_then_exhausted() -> Result<()> {
    let all = next_fire_times(
        "cron(15 10 ? * 6L 2019-2022)",
        "UTC",
        t("2018-06-01T00:00:00Z"),
        100,
    )?;
    assert_eq!(all.len(), 48, "one per month for four years, then nothing");
    assert_eq!(all[0], t("2019-01-25T10:15:00Z"));
    assert_eq!(all[47], t("2022-12-30T10:15:00Z"));
    assert!(
        all.iter()
            .all(|d| d.weekday() == chrono::Weekday::Fri && d.day() > 21)
    );
    let e = ScheduleExpression::parse("cron(15 10 ? * 6L 2019-2022)")?;
    assert_eq!(e.next_after(t("2022-12-30T10:15:00Z"), Tz::UTC, None), None);
    Ok(())
}

// The special characters.

#[test]
fn last_day_of_month() -> Result<()> {
    assert_eq!(
        next("cron(0 0 L * ? *)", "UTC", "2028-01-31T00:00:00Z", 3)?,
        [
            "2028-02-29T00:00:00Z",
            "2028-03-31T00:00:00Z",
            "2028-04-30T00:00:00Z"
        ]
    );
    Ok(())
}

#[test]
fn nearest_weekday() -> Result<()> {
    // 15th of 2026: Feb and Mar are Sundays (-> Monday 16th), Aug a Saturday (-> Friday 14th).
    let days: Vec<u32> =
        next_fire_times("cron(0 9 15W * ? *)", "UTC", t("2026-01-01T00:00:00Z"), 12)?
            .iter()
            .map(|d| d.day())
            .collect();
    assert_eq!(days, [15, 16, 16, 15, 15, 15, 15, 14, 15, 15, 16, 15]);
    Ok(())
}

#[test]
fn last_weekday_of_month() -> Result<()> {
    let days: Vec<u32> =
        next_fire_times("cron(0 17 LW * ? *)", "UTC", t("2026-01-01T00:00:00Z"), 12)?
            .iter()
            .map(|d| d.day())
            .collect();
    assert_eq!(days, [30, 27, 31, 30, 29, 30, 31, 31, 30, 30, 30, 31]);
    Ok(())
}

#[test]
fn last_friday_of_month() -> Result<()> {
    assert_eq!(
        next("cron(0 10 ? * 6L *)", "UTC", "2026-01-01T00:00:00Z", 3)?,
        [
            "2026-01-30T10:00:00Z",
            "2026-02-27T10:00:00Z",
            "2026-03-27T10:00:00Z"
        ]
    );
    Ok(())
}

#[test]
fn second_tuesday_and_names() -> Result<()> {
    let numeric = next("cron(0 9 ? * 3#2 *)", "UTC", "2026-01-01T00:00:00Z", 3)?;
    assert_eq!(
        numeric,
        [
            "2026-01-13T09:00:00Z",
            "2026-02-10T09:00:00Z",
            "2026-03-10T09:00:00Z"
        ]
    );
    assert_eq!(
        next("cron(0 9 ? * TUE#2 *)", "UTC", "2026-01-01T00:00:00Z", 3)?,
        numeric
    );
    assert_eq!(
        next("cron(0 9 1 JAN,JUL ? *)", "UTC", "2026-01-01T09:00:00Z", 2)?,
        ["2026-07-01T09:00:00Z", "2027-01-01T09:00:00Z"]
    );
    Ok(())
}

#[test]
fn day_of_week_one_is_sunday() -> Result<()> {
    // 2026-03-08 is a Sunday, 2026-03-14 a Saturday.
    assert_eq!(
        next("cron(0 0 ? * 1 *)", "UTC", "2026-03-02T00:00:00Z", 1)?,
        ["2026-03-08T00:00:00Z"]
    );
    assert_eq!(
        next("cron(0 0 ? * 7 *)", "UTC", "2026-03-08T00:00:00Z", 1)?,
        ["2026-03-14T00:00:00Z"]
    );
    Ok(())
}

#[test]
fn leap_day_only_in_leap_years() -> Result<()> {
    assert_eq!(
        next("cron(0 0 29 2 ? *)", "UTC", "2025-01-01T00:00:00Z", 2)?,
        ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
    );
    // 2100 is not a leap year.
    assert_eq!(
        next("cron(0 0 29 2 ? *)", "UTC", "2096-03-01T00:00:00Z", 1)?,
        ["2104-02-29T00:00:00Z"]
    );
    Ok(())
}

#[test]
fn year_field_exhaustion() -> Result<()> {
    assert_eq!(
        next("cron(0 0 1 1 ? 2026)", "UTC", "2025-06-01T00:00:00Z", 5)?,
        ["2026-01-01T00:00:00Z"]
    );
    assert!(next("cron(0 0 1 1 ? 2026)", "UTC", "2026-01-01T00:00:00Z", 5)?.is_empty());
    // The year field ends at 2199 even with `*`.
    assert_eq!(
        next("cron(0 0 31 12 ? *)", "UTC", "2199-01-01T00:00:00Z", 5)?,
        ["2199-12-31T00:00:00Z"]
    );
    // A date that never exists ends too, without looping forever.
    assert!(next("cron(0 0 30 2 ? *)", "UTC", "2026-01-01T00:00:00Z", 5)?.is_empty());
    Ok(())
}

// Daylight saving time.

#[test]
fn new_york_spring_forward_skips_the_missing_time() -> Result<()> {
    // 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
    assert_eq!(
        next(
            "cron(30 2 * * ? *)",
            "America/New_York",
            "2026-03-07T00:00:00Z",
            2
        )?,
        ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z"]
    );
    assert_eq!(
        next(
            "cron(0/15 * * * ? *)",
            "America/New_York",
            "2026-03-08T06:40:00Z",
            3
        )?,
        [
            "2026-03-08T06:45:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:15:00Z"
        ]
    );
    Ok(())
}

#[test]
fn new_york_fall_back_fires_once() -> Result<()> {
    // 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens at 05:30Z and 06:30Z.
    assert_eq!(
        next(
            "cron(30 1 * * ? *)",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            3
        )?,
        [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z"
        ]
    );
    // Also for an hourly cron: 01:30 EST repeats a wall-clock time and does not fire.
    assert_eq!(
        next(
            "cron(30 * * * ? *)",
            "America/New_York",
            "2026-11-01T03:00:00Z",
            4
        )?,
        [
            "2026-11-01T03:30:00Z",
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T07:30:00Z"
        ]
    );
    // Asked from inside the second 01:xx hour, the repeated 01:30 is not offered again.
    assert_eq!(
        next(
            "cron(30 1 * * ? *)",
            "America/New_York",
            "2026-11-01T06:00:00Z",
            1
        )?,
        ["2026-11-02T06:30:00Z"]
    );
    Ok(())
}

#[test]
fn berlin_spring_forward_and_fall_back() -> Result<()> {
    // 2026-03-29 02:00 CET jumps to 03:00 CEST; 2026-10-25 03:00 CEST falls back to 02:00 CET.
    assert_eq!(
        next(
            "cron(30 2 * * ? *)",
            "Europe/Berlin",
            "2026-03-28T00:00:00Z",
            2
        )?,
        ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"]
    );
    assert_eq!(
        next(
            "cron(30 2 * * ? *)",
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            2
        )?,
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    Ok(())
}

#[test]
fn at_in_a_time_zone_with_dst() -> Result<()> {
    assert_eq!(
        next(
            "at(2026-11-22T02:00:00)",
            "Europe/Berlin",
            "2026-01-01T00:00:00Z",
            3
        )?,
        ["2026-11-22T01:00:00Z"]
    );
    // A repeated local time fires at its first occurrence; a skipped one never fires.
    assert_eq!(
        next(
            "at(2026-10-25T02:30:00)",
            "Europe/Berlin",
            "2026-01-01T00:00:00Z",
            3
        )?,
        ["2026-10-25T00:30:00Z"]
    );
    assert!(
        next(
            "at(2026-03-29T02:30:00)",
            "Europe/Berlin",
            "2026-01-01T00:00:00Z",
            3
        )?
        .is_empty()
    );
    assert!(
        next(
            "at(2026-11-22T02:00:00)",
            "Europe/Berlin",
            "2026-11-22T01:00:00Z",
            3
        )?
        .is_empty()
    );
    Ok(())
}

#[test]
fn rate_is_elapsed_time_across_dst() -> Result<()> {
    // rate(1 day) stays 24 h apart although Berlin's 2026-03-29 has 23 hours.
    let e = ScheduleExpression::parse("rate(1 day)")?;
    let start = t("2026-03-28T01:00:00Z");
    let v: Vec<_> = e
        .fire_times(
            start - TimeDelta::seconds(1),
            chrono_tz::Europe::Berlin,
            Some(start),
        )
        .take(3)
        .collect();
    assert_eq!(
        v,
        [start, t("2026-03-29T01:00:00Z"), t("2026-03-30T01:00:00Z")]
    );
    Ok(())
}

// Errors.

#[test]
fn every_error_message() {
    let cases = [
        (
            "cron(0 10 32 * ? *)",
            "cron field 3 (day-of-month) \"32\": value 32 out of range 1-31",
        ),
        ("cron(0 10 * * ?)", "cron expects 6 fields, got 5"),
        (
            "cron(0 10 * * * *)",
            "day-of-month and day-of-week cannot both be specified; use ? in one of them",
        ),
        (
            "cron(0 10 ? * ? *)",
            "day-of-month and day-of-week cannot both be ?; specify one of them",
        ),
        (
            "rate(5 minute)",
            "rate unit \"minute\" needs the plural for value 5",
        ),
        (
            "rate(1 minutes)",
            "rate unit \"minutes\" needs the singular for value 1",
        ),
        (
            "rate(0 minutes)",
            "rate value \"0\" must be a whole number of at least 1",
        ),
        (
            "rate(5 weeks)",
            "unknown rate unit \"weeks\"; expected minute(s), hour(s) or day(s)",
        ),
        (
            "rate(5)",
            "rate expects a value and a unit, as in rate(5 minutes), got \"5\"",
        ),
        (
            "foo(1)",
            "unknown expression \"foo(1)\"; expected cron(...), rate(...) or at(...)",
        ),
        (
            "cron(0 10 * * ? *",
            "expression \"cron(0 10 * * ? *\" is missing its closing \")\"",
        ),
        (
            "at(2026-11-22)",
            "at expects a valid date and time as yyyy-mm-ddThh:mm:ss, got \"2026-11-22\"",
        ),
        (
            "cron(0 10 ? * 0 *)",
            "cron field 5 (day-of-week) \"0\": value 0 out of range 1-7",
        ),
        (
            "cron(0 10 ? * MON-SUN/2 *)",
            "cron field 5 (day-of-week) \"MON-SUN/2\": / is not allowed in day-of-week",
        ),
        (
            "cron(0 10 ? * 3#1,6#3 *)",
            "cron field 5 (day-of-week) \"3#1\": # cannot be combined with other values in the same field",
        ),
        (
            "cron(0 10 1 * ? 1969)",
            "cron field 6 (year) \"1969\": value 1969 out of range 1970-2199",
        ),
        (
            "cron(0/0 10 1 * ? *)",
            "cron field 1 (minutes) \"0/0\": increment 0 out of range 1-60",
        ),
        (
            "cron(0 10W 1 * ? *)",
            "cron field 2 (hours) \"10W\": W is not allowed in hours",
        ),
        (
            "cron(0 10 1 MAR-XYZ ? *)",
            "cron field 4 (month) \"MAR-XYZ\": \"XYZ\" is not a month number 1-12 or a name JAN-DEC",
        ),
    ];
    for (expr, message) in cases {
        assert_eq!(error(expr), message, "{expr}");
    }
    assert_eq!(
        next_fire_times(
            "rate(5 minutes)",
            "Europe/Nowhere",
            t("2026-01-01T00:00:00Z"),
            1
        )
        .unwrap_err()
        .to_string(),
        "unknown time zone \"Europe/Nowhere\"; expected an IANA name such as Europe/Berlin or UTC"
    );
}

// Replay: a year in one go, counted exactly.

#[test]
fn replay_one_year_of_rate_and_daily_cron() -> Result<()> {
    let start = t("2026-01-01T00:00:00Z");
    let end = t("2027-01-01T00:00:00Z");
    let rate = ScheduleExpression::parse("rate(5 minutes)")?;
    let fires: Vec<_> = rate
        .fire_times(start - TimeDelta::seconds(1), Tz::UTC, Some(start))
        .take_while(|d| *d < end)
        .collect();
    assert_eq!(fires.len(), 105_120);
    assert_eq!(fires[0], start);
    assert_eq!(fires[fires.len() - 1], t("2026-12-31T23:55:00Z"));
    assert!(
        fires
            .windows(2)
            .all(|w| w[1] - w[0] == TimeDelta::minutes(5))
    );

    // 02:00 Berlin does not exist on 2026-03-29 (spring forward at 02:00), so a non-leap year
    // has 364 fires, all at 02:00 local on distinct days.
    let berlin = chrono_tz::Europe::Berlin;
    let daily = ScheduleExpression::parse("cron(0 2 * * ? *)")?;
    let local_year = |y: i32| -> Result<(DateTime<Utc>, DateTime<Utc>)> {
        let from = berlin
            .with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .single()
            .ok_or_else(|| anyhow::anyhow!("start"))?;
        let to = berlin
            .with_ymd_and_hms(y + 1, 1, 1, 0, 0, 0)
            .single()
            .ok_or_else(|| anyhow::anyhow!("end"))?;
        Ok((from.with_timezone(&Utc), to.with_timezone(&Utc)))
    };
    let (from, to) = local_year(2026)?;
    let days: Vec<_> = daily
        .fire_times(from, berlin, None)
        .take_while(|d| *d < to)
        .collect();
    assert_eq!(days.len(), 364);
    let local: Vec<_> = days.iter().map(|d| d.with_timezone(&berlin)).collect();
    assert!(
        local
            .iter()
            .all(|d| (d.hour(), d.minute(), d.second()) == (2, 0, 0))
    );
    let dates: std::collections::BTreeSet<NaiveDate> =
        local.iter().map(|d| d.date_naive()).collect();
    assert_eq!(dates.len(), 364);
    let skipped = NaiveDate::from_ymd_opt(2026, 3, 29).ok_or_else(|| anyhow::anyhow!("date"))?;
    assert!(!dates.contains(&skipped));
    // The 2026-10-25 fall-back day keeps its single 02:00 (CEST, 00:00Z).
    assert!(days.contains(&t("2026-10-25T00:00:00Z")));
    assert!(!days.contains(&t("2026-10-25T01:00:00Z")));

    // A leap year has 366 days and again one skipped: 365 fires. In UTC, every day fires.
    let (from, to) = local_year(2028)?;
    assert_eq!(
        daily
            .fire_times(from, berlin, None)
            .take_while(|d| *d < to)
            .count(),
        365
    );
    assert_eq!(
        daily
            .fire_times(start, Tz::UTC, None)
            .take_while(|d| *d < end)
            .count(),
        365
    );
    Ok(())
}

// Delivery helpers around a fire.

#[test]
fn schedule_definition_drives_scheduler_input() -> Result<()> {
    let mut schedule = Schedule::new(ScheduleExpression::parse("cron(0 2 * * ? *)")?);
    schedule.timezone = chrono_tz::Europe::Berlin;
    schedule.flexible_window = FlexibleWindow::flexible(15)?;
    schedule.retry_policy = RetryPolicy::new(3_600, 3)?;
    let created = t("2026-11-20T12:00:00Z");
    let scheduled = schedule
        .next_fire_after(t("2026-11-21T12:00:00Z"), created)
        .ok_or_else(|| anyhow::anyhow!("no fire"))?;
    assert_eq!(scheduled, t("2026-11-22T01:00:00Z"));

    let mut rng = fastrand::Rng::with_seed(42);
    let invoke_at = schedule
        .flexible_window
        .invocation_time(scheduled, &mut rng);
    assert!(invoke_at >= scheduled && invoke_at < scheduled + TimeDelta::minutes(15));

    let input = r#"{"scheduled_time":"<aws.scheduler.scheduled-time>","attempt":<aws.scheduler.attempt-number>}"#;
    let ctx = ContextAttributes {
        schedule_arn: "arn:aws:scheduler:eu-central-1:123456789012:schedule/default/daily-report",
        scheduled_time: scheduled,
        execution_id: "d32c5kddcf5bb8c3",
        attempt_number: 1,
    };
    let payload: serde_json::Value = serde_json::from_str(&substitute_context(input, &ctx))?;
    assert_eq!(
        payload,
        serde_json::json!({"scheduled_time": "2026-11-22T01:00:00Z", "attempt": 1})
    );

    // Three retries at +1 s, +3 s, +7 s after the first attempt, then the DLQ (each failed
    // attempt taking no time: backoff runs from the failure).
    let mut failed_at = invoke_at;
    let retries: Vec<_> = (1..=5)
        .map_while(|a| {
            let next = schedule.retry_policy.next_retry(a, invoke_at, failed_at)?;
            failed_at = next;
            Some(next)
        })
        .collect();
    assert_eq!(
        retries,
        [
            invoke_at + TimeDelta::seconds(1),
            invoke_at + TimeDelta::seconds(3),
            invoke_at + TimeDelta::seconds(7)
        ]
    );
    Ok(())
}

#[test]
fn legacy_rule_envelope_round_trips_through_aws_lambda_events() -> Result<()> {
    let id = uuid::Uuid::from_u128(0x53dc4d37_cffa_4f76_80c9_8b7d4a4d2eaa);
    let json = scheduled_event_json(
        "us-east-1",
        "123456789012",
        "daily-report",
        id,
        t("2026-11-22T02:00:00Z"),
    );
    assert_eq!(
        json,
        r#"{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-22T02:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/daily-report"],"detail":{}}"#
    );
    let parsed: aws_lambda_events::eventbridge::EventBridgeEvent = serde_json::from_str(&json)?;
    assert_eq!(parsed.detail_type, "Scheduled Event");
    assert_eq!(parsed.time, Some(t("2026-11-22T02:00:00Z")));
    Ok(())
}
