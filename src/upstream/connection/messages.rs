//! The messages a connection carries besides raw values: a client request
//! going upstream, the response it gets (as JSON text), why a call got no
//! answer, and what the server sends on its own.

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc::{ErrorObject, Id, Message, error_response};

/// A client request to send upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRequest {
    /// The client's id; the response carries it again.
    pub id: Id,
    /// The method.
    pub method: String,
    /// The params, forwarded unchanged except `_meta.progressToken`.
    pub params: Option<Value>,
}

impl OutgoingRequest {
    /// A request with the given id, method and params.
    pub fn new(id: impl Into<Id>, method: impl Into<String>, params: Option<Value>) -> Self {
        Self {
            id: id.into(),
            method: method.into(),
            params,
        }
    }
}

/// A whole JSON-RPC message as JSON text in up to three pieces of shared
/// memory, written out one after the other: `head`, `body`, `tail`.
///
/// Why pieces: a success response forwarded from a server is the proxy's
/// `{"jsonrpc":"2.0","id":<client id>,"result":`, then the server's `result`
/// as a slice of the line it wrote (the same memory, not a copy), then `}`.
/// A reply body writes the pieces as they are ([`RawMessage::into_parts`]);
/// only a caller that needs the text in one place pays for joining them
/// ([`RawMessage::to_bytes`]). Every other message is one piece.
#[derive(Debug, Clone, Default)]
pub struct RawMessage {
    head: Bytes,
    body: Bytes,
    tail: Bytes,
}

impl RawMessage {
    /// A message that is already one piece of JSON text.
    pub fn whole(text: Bytes) -> Self {
        Self {
            head: text,
            ..Self::default()
        }
    }

    /// `head`, `body` and `tail` written one after the other; together they
    /// must be one JSON value (the caller's promise: nothing checks it here).
    pub(super) fn spliced(head: Bytes, body: Bytes, tail: Bytes) -> Self {
        Self { head, body, tail }
    }

    /// The length of the whole text in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len() + self.tail.len()
    }

    /// Whether the text is empty (never, for a message the proxy built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces in order (empty ones included), sharing their memory.
    pub fn into_parts(self) -> [Bytes; 3] {
        [self.head, self.body, self.tail]
    }

    /// The whole text in one piece: free for a one-piece message, a copy
    /// for a spliced one (for SSE events and callers that look inside).
    pub fn to_bytes(&self) -> Bytes {
        if self.body.is_empty() && self.tail.is_empty() {
            return self.head.clone();
        }
        let mut joined = Vec::with_capacity(self.len());
        joined.extend_from_slice(&self.head);
        joined.extend_from_slice(&self.body);
        joined.extend_from_slice(&self.tail);
        Bytes::from(joined)
    }

    /// The message as a `Value` tree (a full parse).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.to_bytes())
    }
}

impl From<Box<RawValue>> for RawMessage {
    fn from(raw: Box<RawValue>) -> Self {
        // `Box<str>` to `String` to `Bytes` reuses the allocation.
        Self::whole(Bytes::from(String::from(Box::<str>::from(raw))))
    }
}

/// The server's response to a call, already carrying the client's id, as
/// JSON text: the `result` or `error` the server wrote is passed through
/// byte for byte, never built into a `Value` tree unless a caller asks
/// ([`Response::to_value`]). A success response's `result` is not even
/// copied: it is a slice of the server's line ([`RawMessage`]).
#[derive(Debug, Clone)]
pub struct Response {
    message: RawMessage,
    is_error: bool,
}

impl Response {
    pub(super) fn new(message: RawMessage, is_error: bool) -> Self {
        Self { message, is_error }
    }

    /// Whether it is an error response.
    pub fn is_error(&self) -> bool {
        self.is_error
    }

    /// The whole message as JSON text in one piece (a copy when the
    /// message is spliced; see [`RawMessage::to_bytes`]).
    pub fn to_bytes(&self) -> Bytes {
        self.message.to_bytes()
    }

    /// The whole message, ready for a reply body.
    pub fn into_message(self) -> RawMessage {
        self.message
    }

    /// The whole message as a `Value` tree (a full parse: for callers that
    /// must look inside).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        self.message.to_value()
    }
}

/// Why a call got no response from the server. The error object is ready to
/// be sent to the client (`to_response`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The process exited, closed its stdout or its stdin, or the connection
    /// was shut down (-32000, [`ErrorObject::upstream_closed`]).
    #[error("{0}")]
    Closed(ErrorObject),
    /// The server broke the stream where this answer was due (an oversize
    /// frame, or an invalid message carrying this request's id) (-32004).
    #[error("{0}")]
    Protocol(ErrorObject),
}

impl CallError {
    /// The JSON-RPC error object.
    pub fn error_object(&self) -> &ErrorObject {
        match self {
            CallError::Closed(e) | CallError::Protocol(e) => e,
        }
    }

    /// A complete error response to the client's request `id`.
    pub fn to_response(&self, id: &Id) -> Value {
        error_response(Some(id), self.error_object().clone())
    }
}

/// A message the server sent on its own: a request (`roots/list`,
/// `sampling/createMessage`, `elicitation/create`, ...) that wants an answer
/// through [`Connection::respond`], or a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// A server request; its id is in the server's id space, not rewritten.
    Request {
        /// The server's id; the answer must carry it.
        id: Id,
        /// The method.
        method: String,
        /// The params.
        params: Option<Value>,
    },
    /// A server notification (logging, list changes, progress for a request
    /// that is no longer in flight, ...).
    Notification {
        /// The method.
        method: String,
        /// The params.
        params: Option<Value>,
    },
}

impl ServerMessage {
    /// The method name.
    pub fn method(&self) -> &str {
        match self {
            ServerMessage::Request { method, .. } | ServerMessage::Notification { method, .. } => {
                method
            }
        }
    }

    /// The message as a JSON-RPC value, ready to forward to a client.
    pub fn into_value(self) -> Value {
        match self {
            ServerMessage::Request { id, method, params } => {
                Message::Request { id, method, params }.into_value()
            }
            ServerMessage::Notification { method, params } => {
                Message::Notification { method, params }.into_value()
            }
        }
    }
}
