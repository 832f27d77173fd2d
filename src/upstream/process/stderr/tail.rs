//! The ring of a process's last stderr lines, kept for crash and start-up
//! error reports.
//!
//! Invariant: it holds at most [`STDERR_TAIL_LINES`] lines of at most
//! `STDERR_MAX_LINE` bytes (plus a short marker) each, and always the most
//! recent ones: lines the log budget suppresses enter it too, so a report
//! after a flood still shows what the server said last.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many of the last stderr lines each process keeps for error reports.
pub const STDERR_TAIL_LINES: usize = 20;

/// The last [`STDERR_TAIL_LINES`] stderr lines of one process.
#[derive(Debug, Default)]
pub(in crate::upstream::process) struct StderrTail {
    lines: Mutex<VecDeque<String>>,
}

impl StderrTail {
    fn lock(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one line, dropping the oldest when full.
    pub(super) fn push(&self, line: String) {
        let mut lines = self.lock();
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// A copy of the lines, oldest first.
    pub(in crate::upstream::process) fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// Shared read access to a process's last stderr lines.
#[derive(Debug, Clone)]
pub struct StderrTailHandle(pub(in crate::upstream::process) Arc<StderrTail>);

impl StderrTailHandle {
    /// The last lines the process wrote to stderr (at most [`STDERR_TAIL_LINES`]).
    pub fn lines(&self) -> Vec<String> {
        self.0.snapshot()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn stderr_tail_keeps_only_the_last_lines() {
        let tail = StderrTail::default();
        for i in 0..(STDERR_TAIL_LINES + 5) {
            tail.push(format!("line {i}"));
        }
        let lines = tail.snapshot();
        assert_eq!(lines.len(), STDERR_TAIL_LINES);
        assert_eq!(lines[0], "line 5");
        assert_eq!(
            lines.last().unwrap(),
            &format!("line {}", STDERR_TAIL_LINES + 4)
        );
    }
}
