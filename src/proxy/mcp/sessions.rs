//! MCP sessions: the store, and (in session mode) the process each one owns
//! and the routing of that process's own messages to the session's streams.
//!
//! Invariants:
//! - a session's process belongs to it alone and is destroyed (never
//!   returned to the pool) when the session ends — DELETE, idle timeout,
//!   process exit or shutdown — because its state is that session's;
//! - a message the server sends on its own goes to exactly one stream, never
//!   broadcast: the one request in flight if there is exactly one (the
//!   connection's reader delivers those itself, so the response cannot
//!   overtake them: `upstream/connection/reader.rs`), else — here — the GET
//!   stream; a notification that no stream can carry yet waits in a
//!   bounded backlog; a server *request* that no stream carries within
//!   [`UNDELIVERED_REQUEST_TIMEOUT`] is answered upstream with an error, so
//!   the server never waits forever (docs/UPSTREAM.md, "Routing of what
//!   the server sends").

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::relay::Relays;
use crate::jsonrpc::{ErrorObject, Id, error_response};
use crate::listener::{StreamSlot, StreamSlots};
use crate::pool::Pooled;
use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::oauth::Subject;
use crate::proxy::transport::session_id::SessionId;
use crate::upstream::connection::{Connection, ServerMessage};
use crate::upstream::manager::UpstreamManager;

/// Server messages kept for a GET stream that is not open yet.
const BACKLOG: usize = 256;
/// Buffered messages on a GET stream.
const GET_STREAM_BUFFER: usize = 256;
/// How long a server request may wait for a client stream.
pub(crate) const UNDELIVERED_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a session that its client has not yet spoken in since its
/// `initialize` (the client's `notifications/initialized` is on its way) is
/// kept from pressure eviction: without it, a burst of `initialize`s on a
/// full pool ended each other's sessions before their clients' next message
/// (404 on `notifications/initialized`, seen under benches/run.sh's 64
/// concurrent sessions).
pub(crate) const HANDSHAKE_GRACE: Duration = Duration::from_secs(2);

/// Who a session belongs to, when the proxy is an OAuth resource server: a
/// digest (128 bits of SHA-256) of the subject its `initialize` was accepted
/// with. Requests naming the session with another subject's token (or none)
/// get the unknown id's 404, as the spec's security guidance asks (bind
/// sessions to the user; docs/PROXY.md, "OAuth"). A digest, so the subject
/// never travels in a signed id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Owner([u8; 16]);

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Owner(..)")
    }
}

impl Owner {
    /// The owner a request with `subject` would make (none without OAuth,
    /// or for a token without `sub`).
    pub(crate) fn of(subject: Option<&Subject>) -> Option<Owner> {
        let subject = subject?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, subject.0.as_bytes());
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&digest.as_ref()[..16]);
        Some(Owner(tag))
    }

    /// The digest's bytes (for a signed id's claims).
    pub(crate) fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From a signed id's claims.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Owner> {
        Some(Owner(bytes.try_into().ok()?))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Inflight {
    cancel: CancellationToken,
}

struct Backlogged {
    since: Instant,
    message: ServerMessage,
}

/// One MCP session.
pub(crate) struct Session {
    pub(crate) id: SessionId,
    /// Session mode: the process this session owns. Pooled mode: none.
    conn: Option<Pooled<UpstreamManager>>,
    inflight: Mutex<HashMap<Id, Inflight>>,
    get_stream: Mutex<Option<mpsc::Sender<Value>>>,
    backlog: Mutex<VecDeque<Backlogged>>,
    last_active: Mutex<Instant>,
    /// Whether the client has sent anything on the session since it was
    /// made ([`HANDSHAKE_GRACE`]).
    heard: AtomicBool,
    /// Set once, right after it is made (OAuth only; see [`Owner`]).
    owner: OnceLock<Owner>,
    ended: CancellationToken,
    /// Pooled mode: the client's `initialize` params (its capabilities say
    /// which server requests may be relayed to it).
    client_initialize: OnceLock<Value>,
    /// Pooled mode: server requests relayed to this client, awaiting answers.
    relays: Relays,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("pid", &self.conn().map(Connection::pid))
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Its state belongs to this session: destroy, never reuse.
            Pooled::discard(conn);
        }
    }
}

/// Unregisters a request when it is over (answered, timed out or dropped).
pub(crate) struct InflightGuard {
    session: Arc<Session>,
    id: Id,
    cancel: CancellationToken,
}

impl InflightGuard {
    /// Fires when the client cancels the request or the session ends.
    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        lock(&self.session.inflight).remove(&self.id);
        self.session.touch();
    }
}

impl Session {
    pub(crate) fn new(id: SessionId, conn: Option<Pooled<UpstreamManager>>) -> Arc<Self> {
        Arc::new(Self {
            id,
            conn,
            inflight: Mutex::new(HashMap::new()),
            get_stream: Mutex::new(None),
            backlog: Mutex::new(VecDeque::new()),
            last_active: Mutex::new(Instant::now()),
            heard: AtomicBool::new(false),
            owner: OnceLock::new(),
            ended: CancellationToken::new(),
            client_initialize: OnceLock::new(),
            relays: Relays::default(),
        })
    }

    /// Pooled mode: a session whose client initialized with `params`.
    pub(crate) fn pooled(id: SessionId, params: Option<Value>) -> Arc<Self> {
        let session = Self::new(id, None);
        let _ = session.client_initialize.set(params.unwrap_or(Value::Null));
        session
    }

    /// Pooled mode, legacy SSE transport: the client's `initialize` params,
    /// which arrive after its session was made (at `GET .../sse`). Returns
    /// whether they were set (once only).
    pub(crate) fn set_client_initialize(&self, params: Value) -> bool {
        self.client_initialize.set(params).is_ok()
    }

    /// Binds the session to `owner` (before it is published; once only).
    pub(crate) fn bind(self: Arc<Self>, owner: Option<Owner>) -> Arc<Self> {
        if let Some(owner) = owner {
            let _ = self.owner.set(owner);
        }
        self
    }

    /// Whether a request made as `who` may use the session: any request
    /// when it has no owner, else only its owner's.
    pub(crate) fn admits(&self, who: Option<Owner>) -> bool {
        self.owner.get().is_none_or(|owner| who == Some(*owner))
    }

    /// Pooled mode: the client's `initialize` params.
    pub(crate) fn client_initialize(&self) -> Option<&Value> {
        self.client_initialize.get()
    }

    /// Pooled mode: server requests relayed to this client.
    pub(crate) fn relays(&self) -> &Relays {
        &self.relays
    }

    /// The session's own process (session mode).
    pub(crate) fn conn(&self) -> Option<&Connection> {
        self.conn.as_deref()
    }

    /// The client did something on the session (every caller is a client's
    /// message, request or stream).
    pub(crate) fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
        self.heard.store(true, Ordering::Release);
    }

    /// Not yet heard from since it was made, and made less than
    /// [`HANDSHAKE_GRACE`] before `now`: its client is finishing the
    /// handshake, so pressure must not end it.
    fn in_handshake(&self, now: Instant) -> bool {
        !self.heard.load(Ordering::Acquire)
            && now.saturating_duration_since(*lock(&self.last_active)) < HANDSHAKE_GRACE
    }

    /// Registers a client request in flight. A request id still in flight
    /// cannot be reused (JSON-RPC ids are unique within a session).
    pub(crate) fn begin(self: &Arc<Self>, id: &Id) -> Result<InflightGuard, ProxyError> {
        let cancel = self.ended.child_token();
        let mut inflight = lock(&self.inflight);
        // Checked under the lock eviction holds while it ends a session, so a
        // request either registers first (and the session is not evicted) or
        // finds the session gone (and its client gets 404).
        if self.ended.is_cancelled() {
            return Err(ProxyError::SessionNotFound);
        }
        if inflight.contains_key(id) {
            return Err(ProxyError::InvalidRequest(format!(
                "request id {id} is already in use by a request in flight in this session"
            )));
        }
        inflight.insert(
            id.clone(),
            Inflight {
                cancel: cancel.clone(),
            },
        );
        drop(inflight);
        self.touch();
        Ok(InflightGuard {
            session: self.clone(),
            id: id.clone(),
            cancel,
        })
    }

    /// The client's `notifications/cancelled` for `id`: drops the call,
    /// which cancels it upstream with the rewritten id. Unknown ids are
    /// ignored, as MCP asks.
    pub(crate) fn cancel_request(&self, id: &Id) -> bool {
        match lock(&self.inflight).get(id) {
            Some(entry) => {
                entry.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Opens the session's GET stream; the backlog is delivered on it first.
    pub(crate) fn open_stream(&self) -> Result<mpsc::Receiver<Value>, ProxyError> {
        if self.ended.is_cancelled() {
            return Err(ProxyError::SessionNotFound);
        }
        let mut slot = lock(&self.get_stream);
        if slot.as_ref().is_some_and(|s| !s.is_closed()) {
            return Err(ProxyError::StreamAlreadyOpen);
        }
        let (tx, rx) = mpsc::channel(GET_STREAM_BUFFER);
        for queued in lock(&self.backlog).drain(..) {
            if tx.try_send(queued.message.into_value()).is_err() {
                break;
            }
        }
        *slot = Some(tx);
        drop(slot);
        self.touch();
        Ok(rx)
    }

    /// Where a server message goes (see the module invariants). Returns a
    /// server request that no stream could take and that has waited too long.
    fn route(&self, message: ServerMessage) -> Option<ServerMessage> {
        let value = message.clone().into_value();
        if let Some(stream) = lock(&self.get_stream).as_ref()
            && stream.try_send(value).is_ok()
        {
            return None;
        }
        let mut backlog = lock(&self.backlog);
        if backlog.len() >= BACKLOG
            && let Some(dropped) = backlog.pop_front()
        {
            tracing::warn!(
                session = ?self.id,
                method = dropped.message.method(),
                "no client stream for a server message: backlog full, dropping the oldest"
            );
            if let ServerMessage::Request { .. } = dropped.message {
                backlog.push_back(Backlogged {
                    since: Instant::now(),
                    message,
                });
                return Some(dropped.message);
            }
        }
        backlog.push_back(Backlogged {
            since: Instant::now(),
            message,
        });
        None
    }

    /// Server requests that waited too long for a client stream.
    fn expire_requests(&self, now: Instant) -> Vec<ServerMessage> {
        let mut backlog = lock(&self.backlog);
        let mut expired = Vec::new();
        backlog.retain(|b| {
            let stale = matches!(b.message, ServerMessage::Request { .. })
                && now.duration_since(b.since) >= UNDELIVERED_REQUEST_TIMEOUT;
            if stale {
                expired.push(b.message.clone());
            }
            !stale
        });
        expired
    }

    /// Ends the session: in-flight requests are cancelled, the GET stream ends.
    /// The process goes when the last reference to the session does.
    pub(crate) fn end(&self) {
        self.ended.cancel();
        lock(&self.get_stream).take();
    }

    /// Ends the session if nothing is in flight, atomically with respect to
    /// [`Session::begin`]; returns whether it did.
    fn end_if_idle(&self) -> bool {
        let inflight = lock(&self.inflight);
        if !inflight.is_empty() {
            return false;
        }
        self.ended.cancel();
        drop(inflight);
        self.end();
        true
    }

    /// When the last request of the session ended (or it began), if none is
    /// in flight now. An open GET stream does not count: it only listens.
    fn quiet_since(&self) -> Option<Instant> {
        lock(&self.inflight)
            .is_empty()
            .then(|| *lock(&self.last_active))
    }

    /// `Some(since)` when nothing is in flight and no GET stream is open.
    fn idle_since(&self) -> Option<Instant> {
        let busy = !lock(&self.inflight).is_empty()
            || lock(&self.get_stream)
                .as_ref()
                .is_some_and(|s| !s.is_closed());
        (!busy).then(|| *lock(&self.last_active))
    }
}

/// Routes a session-mode process's own messages until the process or the
/// session goes. Holds only a `Weak` to the session, so it never keeps one alive.
pub(crate) fn spawn_router(session: &Arc<Session>, mut messages: mpsc::Receiver<ServerMessage>) {
    let weak: Weak<Session> = Arc::downgrade(session);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let undeliverable = tokio::select! {
                message = messages.recv() => {
                    let Some(message) = message else { break };
                    let Some(session) = weak.upgrade() else { break };
                    session.route(message).into_iter().collect::<Vec<_>>()
                }
                _ = tick.tick() => {
                    let Some(session) = weak.upgrade() else { break };
                    session.expire_requests(Instant::now())
                }
            };
            let Some(session) = weak.upgrade() else { break };
            for message in undeliverable {
                refuse_upstream(&session, message).await;
            }
        }
    });
}

async fn refuse_upstream(session: &Session, message: ServerMessage) {
    let ServerMessage::Request { id, method, .. } = message else {
        return;
    };
    tracing::warn!(session = ?session.id, %method, "no client stream carried a server request; answering it with an error");
    if let Some(conn) = session.conn() {
        let error = ErrorObject::internal_error(format!(
            "{method}: the client has no open stream to receive this request (stdiopool)"
        ));
        if let Err(e) = conn.respond(error_response(Some(&id), error)).await {
            tracing::debug!(error = %e, "could not answer the server request");
        }
    }
}

/// Why a session ended (the `reason` label of `stdiopool_sessions_ended_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// No request for `--session-idle-timeout`.
    IdleTimeout,
    /// Ended to make room for a new session when every process had one.
    Pressure,
    /// The client's DELETE.
    Delete,
    /// Its server process exited or broke.
    ProcessExit,
}

impl EndReason {
    const ALL: [EndReason; 4] = [
        EndReason::IdleTimeout,
        EndReason::Pressure,
        EndReason::Delete,
        EndReason::ProcessExit,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Pressure => "pressure",
            EndReason::Delete => "delete",
            EndReason::ProcessExit => "process_exit",
        }
    }
}

/// All sessions of the proxy.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<SessionId, Arc<Session>>>,
    /// The cap on GET streams open at once (`--max-get-streams`).
    stream_slots: StreamSlots,
    /// Sessions ended, indexed by `EndReason as usize` (the order of [`EndReason::ALL`]).
    ended: [AtomicU64; 4],
}

impl Sessions {
    /// No session yet; at most `stream_slots` GET streams at once.
    pub(crate) fn with_stream_slots(stream_slots: StreamSlots) -> Sessions {
        Sessions {
            stream_slots,
            ..Sessions::default()
        }
    }

    /// A GET stream slot, held by the stream for as long as it is open.
    pub(crate) fn stream_slot(&self) -> Result<StreamSlot, ProxyError> {
        self.stream_slots
            .try_take()
            .ok_or(ProxyError::TooManyStreams {
                limit: self.stream_slots.limit(),
            })
    }

    pub(crate) fn insert(&self, session: Arc<Session>) {
        lock(&self.map).insert(session.id.clone(), session);
    }

    /// Takes in a session minted elsewhere (a verified signed id); when a
    /// concurrent request took it in first, that one is kept and returned,
    /// so one id is one session here.
    pub(crate) fn adopt(&self, session: Arc<Session>) -> Arc<Session> {
        lock(&self.map)
            .entry(session.id.clone())
            .or_insert(session)
            .clone()
    }

    /// A live session; one whose process died is ended and forgotten (the
    /// client gets 404 and re-initializes).
    pub(crate) fn get(&self, id: &SessionId) -> Option<Arc<Session>> {
        let session = lock(&self.map).get(id).cloned()?;
        if session.conn().is_some_and(Connection::is_broken) {
            tracing::info!(session = ?id, "the session's server process is gone; ending the session");
            self.remove(id, EndReason::ProcessExit);
            return None;
        }
        Some(session)
    }

    /// [`Sessions::get`] for a request made as `who`: a session that does not
    /// admit it is not found (the same 404 as an unknown id).
    pub(crate) fn get_for(&self, id: &SessionId, who: Option<Owner>) -> Option<Arc<Session>> {
        self.get(id).filter(|s| s.admits(who))
    }

    /// Ends the session if it admits `who` (a DELETE made as `who`).
    pub(crate) fn remove_for(
        &self,
        id: &SessionId,
        who: Option<Owner>,
        reason: EndReason,
    ) -> Option<Arc<Session>> {
        let session = {
            let mut map = lock(&self.map);
            if !map.get(id)?.admits(who) {
                return None;
            }
            map.remove(id)?
        };
        session.end();
        self.count(reason);
        Some(session)
    }

    pub(crate) fn remove(&self, id: &SessionId, reason: EndReason) -> Option<Arc<Session>> {
        let session = lock(&self.map).remove(id)?;
        session.end();
        self.count(reason);
        Some(session)
    }

    fn count(&self, reason: EndReason) {
        self.ended[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Sessions ended so far, by reason.
    pub(crate) fn ended_counts(&self) -> [(EndReason, u64); 4] {
        EndReason::ALL.map(|r| (r, self.ended[r as usize].load(Ordering::Relaxed)))
    }

    /// Pressure: ends the session whose last request ended longest ago,
    /// among those with no request in flight, quiet for at least
    /// `quiet_for` and past their handshake ([`HANDSHAKE_GRACE`]; an open
    /// GET stream does not protect a session: it only listens). Its id is answered 404 from now on, its GET stream ends, and
    /// its process is destroyed once the last reference goes (at once:
    /// nothing is in flight). Returns whether a session was ended.
    pub(crate) fn evict_idlest(&self, quiet_for: Duration) -> bool {
        let mut map = lock(&self.map);
        let now = Instant::now();
        let mut candidates: Vec<(Instant, SessionId)> = map
            .values()
            .filter(|s| !s.in_handshake(now))
            .filter_map(|s| s.quiet_since().map(|since| (since, s.id.clone())))
            .filter(|(since, _)| now.duration_since(*since) >= quiet_for)
            .collect();
        candidates.sort_by_key(|(since, _)| *since);
        for (since, id) in candidates {
            // A request may have begun since the look above: then skip it.
            let ended = map.get(&id).is_some_and(|s| s.end_if_idle());
            if ended {
                let session = map.remove(&id);
                drop(map);
                self.count(EndReason::Pressure);
                tracing::info!(
                    session = ?id,
                    idle_ms = since.elapsed().as_millis() as u64,
                    "every server process has a session: ending the one idle longest"
                );
                // The process goes here, outside the store's lock.
                drop(session);
                return true;
            }
        }
        false
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Ends sessions idle longer than `timeout`; returns how many.
    pub(crate) fn reap_idle(&self, timeout: Duration) -> usize {
        let now = Instant::now();
        let idle: Vec<(SessionId, EndReason)> = lock(&self.map)
            .values()
            .filter_map(|s| {
                if s.conn().is_some_and(Connection::is_broken) {
                    Some((s.id.clone(), EndReason::ProcessExit))
                } else if s
                    .idle_since()
                    .is_some_and(|since| now.duration_since(since) >= timeout)
                {
                    Some((s.id.clone(), EndReason::IdleTimeout))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in &idle {
            tracing::info!(session = ?id, reason = reason.label(), "ending the session");
            self.remove(id, *reason);
        }
        idle.len()
    }

    /// Closes every session's GET stream but leaves requests in flight
    /// alone (start of shutdown: an open stream would hold the server for
    /// the whole grace period, while requests get that period to finish).
    pub(crate) fn close_streams(&self) {
        let all: Vec<Arc<Session>> = lock(&self.map).values().cloned().collect();
        for session in all {
            lock(&session.get_stream).take();
        }
    }

    /// Ends every session (shutdown).
    pub(crate) fn end_all(&self) {
        let all: Vec<Arc<Session>> = lock(&self.map).drain().map(|(_, s)| s).collect();
        for session in all {
            session.end();
        }
    }
}

#[cfg(test)]
mod tests;
