//! End to end, the modern era (MCP 2026-07-28): a modern client talks to the
//! real proxy in front of the real 2025-11-25 fixture server. Refusals touch
//! no process; served requests run on a warm one and come back in the modern
//! shape; notifications follow the request's own `_meta`; closing a stream
//! cancels upstream; session mode sends dual-era clients back to `initialize`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{Mcp, ProxyProcess, Req, result_text};
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e-modern", "version": "0"},
    })
}

/// A modern request with the headers a conforming 2026 client sends.
fn modern(proxy: &ProxyProcess, id: u64, method: &str, mut params: Value) -> Req {
    if params.get("_meta").is_none() {
        params["_meta"] = meta();
    }
    let mut req = proxy
        .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string())
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
    {
        req = req.header("mcp-name", name);
    }
    req
}

fn with_meta(extra: Value) -> Value {
    let mut m = meta();
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

fn era(m: &e2e_support::Metrics, era: &str) -> f64 {
    m.get(&format!("stdiopool_requests_by_era_total{{era=\"{era}\"}}"))
}

#[tokio::test]
async fn discover_and_every_refusal_are_answered_without_a_process() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "2", "--min-idle", "0"],
        &[],
    );
    let before = proxy.metrics().await;

    let reply = modern(&proxy, 1, "server/discover", json!({})).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.header("mcp-session-id").is_none(),
        "no session is minted"
    );
    let d = &reply.response()["result"];
    assert_eq!(d["supportedVersions"], json!([MODERN]));
    assert_eq!(d["resultType"], "complete");
    assert_eq!(d["ttlMs"], 0);
    assert_eq!(d["cacheScope"], "private");
    assert_eq!(
        d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "stdiopool-fixture"
    );
    assert!(d["capabilities"]["tools"].is_object(), "{d}");

    // Each refusal: (request, status, code).
    let no_meta = proxy
        .post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}).to_string())
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/list");
    let wrong_method =
        modern(&proxy, 3, "tools/list", json!({})).header("mcp-method", "prompts/list");
    let no_method_header = proxy
        .post(
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"_meta": meta()}})
                .to_string(),
        )
        .header("mcp-protocol-version", MODERN);
    let wrong_name = proxy
        .post(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}, "_meta": meta()}}).to_string())
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "pid");
    let mut v999 = meta();
    v999["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
    let unsupported = proxy
        .post(
            json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": {"_meta": v999}})
                .to_string(),
        )
        .header("mcp-protocol-version", "v999.0.0")
        .header("mcp-method", "tools/list");
    let body_v999 = proxy
        .post(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": v999}})
                .to_string(),
        )
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/list");
    let cases: Vec<(&str, Req, StatusCode, i64)> = vec![
        ("no _meta", no_meta, StatusCode::BAD_REQUEST, -32602),
        (
            "Mcp-Method mismatch",
            wrong_method,
            StatusCode::BAD_REQUEST,
            -32020,
        ),
        (
            "Mcp-Method missing",
            no_method_header,
            StatusCode::BAD_REQUEST,
            -32020,
        ),
        (
            "Mcp-Name mismatch",
            wrong_name,
            StatusCode::BAD_REQUEST,
            -32020,
        ),
        (
            "unsupported version",
            unsupported,
            StatusCode::BAD_REQUEST,
            -32022,
        ),
        (
            "header/body version mismatch",
            body_v999,
            StatusCode::BAD_REQUEST,
            -32020,
        ),
        (
            "initialize",
            modern(&proxy, 8, "initialize", json!({})),
            StatusCode::NOT_FOUND,
            -32601,
        ),
        (
            "ping",
            modern(&proxy, 9, "ping", json!({})),
            StatusCode::NOT_FOUND,
            -32601,
        ),
        (
            "logging/setLevel",
            modern(&proxy, 10, "logging/setLevel", json!({"level": "info"})),
            StatusCode::NOT_FOUND,
            -32601,
        ),
        (
            "unknown",
            modern(&proxy, 11, "unknown/method", json!({})),
            StatusCode::NOT_FOUND,
            -32601,
        ),
        // The fixture offers tools only.
        (
            "unadvertised",
            modern(&proxy, 12, "prompts/list", json!({})),
            StatusCode::NOT_FOUND,
            -32601,
        ),
    ];
    for (what, req, status, code) in cases {
        let reply = req.send().await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert_eq!(reply.error_code(), code, "{what}: {}", reply.text());
        if code == -32022 {
            assert_eq!(
                reply.response()["error"]["data"]["supported"],
                d["supportedVersions"],
                "the -32022 list and discover agree"
            );
        }
    }
    let reply = proxy
        .request(Method::GET)
        .header("mcp-protocol-version", MODERN)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);

    let after = proxy.metrics().await;
    assert_eq!(
        after.get("stdiopool_pool_created_total"),
        before.get("stdiopool_pool_created_total")
    );
    assert_eq!(
        after.get("stdiopool_process_spawned_total"),
        before.get("stdiopool_process_spawned_total")
    );
    assert_eq!(
        era(&after, "modern") - era(&before, "modern"),
        13.0,
        "{after:?}"
    );
}

#[tokio::test]
async fn tools_are_listed_and_called_on_a_warm_process_in_the_modern_shape() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "0"],
        &[],
    );
    let reply = modern(&proxy, 1, "tools/list", json!({})).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let r = reply.response();
    assert_eq!(r["id"], 1);
    let list = &r["result"];
    assert!(
        list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );
    assert_eq!(list["resultType"], "complete");
    assert_eq!(list["ttlMs"], 0);
    assert_eq!(list["cacheScope"], "private");
    assert_eq!(
        list["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "stdiopool-fixture"
    );

    let reply = modern(
        &proxy,
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    )
    .send()
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let r = reply.response();
    assert_eq!(result_text(&r), "hi");
    assert_eq!(r["result"]["resultType"], "complete");
    assert!(r["result"].get("ttlMs").is_none());

    // The server's protocol error keeps its code and gets the revision's status.
    let reply = modern(
        &proxy,
        3,
        "tools/call",
        json!({"name": "no-such-tool", "arguments": {}}),
    )
    .send()
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(reply.error_code(), -32602);
    assert_eq!(reply.response()["id"], 3);

    // The same process serves a legacy session in between, unchanged.
    let legacy = Mcp::connect(&proxy).await;
    let pid = legacy.pid().await;
    let reply = modern(
        &proxy,
        4,
        "tools/call",
        json!({"name": "pid", "arguments": {}}),
    )
    .send()
    .await;
    assert_eq!(
        reply.response()["result"]["structuredContent"]["pid"],
        json!(pid)
    );

    let m = proxy.metrics().await;
    assert_eq!(
        m.get("stdiopool_process_spawned_total"),
        1.0,
        "one warm process served both eras"
    );
    // echo, and pid in each era; the unknown tool is an error.
    assert_eq!(m.requests("tools/call", "ok"), 3.0);
    assert_eq!(m.requests("tools/call", "error"), 1.0);
    assert_eq!(m.requests("tools/list", "ok"), 1.0);
    assert_eq!(era(&m, "modern"), 4.0);
    assert!(
        era(&m, "legacy") >= 2.0,
        "initialize and the legacy call: {m:?}"
    );
    assert_eq!(
        m.requests("initialize", "ok"),
        1.0,
        "only the legacy client initialized"
    );
}

#[tokio::test]
async fn progress_and_log_messages_follow_the_requests_own_meta() {
    let proxy = ProxyProcess::start(&["--mode", "pooled", "--pool-size", "1"], &[]);
    // Progress on the request's stream, no ids on events.
    let params = json!({"name": "progress", "arguments": {"steps": 3}, "_meta": with_meta(json!({"progressToken": "p1"}))});
    let reply = modern(&proxy, 1, "tools/call", params).send().await;
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(
        !reply.text().lines().any(|l| l.starts_with("id:")),
        "{}",
        reply.text()
    );
    let messages = reply.messages();
    let progress: Vec<_> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{messages:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "p1")
    );
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 1);
    assert_eq!(last["result"]["resultType"], "complete");

    // The fixture's `notify` logs at info.
    let log_count = |messages: &[Value]| {
        messages
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count()
    };
    let at = |level: &str, id: u64| {
        let params = json!({"name": "notify", "arguments": {}, "_meta": with_meta(json!({"io.modelcontextprotocol/logLevel": level}))});
        modern(&proxy, id, "tools/call", params)
    };
    let reply = at("info", 2).send().await;
    assert_eq!(log_count(&reply.messages()), 1, "{}", reply.text());
    let reply = at("error", 3).send().await;
    assert_eq!(
        log_count(&reply.messages()),
        0,
        "below the level: {}",
        reply.text()
    );
    assert_eq!(
        reply.messages().last().unwrap()["result"]["resultType"],
        "complete"
    );
    // No logLevel: no log message (here on a stream opened for progress).
    let params =
        json!({"name": "notify", "arguments": {}, "_meta": with_meta(json!({"progressToken": 9}))});
    let reply = modern(&proxy, 4, "tools/call", params).send().await;
    assert_eq!(log_count(&reply.messages()), 0, "{}", reply.text());
    // And a server request never reaches a modern stream: this client lacks
    // `roots`, so the call ends with -32021 on the stream.
    let params = json!({"name": "ask_roots", "arguments": {}, "_meta": with_meta(json!({"progressToken": 10}))});
    let reply = modern(&proxy, 5, "tools/call", params).send().await;
    let messages = reply.messages();
    assert!(
        messages
            .iter()
            .all(|m| m.get("method").is_none() || m.get("id").is_none()),
        "{messages:?}"
    );
    assert_eq!(
        messages.last().unwrap()["error"]["code"],
        -32021,
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_server_request_for_an_undeclared_capability_ends_the_call_with_32021() {
    // One process: each call below needs it back, so a process left waiting
    // on an unanswered server request (or still busy) would hang the next.
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    let params = json!({"name": "ask_roots", "arguments": {}, "_meta": meta()});
    let reply = modern(&proxy, 1, "tools/call", params).send().await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["id"], 1, "{body}");
    assert_eq!(body["error"]["code"], -32021, "{body}");
    assert_eq!(
        body["error"]["data"]["requiredCapabilities"],
        json!({"roots": {}}),
        "{body}"
    );
    // The process went back (answered, its call cancelled) and serves on.
    let params = json!({"name": "echo", "arguments": {"message": "after"}, "_meta": meta()});
    let reply = modern(&proxy, 2, "tools/call", params).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(result_text(&reply.json()), "after", "{}", reply.text());
    let legacy = Mcp::connect(&proxy).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while legacy.cancellations().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the abandoned call was not cancelled upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `ping` needs no capability: the proxy answers it `{}`.
    let params = json!({"name": "ping_client", "arguments": {}, "_meta": meta()});
    let reply = modern(&proxy, 3, "tools/call", params).send().await;
    let body = reply.json();
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(result_text(&body), "{}", "{body}");
}

#[tokio::test]
async fn closing_a_modern_stream_cancels_the_call_upstream() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "0"],
        &[],
    );
    let params = json!({"name": "sleep", "arguments": {"ms": 30000}, "_meta": with_meta(json!({"progressToken": 1}))});
    let open = modern(&proxy, 1, "tools/call", params).open().await;
    assert!(open.is_sse());
    // Wait until the call is on the process, then go away.
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.metrics().await.get("stdiopool_pool_in_use") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the call never reached a process"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
    let legacy = Mcp::connect(&proxy).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The pool has one process: this call waits for it to come back.
        if !legacy.cancellations().await.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no notifications/cancelled reached the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = proxy.metrics().await;
    assert_eq!(m.requests("tools/call", "cancelled"), 1.0);
}

#[tokio::test]
async fn session_mode_sends_modern_clients_back_to_initialize_without_a_process() {
    let proxy = ProxyProcess::start(
        &["--mode", "session", "--pool-size", "2", "--min-idle", "1"],
        &[],
    );
    let before = proxy.metrics().await;
    let reply = modern(&proxy, 1, "server/discover", json!({})).send().await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    // Not a modern code (-32020/-32021/-32022): dual-era clients fall back.
    assert_eq!(reply.error_code(), -32600);
    assert!(
        reply.error_message().contains("session mode"),
        "{}",
        reply.text()
    );
    let after = proxy.metrics().await;
    assert_eq!(
        after.get("stdiopool_pool_recycled_total"),
        before.get("stdiopool_pool_recycled_total")
    );
    assert_eq!(after.get("stdiopool_pool_in_use"), 0.0);
    // The fallback works.
    let legacy = Mcp::connect(&proxy).await;
    assert_eq!(
        result_text(&legacy.call_tool("echo", json!({"message": "ok"})).await),
        "ok"
    );
}

#[tokio::test]
async fn listen_acknowledges_only_what_the_pool_honours_and_stays_open() {
    let proxy = ProxyProcess::start(&["--mode", "pooled", "--pool-size", "1"], &[]);
    let params = json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["file:///x"]}});
    let open = modern(&proxy, 7, "subscriptions/listen", params)
        .open()
        .await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(open.is_sse());
    let mut events = open.sse();
    let ack = events.next().await.expect("an acknowledgement");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    // Pooled processes' change notifications have no path out yet: nothing is promised.
    assert_eq!(ack["params"]["notifications"], json!({}));
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    // The stream holds no process: a call is served while it is open.
    let reply = modern(
        &proxy,
        8,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "while listening"}}),
    )
    .send()
    .await;
    assert_eq!(result_text(&reply.response()), "while listening");
}
