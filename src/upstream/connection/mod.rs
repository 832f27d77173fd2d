//! One stdio JSON-RPC connection to one upstream process.
//!
//! A [`Connection`] owns three tasks around a spawned [`ChildProcess`]:
//!
//! - the **writer** drains an unbounded queue of messages into the child's
//!   stdin through [`JsonRpcCodec`](crate::framing::JsonRpcCodec) (it batches what is queued, then flushes);
//! - the **reader** decodes the child's stdout and routes every message:
//!   responses to the caller waiting for them, progress to that caller's
//!   event channel, other notifications to the event channel of the one
//!   request in flight if there is exactly one (so they keep stdout's order
//!   relative to its response), the rest of the server requests and
//!   notifications to the subscriber of [`Connection::take_server_messages`]
//!   (or answers them itself);
//! - the **monitor** owns the process: it notices exit or stdout EOF, fails
//!   every request in flight at once, and runs the stop sequence when the
//!   connection is shut down or dropped.
//!
//! Invariants:
//! - every [`Connection::call`] resolves exactly once: with its response, or
//!   with a [`CallError`] as soon as the connection cannot deliver one (the
//!   in-flight entry is removed by whoever resolves it, under one lock, and a
//!   closed connection accepts no new entry);
//! - a caller never sees another caller's response: ids sent upstream are a
//!   per-connection counter, and the client's id is put back on the way out;
//! - dropping a `call` future before its answer removes its entry and sends
//!   `notifications/cancelled` upstream (never for `initialize`);
//! - dropping the `Connection` ends its tasks and stops the process with the
//!   stop sequence (closing stdin first).
//!
//! The tasks live in `writer.rs`, `reader.rs` and `monitor.rs`, the message
//! types in `messages.rs`; this file holds the in-flight state and the
//! `Connection` API.
//! See `docs/UPSTREAM.md` ("Connections") for the routing rules and codes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::accounting::Accounting;
use crate::framing;
use crate::jsonrpc::{ErrorObject, Id, Message};
use crate::upstream::ids;

mod envelope;
#[doc(hidden)]
pub use envelope::check_agreement as envelope_check_agreement;
#[doc(hidden)]
pub use envelope::success_response_len as envelope_success_response_len;
#[doc(hidden)]
pub use envelope::tree_would_refuse_bench as envelope_tree_would_refuse;
mod messages;
mod monitor;
mod reader;
mod writer;

use crate::upstream::process::{
    ChildProcess, ExitCause, PendingStop, StderrTailHandle, StopOutcome, StopReason, StopStage,
};
pub use messages::{CallError, OutgoingRequest, RawMessage, Response, ServerMessage};

/// Capacity of the server-message channel handed out by
/// [`Connection::take_server_messages`].
pub const SERVER_MESSAGE_QUEUE: usize = 64;

/// After the process exits, how long the reader gets to deliver what it wrote
/// before dying (its last response may still sit in the pipe).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// After stdout closes, how long to wait for the exit status to name the cause.
const EXIT_AFTER_EOF: Duration = Duration::from_millis(500);

/// How long an orderly stop lets the writer flush before it is aborted.
const WRITER_CLOSE: Duration = Duration::from_secs(1);

/// A request in flight, keyed by its upstream id.
#[derive(Debug)]
struct Pending {
    client_id: Id,
    /// The client's own progress token, when the request asked for progress
    /// (upstream it is the request's counter value).
    progress_token: Option<Value>,
    events: Option<mpsc::Sender<Value>>,
    reply: oneshot::Sender<Result<Response, CallError>>,
}

#[derive(Debug, Default)]
struct State {
    /// Set once, by the first fatal event; every later call fails with it.
    closed: Option<CallError>,
    in_flight: HashMap<u64, Pending>,
}

/// What the tasks and call futures share.
#[derive(Debug)]
struct Shared {
    name: String,
    pid: u32,
    state: Mutex<State>,
    broken: AtomicBool,
    next_id: AtomicU64,
    uses: AtomicU64,
    /// Nanoseconds since `born` at the last send or receive.
    last_activity: AtomicU64,
    born: Instant,
    outbox: writer::Outbox,
    server_tx: Mutex<Option<mpsc::Sender<ServerMessage>>>,
    /// Server requests may travel on the stream of the one request in
    /// flight although nobody subscribed: the caller relays its clients'
    /// answers back (pooled mode, `proxy/mcp/relay.rs`).
    relay: AtomicBool,
    stderr: StderrTailHandle,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_activity.store(nanos, Ordering::Relaxed);
    }

    /// Sends a message to stdin (at once, or queued for the writer task:
    /// `writer.rs`); false if stdin is closed.
    fn send(&self, msg: Value) -> bool {
        self.send_encoded(&msg)
    }

    /// [`Shared::send`] for any serializable message. One that cannot be
    /// encoded (only a hand-made number with a newline) is logged and
    /// skipped, as a message the server never got.
    fn send_encoded<T: serde::Serialize + ?Sized>(&self, msg: &T) -> bool {
        match framing::encode_line(msg) {
            Ok(line) => self.outbox.send(line),
            Err(e) => {
                tracing::error!(server = %self.name, pid = self.pid, error = %e, "message not sent upstream");
                true
            }
        }
    }

    /// Marks the connection unusable and fails every request in flight with
    /// `error`. The first call's error is the one later calls get.
    fn close(&self, error: CallError) {
        self.broken.store(true, Ordering::SeqCst);
        let drained: Vec<Pending> = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(error.clone());
            }
            state.in_flight.drain().map(|(_, p)| p).collect()
        };
        if !drained.is_empty() {
            tracing::warn!(server = %self.name, pid = self.pid, requests = drained.len(), error = %error, "failing requests in flight");
        }
        for p in drained {
            let _ = p.reply.send(Err(error.clone()));
        }
    }

    /// The subscriber's sender, if one is subscribed and still listening.
    fn subscriber(&self) -> Option<mpsc::Sender<ServerMessage>> {
        let mut slot = self.server_tx.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|tx| tx.is_closed()) {
            *slot = None;
        }
        slot.clone()
    }

    fn closed_detail(&self, what: &str) -> ErrorObject {
        ErrorObject::upstream_closed(format!("{} (pid {}) {what}", self.name, self.pid))
            .with_data(json!({ "stderr": self.stderr.lines() }))
    }
}

/// A request as it goes upstream, written straight to its line (no `Value`
/// tree is built for the envelope): the same message as
/// `Message::Request { id: upstream_id(n), .. }.into_value()`.
#[derive(serde::Serialize)]
struct RequestLine<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
}

/// Ends a call's in-flight entry if the call future is dropped first, and
/// tells the server (`notifications/cancelled`) unless it was `initialize`.
struct InFlightGuard<'a> {
    shared: &'a Shared,
    upstream: u64,
    cancel_upstream: bool,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        // Whoever removes the entry owns the outcome: the reader (response),
        // `close` (failure), or this guard (the caller went away).
        let removed = self.shared.lock().in_flight.remove(&self.upstream);
        if removed.is_some() && self.cancel_upstream {
            tracing::debug!(server = %self.shared.name, pid = self.shared.pid, id = self.upstream, "call dropped in flight; cancelling upstream");
            self.shared.send(json!({
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": self.upstream, "reason": "request cancelled by the proxy's client (timeout or disconnect)"},
            }));
        }
    }
}

/// Asks the monitor to stop the process.
#[derive(Debug)]
struct StopRequest {
    reason: StopReason,
    reply: Option<oneshot::Sender<StopOutcome>>,
    /// Makes `Accounting::wait_for_stops` count this stop until the monitor has run it.
    _pending: PendingStop,
}

/// A live stdio JSON-RPC connection to one upstream process. See the module
/// docs for its tasks and invariants.
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Shared>,
    control: Option<oneshot::Sender<StopRequest>>,
    closing: CancellationToken,
    initialize_result: Value,
    crash_counted: AtomicBool,
    /// Where this connection's process counts its stops (its proxy's).
    accounting: Arc<Accounting>,
}

impl Connection {
    /// Takes over a freshly spawned process: its stdin, stdout and the
    /// process itself. Must run inside a tokio runtime. `max_frame` is the
    /// largest line accepted from the server (see `docs/FRAMING.md`).
    pub fn new(mut child: ChildProcess, max_frame: usize) -> Self {
        let name = child.name().to_owned();
        let pid = child.pid();
        let stdin = child.take_stdin();
        let stdout = child.take_stdout();
        let (outbox, stdin_error) = writer::Outbox::new(stdin);
        let shared = Arc::new(Shared {
            name,
            pid,
            state: Mutex::new(State::default()),
            broken: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            uses: AtomicU64::new(0),
            last_activity: AtomicU64::new(0),
            born: Instant::now(),
            outbox,
            server_tx: Mutex::new(None),
            relay: AtomicBool::new(false),
            stderr: child.stderr_tail_handle(),
        });
        let closing = CancellationToken::new();
        let writer = tokio::spawn(writer::write_loop(
            Arc::clone(&shared),
            stdin_error,
            closing.clone(),
        ));
        let reader = tokio::spawn(reader::read_loop(stdout, max_frame, Arc::clone(&shared)));
        let (control, control_rx) = oneshot::channel();
        let accounting = Arc::clone(child.accounting());
        tokio::spawn(monitor::monitor(
            child,
            Arc::clone(&shared),
            control_rx,
            reader,
            writer,
            closing.clone(),
        ));
        Connection {
            shared,
            control: Some(control),
            closing,
            initialize_result: Value::Null,
            crash_counted: AtomicBool::new(false),
            accounting,
        }
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// The server name from its spec.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The server's `InitializeResult` from the handshake the manager ran
    /// (`null` when it ran none).
    pub fn initialize_result(&self) -> &Value {
        &self.initialize_result
    }

    pub(crate) fn set_initialize_result(&mut self, result: Value) {
        self.initialize_result = result;
    }

    /// True once the process exited, its stdout closed, its stdin could not
    /// be written, or it wrote a frame that makes the stream untrustworthy.
    pub fn is_broken(&self) -> bool {
        self.shared.broken.load(Ordering::SeqCst)
    }

    /// Why the connection is closed, if it is.
    pub fn closed_reason(&self) -> Option<CallError> {
        self.shared.lock().closed.clone()
    }

    /// How many requests have been sent on it.
    pub fn uses(&self) -> u64 {
        self.shared.uses.load(Ordering::Relaxed)
    }

    /// How many requests are waiting for their response.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().in_flight.len()
    }

    /// Time since the last message sent or received.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_nanos(self.shared.last_activity.load(Ordering::Relaxed));
        self.shared.born.elapsed().saturating_sub(last)
    }

    /// The last lines the server wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.shared.stderr.lines()
    }

    /// Subscribes to what the server sends on its own (requests and
    /// notifications). Only the first call gets the receiver. Without a
    /// subscriber, server requests are answered -32601 at once (so the
    /// server never waits) and notifications are dropped; `ping` is always
    /// answered by the connection itself.
    pub fn take_server_messages(&self) -> Option<mpsc::Receiver<ServerMessage>> {
        let mut slot = self
            .shared
            .server_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return None;
        }
        let (tx, rx) = mpsc::channel(SERVER_MESSAGE_QUEUE);
        *slot = Some(tx);
        Some(rx)
    }

    /// Sends a client request and waits for its response: the whole response
    /// message (success or error), carrying the client's id, as a `Value`
    /// tree. For callers that look inside the response; a caller that only
    /// forwards it uses [`Connection::call_response`], which never builds
    /// the tree.
    ///
    /// Progress notifications for the request's `_meta.progressToken` go to
    /// `events` with the client's token restored. Cancel-safe: dropping the
    /// future before the answer sends `notifications/cancelled` upstream
    /// (except for `initialize`, which MCP forbids cancelling).
    pub async fn call(
        &self,
        request: OutgoingRequest,
        events: Option<mpsc::Sender<Value>>,
    ) -> Result<Value, CallError> {
        let response = self.call_response(request, events).await?;
        response.to_value().map_err(|e| {
            // The reader validated it as JSON; a failure here is a bug, and
            // the request's answer is lost either way.
            CallError::Protocol(ErrorObject::upstream_protocol_error(format!(
                "the server's response could not be read back: {e}"
            )))
        })
    }

    /// [`Connection::call`], with the response as JSON text: the server's
    /// `result` or `error` passed through as it wrote it, the id restored.
    /// Same progress routing and cancel-safety as `call`.
    pub async fn call_response(
        &self,
        request: OutgoingRequest,
        events: Option<mpsc::Sender<Value>>,
    ) -> Result<Response, CallError> {
        let OutgoingRequest {
            id: client_id,
            method,
            mut params,
        } = request;
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let progress_token = ids::swap_progress_token(&mut params, Value::from(n));
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if let Some(err) = &state.closed {
                return Err(err.clone());
            }
            state.in_flight.insert(
                n,
                Pending {
                    client_id,
                    progress_token,
                    events,
                    reply,
                },
            );
        }
        let mut guard = InFlightGuard {
            shared: &self.shared,
            upstream: n,
            cancel_upstream: method != "initialize",
        };
        self.shared.uses.fetch_add(1, Ordering::Relaxed);
        self.shared.touch();
        let line = RequestLine {
            jsonrpc: "2.0",
            id: n,
            method: &method,
            params: params.as_ref(),
        };
        if !self.shared.send_encoded(&line) {
            // The writer is gone; nothing was sent, so there is nothing to cancel.
            guard.cancel_upstream = false;
            drop(guard);
            return Err(self.closed_error());
        }
        let result = answer.await;
        // Answered or failed: the entry is gone, the guard's drop is a no-op.
        drop(guard);
        match result {
            Ok(res) => res,
            Err(_) => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> CallError {
        self.closed_reason().unwrap_or_else(|| {
            CallError::Closed(self.shared.closed_detail("stopped accepting messages"))
        })
    }

    /// Sends `ping` and waits at most `timeout` for the answer. Any answer,
    /// even an error response (a server that refuses requests before
    /// `initialize`, as a warm session-mode process may), proves the process
    /// is alive and reading: only silence or a closed connection fail.
    pub async fn ping(&self, timeout: Duration) -> Result<(), CallError> {
        let req = OutgoingRequest::new("stdiopool-ping", "ping", None);
        match tokio::time::timeout(timeout, self.call(req, None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Closed(ErrorObject::request_timeout(format!(
                "{} (pid {}) did not answer ping within {timeout:?}",
                self.shared.name, self.shared.pid
            )))),
        }
    }

    /// Sends a client notification. A `notifications/cancelled` naming a
    /// client id in flight is translated to its upstream id; one naming no
    /// request in flight is dropped (MCP: unknown ids are ignored).
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), CallError> {
        let mut params = params;
        if method == "notifications/cancelled" {
            let Some(client_id) = ids::cancelled_request_id(params.as_ref()) else {
                tracing::debug!(server = %self.shared.name, "dropping notifications/cancelled without a valid requestId");
                return Ok(());
            };
            let Some(n) = self.upstream_id_of(&client_id) else {
                tracing::debug!(server = %self.shared.name, id = %client_id, "dropping notifications/cancelled for a request not in flight");
                return Ok(());
            };
            if let Some(p) = params.as_mut() {
                ids::set_cancelled_request_id(p, &ids::upstream_id(n));
            }
        }
        self.send_raw(
            Message::Notification {
                method: method.to_owned(),
                params,
            }
            .into_value(),
        )
    }

    /// Sends `notifications/cancelled` for the client's request `id` if it is
    /// in flight; returns whether it was.
    pub async fn cancel(&self, id: &Id, reason: Option<&str>) -> Result<bool, CallError> {
        let Some(n) = self.upstream_id_of(id) else {
            return Ok(false);
        };
        let mut params = Map::new();
        params.insert("requestId".into(), Value::from(n));
        if let Some(reason) = reason {
            params.insert("reason".into(), Value::from(reason));
        }
        self.send_raw(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}),
        )?;
        Ok(true)
    }

    /// Forwards a client's response to a server request unchanged (server ids
    /// belong to the server's id space and are never rewritten).
    pub async fn respond(&self, response: Value) -> Result<(), CallError> {
        self.send_raw(response)
    }

    /// [`respond`](Self::respond) without waiting (the message is queued for
    /// the writer), for callers that must answer from a `Drop`.
    pub fn respond_now(&self, response: Value) -> Result<(), CallError> {
        self.send_raw(response)
    }

    /// From now on a server request that arrives while exactly one request
    /// is in flight goes on that request's `events` (when it has them), as
    /// with a subscriber: the caller promises to answer it, with
    /// [`respond`](Self::respond), before that request's call ends.
    pub fn relay_server_requests(&self) {
        self.shared.relay.store(true, Ordering::Relaxed);
    }

    fn upstream_id_of(&self, client_id: &Id) -> Option<u64> {
        let state = self.shared.lock();
        state
            .in_flight
            .iter()
            .filter(|(_, p)| &p.client_id == client_id)
            .map(|(n, _)| *n)
            .min()
    }

    fn send_raw(&self, msg: Value) -> Result<(), CallError> {
        if let Some(err) = self.closed_reason() {
            return Err(err);
        }
        self.shared.touch();
        if self.shared.send(msg) {
            Ok(())
        } else {
            Err(self.closed_error())
        }
    }

    /// Stops the process with the stop sequence (reason "retired") and waits
    /// for it; the tasks end with it.
    pub async fn shutdown(self) -> StopOutcome {
        self.shutdown_with(StopReason::Retired).await
    }

    /// [`shutdown`](Self::shutdown) with an explicit reason (for the logs).
    pub async fn shutdown_with(mut self, reason: StopReason) -> StopOutcome {
        let (tx, rx) = oneshot::channel();
        let sent = match self.control.take() {
            Some(control) => control
                .send(StopRequest {
                    reason,
                    reply: Some(tx),
                    _pending: PendingStop::new(&self.accounting),
                })
                .is_ok(),
            None => false,
        };
        let tail = self.shared.stderr.lines();
        drop(self);
        match (sent, rx.await) {
            (true, Ok(outcome)) => outcome,
            // The monitor is gone (its runtime is shutting down); the process
            // handle's own drop has stopped it.
            _ => StopOutcome {
                cause: ExitCause::Unknown,
                stage: StopStage::AlreadyExited,
                group_reaped: 0,
                stderr_tail: tail,
            },
        }
    }

    /// Whether a crash of this connection has been counted (the manager
    /// counts each broken connection once as a restart).
    pub(crate) fn mark_crash_counted(&self) -> bool {
        !self.crash_counted.swap(true, Ordering::SeqCst)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The token lets the writer close stdin first; the request carries a
        // `PendingStop`, so `Accounting::wait_for_stops` counts this stop from now until
        // the monitor has run it (if the monitor is gone with its runtime,
        // the request is dropped here and the process handle's own drop
        // kills and reaps).
        self.closing.cancel();
        if let Some(control) = self.control.take() {
            let _ = control.send(StopRequest {
                reason: StopReason::Dropped,
                reply: None,
                _pending: PendingStop::new(&self.accounting),
            });
        }
    }
}
