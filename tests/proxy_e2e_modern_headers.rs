//! End to end, `Mcp-Param-*` headers (MCP 2026-07-28): a modern `tools/call`
//! of a tool whose schema carries `x-mcp-header` annotations (the fixture's
//! `route`) is checked against its arguments by the real proxy. Known tools
//! are checked before any process is touched; an unknown one on the call's
//! own process, before the call is sent; a list change seen during a modern
//! call makes the proxy look again; a client gone during that look gives the
//! process back and cancels the listing upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{Mcp, ProxyProcess, Req};
use hyper::http::StatusCode;
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

/// A modern request with the standard headers a 2026 client sends, plus
/// `extra` headers.
fn modern(
    proxy: &ProxyProcess,
    id: u64,
    method: &str,
    params: Value,
    extra: &[(&str, &str)],
) -> Req {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut req = proxy
        .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string())
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        req = req.header("mcp-name", name);
    }
    for (k, v) in extra {
        req = req.header(k, v);
    }
    req
}

fn route(proxy: &ProxyProcess, id: u64, arguments: Value, extra: &[(&str, &str)]) -> Req {
    modern(
        proxy,
        id,
        "tools/call",
        json!({"name": "route", "arguments": arguments}),
        extra,
    )
}

/// Asserts a refusal: HTTP 400 with -32020.
async fn refused(req: Req, what: &str) {
    let reply = req.send().await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{what}: {}",
        reply.text()
    );
    assert_eq!(reply.error_code(), -32020, "{what}: {}", reply.text());
}

/// Asserts the call ran: HTTP 200, and the tool echoed `arguments`.
async fn ran(req: Req, arguments: &Value, what: &str) {
    let reply = req.send().await;
    assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text());
    let body = reply.response();
    assert_eq!(
        &body["result"]["structuredContent"], arguments,
        "{what}: {body}"
    );
}

async fn wait_in_use(proxy: &ProxyProcess, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.metrics().await.get("stdiopool_pool_in_use") != want {
        assert!(Instant::now() < deadline, "in_use never reached {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn listed_tools_have_their_headers_checked_before_any_process_is_touched() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    let list = modern(&proxy, 1, "tools/list", json!({}), &[]).send().await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let args = json!({"region": "us-west1", "count": 42, "query": "q"});
    ran(
        route(
            &proxy,
            2,
            args.clone(),
            &[("Mcp-Param-Region", "us-west1"), ("mcp-param-count", "42")],
        ),
        &args,
        "matching headers",
    )
    .await;
    // Base64 forms, and an integer compared as a number.
    let greeting = json!({"region": "Hello, 世界", "count": 7});
    ran(
        route(
            &proxy,
            3,
            greeting.clone(),
            &[
                ("mcp-param-region", "=?base64?SGVsbG8sIOS4lueVjA==?="),
                ("mcp-param-count", "7.0"),
            ],
        ),
        &greeting,
        "base64 and 7.0",
    )
    .await;
    // Arguments without annotations need no header.
    ran(
        route(&proxy, 4, json!({"query": "q"}), &[]),
        &json!({"query": "q"}),
        "no annotated argument",
    )
    .await;

    let before = proxy.metrics().await;
    let hello = json!({"region": "Hello"});
    refused(
        route(&proxy, 5, hello.clone(), &[]),
        "the header omitted, the value in the body",
    )
    .await;
    refused(
        route(&proxy, 6, hello.clone(), &[("mcp-param-region", "hello")]),
        "values are case-sensitive",
    )
    .await;
    refused(
        route(
            &proxy,
            7,
            hello.clone(),
            &[("mcp-param-region", "=?base64?SGVsbG8?=")],
        ),
        "Base64 padding",
    )
    .await;
    refused(
        route(
            &proxy,
            8,
            hello.clone(),
            &[("mcp-param-region", "=?base64?SGVs!!!bG8=?=")],
        ),
        "Base64 alphabet",
    )
    .await;
    refused(
        route(&proxy, 9, json!({}), &[("mcp-param-region", "Hello")]),
        "a header without its argument",
    )
    .await;
    refused(
        route(
            &proxy,
            10,
            json!({"count": 42}),
            &[("mcp-param-count", "43")],
        ),
        "a different integer",
    )
    .await;
    // A repeated header is a unit test (`param_headers`): this client sends
    // each header once.
    let after = proxy.metrics().await;
    assert_eq!(
        after.touch_counts(),
        before.touch_counts(),
        "a refusal touched a process"
    );
}

#[tokio::test]
async fn an_unlisted_tool_is_looked_up_on_its_process_before_the_call_is_sent() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    // No tools/list yet: the proxy lists the tools itself on the process it
    // checked out, and refuses the call before sending it.
    refused(
        route(&proxy, 1, json!({"region": "eu"}), &[]),
        "unlisted, header omitted",
    )
    .await;
    let args = json!({"region": "eu"});
    ran(
        route(&proxy, 2, args.clone(), &[("mcp-param-region", "eu")]),
        &args,
        "unlisted, header sent",
    )
    .await;
    // A header for another tool's annotation is just forwarded.
    let echo = modern(
        &proxy,
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
        &[("mcp-param-region", "elsewhere")],
    )
    .send()
    .await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.text());
    assert_eq!(echo.response()["result"]["content"][0]["text"], "hi");
}

#[tokio::test]
async fn a_list_change_seen_during_a_modern_call_makes_the_proxy_look_again() {
    // One process, so the rename and the calls after it meet the same list.
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    let list = modern(&proxy, 1, "tools/list", json!({}), &[]).send().await;
    assert_eq!(list.status, StatusCode::OK);
    let args = json!({"region": "eu"});
    ran(
        route(&proxy, 2, args.clone(), &[("mcp-param-region", "eu")]),
        &args,
        "before the rename",
    )
    .await;
    // The server renames `route`'s header to Zone and says its list changed.
    let rename = modern(
        &proxy,
        3,
        "tools/call",
        json!({"name": "rename_header", "arguments": {}}),
        &[],
    )
    .send()
    .await;
    assert_eq!(rename.status, StatusCode::OK, "{}", rename.text());
    // The proxy's catalog no longer holds the old rule: Region alone is now
    // a missing Zone, and Zone passes.
    refused(
        route(&proxy, 4, args.clone(), &[("mcp-param-region", "eu")]),
        "the old header",
    )
    .await;
    ran(
        route(&proxy, 5, args.clone(), &[("mcp-param-zone", "eu")]),
        &args,
        "the new header",
    )
    .await;
}

#[tokio::test]
async fn a_client_gone_while_the_proxy_lists_the_tools_gives_the_process_back() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    // The next tools/list takes 3 s, and the proxy is told the list changed.
    let slow = modern(
        &proxy,
        1,
        "tools/call",
        json!({"name": "slow_list", "arguments": {"ms": 3000}}),
        &[],
    )
    .send()
    .await;
    assert_eq!(slow.status, StatusCode::OK, "{}", slow.text());
    // A call the proxy must look up: it holds the process while it lists.
    let call = tokio::spawn(
        route(
            &proxy,
            2,
            json!({"region": "eu"}),
            &[("mcp-param-region", "eu")],
        )
        .try_open(),
    );
    wait_in_use(&proxy, 1.0).await;
    call.abort(); // the client goes away: the socket closes
    let _ = call.await;
    // The listing was cancelled upstream (the fixture reads the cancellation
    // once its slow tools/list is done), and the process serves the next
    // request.
    let legacy = Mcp::connect(&proxy).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while legacy.cancellations().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the listing was never cancelled upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_in_use(&proxy, 0.0).await;
}
