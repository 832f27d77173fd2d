//! The MCP endpoint: POST / GET / DELETE handlers for both modes.
//!
//! Handlers are short (axum's habit): parse (the `McpPost`/`McpGet`/
//! `McpDelete` extractors have already run the transport checks), find the
//! session, call into the pool or the session's process, and map the outcome
//! to a reply. Every request is counted in the metrics exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::calls::{self, Ending, raw};
use super::error::ProxyError;
use super::initialize::{pooled_initialize_result, refused_in_pooled_mode};
use super::message::MessageKind;
use super::negotiate::ReplyFormat;
use super::request::{
    ALLOW_WITH_GET, ALLOW_WITHOUT_GET, McpDelete, McpGet, McpPost, with_method_fallback,
};
use super::session_id::SessionId;
use super::sessions::{Session, Sessions, spawn_router};
use super::sse::{accepted, json_reply, sse_stream, with_session_id};
use crate::config::{Config, Mode};
use crate::jsonrpc::{ErrorObject, Id, Message, error_response, response};
use crate::listener::idle_bounded;
use crate::metrics::{
    METHOD_DELETE, METHOD_GET_STREAM, METHOD_INVALID, METHOD_RESPONSE, Metrics, Outcome,
};
use crate::pool::{Pool, PoolError, TimeoutStage};
use crate::upstream::connection::OutgoingRequest;
use crate::upstream::manager::{UpstreamError, UpstreamManager};

/// What the handlers share.
#[derive(Debug)]
pub struct McpState {
    pub(crate) config: Arc<Config>,
    pub(crate) pool: Pool<UpstreamManager>,
    pub(crate) sessions: Sessions,
    pub(crate) metrics: Arc<Metrics>,
    /// Fired when shutdown starts: new work is refused with 503.
    pub(crate) shutdown: CancellationToken,
    /// Pooled mode: the server's `InitializeResult` from the pool's handshake.
    pub(crate) initialize_result: Value,
}

impl McpState {
    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Starts shutdown: refuse new work and close the GET streams. Requests
    /// in flight are left to finish within the grace period; the sessions
    /// (and their processes) end after it (`Proxy::serve`).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
        self.sessions.close_streams();
    }
}

/// The MCP endpoint at `path`, for `state`'s mode. Pooled mode has no GET
/// stream (405 with `Allow: POST, DELETE`).
pub fn mcp_router(path: &str, state: Arc<McpState>) -> Router {
    let methods = match state.config.mode {
        Mode::Pooled => with_method_fallback(post(post_mcp).delete(delete_mcp), ALLOW_WITHOUT_GET),
        Mode::Session => with_method_fallback(
            post(post_mcp).get(get_mcp).delete(delete_mcp),
            ALLOW_WITH_GET,
        ),
    };
    Router::new().route(path, methods).with_state(state)
}

type Shared = State<Arc<McpState>>;

/// Marks a response whose request the handler has counted in the metrics;
/// [`count_refusals`] counts the others (refused before any handler ran).
#[derive(Debug, Clone, Copy)]
struct Counted;

fn counted(mut response: Response) -> Response {
    response.extensions_mut().insert(Counted);
    response
}

/// Counts requests refused by the transport checks and extractors (401, 403,
/// 406, 413, 415, 400 before any handler) as `method="invalid"`: they never
/// reach a handler, so nothing else would.
pub async fn count_refusals(
    State(metrics): State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    if response.extensions().get::<Counted>().is_none() {
        let outcome = if response.status().is_server_error() {
            Outcome::Unavailable
        } else {
            Outcome::Rejected
        };
        observe(&metrics, METHOD_INVALID, outcome, start);
    }
    response
}

fn observe(metrics: &Metrics, method: &str, outcome: Outcome, start: Instant) {
    metrics.observe_request(method, outcome, start.elapsed());
}

async fn post_mcp(state: Shared, post: McpPost) -> Response {
    counted(post_inner(state, post).await)
}

async fn post_inner(State(st): Shared, post: McpPost) -> Response {
    let start = Instant::now();
    let method = post.message.method().unwrap_or(METHOD_RESPONSE).to_owned();
    match handle_post(&st, post, start).await {
        Ok(Handled::Done(response, outcome)) => {
            observe(&st.metrics, &method, outcome, start);
            response
        }
        // Counted when the request ends (SSE replies run on).
        Ok(Handled::Deferred(response)) => response,
        Err(e) => {
            observe(&st.metrics, &method, e.outcome(), start);
            e.into_response()
        }
    }
}

enum Handled {
    Done(Response, Outcome),
    Deferred(Response),
}

async fn handle_post(
    st: &Arc<McpState>,
    post: McpPost,
    start: Instant,
) -> Result<Handled, ProxyError> {
    if st.shutdown.is_cancelled() {
        return Err(ProxyError::ShuttingDown);
    }
    if post.message.is_initialize() {
        if post
            .session
            .is_some_and(|id| st.sessions.get(&id).is_some())
        {
            return Err(ProxyError::InvalidRequest(
                "this session is already initialized; initialize without Mcp-Session-Id to start a new one".into(),
            ));
        }
        return initialize(st, post.message.message).await;
    }
    let session_id = post.session.ok_or(ProxyError::SessionRequired)?;
    let session = st
        .sessions
        .get(&session_id)
        .ok_or(ProxyError::SessionNotFound)?;
    session.touch();
    match (post.message.kind, post.message.message) {
        (MessageKind::Request { .. }, Message::Request { id, method, params }) => {
            let request = OutgoingRequest { id, method, params };
            match st.config.mode {
                Mode::Pooled => pooled_request(st, &session, request, start).await,
                Mode::Session => session_request(st, &session, request, start).await,
            }
        }
        (_, Message::Notification { method, params }) => {
            client_notification(st, &session, &method, params).await?;
            Ok(Handled::Done(accepted(), Outcome::Ok))
        }
        (_, message) => {
            // A client's answer to a server request: only session mode ever
            // forwards server requests to clients.
            match session.conn() {
                Some(conn) => conn
                    .respond(message.into_value())
                    .await
                    .map_err(upstream_gone)?,
                None => tracing::debug!(
                    "pooled mode: a client response with no server request to answer; ignored"
                ),
            }
            Ok(Handled::Done(accepted(), Outcome::Ok))
        }
    }
}

async fn client_notification(
    st: &McpState,
    session: &Arc<Session>,
    method: &str,
    params: Option<Value>,
) -> Result<(), ProxyError> {
    if method == "notifications/cancelled" {
        // Cancelling drops the call, which sends notifications/cancelled
        // upstream with the rewritten id (unknown ids are ignored).
        if let Some(id) = params
            .as_ref()
            .and_then(|p| p.get("requestId"))
            .and_then(|v| Id::from_value(v.clone()).ok())
        {
            session.cancel_request(&id);
        }
        return Ok(());
    }
    match (st.config.mode, session.conn()) {
        (Mode::Session, Some(conn)) => conn.notify(method, params).await.map_err(upstream_gone),
        // Pooled: `initialized` was sent by the pool's own handshake; other
        // client notifications (roots/list_changed, ...) concern per-session
        // state that shared processes do not keep.
        _ => Ok(()),
    }
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

async fn initialize(st: &Arc<McpState>, message: Message) -> Result<Handled, ProxyError> {
    let Message::Request { id, method, params } = message else {
        return Err(ProxyError::InvalidRequest(
            "initialize must be a request".into(),
        ));
    };
    let session_id = SessionId::generate()?;
    match st.config.mode {
        Mode::Pooled => {
            let requested = params
                .as_ref()
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str);
            let result = pooled_initialize_result(&st.initialize_result, requested);
            st.sessions.insert(Session::new(session_id, None));
            let reply = json_reply(raw(&response(&id, result)));
            Ok(Handled::Done(
                with_session_id(reply, &session_id),
                Outcome::Ok,
            ))
        }
        Mode::Session => {
            // A warm spawned process, not yet initialized: the client's own
            // initialize is its handshake.
            let conn = st.pool.get().await.map_err(|e| pool_error(st, e))?;
            let messages = conn.take_server_messages();
            let never = CancellationToken::new();
            let request = OutgoingRequest {
                id: id.clone(),
                method,
                params,
            };
            let (answer, ending) =
                calls::call(&conn, request, None, st.config.pool.create_timeout, &never).await;
            let reply = json_reply(raw(&answer));
            if !matches!(ending, Ending::Answered { error: false }) {
                crate::pool::Pooled::discard(conn);
                return Ok(Handled::Done(reply, ending.outcome()));
            }
            let session = Session::new(session_id, Some(conn));
            if let Some(messages) = messages {
                spawn_router(&session, messages);
            }
            st.sessions.insert(session);
            Ok(Handled::Done(
                with_session_id(reply, &session_id),
                Outcome::Ok,
            ))
        }
    }
}

fn local_answer(id: &Id, result: Value) -> Handled {
    Handled::Done(json_reply(raw(&response(id, result))), Outcome::Ok)
}

async fn pooled_request(
    st: &Arc<McpState>,
    session: &Arc<Session>,
    request: OutgoingRequest,
    start: Instant,
) -> Result<Handled, ProxyError> {
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
        return Ok(Handled::Done(json_reply(raw(&error)), Outcome::Error));
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
    let conn = st.pool.get().await.map_err(|e| pool_error(st, e))?;
    forward(
        st,
        session,
        ConnSource::Pooled(conn),
        request,
        format,
        start,
    )
    .await
}

async fn session_request(
    st: &Arc<McpState>,
    session: &Arc<Session>,
    request: OutgoingRequest,
    start: Instant,
) -> Result<Handled, ProxyError> {
    if session.conn().is_none() {
        return Err(ProxyError::SessionNotFound);
    }
    // Any request may bring server messages with it (logging, sampling,
    // elicitation), so answer on a stream, except a bare ping.
    let format = ReplyFormat::for_request(request.method != "ping");
    let owner = ConnSource::Session(session.clone());
    forward(st, session, owner, request, format, start).await
}

/// Where a forwarded request's connection comes from.
enum ConnSource {
    /// Checked out of the pool for this request; returned after.
    Pooled(crate::pool::Pooled<UpstreamManager>),
    /// The session's own process.
    Session(Arc<Session>),
}

async fn forward(
    st: &Arc<McpState>,
    session: &Arc<Session>,
    source: ConnSource,
    request: OutgoingRequest,
    format: ReplyFormat,
    start: Instant,
) -> Result<Handled, ProxyError> {
    let timeout = st.config.request_timeout;
    let metrics = st.metrics.clone();
    let session = session.clone();
    let label = request.method.clone();
    let request_id = request.id.clone();
    let done = move |ending: Ending| observe(&metrics, &label, ending.outcome(), start);
    let work = move |events: Option<tokio::sync::mpsc::Sender<Value>>| async move {
        let guard = match session.begin(&request.id) {
            Ok(guard) => guard,
            Err(e) => {
                let error = error_response(
                    Some(&request.id),
                    ErrorObject::invalid_request(e.to_string()),
                );
                return (error, Ending::Answered { error: true });
            }
        };
        let conn = match &source {
            ConnSource::Pooled(conn) => Some(&**conn),
            ConnSource::Session(owner) => owner.conn(),
        };
        let Some(conn) = conn else {
            let error = error_response(
                Some(&request.id),
                ErrorObject::upstream_closed("the session has no server process"),
            );
            return (error, Ending::UpstreamFailed);
        };
        let outcome = calls::call(conn, request, events, timeout, guard.cancel_token()).await;
        drop(guard);
        drop(source); // a pooled connection goes back (or is destroyed if broken)
        outcome
    };
    let response = calls::reply(format, request_id, st.config.sse_keep_alive, work, done).await;
    Ok(Handled::Deferred(response))
}

async fn get_mcp(state: Shared, get: McpGet) -> Response {
    counted(get_inner(state, get).await)
}

async fn get_inner(State(st): Shared, get: McpGet) -> Response {
    let start = Instant::now();
    let result = (|| {
        if st.shutdown.is_cancelled() {
            return Err(ProxyError::ShuttingDown);
        }
        let session = st
            .sessions
            .get(&get.session)
            .ok_or(ProxyError::SessionNotFound)?;
        let slot = st.sessions.stream_slot()?;
        Ok((session.open_stream()?, slot))
    })();
    match result {
        Ok((mut rx, slot)) => {
            observe(&st.metrics, METHOD_GET_STREAM, Outcome::Ok, start);
            let source = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map_raw();
            // The slot goes with the stream; a silent stream ends (listener::streams).
            let source = idle_bounded(source, st.config.listener.sse_idle_timeout, slot);
            sse_stream(source, st.config.sse_keep_alive)
        }
        Err(e) => {
            observe(&st.metrics, METHOD_GET_STREAM, e.outcome(), start);
            e.into_response()
        }
    }
}

trait MapRaw: futures_util::Stream<Item = Value> + Sized {
    fn map_raw(
        self,
    ) -> futures_util::stream::Map<Self, fn(Value) -> Box<serde_json::value::RawValue>> {
        futures_util::StreamExt::map(self, |v| raw(&v))
    }
}

impl<S: futures_util::Stream<Item = Value>> MapRaw for S {}

async fn delete_mcp(state: Shared, del: McpDelete) -> Response {
    counted(delete_inner(state, del).await)
}

async fn delete_inner(State(st): Shared, del: McpDelete) -> Response {
    let start = Instant::now();
    match st.sessions.remove(&del.session) {
        Some(_) => {
            observe(&st.metrics, METHOD_DELETE, Outcome::Ok, start);
            axum::http::StatusCode::OK.into_response()
        }
        None => {
            let e = ProxyError::SessionNotFound;
            observe(&st.metrics, METHOD_DELETE, e.outcome(), start);
            e.into_response()
        }
    }
}
