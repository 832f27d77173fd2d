//! Running one client request against an upstream connection and turning the
//! outcome into an HTTP reply (JSON or SSE).
//!
//! Invariant: every forwarded request is answered exactly once — with the
//! server's response, or with a JSON-RPC error naming why not (timeout,
//! cancellation, crash) — and a request that stops being wanted (timeout,
//! client disconnect, `notifications/cancelled`) is cancelled upstream, which
//! the connection does when its `call` future is dropped.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::response::Response;
use futures_util::stream;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::negotiate::ReplyFormat;
use super::sse::{Outbound, json_reply, sse_reply};
use crate::jsonrpc::{ErrorObject, Id, error_response};
use crate::metrics::Outcome;
use crate::upstream::connection::{CallError, Connection, OutgoingRequest};

/// Related messages buffered per request before the server is slowed down.
const EVENTS_BUFFER: usize = 64;

/// How a forwarded request ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Answered { error: bool },
    TimedOut,
    Cancelled,
    UpstreamFailed,
}

impl Ending {
    pub(crate) fn outcome(self) -> Outcome {
        match self {
            Ending::Answered { error: false } => Outcome::Ok,
            Ending::Answered { error: true } => Outcome::Error,
            Ending::TimedOut => Outcome::Timeout,
            Ending::Cancelled => Outcome::Cancelled,
            Ending::UpstreamFailed => Outcome::UpstreamFailed,
        }
    }
}

/// Sends `request` on `conn` and waits for its response, at most `timeout`,
/// giving up early if `cancel` fires. Returns the message for the client.
pub(crate) async fn call(
    conn: &Connection,
    request: OutgoingRequest,
    events: Option<mpsc::Sender<Value>>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> (Value, Ending) {
    let id = request.id.clone();
    let method = request.method.clone();
    tokio::select! {
        outcome = tokio::time::timeout(timeout, conn.call(request, events)) => match outcome {
            Ok(Ok(response)) => {
                let error = response.get("error").is_some();
                (response, Ending::Answered { error })
            }
            Ok(Err(e @ (CallError::Closed(_) | CallError::Protocol(_)))) => {
                (e.to_response(&id), Ending::UpstreamFailed)
            }
            Err(_elapsed) => (
                error_response(
                    Some(&id),
                    ErrorObject::request_timeout(format!(
                        "{method}: no response from the server within {}; the request was cancelled",
                        humantime::format_duration(timeout)
                    )),
                ),
                Ending::TimedOut,
            ),
        },
        () = cancel.cancelled() => (
            error_response(
                Some(&id),
                ErrorObject::request_timeout(format!("{method}: cancelled")),
            ),
            Ending::Cancelled,
        ),
    }
}

/// Serialises a message for a reply body.
pub(crate) fn raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| {
        // Unreachable for a `Value`; a fixed valid message keeps the stream sane.
        RawValue::from_string(
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#
                .to_owned(),
        )
        .unwrap_or_default()
    })
}

/// Answers a forwarded request in `format`.
///
/// `work` receives the sender for related messages (only for SSE) and
/// resolves to the final message. For JSON the caller's future runs it, so a
/// client that disconnects drops it (and cancels upstream). For SSE it runs in
/// a task tracked by `tracker` (shutdown drains it) that stops — dropping the
/// call, which cancels it upstream — as soon as the client stops reading.
/// `done` is called with the ending once the request is over.
pub(crate) async fn reply<W, F>(
    format: ReplyFormat,
    id: Id,
    keep_alive: Option<Duration>,
    tracker: &TaskTracker,
    work: W,
    done: impl FnOnce(Ending) + Send + 'static,
) -> Response
where
    W: FnOnce(Option<mpsc::Sender<Value>>) -> F,
    F: Future<Output = (Value, Ending)> + Send + 'static,
{
    match format {
        ReplyFormat::Json => {
            // Dropped before the answer (the client went away): cancelled.
            let mut report = Report::new(done);
            let (message, ending) = work(None).await;
            report.ending = ending;
            drop(report);
            json_reply(raw(&message))
        }
        ReplyFormat::Sse => {
            let (out_tx, out_rx) = mpsc::channel::<Outbound>(EVENTS_BUFFER);
            let (ev_tx, ev_rx) = mpsc::channel::<Value>(EVENTS_BUFFER);
            let fut = work(Some(ev_tx));
            tracker.spawn(pump(fut, ev_rx, out_tx, done));
            let mut out_rx = out_rx;
            let source = stream::poll_fn(move |cx| out_rx.poll_recv(cx));
            sse_reply(id, source, keep_alive)
        }
    }
}

/// Moves related messages and then the final response to the SSE body.
async fn pump<F>(
    fut: F,
    mut events: mpsc::Receiver<Value>,
    out: mpsc::Sender<Outbound>,
    done: impl FnOnce(Ending),
) where
    F: Future<Output = (Value, Ending)>,
{
    let mut report = Report::new(done);
    let mut fut = pin!(fut);
    report.ending = loop {
        tokio::select! {
            biased;
            Some(event) = events.recv() => {
                if out.send(Outbound::Related(raw(&event))).await.is_err() {
                    break Ending::Cancelled; // the client went away: dropping `fut` cancels
                }
            }
            (message, ending) = &mut fut => {
                // Related messages sent just before the response go first.
                while let Ok(event) = events.try_recv() {
                    let _ = out.send(Outbound::Related(raw(&event))).await;
                }
                let _ = out.send(Outbound::Final(raw(&message))).await;
                break ending;
            }
            () = out.closed() => break Ending::Cancelled,
        }
    };
}

/// Reports how a request ended exactly once, also when its future is
/// dropped half-way (then as cancelled).
struct Report<D: FnOnce(Ending)> {
    done: Option<D>,
    ending: Ending,
}

impl<D: FnOnce(Ending)> Report<D> {
    fn new(done: D) -> Self {
        Self {
            done: Some(done),
            ending: Ending::Cancelled,
        }
    }
}

impl<D: FnOnce(Ending)> Drop for Report<D> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.ending);
        }
    }
}
