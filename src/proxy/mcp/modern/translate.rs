//! What a 2025 server's answer becomes for a modern client: results gain
//! `resultType`, the server's identity in `_meta`, and the cache fields where
//! the 2026-07-28 revision requires them; renamed error codes are mapped;
//! each error gets the HTTP status of the revision's table; notifications
//! are filtered to what the request asked for.
//!
//! Invariant: everything the server said is kept (fields it set itself are
//! never overwritten); only what the modern era requires is added.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::code;
use super::validate::LogLevel;

/// `_meta` key of the server's identity on every result.
pub(crate) const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// The cache fields the proxy puts on cacheable results. A 2025 server says
/// nothing about how long its lists hold, so the proxy promises nothing:
/// `ttlMs: 0` (revalidate every time) and `private` (a shared cache must not
/// serve one client's answer to another: the server may answer per
/// environment or credentials). docs/ERAS.md, "Caching".
pub(crate) const TTL_MS: u64 = 0;
/// See [`TTL_MS`].
pub(crate) const CACHE_SCOPE: &str = "private";

/// The methods whose results must carry `ttlMs` and `cacheScope`.
pub(crate) fn is_cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// Adds the modern fields to a result object (`server_info` from the pool's
/// handshake; `Value::Null` when the server gave none).
pub(crate) fn complete_result(result: &mut Map<String, Value>, method: &str, server_info: &Value) {
    // An interim MRTR result is not cacheable and is not "complete".
    if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
        return;
    }
    result
        .entry("resultType")
        .or_insert_with(|| json!("complete"));
    if !server_info.is_null() {
        let meta = result.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.entry(META_SERVER_INFO)
                .or_insert_with(|| server_info.clone());
        }
    }
    if is_cacheable(method) {
        result.entry("ttlMs").or_insert_with(|| json!(TTL_MS));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!(CACHE_SCOPE));
    }
}

/// The 2026-07-28 code for a legacy one: "resource not found" is -32602 now,
/// and servers must not emit -32002.
pub(crate) fn modern_code(legacy: i64) -> i64 {
    match legacy {
        code::LEGACY_RESOURCE_NOT_FOUND => crate::jsonrpc::code::INVALID_PARAMS,
        other => other,
    }
}

/// Translates the final message for `method` (a response or error response,
/// id already the client's). Returns it with the error code, if any.
pub(crate) fn final_message(
    mut message: Value,
    method: &str,
    server_info: &Value,
) -> (Value, Option<i64>) {
    if let Some(Value::Object(result)) = message.get_mut("result") {
        complete_result(result, method, server_info);
        return (message, None);
    }
    let mut error_code = None;
    if let Some(Value::Object(error)) = message.get_mut("error")
        && let Some(c) = error.get("code").and_then(Value::as_i64)
    {
        let mapped = modern_code(c);
        if mapped != c {
            error.insert("code".into(), json!(mapped));
        }
        error_code = Some(mapped);
    }
    (message, error_code)
}

/// The HTTP status of a JSON reply carrying error `code` (the Python SDK's
/// table for the 2026-07-28 transport: malformed and mismatched requests are
/// 400, an unknown method 404, every other error travels in a 200).
pub(crate) fn status_for(code: Option<i64>) -> StatusCode {
    use crate::jsonrpc::code::{INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
    match code {
        Some(
            PARSE_ERROR
            | INVALID_REQUEST
            | INVALID_PARAMS
            | code::HEADER_MISMATCH
            | code::MISSING_REQUIRED_CLIENT_CAPABILITY
            | code::UNSUPPORTED_PROTOCOL_VERSION,
        ) => StatusCode::BAD_REQUEST,
        Some(METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// Whether a server notification may go on the request's stream: progress
/// always (the connection only routes a request's own progress to it); log
/// messages only when the request set a level and the message is at or
/// above it; nothing else (list changes belong to `subscriptions/listen`).
pub(crate) fn forwards_notification(note: &Value, level: Option<LogLevel>) -> bool {
    match note.get("method").and_then(Value::as_str) {
        Some("notifications/progress") => true,
        Some("notifications/message") => {
            let Some(wanted) = level else {
                return false;
            };
            note.get("params")
                .and_then(|p| p.get("level"))
                .and_then(Value::as_str)
                .and_then(LogLevel::parse)
                .is_some_and(|l| l >= wanted)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn info() -> Value {
        json!({"name": "fixture", "version": "1"})
    }

    #[test]
    fn results_gain_result_type_server_info_and_cache_fields_where_required() {
        let (m, code) = final_message(
            json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}),
            "tools/list",
            &info(),
        );
        assert_eq!(code, None);
        assert_eq!(
            m["result"],
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private",
                   "_meta": {"io.modelcontextprotocol/serverInfo": info()}})
        );
        let (m, _) = final_message(
            json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "_meta": {"k": 1}}}),
            "tools/call",
            &info(),
        );
        assert_eq!(m["result"]["resultType"], "complete");
        assert_eq!(m["result"]["_meta"]["k"], 1);
        assert!(
            m["result"].get("ttlMs").is_none(),
            "tools/call is not cacheable"
        );
    }

    #[test]
    fn fields_the_server_set_are_kept() {
        let mut r = json!({"resultType": "input_required", "ttlMs": 5, "cacheScope": "public"})
            .as_object()
            .cloned()
            .unwrap();
        complete_result(&mut r, "resources/read", &info());
        assert_eq!(r["resultType"], "input_required");
        assert_eq!(r["ttlMs"], 5);
        assert_eq!(r["cacheScope"], "public");
    }

    #[test]
    fn resource_not_found_is_mapped_and_statuses_follow_the_table() {
        let (m, code) = final_message(
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32002, "message": "not found"}}),
            "resources/read",
            &info(),
        );
        assert_eq!(code, Some(-32602));
        assert_eq!(m["error"]["code"], -32602);
        assert_eq!(status_for(code), StatusCode::BAD_REQUEST);
        assert_eq!(status_for(Some(-32601)), StatusCode::NOT_FOUND);
        assert_eq!(status_for(Some(-32603)), StatusCode::OK);
        assert_eq!(status_for(None), StatusCode::OK);
    }

    #[test]
    fn log_messages_pass_only_at_or_above_the_requested_level() {
        let log = |level: &str| json!({"method": "notifications/message", "params": {"level": level, "data": "x"}});
        assert!(!forwards_notification(&log("error"), None));
        assert!(forwards_notification(
            &log("error"),
            Some(LogLevel::Warning)
        ));
        assert!(forwards_notification(
            &log("warning"),
            Some(LogLevel::Warning)
        ));
        assert!(!forwards_notification(
            &log("info"),
            Some(LogLevel::Warning)
        ));
        assert!(forwards_notification(
            &json!({"method": "notifications/progress", "params": {}}),
            None
        ));
        assert!(!forwards_notification(
            &json!({"method": "notifications/tools/list_changed"}),
            Some(LogLevel::Debug)
        ));
    }
}
