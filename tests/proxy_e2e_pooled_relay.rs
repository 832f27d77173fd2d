//! End to end, pooled mode: a server request made while a client's request
//! runs (here the fixture's `roots/list`) reaches that client on the
//! request's stream with the proxy's id, the client's answer reaches the same
//! process with the server's id, a client without the capability gets the
//! server's fallback at once, and nothing outlives the request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::time::Duration;

use e2e_support::{Mcp, ProxyProcess, result_text};
use hyper::http::StatusCode;
use serde_json::{Value, json};

const ROOT: &str = "file:///srv/pooled-relay";

fn pooled_proxy(extra: &[&str]) -> ProxyProcess {
    let mut args = vec!["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"];
    args.extend_from_slice(extra);
    ProxyProcess::start(&args, &[])
}

fn roots_answer(id: &Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id,
        "result": {"roots": [{"uri": ROOT, "name": "relay"}]},
    })
}

#[tokio::test]
async fn a_server_request_during_a_pooled_call_reaches_its_client_and_the_answer_its_process() {
    let proxy = pooled_proxy(&[]);
    let mcp = Mcp::connect_with(&proxy, json!({"roots": {}}), None).await;
    for round in 0..2 {
        let call = mcp
            .tool_req(10 + round, "ask_roots", json!({}))
            .open()
            .await;
        assert_eq!(call.status, StatusCode::OK);
        assert!(call.is_sse());
        let mut stream = call.sse();
        let asked = stream.next().await.expect("the call's stream ended");
        assert_eq!(asked["method"], "roots/list", "{asked}");
        let ours = asked["id"].as_str().unwrap_or_default().to_owned();
        assert!(
            ours.starts_with("stdiopool-relay-"),
            "the client sees the proxy's id, not the server's: {asked}"
        );
        let posted = mcp.post(roots_answer(&asked["id"])).send().await;
        assert_eq!(posted.status, StatusCode::ACCEPTED, "{}", posted.text());
        let response = stream.next().await.expect("no response after the answer");
        assert_eq!(response["id"], json!(10 + round), "{response}");
        assert!(result_text(&response).contains(ROOT), "{response}");
        assert_ne!(response["result"]["isError"], json!(true), "{response}");
    }
}

#[tokio::test]
async fn a_client_without_the_capability_gets_the_servers_fallback_at_once() {
    let proxy = pooled_proxy(&[]);
    let mcp = Mcp::connect(&proxy).await;
    // The fixture waits 30 s for an answer; a refusal must come well before.
    let response = tokio::time::timeout(
        Duration::from_secs(15),
        mcp.call_tool("ask_roots", json!({})),
    )
    .await
    .expect("the server was left waiting for a client that cannot answer");
    assert_eq!(response["result"]["isError"], json!(true), "{response}");
    assert!(result_text(&response).contains("-32601"), "{response}");
    // The process is healthy and serves the next request.
    let echo = mcp.call_tool("echo", json!({"message": "next"})).await;
    assert_eq!(result_text(&echo), "next");
}

#[tokio::test]
async fn a_relay_ends_with_its_request_and_a_late_answer_reaches_no_one() {
    let proxy = pooled_proxy(&["--request-timeout", "1s"]);
    let mcp = Mcp::connect_with(&proxy, json!({"roots": {}}), None).await;
    let call = mcp.tool_req(20, "ask_roots", json!({})).open().await;
    let mut stream = call.sse();
    let asked = stream.next().await.expect("the call's stream ended");
    assert_eq!(asked["method"], "roots/list", "{asked}");
    // No answer: the request times out, and its relay with it.
    let response = stream.next().await.expect("no response after the timeout");
    assert_eq!(response["id"], 20, "{response}");
    assert!(response.get("error").is_some(), "{response}");
    let late = mcp.post(roots_answer(&asked["id"])).send().await;
    assert_eq!(late.status, StatusCode::ACCEPTED);
    // The one process went back to the pool answered, not waiting: it
    // serves the next call, and a new relay works on it.
    let echo = mcp.call_tool("echo", json!({"message": "after"})).await;
    assert_eq!(result_text(&echo), "after");
    let call = mcp.tool_req(21, "ask_roots", json!({})).open().await;
    let mut stream = call.sse();
    let asked_again = stream.next().await.expect("the call's stream ended");
    assert_ne!(asked_again["id"], asked["id"], "relay ids are never reused");
    mcp.post(roots_answer(&asked_again["id"])).send().await;
    let response = stream.next().await.expect("no response");
    assert!(result_text(&response).contains(ROOT), "{response}");
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_process_spawned_total"), 1.0, "{:?}", m.0);
}
