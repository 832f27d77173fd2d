//! `server/discover`, answered by the proxy from the handshake the pool
//! already did with its processes: no process is touched.
//!
//! Invariant: discover promises exactly what the pooled front serves —
//! the capabilities pooled mode gives a legacy client (the server's own,
//! minus what a shared process cannot keep: `tasks`, `listChanged`,
//! resource subscriptions) — and its `supportedVersions` is the list the
//! -32022 refusal names, so the two can never disagree.

use serde_json::{Map, Value, json};

use super::translate::complete_result;
use crate::proxy::mcp::initialize::pooled_initialize_result;
use crate::values::ModernVersion;

/// The `DiscoverResult` for a pool whose processes answered `initialize`
/// with `upstream`.
pub(crate) fn discover_result(upstream: &Value) -> Value {
    let legacy = pooled_initialize_result(upstream, None);
    let mut result = Map::new();
    result.insert(
        "supportedVersions".into(),
        json!(ModernVersion::supported_strs()),
    );
    let capabilities = legacy
        .get("capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    result.insert("capabilities".into(), capabilities);
    if let Some(instructions) = legacy.get("instructions") {
        result.insert("instructions".into(), instructions.clone());
    }
    let server_info = server_info(upstream);
    complete_result(&mut result, "server/discover", &server_info);
    Value::Object(result)
}

/// The server's `serverInfo` from its `InitializeResult` (null if absent).
pub(crate) fn server_info(upstream: &Value) -> Value {
    upstream.get("serverInfo").cloned().unwrap_or(Value::Null)
}

/// The capability a method needs the server to have advertised.
pub(crate) fn required_capability(method: &str) -> Option<&'static str> {
    match method {
        "tools/list" | "tools/call" => Some("tools"),
        "prompts/list" | "prompts/get" => Some("prompts"),
        "resources/list" | "resources/read" | "resources/templates/list" => Some("resources"),
        "completion/complete" => Some("completions"),
        _ => None,
    }
}

/// Whether the pool's server advertised `capability`.
pub(crate) fn advertises(upstream: &Value, capability: &str) -> bool {
    upstream
        .get("capabilities")
        .and_then(|c| c.get(capability))
        .is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn discover_is_the_pools_handshake_in_the_modern_shape() {
        let upstream = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {"listChanged": true}, "tasks": {"list": {}}, "logging": {}},
            "serverInfo": {"name": "s", "version": "1"},
            "instructions": "hi"
        });
        let d = discover_result(&upstream);
        assert_eq!(
            d,
            json!({
                "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}, "logging": {}},
                "instructions": "hi",
                "resultType": "complete",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}},
                "ttlMs": 0,
                "cacheScope": "private"
            })
        );
        assert!(d.get("protocolVersion").is_none());
    }

    #[test]
    fn methods_need_the_capability_their_family_names() {
        let upstream = json!({"capabilities": {"tools": {}}});
        assert!(advertises(
            &upstream,
            required_capability("tools/call").unwrap()
        ));
        assert!(!advertises(
            &upstream,
            required_capability("prompts/get").unwrap()
        ));
        assert_eq!(required_capability("ping"), None);
    }
}
