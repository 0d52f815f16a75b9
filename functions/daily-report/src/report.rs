//! The report itself, pure: aggregate a day's outcomes, render CSV and HTML with an inline SVG
//! bar chart. No I/O, no clock: the same outcomes always give the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::NaiveDate;
use nightshift::contracts::{JobOutcome, OutcomeStatus};
use serde::{Deserialize, Serialize};

/// How many distinct errors the report lists.
pub const TOP_ERRORS: usize = 5;

/// Counts for one job kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// Succeeded jobs.
    pub succeeded: u64,
    /// Failed jobs.
    pub failed: u64,
}

/// An error message and how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The error text.
    pub error: String,
    /// Occurrences.
    pub count: u64,
}

/// Messages waiting in one queue when the report was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCount {
    /// The queue's name.
    pub queue: String,
    /// Visible, in flight and delayed messages.
    pub messages: u64,
}

/// One day's aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReport {
    /// The day, in the report's time zone.
    pub date: NaiveDate,
    /// The IANA zone the day is taken in.
    pub time_zone: String,
    /// All jobs of the day.
    pub total: u64,
    /// Succeeded jobs.
    pub succeeded: u64,
    /// Failed jobs.
    pub failed: u64,
    /// Counts by kind.
    pub by_kind: BTreeMap<String, KindCounts>,
    /// Median end-to-end latency (nearest rank), 0 without jobs.
    pub p50_ms: u64,
    /// 95th percentile latency (nearest rank), 0 without jobs.
    pub p95_ms: u64,
    /// The most frequent errors, most frequent first (ties by text).
    pub top_errors: Vec<ErrorCount>,
    /// The watched dead-letter queues and what waits in each when the report is made (not a
    /// figure of the day: records SQS dead-lettered with no job outcome are only seen here).
    /// [`aggregate`] leaves it empty; the handler fills it.
    #[serde(default)]
    pub dead_letters: Vec<QueueCount>,
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `q` of the data
/// at or below it.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Aggregates the outcomes of one day.
pub fn aggregate(date: NaiveDate, time_zone: &str, outcomes: &[JobOutcome]) -> DailyReport {
    let mut by_kind: BTreeMap<String, KindCounts> = BTreeMap::new();
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let counts = by_kind.entry(o.kind.clone()).or_default();
        match o.status {
            OutcomeStatus::Succeeded => counts.succeeded += 1,
            OutcomeStatus::Failed => {
                counts.failed += 1;
                *errors
                    .entry(o.error.as_deref().unwrap_or("unknown error"))
                    .or_default() += 1;
            }
        }
        latencies.push(o.latency_ms);
    }
    latencies.sort_unstable();
    let mut top: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(error, count)| ErrorCount {
            error: error.to_string(),
            count,
        })
        .collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.error.cmp(&b.error)));
    top.truncate(TOP_ERRORS);
    let succeeded = by_kind.values().map(|c| c.succeeded).sum();
    let failed = by_kind.values().map(|c| c.failed).sum();
    DailyReport {
        date,
        time_zone: time_zone.to_string(),
        total: outcomes.len() as u64,
        succeeded,
        failed,
        by_kind,
        p50_ms: percentile(&latencies, 0.50),
        p95_ms: percentile(&latencies, 0.95),
        top_errors: top,
        dead_letters: Vec::new(),
    }
}

/// First characters that make a spreadsheet read a cell as a formula (CSV or formula
/// injection): an error text like `=HYPERLINK(...)` would run when ops open the report.
/// <https://owasp.org/www-community/attacks/CSV_Injection>
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV cell: quoted (RFC 4180) when it holds a separator, a quote or a line break, and,
/// as OWASP advises, a cell starting with a formula trigger gets a leading `'` inside the
/// quotes, so spreadsheets show it as text.
fn csv_field(s: &str) -> String {
    let formula = s.starts_with(FORMULA_TRIGGERS);
    if formula || s.contains([',', ';', '"', '\n', '\r', '\t']) {
        let guard = if formula { "'" } else { "" };
        format!("\"{guard}{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The report as CSV: one `section,key,value` row per figure, so a spreadsheet or a script
/// reads it without guessing.
pub fn to_csv(r: &DailyReport) -> String {
    let mut out = String::from("section,key,value\n");
    let mut row = |section: &str, key: &str, value: String| {
        let _ = writeln!(
            out,
            "{},{},{}",
            csv_field(section),
            csv_field(key),
            csv_field(&value)
        );
    };
    row("summary", "date", r.date.to_string());
    row("summary", "time_zone", r.time_zone.clone());
    row("summary", "total", r.total.to_string());
    row("summary", "succeeded", r.succeeded.to_string());
    row("summary", "failed", r.failed.to_string());
    row("latency", "p50_ms", r.p50_ms.to_string());
    row("latency", "p95_ms", r.p95_ms.to_string());
    for (kind, c) in &r.by_kind {
        row("kind_succeeded", kind, c.succeeded.to_string());
        row("kind_failed", kind, c.failed.to_string());
    }
    for e in &r.top_errors {
        row("error", &e.error, e.count.to_string());
    }
    for q in &r.dead_letters {
        row("dead_letters_now", &q.queue, q.messages.to_string());
    }
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal stacked bar chart of succeeded/failed jobs per kind, as inline SVG.
pub fn bar_chart_svg(r: &DailyReport) -> String {
    const ROW: u64 = 28;
    const LABEL: u64 = 160;
    const BAR: u64 = 400;
    let max = r
        .by_kind
        .values()
        .map(|c| c.succeeded + c.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * r.by_kind.len().max(1) as u64 + 10;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" role="img" aria-label="jobs by kind">"#,
        w = LABEL + BAR + 80
    );
    if r.by_kind.is_empty() {
        let _ = write!(svg, r#"<text x="0" y="20">no jobs</text>"#);
    }
    for (i, (kind, c)) in r.by_kind.iter().enumerate() {
        let y = i as u64 * ROW + 5;
        let ok = BAR * c.succeeded / max;
        let bad = BAR * c.failed / max;
        let _ = write!(
            svg,
            r##"<text x="0" y="{ty}" font-size="13">{label}</text><rect x="{LABEL}" y="{y}" width="{ok}" height="20" fill="#2e7d32"><title>{s} succeeded</title></rect><rect x="{fx}" y="{y}" width="{bad}" height="20" fill="#c62828"><title>{f} failed</title></rect><text x="{tx}" y="{ty}" font-size="12">{total}</text>"##,
            ty = y + 15,
            label = escape_html(kind),
            fx = LABEL + ok,
            tx = LABEL + ok + bad + 6,
            s = c.succeeded,
            f = c.failed,
            total = c.succeeded + c.failed,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as a standalone HTML page with the chart inline.
pub fn to_html(r: &DailyReport) -> String {
    let mut kinds = String::new();
    for (kind, c) in &r.by_kind {
        let _ = write!(
            kinds,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_html(kind),
            c.succeeded,
            c.failed
        );
    }
    let mut dead_letters = String::new();
    for q in &r.dead_letters {
        let _ = write!(
            dead_letters,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape_html(&q.queue),
            q.messages
        );
    }
    let dead_letters = if dead_letters.is_empty() {
        String::new()
    } else {
        format!(
            "<h2>Waiting in dead-letter queues now</h2>\n<table><tr><th>queue</th><th>messages</th></tr>{dead_letters}</table>\n"
        )
    };
    let mut errors = String::new();
    for e in &r.top_errors {
        let _ = write!(
            errors,
            "<tr><td>{}</td><td>{}</td></tr>",
            e.count,
            escape_html(&e.error)
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nightshift report {date}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body>
<h1>Daily report {date}</h1>
<p>Time zone {tz}. {total} jobs: {ok} succeeded, {failed} failed. Latency p50 {p50} ms, p95 {p95} ms.</p>
<h2>Jobs by kind</h2>
{chart}
<table><tr><th>kind</th><th>succeeded</th><th>failed</th></tr>{kinds}</table>
<h2>Top errors</h2>
<table><tr><th>count</th><th>error</th></tr>{errors}</table>
{dead_letters}</body></html>
"#,
        date = r.date,
        tz = escape_html(&r.time_zone),
        total = r.total,
        ok = r.succeeded,
        failed = r.failed,
        p50 = r.p50_ms,
        p95 = r.p95_ms,
        chart = bar_chart_svg(r),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        for (cell, expected) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ),
            ("+1", "\"'+1\""),
            ("-2+3", "\"'-2+3\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\tcmd", "\"'\tcmd\""),
            ("\rcmd", "\"'\rcmd\""),
            ("a=b", "a=b"),
            ("a,b", "\"a,b\""),
            ("a;b", "\"a;b\""),
            ("plain", "plain"),
            ("", ""),
        ] {
            assert_eq!(csv_field(cell), expected, "{cell:?}");
        }
        let mut r = aggregate(
            NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            "UTC",
            &[outcome(1, "order.placed", 5, Some("=1+1"))],
        );
        r.by_kind.clear();
        assert!(
            to_csv(&r).contains("\nerror,\"'=1+1\",1\n"),
            "{}",
            to_csv(&r)
        );
    }

    fn outcome(id: usize, kind: &str, latency: u64, error: Option<&str>) -> JobOutcome {
        JobOutcome {
            v: 1,
            job_id: format!("j{id}"),
            kind: kind.into(),
            status: if error.is_some() {
                OutcomeStatus::Failed
            } else {
                OutcomeStatus::Succeeded
            },
            submitted_at: "2026-11-21T10:00:00Z".parse().unwrap(),
            finished_at: "2026-11-21T10:00:01Z".parse().unwrap(),
            latency_ms: latency,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.95), 95);
        assert_eq!(percentile(&[7], 0.95), 7);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
    }

    #[test]
    fn aggregates_a_known_day() {
        // 20 jobs: latencies 10..=200 step 10; 3 failures with two distinct errors.
        let mut outcomes = Vec::new();
        for i in 0..20 {
            let kind = if i % 4 == 0 {
                "user.signup"
            } else {
                "order.placed"
            };
            let error = match i {
                3 | 7 => Some("invalid payload: `items` must not be empty"),
                11 => Some("unknown job kind"),
                _ => None,
            };
            outcomes.push(outcome(i, kind, (i as u64 + 1) * 10, error));
        }
        let r = aggregate("2026-11-21".parse().unwrap(), "Europe/Berlin", &outcomes);
        assert_eq!((r.total, r.succeeded, r.failed), (20, 17, 3));
        assert_eq!(
            r.by_kind["user.signup"],
            KindCounts {
                succeeded: 5,
                failed: 0
            }
        );
        assert_eq!(
            r.by_kind["order.placed"],
            KindCounts {
                succeeded: 12,
                failed: 3
            }
        );
        assert_eq!((r.p50_ms, r.p95_ms), (100, 190));
        assert_eq!(
            r.top_errors[0],
            ErrorCount {
                error: "invalid payload: `items` must not be empty".into(),
                count: 2
            }
        );
        assert_eq!(r.top_errors[1].count, 1);
        let csv = to_csv(&r);
        assert!(csv.contains("summary,total,20\n"));
        assert!(csv.contains("latency,p95_ms,190\n"));
        assert!(csv.contains("kind_failed,order.placed,3\n"));
        assert!(csv.contains("error,invalid payload: `items` must not be empty,2\n"));
        let html = to_html(&r);
        assert!(html.contains("<svg") && html.contains("</svg>"));
        assert_eq!(html.matches("<rect").count(), 4);
    }

    #[test]
    fn escapes_untrusted_text() {
        let r = aggregate(
            "2026-11-21".parse().unwrap(),
            "UTC",
            &[outcome(1, "x", 1, Some("<script>,\"q\""))],
        );
        assert!(to_html(&r).contains("&lt;script&gt;"));
        assert!(to_csv(&r).contains("error,\"<script>,\"\"q\"\"\",1"));
    }

    #[test]
    fn empty_day() {
        let r = aggregate("2026-11-21".parse().unwrap(), "UTC", &[]);
        assert_eq!((r.total, r.p50_ms, r.p95_ms), (0, 0, 0));
        assert!(to_html(&r).contains("no jobs"));
    }
}
