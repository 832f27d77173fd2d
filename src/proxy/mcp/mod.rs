//! Serving MCP once a request has passed the transport checks: one module per
//! way of serving, chosen once when the router is built.
//!
//! - [`pooled`]: each request borrows a warm process and returns it;
//!   `initialize` is answered from the pool's cached handshake.
//! - [`session`]: each MCP session owns a process for its lifetime; the
//!   client's own `initialize` is forwarded, and the GET stream carries the
//!   server's messages.
//!
//! - [`modern`]: MCP 2026-07-28 ("stateless") requests, in either mode: a
//!   layer on the route takes them aside before the mode's handlers.
//!
//! - [`legacy_sse`]: the 2024-11-05 HTTP+SSE transport (`/sse`, `/messages`),
//!   in either mode, merged beside the endpoint by [`mcp_router`].
//!
//! What every mode shares sits here: the state, [`admit`] (shutdown,
//! session lookup, message shape), DELETE, and the mapping of pool failures.
//!
//! Handlers are short (axum's habit): the `McpPost`/`McpGet`/`McpDelete`
//! extractors have already run the transport checks; a handler finds the
//! session, calls into the pool or the session's process, and returns
//! `Result<Reply, ProxyError>`; [`record`] counts every request once.

mod calls;
mod initialize;
pub mod legacy_sse;
mod modern;
mod pooled;
pub(crate) mod record;
pub(crate) mod relay;
mod session;
mod session_token;
mod sessions;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use self::calls::{Ending, raw};
use self::record::{Reply, Tally, respond};
pub(crate) use self::session_token::SessionSigner;
pub(crate) use self::sessions::Sessions;
use self::sessions::{EndReason, Owner, Session};
use super::transport::error::ProxyError;
use super::transport::message::MessageKind;
use super::transport::negotiate::ReplyFormat;
use super::transport::request::{McpDelete, McpPost};
use crate::config::{Config, Mode};
use crate::jsonrpc::{ErrorObject, Id, Message, error_response};
use crate::metrics::{METHOD_DELETE, METHOD_RESPONSE, Outcome};
use crate::pool::{Pool, PoolError, Pooled, TimeoutStage};
use crate::proxy::transport::session_id::SessionId;
use crate::upstream::connection::{Connection, OutgoingRequest, RawMessage};
use crate::upstream::manager::{UpstreamError, UpstreamManager};

/// What the handlers share.
#[derive(Debug)]
pub struct McpState {
    pub(crate) config: Arc<Config>,
    pub(crate) pool: Pool<UpstreamManager>,
    pub(crate) sessions: Sessions,
    /// Fired when shutdown starts: new work is refused with 503.
    pub(crate) shutdown: CancellationToken,
    /// Pooled mode: the server's `InitializeResult` from the pool's handshake.
    pub(crate) initialize_result: Value,
    /// Pooled mode: modern calls parked for their client's input (MRTR).
    pub(crate) parked: Arc<modern::ParkedCalls>,
    /// Pooled mode: the tools' `Mcp-Param-*` rules, for modern calls.
    pub(crate) tool_catalog: Arc<modern::ToolCatalog>,
    /// Pooled mode with `--session-key-file`: mints and checks signed ids.
    pub(crate) signer: Option<SessionSigner>,
    /// Fired on SIGTERM: `/readyz` answers 503 while requests are still
    /// served, until the drain delay is over and shutdown starts.
    pub(crate) draining: CancellationToken,
}

impl McpState {
    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Starts shutdown: refuse new work and close the GET streams. Requests
    /// in flight are left to finish within the grace period; the sessions
    /// (and their processes) end after it (`app::Proxy::serve`).
    pub fn begin_shutdown(&self) {
        self.draining.cancel();
        self.shutdown.cancel();
        self.sessions.close_streams();
    }

    /// A new session id: signed when a key is set (pooled mode), else local
    /// to this instance; either way led by this instance's id.
    fn mint_session_id(
        &self,
        params: Option<&Value>,
        owner: Option<Owner>,
    ) -> Result<SessionId, ProxyError> {
        match &self.signer {
            Some(signer) => Ok(signer.mint_for(params, owner)?),
            None => Ok(SessionId::generate_for(&self.config.instance_id)?),
        }
    }

    /// The live session `id` names. A signed id that verifies under the key
    /// is a session of this deployment wherever it was minted: it is taken
    /// into this instance's store (so relays answered here find it, and the
    /// idle reaper forgets it). Anything else unknown is 404; one minted by
    /// another instance says so ([`not_found`]).
    ///
    /// `who` is the request's owner ([`Owner`]): a session owned by someone
    /// else is not found either (the same 404 as an unknown id).
    fn find_session(&self, id: &SessionId, who: Option<Owner>) -> Result<Arc<Session>, ProxyError> {
        if let Some(session) = self.sessions.get(id) {
            return if session.admits(who) {
                Ok(session)
            } else {
                Err(ProxyError::SessionNotFound)
            };
        }
        if let Some((params, owner)) = self.signer.as_ref().and_then(|s| s.verify_live_owned(id)) {
            let session = self
                .sessions
                .adopt(Session::pooled(id.clone(), Some(params)).bind(owner));
            return if session.admits(who) {
                Ok(session)
            } else {
                Err(ProxyError::SessionNotFound)
            };
        }
        Err(self.not_found(id))
    }

    /// The 404 for an unknown session: it names the owner when a local id
    /// was minted by another instance (misrouted: visible, not silent). A
    /// signed id that did not verify gets the plain 404, like any unknown.
    fn not_found(&self, id: &SessionId) -> ProxyError {
        let here = self.config.instance_id.as_str();
        if id.is_signed() || id.owner() == here {
            return ProxyError::SessionNotFound;
        }
        tracing::info!(session = ?id, owner = id.owner(), "a request for a session of another instance");
        ProxyError::SessionElsewhere {
            owner: id.owner().to_owned(),
            here: here.to_owned(),
            session: format!("{id:?}"),
        }
    }
}

/// The MCP endpoint at `path`, served the way `state`'s mode says. The mode
/// is matched here only: each mode's handlers know their own.
pub fn mcp_router(path: &str, state: Arc<McpState>) -> Router {
    let methods = match state.config.mode {
        Mode::Pooled => pooled::routes(),
        Mode::Session => session::routes(),
    };
    // Modern (2026-07-28) requests are taken aside before the mode's handlers.
    let era = axum::middleware::from_fn_with_state(state.clone(), modern::divert);
    let router = Router::new()
        .route(path, methods)
        .route_layer(era)
        .with_state(state.clone());
    // The legacy HTTP+SSE transport beside it, at `/sse` and `/messages`
    // (docs/PROXY.md), unless the endpoint itself was put at one of those.
    if [legacy_sse::SSE_PATH, legacy_sse::MESSAGES_PATH].contains(&path) {
        tracing::warn!(
            path,
            "the MCP path hides the legacy SSE transport's route of the same name; the legacy transport is not served"
        );
        return router;
    }
    router.merge(legacy_sse::legacy_sse_router(state))
}

type Shared = State<Arc<McpState>>;

/// A POST that passed [`admit`].
enum Admitted {
    /// `initialize`, with no live session.
    Initialize {
        id: Id,
        method: String,
        params: Option<Value>,
        /// Who the new session will belong to (OAuth).
        owner: Option<Owner>,
    },
    /// A request in a live session.
    Request {
        session: Arc<Session>,
        request: OutgoingRequest,
    },
    /// A notification in a live session.
    Notification {
        session: Arc<Session>,
        method: String,
        params: Option<Value>,
        /// The client's `notifications/cancelled`: its request was cancelled
        /// here (dropping the call sends `notifications/cancelled` upstream
        /// with the rewritten id); nothing more to do.
        cancelled: bool,
    },
    /// The client's answer to a server request, in a live session.
    Response {
        session: Arc<Session>,
        message: Message,
    },
}

/// The metrics label of a POST.
fn post_label(post: &McpPost) -> String {
    post.message.method().unwrap_or(METHOD_RESPONSE).to_owned()
}

/// What every mode checks first: not shutting down; an `initialize` that
/// does not name a live session; any other message naming a live one.
fn admit(st: &McpState, post: McpPost) -> Result<Admitted, ProxyError> {
    if st.shutdown.is_cancelled() {
        return Err(ProxyError::ShuttingDown);
    }
    if post.message.is_initialize() {
        if post
            .session
            .as_ref()
            .is_some_and(|id| st.sessions.get(id).is_some())
        {
            return Err(ProxyError::InvalidRequest(
                "this session is already initialized; initialize without Mcp-Session-Id to start a new one".into(),
            ));
        }
        let Message::Request { id, method, params } = post.message.message else {
            return Err(ProxyError::InvalidRequest(
                "initialize must be a request".into(),
            ));
        };
        return Ok(Admitted::Initialize {
            id,
            method,
            params,
            owner: Owner::of(post.subject.as_ref()),
        });
    }
    let session_id = post.session.ok_or(ProxyError::SessionRequired)?;
    let session = st.find_session(&session_id, Owner::of(post.subject.as_ref()))?;
    session.touch();
    Ok(match (post.message.kind, post.message.message) {
        (MessageKind::Request { .. }, Message::Request { id, method, params }) => {
            Admitted::Request {
                session,
                request: OutgoingRequest { id, method, params },
            }
        }
        (_, Message::Notification { method, params }) => {
            let cancelled = method == "notifications/cancelled";
            if cancelled
                && let Some(id) = params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(|v| Id::from_value(v.clone()).ok())
            {
                session.cancel_request(&id);
            }
            Admitted::Notification {
                session,
                method,
                params,
                cancelled,
            }
        }
        (_, message) => Admitted::Response { session, message },
    })
}

/// The session's process can no longer take a message (it exited or broke).
fn upstream_gone(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::UpstreamUnavailable {
        reason: e.to_string(),
        retry_after: Duration::from_secs(1),
    }
}

/// Maps a pool failure to the client's answer.
fn pool_error(st: &McpState, e: PoolError<UpstreamError>) -> ProxyError {
    let wait = st.config.pool.wait_timeout;
    match e {
        PoolError::Timeout(TimeoutStage::Wait) => ProxyError::PoolExhausted {
            waited: wait,
            retry_after: Duration::from_secs(1).max(wait / 2),
        },
        PoolError::Timeout(stage) => ProxyError::UpstreamUnavailable {
            reason: format!("timed out {stage}"),
            retry_after: Duration::from_secs(1),
        },
        PoolError::Closed => ProxyError::ShuttingDown,
        PoolError::Create(e) | PoolError::Backoff(e) => upstream_gone(e),
    }
}

/// Where a forwarded request's connection comes from.
enum ConnSource {
    /// Checked out of the pool for this request; returned after.
    Pooled(Pooled<UpstreamManager>),
    /// The session's own process.
    Session(Arc<Session>),
}

impl ConnSource {
    fn conn(&self) -> Result<&Connection, ProxyError> {
        match self {
            ConnSource::Pooled(conn) => Ok(conn),
            ConnSource::Session(owner) => session::owned_conn(owner),
        }
    }
}

/// Forwards `request` on `source`'s connection and answers in `format`. The
/// call records itself through `tally` when it ends (an SSE reply: when its
/// stream ends; a client that goes away: cancelled).
async fn forward(
    st: &McpState,
    session: &Arc<Session>,
    source: ConnSource,
    request: OutgoingRequest,
    format: ReplyFormat,
    tally: Tally,
) -> Result<Reply, ProxyError> {
    let timeout = st.config.request_timeout;
    let label = request.method.clone();
    let request_id = request.id.clone();
    let done = move |ending: Ending| tally.record(&label, ending.outcome());
    // Registered before the reply starts, so a session ended (evicted) in
    // the meantime is answered 404, which tells the client to start anew.
    let begun = match session.begin(&request.id) {
        Ok(guard) => Ok(guard),
        Err(ProxyError::SessionNotFound) => return Err(ProxyError::SessionNotFound),
        Err(e) => Err(e.to_string()),
    };
    let session = session.clone();
    let work = move |events: Option<tokio::sync::mpsc::Sender<Value>>| async move {
        let guard = match begun {
            Ok(guard) => guard,
            Err(why) => {
                let error = error_response(Some(&request.id), ErrorObject::invalid_request(why));
                return (
                    RawMessage::from(raw(&error)),
                    Ending::Answered { error: true },
                );
            }
        };
        let Ok(conn) = source.conn() else {
            let error = error_response(
                Some(&request.id),
                ErrorObject::upstream_closed("the session has no server process"),
            );
            return (RawMessage::from(raw(&error)), Ending::UpstreamFailed);
        };
        let cancel = guard.cancel_token();
        let outcome = match &source {
            // A pooled process is this request's alone while it runs: what
            // it asks now is for this client (`relay.rs`).
            ConnSource::Pooled(_) => {
                relay::call(conn, &session, request, events, timeout, cancel).await
            }
            ConnSource::Session(_) => calls::call_raw(conn, request, events, timeout, cancel).await,
        };
        drop(guard);
        drop(source); // a pooled connection goes back (or is destroyed if broken)
        outcome
    };
    let response = calls::reply(format, request_id, st.config.sse_keep_alive, work, done).await;
    Ok(Reply::Forwarded(response))
}

/// A reply the proxy answers itself.
fn local_answer(id: &Id, result: Value) -> Reply {
    Reply::Done(
        sse::json_reply(raw(&crate::jsonrpc::response(id, result))),
        Outcome::Ok,
    )
}

/// DELETE: ends the session (in session mode its process is destroyed).
/// A signed id that verifies is ended here if this instance holds it, is
/// answered 200 either way (a pooled session holds nothing to free), and is
/// refused here from then on; other instances keep accepting it
/// (docs/DEPLOY.md, "Limits").
async fn delete(State(st): Shared, del: McpDelete) -> Response {
    let ok = || {
        Ok(Reply::Done(
            axum::http::StatusCode::OK.into_response(),
            Outcome::Ok,
        ))
    };
    let who = Owner::of(del.subject.as_ref());
    // Another owner's session is not found: not ended, not remembered.
    let signed = st.signer.as_ref().is_some_and(|s| {
        s.verify_live_owned(&del.session)
            .is_some_and(|(_, owner)| owner.is_none_or(|o| who == Some(o)))
            && s.delete(&del.session)
    });
    let result = match st.sessions.remove_for(&del.session, who, EndReason::Delete) {
        Some(_) => ok(),
        None if signed => ok(),
        None => Err(st.not_found(&del.session)),
    };
    respond(METHOD_DELETE, result)
}
