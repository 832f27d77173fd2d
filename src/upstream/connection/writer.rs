//! The way into the child's stdin: the [`Outbox`], and the writer task
//! behind it.
//!
//! A message is written by whoever sends it, at once, when the pipe is idle:
//! the caller encodes its line and tries one non-blocking write (no task is
//! woken, no queue is touched). Only what cannot go at once — the pipe is
//! full, the write was partial, or the writer task is still writing earlier
//! lines — is queued for the writer task, which writes it in order with
//! async writes. docs/UPSTREAM.md ("Connections", "The way into stdin")
//! says why: the hop to a writer task was one of the four thread wake-ups of
//! every pooled call.
//!
//! Invariants:
//! - lines reach stdin whole and in the order their sends took the lock: a
//!   direct write happens only under the outbox lock, only when nothing is
//!   queued and the writer task is not writing, and the rest of a partial
//!   direct write is queued first; so messages are never interleaved or cut,
//!   whatever callers are dropped (a direct write is synchronous: there is
//!   no await to be cancelled at);
//! - the pipe closes (the MCP shutdown signal) when the writer task ends:
//!   when the connection starts closing, after writing what was already
//!   queued, on a write error, or when the task is aborted (the guard in
//!   [`write_loop`] drops the outbox's handle to it).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::net::unix::pipe;
use tokio::process::ChildStdin;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{CallError, DRAIN_AFTER_EXIT, EXIT_AFTER_EOF, Shared};

/// The lines waiting for stdin and the pipe they go to.
#[derive(Debug, Default)]
struct Queue {
    /// Encoded lines (each ending in `\n`), or the rest of one, in order.
    lines: VecDeque<Bytes>,
    /// The writer task has taken lines it has not finished writing: a send
    /// must queue behind them.
    writing: bool,
    /// The pipe; `None` once the writer task has ended (nothing more can be
    /// written, and dropping the last handle closed stdin).
    pipe: Option<Arc<pipe::Sender>>,
}

/// The connection's way into stdin (see the module docs).
#[derive(Debug)]
pub(super) struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the writer task when a line is queued.
    queued: Notify,
}

impl Outbox {
    /// An outbox writing to `stdin`; one with no pipe (every send fails) if
    /// there is none or it cannot be taken over.
    pub(super) fn new(stdin: Option<ChildStdin>) -> (Self, Option<io::Error>) {
        match stdin.map(into_pipe) {
            Some(Ok(pipe)) => (Self::with_pipe(Some(pipe)), None),
            Some(Err(e)) => (Self::with_pipe(None), Some(e)),
            None => (Self::with_pipe(None), None),
        }
    }

    fn with_pipe(pipe: Option<pipe::Sender>) -> Self {
        Outbox {
            queue: Mutex::new(Queue {
                pipe: pipe.map(Arc::new),
                ..Queue::default()
            }),
            queued: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether it has a pipe to write to.
    pub(super) fn is_open(&self) -> bool {
        self.lock().pipe.is_some()
    }

    /// Writes `line` (a whole encoded message) now if the pipe takes it,
    /// else queues it for the writer task; false if the pipe is closed.
    pub(super) fn send(&self, line: Bytes) -> bool {
        let mut queue = self.lock();
        let Some(pipe) = &queue.pipe else {
            return false;
        };
        let rest = if queue.writing || !queue.lines.is_empty() {
            line
        } else {
            match pipe.try_write(&line) {
                Ok(n) if n == line.len() => return true,
                Ok(n) => line.slice(n..),
                // Full, or broken: the writer task waits for room, or meets
                // the error itself and closes the connection with it.
                Err(_) => line,
            }
        };
        queue.lines.push_back(rest);
        drop(queue);
        self.queued.notify_one();
        true
    }

    /// What is queued, as one buffer, and the pipe to write it to; `None`
    /// (and the writer marked idle) when nothing is.
    fn take(&self) -> Option<(Bytes, Arc<pipe::Sender>)> {
        let mut queue = self.lock();
        let pipe = queue.pipe.clone();
        let (Some(pipe), false) = (pipe, queue.lines.is_empty()) else {
            queue.writing = false;
            return None;
        };
        queue.writing = true;
        let batch = if queue.lines.len() == 1 {
            queue.lines.pop_front().unwrap_or_default()
        } else {
            let mut joined = BytesMut::with_capacity(queue.lines.iter().map(Bytes::len).sum());
            for line in queue.lines.drain(..) {
                joined.extend_from_slice(&line);
            }
            joined.freeze()
        };
        Some((batch, pipe))
    }

    /// Closes stdin, unless the writer task still holds the pipe (then it
    /// closes when that task ends). Nothing is written afterwards.
    pub(super) fn close(&self) {
        let mut queue = self.lock();
        queue.pipe = None;
        queue.lines.clear();
    }
}

/// Takes the child's stdin over as a pipe that can be written without
/// waiting (`try_write`), which `ChildStdin` cannot be.
fn into_pipe(stdin: ChildStdin) -> io::Result<pipe::Sender> {
    pipe::Sender::from_owned_fd(stdin.into_owned_fd()?)
}

/// Closes the outbox when the writer task ends, however it ends.
struct CloseOnDrop<'a>(&'a Outbox);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Writes what the outbox queues until the connection closes. A write error
/// means the process is gone or closed stdin: the connection is closed.
pub(super) async fn write_loop(
    shared: Arc<Shared>,
    stdin_error: Option<io::Error>,
    closing: CancellationToken,
) {
    let outbox = &shared.outbox;
    let _close = CloseOnDrop(outbox);
    if !outbox.is_open() {
        let what = match stdin_error {
            Some(e) => format!("has a stdin that cannot be written: {e}"),
            None => "has no stdin pipe".to_owned(),
        };
        shared.close(CallError::Closed(shared.closed_detail(&what)));
        return;
    }
    loop {
        let stopping = tokio::select! {
            biased;
            () = outbox.queued.notified() => false,
            () = closing.cancelled() => true,
        };
        // What was queued before closing is still written.
        if let Err(e) = drain(outbox).await {
            // Usually the process died: give the monitor time to report the
            // exit status, which says more than a broken pipe.
            shared.broken.store(true, Ordering::SeqCst);
            tokio::select! {
                () = tokio::time::sleep(DRAIN_AFTER_EXIT + EXIT_AFTER_EOF) => {}
                () = closing.cancelled() => {}
            }
            shared.close(CallError::Closed(
                shared.closed_detail(&format!("cannot be written to: {e}")),
            ));
            return;
        }
        if stopping {
            return;
        }
    }
    // Returning drops the guard, and with it stdin: the MCP stdio shutdown signal.
}

/// Writes everything queued, including what is queued meanwhile.
async fn drain(outbox: &Outbox) -> io::Result<()> {
    while let Some((batch, pipe)) = outbox.take() {
        write_all(&pipe, &batch).await?;
    }
    Ok(())
}

async fn write_all(pipe: &pipe::Sender, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        pipe.writable().await?;
        match pipe.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    fn line(tag: &str, len: usize) -> Bytes {
        let mut text = format!("{tag}:");
        text.push_str(&"x".repeat(len.saturating_sub(text.len() + 1)));
        text.push('\n');
        Bytes::from(text)
    }

    /// Reads the pipe to its end (the outbox must be closed, or this waits).
    async fn read_all(mut rx: pipe::Receiver) -> Vec<u8> {
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut all))
            .await
            .expect("the pipe was not closed")
            .unwrap();
        all
    }

    /// Waits until the reactor has seen the pipe writable: until then (a
    /// new pipe, or one that was full) a direct write is refused and queued.
    async fn writable(outbox: &Outbox) {
        let pipe = outbox.lock().pipe.clone().unwrap();
        pipe.writable().await.unwrap();
    }

    /// An outbox on a fresh pipe, ready for a direct write, and the pipe's
    /// read end.
    async fn writable_outbox() -> (Outbox, pipe::Receiver) {
        let (tx, rx) = pipe::pipe().unwrap();
        let outbox = Outbox::with_pipe(Some(tx));
        writable(&outbox).await;
        (outbox, rx)
    }

    #[tokio::test]
    async fn a_line_the_pipe_has_room_for_is_written_at_once_by_the_sender() {
        let (outbox, rx) = writable_outbox().await;
        assert!(outbox.send(line("a", 100)));
        // No writer task exists, yet the line is in the pipe: nothing queued.
        assert!(outbox.lock().lines.is_empty());
        outbox.close();
        assert_eq!(read_all(rx).await, line("a", 100));
    }

    #[tokio::test]
    async fn what_the_pipe_cannot_take_is_queued_and_written_after_in_order() {
        let (tx, rx) = pipe::pipe().unwrap();
        let outbox = Arc::new(Outbox::with_pipe(Some(tx)));
        // 200 KiB: more than a pipe holds, so some lines go in part or not
        // at all, and every later one must queue behind them.
        let lines: Vec<Bytes> = (0..50)
            .map(|i| line(&i.to_string(), 4000 + i * 7))
            .collect();
        writable(&outbox).await;
        for l in &lines {
            assert!(outbox.send(l.clone()));
        }
        assert!(
            !outbox.lock().lines.is_empty(),
            "the pipe took 200 KiB at once"
        );
        let reader = tokio::spawn(read_all(rx));
        drain(&outbox).await.unwrap();
        assert!(!outbox.lock().writing);
        outbox.close();
        assert_eq!(reader.await.unwrap(), lines.concat());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_never_cut_or_interleave_lines() {
        let (tx, rx) = pipe::pipe().unwrap();
        let outbox = Arc::new(Outbox::with_pipe(Some(tx)));
        let reader = tokio::spawn(read_all(rx));
        let writer = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move {
                loop {
                    outbox.queued.notified().await;
                    drain(&outbox).await.unwrap();
                }
            })
        };
        let senders: Vec<_> = (0..4)
            .map(|t| {
                let outbox = Arc::clone(&outbox);
                std::thread::spawn(move || {
                    for i in 0..300 {
                        // Sizes around the pipe's atomic-write size (4 KiB).
                        assert!(outbox.send(line(&format!("{t}-{i}"), 1000 + (i * 37) % 9000)));
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        // Let the writer finish what is queued, then close.
        for _ in 0..1000 {
            if outbox.lock().lines.is_empty() && !outbox.lock().writing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writer.abort();
        outbox.close();
        let all = reader.await.unwrap();
        let mut next = [0usize; 4];
        let mut count = 0;
        for l in all.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let text = std::str::from_utf8(l).unwrap();
            let (tag, rest) = text.split_once(':').expect("a line was cut");
            assert!(rest.bytes().all(|b| b == b'x'), "lines interleaved: {tag}");
            let (t, i) = tag.split_once('-').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "sender {t}'s lines out of order");
            assert_eq!(l.len() + 1, 1000 + (i * 37) % 9000);
            next[t] += 1;
            count += 1;
        }
        assert_eq!(count, 1200);
    }

    #[tokio::test]
    async fn once_closed_nothing_is_sent_and_stdin_reads_eof() {
        let (outbox, rx) = writable_outbox().await;
        assert!(outbox.send(line("before", 10)));
        // What is still queued when the outbox closes is dropped with the pipe.
        outbox.lock().lines.push_back(line("queued", 10));
        outbox.close();
        assert!(!outbox.send(line("after", 10)));
        assert_eq!(read_all(rx).await, line("before", 10));
        // With no pipe at all, every send fails.
        assert!(!Outbox::with_pipe(None).send(line("none", 10)));
    }
}
