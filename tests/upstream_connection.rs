//! One connection to a real fixture process: id rewriting, concurrent calls,
//! crashes, bad output, cancellation on drop, progress, server messages, and
//! the handshake's failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/upstream.rs"]
mod upstream_support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use stdiopool::accounting::Accounting;
use stdiopool::jsonrpc::{Id, code};
use stdiopool::pool::Manager;
use stdiopool::upstream::manager::SpawnFailure;
use stdiopool::upstream::process::{ProcessSpec, StopStage};
use stdiopool::upstream::{
    CallError, Connection, OutgoingRequest, ServerMessage, UpstreamError, UpstreamManager,
};
use tokio::sync::mpsc;
use upstream_support::*;

async fn connect(acc: &Arc<Accounting>, max_frame: Option<usize>) -> Connection {
    let mut cfg = config(acc, &[]);
    if let Some(max) = max_frame {
        cfg.max_frame = max;
    }
    tokio::time::timeout(LIMIT, UpstreamManager::new(cfg).create())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn handshake_keeps_the_initialize_result() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let init = conn.initialize_result();
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(init["serverInfo"]["name"], "stdiopool-fixture");
    let out = tokio::time::timeout(LIMIT, conn.shutdown()).await.unwrap();
    // stdin is closed before the stop sequence starts, so the fixture may
    // already be gone when it looks.
    assert!(out.stage <= StopStage::StdinClosed, "{out:?}");
    assert!(out.cause.is_clean(), "{out:?}");
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn without_handshake_the_clients_own_initialize_is_forwarded() {
    let acc = Arc::new(Accounting::new());
    let mut cfg = config(&acc, &[]);
    cfg.handshake = false;
    let conn = UpstreamManager::new(cfg).create().await.unwrap();
    assert_eq!(conn.initialize_result(), &Value::Null);
    let resp = tokio::time::timeout(
        LIMIT,
        conn.call(
            OutgoingRequest::new(
                "init-1",
                "initialize",
                Some(json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})),
            ),
            None,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp["id"], "init-1");
    assert_eq!(resp["result"]["protocolVersion"], "2025-06-18");
    conn.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_on_one_connection_come_back_to_their_callers() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    // Slow ones first, so answers arrive in the reverse order of the requests.
    let calls = (0..20u64).map(|i| {
        let conn = &conn;
        async move {
            let (id, req) = if i % 2 == 0 {
                let ms = 200 - i * 10;
                let id = Id::from(format!("s{i}"));
                (id.clone(), tool(id, "sleep", json!({"ms": ms})))
            } else {
                let id = Id::from(i);
                (
                    id.clone(),
                    tool(id, "echo", json!({"message": format!("m{i}")})),
                )
            };
            let resp = conn.call(req, None).await.unwrap();
            (i, id, resp)
        }
    });
    let results = tokio::time::timeout(LIMIT, join_all(calls)).await.unwrap();
    for (i, id, resp) in results {
        assert_eq!(resp["id"], id.to_value(), "{resp}");
        let want = if i % 2 == 0 {
            format!("slept {} ms", 200 - i * 10)
        } else {
            format!("m{i}")
        };
        assert_eq!(text(&resp), want);
    }
    assert_eq!(conn.in_flight(), 0);
    assert!(!conn.is_broken());
    conn.shutdown().await;
}

#[tokio::test]
async fn crash_mid_request_fails_it_at_once_with_upstream_closed() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let res = tokio::time::timeout(
        QUICK,
        conn.call(tool("c", "crash", json!({"code": 3})), None),
    )
    .await
    .expect("a crash must fail the request, not hang it");
    let err = res.unwrap_err();
    assert!(matches!(err, CallError::Closed(_)), "{err:?}");
    let obj = err.error_object();
    assert_eq!(obj.code, code::UPSTREAM_CLOSED);
    assert!(
        obj.message.contains("exited with code 3"),
        "{}",
        obj.message
    );
    let stderr = obj.data.as_ref().unwrap()["stderr"].to_string();
    assert!(stderr.contains("crashing on request"), "{stderr}");
    assert_eq!(
        err.to_response(&Id::from("c"))["error"]["code"],
        json!(code::UPSTREAM_CLOSED)
    );
    assert!(conn.is_broken());
    // A closed connection refuses further calls at once.
    let again = tokio::time::timeout(
        QUICK,
        conn.call(tool(1i64, "echo", json!({"message": "x"})), None),
    )
    .await
    .unwrap();
    assert!(matches!(again, Err(CallError::Closed(_))));
    drop(conn);
    assert!(wait_no_live(&acc).await);
}

#[tokio::test]
async fn a_garbage_line_is_skipped_and_the_request_still_succeeds() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let resp = tokio::time::timeout(
        LIMIT,
        conn.call(tool(5i64, "garbage", json!({"text": "DEBUG: hello"})), None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(text(&resp), "wrote a garbage line");
    assert!(!conn.is_broken());
    let resp = conn
        .call(tool(6i64, "echo", json!({"message": "still fine"})), None)
        .await
        .unwrap();
    assert_eq!(text(&resp), "still fine");
    conn.shutdown().await;
}

#[tokio::test]
async fn an_oversize_frame_fails_the_request_and_breaks_the_connection() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, Some(64 * 1024)).await;
    let res = tokio::time::timeout(
        QUICK,
        conn.call(tool(1i64, "huge", json!({"bytes": 200_000})), None),
    )
    .await
    .unwrap();
    let err = res.unwrap_err();
    assert!(matches!(err, CallError::Protocol(_)), "{err:?}");
    assert_eq!(err.error_object().code, code::UPSTREAM_PROTOCOL_ERROR);
    assert!(
        err.error_object()
            .message
            .contains("65536-byte frame limit"),
        "{}",
        err.error_object().message
    );
    assert!(conn.is_broken());
    conn.shutdown().await;
}

#[tokio::test]
async fn dropping_a_call_sends_cancelled_with_the_upstream_id() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let slow = conn.call(tool("client-7", "sleep", json!({"ms": 30_000})), None);
    // Poll the call until the fixture has logged the id it received.
    let upstream_id = {
        tokio::pin!(slow);
        let deadline = tokio::time::Instant::now() + LIMIT;
        let id = loop {
            tokio::select! {
                _ = &mut slow => panic!("the sleep answered early"),
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            let line = conn.stderr_tail().into_iter().find_map(|l| {
                l.split("sleep 30000 ms for request ")
                    .nth(1)
                    .map(str::to_owned)
            });
            if let Some(id) = line {
                break id;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fixture never saw the call"
            );
        };
        assert_eq!(conn.in_flight(), 1);
        id
        // `slow` is dropped here, mid-request.
    };
    assert_eq!(conn.in_flight(), 0);
    assert_ne!(
        upstream_id, "\"client-7\"",
        "the client's id must not reach the server"
    );
    let resp = tokio::time::timeout(
        LIMIT,
        conn.call(tool(2i64, "cancellations", json!({})), None),
    )
    .await
    .unwrap()
    .unwrap();
    let cancelled = &resp["result"]["structuredContent"]["cancelled"];
    assert_eq!(cancelled.as_array().unwrap().len(), 1, "{cancelled}");
    assert_eq!(cancelled[0].to_string(), upstream_id);
    conn.shutdown().await;
}

#[tokio::test]
async fn a_client_cancel_notification_is_translated_to_the_upstream_id() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let resp = {
        let slow = conn.call(tool("c-1", "sleep", json!({"ms": 30_000})), None);
        tokio::pin!(slow);
        let check = async {
            while conn.in_flight() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            conn.notify(
                "notifications/cancelled",
                Some(json!({"requestId": "c-1", "reason": "user"})),
            )
            .await
            .unwrap();
            // `cancel` does the same for a client id; unknown ids are not sent.
            assert_eq!(conn.cancel(&Id::from("c-1"), Some("again")).await, Ok(true));
            assert_eq!(conn.cancel(&Id::from("nope"), None).await, Ok(false));
            // An id not in flight is dropped, not forwarded.
            conn.notify(
                "notifications/cancelled",
                Some(json!({"requestId": "nope"})),
            )
            .await
            .unwrap();
            conn.call(tool(2i64, "cancellations", json!({})), None)
                .await
                .unwrap()
        };
        tokio::select! {
            _ = &mut slow => panic!("the sleep answered early"),
            r = tokio::time::timeout(LIMIT, check) => r.unwrap(),
        }
    };
    let cancelled = resp["result"]["structuredContent"]["cancelled"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(cancelled.len(), 2, "{cancelled:?}");
    assert!(cancelled[0].is_u64(), "not rewritten: {cancelled:?}");
    assert_eq!(cancelled[0], cancelled[1]);
    conn.shutdown().await;
}

#[tokio::test]
async fn progress_tokens_are_rewritten_and_restored() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    // Two requests with the same client token on one connection: each must
    // get its own steps only, with its own token back.
    let (tx_a, mut rx_a) = mpsc::channel(16);
    let (tx_b, mut rx_b) = mpsc::channel(16);
    let req = |id: i64, steps: u64| {
        OutgoingRequest::new(
            id,
            "tools/call",
            Some(
                json!({"name": "progress", "arguments": {"steps": steps}, "_meta": {"progressToken": "tok"}}),
            ),
        )
    };
    let (a, b) = tokio::time::timeout(
        LIMIT,
        futures_util::future::join(
            conn.call(req(1, 3), Some(tx_a)),
            conn.call(req(2, 5), Some(tx_b)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(text(&a.unwrap()), "done 3 steps");
    assert_eq!(text(&b.unwrap()), "done 5 steps");
    let mut steps_a = Vec::new();
    while let Ok(note) = rx_a.try_recv() {
        assert_eq!(note["method"], "notifications/progress");
        assert_eq!(note["params"]["progressToken"], "tok");
        assert_eq!(note["params"]["total"], 3);
        steps_a.push(note["params"]["progress"].as_u64().unwrap());
    }
    let mut steps_b = Vec::new();
    while let Ok(note) = rx_b.try_recv() {
        assert_eq!(note["params"]["progressToken"], "tok");
        assert_eq!(note["params"]["total"], 5);
        steps_b.push(note["params"]["progress"].as_u64().unwrap());
    }
    assert_eq!(steps_a, vec![1, 2, 3]);
    assert_eq!(steps_b, vec![1, 2, 3, 4, 5]);
    conn.shutdown().await;
}

#[tokio::test]
async fn server_requests_without_a_subscriber_are_refused_and_ping_is_answered() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let roots = tokio::time::timeout(QUICK, conn.call(tool(1i64, "ask_roots", json!({})), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(roots["result"]["isError"], true, "{roots}");
    assert!(text(&roots).contains("-32601"), "{roots}");
    let ping = tokio::time::timeout(QUICK, conn.call(tool(2i64, "ping_client", json!({})), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ping["result"]["isError"], false, "{ping}");
    assert_eq!(text(&ping), "{}");
    conn.shutdown().await;
}

#[tokio::test]
async fn server_requests_reach_the_subscriber_and_its_answer_goes_back() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let mut server = conn.take_server_messages().unwrap();
    assert!(conn.take_server_messages().is_none(), "only one subscriber");
    let answer = async {
        let msg = server.recv().await.unwrap();
        let ServerMessage::Request { id, method, .. } = msg else {
            panic!("expected a request, got {msg:?}");
        };
        assert_eq!(method, "roots/list");
        conn.respond(json!({"jsonrpc": "2.0", "id": id.to_value(), "result": {"roots": [{"uri": "file:///work"}]}}))
            .await
            .unwrap();
    };
    let (resp, ()) = tokio::time::timeout(
        LIMIT,
        futures_util::future::join(conn.call(tool(1i64, "ask_roots", json!({})), None), answer),
    )
    .await
    .unwrap();
    let resp = resp.unwrap();
    assert!(text(&resp).contains("file:///work"), "{resp}");
    // Notifications go to the subscriber too.
    conn.call(tool(2i64, "notify", json!({})), None)
        .await
        .unwrap();
    let note = tokio::time::timeout(LIMIT, server.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note.method(), "notifications/message");
    conn.shutdown().await;
}

#[tokio::test]
async fn a_command_that_exits_at_start_is_named_with_its_stderr() {
    let acc = Arc::new(Accounting::new());
    let mgr = UpstreamManager::new(config(&acc, &["--exit-at-start", "7"]));
    let err = tokio::time::timeout(LIMIT, mgr.create())
        .await
        .unwrap()
        .unwrap_err();
    let UpstreamError::ExitedAtStart {
        command,
        cause,
        stderr_tail,
    } = &err
    else {
        panic!("wrong error: {err:?}");
    };
    assert!(
        command.contains("stdiopool-fixture --exit-at-start 7"),
        "{command}"
    );
    assert_eq!(cause, "exited with code 7");
    assert!(
        stderr_tail.iter().any(|l| l.contains("exiting at start")),
        "{stderr_tail:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("exited at start") && text.contains("exiting at start"),
        "{text}"
    );
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn a_missing_command_fails_create_with_a_clear_error() {
    let acc = Arc::new(Accounting::new());
    let mgr = UpstreamManager::new(stdiopool::upstream::UpstreamConfig::new(
        ProcessSpec::new("/nonexistent/mcp-server").args(["--stdio"]),
        Arc::clone(&acc),
    ));
    let err = mgr.create().await.unwrap_err();
    match &err {
        UpstreamError::Spawn { command, kind, .. } => {
            assert_eq!(command, "/nonexistent/mcp-server --stdio");
            assert_eq!(*kind, SpawnFailure::NotFound);
        }
        other => panic!("wrong error: {other:?}"),
    }
    assert!(err.to_string().contains("command not found"), "{err}");
    assert_eq!(err.to_error_object().code, code::UPSTREAM_UNAVAILABLE);
}

#[tokio::test]
async fn dropping_a_connection_stops_its_process() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let pid = pid_via_tool(&conn).await;
    assert_eq!(pid, conn.pid());
    drop(conn);
    assert!(wait_gone(pid).await, "process {pid} still there");
    assert!(wait_no_live(&acc).await);
    assert_eq!(acc.snapshot().exited_clean, 1);
}

/// A real process running a shell script as the "server", for wire-level
/// misbehaviour the fixture does not produce.
async fn scripted(acc: &Arc<Accounting>, script: &str) -> Connection {
    let spec = ProcessSpec::new("sh")
        .args(["-c", script])
        .name("script")
        .stop_timeouts(stdiopool::upstream::process::StopTimeouts {
            stdin_grace: Duration::from_millis(200),
            term_grace: Duration::from_millis(200),
        });
    let mut cfg = stdiopool::upstream::UpstreamConfig::new(spec, Arc::clone(acc));
    cfg.handshake = false;
    UpstreamManager::new(cfg).create().await.unwrap()
}

#[tokio::test]
async fn invalid_answers_fail_their_request_and_an_id_less_error_reaches_the_only_caller() {
    let acc = Arc::new(Accounting::new());
    let conn = scripted(
        &acc,
        r#"read l; echo '{"not":"jsonrpc"}'; echo '{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}'
read l; echo '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
read l; echo '{"jsonrpc":"2.0","id":3,"result":{"ok":true}}'
read l"#,
    )
    .await;
    let first = tokio::time::timeout(QUICK, conn.call(OutgoingRequest::new("a", "m", None), None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(first, CallError::Protocol(_)), "{first:?}");
    assert!(
        first.error_object().message.contains("not both"),
        "{}",
        first.error_object().message
    );
    let second = tokio::time::timeout(QUICK, conn.call(OutgoingRequest::new("b", "m", None), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second["id"], "b");
    assert_eq!(second["error"]["code"], -32700);
    let third = tokio::time::timeout(
        QUICK,
        conn.call(OutgoingRequest::new(9i64, "m", None), None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        third,
        json!({"jsonrpc": "2.0", "id": 9, "result": {"ok": true}})
    );
    assert!(!conn.is_broken());
    conn.shutdown().await;
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn a_server_that_closes_stdout_fails_the_request_and_is_broken() {
    let acc = Arc::new(Accounting::new());
    let conn = scripted(&acc, "read l; exec 1>&-; sleep 30").await;
    let err = tokio::time::timeout(
        QUICK,
        conn.call(OutgoingRequest::new(1i64, "m", None), None),
    )
    .await
    .expect("stdout EOF must fail the request, not hang it")
    .unwrap_err();
    assert_eq!(err.error_object().code, code::UPSTREAM_CLOSED);
    assert!(
        err.error_object().message.contains("closed its stdout"),
        "{}",
        err.error_object().message
    );
    assert!(conn.is_broken());
    let out = tokio::time::timeout(LIMIT, conn.shutdown()).await.unwrap();
    assert!(out.stage >= StopStage::Terminated, "{out:?}");
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn any_answer_to_ping_proves_liveness_but_silence_does_not() {
    let acc = Arc::new(Accounting::new());
    let refusing = scripted(
        &acc,
        r#"read l; echo '{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"not initialized"}}'; read l"#,
    )
    .await;
    assert_eq!(refusing.ping(QUICK).await, Ok(()));
    refusing.shutdown().await;

    let silent = scripted(&acc, "read l; sleep 30").await;
    let err = silent
        .ping(Duration::from_millis(200))
        .await
        .expect_err("no answer is not alive");
    assert_eq!(err.error_object().code, code::REQUEST_TIMEOUT);
    assert!(err.error_object().message.contains("did not answer ping"));
    assert_eq!(silent.in_flight(), 0);
    silent.shutdown().await;
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn a_process_killed_by_a_signal_fails_its_requests_naming_the_signal() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let pid = conn.pid();
    let slow = conn.call(tool(1i64, "sleep", json!({"ms": 30_000})), None);
    let killer = async {
        while conn.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    };
    let (res, ()) = tokio::time::timeout(QUICK, futures_util::future::join(slow, killer))
        .await
        .expect("a killed process must fail its requests, not hang them");
    let err = res.unwrap_err();
    assert_eq!(err.error_object().code, code::UPSTREAM_CLOSED);
    assert!(
        err.error_object()
            .message
            .contains("killed by signal SIGKILL (9)"),
        "{}",
        err.error_object().message
    );
    assert!(conn.is_broken());
    drop(conn);
    assert!(wait_gone(pid).await);
}

#[tokio::test]
async fn a_server_notification_during_the_only_call_arrives_on_its_stream_before_its_response() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    // No subscriber (pooled mode): the notification still reaches the caller.
    let (tx, mut rx) = mpsc::channel(16);
    let resp = tokio::time::timeout(LIMIT, conn.call(tool(1i64, "notify", json!({})), Some(tx)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text(&resp), "notified");
    // Already queued when the response resolved: ordered ahead of it.
    let note = rx
        .try_recv()
        .expect("the notification was delivered before the response");
    assert_eq!(note["method"], "notifications/message");
    conn.shutdown().await;
}

#[tokio::test]
async fn with_a_subscriber_a_server_request_during_the_only_call_travels_on_its_stream() {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    let mut server = conn.take_server_messages().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let answer = async {
        let request: serde_json::Value = rx.recv().await.unwrap();
        assert_eq!(request["method"], "roots/list");
        conn.respond(json!({"jsonrpc": "2.0", "id": request["id"], "result": {"roots": [{"uri": "file:///on-stream"}]}}))
            .await
            .unwrap();
    };
    let (resp, ()) = tokio::time::timeout(
        LIMIT,
        futures_util::future::join(
            conn.call(tool(1i64, "ask_roots", json!({})), Some(tx)),
            answer,
        ),
    )
    .await
    .unwrap();
    assert!(text(&resp.unwrap()).contains("file:///on-stream"));
    assert!(server.try_recv().is_err(), "nothing went to the subscriber");
    conn.shutdown().await;
}

#[tokio::test]
async fn a_relaying_connection_sends_a_server_request_on_the_only_calls_stream_without_a_subscriber()
 {
    let acc = Arc::new(Accounting::new());
    let conn = connect(&acc, None).await;
    // Without relaying (and no subscriber) the request would be refused
    // -32601 and never reach `rx`.
    conn.relay_server_requests();
    let (tx, mut rx) = mpsc::channel(16);
    let answer = async {
        let request: serde_json::Value = rx.recv().await.unwrap();
        assert_eq!(request["method"], "roots/list");
        conn.respond_now(json!({"jsonrpc": "2.0", "id": request["id"], "result": {"roots": [{"uri": "file:///relayed"}]}}))
            .unwrap();
    };
    let (resp, ()) = tokio::time::timeout(
        LIMIT,
        futures_util::future::join(
            conn.call(tool(1i64, "ask_roots", json!({})), Some(tx)),
            answer,
        ),
    )
    .await
    .unwrap();
    assert!(text(&resp.unwrap()).contains("file:///relayed"));
    conn.shutdown().await;
}
