//! progress: how far a long step is (`check`: jobs settled, `replay`: events replayed), on
//! stderr. On a terminal it is one bar redrawn in place (`\r`); elsewhere (a CI log, a file) a
//! plain line at each quarter. Log lines written to the same terminal meanwhile clear the bar
//! first ([`clear_for_line`]) and it is drawn again at the next count.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a bar is drawn on the terminal now.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Width of the bar, in cells.
const WIDTH: usize = 30;

/// The progress of one step, `done` out of `total`.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    terminal: bool,
    /// The last count drawn and the last quarter printed.
    state: Mutex<(Option<usize>, usize)>,
}

impl Progress {
    /// Progress of `total` units of `label` (`replayed`), drawn on stderr as a bar when stderr
    /// is a terminal.
    pub fn new(label: impl Into<String>, total: usize) -> Self {
        Progress {
            label: label.into(),
            total,
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new((None, 0)),
        }
    }

    /// `done` units are done; `note` follows the count (`clock 2026-01-02T00:00:00Z`).
    pub fn set(&self, done: usize, note: &str) {
        let done = done.min(self.total);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.terminal {
            let text = render_bar(&self.label, done, self.total, note);
            let _ = std::io::stderr()
                .lock()
                .write_all(format!("\r{text}\x1b[K").as_bytes());
            SHOWN.store(true, Ordering::SeqCst);
            state.0 = Some(done);
            return;
        }
        let quarter = (done * 4).checked_div(self.total).unwrap_or(4);
        if quarter > state.1 {
            state.1 = quarter;
            let line = format!("{} {done}/{} {note}", self.label, self.total);
            eprintln!("{}", line.trim_end());
        }
    }

    /// The step is over: the bar is cleared (the step prints its result).
    pub fn finish(&self) {
        if self.terminal && SHOWN.swap(false, Ordering::SeqCst) {
            let _ = std::io::stderr().lock().write_all(b"\r\x1b[2K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `label [#########.........] done/total note`.
pub fn render_bar(label: &str, done: usize, total: usize, note: &str) -> String {
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let mut out = format!(
        "{label} [{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    );
    if !note.is_empty() {
        out.push(' ');
        out.push_str(note);
    }
    out
}

/// What a line written to stdout starts with: the sequence that clears the bar's line when a
/// bar is drawn on the terminal stdout also writes to, else nothing.
pub fn clear_for_line() -> &'static str {
    static STDOUT_TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if SHOWN.load(Ordering::SeqCst)
        && *STDOUT_TERMINAL.get_or_init(|| std::io::stdout().is_terminal())
    {
        "\r\x1b[2K"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_count() {
        assert_eq!(
            render_bar("replayed", 0, 4, ""),
            "replayed [..............................] 0/4"
        );
        assert_eq!(
            render_bar("settled", 2, 4, "clock 02:00"),
            "settled [###############...............] 2/4 clock 02:00"
        );
        assert_eq!(
            render_bar("x", 0, 0, ""),
            format!("x [{}] 0/0", "#".repeat(30))
        );
    }
}
