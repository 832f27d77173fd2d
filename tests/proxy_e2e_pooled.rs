//! End to end, pooled mode: the seed's check (sequential requests reuse one
//! warm process), and what pooled mode refuses without touching a process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use e2e_support::{Mcp, ProxyProcess, initialize_body, result_text};
use hyper::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn hundred_sequential_requests_are_served_by_one_process() {
    // min-idle 0: no spare is warmed while the one process is busy, so a
    // second spawn could only come from the proxy not reusing it.
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "4", "--min-idle", "0"],
        &[],
    );
    let mcp = Mcp::connect(&proxy).await;
    let first = mcp.pid().await;
    for i in 0..100 {
        let pid = mcp.pid().await;
        assert_eq!(pid, first, "request {i} was served by another process");
    }
    let echo = mcp
        .call_tool("echo", json!({"message": "still warm"}))
        .await;
    assert_eq!(result_text(&echo), "still warm");

    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_process_spawned_total"), 1.0, "{m:?}");
    assert_eq!(m.get("stdiopool_pool_created_total"), 1.0);
    assert_eq!(m.requests("tools/call", "ok"), 102.0);
    assert!(e2e_support::exists(first));
}

#[tokio::test]
async fn a_sessionless_request_other_than_initialize_is_refused_without_a_process() {
    let proxy = ProxyProcess::start(&["--mode", "pooled", "--pool-size", "2"], &[]);
    let before = proxy.metrics().await;
    for body in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "pid"}}),
    ] {
        let reply = proxy.post(body.to_string()).send().await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert_eq!(reply.error_code(), -32000);
        assert!(
            reply.error_message().contains("Mcp-Session-Id"),
            "{}",
            reply.text()
        );
    }
    let after = proxy.metrics().await;
    assert_eq!(before.touch_counts(), after.touch_counts());
}

#[tokio::test]
async fn pooled_initialize_is_answered_from_the_pools_handshake() {
    let proxy = ProxyProcess::start(&["--mode", "pooled", "--pool-size", "2"], &[]);
    let before = proxy.metrics().await;
    let reply = proxy
        .post(initialize_body(7, json!({})).to_string())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let response = reply.response();
    assert_eq!(response["id"], 7);
    assert_eq!(
        response["result"]["serverInfo"]["name"],
        "stdiopool-fixture"
    );
    // `<instance>.<32 hex>`: the instance id (the host name by default),
    // then 128 random bits (docs/PROXY.md, "Replies").
    let sid = reply.header("mcp-session-id").unwrap_or_default();
    let (instance, random) = sid.split_once('.').unwrap_or_default();
    assert!(
        !instance.is_empty(),
        "session id {sid:?} names its instance"
    );
    assert!(
        random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "session id {sid:?}: the instance, then 32 hex characters"
    );
    let after = proxy.metrics().await;
    // No checkout: the cached InitializeResult answers.
    assert_eq!(
        before.get("stdiopool_pool_recycled_total"),
        after.get("stdiopool_pool_recycled_total")
    );
}

#[tokio::test]
async fn get_and_other_methods_are_405_with_allow_in_pooled_mode() {
    let proxy = ProxyProcess::start(&["--mode", "pooled", "--pool-size", "2"], &[]);
    let mcp = Mcp::connect(&proxy).await;
    let before = proxy.metrics().await;
    let get = mcp
        .request(Method::GET)
        .header("accept", "text/event-stream")
        .send()
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{}", get.text());
    assert_eq!(get.header("allow"), Some("POST, DELETE"));
    assert_eq!(get.error_code(), -32000);
    for method in [Method::PUT, Method::PATCH, Method::HEAD, Method::OPTIONS] {
        let reply = mcp.request(method.clone()).send().await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header("allow"), Some("POST, DELETE"), "{method}");
    }
    let after = proxy.metrics().await;
    assert_eq!(before.touch_counts(), after.touch_counts());
    // The session is untouched by the refusals.
    assert_eq!(
        mcp.call_tool("echo", json!({"message": "ok"})).await["result"]["isError"],
        false
    );
}

#[tokio::test]
async fn a_call_answered_before_any_other_message_is_a_json_reply_else_a_stream() {
    for mode in ["pooled", "session"] {
        let proxy = ProxyProcess::start(&["--mode", mode, "--pool-size", "1"], &[]);
        let mcp = Mcp::connect(&proxy).await;
        // Nothing but the response: plain JSON, no stream (both accepted).
        let reply = mcp
            .call_tool_reply("echo", json!({"message": "fast"}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{mode}");
        assert!(
            !is_sse(&reply),
            "{mode}: {:?}",
            reply.header("content-type")
        );
        assert_eq!(result_text(&reply.json()), "fast", "{mode}");
        // A notification before the response: the stream, in stdout's order.
        let reply = mcp.call_tool_reply("notify", json!({})).await;
        assert!(is_sse(&reply), "{mode}");
        let messages = reply.messages();
        assert_eq!(messages.len(), 2, "{mode}: {messages:?}");
        assert_eq!(messages[0]["method"], "notifications/message", "{mode}");
        assert_eq!(result_text(&messages[1]), "notified", "{mode}");
        // A call slower than the headers wait: the stream, as before.
        let reply = mcp.call_tool_reply("sleep", json!({"ms": 1300})).await;
        assert!(is_sse(&reply), "{mode}");
        assert_eq!(reply.messages().len(), 1, "{mode}");
    }
}

fn is_sse(reply: &e2e_support::Reply) -> bool {
    reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
}

/// The fast path (docs/PERFORMANCE.md): a success response's `result` goes
/// into the JSON reply exactly as the server wrote it — member order,
/// spacing, number spellings and escapes a tree would normalise — behind
/// the client's id, with a `Content-Length` that matches. In both modes.
#[tokio::test]
async fn a_json_reply_carries_the_servers_result_bytes_unchanged() {
    let result = r#"{"b" : 1.50,  "a":[1e2, "\u00e9", "tab\there", "\"q\"", -0, 10000000000000000000001], "z":{ }}"#;
    for mode in e2e_support::MODES {
        let proxy = ProxyProcess::start(&["--mode", mode, "--pool-size", "1"], &[]);
        let mcp = Mcp::connect(&proxy).await;
        let id = mcp.next_id();
        let reply = mcp
            .tool_req(id, "verbatim", json!({ "result": result }))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{mode}: {}", reply.text());
        // Both forms are accepted; a response with nothing before it is JSON.
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let expected = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
        assert_eq!(reply.text(), expected, "{mode}");
        assert_eq!(
            reply.header("content-length"),
            Some(expected.len().to_string().as_str()),
            "{mode}"
        );
    }
}
