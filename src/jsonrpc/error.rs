//! JSON-RPC error objects and the error codes the proxy answers with.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::id::is_json_integer;
use super::{InvalidMessage, describe, quote};

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
