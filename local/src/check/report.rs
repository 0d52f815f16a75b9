//! The result of a check run ([`CheckReport`]) and how it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::verdict::Verdict;

/// The result of a check run.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The verdict on the artifacts.
    pub verdict: Verdict,
    /// Faults injected, by name, as logged (plus `sigkill`).
    pub injected: BTreeMap<String, u64>,
    /// Redeliveries the functions' idempotency records turned away, as logged: jobs that
    /// were done already, and emails sent already (duplicate requests included).
    pub skipped_jobs: u64,
    /// See [`CheckReport::skipped_jobs`].
    pub skipped_emails: u64,
    /// The fault plan, as one line.
    pub faults: String,
    /// Emulator restarts after SIGKILL.
    pub restarts: u32,
    /// Virtual time the run took on the manual clock.
    pub virtual_elapsed: Duration,
    /// Real time the run took.
    pub real_elapsed: Duration,
    /// Where the run's files are (removed after a passing run unless kept).
    pub dir: PathBuf,
    /// Whether `dir` still exists.
    pub kept: bool,
}

impl CheckReport {
    /// True when nothing was lost or duplicated and nothing else is wrong.
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        self.verdict.summary()
    }

    /// Everything but the summary line: counts, faults, time, problems.
    pub fn details(&self) -> String {
        let v = &self.verdict;
        let injected: Vec<String> = self
            .injected
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let mut out = format!(
            "jobs: {} valid, {} malformed; processed {}, exhausted {}, dead-lettered {}\n\
             emails: {} expected, {} sent, {} dead-lettered; {} extra DLQ copies\n\
             fifo: {} inventory adjustments, {} applied once each in sequence, {} dead-lettered\n\
             faults: {}\ninjected: {}\nidempotency: {} redelivered jobs and {} emails skipped as done\n\
             emulator restarts: {}; virtual time {}s; real time {:.1}s\n",
            v.valid,
            v.malformed,
            v.processed,
            v.exhausted,
            v.dead_lettered,
            v.emails_expected,
            v.emails_sent,
            v.emails_dead_lettered,
            v.dlq_copies,
            v.adjustments,
            v.adjustments_applied,
            v.adjustments_dead_lettered,
            self.faults,
            if injected.is_empty() {
                "none".to_string()
            } else {
                injected.join(" ")
            },
            self.skipped_jobs,
            self.skipped_emails,
            self.restarts,
            self.virtual_elapsed.as_secs(),
            self.real_elapsed.as_secs_f64(),
        );
        const SHOWN: usize = 20;
        for p in v.problems.iter().take(SHOWN) {
            let _ = writeln!(out, "problem: {p}");
        }
        if v.problems.len() > SHOWN {
            let _ = writeln!(out, "... and {} more problems", v.problems.len() - SHOWN);
        }
        if self.kept {
            let _ = writeln!(out, "run files: {}", self.dir.display());
        }
        out
    }
}
