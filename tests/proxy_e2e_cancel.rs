//! End to end, both modes: a request that stops being wanted is cancelled
//! upstream. A request past `--request-timeout` gets a JSON-RPC error for its
//! id and the server gets `notifications/cancelled`; so does a request whose
//! client disconnects before the answer. The fixture records every
//! cancellation it receives (its `cancellations` tool).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_support::{LIMIT, MODES, Mcp, ProxyProcess, result_text};
use serde_json::{Value, json};

/// Polls the (single) process's cancellations until there is one.
async fn wait_for_cancellation(mcp: &Mcp, mode: &str) -> Vec<Value> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let seen = mcp.cancellations().await;
        if !seen.is_empty() {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{mode}: the server never received notifications/cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_past_the_timeout_gets_an_error_and_is_cancelled_upstream() {
    for mode in MODES {
        // One process, so the `cancellations` call asks the one that slept.
        let proxy = ProxyProcess::start(
            &[
                "--mode",
                mode,
                "--pool-size",
                "1",
                "--request-timeout",
                "300ms",
            ],
            &[],
        );
        let mcp = Mcp::connect(&proxy).await;
        let pid = mcp.pid().await;
        let response = mcp.call_tool("sleep", json!({"ms": 2000})).await;
        assert_eq!(response["error"]["code"], -32001, "{mode}: {response}");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("within 300ms") && message.contains("cancelled"),
            "{mode}: {message}"
        );
        let cancelled = wait_for_cancellation(&mcp, mode).await;
        assert_eq!(cancelled.len(), 1, "{mode}: {cancelled:?}");
        // The process is kept (a timeout is not its fault) and still serves.
        assert_eq!(mcp.pid().await, pid, "{mode}");
        let m = proxy.metrics().await;
        assert_eq!(m.requests("tools/call", "timeout"), 1.0, "{mode}: {m:?}");
    }
}

#[tokio::test]
async fn a_client_that_disconnects_mid_request_cancels_it_upstream() {
    for mode in MODES {
        let proxy = ProxyProcess::start(&["--mode", mode, "--pool-size", "1"], &[]);
        let mcp = Arc::new(Mcp::connect(&proxy).await);
        let pid = mcp.pid().await;
        let inflight = {
            let mcp = mcp.clone();
            // The head comes with the answer or, for an SSE-capable reply,
            // after its first message or one second: the client goes before
            // either, while the handler holds the call. Either way the task
            // holds the connection.
            tokio::spawn(async move {
                let open = mcp.tool_req(500, "sleep", json!({"ms": 5000})).open().await;
                let _ = open.collect().await;
                unreachable!("the request was meant to be abandoned");
            })
        };
        proxy.wait_for_log("sleep 5000 ms for request").await;
        inflight.abort(); // closes the socket
        let _ = inflight.await;
        let cancelled = wait_for_cancellation(&mcp, mode).await;
        assert_eq!(cancelled.len(), 1, "{mode}: {cancelled:?}");
        assert_eq!(mcp.pid().await, pid, "{mode}: the process is kept");
        let m = proxy
            .wait_metrics("the request counted as cancelled", |m| {
                m.requests("tools/call", "cancelled") == 1.0
            })
            .await;
        assert_eq!(m.get("stdiopool_pool_broken_total"), 0.0, "{mode}");
        let echo = mcp.call_tool("echo", json!({"message": "after"})).await;
        assert_eq!(result_text(&echo), "after", "{mode}");
    }
}

#[tokio::test]
async fn a_client_cancellation_notification_cancels_the_request_upstream() {
    for mode in MODES {
        let proxy = ProxyProcess::start(&["--mode", mode, "--pool-size", "1"], &[]);
        let mcp = Arc::new(Mcp::connect(&proxy).await);
        let call = {
            let mcp = mcp.clone();
            tokio::spawn(async move { mcp.tool_req(42, "sleep", json!({"ms": 5000})).send().await })
        };
        proxy.wait_for_log("sleep 5000 ms for request").await;
        let notice = mcp
            .post(json!({
                "jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": 42, "reason": "user gave up"},
            }))
            .send()
            .await;
        assert_eq!(notice.status, hyper::http::StatusCode::ACCEPTED, "{mode}");
        let reply = call.await.unwrap();
        let response = reply.response();
        assert_eq!(response["id"], 42, "{mode}: {response}");
        assert!(response.get("error").is_some(), "{mode}: {response}");
        let cancelled = wait_for_cancellation(&mcp, mode).await;
        assert_eq!(cancelled.len(), 1, "{mode}: {cancelled:?}");
    }
}
