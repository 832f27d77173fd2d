//! End to end, MRTR (multi round-trip requests, MCP 2026-07-28) over the
//! real 2025-11-25 fixture: a server request during a modern `tools/call`
//! parks the call and answers `input_required`; the retry with
//! `inputResponses` continues it on the same process. A parked call holds its
//! process at most `--input-wait` and gives way to a request that finds no
//! free process; a `requestState` is used once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{Mcp, ProxyProcess, Req, result_text};
use hyper::http::StatusCode;
use serde_json::{Value, json};

const MODERN: &str = "2026-07-28";

fn meta(caps: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "e2e-mrtr", "version": "0"},
    })
}

fn call(proxy: &ProxyProcess, id: u64, params: &Value) -> Req {
    let name = params["name"].as_str().unwrap().to_owned();
    proxy
        .post(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
                .to_string(),
        )
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", &name)
}

fn ask_roots() -> Value {
    json!({"name": "ask_roots", "arguments": {}, "_meta": meta(json!({"roots": {}}))})
}

/// The first round: `input_required` with one roots/list request. Returns
/// (key, requestState).
async fn park(proxy: &ProxyProcess, id: u64) -> (String, String) {
    let reply = call(proxy, id, &ask_roots()).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["id"], id, "{body}");
    let result = &body["result"];
    assert_eq!(result["resultType"], "input_required", "{body}");
    assert!(
        result.get("ttlMs").is_none(),
        "interim results are not cacheable: {body}"
    );
    let inputs = result["inputRequests"].as_object().unwrap();
    assert_eq!(inputs.len(), 1, "{body}");
    let (key, request) = inputs.iter().next().unwrap();
    assert_eq!(request["method"], "roots/list", "{body}");
    let state = result["requestState"].as_str().unwrap().to_owned();
    (key.clone(), state)
}

fn retry(key: &str, state: &str, uri: &str) -> Value {
    let mut params = ask_roots();
    params["inputResponses"] = json!({key: {"roots": [{"uri": uri, "name": "r"}]}});
    params["requestState"] = json!(state);
    params
}

async fn wait_in_use(proxy: &ProxyProcess, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.metrics().await.get("stdiopool_pool_in_use") != want {
        assert!(Instant::now() < deadline, "in_use never reached {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_request_parks_the_call_and_the_retry_continues_it() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    let (key, state) = park(&proxy, 1).await;
    // Parked: the call still holds its process.
    wait_in_use(&proxy, 1.0).await;
    let reply = call(&proxy, 2, &retry(&key, &state, "file:///mrtr"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(
        body["id"], 2,
        "the retry is answered under its own id: {body}"
    );
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert!(
        result_text(&body).contains("file:///mrtr"),
        "the server got the client's answer: {body}"
    );
    wait_in_use(&proxy, 0.0).await;
    // A state is used once.
    let reply = call(&proxy, 3, &retry(&key, &state, "file:///again"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(reply.error_code(), -32602, "{}", reply.text());
}

#[tokio::test]
async fn a_guessed_or_foreign_state_is_refused_and_leaves_the_call_parked() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "2", "--min-idle", "1"],
        &[],
    );
    let (key, state) = park(&proxy, 1).await;
    let guessed = retry(&key, "00000000000000000000000000000000", "file:///x");
    let reply = call(&proxy, 2, &guessed).send().await;
    assert_eq!(reply.error_code(), -32602, "{}", reply.text());
    // The same state on another tool: not this call's.
    let mut foreign =
        json!({"name": "echo", "arguments": {"message": "m"}, "_meta": meta(json!({"roots": {}}))});
    foreign["requestState"] = json!(state);
    foreign["inputResponses"] = json!({});
    let reply = call(&proxy, 3, &foreign).send().await;
    assert_eq!(reply.error_code(), -32602, "{}", reply.text());
    // Malformed inputResponses: a JSON-RPC error, nothing used up.
    let mut bad = retry(&key, &state, "file:///x");
    bad["inputResponses"] = Value::Null;
    let reply = call(&proxy, 4, &bad).send().await;
    assert_eq!(reply.error_code(), -32602, "{}", reply.text());
    // The real retry still works.
    let reply = call(&proxy, 5, &retry(&key, &state, "file:///ok"))
        .send()
        .await;
    assert!(
        result_text(&reply.json()).contains("file:///ok"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn a_retry_without_answers_is_asked_again() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    let (key, state) = park(&proxy, 1).await;
    let mut empty = retry(&key, &state, "file:///x");
    empty["inputResponses"] = json!({});
    let reply = call(&proxy, 2, &empty).send().await;
    let body = reply.json();
    assert_eq!(body["result"]["resultType"], "input_required", "{body}");
    assert!(
        body["result"]["inputRequests"].get(&key).is_some(),
        "{body}"
    );
    let again = body["result"]["requestState"].as_str().unwrap();
    assert_ne!(again, state, "each round has its own state");
    let reply = call(&proxy, 3, &retry(&key, again, "file:///late"))
        .send()
        .await;
    assert!(
        result_text(&reply.json()).contains("file:///late"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn a_parked_call_gives_its_process_back_after_input_wait() {
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            "pooled",
            "--pool-size",
            "1",
            "--min-idle",
            "1",
            "--input-wait",
            "300ms",
        ],
        &[],
    );
    let (key, state) = park(&proxy, 1).await;
    // No retry: the process comes back by itself; its server got an error
    // for roots/list and the call was cancelled.
    wait_in_use(&proxy, 0.0).await;
    let reply = call(&proxy, 2, &retry(&key, &state, "file:///x"))
        .send()
        .await;
    assert_eq!(reply.error_code(), -32602, "{}", reply.text());
    let legacy = Mcp::connect(&proxy).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while legacy.cancellations().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the parked call was not cancelled upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_parked_call_gives_way_to_a_request_that_finds_no_free_process() {
    // --input-wait far beyond the test: only giving way can free the process,
    // and without it the second request would get 503 after --wait-timeout.
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            "pooled",
            "--pool-size",
            "1",
            "--min-idle",
            "1",
            "--input-wait",
            "10m",
            "--wait-timeout",
            "20s",
        ],
        &[],
    );
    let (key, state) = park(&proxy, 1).await;
    let echo = json!({"name": "echo", "arguments": {"message": "room"}, "_meta": meta(json!({}))});
    let reply = call(&proxy, 2, &echo).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(result_text(&reply.json()), "room");
    let reply = call(&proxy, 3, &retry(&key, &state, "file:///x"))
        .send()
        .await;
    assert_eq!(
        reply.error_code(),
        -32602,
        "the call gave way: {}",
        reply.text()
    );
    // A legacy request makes room the same way.
    let (_key, _state) = park(&proxy, 4).await;
    let legacy = Mcp::connect(&proxy).await;
    assert_eq!(
        result_text(&legacy.call_tool("echo", json!({"message": "legacy"})).await),
        "legacy"
    );
}

#[tokio::test]
async fn a_client_gone_before_its_answer_ends_the_call() {
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    // The call runs in a task of its own; the client closing the stream
    // while it runs must still cancel it and give the process back.
    let mut m = meta(json!({}));
    m["progressToken"] = json!(1); // an SSE reply: its head comes at once
    let params = json!({"name": "sleep", "arguments": {"ms": 30000}, "_meta": m});
    let open = call(&proxy, 1, &params).open().await;
    wait_in_use(&proxy, 1.0).await;
    drop(open);
    wait_in_use(&proxy, 0.0).await;
    let legacy = Mcp::connect(&proxy).await;
    assert!(!legacy.cancellations().await.is_empty());
}

#[tokio::test]
async fn answers_sent_up_front_answer_the_server_and_non_objects_do_not() {
    // One process, whose server numbers its requests in sequence: after the
    // first question (key k) the next two are k+1 and k+2.
    let proxy = ProxyProcess::start(
        &["--mode", "pooled", "--pool-size", "1", "--min-idle", "1"],
        &[],
    );
    let (key, state) = park(&proxy, 1).await;
    let k: u64 = key.parse().expect("the fixture's ids are numbers");
    call(&proxy, 2, &retry(&key, &state, "file:///first"))
        .send()
        .await;
    // A client that sends its answer with the first request (as to a
    // stateless server) is not asked: the answer goes to the server.
    let mut up_front = ask_roots();
    up_front["inputResponses"] =
        json!({(k + 1).to_string(): {"roots": [{"uri": "file:///up-front"}]}, "extra": {}});
    let reply = call(&proxy, 3, &up_front).send().await;
    let body = reply.json();
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    assert!(result_text(&body).contains("file:///up-front"), "{body}");
    // An answer that is not a result object is no answer: asked again.
    let mut invalid = ask_roots();
    invalid["inputResponses"] = json!({(k + 2).to_string(): 12345});
    let reply = call(&proxy, 4, &invalid).send().await;
    let body = reply.json();
    assert_eq!(body["result"]["resultType"], "input_required", "{body}");
    let state = body["result"]["requestState"].as_str().unwrap();
    let reply = call(
        &proxy,
        5,
        &retry(&(k + 2).to_string(), state, "file:///fine"),
    )
    .send()
    .await;
    assert!(
        result_text(&reply.json()).contains("file:///fine"),
        "{}",
        reply.text()
    );
}
