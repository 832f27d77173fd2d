//! JSON-RPC 2.0 as MCP uses it: classifying a decoded JSON value as a
//! request, notification, response or error response; request ids kept
//! exactly as sent; and the error objects the proxy answers with (the
//! standard codes and the proxy's own, in [`code`]).
//!
//! Invariants:
//! - [`Message::from_value`] is total: any `Value` gives a `Message` or a
//!   typed [`InvalidMessage`] whose text can go straight into a -32600 error.
//! - Classification is stable under re-serialisation: for every accepted
//!   value `v`, `Message::from_value(Message::from_value(v)?.to_value())`
//!   gives the same message back (the `jsonrpc` fuzz target checks it).
//! - Ids round-trip byte for byte: `123456789012345678901234567890`, `-5`
//!   and any string come back as sent (serde_json's `arbitrary_precision` is
//!   on in this crate, so a [`serde_json::Number`] keeps its source text).
//!
//! Unknown top-level members of a message are not kept (MCP puts its
//! extensions in `_meta` inside `params`/`result`, which are kept whole).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// JSON-RPC error codes: the standard ones, and the proxy's own in the
/// implementation-defined server range (-32000 to -32099).
///
/// The proxy's codes avoid the ones MCP gives a meaning: -32002 (resource
/// not found, 2025-11-25) and -32042 (URL elicitation required), and stay
/// clear of -32020..-32099, which MCP 2026-07-28 reserves. -32000 and -32001
/// mean what the TypeScript SDK means by them, so clients built on it show
/// the right thing.
pub mod code {
    /// Invalid JSON was received (JSON-RPC 2.0).
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid JSON-RPC 2.0 message (JSON-RPC 2.0).
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available (JSON-RPC 2.0).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters (JSON-RPC 2.0).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error (JSON-RPC 2.0); the proxy uses it for its own
    /// bugs, never for an upstream's misbehaviour.
    pub const INTERNAL_ERROR: i64 = -32603;

    /// The server process exited or closed its stdout while the request was
    /// in flight. Same code as the TypeScript SDK's `ConnectionClosed`.
    pub const UPSTREAM_CLOSED: i64 = -32000;
    /// The request was not answered within the proxy's request timeout; the
    /// server was sent `notifications/cancelled`. Same code as the TypeScript
    /// SDK's `RequestTimeout`.
    pub const REQUEST_TIMEOUT: i64 = -32001;
    /// Resource not found: MCP's own code (2025-11-25). Never used by the proxy.
    pub const MCP_RESOURCE_NOT_FOUND: i64 = -32002;
    /// No server process could serve the request: the pool was exhausted past
    /// its wait timeout, or a process could not be started (the message says
    /// why). Sent with HTTP 503 where the transport allows.
    pub const UPSTREAM_UNAVAILABLE: i64 = -32003;
    /// The server broke the stdio protocol for this request: it wrote a line
    /// that is not JSON or not UTF-8, a frame over the size limit, or a
    /// message that is not JSON-RPC, where this request's answer was due.
    pub const UPSTREAM_PROTOCOL_ERROR: i64 = -32004;
    /// The `Mcp-Session-Id` names no live session (unknown, expired or
    /// deleted). Sent with HTTP 404, MCP's signal to re-initialize.
    pub const SESSION_NOT_FOUND: i64 = -32005;
    /// URL elicitation required: MCP's own code (2025-11-25). Never used by
    /// the proxy.
    pub const MCP_URL_ELICITATION_REQUIRED: i64 = -32042;
}

/// How many characters of a client-supplied value an error message quotes.
const QUOTE_CHARS: usize = 40;

/// Quotes a string for an error message, bounded to [`QUOTE_CHARS`].
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars();
    for c in chars.by_ref().take(QUOTE_CHARS) {
        out.extend(c.escape_debug());
    }
    out.push('"');
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// A short, bounded description of a value for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {}", quote(n.as_str()).trim_matches('"')),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A JSON-RPC request id: a string or an integer, kept exactly as sent.
///
/// Numbers keep their source text (`arbitrary_precision`), so ids beyond
/// `i64`/`u64` and negative ids round-trip unchanged, and `1` and `"1"` are
/// different ids. `Display` writes the id as it appears in JSON (strings
/// quoted), so the two never look alike in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// An integer id, as its JSON text.
    Number(Number),
    /// A string id.
    String(String),
}

/// Whether `text` is a JSON integer: `-?(0|[1-9][0-9]*)`.
fn is_json_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    match digits.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

impl Id {
    /// Reads an id from its JSON value. `null` is refused like any other
    /// non-id: callers that accept a missing id (error responses) handle
    /// `null` before calling this.
    pub fn from_value(value: Value) -> Result<Id, InvalidMessage> {
        match value {
            Value::String(s) => Ok(Id::String(s)),
            Value::Number(n) if is_json_integer(n.as_str()) => Ok(Id::Number(n)),
            Value::Null => Err(InvalidMessage::NullId),
            other => Err(InvalidMessage::InvalidId {
                found: describe(&other),
            }),
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Number(n) => Value::Number(n.clone()),
            Id::String(s) => Value::String(s.clone()),
        }
    }
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Id::Number(n.into())
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Number(n.into())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Id::String(s)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id::String(s.to_owned())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => f.write_str(n.as_str()),
            Id::String(s) => {
                let json = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&json)
            }
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Number(n) => n.serialize(serializer),
            Id::String(s) => s.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Id::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// A JSON-RPC error object: `{"code", "message", "data"?}`.
///
/// The builders put the standard short text first and the detail after it
/// (`"Method not found: tools/lis"`), since clients show `message` to users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// One of [`code`]'s constants, or a server's own code when forwarded.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Optional detail; an explicit `null` is kept as `Some(Value::Null)`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub data: Option<Value>,
}

/// Deserializes a present member as `Some`, even when it is `null`, so an
/// error object round-trips exactly.
fn present_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl ErrorObject {
    /// An error object with the given code and message and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// -32700: the body or line was not JSON.
    pub fn parse_error(detail: impl fmt::Display) -> Self {
        Self::new(code::PARSE_ERROR, format!("Parse error: {detail}"))
    }

    /// -32600: JSON, but not a valid JSON-RPC 2.0 message.
    pub fn invalid_request(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_REQUEST, format!("Invalid Request: {detail}"))
    }

    /// -32601: no such method. The method name is quoted, bounded.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            format!("Method not found: {}", quote(method)),
        )
    }

    /// -32602: the method exists but its params are wrong.
    pub fn invalid_params(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_PARAMS, format!("Invalid params: {detail}"))
    }

    /// -32603: a fault inside the proxy.
    pub fn internal_error(detail: impl fmt::Display) -> Self {
        Self::new(code::INTERNAL_ERROR, format!("Internal error: {detail}"))
    }

    /// -32000: the server process exited or closed stdout mid-request.
    pub fn upstream_closed(detail: impl fmt::Display) -> Self {
        Self::new(
            code::UPSTREAM_CLOSED,
            format!("Upstream server closed the connection: {detail}"),
        )
    }

    /// -32001: the request timed out.
    pub fn request_timeout(detail: impl fmt::Display) -> Self {
        Self::new(
            code::REQUEST_TIMEOUT,
            format!("Request timed out: {detail}"),
        )
    }

    /// -32003: no server process was available or could be started.
    pub fn upstream_unavailable(detail: impl fmt::Display) -> Self {
        Self::new(
            code::UPSTREAM_UNAVAILABLE,
            format!("No upstream server available: {detail}"),
        )
    }

    /// -32004: the server broke the stdio protocol where this answer was due.
    pub fn upstream_protocol_error(detail: impl fmt::Display) -> Self {
        Self::new(
            code::UPSTREAM_PROTOCOL_ERROR,
            format!("Upstream server protocol error: {detail}"),
        )
    }

    /// -32005: the session id names no live session.
    pub fn session_not_found(detail: impl fmt::Display) -> Self {
        Self::new(
            code::SESSION_NOT_FOUND,
            format!("Session not found: {detail}"),
        )
    }

    /// Reads an error object strictly: an integer `code` that fits `i64`, a
    /// string `message`, any `data`.
    pub fn from_value(value: Value) -> Result<Self, InvalidMessage> {
        let invalid = |reason: String| InvalidMessage::InvalidErrorObject { reason };
        let mut obj = match value {
            Value::Object(obj) => obj,
            other => return Err(invalid(format!("found {}", describe(&other)))),
        };
        let code = match obj.remove("code") {
            Some(Value::Number(n)) if is_json_integer(n.as_str()) => {
                n.as_i64().ok_or_else(|| {
                    invalid(format!(
                        "\"code\" {} is out of range",
                        describe(&Value::Number(n.clone()))
                    ))
                })?
            }
            Some(other) => return Err(invalid(format!("\"code\" is {}", describe(&other)))),
            None => return Err(invalid("\"code\" is missing".into())),
        };
        let message = match obj.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => return Err(invalid(format!("\"message\" is {}", describe(&other)))),
            None => return Err(invalid("\"message\" is missing".into())),
        };
        Ok(Self {
            code,
            message,
            data: obj.remove("data"),
        })
    }

    /// The error object as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("code".into(), Value::from(self.code));
        obj.insert("message".into(), Value::String(self.message.clone()));
        if let Some(data) = &self.data {
            obj.insert("data".into(), data.clone());
        }
        Value::Object(obj)
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)
    }
}

impl From<InvalidMessage> for ErrorObject {
    fn from(e: InvalidMessage) -> Self {
        ErrorObject::invalid_request(e)
    }
}

/// Why a JSON value is not a JSON-RPC 2.0 message MCP accepts. The text is
/// written to be the detail of a -32600 error sent to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// A JSON array: a JSON-RPC batch.
    #[error(
        "JSON-RPC batches (arrays) are not supported: MCP removed batching in protocol version 2025-06-18; send one message at a time"
    )]
    Batch,
    /// A string, number, boolean or null.
    #[error("a JSON-RPC message must be a JSON object, not {found}")]
    NotAnObject {
        /// What was found instead.
        found: String,
    },
    /// No `"jsonrpc"` member.
    #[error("missing \"jsonrpc\": \"2.0\"")]
    MissingVersion,
    /// `"jsonrpc"` other than `"2.0"`.
    #[error("\"jsonrpc\" must be \"2.0\", found {found}")]
    WrongVersion {
        /// What was found instead.
        found: String,
    },
    /// `"method"` is not a string.
    #[error("\"method\" must be a string, found {found}")]
    MethodNotString {
        /// What was found instead.
        found: String,
    },
    /// `"params"` is present but not an object or array.
    #[error(
        "\"params\" must be an object or an array (omit it when there are none), found {found}"
    )]
    InvalidParams {
        /// What was found instead.
        found: String,
    },
    /// `"id": null` on a request or success response.
    #[error(
        "\"id\" must not be null: requests carry a string or integer id, notifications carry none"
    )]
    NullId,
    /// An id that is a float, boolean, array or object.
    #[error("\"id\" must be a string or an integer, found {found}")]
    InvalidId {
        /// What was found instead.
        found: String,
    },
    /// `"method"` together with `"result"` or `"error"`.
    #[error("a message with \"method\" must not also carry \"result\" or \"error\"")]
    MethodWithResult,
    /// Both `"result"` and `"error"`.
    #[error("a response must carry either \"result\" or \"error\", not both")]
    BothResultAndError,
    /// None of `"method"`, `"result"`, `"error"`.
    #[error("not a JSON-RPC message: no \"method\", \"result\" or \"error\"")]
    NoMethodResultOrError,
    /// A success response without `"id"`.
    #[error("a response must carry the \"id\" of the request it answers")]
    ResponseWithoutId,
    /// `"error"` that is not a valid error object.
    #[error(
        "\"error\" must be an object with an integer \"code\" and a string \"message\": {reason}"
    )]
    InvalidErrorObject {
        /// What is wrong with it.
        reason: String,
    },
}

/// The four kinds of JSON-RPC message, without their contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Has `method` and `id`; expects a response.
    Request,
    /// Has `method`, no `id`; expects nothing.
    Notification,
    /// Has `result` and `id`.
    Response,
    /// Has `error`, and `id` unless the request's id was unreadable.
    ErrorResponse,
}

/// A classified JSON-RPC 2.0 message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a response with the same id.
    Request {
        /// The id the response must carry.
        id: Id,
        /// The method name.
        method: String,
        /// An object or array, if any.
        params: Option<Value>,
    },
    /// A one-way message; it must get no response.
    Notification {
        /// The method name.
        method: String,
        /// An object or array, if any.
        params: Option<Value>,
    },
    /// A successful answer.
    Response {
        /// The id of the request answered.
        id: Id,
        /// The result, any JSON value.
        result: Value,
    },
    /// A failed answer.
    ErrorResponse {
        /// The id of the request answered; `None` (`"id": null` or absent)
        /// when the request's id could not be read.
        id: Option<Id>,
        /// What went wrong.
        error: ErrorObject,
    },
}

impl Message {
    /// Classifies a JSON value. Batches (arrays), non-objects, a `jsonrpc`
    /// other than `"2.0"`, null or non-integer numeric ids, a non-string
    /// method, params that are not structured, and responses with both or
    /// neither of `result`/`error` are refused with a typed reason.
    pub fn from_value(value: Value) -> Result<Message, InvalidMessage> {
        let mut obj = match value {
            Value::Object(obj) => obj,
            Value::Array(_) => return Err(InvalidMessage::Batch),
            other => {
                return Err(InvalidMessage::NotAnObject {
                    found: describe(&other),
                });
            }
        };
        match obj.get("jsonrpc") {
            None => return Err(InvalidMessage::MissingVersion),
            Some(Value::String(v)) if v == "2.0" => {}
            Some(other) => {
                return Err(InvalidMessage::WrongVersion {
                    found: describe(other),
                });
            }
        }
        // Absent, null, or a valid id.
        let id: Option<Option<Id>> = match obj.remove("id") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => Some(Some(Id::from_value(v)?)),
        };
        if let Some(method) = obj.remove("method") {
            let method = match method {
                Value::String(m) => m,
                other => {
                    return Err(InvalidMessage::MethodNotString {
                        found: describe(&other),
                    });
                }
            };
            if obj.contains_key("result") || obj.contains_key("error") {
                return Err(InvalidMessage::MethodWithResult);
            }
            let params = match obj.remove("params") {
                None => None,
                Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
                Some(other) => {
                    return Err(InvalidMessage::InvalidParams {
                        found: describe(&other),
                    });
                }
            };
            return match id {
                None => Ok(Message::Notification { method, params }),
                Some(None) => Err(InvalidMessage::NullId),
                Some(Some(id)) => Ok(Message::Request { id, method, params }),
            };
        }
        match (obj.remove("result"), obj.remove("error")) {
            (Some(_), Some(_)) => Err(InvalidMessage::BothResultAndError),
            (None, None) => Err(InvalidMessage::NoMethodResultOrError),
            (Some(result), None) => match id {
                None => Err(InvalidMessage::ResponseWithoutId),
                Some(None) => Err(InvalidMessage::NullId),
                Some(Some(id)) => Ok(Message::Response { id, result }),
            },
            (None, Some(error)) => Ok(Message::ErrorResponse {
                id: id.flatten(),
                error: ErrorObject::from_value(error)?,
            }),
        }
    }

    /// The message as a JSON value (`"jsonrpc": "2.0"` included; an error
    /// response with no id gets `"id": null`, as JSON-RPC requires).
    pub fn into_value(self) -> Value {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), Value::String("2.0".into()));
        match self {
            Message::Request { id, method, params } => {
                obj.insert("id".into(), id.to_value());
                obj.insert("method".into(), Value::String(method));
                if let Some(params) = params {
                    obj.insert("params".into(), params);
                }
            }
            Message::Notification { method, params } => {
                obj.insert("method".into(), Value::String(method));
                if let Some(params) = params {
                    obj.insert("params".into(), params);
                }
            }
            Message::Response { id, result } => {
                obj.insert("id".into(), id.to_value());
                obj.insert("result".into(), result);
            }
            Message::ErrorResponse { id, error } => {
                obj.insert("id".into(), id.map_or(Value::Null, |id| id.to_value()));
                obj.insert("error".into(), error.to_value());
            }
        }
        Value::Object(obj)
    }

    /// The message as a JSON value, leaving `self` intact.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response { .. } | Message::ErrorResponse { .. } => None,
        }
    }

    /// The id of a request or response (`None` for notifications and for
    /// error responses to unreadable requests).
    pub fn id(&self) -> Option<&Id> {
        match self {
            Message::Request { id, .. } | Message::Response { id, .. } => Some(id),
            Message::ErrorResponse { id, .. } => id.as_ref(),
            Message::Notification { .. } => None,
        }
    }

    /// Which of the four kinds this is.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Request { .. } => MessageKind::Request,
            Message::Notification { .. } => MessageKind::Notification,
            Message::Response { .. } => MessageKind::Response,
            Message::ErrorResponse { .. } => MessageKind::ErrorResponse,
        }
    }
}

/// The id of a value that may not be a valid message, for answering it with
/// an error: `Some` when `value` is an object whose `"id"` is a valid id.
/// JSON-RPC answers an invalid request with its id when that can be read.
pub fn id_of(value: &Value) -> Option<Id> {
    match value.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => Id::from_value(id.clone()).ok(),
        _ => None,
    }
}

/// A complete error response: `{"jsonrpc":"2.0","id":…,"error":…}`, with
/// `"id": null` when the request's id is unknown, as JSON-RPC requires.
pub fn error_response(id: Option<&Id>, error: ErrorObject) -> Value {
    Message::ErrorResponse {
        id: id.cloned(),
        error,
    }
    .into_value()
}

/// A complete success response: `{"jsonrpc":"2.0","id":…,"result":…}`.
pub fn response(id: &Id, result: Value) -> Value {
    Message::Response {
        id: id.clone(),
        result,
    }
    .into_value()
}
