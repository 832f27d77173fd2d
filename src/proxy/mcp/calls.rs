//! Running one client request against an upstream connection and turning the
//! outcome into an HTTP reply (JSON or SSE).
//!
//! Invariant: every forwarded request is answered exactly once — with the
//! server's response, or with a JSON-RPC error naming why not (timeout,
//! cancellation, crash) — and a request that stops being wanted (timeout,
//! client disconnect, `notifications/cancelled`) is cancelled upstream, which
//! the connection does when its `call` future is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::Response;
use futures_util::Stream;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::sse::{Outbound, json_reply, sse_reply};
use crate::jsonrpc::{ErrorObject, Id, error_response};
use crate::metrics::Outcome;
use crate::proxy::transport::negotiate::ReplyFormat;
use crate::upstream::connection::{Connection, OutgoingRequest, RawMessage};

/// Related messages buffered per request; past that the connection drops
/// them rather than stall its reader.
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
/// giving up early if `cancel` fires. Returns the message for the client as
/// a `Value` (for callers that look inside it; [`call_raw`] forwards it
/// untouched).
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
            Ok(Err(e)) => (e.to_response(&id), Ending::UpstreamFailed),
            Err(_elapsed) => timed_out(&id, &method, timeout),
        },
        () = cancel.cancelled() => cancelled(&id, &method),
    }
}

/// [`call`] for a caller that only forwards the answer: the server's
/// response comes back as the JSON text it wrote (its id restored), never
/// parsed into a tree (`Connection::call_response`).
pub(crate) async fn call_raw(
    conn: &Connection,
    request: OutgoingRequest,
    events: Option<mpsc::Sender<Value>>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> (RawMessage, Ending) {
    let id = request.id.clone();
    let method = request.method.clone();
    let (message, ending) = tokio::select! {
        outcome = tokio::time::timeout(timeout, conn.call_response(request, events)) => match outcome {
            Ok(Ok(response)) => {
                let error = response.is_error();
                return (response.into_message(), Ending::Answered { error });
            }
            Ok(Err(e)) => (e.to_response(&id), Ending::UpstreamFailed),
            Err(_elapsed) => timed_out(&id, &method, timeout),
        },
        () = cancel.cancelled() => cancelled(&id, &method),
    };
    (raw(&message).into(), ending)
}

fn timed_out(id: &Id, method: &str, timeout: Duration) -> (Value, Ending) {
    (
        error_response(
            Some(id),
            ErrorObject::request_timeout(format!(
                "{method}: no response from the server within {}; the request was cancelled",
                humantime::format_duration(timeout)
            )),
        ),
        Ending::TimedOut,
    )
}

fn cancelled(id: &Id, method: &str) -> (Value, Ending) {
    (
        error_response(
            Some(id),
            ErrorObject::request_timeout(format!("{method}: cancelled")),
        ),
        Ending::Cancelled,
    )
}

/// A reply's message: a `Value` the proxy built or looked into, or JSON
/// text passed through from the server as it is.
pub(crate) trait IntoMessage {
    /// The message as JSON text for the reply body.
    fn into_message(self) -> RawMessage;
}

impl IntoMessage for Value {
    fn into_message(self) -> RawMessage {
        raw(&self).into()
    }
}

impl IntoMessage for Box<RawValue> {
    fn into_message(self) -> RawMessage {
        self.into()
    }
}

impl IntoMessage for RawMessage {
    fn into_message(self) -> RawMessage {
        self
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
/// resolves to the final message. Either way the work runs inside what the
/// client holds — the handler's future for JSON, the response body for SSE —
/// so a client that goes away drops it, which cancels the call upstream. No
/// task is spawned: the SSE body polls the call itself (and a graceful
/// shutdown drains it with the connection). `done` is called with the ending
/// once the request is over.
pub(crate) async fn reply<W, F, M>(
    format: ReplyFormat,
    id: Id,
    keep_alive: Option<Duration>,
    work: W,
    done: impl FnOnce(Ending) + Send + Unpin + 'static,
) -> Response
where
    W: FnOnce(Option<mpsc::Sender<Value>>) -> F,
    F: Future<Output = (M, Ending)> + Send + 'static,
    M: IntoMessage + Send + Unpin + 'static,
{
    match format {
        ReplyFormat::Json => {
            // Dropped before the answer (the client went away): cancelled.
            let mut report = Report::new(done);
            let (message, ending) = work(None).await;
            report.ending = ending;
            drop(report);
            json_reply(message.into_message())
        }
        ReplyFormat::Sse => {
            let (events_tx, mut events) = mpsc::channel::<Value>(EVENTS_BUFFER);
            // The call gets a clone, so the sender it drops as it ends is not
            // the last one: that drop would wake this task in the middle of
            // its own poll (see `quiet_recv`). Ours goes after the waker is
            // defused.
            let mut call = Box::pin(work(Some(events_tx.clone())));
            let mut report = Report::new(done);
            // The headers wait for the first thing the call produces: if it
            // is the response, with nothing before it, the reply is plain
            // JSON (one write, no stream; both were accepted), else the SSE
            // stream starts with it. A slow call gets its stream after
            // `FIRST_MESSAGE_WAIT` as before, so intermediaries see headers.
            let hold = keep_alive.map_or(FIRST_MESSAGE_WAIT, |k| k.min(FIRST_MESSAGE_WAIT));
            let first = tokio::select! {
                // Related messages first: they were sent before the response.
                biased;
                Some(event) = events.recv() => Some(event),
                (message, ending) = call.as_mut() => {
                    match events.try_recv().ok().or_else(|| quiet_recv(&mut events)) {
                        // Nothing came before the response: JSON.
                        None => {
                            report.ending = ending;
                            drop(report);
                            return json_reply(message.into_message());
                        }
                        Some(event) => {
                            report.ending = ending;
                            drop(events_tx);
                            let source = SseSource {
                                first: Some(event),
                                call: None::<Pin<Box<F>>>,
                                events,
                                response: Some(message),
                                report,
                            };
                            return sse_reply(id, source, keep_alive);
                        }
                    }
                }
                () = tokio::time::sleep(hold) => None,
            };
            // The stream ends with the call, not with the channel.
            drop(events_tx);
            let source = SseSource {
                first,
                call: Some(call),
                events,
                response: None,
                report,
            };
            sse_reply(id, source, keep_alive)
        }
    }
}

/// How long an SSE-capable reply holds its headers back waiting for the
/// first message (at most the keep-alive interval): long enough for any fast
/// call to be answered as JSON, short next to any intermediary's timeout.
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(1);

/// A message queued on `events`, read with a waker that does nothing, so
/// that the waker this task registered while it waited is no longer there
/// when the last sender is dropped: a wake-up of the task in the middle of
/// its own poll, which tokio answers by rescheduling it and waking another
/// worker for nothing (docs/PERFORMANCE.md, "Fewer wake-ups and fewer
/// boxes"). `try_recv` stays the authority on what is queued: this only
/// catches a message that came just after it.
fn quiet_recv(events: &mut mpsc::Receiver<Value>) -> Option<Value> {
    match events.poll_recv(&mut Context::from_waker(std::task::Waker::noop())) {
        Poll::Ready(event) => event,
        Poll::Pending => None,
    }
}

/// The body of an SSE reply: related messages as they come, then — after any
/// still queued — the response, then the end.
struct SseSource<F, M, D: FnOnce(Ending)> {
    /// The related message that started the stream, until it is sent.
    first: Option<Value>,
    /// The call, until it resolves.
    call: Option<Pin<Box<F>>>,
    events: mpsc::Receiver<Value>,
    /// The response, once the call resolved and until it is sent.
    response: Option<M>,
    report: Report<D>,
}

impl<F, M, D> Stream for SseSource<F, M, D>
where
    F: Future<Output = (M, Ending)>,
    M: IntoMessage + Unpin,
    D: FnOnce(Ending) + Unpin,
{
    type Item = Outbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let this = self.get_mut();
        if let Some(event) = this.first.take() {
            return Poll::Ready(Some(Outbound::Related(raw(&event))));
        }
        if let Some(call) = this.call.as_mut() {
            // Related messages first: they were sent before the response.
            if let Poll::Ready(Some(event)) = this.events.poll_recv(cx) {
                return Poll::Ready(Some(Outbound::Related(raw(&event))));
            }
            let Poll::Ready((response, ending)) = call.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            this.call = None;
            this.report.ending = ending;
            this.response = Some(response);
        }
        if let Ok(event) = this.events.try_recv() {
            return Poll::Ready(Some(Outbound::Related(raw(&event))));
        }
        Poll::Ready(this.response.take().map(|response| {
            this.report.finish();
            Outbound::Final(response.into_message())
        }))
    }
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

impl<D: FnOnce(Ending)> Report<D> {
    /// Reports now (the response is on its way).
    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.ending);
        }
    }
}

impl<D: FnOnce(Ending)> Drop for Report<D> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker that counts its wake-ups.
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A receiver with a counting waker registered (as the reply's select
    /// leaves it), and its only sender.
    fn waiting() -> (mpsc::Sender<Value>, mpsc::Receiver<Value>, Arc<Counting>) {
        let (tx, mut rx) = mpsc::channel::<Value>(4);
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        assert!(rx.poll_recv(&mut Context::from_waker(&waker)).is_pending());
        (tx, rx, counter)
    }

    #[test]
    fn the_last_sender_dropped_after_a_quiet_read_wakes_nobody() {
        // Without the quiet read, the drop wakes the task that waited.
        let (tx, _rx, woken) = waiting();
        drop(tx);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);

        let (tx, mut rx, woken) = waiting();
        assert_eq!(quiet_recv(&mut rx), None);
        drop(tx);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_quiet_read_still_returns_what_is_queued() {
        let (tx, mut rx, _woken) = waiting();
        tx.try_send(Value::from(1)).unwrap();
        assert_eq!(quiet_recv(&mut rx), Some(Value::from(1)));
        assert_eq!(quiet_recv(&mut rx), None);
    }
}
