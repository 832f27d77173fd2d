//! End to end, both modes: the transport rows of DESIGN §7 (and the method
//! rows of docs/PROXY.md). Each refusal must carry the documented status,
//! JSON-RPC code and message, and must not touch a server process: the pool's
//! creations and checkouts, the spawn count and every request counted with an
//! outcome other than `rejected` are the same before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use e2e_support::{Mcp, ProxyProcess, Req, initialize_body};
use hyper::http::{Method, StatusCode};
use serde_json::json;

const TOKEN: &str = "e2e-secret-token";

/// One bad request and the answer it must get.
struct Case {
    name: &'static str,
    req: Req,
    status: StatusCode,
    code: i64,
    /// Text the error message must contain.
    message: &'static str,
    /// A header the reply must carry, with its value.
    header: Option<(&'static str, &'static str)>,
}

fn token_file(mode: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("stdiopool-e2e-token-{}-{mode}", std::process::id()));
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

fn cases(proxy: &ProxyProcess, mcp: &Mcp, ended: &Mcp, mode: &str) -> Vec<Case> {
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "pid"}});
    let c = |name, req, status, code, message| Case {
        name,
        req,
        status,
        code,
        message,
        header: None,
    };
    let allow = if mode == "session" {
        "GET, POST, DELETE"
    } else {
        "POST, DELETE"
    };
    vec![
        c("body that is not JSON", mcp.post(json!(null)).body("{\"jsonrpc\": \"2.0\", "), StatusCode::BAD_REQUEST, -32700, "Parse error"),
        c("binary body", mcp.post(json!(null)).body(vec![0xff, 0xfe, 0x00]), StatusCode::BAD_REQUEST, -32700, "Parse error"),
        c("JSON without jsonrpc", mcp.post(json!({"id": 1, "method": "tools/list"})), StatusCode::BAD_REQUEST, -32600, "Invalid Request"),
        c("jsonrpc 1.0", mcp.post(json!({"jsonrpc": "1.0", "id": 1, "method": "tools/list"})), StatusCode::BAD_REQUEST, -32600, "Invalid Request"),
        c("a batch array", mcp.post(json!([call.clone(), call.clone()])), StatusCode::BAD_REQUEST, -32600, "Invalid Request"),
        c("id null", mcp.post(json!({"jsonrpc": "2.0", "id": null, "method": "tools/call", "params": {"name": "pid"}})), StatusCode::BAD_REQUEST, -32600, "Invalid Request"),
        c("params a string", mcp.post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "pid"})), StatusCode::BAD_REQUEST, -32600, "Invalid Request"),
        c("a JSON number", mcp.post(json!(42)), StatusCode::BAD_REQUEST, -32600, "Invalid Request"),
        c("missing Accept", mcp.post(call.clone()).without("accept"), StatusCode::NOT_ACCEPTABLE, -32000, "Accept"),
        c("Accept without SSE", mcp.post(call.clone()).header("accept", "application/json"), StatusCode::NOT_ACCEPTABLE, -32000, "Accept"),
        c("Accept SSE with q=0", mcp.post(call.clone()).header("accept", "application/json, text/event-stream;q=0"), StatusCode::NOT_ACCEPTABLE, -32000, "Accept"),
        c("Content-Type text/plain", mcp.post(call.clone()).header("content-type", "text/plain"), StatusCode::UNSUPPORTED_MEDIA_TYPE, -32000, "Content-Type"),
        c("missing Content-Type", mcp.post(call.clone()).without("content-type"), StatusCode::UNSUPPORTED_MEDIA_TYPE, -32000, "Content-Type"),
        c("unknown session", mcp.post(call.clone()).header("mcp-session-id", "0123456789abcdef0123456789abcdef"), StatusCode::NOT_FOUND, -32005, "Session not found"),
        c("malformed session id", mcp.post(call.clone()).header("mcp-session-id", "not-a-session"), StatusCode::NOT_FOUND, -32005, "Session not found"),
        c("ended session", ended.post(call.clone()), StatusCode::NOT_FOUND, -32005, "Session not found"),
        c("DELETE of an ended session", ended.request(Method::DELETE), StatusCode::NOT_FOUND, -32005, "Session not found"),
        c("no session", mcp.post(call.clone()).without("mcp-session-id"), StatusCode::BAD_REQUEST, -32000, "Mcp-Session-Id"),
        c("unsupported protocol version", mcp.post(call.clone()).header("mcp-protocol-version", "1999-01-01"), StatusCode::BAD_REQUEST, -32000, "protocol version"),
        c("body over --max-body", mcp.post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x".repeat(8 * 1024)}}})), StatusCode::PAYLOAD_TOO_LARGE, -32000, "exceeds 4096 bytes"),
        c("foreign Host", mcp.post(call.clone()).header("host", "evil.example.com"), StatusCode::FORBIDDEN, -32000, "Host"),
        c("Origin null", mcp.post(call.clone()).header("origin", "null"), StatusCode::FORBIDDEN, -32000, "Origin"),
        Case {
            header: Some(("www-authenticate", "Bearer realm=\"stdiopool\"")),
            ..c("missing token", mcp.post(call.clone()).without("authorization"), StatusCode::UNAUTHORIZED, -32000, "bearer token is required")
        },
        Case {
            header: Some(("www-authenticate", "Bearer realm=\"stdiopool\", error=\"invalid_token\"")),
            ..c("wrong token", mcp.post(call.clone()).header("authorization", "Bearer e2e-secret-tokem"), StatusCode::UNAUTHORIZED, -32000, "invalid bearer token")
        },
        c("token of another scheme", mcp.post(call.clone()).header("authorization", &format!("Basic {TOKEN}")), StatusCode::UNAUTHORIZED, -32000, "Unauthorized"),
        c("initialize without a token", proxy.post(initialize_body(1, json!({})).to_string()), StatusCode::UNAUTHORIZED, -32000, "Unauthorized"),
        c("foreign Origin", mcp.post(call.clone()).header("origin", "http://evil.example.com"), StatusCode::FORBIDDEN, -32000, "Origin"),
        c("foreign Origin on initialize", proxy.post(initialize_body(1, json!({})).to_string()).header("origin", "https://evil.example.com").header("authorization", &format!("Bearer {TOKEN}")), StatusCode::FORBIDDEN, -32000, "Origin"),
        Case {
            header: Some(("allow", allow)),
            ..c("PUT", mcp.request(Method::PUT), StatusCode::METHOD_NOT_ALLOWED, -32000, "Method Not Allowed")
        },
        Case {
            header: Some(("allow", allow)),
            ..c("PATCH", mcp.post(call.clone()).method(Method::PATCH), StatusCode::METHOD_NOT_ALLOWED, -32000, "Method Not Allowed")
        },
        c("GET without an SSE Accept", mcp.request(Method::GET).header("accept", "application/json"), if mode == "session" { StatusCode::NOT_ACCEPTABLE } else { StatusCode::METHOD_NOT_ALLOWED }, -32000, if mode == "session" { "Accept" } else { "Method Not Allowed" }),
    ]
}

async fn refusals_touch_no_process(mode: &str) {
    let token = token_file(mode);
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            mode,
            "--pool-size",
            "2",
            "--min-idle",
            "1",
            "--max-body",
            "4KiB",
            "--auth-token-file",
            token.to_str().unwrap(),
        ],
        &[],
    );
    let mcp = Mcp::connect_with(&proxy, json!({}), Some(TOKEN)).await;
    let pid = mcp.pid().await;
    let ended = Mcp::connect_with(&proxy, json!({}), Some(TOKEN)).await;
    assert_eq!(ended.delete().await.status, StatusCode::OK);
    // Session mode: the ended session's process is destroyed and a spare
    // warmed in its place; wait for that to settle before counting.
    let settled = proxy
        .wait_metrics("the pool settled", |m| {
            m.get("stdiopool_pool_in_use") == if mode == "session" { 1.0 } else { 0.0 }
                && m.get("stdiopool_pool_idle") >= 1.0
                && m.get("stdiopool_process_live") == m.get("stdiopool_pool_size")
        })
        .await;
    let before = settled.touch_counts();

    for case in cases(&proxy, &mcp, &ended, mode) {
        let reply = case.req.send().await;
        let what = format!("{mode}: {}: {} {}", case.name, reply.status, reply.text());
        assert_eq!(reply.status, case.status, "{what}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        let body = reply.json();
        assert_eq!(body["jsonrpc"], "2.0", "{what}");
        assert_eq!(body["id"], json!(null), "{what}");
        assert_eq!(reply.error_code(), case.code, "{what}");
        assert!(reply.error_message().contains(case.message), "{what}");
        if let Some((name, value)) = case.header {
            assert_eq!(reply.header(name), Some(value), "{what}");
        }
    }

    // Every refused connection is closed again: no fd is left behind.
    let fds = settled.get("stdiopool_open_fds");
    let after = proxy
        .wait_metrics("the proxy's fds back to where they were", |m| {
            m.get("stdiopool_open_fds") <= fds
        })
        .await;
    assert_eq!(after.get("stdiopool_zombies"), 0.0, "{mode}");
    assert_eq!(
        before,
        after.touch_counts(),
        "{mode}: a refusal reached the pool"
    );
    // The session and its process are unharmed.
    assert_eq!(mcp.pid().await, pid, "{mode}");
    std::fs::remove_file(token).unwrap();
}

#[tokio::test]
async fn pooled_mode_refuses_bad_input_before_any_process() {
    refusals_touch_no_process("pooled").await;
}

#[tokio::test]
async fn session_mode_refuses_bad_input_before_any_process() {
    refusals_touch_no_process("session").await;
}

#[tokio::test]
async fn ops_endpoints_need_no_token_and_count_nothing() {
    let token = token_file("ops");
    let proxy = ProxyProcess::start(
        &[
            "--pool-size",
            "1",
            "--auth-token-file",
            token.to_str().unwrap(),
        ],
        &[],
    );
    let health = Req::new(proxy.addr, Method::GET, "/healthz").send().await;
    assert_eq!(
        (health.status, health.text().trim()),
        (StatusCode::OK, "ok")
    );
    let ready = Req::new(proxy.addr, Method::GET, "/readyz").send().await;
    assert_eq!(
        (ready.status, ready.text().trim()),
        (StatusCode::OK, "ready")
    );
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_pool_max"), 1.0);
    std::fs::remove_file(token).unwrap();
}
