//! The result table: one [`Row`] per measurement against its budget, the distributions and
//! units it prints, and the table itself.

use std::time::Duration;

use crate::NOTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Within,
    Over,
    /// Context for another row; no budget of its own.
    Info,
}

/// One line of the result table.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) area: &'static str,
    pub(super) what: String,
    pub(super) budget: String,
    pub(super) measured: String,
    pub(super) verdict: Verdict,
}

impl Row {
    pub(super) fn new(
        area: &'static str,
        what: impl Into<String>,
        budget: impl Into<String>,
        measured: impl Into<String>,
        within: bool,
    ) -> Self {
        Row {
            area,
            what: what.into(),
            budget: budget.into(),
            measured: measured.into(),
            verdict: if within {
                Verdict::Within
            } else {
                Verdict::Over
            },
        }
    }

    pub(super) fn info(
        area: &'static str,
        what: impl Into<String>,
        measured: impl Into<String>,
    ) -> Self {
        Row {
            area,
            what: what.into(),
            budget: "-".into(),
            measured: measured.into(),
            verdict: Verdict::Info,
        }
    }
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dist {
    pub(super) samples: usize,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    pub(super) max: Duration,
}

impl Dist {
    /// Nearest-rank percentiles, as `measure` computes them.
    pub(super) fn of(mut samples: Vec<Duration>) -> Dist {
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
            samples.get(index).copied().unwrap_or_default()
        };
        Dist {
            samples: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    pub(super) fn summary(&self) -> String {
        format!(
            "p50 {} / p99 {} / max {} (n={})",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.samples
        )
    }
}

pub(super) fn ms(d: Duration) -> String {
    let millis = d.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.3} ms")
    } else {
        format!("{millis:.1} ms")
    }
}

pub(super) fn per_second(n: f64) -> String {
    // Thousands separated for readability: 123456 -> 123,456.
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn print_table(rows: &[Row], elapsed: Duration) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    // Other work on the machine moves every number here; the load says how much there was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .map(|one| format!(", load average {one} at the end"))
        .unwrap_or_default();
    println!();
    println!(
        "nightshift-bench: {cores} cores ({cpu}), {} {}, {:.0} s{load}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        elapsed.as_secs_f64()
    );
    println!();
    let headers = ["area", "measurement", "budget", "measured", "verdict"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.area.to_owned(),
                r.what.clone(),
                r.budget.clone(),
                r.measured.clone(),
                match r.verdict {
                    Verdict::Within => "ok".to_owned(),
                    Verdict::Over => "OVER".to_owned(),
                    Verdict::Info => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&headers.map(str::to_owned));
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in &cells {
        line(row);
    }
    let over = rows.iter().filter(|r| r.verdict == Verdict::Over).count();
    println!();
    for note in NOTES {
        println!("- {note}");
    }
    println!();
    if over == 0 {
        println!("every measured budget is met");
    } else {
        println!("{over} measurement(s) over budget");
    }
}
