//! Reply bodies for the MCP endpoint: a single JSON object, an SSE stream that
//! carries related messages and ends with the response, the open-ended GET
//! stream, and 202 Accepted.
//!
//! Invariants:
//! - a POST's SSE stream ends right after the final response, and if its
//!   source ends without one (the server process died) it ends with a
//!   JSON-RPC error for the request id instead — the client never waits on a
//!   stream that can no longer answer;
//! - no event carries an `id`: the proxy does not implement resumability, and
//!   the TS client reconnects with `Last-Event-ID` after any id it has seen
//!   (docs/PROXY.md, "Replies"). Keep-alive comments carry no id either.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use serde_json::value::RawValue;

use crate::proxy::transport::error::codes;
use crate::proxy::transport::message::RequestId;
use crate::proxy::transport::session_id::{SESSION_ID_HEADER, SessionId};
use crate::upstream::connection::RawMessage;

/// One message on its way to the client on a POST's reply.
#[derive(Debug)]
pub enum Outbound {
    /// A request or notification related to the client's request (progress,
    /// logging, sampling…): sent before the response, only on an SSE reply.
    Related(Box<RawValue>),
    /// The response to the client's request: the last message of the reply.
    Final(RawMessage),
}

/// The JSON-RPC error sent when a reply's source ends before its response.
pub fn closed_before_response(id: &RequestId) -> Box<RawValue> {
    let error = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.to_value(),
        "error": {
            "code": codes::TRANSPORT_ERROR,
            "message": "Connection closed: the server process ended before responding",
        },
    });
    // Serialising a `Value` cannot fail; the fallback is a fixed valid message.
    serde_json::value::to_raw_value(&error).unwrap_or_else(|_| fallback_error())
}

fn fallback_error() -> Box<RawValue> {
    RawValue::from_string(
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#.into(),
    )
    .unwrap_or_else(|_| Box::<RawValue>::default())
}

fn message_event(message: &RawValue) -> Event {
    // Multi-line data is split into several `data:` lines by axum.
    Event::default().event("message").data(message.get())
}

/// The event of a response that may be spliced: an event's data is one
/// string, so a spliced message is joined (the SSE path's one copy; a JSON
/// reply writes the pieces as they are, see [`json_reply`]).
fn final_event(message: &RawMessage) -> Event {
    let text = message.to_bytes();
    match std::str::from_utf8(&text) {
        Ok(text) => Event::default().event("message").data(text),
        // Unreachable: the pieces are JSON text (UTF-8 checked when read).
        Err(_) => message_event(&fallback_error()),
    }
}

pin_project! {
    /// The events of a POST's SSE reply: every message up to and including
    /// the final response, then the end of the stream (see module invariants).
    #[derive(Debug)]
    pub struct UntilFinal<S> {
        #[pin]
        source: S,
        request_id: Option<RequestId>,
        done: bool,
    }
}

impl<S> UntilFinal<S> {
    /// Events for the reply to the request `request_id`.
    pub fn new(request_id: RequestId, source: S) -> UntilFinal<S> {
        UntilFinal {
            source,
            request_id: Some(request_id),
            done: false,
        }
    }
}

impl<S: Stream<Item = Outbound>> Stream for UntilFinal<S> {
    type Item = Result<Event, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.source.poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Outbound::Related(m))) => Poll::Ready(Some(Ok(message_event(&m)))),
            Poll::Ready(Some(Outbound::Final(m))) => {
                *this.done = true;
                Poll::Ready(Some(Ok(final_event(&m))))
            }
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(
                    this.request_id
                        .take()
                        .map(|id| Ok(message_event(&closed_before_response(&id)))),
                )
            }
        }
    }
}

fn stream_headers(mut response: Response) -> Response {
    // Reverse proxies (nginx) otherwise buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn keep_alive_every(interval: Duration) -> KeepAlive {
    KeepAlive::new().interval(interval)
}

/// The SSE reply to a POSTed request. `keep_alive` sends a comment at that
/// interval while the server works (long tool calls behind idle-timeout proxies).
pub fn sse_reply<S>(request_id: RequestId, source: S, keep_alive: Option<Duration>) -> Response
where
    S: Stream<Item = Outbound> + Send + 'static,
{
    let events = UntilFinal::new(request_id, source);
    let response = match keep_alive {
        Some(every) => Sse::new(events)
            .keep_alive(keep_alive_every(every))
            .into_response(),
        None => Sse::new(events).into_response(),
    };
    stream_headers(response)
}

/// The GET stream: server-to-client messages not related to a request, open
/// until `source` ends (session end or shutdown).
pub fn sse_stream<S>(source: S, keep_alive: Option<Duration>) -> Response
where
    S: Stream<Item = Box<RawValue>> + Send + 'static,
{
    let events = source.map(|m| Ok::<_, Infallible>(message_event(&m)));
    let response = match keep_alive {
        Some(every) => Sse::new(events)
            .keep_alive(keep_alive_every(every))
            .into_response(),
        None => Sse::new(events).into_response(),
    };
    stream_headers(response)
}

/// A single JSON-RPC message as `application/json` (200).
///
/// The body is the message's pieces as they are ([`RawMessage`]): a server's
/// `result` is written from the memory of the line it came in, not copied
/// into a new buffer here (hyper queues the pieces for a vectored write).
pub fn json_reply(message: impl Into<RawMessage>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::new(Pieces::new(message.into())),
    )
        .into_response()
}

/// A body of a few `Bytes` written in order, with its exact length known up
/// front (so the reply has a `Content-Length`, as a `String` body had).
#[derive(Debug)]
struct Pieces {
    parts: std::array::IntoIter<Bytes, 3>,
    remaining: u64,
}

impl Pieces {
    fn new(message: RawMessage) -> Self {
        Self {
            remaining: message.len() as u64,
            parts: message.into_parts().into_iter(),
        }
    }
}

impl HttpBody for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        // Empty pieces are skipped: an empty data frame means nothing.
        let next = this.parts.by_ref().find(|part| !part.is_empty());
        if let Some(part) = &next {
            this.remaining = this.remaining.saturating_sub(part.len() as u64);
        }
        Poll::Ready(next.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// 202 Accepted with no body: the answer to a notification or response.
pub fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// Adds `MCP-Session-Id` to a reply (the initialize result carries it).
pub fn with_session_id(mut response: Response, session: &SessionId) -> Response {
    response
        .headers_mut()
        .insert(SESSION_ID_HEADER, session.to_header_value());
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures_util::stream;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    async fn body_text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn id(n: u64) -> RequestId {
        RequestId::Number(n.into())
    }

    #[tokio::test]
    async fn sse_reply_carries_related_messages_then_ends_after_the_response() {
        let source = stream::iter(vec![
            Outbound::Related(raw(
                r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#,
            )),
            Outbound::Final(raw(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#).into()),
            Outbound::Related(raw(r#"{"jsonrpc":"2.0","method":"late"}"#)),
        ]);
        let resp = sse_reply(id(7), source, None);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let text = body_text(resp).await;
        assert_eq!(
            text,
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n\
             event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n"
        );
        assert!(!text.contains("id:"), "no event ids without resumability");
    }

    #[tokio::test]
    async fn sse_reply_without_a_response_ends_with_an_error_for_the_request() {
        let resp = sse_reply(id(3), stream::empty(), None);
        let text = body_text(resp).await;
        let data = text
            .strip_prefix("event: message\ndata: ")
            .unwrap()
            .trim_end();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["code"], -32000);
    }

    #[tokio::test]
    async fn get_stream_ends_when_its_source_ends() {
        let resp = sse_stream(
            stream::iter(vec![raw(r#"{"jsonrpc":"2.0","method":"m"}"#)]),
            None,
        );
        assert_eq!(
            body_text(resp).await,
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"m\"}\n\n"
        );
    }

    #[tokio::test]
    async fn accepted_has_no_body_and_session_header_is_attached() {
        let s = SessionId::generate().unwrap();
        let resp = with_session_id(accepted(), &s);
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert_eq!(resp.headers()[SESSION_ID_HEADER], s.to_string().as_str());
        assert!(body_text(resp).await.is_empty());
    }
}
