//! The writer task: drains the connection's queue into the child's stdin.
//!
//! Invariant: only this task writes to stdin, so messages are never
//! interleaved or cut, whatever callers are dropped; it ends (closing stdin,
//! the MCP shutdown signal) when the connection starts closing, after
//! writing what was already queued.

use bytes::BytesMut;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use super::{CallError, DRAIN_AFTER_EXIT, EXIT_AFTER_EOF, Shared};
use crate::framing::JsonRpcCodec;

/// Writes queued messages to stdin until the connection closes. A write
/// error means the process is gone or closed stdin: the connection is
/// closed.
pub(super) async fn write_loop(
    stdin: Option<ChildStdin>,
    mut outbox: mpsc::UnboundedReceiver<Value>,
    shared: Arc<Shared>,
    closing: CancellationToken,
) {
    let Some(stdin) = stdin else {
        shared.close(CallError::Closed(shared.closed_detail("has no stdin pipe")));
        return;
    };
    let mut stdin = stdin;
    let mut codec = JsonRpcCodec::default();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        let first = tokio::select! {
            biased;
            msg = outbox.recv() => msg,
            () = closing.cancelled() => None,
        };
        let Some(first) = first else { break };
        buf.clear();
        encode(&mut codec, first, &mut buf, &shared);
        // Batch whatever else is queued into one write.
        while let Ok(msg) = outbox.try_recv() {
            encode(&mut codec, msg, &mut buf, &shared);
        }
        let res = match stdin.write_all(&buf).await {
            Ok(()) => stdin.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = res {
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
            break;
        }
        if buf.capacity() > 1024 * 1024 {
            // Do not keep a large request's buffer for the connection's life.
            buf = BytesMut::with_capacity(8 * 1024);
        }
    }
    // Dropping stdin closes it: the MCP stdio shutdown signal.
}

/// Appends one encoded message; a message that cannot be encoded is logged
/// and skipped (only a hand-made number with a newline can fail).
fn encode(codec: &mut JsonRpcCodec, msg: Value, buf: &mut BytesMut, shared: &Shared) {
    if let Err(e) = codec.encode(msg, buf) {
        tracing::error!(server = %shared.name, pid = shared.pid, error = %e, "message not sent upstream");
    }
}
