//! `POST .../messages?session_id=<id>`: one client message for a legacy
//! session, answered `202 Accepted`; what answers a request goes on the
//! session's stream (`requests.rs`).
//!
//! Checks, in order: not shutting down (503); the session named in the
//! query (400 without one; 404 when malformed, unknown, ended, or not a
//! legacy session with an open stream); `Content-Type: application/json`
//! (415); body size (413); one JSON-RPC message (400). Host/Origin and the
//! token (or OAuth) ran before, in the layers on the router. No `Accept`
//! check: the 2024-11-05 clients send none, and the reply has no body.
//!
//! Invariant: a message reaches a process only for a live session whose
//! stream is open, and the POST's answer never waits for the server.

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use super::{Legacy, SESSION_QUERY, Shared, requests};
use crate::config::Mode;
use crate::jsonrpc::{Id, Message};
use crate::metrics::{METHOD_INVALID, METHOD_RESPONSE, Outcome};
use crate::proxy::mcp::record::{Reply, Tally, respond};
use crate::proxy::mcp::session::owned_conn;
use crate::proxy::mcp::sessions::Owner;
use crate::proxy::mcp::sse::accepted;
use crate::proxy::mcp::upstream_gone;
use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::message::IncomingMessage;
use crate::proxy::transport::negotiate::check_content_type;
use crate::proxy::transport::oauth::Subject;
use crate::proxy::transport::request::{BodyLimit, read_body};
use crate::proxy::transport::session_id::SessionId;
use crate::upstream::connection::OutgoingRequest;

/// The name the TypeScript SDK's server gives the query parameter; accepted
/// too, so a client given such a URL by another server's habits still works.
const SESSION_QUERY_TS: &str = "sessionId";

pub(super) async fn post_message(
    axum::extract::State(legacy): Shared,
    tally: Tally,
    request: Request,
) -> Response {
    let limit = request
        .extensions()
        .get::<BodyLimit>()
        .copied()
        .unwrap_or(BodyLimit::DEFAULT);
    let (parts, body) = request.into_parts();
    let mut label = METHOD_INVALID.to_owned();
    let who = Owner::of(parts.extensions.get::<Subject>());
    let result = handle(
        &legacy,
        Post {
            query: parts.uri.query(),
            headers: &parts.headers,
            who,
        },
        body,
        limit,
        tally,
        &mut label,
    )
    .await;
    respond(&label, result)
}

/// What a POST says besides its body.
struct Post<'a> {
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    /// Its owner (OAuth): another owner's session is not found.
    who: Option<Owner>,
}

async fn handle(
    legacy: &Legacy,
    Post {
        query,
        headers,
        who,
    }: Post<'_>,
    body: Body,
    limit: BodyLimit,
    tally: Tally,
    label: &mut String,
) -> Result<Reply, ProxyError> {
    let st = &legacy.mcp;
    if st.shutdown.is_cancelled() {
        return Err(ProxyError::ShuttingDown);
    }
    let id = session_in(query)?;
    let outbox = legacy.outbox(&id).ok_or(ProxyError::SessionNotFound)?;
    let session = st
        .sessions
        .get_for(&id, who)
        .ok_or(ProxyError::SessionNotFound)?;
    check_content_type(headers)?;
    let bytes = read_body(headers, body, limit.0).await?;
    let message = IncomingMessage::parse(&bytes)?;
    message
        .method()
        .unwrap_or(METHOD_RESPONSE)
        .clone_into(label);
    session.touch();
    match message.message {
        Message::Request { id, method, params } => {
            let request = OutgoingRequest { id, method, params };
            requests::start(st, session, outbox, request, tally)
        }
        Message::Notification { method, params } => {
            if method == "notifications/cancelled" {
                if let Some(id) = params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(|v| Id::from_value(v.clone()).ok())
                {
                    session.cancel_request(&id);
                }
            } else if st.config.mode == Mode::Session {
                owned_conn(&session)?
                    .notify(&method, params)
                    .await
                    .map_err(upstream_gone)?;
            }
            // Pooled mode: `initialized` was the pool's own handshake; other
            // notifications concern per-session state shared processes do
            // not keep (as on Streamable HTTP, `pooled.rs`).
            Ok(Reply::Done(accepted(), Outcome::Ok))
        }
        response => {
            let value: Value = response.into_value();
            match st.config.mode {
                Mode::Session => owned_conn(&session)?
                    .respond(value)
                    .await
                    .map_err(upstream_gone)?,
                Mode::Pooled => {
                    if !session.relays().answer(value) {
                        tracing::debug!(
                            "legacy SSE: a client response to no relayed server request in flight; ignored"
                        );
                    }
                }
            }
            Ok(Reply::Done(accepted(), Outcome::Ok))
        }
    }
}

/// The session a POST names in its query: 400 without one, 404 when it is
/// not an id this proxy could have issued.
fn session_in(query: Option<&str>) -> Result<SessionId, ProxyError> {
    let value = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == SESSION_QUERY || *name == SESSION_QUERY_TS)
        .map(|(_, value)| value)
        .ok_or_else(|| {
            ProxyError::InvalidRequest(format!(
                "the {SESSION_QUERY} query parameter is required: POST to the URL of the stream's endpoint event"
            ))
        })?;
    SessionId::parse(value).map_err(|_| ProxyError::SessionNotFound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_session_is_read_from_either_query_name() {
        let id = SessionId::generate().unwrap();
        for query in [
            format!("session_id={id}"),
            format!("x=1&sessionId={id}"),
            format!("session_id={id}&x=1"),
        ] {
            assert_eq!(session_in(Some(&query)).unwrap(), id, "{query}");
        }
    }

    #[test]
    fn a_missing_session_is_400_and_a_malformed_one_404() {
        for query in [None, Some(""), Some("sid=abc")] {
            let e = session_in(query).unwrap_err();
            assert_eq!(e.status(), 400, "{query:?}");
        }
        let e = session_in(Some("session_id=not-an-id")).unwrap_err();
        assert_eq!(e.status(), 404);
    }
}
