//! `GET .../sse`: a new legacy session and its stream — the `endpoint`
//! event, then every message for the client.
//!
//! Invariants:
//! - the stream's body owns [`EndOnDrop`], so the session, its entry in the
//!   router's stream table and (session mode) its process end when the body
//!   goes, however it goes;
//! - the body ends when the session does, or shutdown starts (either closes
//!   its server-message channel: `Session::end`, `Sessions::close_streams`),
//!   but only after the answers of the requests still running: it then
//!   gives up its table entry, so the outbox closes once the last request's
//!   task has put its answer there;
//! - it ends after `--session-idle-timeout` with nothing sent *and* no
//!   request running, as an idle Streamable HTTP session does (a long tool
//!   call is not idleness).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum::extract::OriginalUri;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt as _};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::{Legacy, MESSAGES_PATH, SESSION_QUERY, SSE_PATH, Shared};
use crate::config::Mode;
use crate::listener::StreamSlot;
use crate::metrics::{METHOD_GET_STREAM, Outcome};
use crate::proxy::mcp::calls::raw;
use crate::proxy::mcp::record::{Reply, respond};
use crate::proxy::mcp::session::checkout;
use crate::proxy::mcp::sessions::Owner;
use crate::proxy::mcp::sessions::{EndReason, Session, spawn_router};
use crate::proxy::transport::error::ProxyError;
use crate::proxy::transport::negotiate::check_get_accept;
use crate::proxy::transport::oauth::Subject;
use crate::proxy::transport::session_id::SessionId;

/// Messages buffered for a stream whose client reads slowly. A notification
/// that finds it full is dropped (as on a Streamable HTTP stream); a
/// response waits for room.
pub(super) const OUTBOX_BUFFER: usize = 256;

pub(super) async fn open(
    axum::extract::State(legacy): Shared,
    OriginalUri(uri): OriginalUri,
    subject: Option<Extension<Subject>>,
    headers: HeaderMap,
) -> Response {
    let owner = Owner::of(subject.as_ref().map(|Extension(s)| s));
    respond(
        METHOD_GET_STREAM,
        open_stream(&legacy, uri.path(), &headers, owner).await,
    )
}

async fn open_stream(
    legacy: &Arc<Legacy>,
    path: &str,
    headers: &HeaderMap,
    owner: Option<Owner>,
) -> Result<Reply, ProxyError> {
    check_get_accept(headers)?;
    let st = &legacy.mcp;
    if st.shutdown.is_cancelled() {
        return Err(ProxyError::ShuttingDown);
    }
    // The same cap as Streamable HTTP's GET streams: a legacy session is one.
    let slot = st.sessions.stream_slot()?;
    // Always a local id, signed ids or not: the stream that is the session
    // lives on this instance, so its POSTs must come here too.
    let id = SessionId::generate_for(&st.config.instance_id)?;
    let session = match st.config.mode {
        Mode::Pooled => Session::new(id.clone(), None),
        Mode::Session => {
            // As a Streamable HTTP `initialize` does: a warm process, or
            // room made by ending the idlest session, or 503.
            let conn = checkout(st).await?;
            let messages = conn.take_server_messages();
            let session = Session::new(id.clone(), Some(conn));
            if let Some(messages) = messages {
                spawn_router(&session, messages);
            }
            session
        }
    };
    let session = session.bind(owner);
    // A new session has no stream yet, so this cannot be refused.
    let server = session.open_stream()?;
    let (outbox_tx, outbox) = mpsc::channel(OUTBOX_BUFFER);
    // Made before the session is published: from here on, every way out
    // ends it.
    let end = EndOnDrop {
        legacy: Arc::downgrade(legacy),
        id: id.clone(),
    };
    legacy.streams().insert(id.clone(), outbox_tx);
    st.sessions.insert(session);
    // Shutdown closes the streams of the sessions it finds; one published
    // after that look would stay open for the whole grace period. Shutdown
    // is flagged before the look, so this sees it (and `end` ends the session).
    if st.shutdown.is_cancelled() {
        return Err(ProxyError::ShuttingDown);
    }
    tracing::debug!(session = ?id, "legacy SSE session opened");
    let idle = st.config.session_idle_timeout;
    let body = LegacyStream {
        endpoint: Some(endpoint_url(path, &id)),
        outbox,
        server: Some(server),
        idle,
        deadline: Box::pin(tokio::time::sleep(idle)),
        end,
        _slot: slot,
    };
    let events = body.map(Ok::<Event, Infallible>);
    let sse = Sse::new(events);
    let mut response = match st.config.sse_keep_alive {
        Some(every) => sse
            .keep_alive(KeepAlive::new().interval(every))
            .into_response(),
        None => sse.into_response(),
    };
    // Reverse proxies (nginx) otherwise buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(Reply::Done(response, Outcome::Ok))
}

/// The messages URL for session `id`, from the path the stream was opened
/// at: the same prefix, so it is right wherever the router is nested. An
/// absolute path, as the Python SDK's server sends (both SDK clients resolve
/// it against the stream's URL and insist on the same origin).
fn endpoint_url(sse_path: &str, id: &SessionId) -> String {
    let prefix = sse_path.strip_suffix(SSE_PATH).unwrap_or_default();
    format!("{prefix}{MESSAGES_PATH}?{SESSION_QUERY}={id}")
}

/// Ends the legacy session when the stream's body is dropped.
struct EndOnDrop {
    /// Weak: an open stream must not keep the server's state alive.
    legacy: Weak<Legacy>,
    id: SessionId,
}

impl EndOnDrop {
    /// Takes the session out of the stream table: no POST finds its outbox
    /// any more, whose senders are then only the requests still running.
    fn release_outbox(&self) {
        if let Some(legacy) = self.legacy.upgrade() {
            legacy.streams().remove(&self.id);
        }
    }
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let Some(legacy) = self.legacy.upgrade() else {
            return;
        };
        legacy.streams().remove(&self.id);
        // Already gone when the session ended first (and closed the stream).
        // Counted as a DELETE: closing the stream is this transport's way
        // of ending a session.
        if legacy
            .mcp
            .sessions
            .remove(&self.id, EndReason::Delete)
            .is_some()
        {
            tracing::debug!(session = ?self.id, "legacy SSE stream closed: session ended");
        }
    }
}

/// The body of a legacy stream: the `endpoint` event, then messages — the
/// answers to POSTs and what the server sends during them (`outbox`), and
/// in session mode what the process sends on its own (`server`) — until
/// the session ends (see the module invariants).
struct LegacyStream {
    endpoint: Option<String>,
    outbox: mpsc::Receiver<Value>,
    /// `None` once the session ended or shutdown began: draining.
    server: Option<mpsc::Receiver<Value>>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    end: EndOnDrop,
    _slot: StreamSlot,
}

impl LegacyStream {
    fn sent(&mut self, event: Event) -> Poll<Option<Event>> {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
        Poll::Ready(Some(event))
    }
}

impl Stream for LegacyStream {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        if let Some(url) = this.endpoint.take() {
            return this.sent(Event::default().event("endpoint").data(url));
        }
        match this.outbox.poll_recv(cx) {
            Poll::Ready(Some(message)) => return this.sent(message_event(&message)),
            // Draining, and the last running request has answered.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if let Some(server) = this.server.as_mut() {
            match server.poll_recv(cx) {
                Poll::Ready(Some(message)) => return this.sent(message_event(&message)),
                Poll::Ready(None) => {
                    this.server = None;
                    this.end.release_outbox();
                    // Polled again at once: the outbox may have closed now.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {}
            }
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            // The table's sender, and one per request running: busy.
            let running = this.outbox.sender_strong_count() > 1;
            if this.server.is_some() && !running {
                tracing::debug!(session = ?this.end.id, "legacy SSE stream idle: ending its session");
                return Poll::Ready(None);
            }
            this.deadline.as_mut().reset(Instant::now() + this.idle);
            // Registers the waker for the new deadline.
            let _ = this.deadline.as_mut().poll(cx);
        }
        Poll::Pending
    }
}

fn message_event(message: &Value) -> Event {
    Event::default().event("message").data(raw(message).get())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_endpoint_keeps_the_prefix_the_stream_was_opened_under() {
        let id = SessionId::generate().unwrap();
        assert_eq!(
            endpoint_url("/sse", &id),
            format!("/messages?session_id={id}")
        );
        assert_eq!(
            endpoint_url("/servers/time/sse", &id),
            format!("/servers/time/messages?session_id={id}")
        );
    }
}
