//! A process's stderr: read line by line (bounded) into `tracing` events and a
//! small ring of its last lines, kept for error reports.
//!
//! Invariant: memory per process is bounded whatever the process writes: a
//! line keeps at most [`STDERR_MAX_LINE`] bytes (the rest is skipped straight
//! from the reader's buffer) and the ring at most [`STDERR_TAIL_LINES`] lines.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;

/// Longest stderr line kept, in bytes; the rest of a longer line is dropped
/// (and counted) without being buffered.
pub const STDERR_MAX_LINE: usize = 4096;

/// How many of the last stderr lines each process keeps for error reports.
pub const STDERR_TAIL_LINES: usize = 20;

/// The last [`STDERR_TAIL_LINES`] stderr lines of one process.
#[derive(Debug, Default)]
pub(super) struct StderrTail {
    lines: Mutex<VecDeque<String>>,
}

impl StderrTail {
    fn lock(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: String) {
        let mut lines = self.lock();
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub(super) fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// Shared read access to a process's last stderr lines.
#[derive(Debug, Clone)]
pub struct StderrTailHandle(pub(super) Arc<StderrTail>);

impl StderrTailHandle {
    /// The last lines the process wrote to stderr (at most [`STDERR_TAIL_LINES`]).
    pub fn lines(&self) -> Vec<String> {
        self.0.snapshot()
    }
}

/// Reads stderr line by line into `tracing` events and the tail ring. A line
/// longer than [`STDERR_MAX_LINE`] keeps its first bytes and a marker; the rest
/// is skipped straight from the reader's buffer, so memory stays bounded.
pub(super) async fn pump_stderr(
    stderr: ChildStderr,
    tail: Arc<StderrTail>,
    name: String,
    pid: u32,
) {
    let mut reader = BufReader::with_capacity(8 * 1024, stderr);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut dropped: usize = 0;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) => {
                tracing::debug!(server = %name, pid, error = %e, "reading upstream stderr failed");
                break;
            }
        };
        if buf.is_empty() {
            if !line.is_empty() || dropped > 0 {
                emit_stderr_line(&line, dropped, &tail, &name, pid);
            }
            break;
        }
        let (chunk, consumed, complete) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = STDERR_MAX_LINE.saturating_sub(line.len());
        let keep = chunk.len().min(room);
        line.extend_from_slice(&chunk[..keep]);
        dropped += chunk.len() - keep;
        reader.consume(consumed);
        if complete {
            emit_stderr_line(&line, dropped, &tail, &name, pid);
            line.clear();
            dropped = 0;
        }
    }
}

fn emit_stderr_line(line: &[u8], dropped: usize, tail: &StderrTail, name: &str, pid: u32) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut text = String::from_utf8_lossy(line).into_owned();
    if dropped > 0 {
        text.push_str(&format!(" [... {dropped} more bytes dropped]"));
    }
    tracing::info!(target: "stdiopool::upstream::stderr", server = %name, pid, "{text}");
    tail.push(text);
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
