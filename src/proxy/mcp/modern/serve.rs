//! Pooled mode's modern front: a validated modern request is answered by the
//! proxy (`server/discover`, unknown and removed methods) or forwarded to a
//! warm process exactly as a legacy request is (ids and progress tokens
//! rewritten by the connection), and the answer is translated.
//!
//! Invariants:
//! - a method the pool's server did not advertise, and every method the
//!   2026-07-28 revision removed, is answered 404/-32601 here: no process;
//! - nothing but the request's own progress and the log messages it asked
//!   for reaches its SSE stream, and never a server request: the proxy
//!   answers each one upstream before the call goes on (`ping` with `{}`,
//!   the rest with an error), so the process never waits on a modern client;
//!   one the client declared no capability for ends the call with -32021;
//! - closing the stream (or the client going away on a JSON reply) drops
//!   the call, which cancels it upstream (`calls::reply`);
//! - a `tools/call` whose `Mcp-Param-*` headers disagree with its tool's
//!   `x-mcp-header` annotations is refused before it is sent: before any
//!   process is touched when the tool catalog knows the tool, else after a
//!   listing on the process checked out for it (`tool_catalog`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Json;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::discover::{advertises, discover_result, required_capability, server_info};
use super::mrtr::{Job, Round, drive, supports_input};
use super::parked::{Binding, make_room};
use super::server_requests::{Asked, classify, missing_capability};
use super::tool_catalog::{ToolCatalog, is_list_change};
use super::translate::{final_message, forwards_notification, status_for};
use super::validate::{LogLevel, ModernError, ModernRequest, validate};
use crate::jsonrpc::{ErrorObject, Id, Message, error_response, response};
use crate::metrics::Outcome;
use crate::proxy::mcp::calls::{self, Ending};
use crate::proxy::mcp::record::{Reply, Tally};
use crate::proxy::mcp::sse::{accepted, json_reply};
use crate::proxy::mcp::{McpState, pool_error};
use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::message::IncomingMessage;
use crate::proxy::transport::negotiate::ReplyFormat;
use crate::upstream::connection::{Connection, OutgoingRequest};

/// Server messages buffered between the connection and the filter.
const EVENTS_BUFFER: usize = 64;

/// Why a removed or unknown method is not found, for the error's `data`.
fn why_not_found(method: &str) -> &'static str {
    match method {
        "initialize"
        | "ping"
        | "logging/setLevel"
        | "resources/subscribe"
        | "resources/unsubscribe" => {
            "removed in MCP 2026-07-28 (per-request _meta replaces initialize, logLevel replaces logging/setLevel)"
        }
        m if m.starts_with("tasks/") => {
            "tasks are the io.modelcontextprotocol/tasks extension in 2026-07-28, which this proxy does not offer"
        }
        _ => "unknown method",
    }
}

/// A refusal as the reply to request `id`.
pub(crate) fn refusal(id: Option<&Id>, e: ModernError) -> Reply {
    let outcome = if e.error.code == crate::jsonrpc::code::METHOD_NOT_FOUND {
        Outcome::Error
    } else {
        Outcome::Rejected
    };
    let body = error_response(id, e.error);
    Reply::Done((e.status, Json(body)).into_response(), outcome)
}

/// Serves one modern message in pooled mode.
pub(crate) async fn serve(
    st: &McpState,
    headers: &HeaderMap,
    message: IncomingMessage,
    tally: Tally,
) -> Result<Reply, ProxyError> {
    match message.message {
        // The revision defines no client notification over HTTP (closing a
        // stream is the cancellation): accepted, nothing to forward.
        Message::Notification { .. } => Ok(Reply::Done(accepted(), Outcome::Ok)),
        Message::Response { id, .. } | Message::ErrorResponse { id: Some(id), .. } => Ok(refusal(
            Some(&id),
            ModernError::invalid_request(
                "Invalid Request: a 2026-07-28 client sends no responses (the server sends it no requests)",
            ),
        )),
        Message::ErrorResponse { id: None, .. } => Ok(refusal(
            None,
            ModernError::invalid_request("Invalid Request: a response must carry an id"),
        )),
        Message::Request { id, method, params } => {
            let request = match validate(headers, id.clone(), method, params) {
                Ok(request) => request,
                Err(e) => return Ok(refusal(Some(&id), e)),
            };
            serve_request(st, headers, request, tally).await
        }
    }
}

async fn serve_request(
    st: &McpState,
    headers: &HeaderMap,
    request: ModernRequest,
    tally: Tally,
) -> Result<Reply, ProxyError> {
    let method = request.method.as_str();
    if method == "server/discover" {
        let result = discover_result(&st.initialize_result);
        let body = calls::raw(&response(&request.id, result));
        return Ok(Reply::Done(json_reply(body), Outcome::Ok));
    }
    if method == "subscriptions/listen" {
        let reply = super::listen::listen(
            request.id.clone(),
            request.params.as_ref(),
            st.shutdown.clone(),
            st.config.sse_keep_alive,
        );
        return Ok(Reply::Done(reply, Outcome::Ok));
    }
    let Some(capability) = required_capability(method) else {
        let e = ModernError::method_not_found(method, why_not_found(method));
        return Ok(refusal(Some(&request.id), e));
    };
    if !advertises(&st.initialize_result, capability) {
        let why = format!("the server does not offer {capability}");
        let e = ModernError::method_not_found(method, &why);
        return Ok(refusal(Some(&request.id), e));
    }
    // `Mcp-Param-*` headers, from what the catalog knows; an unknown tool is
    // looked up on the call's process (`forward_with_input`).
    let listing = if method == "tools/call" {
        match st
            .tool_catalog
            .check_known(headers, request.params.as_ref())
        {
            Ok(listing) => listing,
            Err(e) => return Ok(refusal(Some(&request.id), e)),
        }
    } else {
        None
    };
    forward(st, headers, request, tally, listing).await
}

async fn forward(
    st: &McpState,
    headers: &HeaderMap,
    request: ModernRequest,
    tally: Tally,
    listing: Option<u64>,
) -> Result<Reply, ProxyError> {
    // Notifications need a stream; a request that asked for none gets JSON,
    // which also lets its errors carry their HTTP status.
    let format =
        ReplyFormat::for_request(request.has_progress_token() || request.log_level.is_some());
    if supports_input(&request.method) {
        let listing = listing.map(|generation| (generation, headers));
        return forward_with_input(st, request, tally, format, listing).await;
    }
    // A tools/list result is recorded in the catalog unless the list
    // changed while it ran.
    let generation = st.tool_catalog.generation();
    let cursor = request
        .params
        .as_ref()
        .is_some_and(|p| p.get("cursor").is_some_and(|c| !c.is_null()));
    make_room(st);
    let conn = st.pool.get().await.map_err(|e| pool_error(st, e))?;
    let upstream = OutgoingRequest {
        id: request.id.clone(),
        method: request.method.clone(),
        params: request.upstream_params(),
    };
    let info = server_info(&st.initialize_result);
    let timeout = st.config.request_timeout;
    let catalog = st.tool_catalog.clone();
    let filter = Filter {
        level: request.log_level,
        capabilities: request.client_capabilities,
        catalog: catalog.clone(),
    };
    let method = request.method;
    let label = method.clone();
    let error_code = Arc::new(AtomicI64::new(0));
    let code_cell = error_code.clone();
    let done = move |ending: Ending| tally.record(&label, ending.outcome());
    let work = move |events: Option<mpsc::Sender<Value>>| async move {
        let (message, ending) = run_call(&conn, upstream, events, filter, timeout).await;
        drop(conn); // back to the pool (or destroyed if broken)
        if method == "tools/list" {
            catalog.record_relayed(generation, cursor, &message);
        }
        let (message, code) = final_message(message, &method, &info);
        code_cell.store(code.unwrap_or(0), Ordering::Relaxed);
        (message, ending)
    };
    let mut reply = calls::reply(format, request.id, st.config.sse_keep_alive, work, done).await;
    if format == ReplyFormat::Json {
        // The JSON reply is built after the call ended, so the code is known.
        let code = error_code.load(Ordering::Relaxed);
        *reply.status_mut() = status_for((code != 0).then_some(code));
    }
    Ok(Reply::Forwarded(reply))
}

/// A call that may need the client's input (MRTR): a new call checks out a
/// process and runs in a task of its own (`mrtr::drive`); a retry (one with
/// `requestState`) continues the parked call it names. Either way this
/// request gets the call's next message: its result, or `input_required`.
async fn forward_with_input(
    st: &McpState,
    request: ModernRequest,
    tally: Tally,
    format: ReplyFormat,
    listing: Option<(u64, &HeaderMap)>,
) -> Result<Reply, ProxyError> {
    let params = request.params.as_ref();
    let responses = match params.and_then(|p| p.get("inputResponses")) {
        None => Map::new(),
        Some(Value::Object(responses)) => responses.clone(),
        Some(_) => {
            let e = ModernError::invalid_params("Invalid params: inputResponses must be an object");
            return Ok(refusal(Some(&request.id), e));
        }
    };
    let resume = match params.and_then(|p| p.get("requestState")) {
        None => None,
        Some(Value::String(state)) => Some(state.clone()),
        Some(_) => {
            let e = ModernError::invalid_params("Invalid params: requestState must be a string");
            return Ok(refusal(Some(&request.id), e));
        }
    };
    let binding = Binding::of(&request.method, params);
    let start = match resume {
        Some(state) => Err(state),
        None => {
            make_room(st);
            let conn = st.pool.get().await.map_err(|e| pool_error(st, e))?;
            // A tool the catalog did not know: checked against this
            // process's own list before the call is sent. A refusal gives
            // the process back untouched by the call.
            if let Some((generation, headers)) = listing
                && let Err(e) = st
                    .tool_catalog
                    .check_listed(
                        &conn,
                        st.config.request_timeout,
                        generation,
                        headers,
                        request.params.as_ref(),
                    )
                    .await
            {
                drop(conn);
                return Ok(refusal(Some(&request.id), e));
            }
            let mut upstream_params = request.upstream_params();
            if let Some(Value::Object(p)) = upstream_params.as_mut() {
                p.remove("inputResponses");
            }
            let job = Job {
                request: OutgoingRequest {
                    id: request.id.clone(),
                    method: request.method.clone(),
                    params: upstream_params,
                },
                binding: binding.clone(),
                capabilities: request.client_capabilities.clone(),
                level: request.log_level,
                timeout: st.config.request_timeout,
                input_wait: st.config.input_wait,
                parked: st.parked.clone(),
                shutdown: st.shutdown.clone(),
                catalog: st.tool_catalog.clone(),
            };
            Ok((conn, job))
        }
    };
    let parked = st.parked.clone();
    let info = server_info(&st.initialize_result);
    let id = request.id.clone();
    let method = request.method;
    let label = method.clone();
    let error_code = Arc::new(AtomicI64::new(0));
    let code_cell = error_code.clone();
    let done = move |ending: Ending| tally.record(&label, ending.outcome());
    let work = move |events: Option<mpsc::Sender<Value>>| async move {
        let (reply, answer) = oneshot::channel();
        let round = Round {
            id: id.clone(),
            responses,
            stream: events,
            reply,
        };
        match start {
            Ok((conn, job)) => {
                // The task owns the process: it ends (and gives the process
                // back) when the call ends, however it ends.
                tokio::spawn(drive(conn, job, round));
            }
            Err(state) => {
                if let Err((e, round)) = parked.resume(&state, &binding, round) {
                    let error = ErrorObject::invalid_params(e);
                    round.answer(
                        error_response(Some(&id), error),
                        Ending::Answered { error: true },
                    );
                }
            }
        }
        let (message, ending) = answer.await.unwrap_or_else(|_| {
            let error = ErrorObject::internal_error("the call ended without an answer (stdiopool)");
            (error_response(Some(&id), error), Ending::UpstreamFailed)
        });
        let (message, code) = final_message(message, &method, &info);
        code_cell.store(code.unwrap_or(0), Ordering::Relaxed);
        (message, ending)
    };
    let mut reply = calls::reply(format, request.id, st.config.sse_keep_alive, work, done).await;
    if format == ReplyFormat::Json {
        let code = error_code.load(Ordering::Relaxed);
        *reply.status_mut() = status_for((code != 0).then_some(code));
    }
    Ok(Reply::Forwarded(reply))
}

/// Runs the call, passing the server's messages through the filter on their
/// way to the stream (if the request has one), in the order the server sent
/// them. The server's messages are always watched, stream or not: a server
/// request must be answered here, and one the client lacks the capability
/// for ends the call with -32021.
async fn run_call(
    conn: &Connection,
    request: OutgoingRequest,
    stream: Option<mpsc::Sender<Value>>,
    filter: Filter,
    timeout: std::time::Duration,
) -> (Value, Ending) {
    // Cancellation is the client closing the stream: dropping this future.
    let never = CancellationToken::new();
    let id = request.id.clone();
    let (tx, mut rx) = mpsc::channel::<Value>(EVENTS_BUFFER);
    let mut call = Box::pin(calls::call(conn, request, Some(tx), timeout, &never));
    // A server request that ends the call (-32021): the call is dropped
    // first, so the connection queues `notifications/cancelled` upstream
    // before the server's request is refused (the refusal would let the
    // server finish the call, and a finished call is not cancelled), and the
    // refusal is queued at once, with no await a drop could cut.
    let ended = |call, (error, refusal): (ErrorObject, Value)| {
        drop(call);
        if let Err(e) = conn.respond_now(refusal) {
            tracing::debug!(error = %e, "could not answer a server request");
        }
        (
            error_response(Some(&id), error),
            Ending::Answered { error: true },
        )
    };
    loop {
        tokio::select! {
            // Messages first: the server sent them before its response.
            biased;
            Some(message) = rx.recv() => {
                if let Some(end) = relay(conn, stream.as_ref(), message, &filter).await {
                    return ended(call, end);
                }
            }
            outcome = &mut call => {
                while let Ok(message) = rx.try_recv() {
                    if let Some(end) = relay(conn, stream.as_ref(), message, &filter).await {
                        return ended(call, end);
                    }
                }
                return outcome;
            }
        }
    }
}

/// What a modern call lets through to its client, and the catalog its
/// server's list changes empty.
struct Filter {
    level: Option<LogLevel>,
    capabilities: Map<String, Value>,
    catalog: Arc<ToolCatalog>,
}

/// One server message during a modern call. A server request is answered
/// upstream here (the process must never wait on a modern client), except
/// one that ends the client's call: then the client's error and the refusal
/// for the server are returned, for the caller to send once the call is
/// dropped.
async fn relay(
    conn: &Connection,
    stream: Option<&mpsc::Sender<Value>>,
    message: Value,
    filter: &Filter,
) -> Option<(ErrorObject, Value)> {
    if is_list_change(&message) {
        filter.catalog.invalidate();
    }
    if let (Some(id), Some(method)) = (
        message
            .get("id")
            .cloned()
            .and_then(|v| Id::from_value(v).ok()),
        message.get("method").and_then(Value::as_str),
    ) {
        let (upstream, ends) = match classify(method, message.get("params"), &filter.capabilities) {
            Asked::Ping => (response(&id, json!({})), None),
            Asked::Missing(required) => {
                tracing::debug!(%method, "server request the modern client lacks the capability for; -32021");
                let upstream = ErrorObject::method_not_found(method).with_data(Value::String(
                    "the client of this call did not declare this capability".into(),
                ));
                (
                    error_response(Some(&id), upstream),
                    Some(missing_capability(method, required)),
                )
            }
            // Answering by MRTR (input-required results) is not built
            // yet (docs/ERAS.md): the server is refused and goes on.
            Asked::Declared | Asked::Unknown => {
                tracing::debug!(%method, "server request during a modern call; refused upstream");
                let error = ErrorObject::method_not_found(method).with_data(Value::String(
                        "the client of this call is an MCP 2026-07-28 client, which the proxy cannot ask yet"
                            .into(),
                    ));
                (error_response(Some(&id), error), None)
            }
        };
        if let Some(error) = ends {
            return Some((error, upstream));
        }
        if let Err(e) = conn.respond(upstream).await {
            tracing::debug!(error = %e, "could not answer a server request");
        }
        return None;
    }
    if let Some(stream) = stream
        && forwards_notification(&message, filter.level)
        && stream.send(message).await.is_err()
    {
        tracing::trace!("the client's stream is gone; notification dropped");
    }
    None
}
