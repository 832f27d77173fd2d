//! The one JSON-RPC message a POST carries: parsed and classified before any
//! child sees it.
//!
//! Invariant: only a single JSON object that is a well-formed JSON-RPC 2.0
//! request, notification or response passes. Everything else is refused here
//! (400, -32700 for non-JSON, -32600 for non-JSON-RPC), because a stdio server
//! silently drops such input and the HTTP request would otherwise hang
//! (MCP-NOTES §1). Batches (JSON arrays) are refused: Streamable HTTP carries
//! one message per POST since 2025-06-18, and no supported client batches.

use serde_json::{Map, Value};

use super::error::ProxyError;

/// A JSON-RPC id: a string or an integer, never null.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// An integer id (kept exactly as written).
    Number(serde_json::Number),
    /// A string id.
    String(String),
}

impl RequestId {
    fn from_value(v: &Value) -> Option<RequestId> {
        match v {
            Value::String(s) => Some(RequestId::String(s.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(RequestId::Number(n.clone())),
            _ => None,
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(n) => Value::Number(n.clone()),
            RequestId::String(s) => Value::String(s.clone()),
        }
    }
}

/// What the message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// Has `method` and `id`: expects a response.
    Request {
        /// The request id.
        id: RequestId,
        /// The method name.
        method: String,
    },
    /// Has `method` and no `id`.
    Notification {
        /// The method name.
        method: String,
    },
    /// Has `result` or `error` and an `id`: answers a server-to-client request.
    Response {
        /// The id of the request it answers.
        id: RequestId,
    },
}

/// A validated JSON-RPC message from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    /// What it is.
    pub kind: MessageKind,
    /// The whole message object, as sent.
    pub object: Map<String, Value>,
}

impl IncomingMessage {
    /// Parses a POST body.
    pub fn parse(body: &[u8]) -> Result<IncomingMessage, ProxyError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ProxyError::Parse(format!("the body is not valid JSON ({e})")))?;
        let object = match value {
            Value::Object(o) => o,
            Value::Array(_) => {
                return Err(ProxyError::InvalidRequest(
                    "JSON-RPC batches are not supported; send one message per POST".into(),
                ));
            }
            _ => {
                return Err(ProxyError::InvalidRequest(
                    "the body is not a JSON-RPC 2.0 message object".into(),
                ));
            }
        };
        let kind = classify(&object)?;
        Ok(IncomingMessage { kind, object })
    }

    /// The method name of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Request { method, .. } | MessageKind::Notification { method } => {
                Some(method)
            }
            MessageKind::Response { .. } => None,
        }
    }

    /// Whether this is the `initialize` request.
    pub fn is_initialize(&self) -> bool {
        matches!(&self.kind, MessageKind::Request { method, .. } if method == "initialize")
    }

    /// Whether the client expects a response body (a request), as opposed to
    /// 202 Accepted (a notification or a response).
    pub fn expects_response(&self) -> bool {
        matches!(self.kind, MessageKind::Request { .. })
    }
}

fn invalid(why: &str) -> ProxyError {
    ProxyError::InvalidRequest(why.to_owned())
}

fn classify(o: &Map<String, Value>) -> Result<MessageKind, ProxyError> {
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("\"jsonrpc\" must be \"2.0\""));
    }
    let id = match o.get("id") {
        None => None,
        Some(v) => Some(
            RequestId::from_value(v)
                .ok_or_else(|| invalid("\"id\" must be a string or an integer"))?,
        ),
    };
    if let Some(method) = o.get("method") {
        let method = method
            .as_str()
            .ok_or_else(|| invalid("\"method\" must be a string"))?
            .to_owned();
        if o.contains_key("result") || o.contains_key("error") {
            return Err(invalid(
                "a message cannot have both \"method\" and \"result\"/\"error\"",
            ));
        }
        if let Some(params) = o.get("params") {
            if !params.is_object() && !params.is_array() {
                return Err(invalid("\"params\" must be an object or an array"));
            }
        }
        return Ok(match id {
            Some(id) => MessageKind::Request { id, method },
            None => MessageKind::Notification { method },
        });
    }
    match (o.contains_key("result"), o.get("error")) {
        (true, Some(_)) => Err(invalid(
            "a response cannot have both \"result\" and \"error\"",
        )),
        (false, None) => Err(invalid(
            "a message needs \"method\", \"result\" or \"error\"",
        )),
        (false, Some(e)) if !e.is_object() => Err(invalid("\"error\" must be an object")),
        _ => match id {
            Some(id) => Ok(MessageKind::Response { id }),
            None => Err(invalid(
                "a response needs the \"id\" of the request it answers",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn kind(s: &str) -> Result<MessageKind, ProxyError> {
        IncomingMessage::parse(s.as_bytes()).map(|m| m.kind)
    }

    #[test]
    fn the_three_message_kinds_are_recognised() {
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(MessageKind::Request { method, .. }) if method == "ping"
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}"#),
            Ok(MessageKind::Request { id: RequestId::String(s), .. }) if s == "a"
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(MessageKind::Notification { .. })
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":0,"result":{}}"#),
            Ok(MessageKind::Response { .. })
        ));
        assert!(matches!(
            kind(r#"{"jsonrpc":"2.0","id":0,"error":{"code":-1,"message":"x"}}"#),
            Ok(MessageKind::Response { .. })
        ));
    }

    #[test]
    fn big_integer_ids_keep_their_digits() {
        let m = IncomingMessage::parse(
            br#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#,
        )
        .unwrap();
        let MessageKind::Request { id, .. } = m.kind else {
            panic!()
        };
        assert_eq!(id.to_value().to_string(), "18446744073709551615");
    }

    #[test]
    fn non_json_is_a_parse_error() {
        for body in ["", "{", "not json", "{\"jsonrpc\":\"2.0\",}"] {
            assert!(matches!(kind(body), Err(ProxyError::Parse(_))), "{body:?}");
        }
    }

    #[test]
    fn json_that_is_not_json_rpc_is_an_invalid_request() {
        for body in [
            "[]",
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            "42",
            "{}",
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"bad"}"#,
        ] {
            assert!(
                matches!(kind(body), Err(ProxyError::InvalidRequest(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn initialize_is_detected() {
        let m = IncomingMessage::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        )
        .unwrap();
        assert!(m.is_initialize());
        assert!(m.expects_response());
        let n = IncomingMessage::parse(br#"{"jsonrpc":"2.0","method":"initialize"}"#).unwrap();
        assert!(!n.is_initialize());
    }
}
