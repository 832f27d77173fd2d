//! End to end, session mode: each session owns its process, DELETE destroys
//! it and a spare is warmed, and server-to-client requests reach the client
//! on the right stream and their answers get back to the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use e2e_support::{Mcp, ProxyProcess, result_text, wait_gone};
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};

fn session_proxy(pool_size: &str) -> ProxyProcess {
    ProxyProcess::start(
        &[
            "--mode",
            "session",
            "--pool-size",
            pool_size,
            "--min-idle",
            "1",
        ],
        &[],
    )
}

#[tokio::test]
async fn two_sessions_get_two_processes_each_kept_for_its_session() {
    let proxy = session_proxy("3");
    let a = Mcp::connect(&proxy).await;
    let b = Mcp::connect(&proxy).await;
    let (pid_a, pid_b) = (a.pid().await, b.pid().await);
    assert_ne!(pid_a, pid_b);
    for _ in 0..5 {
        assert_eq!(a.pid().await, pid_a);
        assert_eq!(b.pid().await, pid_b);
    }
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_sessions"), 2.0);
}

#[tokio::test]
async fn delete_destroys_the_sessions_process_and_a_spare_is_warmed() {
    // Two slots, two spares wanted: with the session holding one process
    // the pool is full, so only the DELETE can make room for a new spare.
    let proxy = ProxyProcess::start(
        &["--mode", "session", "--pool-size", "2", "--min-idle", "2"],
        &[],
    );
    let mcp = Mcp::connect(&proxy).await;
    let pid = mcp.pid().await;
    let settled = proxy
        .wait_metrics("a full pool: the session's process and one spare", |m| {
            m.get("stdiopool_pool_in_use") == 1.0 && m.get("stdiopool_pool_idle") == 1.0
        })
        .await;
    let created = settled.get("stdiopool_pool_created_total");

    let reply = mcp.delete().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        wait_gone(pid).await,
        "the session's process {pid} is still there"
    );
    let m = proxy
        .wait_metrics("a spare warmed after the DELETE", |m| {
            m.get("stdiopool_pool_created_total") == created + 1.0
                && m.get("stdiopool_pool_idle") == 2.0
                && m.get("stdiopool_process_live") == 2.0
        })
        .await;
    assert_eq!(m.get("stdiopool_sessions"), 0.0);

    // The session is gone; a new one gets a new process, never the old one.
    assert_eq!(mcp.delete().await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        mcp.call_tool_reply("pid", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    let next = Mcp::connect(&proxy).await;
    assert_ne!(next.pid().await, pid);
}

fn roots_answer(id: &Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id,
        "result": {"roots": [{"uri": "file:///srv/e2e", "name": "e2e"}]},
    })
}

#[tokio::test]
async fn a_server_request_goes_on_the_get_stream_when_several_requests_are_in_flight() {
    let proxy = session_proxy("2");
    let mcp = Mcp::connect_with(&proxy, json!({"roots": {}}), None).await;
    let get = mcp
        .request(Method::GET)
        .header("accept", "text/event-stream")
        .open()
        .await;
    assert_eq!(get.status, StatusCode::OK);
    assert!(get.is_sse());
    let mut stream = get.sse();
    let second = mcp
        .request(Method::GET)
        .header("accept", "text/event-stream")
        .send()
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.text());

    let sleep = mcp.tool_req(100, "sleep", json!({"ms": 1500})).open().await;
    proxy.wait_for_log("sleep 1500 ms for request").await;
    let ask = mcp.tool_req(101, "ask_roots", json!({})).open().await;
    assert_eq!((sleep.status, ask.status), (StatusCode::OK, StatusCode::OK));

    let request = stream.next().await.expect("the GET stream ended");
    assert_eq!(request["method"], "roots/list", "{request}");
    let accepted = mcp.post(roots_answer(&request["id"])).send().await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());

    let asked = ask.collect().await.messages();
    assert_eq!(
        asked.len(),
        1,
        "only the response on the POST stream: {asked:?}"
    );
    assert_eq!(asked[0]["id"], 101);
    assert!(
        result_text(&asked[0]).contains("file:///srv/e2e"),
        "{}",
        asked[0]
    );
    let slept = sleep.collect().await.response();
    assert_eq!(
        (slept["id"].clone(), result_text(&slept)),
        (json!(100), "slept 1500 ms")
    );
}

#[tokio::test]
async fn with_one_request_in_flight_a_server_request_goes_on_that_requests_stream() {
    let proxy = session_proxy("2");
    let mcp = Mcp::connect_with(&proxy, json!({"roots": {}}), None).await;
    let ask = mcp.tool_req(7, "ask_roots", json!({})).open().await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.is_sse());
    let mut stream = ask.sse();
    let request = stream.next().await.expect("the POST stream ended early");
    assert_eq!(request["method"], "roots/list", "{request}");
    let accepted = mcp.post(roots_answer(&request["id"])).send().await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let response = stream.next().await.expect("no response after the roots");
    assert_eq!(response["id"], 7);
    assert!(
        result_text(&response).contains("file:///srv/e2e"),
        "{response}"
    );
    assert_eq!(response["result"]["isError"], false);
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the response"
    );
}

#[tokio::test]
async fn progress_and_notifications_ride_on_the_requests_own_stream() {
    let proxy = session_proxy("2");
    let mcp = Mcp::connect(&proxy).await;
    let reply = mcp
        .post(json!({
            "jsonrpc": "2.0", "id": "p-1", "method": "tools/call",
            "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}},
        }))
        .send()
        .await;
    let messages = reply.messages();
    assert_eq!(messages.len(), 4, "{messages:?}");
    for (i, m) in messages[..3].iter().enumerate() {
        assert_eq!(m["method"], "notifications/progress");
        assert_eq!(
            m["params"]["progressToken"], "tok",
            "the client's token is restored"
        );
        assert_eq!(m["params"]["progress"], i + 1);
    }
    assert_eq!(messages[3]["id"], "p-1");
    // A notification written before the response arrives before it, every
    // time (it once raced the response and ended up off the stream).
    for _ in 0..30 {
        let notified = mcp.call_tool_reply("notify", json!({})).await.messages();
        assert_eq!(notified.len(), 2, "{notified:?}");
        assert_eq!(notified[0]["method"], "notifications/message");
        assert_eq!(result_text(&notified[1]), "notified");
    }
}

#[tokio::test]
async fn an_idle_session_ends_with_its_process_and_then_answers_404() {
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            "session",
            "--pool-size",
            "2",
            "--session-idle-timeout",
            "300ms",
        ],
        &[],
    );
    let mcp = Mcp::connect(&proxy).await;
    let pid = mcp.pid().await;
    assert!(
        wait_gone(pid).await,
        "the idle session's process {pid} is still there"
    );
    proxy
        .wait_metrics("the idle session ended", |m| {
            m.get("stdiopool_sessions") == 0.0
        })
        .await;
    let reply = mcp.call_tool_reply("pid", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(reply.error_code(), -32005);
}
