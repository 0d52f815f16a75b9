//! Tests of the cron parser and evaluator: field syntax, AWS's rules, time zones and DST.

use super::*;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
}

fn cron(body: &str) -> CronExpression {
    CronExpression::parse(body).unwrap()
}

fn err(body: &str) -> String {
    CronExpression::parse(body).unwrap_err().to_string()
}

fn matches_in(body: &str, from: NaiveDateTime, n: usize) -> Vec<NaiveDateTime> {
    let c = cron(body);
    let mut out = Vec::new();
    let mut t = from;
    for _ in 0..n {
        match c.next_match(t) {
            Some(m) => {
                out.push(m);
                t = m + chrono::TimeDelta::minutes(1);
            }
            None => break,
        }
    }
    out
}

#[test]
fn bits_next_from_crosses_words() {
    let mut b = Bits::default();
    b.insert(3);
    b.insert(130);
    assert_eq!(b.next_from(0), Some(3));
    assert_eq!(b.next_from(4), Some(130));
    assert_eq!(b.next_from(131), None);
    assert_eq!(b.next_from(300), None);
}

#[test]
fn steps_and_ranges() {
    let c = cron("5/15 20-2 * * ? *");
    let minutes: Vec<u32> = (0..60).filter(|m| c.minutes.contains(*m)).collect();
    assert_eq!(minutes, [5, 20, 35, 50]);
    let hours: Vec<u32> = (0..24).filter(|h| c.hours.contains(*h)).collect();
    assert_eq!(hours, [0, 1, 2, 20, 21, 22, 23]);
    let c = cron("*/10 0-23/6 * * ? *");
    let minutes: Vec<u32> = (0..60).filter(|m| c.minutes.contains(*m)).collect();
    assert_eq!(minutes, [0, 10, 20, 30, 40, 50]);
    let hours: Vec<u32> = (0..24).filter(|h| c.hours.contains(*h)).collect();
    assert_eq!(hours, [0, 6, 12, 18]);
    let c = cron("0 20-2/2 * * ? *");
    let hours: Vec<u32> = (0..24).filter(|h| c.hours.contains(*h)).collect();
    assert_eq!(hours, [0, 2, 20, 22]);
}

#[test]
fn names_are_case_insensitive_and_canonicalised() {
    let c = cron("0 9 ? jan-mar mon,Fri 2026");
    assert_eq!(c.to_string(), "cron(0 9 ? JAN-MAR MON,FRI 2026)");
    let months: Vec<u32> = (1..=12).filter(|m| c.months.contains(*m)).collect();
    assert_eq!(months, [1, 2, 3]);
    assert_eq!(c.days, DaySpec::Week(WeekDays::Set((1 << 2) | (1 << 6))));
}

#[test]
fn day_of_week_is_one_based_from_sunday() {
    // 2026-03-01 is a Sunday.
    let got = matches_in("0 0 ? * 1 *", at(2026, 3, 1, 0, 0), 2);
    assert_eq!(got, [at(2026, 3, 1, 0, 0), at(2026, 3, 8, 0, 0)]);
    let got = matches_in("0 0 ? * 7 *", at(2026, 3, 1, 0, 0), 1);
    assert_eq!(got, [at(2026, 3, 7, 0, 0)]);
    let got = matches_in("0 0 ? * SAT *", at(2026, 3, 1, 0, 0), 1);
    assert_eq!(got, [at(2026, 3, 7, 0, 0)]);
}

#[test]
fn last_day_and_last_weekday() {
    let got = matches_in("0 0 L * ? *", at(2026, 1, 1, 0, 0), 3);
    assert_eq!(
        got,
        [
            at(2026, 1, 31, 0, 0),
            at(2026, 2, 28, 0, 0),
            at(2026, 3, 31, 0, 0)
        ]
    );
    // 2026-01-31 is a Saturday, 2026-05-31 a Sunday.
    let got = matches_in("0 0 LW * ? *", at(2026, 1, 1, 0, 0), 5);
    assert_eq!(
        got,
        [
            at(2026, 1, 30, 0, 0),
            at(2026, 2, 27, 0, 0),
            at(2026, 3, 31, 0, 0),
            at(2026, 4, 30, 0, 0),
            at(2026, 5, 29, 0, 0),
        ]
    );
}

#[test]
fn nearest_weekday_stays_in_the_month() {
    // 2026-08-01 is a Saturday: 1W is Monday the 3rd, not Friday July 31st.
    assert_eq!(
        matches_in("0 0 1W 8 ? *", at(2026, 1, 1, 0, 0), 1),
        [at(2026, 8, 3, 0, 0)]
    );
    // 2026-11-15 is a Sunday: 15W is Monday the 16th; 2026-08-15 a Saturday: Friday 14th.
    assert_eq!(
        matches_in("0 0 15W 11 ? *", at(2026, 1, 1, 0, 0), 1),
        [at(2026, 11, 16, 0, 0)]
    );
    assert_eq!(
        matches_in("0 0 15W 8 ? *", at(2026, 1, 1, 0, 0), 1),
        [at(2026, 8, 14, 0, 0)]
    );
    // 2026-05-31 is a Sunday and the last day: 31W is Friday the 29th.
    assert_eq!(
        matches_in("0 0 31W 5 ? *", at(2026, 1, 1, 0, 0), 1),
        [at(2026, 5, 29, 0, 0)]
    );
    // 31W in a 30-day month matches nothing that month.
    assert_eq!(
        matches_in("0 0 31W 4,5 ? *", at(2026, 1, 1, 0, 0), 1),
        [at(2026, 5, 29, 0, 0)]
    );
    // A weekday stays put: 2026-03-03 is a Tuesday.
    assert_eq!(
        matches_in("0 0 3W 3 ? *", at(2026, 1, 1, 0, 0), 1),
        [at(2026, 3, 3, 0, 0)]
    );
}

#[test]
fn last_and_nth_weekday() {
    // Last Friday of 2026 months: Jan 30, Feb 27, Mar 27.
    let got = matches_in("15 10 ? * 6L *", at(2026, 1, 1, 0, 0), 3);
    assert_eq!(
        got,
        [
            at(2026, 1, 30, 10, 15),
            at(2026, 2, 27, 10, 15),
            at(2026, 3, 27, 10, 15)
        ]
    );
    // L alone in day-of-week is Saturday, the last day of the week.
    let got = matches_in("0 0 ? * L *", at(2026, 3, 1, 0, 0), 2);
    assert_eq!(got, [at(2026, 3, 7, 0, 0), at(2026, 3, 14, 0, 0)]);
    // Second Tuesday: 2026-03-10; fifth Monday only in months that have one.
    assert_eq!(
        matches_in("0 0 ? * 3#2 *", at(2026, 3, 1, 0, 0), 1),
        [at(2026, 3, 10, 0, 0)]
    );
    assert_eq!(
        matches_in("0 0 ? * MON#5 *", at(2026, 1, 1, 0, 0), 2),
        [at(2026, 3, 30, 0, 0), at(2026, 6, 29, 0, 0)]
    );
}

#[test]
fn lower_case_wildcards_and_names() {
    let from = at(2026, 1, 1, 0, 0);
    assert_eq!(
        matches_in("0 0 l * ? *", from, 1),
        matches_in("0 0 L * ? *", from, 1)
    );
    assert_eq!(
        matches_in("0 0 lw * ? *", from, 1),
        matches_in("0 0 LW * ? *", from, 1)
    );
    assert_eq!(
        matches_in("0 0 15w * ? *", from, 1),
        matches_in("0 0 15W * ? *", from, 1)
    );
    assert_eq!(
        matches_in("0 0 ? * fril *", from, 1),
        matches_in("0 0 ? * 6L *", from, 1)
    );
    assert_eq!(
        matches_in("0 0 ? * mon#1 *", from, 1),
        matches_in("0 0 ? * 2#1 *", from, 1)
    );
    assert_eq!(cron("0 0 lw * ? *").to_string(), "cron(0 0 LW * ? *)");
}

#[test]
fn impossible_dates_and_year_exhaustion() {
    assert_eq!(cron("0 0 30 2 ? *").next_match(at(2026, 1, 1, 0, 0)), None);
    assert_eq!(
        cron("0 0 1 1 ? 2020").next_match(at(2020, 1, 1, 0, 1)),
        None
    );
    assert_eq!(
        cron("0 0 31 12 ? *").next_match(at(2199, 12, 31, 0, 1)),
        None
    );
    assert_eq!(
        cron("0 0 31 12 ? *").next_match(at(2199, 12, 30, 0, 0)),
        Some(at(2199, 12, 31, 0, 0))
    );
    assert_eq!(
        cron("0 0 1 1 ? *").next_match(at(1900, 6, 1, 0, 0)),
        Some(at(1970, 1, 1, 0, 0))
    );
}

#[test]
fn next_match_rounds_seconds_up() {
    let from = at(2026, 1, 1, 10, 0) + chrono::TimeDelta::seconds(30);
    assert_eq!(
        cron("* * * * ? *").next_match(from),
        Some(at(2026, 1, 1, 10, 1))
    );
    assert!(cron("0 10 * * ? *").matches(at(2026, 1, 1, 10, 0)));
    assert!(!cron("0 10 * * ? *").matches(at(2026, 1, 1, 10, 1)));
}

#[test]
fn field_errors_name_field_and_item() {
    assert_eq!(
        err("0 10 32 * ? *"),
        "cron field 3 (day-of-month) \"32\": value 32 out of range 1-31"
    );
    assert_eq!(
        err("60 * * * ? *"),
        "cron field 1 (minutes) \"60\": value 60 out of range 0-59"
    );
    assert_eq!(
        err("0 1,24 * * ? *"),
        "cron field 2 (hours) \"24\": value 24 out of range 0-23"
    );
    assert_eq!(
        err("0 0 1 13 ? *"),
        "cron field 4 (month) \"13\": value 13 out of range 1-12"
    );
    assert_eq!(
        err("0 0 ? * 0 *"),
        "cron field 5 (day-of-week) \"0\": value 0 out of range 1-7"
    );
    assert_eq!(
        err("0 0 ? * 8 *"),
        "cron field 5 (day-of-week) \"8\": value 8 out of range 1-7"
    );
    assert_eq!(
        err("0 0 1 * ? 2200"),
        "cron field 6 (year) \"2200\": value 2200 out of range 1970-2199"
    );
    assert_eq!(
        err("0 0 1 * ? 2030-2020"),
        "cron field 6 (year) \"2030-2020\": range 2030-2020 runs backwards"
    );
    assert_eq!(
        err("0 0 1 FOO ? *"),
        "cron field 4 (month) \"FOO\": \"FOO\" is not a month number 1-12 or a name JAN-DEC"
    );
    assert_eq!(
        err("0 0 ? * FUN *"),
        "cron field 5 (day-of-week) \"FUN\": \"FUN\" is not a day number 1-7 (1 = SUN) or a name SUN-SAT"
    );
    assert_eq!(
        err("x 0 1 * ? *"),
        "cron field 1 (minutes) \"x\": \"x\" is not a number"
    );
    assert_eq!(
        err("0 0 1 jux ? *"),
        "cron field 4 (month) \"jux\": \"jux\" is not a month number 1-12 or a name JAN-DEC"
    );
    assert_eq!(
        err("0 1,,2 1 * ? *"),
        "cron field 2 (hours) \"\": empty value"
    );
    assert_eq!(
        err("0/0 * * * ? *"),
        "cron field 1 (minutes) \"0/0\": increment 0 out of range 1-60"
    );
    assert_eq!(
        err("0/61 * * * ? *"),
        "cron field 1 (minutes) \"0/61\": increment 61 out of range 1-60"
    );
    assert_eq!(
        err("0/x * * * ? *"),
        "cron field 1 (minutes) \"0/x\": \"x\" is not an increment"
    );
    assert_eq!(
        err("0 0 ? * 2/2 *"),
        "cron field 5 (day-of-week) \"2/2\": / is not allowed in day-of-week"
    );
    assert_eq!(
        err("0 ? 1 * ? *"),
        "cron field 2 (hours) \"?\": ? is not allowed in hours"
    );
    assert_eq!(
        err("0 0 1 L ? *"),
        "cron field 4 (month) \"L\": L is not allowed in month"
    );
    assert_eq!(
        err("0 0 ? * 2W *"),
        "cron field 5 (day-of-week) \"2W\": W is not allowed in day-of-week"
    );
    assert_eq!(
        err("0 0 1#2 * ? *"),
        "cron field 3 (day-of-month) \"1#2\": # is not allowed in day-of-month"
    );
    assert_eq!(
        err("0 0 ? * 3#6 *"),
        "cron field 5 (day-of-week) \"3#6\": occurrence 6 out of range 1-5"
    );
    assert_eq!(
        err("0 0 ? * 3#0 *"),
        "cron field 5 (day-of-week) \"3#0\": occurrence 0 out of range 1-5"
    );
    assert_eq!(
        err("0 0 ? * 8#1 *"),
        "cron field 5 (day-of-week) \"8#1\": value 8 out of range 1-7"
    );
    assert_eq!(
        err("0 0 ? * 3#1,6#3 *"),
        "cron field 5 (day-of-week) \"3#1\": # cannot be combined with other values in the same field"
    );
    assert_eq!(
        err("0 0 L,15 * ? *"),
        "cron field 3 (day-of-month) \"L\": L cannot be combined with other values in the same field"
    );
    assert_eq!(
        err("0 0 1,15W * ? *"),
        "cron field 3 (day-of-month) \"15W\": W cannot be combined with other values in the same field"
    );
    assert_eq!(
        err("0 0 ?,1 * * *"),
        "cron field 3 (day-of-month) \"?\": ? cannot be combined with other values in the same field"
    );
    assert_eq!(
        err("0 0 32W * ? *"),
        "cron field 3 (day-of-month) \"32W\": value 32 out of range 1-31"
    );
    assert_eq!(
        err("0 0 W * ? *"),
        "cron field 3 (day-of-month) \"W\": W needs a day before it, as in 15W"
    );
    assert_eq!(
        err("0 0 L-2 * ? *"),
        "cron field 3 (day-of-month) \"L-2\": L in day-of-month must stand alone (L) or be LW"
    );
    assert_eq!(
        err("0 0 ? * 9L *"),
        "cron field 5 (day-of-week) \"9L\": value 9 out of range 1-7"
    );
    assert_eq!(
        err("99999999999999999999 0 1 * ? *"),
        "cron field 1 (minutes) \"99999999999999999999\": value 99999999999999999999 out of range 0-59"
    );
}

#[test]
fn day_pairing_rules() {
    assert_eq!(
        err("0 10 * * * *"),
        "day-of-month and day-of-week cannot both be specified; use ? in one of them"
    );
    assert_eq!(
        err("0 10 1 * MON *"),
        "day-of-month and day-of-week cannot both be specified; use ? in one of them"
    );
    assert_eq!(
        err("0 10 ? * ? *"),
        "day-of-month and day-of-week cannot both be ?; specify one of them"
    );
    assert_eq!(err("0 10 * * ?"), "cron expects 6 fields, got 5");
    assert_eq!(err("0 10 * * ? * *"), "cron expects 6 fields, got 7");
}

#[test]
fn days_in_month_handles_leap_years() {
    assert_eq!(days_in_month(2024, 2), 29);
    assert_eq!(days_in_month(2026, 2), 28);
    assert_eq!(days_in_month(2100, 2), 28);
    assert_eq!(days_in_month(2000, 2), 29);
    assert_eq!(days_in_month(2026, 12), 31);
    assert_eq!(days_in_month(2026, 4), 30);
}
