//! The reader's envelope path (`src/upstream/connection/reader.rs`): a
//! success response is forwarded as the text the server wrote, behind the
//! client's id, without a `Value` tree; anything the full path would judge
//! differently still goes the full path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/upstream.rs"]
mod upstream_support;

use std::sync::Arc;
use std::time::Duration;

use stdiopool::accounting::Accounting;
use stdiopool::pool::Manager;
use stdiopool::upstream::process::ProcessSpec;
use stdiopool::upstream::{CallError, Connection, OutgoingRequest, UpstreamManager};
use upstream_support::*;

/// A real process running a shell script as the "server".
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
async fn a_success_response_is_forwarded_byte_for_byte_behind_the_clients_id() {
    let acc = Arc::new(Accounting::new());
    // Members out of order, spacing, a number a tree would normalise, an
    // escape it would decode, an unknown member: none of it may change.
    let conn = scripted(
        &acc,
        r#"read l; echo '{"result": {"b" : 1.50, "a":[1e2, "\u00e9"]}, "id":1, "extra":true, "jsonrpc":"2.0"}'
read l"#,
    )
    .await;
    let response = tokio::time::timeout(
        QUICK,
        conn.call_response(OutgoingRequest::new("c-1", "m", None), None),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!response.is_error());
    assert_eq!(
        &response.to_bytes()[..],
        br#"{"jsonrpc":"2.0","id":"c-1","result":{"b" : 1.50, "a":[1e2, "\u00e9"]}}"#
    );
    // Spliced, not rewritten: the proxy's head, the server's `result` as
    // its own piece (a slice of the line it wrote), then the closing brace.
    let [head, result, tail] = response.clone().into_message().into_parts();
    assert_eq!(&head[..], br#"{"jsonrpc":"2.0","id":"c-1","result":"#);
    assert_eq!(&result[..], br#"{"b" : 1.50, "a":[1e2, "\u00e9"]}"#);
    assert_eq!(&tail[..], b"}");
    // The tree, for callers that look inside, is the same message.
    let value = response.to_value().unwrap();
    assert_eq!(value["id"], "c-1");
    assert_eq!(value["result"]["a"][1], "é");
    conn.shutdown().await;
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn a_null_error_beside_a_result_still_fails_its_request() {
    let acc = Arc::new(Accounting::new());
    let conn = scripted(
        &acc,
        r#"read l; echo '{"jsonrpc":"2.0","id":1,"result":{},"error":null}'
read l; echo '{"jsonrpc":"2.0","id":2,"method":null,"result":{}}'
read l; echo '{"jsonrpc":"2.0","id":3,"error":{"code":-5,"message":"no"}}'
read l"#,
    )
    .await;
    let first = tokio::time::timeout(
        QUICK,
        conn.call_response(OutgoingRequest::new("a", "m", None), None),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(first, CallError::Protocol(_)), "{first:?}");
    let second = tokio::time::timeout(
        QUICK,
        conn.call_response(OutgoingRequest::new("b", "m", None), None),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(second, CallError::Protocol(_)), "{second:?}");
    // An error response takes the full path and says it is one.
    let third = tokio::time::timeout(
        QUICK,
        conn.call_response(OutgoingRequest::new(7i64, "m", None), None),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(third.is_error());
    let value = third.to_value().unwrap();
    assert_eq!(value["id"], 7);
    assert_eq!(value["error"]["code"], -5);
    assert!(!conn.is_broken());
    conn.shutdown().await;
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn lines_the_envelope_path_is_unsure_of_are_judged_by_the_full_path() {
    let acc = Arc::new(Accounting::new());
    // 1: a repeated `result` (the full path keeps the last one);
    // 2: a lone surrogate and then too deep a nesting (the full path cannot
    //    build either, so both lines are skipped), then the real answer;
    // 3: an escaped member name (read as `result`) and a string id spelling
    //    ours, which is not ours (dropped), then the real answer.
    let deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
    let script = format!(
        r#"read l; echo '{{"jsonrpc":"2.0","id":1,"result":{{"a":1}},"result":{{"b":2}}}}'
read l; echo '{{"jsonrpc":"2.0","id":2,"result":"\ud800"}}'; echo '{{"jsonrpc":"2.0","id":2,"result":{deep}}}'; echo '{{"jsonrpc":"2.0","id":2,"result":"ok"}}'
read l; echo '{{"jsonrpc":"2.0","id":"3","result":"not ours"}}'; echo '{{"jsonrpc":"2.0","id":3,"r\u0065sult":"escaped"}}'
read l"#
    );
    let conn = scripted(&acc, &script).await;
    let mut answers = Vec::new();
    for client_id in ["a", "b", "c"] {
        let response = tokio::time::timeout(
            QUICK,
            conn.call_response(OutgoingRequest::new(client_id, "m", None), None),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(!response.is_error());
        let value = response.to_value().unwrap();
        assert_eq!(value["id"], client_id);
        answers.push(value["result"].clone());
    }
    assert_eq!(answers[0], serde_json::json!({"b": 2}));
    assert_eq!(answers[1], "ok");
    assert_eq!(answers[2], "escaped");
    assert!(!conn.is_broken());
    conn.shutdown().await;
    assert!(acc.live_pids().is_empty());
}
