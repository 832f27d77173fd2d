//! A process's stderr: drained without pause into `tracing` events under a
//! per-process budget, and into a ring of its last lines for error reports.
//!
//! Invariants:
//! - memory per process is bounded whatever the process writes: one read
//!   buffer, one line of at most [`STDERR_MAX_LINE`] bytes (the rest of a
//!   longer line is skipped straight from the buffer, and marked), and the
//!   tail ring;
//! - the log gets at most what the [`StderrBudget`] allows; what it suppresses
//!   is counted and summarized in one event per `summary_every`, never per
//!   line, and still enters the tail;
//! - the pipe is always drained, so a server never blocks on a full stderr
//!   pipe; only while lines are being suppressed, reads are spaced by
//!   [`DRAIN_PAUSE`], which bounds the proxy's CPU under a flood (a server
//!   writing faster than `READ_CHUNK / DRAIN_PAUSE` is slowed by the pipe's
//!   back-pressure, never stopped).

mod budget;
mod tail;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;

use crate::accounting::StderrCounters;
use budget::Gate;
pub use budget::StderrBudget;
pub(super) use tail::StderrTail;
pub use tail::{STDERR_TAIL_LINES, StderrTailHandle};

/// Longest stderr line kept, in bytes; the rest of a longer line is dropped
/// (and counted) without being buffered.
pub const STDERR_MAX_LINE: usize = 4096;

/// Bytes taken from the pipe per read: the Linux default pipe capacity, so
/// one read empties a full pipe.
const READ_CHUNK: usize = 64 * 1024;

/// While lines are being suppressed, the pause between two reads: under a
/// flood the proxy wakes at most 100 times a second for this process and
/// drains up to `READ_CHUNK` each time (6.4 MiB/s).
const DRAIN_PAUSE: Duration = Duration::from_millis(10);

/// Where one process's stderr goes.
#[derive(Debug)]
pub(super) struct StderrSink {
    pub(super) tail: Arc<StderrTail>,
    pub(super) counters: Arc<StderrCounters>,
    pub(super) budget: StderrBudget,
    pub(super) name: String,
    pub(super) pid: u32,
}

/// Lines and bytes suppressed since the last summary.
#[derive(Debug, Default)]
struct Suppressed {
    lines: u64,
    bytes: u64,
    /// When the first line of this window was suppressed.
    since: Option<Instant>,
}

/// The reader's state between two reads.
#[derive(Debug)]
struct Pump {
    sink: StderrSink,
    gate: Gate,
    suppressed: Suppressed,
    /// The line in progress (no newline seen yet), at most `STDERR_MAX_LINE`.
    line: Vec<u8>,
    /// Bytes of the line in progress beyond `STDERR_MAX_LINE`.
    line_dropped: usize,
    /// Whether a line is in progress (it may be empty so far).
    line_open: bool,
}

/// Reads stderr to EOF: see the module docs.
pub(super) async fn pump_stderr(stderr: ChildStderr, sink: StderrSink) {
    let mut reader = BufReader::with_capacity(READ_CHUNK, stderr);
    let mut pump = Pump {
        gate: Gate::new(&sink.budget, Instant::now()),
        sink,
        suppressed: Suppressed::default(),
        line: Vec::with_capacity(256),
        line_dropped: 0,
        line_open: false,
    };
    loop {
        let read = match pump.summary_due() {
            // Something is waiting to be summarized: do not sleep past it.
            Some(due) => match tokio::time::timeout_at(due.into(), reader.fill_buf()).await {
                Ok(read) => read,
                Err(_) => {
                    pump.summarize(Instant::now());
                    continue;
                }
            },
            None => reader.fill_buf().await,
        };
        let buf = match read {
            Ok(buf) => buf,
            Err(e) => {
                tracing::debug!(server = %pump.sink.name, pid = pump.sink.pid, error = %e, "reading upstream stderr failed");
                break;
            }
        };
        if buf.is_empty() {
            pump.finish_line(false, Instant::now());
            break;
        }
        let len = buf.len();
        let now = Instant::now();
        let suppressing = pump.take(buf, now);
        reader.consume(len);
        if pump.summary_due().is_some_and(|due| due <= now) {
            pump.summarize(now);
        }
        if suppressing {
            tokio::time::sleep(DRAIN_PAUSE).await;
        }
    }
    if pump.suppressed.lines > 0 {
        pump.summarize(Instant::now());
    }
}

impl Pump {
    /// Handles one chunk read from the pipe; whether any of it was suppressed.
    fn take(&mut self, chunk: &[u8], now: Instant) -> bool {
        let mut rest = chunk;
        let mut suppressed_any = false;
        if self.line_open {
            match memchr::memchr(b'\n', rest) {
                None => {
                    self.extend_line(rest);
                    return false;
                }
                Some(i) => {
                    self.extend_line(&rest[..i]);
                    suppressed_any |= !self.finish_line(true, now);
                    rest = &rest[i + 1..];
                }
            }
        }
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let line = &rest[..i];
            let kept = &line[..line.len().min(STDERR_MAX_LINE)];
            if !self.gate.admit(kept.len(), now) {
                // Over budget: every complete line left in this chunk is
                // suppressed at once, without looking at each one.
                let last = memchr::memrchr(b'\n', rest).unwrap_or(i);
                self.suppress_block(&rest[..=last], now);
                rest = &rest[last + 1..];
                suppressed_any = true;
                break;
            }
            self.forward(kept, line.len() - kept.len());
            rest = &rest[i + 1..];
        }
        if !rest.is_empty() {
            self.line_open = true;
            self.extend_line(rest);
        }
        suppressed_any
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        self.line_open = true;
        let room = STDERR_MAX_LINE.saturating_sub(self.line.len());
        let keep = bytes.len().min(room);
        self.line.extend_from_slice(&bytes[..keep]);
        self.line_dropped += bytes.len() - keep;
    }

    /// Ends the line in progress (at its newline, or at EOF without one);
    /// whether it was forwarded (true when there was none).
    fn finish_line(&mut self, newline: bool, now: Instant) -> bool {
        if !self.line_open {
            return true;
        }
        let line = std::mem::take(&mut self.line);
        let dropped = std::mem::take(&mut self.line_dropped);
        self.line_open = false;
        let admitted = self.gate.admit(line.len(), now);
        if admitted {
            self.forward(&line, dropped);
        } else {
            self.note_suppressed(1, (line.len() + dropped + usize::from(newline)) as u64, now);
            self.sink.tail.push(line_text(&line, dropped));
        }
        self.line = line;
        self.line.clear();
        admitted
    }

    fn forward(&mut self, kept: &[u8], dropped: usize) {
        let text = line_text(kept, dropped);
        tracing::info!(target: "stdiopool::upstream::stderr", server = %self.sink.name, pid = self.sink.pid, "{text}");
        self.sink.counters.record_forwarded(1);
        self.sink.tail.push(text);
    }

    /// `block` is whole lines, each ending in `\n`: counts them, and keeps
    /// the last ones for the tail.
    fn suppress_block(&mut self, block: &[u8], now: Instant) {
        let lines = block.iter().filter(|&&b| b == b'\n').count();
        self.note_suppressed(lines as u64, block.len() as u64, now);
        let mut last = Vec::with_capacity(STDERR_TAIL_LINES);
        let mut end = block.len().saturating_sub(1);
        while last.len() < STDERR_TAIL_LINES {
            let start = memchr::memrchr(b'\n', &block[..end]).map_or(0, |i| i + 1);
            last.push(&block[start..end]);
            if start == 0 {
                break;
            }
            end = start - 1;
        }
        for line in last.into_iter().rev() {
            let kept = &line[..line.len().min(STDERR_MAX_LINE)];
            self.sink
                .tail
                .push(line_text(kept, line.len() - kept.len()));
        }
    }

    fn note_suppressed(&mut self, lines: u64, bytes: u64, now: Instant) {
        self.sink.counters.record_suppressed(lines, bytes);
        let s = &mut self.suppressed;
        s.lines += lines;
        s.bytes += bytes;
        s.since.get_or_insert(now);
    }

    /// When the pending summary is due, if one is pending.
    fn summary_due(&self) -> Option<Instant> {
        self.suppressed
            .since
            .map(|since| since + self.sink.budget.summary_every)
    }

    /// Logs one summary of what was suppressed since the last one.
    fn summarize(&mut self, now: Instant) {
        let s = std::mem::take(&mut self.suppressed);
        let Some(since) = s.since else { return };
        let secs = now.saturating_duration_since(since).as_secs_f64();
        let name = &self.sink.name;
        let pid = self.sink.pid;
        tracing::warn!(
            target: "stdiopool::upstream::stderr",
            server = %name,
            pid,
            suppressed_lines = s.lines,
            suppressed_bytes = s.bytes,
            "server {name} pid {pid}: suppressed {} stderr lines, {} bytes in the last {secs:.1} s (over the stderr budget)",
            s.lines,
            s.bytes,
        );
    }
}

/// The text of one line for the log and the tail: `\r` stripped, invalid
/// UTF-8 replaced, and a marker if it was cut.
fn line_text(kept: &[u8], dropped: usize) -> String {
    let kept = kept.strip_suffix(b"\r").unwrap_or(kept);
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!(" [... {dropped} more bytes dropped]"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pump(budget: StderrBudget) -> Pump {
        Pump {
            gate: Gate::new(&budget, Instant::now()),
            sink: StderrSink {
                tail: Arc::new(StderrTail::default()),
                counters: Arc::new(StderrCounters::default()),
                budget,
                name: "t".into(),
                pid: 1,
            },
            suppressed: Suppressed::default(),
            line: Vec::new(),
            line_dropped: 0,
            line_open: false,
        }
    }

    fn lines(from: usize, to: usize) -> Vec<u8> {
        (from..to)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    #[test]
    fn over_budget_lines_are_counted_and_the_tail_keeps_the_most_recent() {
        let budget = StderrBudget {
            lines_per_sec: 10,
            bytes_per_sec: 0,
            burst: Duration::from_secs(1),
            summary_every: Duration::from_secs(5),
        };
        let mut p = pump(budget);
        let now = Instant::now();
        // Split mid-line, so a line also crosses two chunks.
        let all = lines(0, 1000);
        let (a, b) = all.split_at(all.len() / 2 + 3);
        assert!(p.take(a, now));
        assert!(p.take(b, now));
        let c = p.sink.counters.counts();
        assert_eq!(c.forwarded_lines, 10);
        assert_eq!(c.suppressed_lines, 990);
        let forwarded_bytes: usize = (0..10).map(|i| format!("line {i}\n").len()).sum();
        assert_eq!(c.suppressed_bytes as usize, all.len() - forwarded_bytes);
        let tail = p.sink.tail.snapshot();
        assert_eq!(tail.len(), STDERR_TAIL_LINES);
        assert_eq!(tail[0], format!("line {}", 1000 - STDERR_TAIL_LINES));
        assert_eq!(tail.last().unwrap(), "line 999");
        assert_eq!(p.suppressed.lines, 990);
        p.summarize(now);
        assert_eq!(p.suppressed.lines, 0);
        assert!(p.summary_due().is_none());
    }

    #[test]
    fn a_suppressed_long_line_enters_the_tail_cut_with_its_marker() {
        let budget = StderrBudget {
            lines_per_sec: 1,
            bytes_per_sec: 0,
            burst: Duration::ZERO,
            summary_every: Duration::from_secs(5),
        };
        let mut p = pump(budget);
        let now = Instant::now();
        let mut chunk = b"first\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'x', STDERR_MAX_LINE + 10));
        chunk.extend_from_slice(b"\nlast\r\n");
        assert!(p.take(&chunk, now));
        let tail = p.sink.tail.snapshot();
        assert_eq!(tail.len(), 3, "{tail:?}");
        assert_eq!(tail[0], "first");
        assert!(tail[1].ends_with(" [... 10 more bytes dropped]"));
        assert_eq!(tail[2], "last");
        assert_eq!(p.sink.counters.counts().suppressed_lines, 2);
    }
}
