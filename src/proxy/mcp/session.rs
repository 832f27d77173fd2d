//! Session mode: each MCP session owns a process from the warm pool for its
//! lifetime. The client's own `initialize` is that process's handshake; the
//! GET stream carries the server's requests and notifications.
//!
//! Invariant: a session-mode session always holds its process (it is made
//! only after that process answered `initialize`, and the process is
//! destroyed with it, never reused); [`owned_conn`] is the one place that
//! reads it, so a session without one (which this mode never makes) is
//! answered as not found.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, post};
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::calls::{self, Ending, raw};
use super::record::{Reply, Tally, respond};
use super::sessions::{Owner, Session, spawn_router};
use super::sse::{accepted, json_reply, sse_stream, with_session_id};
use super::{Admitted, ConnSource, McpState, Shared, admit, forward, pool_error, upstream_gone};
use crate::jsonrpc::Id;
use crate::listener::idle_bounded;
use crate::metrics::{METHOD_GET_STREAM, Outcome};
use crate::pool::{PoolError, Pooled, TimeoutStage};
use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::negotiate::ReplyFormat;
use crate::proxy::transport::request::{ALLOW_WITH_GET, McpGet, McpPost, with_method_fallback};
use crate::upstream::connection::{Connection, OutgoingRequest};
use crate::upstream::manager::UpstreamManager;

/// POST, GET (the server's stream) and DELETE.
pub(super) fn routes() -> MethodRouter<Arc<McpState>> {
    with_method_fallback(
        post(post_mcp).get(get_mcp).delete(super::delete),
        ALLOW_WITH_GET,
    )
}

/// The session's own process.
pub(super) fn owned_conn(session: &Session) -> Result<&Connection, ProxyError> {
    session.conn().ok_or(ProxyError::SessionNotFound)
}

async fn post_mcp(State(st): Shared, tally: Tally, post: McpPost) -> Response {
    let method = super::post_label(&post);
    respond(&method, handle(&st, post, tally).await)
}

async fn handle(st: &McpState, post: McpPost, tally: Tally) -> Result<Reply, ProxyError> {
    match admit(st, post)? {
        Admitted::Initialize {
            id,
            method,
            params,
            owner,
        } => initialize(st, id, method, params, owner).await,
        Admitted::Request { session, request } => {
            owned_conn(&session)?;
            // Any request may bring server messages with it (logging,
            // sampling, elicitation), so answer on a stream, except a bare ping.
            let format = ReplyFormat::for_request(request.method != "ping");
            let owner = ConnSource::Session(session.clone());
            forward(st, &session, owner, request, format, tally).await
        }
        Admitted::Notification {
            session,
            method,
            params,
            cancelled,
        } => {
            if !cancelled {
                owned_conn(&session)?
                    .notify(&method, params)
                    .await
                    .map_err(upstream_gone)?;
            }
            Ok(Reply::Done(accepted(), Outcome::Ok))
        }
        Admitted::Response { session, message } => {
            owned_conn(&session)?
                .respond(message.into_value())
                .await
                .map_err(upstream_gone)?;
            Ok(Reply::Done(accepted(), Outcome::Ok))
        }
    }
}

async fn initialize(
    st: &McpState,
    id: Id,
    method: String,
    params: Option<Value>,
    owner: Option<Owner>,
) -> Result<Reply, ProxyError> {
    let session_id = st.mint_session_id(None, None)?;
    // A warm spawned process, not yet initialized: the client's own
    // initialize is its handshake.
    let conn = checkout(st).await?;
    let messages = conn.take_server_messages();
    let never = CancellationToken::new();
    let request = OutgoingRequest { id, method, params };
    let (answer, ending) =
        calls::call(&conn, request, None, st.config.pool.create_timeout, &never).await;
    let reply = json_reply(raw(&answer));
    if !matches!(ending, Ending::Answered { error: false }) {
        Pooled::discard(conn);
        return Ok(Reply::Done(reply, ending.outcome()));
    }
    let session = Session::new(session_id.clone(), Some(conn)).bind(owner);
    if let Some(messages) = messages {
        spawn_router(&session, messages);
    }
    st.sessions.insert(session);
    Ok(Reply::Done(
        with_session_id(reply, &session_id),
        Outcome::Ok,
    ))
}

/// A process for a new session. When every process has a session and
/// eviction is on, the session idle longest (nothing in flight, past its
/// handshake) is ended; the new session waits, in the pool's fair queue, for
/// a process up to `--wait-timeout` (then 503), and while it waits without
/// having ended one it looks again every [`EVICTION_RETRY`] (sessions busy
/// or mid-handshake at first go quiet). Each `initialize` that finds the
/// pool full ends at most one session, so concurrent ones make room for each
/// other without ending more sessions than they need.
pub(super) async fn checkout(st: &McpState) -> Result<Pooled<UpstreamManager>, ProxyError> {
    let conn = match st.pool.try_get().await {
        Ok(conn) => conn,
        Err(PoolError::Timeout(TimeoutStage::Wait)) => wait_making_room(st).await?,
        Err(e) => return Err(pool_error(st, e)),
    };
    keep_a_spare(st);
    Ok(conn)
}

/// How often a new session waiting for a process looks again for one to end.
const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// The pool is full: queue for a process, ending at most one session for it
/// (see [`checkout`]). Cancel-safe: the pool's `get` gives back its place
/// when dropped, and ending a session is done or not, never half.
async fn wait_making_room(st: &McpState) -> Result<Pooled<UpstreamManager>, ProxyError> {
    let mut evicted = !st.config.session_eviction;
    if !evicted {
        evicted = end_one_for_room(st);
    }
    let get = st.pool.get();
    tokio::pin!(get);
    loop {
        if evicted {
            return get.await.map_err(|e| pool_error(st, e));
        }
        tokio::select! {
            outcome = &mut get => return outcome.map_err(|e| pool_error(st, e)),
            () = tokio::time::sleep(EVICTION_RETRY) => {
                evicted = end_one_for_room(st);
            }
        }
    }
}

/// Ends the session idle longest, if every process the pool may hold
/// belongs to a session; returns whether one was ended.
///
/// The pool being at `--pool-size` with nothing idle is not enough: it
/// counts the processes it is spawning (right after start-up, all of
/// `--min-idle` are spawned in the background), replacing, or handing to an
/// `initialize` still on its way, and each of those comes to a waiting
/// session without ending anyone. Ending a session then cost a client the
/// session it had just opened (found by `benches/run.sh`, 64 clients at once
/// on a pool of 64).
fn end_one_for_room(st: &McpState) -> bool {
    every_process_has_a_session(st, 0) && st.sessions.evict_idlest(Duration::ZERO)
}

/// Whether the sessions in the store, plus `taken` processes already
/// checked out for sessions not yet stored, hold every process the pool may
/// have.
fn every_process_has_a_session(st: &McpState, taken: usize) -> bool {
    st.sessions.len() + taken >= st.pool.status().max
}

/// After a session took a process: if that left the pool full with no warm
/// spare, end a session quiet for a tenth of `--session-idle-timeout` (30 s
/// by default), so the pool warms a spare and the next `initialize` does not
/// pay a spawn. Only sessions that long quiet: ending one active a moment
/// ago would have two clients taking turns end each other's sessions.
fn keep_a_spare(st: &McpState) {
    if !st.config.session_eviction || st.config.pool.min_idle == 0 {
        return;
    }
    let status = st.pool.status();
    // Counting the process just taken: its session is not in the store yet.
    if status.idle > 0 || status.size < status.max || !every_process_has_a_session(st, 1) {
        return;
    }
    let quiet_for = st.config.session_idle_timeout / SPARE_AFTER_IDLE_FRACTION;
    if st.sessions.evict_idlest(quiet_for) {
        tracing::debug!("ended a long-quiet session to keep a warm spare");
    }
}

/// A session quiet for `--session-idle-timeout` / this may be ended to keep
/// a warm spare while every process has a session.
const SPARE_AFTER_IDLE_FRACTION: u32 = 10;

/// GET: opens the session's stream of server messages.
async fn get_mcp(State(st): Shared, get: McpGet) -> Response {
    let result = (|| {
        if st.shutdown.is_cancelled() {
            return Err(ProxyError::ShuttingDown);
        }
        let session = st.find_session(&get.session, Owner::of(get.subject.as_ref()))?;
        let slot = st.sessions.stream_slot()?;
        Ok((session.open_stream()?, slot))
    })()
    .map(|(mut rx, slot)| {
        let source = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|v| raw(&v));
        // The slot goes with the stream; a silent stream ends (listener::streams).
        let source = idle_bounded(source, st.config.listener.sse_idle_timeout, slot);
        Reply::Done(sse_stream(source, st.config.sse_keep_alive), Outcome::Ok)
    });
    respond(METHOD_GET_STREAM, result)
}
