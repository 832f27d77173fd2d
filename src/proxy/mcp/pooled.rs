//! Pooled mode: every request borrows a warm process from the pool and
//! returns it; sessions are the proxy's own (no process behind them).
//!
//! Invariant: a pooled session never holds a process, so nothing a client
//! does here can leave state in one: `initialize` is answered from the pool's
//! cached handshake, methods that need per-session server state are refused
//! (`initialize::refused_in_pooled_mode`), and client notifications other
//! than `notifications/cancelled` are not forwarded.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, post};
use serde_json::Value;

use super::calls::raw;
use super::initialize::{pooled_initialize_result, refused_in_pooled_mode};
use super::record::{Reply, Tally, respond};
use super::sessions::{Owner, Session};
use super::sse::{accepted, json_reply, with_session_id};
use super::{Admitted, ConnSource, McpState, Shared, admit, forward, local_answer, pool_error};
use crate::jsonrpc::{ErrorObject, Id, error_response, response};
use crate::metrics::Outcome;
use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::negotiate::ReplyFormat;
use crate::proxy::transport::request::{ALLOW_WITHOUT_GET, McpPost, with_method_fallback};
use crate::upstream::connection::OutgoingRequest;

/// POST and DELETE; no GET stream (405 with `Allow: POST, DELETE`).
pub(super) fn routes() -> MethodRouter<Arc<McpState>> {
    with_method_fallback(post(post_mcp).delete(super::delete), ALLOW_WITHOUT_GET)
}

async fn post_mcp(State(st): Shared, tally: Tally, post: McpPost) -> Response {
    let method = super::post_label(&post);
    respond(&method, handle(&st, post, tally).await)
}

async fn handle(st: &McpState, post: McpPost, tally: Tally) -> Result<Reply, ProxyError> {
    match admit(st, post)? {
        Admitted::Initialize {
            id, params, owner, ..
        } => initialize(st, &id, params, owner),
        Admitted::Request { session, request } => {
            pooled_request(st, &session, request, tally).await
        }
        // `initialized` was sent by the pool's own handshake; other client
        // notifications (roots/list_changed, ...) concern per-session state
        // that shared processes do not keep.
        Admitted::Notification { .. } => Ok(Reply::Done(accepted(), Outcome::Ok)),
        // The answer to a server request relayed during one of this
        // client's requests (`relay.rs`), while that request is in flight.
        Admitted::Response { session, message } => {
            if !session.relays().answer(message.into_value()) {
                tracing::debug!(
                    "pooled mode: a client response to no relayed server request in flight; ignored"
                );
            }
            Ok(Reply::Done(accepted(), Outcome::Ok))
        }
    }
}

fn initialize(
    st: &McpState,
    id: &Id,
    params: Option<Value>,
    owner: Option<Owner>,
) -> Result<Reply, ProxyError> {
    let session_id = st.mint_session_id(params.as_ref(), owner)?;
    let requested = params
        .as_ref()
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let result = pooled_initialize_result(&st.initialize_result, requested);
    st.sessions
        .insert(Session::pooled(session_id.clone(), params).bind(owner));
    let reply = json_reply(raw(&response(id, result)));
    Ok(Reply::Done(
        with_session_id(reply, &session_id),
        Outcome::Ok,
    ))
}

async fn pooled_request(
    st: &McpState,
    session: &Arc<Session>,
    request: OutgoingRequest,
    tally: Tally,
) -> Result<Reply, ProxyError> {
    let (id, method) = (&request.id, request.method.as_str());
    match method {
        // The proxy is the server the client sees: alive, so pong.
        "ping" => return Ok(local_answer(id, serde_json::json!({}))),
        // Shared processes have no per-client log level to set; accepted, and
        // documented as not applied (docs/PROXY.md).
        "logging/setLevel" => return Ok(local_answer(id, serde_json::json!({}))),
        _ => {}
    }
    if let Some(why) = refused_in_pooled_mode(method) {
        let error = error_response(
            Some(id),
            ErrorObject::method_not_found(method).with_data(Value::String(why.into())),
        );
        return Ok(Reply::Done(json_reply(raw(&error)), Outcome::Error));
    }
    let has_progress = request
        .params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("progressToken"))
        .is_some();
    // Tool calls are where servers log and report progress (sent on the
    // reply's stream while the call runs: upstream/connection routes a
    // server message to the one request in flight); other requests get JSON.
    let format = ReplyFormat::for_request(has_progress || method == "tools/call");
    // A modern call parked for its client's input gives way first (MRTR).
    super::modern::make_room(st);
    let conn = st.pool.get().await.map_err(|e| pool_error(st, e))?;
    forward(
        st,
        session,
        ConnSource::Pooled(conn),
        request,
        format,
        tally,
    )
    .await
}
