//! Which era a request to the MCP endpoint belongs to, decided before any
//! other MCP handling, by the rules the SDKs use (docs/ERAS.md, "Which era").
//!
//! Invariant: a request is modern only if it says so — a `MCP-Protocol-Version`
//! header naming a revision after 2025-11-25, or (not on `initialize`) an
//! `io.modelcontextprotocol/protocolVersion` key in the body's `params._meta`.
//! Everything else, including every body that does not parse, is legacy and
//! reaches the legacy checks byte for byte as sent, so legacy clients see
//! exactly what they saw before the modern front existed.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::jsonrpc::Message;
use crate::proxy::transport::message::IncomingMessage;
use crate::proxy::transport::routing_headers;
use crate::values::ModernVersion;

/// The `_meta` key that carries a modern request's protocol version.
pub(crate) const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// The search for [`META_PROTOCOL_VERSION`] in a body, built once:
/// `memmem::find` builds its searcher on every call, which cost more than the
/// search itself on a small body (~3k instructions per request).
static META_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(META_PROTOCOL_VERSION.as_bytes()));

/// What a POST is.
#[derive(Debug)]
pub(crate) enum Era {
    /// Handled by the mode's legacy handlers, unchanged.
    Legacy,
    /// Handled by the modern front; the body, parsed once.
    Modern(IncomingMessage),
}

/// Whether any `MCP-Protocol-Version` header names a modern revision.
pub(crate) fn header_is_modern(headers: &HeaderMap) -> bool {
    headers
        .get_all(routing_headers::PROTOCOL_VERSION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| ModernVersion::is_modern_revision(v.trim()))
}

/// The `_meta` protocol version of a message's params, if any.
pub(crate) fn meta_version(params: Option<&Value>) -> Option<&Value> {
    params?.get("_meta")?.get(META_PROTOCOL_VERSION)
}

/// Classifies a POST from its headers and body.
///
/// A legacy body is not parsed here: without a modern header, only a body
/// that contains the `_meta` key's name is parsed, so legacy traffic pays a
/// substring search and nothing more.
pub(crate) fn classify_post(headers: &HeaderMap, body: &[u8]) -> Era {
    let by_header = header_is_modern(headers);
    if !by_header && META_FINDER.find(body).is_none() {
        return Era::Legacy;
    }
    // A body that does not parse gets the same answer either way (400,
    // -32700 / -32600): the legacy checks give it.
    let Ok(message) = IncomingMessage::parse(body) else {
        return Era::Legacy;
    };
    let modern = match &message.message {
        // `initialize` is the legacy handshake; only a client that already
        // announced the modern era in its header gets the modern answer
        // (-32601: the method does not exist there).
        Message::Request { method, .. } if method == "initialize" => by_header,
        Message::Request { params, .. } | Message::Notification { params, .. } => {
            by_header || meta_version(params.as_ref()).is_some()
        }
        Message::Response { .. } | Message::ErrorResponse { .. } => by_header,
    };
    if modern {
        Era::Modern(message)
    } else {
        Era::Legacy
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn headers(version: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = version {
            h.insert("mcp-protocol-version", HeaderValue::from_static(v));
        }
        h
    }

    fn is_modern(version: Option<&'static str>, body: &str) -> bool {
        matches!(
            classify_post(&headers(version), body.as_bytes()),
            Era::Modern(_)
        )
    }

    const META_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    const PLAIN_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    #[test]
    fn legacy_traffic_stays_legacy() {
        assert!(!is_modern(None, PLAIN_CALL));
        assert!(!is_modern(Some("2025-11-25"), PLAIN_CALL));
        assert!(!is_modern(Some("2025-03-26"), PLAIN_CALL));
        // Unknown text keeps today's legacy refusal.
        assert!(!is_modern(Some("latest"), PLAIN_CALL));
        assert!(!is_modern(None, INITIALIZE));
        assert!(!is_modern(None, r#"{"jsonrpc":"2.0","id":0,"result":{}}"#));
    }

    #[test]
    fn the_body_meta_or_a_modern_header_makes_a_request_modern() {
        assert!(is_modern(None, META_CALL));
        // Body first (the TypeScript SDK's rule): validation then refuses the
        // header/body mismatch with -32020.
        assert!(is_modern(Some("2025-11-25"), META_CALL));
        assert!(is_modern(Some("2026-07-28"), PLAIN_CALL));
        assert!(is_modern(Some("2026-07-28"), INITIALIZE));
        assert!(is_modern(
            Some("2026-07-28"),
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#
        ));
    }

    #[test]
    fn the_key_inside_a_string_is_not_enough() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"io.modelcontextprotocol/protocolVersion"}}}"#;
        assert!(!is_modern(None, body));
        assert!(!is_modern(
            None,
            "io.modelcontextprotocol/protocolVersion {"
        ));
    }
}
