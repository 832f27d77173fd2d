//! The one JSON-RPC message a POST carries: parsed and classified before any
//! child sees it.
//!
//! Invariant: only a single JSON object that is a well-formed JSON-RPC 2.0
//! request, notification or response passes. Everything else is refused here
//! (400, -32700 for non-JSON, -32600 for non-JSON-RPC), because a stdio server
//! silently drops such input and the HTTP request would otherwise hang. Batches (JSON arrays) are refused: Streamable HTTP carries
//! one message per POST since 2025-06-18, and no supported client batches.
//! Classification is `crate::jsonrpc`'s, the same the upstream side uses.

use serde_json::Value;

use super::error::ProxyError;
use crate::jsonrpc::{Id, Message};

/// A JSON-RPC id: a string or an integer, never null, kept exactly as sent.
pub type RequestId = Id;

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
    /// The message itself.
    pub message: Message,
}

impl IncomingMessage {
    /// Parses a POST body.
    pub fn parse(body: &[u8]) -> Result<IncomingMessage, ProxyError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ProxyError::Parse(format!("the body is not valid JSON ({e})")))?;
        let message =
            Message::from_value(value).map_err(|e| ProxyError::InvalidRequest(e.to_string()))?;
        let kind = match &message {
            Message::Request { id, method, .. } => MessageKind::Request {
                id: id.clone(),
                method: method.clone(),
            },
            Message::Notification { method, .. } => MessageKind::Notification {
                method: method.clone(),
            },
            Message::Response { id, .. } | Message::ErrorResponse { id: Some(id), .. } => {
                MessageKind::Response { id: id.clone() }
            }
            Message::ErrorResponse { id: None, .. } => {
                return Err(ProxyError::InvalidRequest(
                    "a response must carry the \"id\" of the request it answers".into(),
                ));
            }
        };
        Ok(IncomingMessage { kind, message })
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
    /// 202 Accepted (a notification or a response). The handlers match on
    /// the kind itself; the transport tests use this to answer like a server.
    #[cfg(test)]
    pub fn expects_response(&self) -> bool {
        matches!(self.kind, MessageKind::Request { .. })
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
            Ok(MessageKind::Request { id: Id::String(s), .. }) if s == "a"
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
        let m = IncomingMessage::parse(
            br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#,
        )
        .unwrap();
        let MessageKind::Request { id, .. } = m.kind else {
            panic!()
        };
        assert_eq!(id.to_value().to_string(), "123456789012345678901234567890");
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
