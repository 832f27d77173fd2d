//! The modern era (MCP 2026-07-28, "stateless"): how a request is told to be
//! modern, validated, and served from the warm pool in front of unchanged
//! 2025 stdio servers. docs/ERAS.md is the user-facing account.
//!
//! - [`era`]: which era a POST belongs to;
//! - [`validate`]: the checks every modern request passes before a process
//!   is touched, each refusal with the revision's code and status;
//! - [`param_headers`] and [`tool_catalog`]: `Mcp-Param-*` headers checked
//!   against the `x-mcp-header` annotations of the tools the server listed;
//! - [`discover`]: `server/discover` from the pool's handshake;
//! - [`translate`]: results, error codes, statuses and notifications in the
//!   modern shape;
//! - [`serve`]: pooled mode's modern requests;
//! - [`listen`]: `subscriptions/listen`, acknowledged with what the pool honours.
//!
//! [`divert`] is the dispatch point: a layer on the MCP route, inside the
//! transport checks (Origin, auth, body limit), that sends modern requests
//! here and hands every other request on to the mode's handlers unchanged.
//!
//! Invariant: a legacy request reaches the legacy handlers with its headers
//! and body exactly as sent; a modern request never reaches them, and in
//! session mode never reaches a process (it has no session to belong to).

mod discover;
mod era;
mod listen;
mod mrtr;
mod param_headers;
mod parked;
mod serve;
mod server_requests;
mod tool_catalog;
mod translate;
mod validate;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use self::era::{Era, classify_post, header_is_modern};
pub(crate) use self::parked::{ParkedCalls, make_room};
pub(crate) use self::tool_catalog::ToolCatalog;
use self::validate::ModernError;
use super::McpState;
use super::record::{Reply, Tally, respond};
use crate::config::Mode;
use crate::jsonrpc::Message;
use crate::metrics::{EraLabel, METHOD_RESPONSE};
use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::message::IncomingMessage;
use crate::proxy::transport::negotiate::{check_content_type, check_post_accept};
use crate::proxy::transport::request::{BodyLimit, ReadPost, read_body};
use crate::proxy::transport::session_id::SESSION_ID_HEADER;

/// The JSON-RPC codes the 2026-07-28 revision defines.
pub(crate) mod code {
    /// The HTTP headers disagree with the body, or one is missing or malformed.
    pub(crate) const HEADER_MISMATCH: i64 = -32020;
    /// The request needs a client capability it did not declare.
    pub(crate) const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// The requested protocol version is not served (`data.supported` lists those that are).
    pub(crate) const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// 2025's "resource not found", which modern servers must not emit (it is -32602 now).
    pub(crate) const LEGACY_RESOURCE_NOT_FOUND: i64 = -32002;
}

/// The layer that routes each request to its era (see the module docs).
pub(crate) async fn divert(
    State(st): State<Arc<McpState>>,
    request: Request,
    next: Next,
) -> Response {
    let tally = Tally::of(request.extensions());
    if request.method() != Method::POST {
        // A 2026-07-28 client has no GET stream and no session to DELETE.
        if header_is_modern(request.headers()) && !request.headers().contains_key(SESSION_ID_HEADER)
        {
            tally.count_era(EraLabel::Modern);
            return ProxyError::MethodNotAllowed { allow: "POST" }.into_response();
        }
        tally.count_era(EraLabel::Legacy);
        return next.run(request).await;
    }
    // A POST that fails content negotiation gets the same refusal in both
    // eras: leave it (and its body) to the legacy checks.
    if check_post_accept(request.headers()).is_err()
        || check_content_type(request.headers()).is_err()
    {
        tally.count_era(EraLabel::Legacy);
        return next.run(request).await;
    }
    let limit = request
        .extensions()
        .get::<BodyLimit>()
        .copied()
        .unwrap_or(BodyLimit::DEFAULT);
    let (parts, body) = request.into_parts();
    let bytes = match read_body(&parts.headers, body, limit.0).await {
        Ok(bytes) => bytes,
        // The answer the legacy checks give (413, or 400 for a broken body).
        Err(e) => return e.into_response(),
    };
    match classify_post(&parts.headers, &bytes) {
        Era::Legacy => {
            tally.count_era(EraLabel::Legacy);
            // Checked and read here already: the handler's extractor takes
            // the bytes rather than doing both again.
            let mut parts = parts;
            parts.extensions.insert(ReadPost(bytes));
            next.run(Request::from_parts(parts, Body::empty())).await
        }
        Era::Modern(message) => {
            tally.count_era(EraLabel::Modern);
            let label = message.method().unwrap_or(METHOD_RESPONSE).to_owned();
            let result = handle(&st, &parts.headers, message, tally).await;
            respond(&label, result)
        }
    }
}

async fn handle(
    st: &McpState,
    headers: &axum::http::HeaderMap,
    message: IncomingMessage,
    tally: Tally,
) -> Result<Reply, ProxyError> {
    if st.shutdown.is_cancelled() {
        return Err(ProxyError::ShuttingDown);
    }
    match st.config.mode {
        Mode::Pooled => serve::serve(st, headers, message, tally).await,
        Mode::Session => Ok(session_mode_answer(&message)),
    }
}

/// Session mode's answer to every modern message: 400 with -32600, which is
/// not one of the modern codes (-32020/-32021/-32022), so a dual-era client
/// (Python SDK 2.x, TypeScript SDK 2.0 in auto mode) falls back to
/// `initialize` and gets a session; no process is touched. docs/ERAS.md,
/// "Session mode".
fn session_mode_answer(message: &IncomingMessage) -> Reply {
    let id = match &message.message {
        Message::Request { id, .. } => Some(id),
        _ => None,
    };
    serve::refusal(
        id,
        ModernError::invalid_request(
            "Invalid Request: this stdiopool runs in session mode, where every client owns a server process through an MCP session; initialize one (MCP 2025-11-25 or earlier)",
        ),
    )
}
