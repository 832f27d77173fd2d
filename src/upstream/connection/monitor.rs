//! The monitor task: owns the child process, turns its death into an
//! immediate error for every request in flight, and runs the stop sequence
//! when the connection is shut down or dropped.
//!
//! Invariant: the process is stopped exactly once, after stdin is closed,
//! and the stop stays counted by `Accounting::wait_for_stops` until it is complete.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{CallError, DRAIN_AFTER_EXIT, EXIT_AFTER_EOF, Shared, StopRequest, WRITER_CLOSE};
use crate::upstream::process::{ChildProcess, StopReason};

/// Owns the process: fails requests when it dies, stops it when asked to or
/// when the connection is dropped.
pub(super) async fn monitor(
    mut child: ChildProcess,
    shared: Arc<Shared>,
    mut control: oneshot::Receiver<StopRequest>,
    mut reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    closing: CancellationToken,
) {
    let mut exited = false;
    let mut reader_done = false;
    let request = loop {
        tokio::select! {
            req = &mut control => break req.ok(),
            cause = child.wait_exit(), if !exited => {
                exited = true;
                // Let the reader deliver what the process wrote before dying,
                // and the error carry what it said last on stderr.
                if !reader_done && tokio::time::timeout(DRAIN_AFTER_EXIT, &mut reader).await.is_ok() {
                    reader_done = true;
                }
                child.wait_stderr_eof(DRAIN_AFTER_EXIT).await;
                shared.close(CallError::Closed(shared.closed_detail(&cause.to_string())));
            }
            _ = &mut reader, if !reader_done => {
                reader_done = true;
                if !exited {
                    let what = match tokio::time::timeout(EXIT_AFTER_EOF, child.wait_exit()).await {
                        Ok(cause) => {
                            exited = true;
                            child.wait_stderr_eof(DRAIN_AFTER_EXIT).await;
                            cause.to_string()
                        }
                        Err(_) => "closed its stdout".to_owned(),
                    };
                    shared.close(CallError::Closed(shared.closed_detail(&what)));
                }
            }
        }
    };
    let reason = request.as_ref().map_or(StopReason::Dropped, |r| r.reason);
    shared.broken.store(true, Ordering::SeqCst);
    // Close stdin (the writer flushes what is queued, then drops it) before
    // the stop sequence, whose first step is waiting for an exit on EOF.
    closing.cancel();
    let mut writer = writer;
    if tokio::time::timeout(WRITER_CLOSE, &mut writer)
        .await
        .is_err()
    {
        // The server does not read its stdin: close it anyway (the aborted
        // task's handle to the pipe goes with the task).
        writer.abort();
        shared.outbox.close();
    }
    let outcome = child.stop(reason).await;
    reader.abort();
    shared.close(CallError::Closed(
        shared.closed_detail(&format!("was stopped ({reason})")),
    ));
    // Replying (and dropping the request's `PendingStop`) only now keeps the
    // stop counted until it is complete.
    if let Some(reply) = request.and_then(|r| r.reply) {
        let _ = reply.send(outcome);
    }
}
