//! What a server request that arrives during a modern call asks of the
//! modern client, judged against the capabilities that client declared in
//! the request's `_meta` (a modern client declares them per request, there is
//! no `initialize`).
//!
//! Invariant: a request is [`Asked::Declared`] only when the client declared
//! everything it needs — the same rules as the legacy relay
//! (`relay.rs`): url-mode elicitation needs `elicitation.url`, sampling with
//! `tools` needs `sampling.tools` — so -32021's `requiredCapabilities` always
//! names something the client really lacks.

use serde_json::{Map, Value, json};

use super::code::MISSING_REQUIRED_CLIENT_CAPABILITY;
use crate::jsonrpc::ErrorObject;

/// One server request, as the modern client's capabilities see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Asked {
    /// `ping`: the proxy answers `{}` itself (the client is never asked).
    Ping,
    /// The client declared what the request needs; answering it is MRTR's
    /// (input-required results, docs/ERAS.md).
    Declared,
    /// The client did not declare this; the value is `requiredCapabilities`.
    Missing(Value),
    /// Not a request a server may send a client.
    Unknown,
}

/// Classifies server request `method` with `params` for a client that
/// declared `caps`.
pub(crate) fn classify(method: &str, params: Option<&Value>, caps: &Map<String, Value>) -> Asked {
    let field = |name: &str| params.and_then(|p| p.get(name));
    let required = match method {
        "ping" => return Asked::Ping,
        "roots/list" => json!({"roots": {}}),
        "sampling/createMessage" if field("tools").is_some() => {
            json!({"sampling": {"tools": {}}})
        }
        "sampling/createMessage" => json!({"sampling": {}}),
        "elicitation/create" if field("mode").and_then(Value::as_str) == Some("url") => {
            json!({"elicitation": {"url": {}}})
        }
        "elicitation/create" => json!({"elicitation": {}}),
        _ => return Asked::Unknown,
    };
    if declares(caps, &required) {
        Asked::Declared
    } else {
        Asked::Missing(required)
    }
}

/// Whether `caps` has every object `required` names (one level of nesting,
/// as the capabilities above have).
fn declares(caps: &Map<String, Value>, required: &Value) -> bool {
    let Some(required) = required.as_object() else {
        return false;
    };
    required.iter().all(|(name, sub)| {
        let Some(have) = caps.get(name).filter(|v| v.is_object()) else {
            return false;
        };
        sub.as_object().is_none_or(|sub| {
            sub.keys()
                .all(|k| have.get(k).is_some_and(Value::is_object))
        })
    })
}

/// The error the modern client gets for a request it lacks the capability
/// for (-32021, `data.requiredCapabilities`).
pub(crate) fn missing_capability(method: &str, required: Value) -> ErrorObject {
    ErrorObject::new(
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!(
            "Missing required client capability: the server asked {method}, which this request's clientCapabilities do not declare"
        ),
    )
    .with_data(json!({"requiredCapabilities": required}))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn caps(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn each_kind_needs_its_own_capability() {
        let none = caps(json!({}));
        let all = caps(json!({"roots": {}, "sampling": {}, "elicitation": {}}));
        for (method, name) in [
            ("roots/list", "roots"),
            ("sampling/createMessage", "sampling"),
            ("elicitation/create", "elicitation"),
        ] {
            assert_eq!(
                classify(method, None, &none),
                Asked::Missing(json!({name: {}})),
                "{method}"
            );
            assert_eq!(classify(method, None, &all), Asked::Declared, "{method}");
        }
        assert_eq!(classify("ping", None, &none), Asked::Ping);
        assert_eq!(classify("tasks/get", None, &all), Asked::Unknown);
    }

    #[test]
    fn url_elicitation_and_tool_sampling_need_the_sub_capability() {
        let plain = caps(json!({"sampling": {}, "elicitation": {"form": {}}}));
        let url = json!({"mode": "url", "url": "https://example.com"});
        assert_eq!(
            classify("elicitation/create", Some(&url), &plain),
            Asked::Missing(json!({"elicitation": {"url": {}}}))
        );
        let tools = json!({"messages": [], "tools": []});
        assert_eq!(
            classify("sampling/createMessage", Some(&tools), &plain),
            Asked::Missing(json!({"sampling": {"tools": {}}}))
        );
        let rich = caps(json!({"sampling": {"tools": {}}, "elicitation": {"url": {}}}));
        assert_eq!(
            classify("elicitation/create", Some(&url), &rich),
            Asked::Declared
        );
        assert_eq!(
            classify("sampling/createMessage", Some(&tools), &rich),
            Asked::Declared
        );
    }

    #[test]
    fn a_capability_that_is_not_an_object_is_not_declared() {
        let odd = caps(json!({"roots": true}));
        assert!(matches!(
            classify("roots/list", None, &odd),
            Asked::Missing(_)
        ));
    }

    #[test]
    fn the_error_is_32021_with_required_capabilities() {
        let e = missing_capability("sampling/createMessage", json!({"sampling": {}}));
        assert_eq!(e.code, -32021);
        let data = serde_json::to_value(&e).unwrap()["data"].clone();
        assert_eq!(data, json!({"requiredCapabilities": {"sampling": {}}}));
    }
}
