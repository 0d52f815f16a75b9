//! Replaying a trace: [`replay()`] sends each event to its function, one at a time, and
//! reports what differs from the recording ([`ReplayReport`]).

use serde_json::Value;

use super::diff::{Difference, diff};
use super::format::{NormalizeOptions, TraceEntry};
use super::normalize::Normalizer;
use crate::clock::SharedClock;
use crate::harness::describe;
use crate::invoker::{InvokeRequest, Invoker};

/// How [`replay`] runs.
#[derive(Clone, Default)]
pub struct ReplayOptions {
    /// Compare each response with the recorded one.
    pub check: bool,
    /// Replay only this function's events.
    pub function: Option<String>,
    /// The normalisation applied to responses (the trace header's time mode).
    pub normalize: NormalizeOptions,
    /// A manual clock moved to each entry's `at` before it is sent (never backwards), so that
    /// functions reading the emulator's clock see the recorded time.
    pub clock: Option<SharedClock>,
    /// Counts the events replayed, out of those to replay (`nightshift replay`'s bar).
    pub progress: Option<std::sync::Arc<crate::progress::Progress>>,
}

/// How one replayed response compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Same outcome and response as recorded.
    Matched,
    /// Something differs.
    Differed,
    /// Not compared: nothing was recorded, or no check was asked for.
    Unchecked,
}

/// One replayed invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayResult {
    /// The entry's `seq`.
    pub seq: u64,
    /// The line it came from, if read from a file.
    pub line: Option<usize>,
    /// The function.
    pub function: String,
    /// How the replayed invocation ended.
    pub outcome: String,
    /// Its normalised response.
    pub response: Value,
    /// The verdict.
    pub verdict: Verdict,
    /// What differs (empty unless [`Verdict::Differed`]).
    pub differences: Vec<Difference>,
}

impl ReplayResult {
    fn location(&self) -> String {
        match self.line {
            Some(line) => format!("line {line} (seq {})", self.seq),
            None => format!("seq {}", self.seq),
        }
    }
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayReport {
    /// One result per replayed entry, in order.
    pub results: Vec<ReplayResult>,
    /// Entries left out by [`ReplayOptions::function`].
    pub skipped: usize,
}

impl ReplayReport {
    /// Entries replayed.
    pub fn replayed(&self) -> usize {
        self.results.len()
    }

    fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }

    /// Responses equal to the recorded ones.
    pub fn matched(&self) -> usize {
        self.count(Verdict::Matched)
    }

    /// Responses that differ.
    pub fn differed(&self) -> usize {
        self.count(Verdict::Differed)
    }

    /// Responses not compared.
    pub fn unchecked(&self) -> usize {
        self.count(Verdict::Unchecked)
    }

    /// True when nothing differs.
    pub fn is_clean(&self) -> bool {
        self.differed() == 0
    }

    /// `replayed=N matched=M differed=K unchecked=U skipped=S`.
    pub fn summary(&self) -> String {
        format!(
            "replayed={} matched={} differed={} unchecked={} skipped={}",
            self.replayed(),
            self.matched(),
            self.differed(),
            self.unchecked(),
            self.skipped
        )
    }

    /// One line per difference: where (line, seq), which function, the JSON path, expected
    /// and actual values.
    pub fn mismatches(&self) -> String {
        let mut out = String::new();
        for result in self
            .results
            .iter()
            .filter(|r| r.verdict == Verdict::Differed)
        {
            for difference in &result.differences {
                out.push_str(&format!(
                    "{} {}: {difference}\n",
                    result.location(),
                    result.function
                ));
            }
        }
        out
    }
}

/// Sends each event of `entries` to its function through `invoker`, one at a time and in
/// order, and normalises each response as the recording did. With
/// [`ReplayOptions::check`], compares every entry that has a recorded outcome with what came
/// back. The functions must start from the state the recording started from (see the
/// [module docs](crate::trace)).
pub async fn replay(
    invoker: &dyn Invoker,
    entries: &[TraceEntry],
    options: &ReplayOptions,
) -> ReplayReport {
    let mut normalizer = Normalizer::new(options.normalize);
    let mut report = ReplayReport::default();
    if let Some(progress) = &options.progress {
        progress.set(0, "");
    }
    for entry in entries {
        // Every event teaches the normalizer its ids, replayed or not, so responses get the
        // placeholders the recording gave them.
        if !entry.raw {
            let _ = normalizer.event(&entry.event);
        }
        let expected = entry.outcome.as_ref().map(|outcome| {
            (
                outcome.clone(),
                entry.response.as_ref().map(|r| normalizer.response(r)),
            )
        });
        if options
            .function
            .as_ref()
            .is_some_and(|f| *f != entry.function)
        {
            report.skipped += 1;
            continue;
        }
        if let (Some(clock), Some(at)) = (&options.clock, entry.at)
            && let Some(manual) = clock.as_manual()
            && at > clock.now()
        {
            let _ = manual.set(at);
        }
        let result = invoker
            .invoke(InvokeRequest::new(entry.function.clone(), entry.payload()))
            .await;
        let (outcome, response) = describe(&result);
        let response = normalizer.response(&response);
        let (verdict, differences) = match (&expected, options.check) {
            (Some((expected_outcome, expected_response)), true) => {
                let mut differences = Vec::new();
                if *expected_outcome != outcome {
                    differences.push(Difference {
                        path: "outcome".into(),
                        expected: Some(Value::from(expected_outcome.clone())),
                        actual: Some(Value::from(outcome.clone())),
                    });
                }
                let expected_response = expected_response.clone().unwrap_or(Value::Null);
                differences.extend(diff(&expected_response, &response));
                if differences.is_empty() {
                    (Verdict::Matched, differences)
                } else {
                    (Verdict::Differed, differences)
                }
            }
            _ => (Verdict::Unchecked, Vec::new()),
        };
        report.results.push(ReplayResult {
            seq: entry.seq,
            line: entry.line,
            function: entry.function.clone(),
            outcome,
            response,
            verdict,
            differences,
        });
        if let Some(progress) = &options.progress {
            progress.set(report.results.len(), "");
        }
    }
    if let Some(progress) = &options.progress {
        progress.finish();
    }
    report
}

/// How many of `entries` a replay with `options` sends (those of [`ReplayOptions::function`]).
pub fn to_replay(entries: &[TraceEntry], options: &ReplayOptions) -> usize {
    entries
        .iter()
        .filter(|e| options.function.as_ref().is_none_or(|f| *f == e.function))
        .count()
}
