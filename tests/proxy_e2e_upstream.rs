//! End to end, both modes: the upstream rows of docs/PROXY.md ("Status and
//! error codes"). A server that
//! crashes mid-request, writes garbage or an oversize frame, a pool that is
//! exhausted, and a server that can no longer be restarted each get a clear
//! answer for the request concerned, and the proxy goes on serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{
    MODES, Mcp, ProxyProcess, Req, TempFile, initialize_body, result_text, wait_gone,
};
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};

/// After the process behind `mcp` broke: pooled mode serves the next request
/// on a new process; session mode ends the session (404) and a new session
/// gets a new process. Returns the new pid.
async fn next_process(proxy: &ProxyProcess, mcp: &Mcp, mode: &str) -> u32 {
    if mode == "pooled" {
        mcp.pid().await
    } else {
        let reply = mcp.call_tool_reply("pid", json!({})).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        assert_eq!(reply.error_code(), -32005);
        Mcp::connect(proxy).await.pid().await
    }
}

fn error_of(response: &Value) -> (i64, String) {
    let error = &response["error"];
    assert!(error.is_object(), "expected an error response: {response}");
    (
        error["code"].as_i64().unwrap(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_crash_mid_request_fails_that_request_naming_it_and_the_next_one_gets_a_new_process() {
    for mode in MODES {
        let proxy = ProxyProcess::start(&["--mode", mode, "--pool-size", "2"], &[]);
        let mcp = Mcp::connect(&proxy).await;
        let first = mcp.pid().await;
        let response = mcp.call_tool("crash", json!({"code": 3})).await;
        let (code, message) = error_of(&response);
        assert_eq!(code, -32000, "{mode}: {response}");
        assert!(
            message.contains(&format!("pid {first}")) && message.contains("exited with code 3"),
            "{mode}: the error must name the crash: {message}"
        );
        // What it said last comes with the error, for the client and the logs.
        let stderr = response["error"]["data"]["stderr"].to_string();
        assert!(
            stderr.contains("crashing on request with code 3"),
            "{mode}: the error must carry the stderr tail: {response}"
        );
        assert!(
            wait_gone(first).await,
            "{mode}: crashed process {first} not reaped"
        );
        let second = next_process(&proxy, &mcp, mode).await;
        assert_ne!(second, first, "{mode}");
        let m = proxy
            .wait_metrics("the crash counted and reaped", |m| {
                m.get("stdiopool_process_exited_total{cause=\"nonzero\"}") == 1.0
                    && m.get("stdiopool_zombies") == 0.0
            })
            .await;
        assert_eq!(
            m.requests("tools/call", "upstream_failed"),
            1.0,
            "{mode}: {m:?}"
        );
    }
}

#[tokio::test]
async fn a_garbage_line_on_stdout_is_skipped_and_the_process_kept() {
    for mode in MODES {
        let proxy = ProxyProcess::start(&["--mode", mode, "--pool-size", "1"], &[]);
        let mcp = Mcp::connect(&proxy).await;
        let pid = mcp.pid().await;
        let response = mcp
            .call_tool("garbage", json!({"text": "Listening on port 3000"}))
            .await;
        // A stray log line costs nothing: the answer after it is intact.
        assert_eq!(result_text(&response), "wrote a garbage line", "{mode}");
        assert_eq!(mcp.pid().await, pid, "{mode}: the process must be kept");
        let m = proxy.metrics().await;
        assert_eq!(m.get("stdiopool_pool_broken_total"), 0.0, "{mode}");
        proxy
            .wait_for_log("not a JSON-RPC message on stdout; skipped")
            .await;
    }
}

#[tokio::test]
async fn an_oversize_frame_fails_that_request_and_the_connection_is_replaced() {
    for mode in MODES {
        let proxy = ProxyProcess::start(
            &["--mode", mode, "--pool-size", "1", "--max-frame", "64KiB"],
            &[],
        );
        let mcp = Mcp::connect(&proxy).await;
        let first = mcp.pid().await;
        let small = mcp.call_tool("huge", json!({"bytes": 1000})).await;
        assert_eq!(result_text(&small).len(), 1000, "{mode}");
        let response = mcp.call_tool("huge", json!({"bytes": 200_000})).await;
        let (code, message) = error_of(&response);
        assert_eq!(code, -32004, "{mode}: {response}");
        assert!(
            message.contains("frame limit") && message.contains("65536"),
            "{mode}: {message}"
        );
        assert!(
            wait_gone(first).await,
            "{mode}: untrustworthy process {first} kept"
        );
        let second = next_process(&proxy, &mcp, mode).await;
        assert_ne!(second, first, "{mode}");
    }
}

#[tokio::test]
async fn pooled_mode_answers_503_with_retry_after_when_no_process_frees_up() {
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            "pooled",
            "--pool-size",
            "1",
            "--wait-timeout",
            "300ms",
        ],
        &[],
    );
    let mcp = std::sync::Arc::new(Mcp::connect(&proxy).await);
    let busy = {
        let mcp = mcp.clone();
        tokio::spawn(async move { mcp.call_tool("sleep", json!({"ms": 1500})).await })
    };
    proxy.wait_for_log("sleep 1500 ms for request").await;
    let before = proxy.metrics().await;
    let reply = mcp.call_tool_reply("pid", json!({})).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(reply.error_code(), -32000);
    assert!(
        reply
            .error_message()
            .contains("no server process became free")
    );
    // The request holding the process is not harmed.
    let slept = busy.await.unwrap();
    assert_eq!(result_text(&slept), "slept 1500 ms");
    let after = proxy.metrics().await;
    assert_eq!(after.get("stdiopool_pool_wait_timeouts_total"), 1.0);
    assert_eq!(after.requests("tools/call", "unavailable"), 1.0);
    assert_eq!(
        before.get("stdiopool_process_spawned_total"),
        after.get("stdiopool_process_spawned_total")
    );
}

#[tokio::test]
async fn session_mode_answers_503_with_retry_after_when_every_process_has_a_session() {
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            "session",
            "--pool-size",
            "1",
            "--wait-timeout",
            "300ms",
            // The 503 path: with eviction on, the idle holder would be ended
            // (tests/proxy_e2e_session_eviction.rs).
            "--session-eviction",
            "off",
        ],
        &[],
    );
    let holder = Mcp::connect(&proxy).await;
    let init = || proxy.post(initialize_body(1, json!({})).to_string());
    let reply = init().send().await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(reply.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(reply.error_code(), -32000);
    assert!(reply.header("mcp-session-id").is_none());
    // Ending the holder's session frees its slot for a fresh process.
    let held = holder.pid().await;
    assert_eq!(holder.delete().await.status, StatusCode::OK);
    assert!(wait_gone(held).await);
    let next = Mcp::connect(&proxy).await;
    assert_ne!(next.pid().await, held);
}

/// A command that starts the fixture the first time and fails every later
/// time, saying why on stderr.
fn starts_once(marker: &TempFile) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "if [ -e \"$0\" ]; then echo 'refusing to start twice' >&2; exit 7; fi; : > \"$0\"; exec {}",
            e2e_support::FIXTURE
        ),
        marker.path().to_owned(),
    ]
}

#[tokio::test]
async fn a_server_that_cannot_be_restarted_fails_requests_fast_with_its_reason() {
    for mode in MODES {
        let marker = TempFile::new(&format!("starts-once-{mode}"));
        let mut args: Vec<String> = ["--mode", mode, "--pool-size", "1", "--min-idle", "1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push("--".into());
        args.extend(starts_once(&marker));
        let proxy = ProxyProcess::launch(&args).unwrap();
        let reply = if mode == "pooled" {
            let mcp = Mcp::connect(&proxy).await;
            let crashed = mcp.call_tool("crash", json!({})).await;
            assert!(crashed.get("error").is_some(), "{crashed}");
            mcp.call_tool_reply("pid", json!({})).await
        } else {
            // The start-up probe used the one successful start.
            proxy
                .post(initialize_body(1, json!({})).to_string())
                .send()
                .await
        };
        let text = reply.text();
        assert!(
            text.contains("refusing to start twice") && text.contains("sh"),
            "{mode}: the reason and the command must be named: {} {text}",
            reply.status
        );
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(reply.error_code(), -32003, "{mode}");
            assert!(reply.header("retry-after").is_some(), "{mode}");
        } else {
            assert_eq!(reply.status, StatusCode::OK, "{mode}: {text}");
            assert!(reply.response().get("error").is_some(), "{mode}: {text}");
        }
        // The pool backs off instead of respawning in a loop, and says so.
        let deadline = Instant::now() + e2e_support::LIMIT;
        loop {
            let ready = Req::new(proxy.addr, Method::GET, "/readyz").send().await;
            if ready.status == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: /readyz stays {}",
                ready.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let m = proxy.metrics().await;
        assert!(
            m.get("stdiopool_pool_create_failures_total") >= 1.0,
            "{mode}: {m:?}"
        );
        let spawned = m.get("stdiopool_process_spawned_total");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let later = proxy.metrics().await.get("stdiopool_process_spawned_total");
        assert!(
            later - spawned <= 2.0,
            "{mode}: {spawned} then {later} spawns: respawning in a loop"
        );
        drop(proxy);
    }
}

#[tokio::test]
async fn a_crash_does_not_touch_a_request_in_flight_on_another_process() {
    for mode in MODES {
        let proxy = ProxyProcess::start(&["--mode", mode, "--pool-size", "2"], &[]);
        let calm = std::sync::Arc::new(Mcp::connect(&proxy).await);
        let crashing = if mode == "session" {
            std::sync::Arc::new(Mcp::connect(&proxy).await)
        } else {
            calm.clone() // pooled: a second call in flight takes the other process
        };
        let slow = {
            let calm = calm.clone();
            tokio::spawn(async move { calm.call_tool("sleep", json!({"ms": 800})).await })
        };
        proxy.wait_for_log("sleep 800 ms for request").await;
        let crashed = crashing.call_tool("crash", json!({})).await;
        assert_eq!(error_of(&crashed).0, -32000, "{mode}: {crashed}");
        let slept = slow.await.unwrap();
        assert_eq!(result_text(&slept), "slept 800 ms", "{mode}");
        assert_eq!(
            calm.call_tool("echo", json!({"message": "fine"})).await["result"]["isError"],
            false
        );
    }
}
