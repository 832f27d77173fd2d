//! The reader task: decodes the child's stdout and routes every message —
//! responses to their callers (client id restored), progress to the caller's
//! events, server requests and notifications to the subscriber or answered
//! here (see `docs/UPSTREAM.md`, "Routing").
//!
//! A success response is routed from its envelope alone (`jsonrpc`, `id`,
//! and where `result` starts and ends, decoded with borrowed `RawValue`s):
//! its `result` is handed on as a slice of the line (no copy), behind the
//! client's id, never built into a `Value` tree (a tree costs 20x the text's size and runs at
//! tens of MiB/s on structured JSON; see docs/PERFORMANCE.md). Everything
//! else (errors, server requests, notifications, anything unusual) takes the
//! full path: parsed into a `Value` and classified by `Message::from_value`.
//!
//! Invariant: a recoverable line error never stops the reader; an oversize
//! frame closes the connection, since an answer may have vanished with it.
//! The envelope path accepts only what the full path would accept as the
//! same response (anything it is unsure of goes the full path).

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::process::ChildStdout;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use super::{CallError, RawMessage, Response, ServerMessage, Shared, envelope};
use crate::framing::{self, LineError, RawLineCodec};
use crate::jsonrpc::{ErrorObject, Id, Message, error_response, id_of, response};
use crate::upstream::ids;

/// Decodes stdout and routes each message until EOF or a fatal read error.
pub(super) async fn read_loop(stdout: Option<ChildStdout>, max_frame: usize, shared: Arc<Shared>) {
    let Some(stdout) = stdout else {
        return;
    };
    let mut frames = FramedRead::new(stdout, RawLineCodec::new(max_frame));
    while let Some(item) = frames.next().await {
        match item {
            Ok(Ok(line)) => {
                shared.touch();
                if deliver_envelope(&shared, &line) {
                    continue;
                }
                match framing::parse_line(&line) {
                    Ok(value) => route(&shared, value),
                    Err(e) => {
                        tracing::warn!(server = %shared.name, pid = shared.pid, error = %e, "upstream wrote a line that is not a JSON-RPC message on stdout; skipped");
                    }
                }
            }
            Ok(Err(LineError::FrameTooLarge { limit })) => {
                // A message vanished and cannot be attributed: no answer on
                // this stream can be trusted to be complete any more.
                shared.close(CallError::Protocol(ErrorObject::upstream_protocol_error(
                    format!(
                        "{} (pid {}) wrote a message larger than the {limit}-byte frame limit (max_frame); the connection is discarded",
                        shared.name, shared.pid
                    ),
                )));
            }
            Ok(Err(e)) => {
                tracing::warn!(server = %shared.name, pid = shared.pid, error = %e, "upstream wrote a line that is not a JSON-RPC message on stdout; skipped");
            }
            Err(e) => {
                tracing::warn!(server = %shared.name, pid = shared.pid, error = %e, "upstream stdout stream ended with an error");
                break;
            }
        }
    }
}

/// The envelope path: if `line` is a success response to a request in
/// flight, hands it to its caller without building a tree and returns true.
/// False (nothing done) for anything else, which then takes the full path.
///
/// The message handed on is spliced ([`RawMessage`]): the proxy's head with
/// the client's id, the server's `result` as a slice of `line` (its memory,
/// not a copy: a large result passes through the proxy uncopied), and `}`.
fn deliver_envelope(shared: &Shared, line: &Bytes) -> bool {
    let Some((n, result)) = envelope::success_response(line) else {
        return false;
    };
    let Some(p) = shared.lock().in_flight.remove(&n) else {
        tracing::debug!(server = %shared.name, pid = shared.pid, id = n, "response to no request in flight (cancelled or unknown); dropped");
        return true;
    };
    let outcome = match serde_json::to_vec(&p.client_id) {
        Ok(id) => {
            let mut head = Vec::with_capacity(RESULT_HEAD.len() + id.len() + RESULT_MEMBER.len());
            head.extend_from_slice(RESULT_HEAD);
            head.extend_from_slice(&id);
            head.extend_from_slice(RESULT_MEMBER);
            Ok(Response::new(
                RawMessage::spliced(
                    Bytes::from(head),
                    slice_of(line, result.get().as_bytes()),
                    Bytes::from_static(b"}"),
                ),
                false,
            ))
        }
        // Unreachable (an id the client sent is written back); the caller
        // still gets an answer.
        Err(e) => Err(CallError::Protocol(ErrorObject::upstream_protocol_error(
            format!("the server's response could not be forwarded: {e}"),
        ))),
    };
    let _ = p.reply.send(outcome);
    true
}

/// What a forwarded success response starts with, before the client's id.
const RESULT_HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
/// What comes between the client's id and the server's `result`.
const RESULT_MEMBER: &[u8] = br#","result":"#;

/// `part` (text borrowed from `line`, as the envelope's `RawValue`s are) as
/// a slice sharing `line`'s memory. The bounds are checked rather than
/// assumed, so a part from elsewhere is copied, never a panic.
fn slice_of(line: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= line.len() => line.slice(start..end),
        _ => Bytes::copy_from_slice(part),
    }
}

/// Routes one decoded value from the server.
fn route(shared: &Shared, value: Value) {
    let id_hint = id_of(&value);
    let msg = match Message::from_value(value) {
        Ok(msg) => msg,
        Err(e) => {
            // If it names a request of ours, that request's answer is broken.
            if let Some(n) = id_hint.as_ref().and_then(ids::counter_of) {
                let pending = shared.lock().in_flight.remove(&n);
                if let Some(p) = pending {
                    let _ = p.reply.send(Err(CallError::Protocol(
                        ErrorObject::upstream_protocol_error(format!(
                            "the server answered with an invalid JSON-RPC message: {e}"
                        )),
                    )));
                    return;
                }
            }
            tracing::warn!(server = %shared.name, pid = shared.pid, error = %e, "upstream wrote JSON that is not a JSON-RPC message; ignored");
            return;
        }
    };
    match msg {
        Message::Response { id, result } => deliver(shared, Some(id), Ok(result)),
        Message::ErrorResponse { id, error } => deliver(shared, id, Err(error)),
        Message::Request { id, method, params } => server_request(shared, id, method, params),
        Message::Notification { method, params } => server_notification(shared, method, params),
    }
}

/// Hands a response to the caller waiting for it, with the client's id.
fn deliver(shared: &Shared, id: Option<Id>, outcome: Result<Value, ErrorObject>) {
    let pending = {
        let mut state = shared.lock();
        match id.as_ref() {
            Some(id) => ids::counter_of(id).and_then(|n| state.in_flight.remove(&n)),
            // An error without an id answers a request the server could not
            // read; with exactly one in flight it can only be that one.
            None if state.in_flight.len() == 1 => {
                let n = state.in_flight.keys().next().copied();
                n.and_then(|n| state.in_flight.remove(&n))
            }
            None => None,
        }
    };
    let Some(p) = pending else {
        tracing::debug!(server = %shared.name, pid = shared.pid, id = ?id, "response to no request in flight (cancelled or unknown); dropped");
        return;
    };
    let (value, is_error) = match outcome {
        Ok(result) => (response(&p.client_id, result), false),
        Err(error) => (error_response(Some(&p.client_id), error), true),
    };
    let reply = serde_json::value::to_raw_value(&value)
        .map(|raw| Response::new(RawMessage::from(raw), is_error))
        .map_err(|e| {
            CallError::Protocol(ErrorObject::upstream_protocol_error(format!(
                "the server's response could not be forwarded: {e}"
            )))
        });
    let _ = p.reply.send(reply);
}

/// The stream of the only request in flight, when exactly one is in flight
/// and it has one (an SSE reply).
///
/// MCP's stdio transport says nothing of which request a server message
/// relates to, so the rule in docs/UPSTREAM.md ("Connections") applies: a message that arrives
/// while exactly one request is in flight belongs to that request. Delivering
/// it here, in the reader, before the next line is read, keeps it ahead of
/// that request's response — routing it through another task would let the
/// response overtake it.
fn sole_request_stream(shared: &Shared) -> Option<mpsc::Sender<Value>> {
    let state = shared.lock();
    let mut pending = state.in_flight.values();
    match (pending.next(), pending.next()) {
        (Some(only), None) => only.events.clone(),
        _ => None,
    }
}

fn server_request(shared: &Shared, id: Id, method: String, params: Option<Value>) {
    if method == "ping" {
        shared.send(response(&id, json!({})));
        return;
    }
    let subscriber = shared.subscriber();
    // Only a proxy that forwards client answers back (a subscriber in session
    // mode, a relay in pooled mode) may let a server request travel on a
    // client's stream.
    let relayed = subscriber.is_some() || shared.relay.load(Ordering::Relaxed);
    if relayed && let Some(stream) = sole_request_stream(shared) {
        let message = Message::Request {
            id: id.clone(),
            method: method.clone(),
            params: params.clone(),
        };
        if stream.try_send(message.into_value()).is_ok() {
            return;
        }
    }
    let refusal = match subscriber {
        Some(tx) => match tx.try_send(ServerMessage::Request {
            id: id.clone(),
            method: method.clone(),
            params,
        }) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => ErrorObject::internal_error(format!(
                "the proxy's queue of server messages is full; {method} not delivered"
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => ErrorObject::method_not_found(&method),
        },
        None => ErrorObject::method_not_found(&method),
    };
    tracing::debug!(server = %shared.name, pid = shared.pid, %method, "server request with no client to answer it; refused");
    shared.send(error_response(Some(&id), refusal));
}

fn server_notification(shared: &Shared, method: String, mut params: Option<Value>) {
    if method == "notifications/progress" {
        let n = ids::progress_token(params.as_ref()).and_then(Value::as_u64);
        let target = n.and_then(|n| {
            let state = shared.lock();
            let p = state.in_flight.get(&n)?;
            Some((p.progress_token.clone()?, p.events.clone()))
        });
        if let Some((token, events)) = target {
            if let (Some(events), Some(p)) = (events, params.as_mut()) {
                ids::set_progress_token(p, token);
                let note = Message::Notification { method, params }.into_value();
                if events.try_send(note).is_err() {
                    tracing::debug!(server = %shared.name, "progress event dropped: the caller's channel is full or closed");
                }
            }
            return;
        }
    }
    if let Some(stream) = sole_request_stream(shared) {
        let message = Message::Notification {
            method: method.clone(),
            params: params.clone(),
        };
        if stream.try_send(message.into_value()).is_ok() {
            return;
        }
    }
    match shared.subscriber() {
        Some(tx) => {
            if tx
                .try_send(ServerMessage::Notification { method, params })
                .is_err()
            {
                tracing::debug!(server = %shared.name, "server notification dropped: the subscriber's queue is full");
            }
        }
        None => {
            tracing::trace!(server = %shared.name, %method, "server notification with no subscriber; dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_of_the_line_is_sliced_and_anything_else_copied() {
        let line = Bytes::from(b"{\"result\":[1, 2]}".to_vec());
        let part = &line[10..16];
        let sliced = slice_of(&line, part);
        assert_eq!(&sliced[..], b"[1, 2]");
        // The same memory: nothing was copied.
        assert_eq!(sliced.as_ptr(), part.as_ptr());
        let elsewhere = b"[1, 2]".to_vec();
        let copied = slice_of(&line, &elsewhere);
        assert_eq!(&copied[..], b"[1, 2]");
        assert_ne!(copied.as_ptr(), elsewhere.as_ptr());
    }
}
