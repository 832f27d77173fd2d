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

use serde_json::{Map, Value};

mod error;
mod id;

pub use error::{ErrorObject, code};
pub use id::Id;

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
