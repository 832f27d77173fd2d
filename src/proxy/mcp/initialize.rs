//! Pooled mode's answer to `initialize`, built from the handshake the pool
//! already did with its processes.
//!
//! Invariant: the client is never promised what a shared process cannot
//! keep for it: capabilities that need per-session server state
//! (`resources.subscribe`, `tasks`) or a server-to-client stream
//! (`listChanged` notifications, which pooled mode has no stream for) are
//! removed. Everything else is the server's own answer.

use serde_json::{Map, Value};

use crate::values::ProtocolVersion;

/// The `InitializeResult` for a client that asked for `requested`.
///
/// Version: the requested one if this proxy supports it (the spec's rule:
/// echo a supported request), else the version the pool negotiated with its
/// processes.
pub(crate) fn pooled_initialize_result(upstream: &Value, requested: Option<&str>) -> Value {
    let mut result = upstream.as_object().cloned().unwrap_or_default();
    let version = requested
        .filter(|v| ProtocolVersion::SUPPORTED.iter().any(|s| s.as_str() == *v))
        .map(|v| Value::String(v.to_owned()));
    if let Some(version) = version {
        result.insert("protocolVersion".into(), version);
    }
    if let Some(Value::Object(caps)) = result.get_mut("capabilities") {
        restrict_capabilities(caps);
    }
    Value::Object(result)
}

fn restrict_capabilities(caps: &mut Map<String, Value>) {
    caps.remove("tasks");
    for (name, cap) in caps.iter_mut() {
        if let Value::Object(cap) = cap {
            cap.remove("listChanged");
            if name == "resources" {
                cap.remove("subscribe");
            }
        }
    }
}

/// Methods pooled mode refuses, with the reason sent to the client.
pub(crate) fn refused_in_pooled_mode(method: &str) -> Option<&'static str> {
    match method {
        "resources/subscribe" | "resources/unsubscribe" => Some(
            "resource subscriptions need a dedicated server process: run stdiopool with --mode session",
        ),
        m if m.starts_with("tasks/") => {
            Some("tasks live in one server process: run stdiopool with --mode session")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn upstream() -> Value {
        json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "prompts": {},
                "logging": {},
                "tasks": {"list": {}}
            },
            "serverInfo": {"name": "s", "version": "1"},
            "instructions": "hi"
        })
    }

    #[test]
    fn capabilities_that_need_a_dedicated_process_are_removed() {
        let r = pooled_initialize_result(&upstream(), Some("2025-11-25"));
        assert_eq!(
            r["capabilities"],
            json!({"tools": {}, "resources": {}, "prompts": {}, "logging": {}})
        );
        assert_eq!(r["serverInfo"]["name"], "s");
        assert_eq!(r["instructions"], "hi");
    }

    #[test]
    fn a_supported_requested_version_is_echoed_and_others_get_the_pools() {
        assert_eq!(
            pooled_initialize_result(&upstream(), Some("2025-03-26"))["protocolVersion"],
            "2025-03-26"
        );
        assert_eq!(
            pooled_initialize_result(&upstream(), Some("1999-01-01"))["protocolVersion"],
            "2025-11-25"
        );
        assert_eq!(
            pooled_initialize_result(&upstream(), None)["protocolVersion"],
            "2025-11-25"
        );
    }

    #[test]
    fn stateful_methods_are_refused_with_a_pointer_to_session_mode() {
        assert!(
            refused_in_pooled_mode("resources/subscribe")
                .unwrap()
                .contains("--mode session")
        );
        assert!(refused_in_pooled_mode("tasks/get").is_some());
        assert!(refused_in_pooled_mode("tools/call").is_none());
    }
}
