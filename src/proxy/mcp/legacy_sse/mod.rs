//! The legacy HTTP+SSE transport of MCP 2024-11-05, beside Streamable HTTP,
//! for one server's state (the same [`McpState`] its `/mcp` route serves).
//!
//! - `GET <prefix>/sse` ([`stream`]) makes a session and opens its stream; the
//!   first event is `endpoint`, whose data is the URL to POST to:
//!   `<prefix>/messages?session_id=<id>`, built from the request's own path,
//!   so it is right under whatever prefix the router is nested at.
//! - `POST <prefix>/messages?session_id=<id>` ([`messages`]) carries one
//!   client message and is answered `202 Accepted`; what answers it (the
//!   response, and anything the server sends meanwhile) goes on the stream
//!   ([`requests`]).
//!
//! Both modes, as Streamable HTTP serves them: pooled (the stream is the
//! client's session; each request borrows a warm process, and the server's
//! requests during it are relayed with `relay.rs`) and session mode (the
//! stream's session owns a process from the pool, as a Streamable HTTP
//! session does, and the process's own messages reach the stream through the
//! session's router in `sessions.rs`). The sessions are the proxy's one
//! store, so the idle reaper, eviction, shutdown and the session metrics
//! count them like any other.
//!
//! Invariant: a legacy session lives exactly as long as its stream. The
//! stream's body holds the guard that ends the session (and, in session
//! mode, lets its process go), so a client that closes the stream, a
//! stream ended by the proxy (session ended, shutdown, idle) and one the
//! listener cuts all end the session the same way; a POST for a session
//! without a live stream is answered 404.

mod messages;
mod requests;
mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::mpsc;

use super::McpState;
use crate::proxy::transport::request::with_method_fallback;
use crate::proxy::transport::session_id::SessionId;

/// Where the stream route is, relative to where the router is mounted.
pub const SSE_PATH: &str = "/sse";
/// Where the messages route is, relative to where the router is mounted.
pub const MESSAGES_PATH: &str = "/messages";
/// The query parameter naming the session on a POST. The Python SDK's server
/// uses this name (the TypeScript one `sessionId`, also accepted: clients
/// post to the URL the `endpoint` event gives them, whatever it says).
pub const SESSION_QUERY: &str = "session_id";

/// The legacy transport's routes for one server: `GET /sse` and
/// `POST /messages`, relative, to be merged at the root or nested under a
/// prefix. Put the transport checks (`TransportChecks::apply`) on the router
/// holding them, as on `/mcp`.
pub fn legacy_sse_router(state: Arc<McpState>) -> Router {
    let legacy = Arc::new(Legacy {
        mcp: state,
        streams: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route(SSE_PATH, with_method_fallback(get(stream::open), ALLOW_SSE))
        .route(
            MESSAGES_PATH,
            with_method_fallback(post(messages::post_message), ALLOW_MESSAGES),
        )
        .with_state(legacy)
}

/// `Allow` on the stream route.
const ALLOW_SSE: &str = "GET";
/// `Allow` on the messages route.
const ALLOW_MESSAGES: &str = "POST";

/// The router's state: the server's, and the open legacy streams.
struct Legacy {
    mcp: Arc<McpState>,
    /// Each open stream's sender, by session: what answers a POST goes here.
    /// An entry lives exactly as long as its stream's body.
    streams: Mutex<HashMap<SessionId, mpsc::Sender<Value>>>,
}

impl Legacy {
    fn streams(&self) -> MutexGuard<'_, HashMap<SessionId, mpsc::Sender<Value>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream of a live legacy session.
    fn outbox(&self, id: &SessionId) -> Option<mpsc::Sender<Value>> {
        self.streams().get(id).cloned()
    }
}

type Shared = axum::extract::State<Arc<Legacy>>;
