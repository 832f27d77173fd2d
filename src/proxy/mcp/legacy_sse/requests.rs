//! A client request POSTed on the legacy transport: accepted at once (202),
//! run in a task, and answered on the session's stream.
//!
//! The running is Streamable HTTP's own: pooled mode borrows a warm process
//! per request and relays the server's requests with `relay::call`; session
//! mode calls the session's process with `calls::call`. What the server
//! sends during the request goes on the stream before the response (both
//! use the stream's sender as the request's channel of related messages).
//!
//! Invariant: every request accepted here is answered exactly once on the
//! stream while the stream is open, and none outlives its session: the task
//! holds the request's in-flight registration, whose cancel token fires on
//! the client's `notifications/cancelled` and when the session ends (the
//! stream closed), which cancels the call upstream and hands a pooled
//! process back. The metrics record each request once, when it ends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Mode;
use crate::jsonrpc::{ErrorObject, Id, error_response, response};
use crate::metrics::Outcome;
use crate::proxy::mcp::calls::{self, Ending};
use crate::proxy::mcp::initialize::{pooled_initialize_result, refused_in_pooled_mode};
use crate::proxy::mcp::record::{Reply, Tally};
use crate::proxy::mcp::sessions::Session;
use crate::proxy::mcp::sse::accepted;
use crate::proxy::mcp::{McpState, modern, pool_error, relay};
use crate::proxy::transport::error::ProxyError;
use crate::upstream::connection::OutgoingRequest;

/// The protocol version of the HTTP+SSE transport.
const LEGACY_VERSION: &str = "2024-11-05";

/// Accepts `request` of `session`, whose stream is `outbox`, and answers it
/// there. `Err` only for what the POST itself is refused with (404).
pub(super) fn start(
    st: &Arc<McpState>,
    session: Arc<Session>,
    outbox: mpsc::Sender<Value>,
    request: OutgoingRequest,
    tally: Tally,
) -> Result<Reply, ProxyError> {
    let label = request.method.clone();
    if st.config.mode == Mode::Pooled
        && let Some((answer, outcome)) = answer_locally(st, &session, &request)
    {
        send_later(outbox, answer);
        return Ok(Reply::Done(accepted(), outcome));
    }
    let guard = match session.begin(&request.id) {
        Ok(guard) => guard,
        Err(ProxyError::SessionNotFound) => return Err(ProxyError::SessionNotFound),
        // A request id still in flight: refused on the stream, as a
        // Streamable HTTP reply would carry it.
        Err(e) => {
            let error = error_response(Some(&request.id), ErrorObject::invalid_request(e));
            send_later(outbox, error);
            return Ok(Reply::Done(accepted(), Outcome::Error));
        }
    };
    let st = st.clone();
    tokio::spawn(async move {
        let cancel = guard.cancel_token().clone();
        let (answer, outcome) = match st.config.mode {
            Mode::Pooled => pooled_call(&st, &session, request, &outbox, &cancel).await,
            Mode::Session => session_call(&st, &session, request, &outbox, &cancel).await,
        };
        drop(guard);
        tally.record(&label, outcome);
        // Fails only when the stream is gone, and the request with it.
        if outbox.send(answer).await.is_err() {
            tracing::debug!(method = %label, "legacy SSE: the stream closed before the answer");
        }
    });
    Ok(Reply::Forwarded(accepted()))
}

/// Pooled mode's answers that need no process (as `pooled.rs` answers them
/// on Streamable HTTP): `initialize` from the pool's handshake, `ping`,
/// `logging/setLevel` (not applied: shared processes), and the methods
/// pooled mode refuses.
fn answer_locally(
    st: &McpState,
    session: &Session,
    request: &OutgoingRequest,
) -> Option<(Value, Outcome)> {
    let id = &request.id;
    let ok = |result: Value| Some((response(id, result), Outcome::Ok));
    let refuse = |error: ErrorObject| Some((error_response(Some(id), error), Outcome::Error));
    match request.method.as_str() {
        "initialize" => {
            let params = request.params.clone().unwrap_or(Value::Null);
            let requested = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if !session.set_client_initialize(params) {
                return refuse(ErrorObject::invalid_request(
                    "this session is already initialized; open a new stream to start a new one",
                ));
            }
            let mut result = pooled_initialize_result(&st.initialize_result, requested.as_deref());
            // This transport's own version, which Streamable HTTP does not
            // list: a client that asks for it here is answered in it.
            if requested.as_deref() == Some(LEGACY_VERSION) {
                result["protocolVersion"] = Value::from(LEGACY_VERSION);
            }
            ok(result)
        }
        "ping" | "logging/setLevel" => ok(json!({})),
        method => refused_in_pooled_mode(method).and_then(|why| {
            refuse(ErrorObject::method_not_found(method).with_data(Value::String(why.into())))
        }),
    }
}

/// Pooled mode: a warm process for this request alone, returned after.
async fn pooled_call(
    st: &McpState,
    session: &Session,
    request: OutgoingRequest,
    outbox: &mpsc::Sender<Value>,
    cancel: &CancellationToken,
) -> (Value, Outcome) {
    let id = request.id.clone();
    // A modern call parked for its client's input gives way first (MRTR).
    modern::make_room(st);
    let conn = tokio::select! {
        got = st.pool.get() => match got {
            Ok(conn) => conn,
            Err(e) => {
                let e = pool_error(st, e);
                let outcome = e.outcome();
                return (refusal(&id, &e), outcome);
            }
        },
        () = cancel.cancelled() => return cancelled(&id, &request.method),
    };
    let timeout = st.config.request_timeout;
    let (answer, ending) = relay::call(
        &conn,
        session,
        request,
        Some(outbox.clone()),
        timeout,
        cancel,
    )
    .await;
    drop(conn); // back to the pool (or destroyed if broken) before the answer waits for room
    // The relay forwards the server's text untouched; this transport's
    // outbox carries trees (its volume is not the fast path's concern).
    match answer.to_value() {
        Ok(answer) => (answer, ending.outcome()),
        Err(e) => {
            let error = ErrorObject::upstream_protocol_error(format!(
                "the server's response could not be read back: {e}"
            ));
            (error_response(Some(&id), error), Outcome::UpstreamFailed)
        }
    }
}

/// Session mode: the session's own process; its `initialize` is the
/// client's, bounded as the handshake is (`--create-timeout`).
async fn session_call(
    st: &McpState,
    session: &Session,
    request: OutgoingRequest,
    outbox: &mpsc::Sender<Value>,
    cancel: &CancellationToken,
) -> (Value, Outcome) {
    let Some(conn) = session.conn() else {
        let error = ErrorObject::upstream_closed("the session has no server process");
        return (
            error_response(Some(&request.id), error),
            Outcome::UpstreamFailed,
        );
    };
    let timeout: Duration = if request.method == "initialize" {
        st.config.pool.create_timeout
    } else {
        st.config.request_timeout
    };
    let (answer, ending) = calls::call(conn, request, Some(outbox.clone()), timeout, cancel).await;
    (answer, ending.outcome())
}

/// A refusal the POST could not carry (it was already accepted) as the
/// request's JSON-RPC error, with the code and message Streamable HTTP
/// would have answered in its error body.
fn refusal(id: &Id, e: &ProxyError) -> Value {
    error_response(Some(id), ErrorObject::new(e.code(), e.to_string()))
}

fn cancelled(id: &Id, method: &str) -> (Value, Outcome) {
    let error = ErrorObject::request_timeout(format!("{method}: cancelled"));
    (error_response(Some(id), error), Ending::Cancelled.outcome())
}

/// Puts `message` on the stream without holding up the POST: a full stream
/// makes the task wait, a closed one drops it (and its client is gone).
fn send_later(outbox: mpsc::Sender<Value>, message: Value) {
    if let Err(mpsc::error::TrySendError::Full(message)) = outbox.try_send(message) {
        tokio::spawn(async move {
            let _ = outbox.send(message).await;
        });
    }
}
