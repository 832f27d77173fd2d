//! End to end, session mode under pressure: when every process has a
//! session, a new session ends the one idle longest instead of waiting for
//! `--session-idle-timeout`; a session with a request in flight is never
//! ended; an ended session's id is answered 404 and its client starts anew;
//! and every way a session ends is counted by reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::sync::Arc;

use e2e_support::{Mcp, ProxyProcess, initialize_body, result_text, wait_gone};
use hyper::http::{Method, StatusCode};
use serde_json::json;

fn ended(m: &e2e_support::Metrics, reason: &str) -> f64 {
    m.get(&format!(
        "stdiopool_sessions_ended_total{{reason=\"{reason}\"}}"
    ))
}

fn session_proxy(pool_size: &str, extra: &[&str]) -> ProxyProcess {
    let mut args = vec!["--mode", "session", "--pool-size", pool_size];
    args.extend_from_slice(extra);
    ProxyProcess::start(&args, &[])
}

#[tokio::test]
async fn a_hundred_sessions_that_never_delete_all_succeed_on_a_pool_of_two() {
    // The default --wait-timeout (5 s) is kept: before eviction the third
    // session waited it out and got 503.
    let proxy = session_proxy("2", &[]);
    let mut pids = std::collections::HashSet::new();
    for n in 0..100 {
        let mcp = Mcp::connect(&proxy).await;
        let reply = mcp
            .call_tool_reply("echo", json!({"message": format!("s{n}")}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "session {n}: {}",
            reply.text()
        );
        assert_eq!(
            result_text(&reply.response()),
            format!("s{n}"),
            "session {n}"
        );
        pids.insert(mcp.pid().await);
        // No DELETE: the client just goes, as most do.
    }
    assert_eq!(pids.len(), 100, "every session had a process of its own");
    let m = proxy
        .wait_metrics("98 sessions ended for room, two still open", |m| {
            ended(m, "pressure") == 98.0 && m.get("stdiopool_sessions") == 2.0
        })
        .await;
    assert!(m.get("stdiopool_process_live") <= 2.0, "{:?}", m.0);
    assert_eq!(m.get("stdiopool_pool_wait_timeouts_total"), 0.0);
    assert_eq!(ended(&m, "idle_timeout"), 0.0);
    assert_eq!(ended(&m, "delete"), 0.0);
}

#[tokio::test]
async fn a_request_in_flight_keeps_its_session_while_ten_new_sessions_arrive() {
    let proxy = session_proxy("2", &["--min-idle", "1"]);
    let busy = Arc::new(Mcp::connect(&proxy).await);
    let busy_pid = busy.pid().await;
    let call = {
        let busy = busy.clone();
        tokio::spawn(async move { busy.call_tool("sleep", json!({"ms": 3000})).await })
    };
    proxy.wait_for_log("sleep 3000 ms for request").await;
    for n in 0..10 {
        let mcp = Mcp::connect(&proxy).await;
        assert_ne!(
            mcp.pid().await,
            busy_pid,
            "session {n} got the busy process"
        );
    }
    assert!(
        !call.is_finished(),
        "the 3 s call ended before the sessions were served"
    );
    let slept = call.await.unwrap();
    assert_eq!(result_text(&slept), "slept 3000 ms", "{slept}");
    // The busy session survived all ten: same process, still answering.
    assert_eq!(busy.pid().await, busy_pid);
    let m = proxy.metrics().await;
    assert!(ended(&m, "pressure") >= 9.0, "{:?}", m.0);
}

#[tokio::test]
async fn an_evicted_session_gets_404_its_stream_ends_and_its_client_starts_anew() {
    let proxy = session_proxy("1", &["--min-idle", "1"]);
    let old = Mcp::connect(&proxy).await;
    let old_pid = old.pid().await;
    let get = old
        .request(Method::GET)
        .header("accept", "text/event-stream")
        .open()
        .await;
    assert_eq!(get.status, StatusCode::OK);
    let mut stream = get.sse();

    // The only process has a session, idle but with its GET stream open:
    // the new session ends it rather than wait.
    let new = Mcp::connect(&proxy).await;
    assert_ne!(new.pid().await, old_pid);
    assert!(
        wait_gone(old_pid).await,
        "the evicted session's process {old_pid} lives on"
    );
    let next = tokio::time::timeout(e2e_support::LIMIT, stream.next()).await;
    assert!(
        matches!(next, Ok(None)),
        "the evicted session's GET stream did not end: {next:?}"
    );
    let reply = old.call_tool_reply("pid", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(old.delete().await.status, StatusCode::NOT_FOUND);

    // What a client does on 404: a new session, which goes on working.
    let again = Mcp::connect(&proxy).await;
    let reply = again
        .call_tool_reply("echo", json!({"message": "back"}))
        .await;
    assert_eq!(result_text(&reply.response()), "back");
    let m = proxy.metrics().await;
    assert_eq!(ended(&m, "pressure"), 2.0, "{:?}", m.0);
}

/// Regression: a new session ended the only one while its client was
/// still in its handshake, so that client's `notifications/initialized` got
/// 404 (a burst of 64 sessions on 64 processes in benches/run.sh). The
/// newcomer now waits, and ends the session once its client has spoken.
#[tokio::test]
async fn a_session_mid_handshake_is_not_ended_and_the_newcomer_gets_it_after() {
    let proxy = session_proxy("1", &[]);
    let first = Mcp::initialize_only(&proxy).await;
    let newcomer = {
        let proxy_post = proxy.post(initialize_body(1, json!({})).to_string());
        tokio::spawn(async move { proxy_post.send().await })
    };
    // The newcomer is waiting for the only process by now.
    proxy
        .wait_metrics("a waiter in the pool's queue", |m| {
            m.get("stdiopool_pool_waiting") >= 1.0
        })
        .await;
    let reply = first.initialized().await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    // Past its handshake and quiet: the waiting newcomer ends it.
    let reply = tokio::time::timeout(e2e_support::LIMIT, newcomer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = first.call_tool_reply("pid", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    let m = proxy.metrics().await;
    assert_eq!(ended(&m, "pressure"), 1.0, "{:?}", m.0);
    assert_eq!(m.get("stdiopool_pool_wait_timeouts_total"), 0.0);
}

/// Cancelled exactly where a new session waits for room (the pool's queue
/// raced with the eviction retries of `session::wait_making_room`): the
/// queue place is given back and the abandoned waiter ends no session.
#[tokio::test]
async fn an_initialize_abandoned_while_waiting_for_room_gives_its_place_back_and_ends_nothing() {
    let proxy = session_proxy("1", &[]);
    let first = Mcp::initialize_only(&proxy).await;
    let waiter = {
        let post = proxy.post(initialize_body(1, json!({})).to_string());
        tokio::spawn(async move { post.send().await })
    };
    proxy
        .wait_metrics("a waiter in the pool's queue", |m| {
            m.get("stdiopool_pool_waiting") >= 1.0
        })
        .await;
    waiter.abort(); // closes the socket: the handler's future is dropped
    let _ = waiter.await;
    proxy
        .wait_metrics("the queue place given back", |m| {
            m.get("stdiopool_pool_waiting") == 0.0
        })
        .await;
    // Past the handshake grace, nothing is left that could end the session.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let reply = first.initialized().await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let reply = first
        .call_tool_reply("echo", json!({"message": "kept"}))
        .await;
    assert_eq!(result_text(&reply.response()), "kept");
    let m = proxy.metrics().await;
    assert_eq!(ended(&m, "pressure"), 0.0, "{:?}", m.0);
}

#[tokio::test]
async fn with_eviction_off_a_full_pool_answers_503_and_ends_no_session() {
    let proxy = session_proxy(
        "1",
        &["--session-eviction", "off", "--wait-timeout", "300ms"],
    );
    let holder = Mcp::connect(&proxy).await;
    let reply = proxy
        .post(initialize_body(1, json!({})).to_string())
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(reply.header("retry-after").is_some());
    let reply = holder
        .call_tool_reply("echo", json!({"message": "still here"}))
        .await;
    assert_eq!(result_text(&reply.response()), "still here");
    let m = proxy.metrics().await;
    assert_eq!(ended(&m, "pressure"), 0.0);
}

#[tokio::test]
async fn every_way_a_session_ends_is_counted_by_reason() {
    let proxy = session_proxy("3", &["--session-idle-timeout", "1s"]);
    let deleted = Mcp::connect(&proxy).await;
    assert_eq!(deleted.delete().await.status, StatusCode::OK);

    let crashed = Mcp::connect(&proxy).await;
    let answer = crashed.call_tool("crash", json!({})).await;
    assert!(answer.get("error").is_some(), "{answer}");

    let _idle = Mcp::connect(&proxy).await;
    let m = proxy
        .wait_metrics("one session ended each way but pressure", |m| {
            ended(m, "delete") == 1.0
                && ended(m, "process_exit") == 1.0
                && ended(m, "idle_timeout") == 1.0
        })
        .await;
    assert_eq!(ended(&m, "pressure"), 0.0);
    assert_eq!(m.get("stdiopool_sessions"), 0.0);
}

#[tokio::test]
async fn a_long_quiet_session_is_ended_to_keep_a_warm_spare_for_the_next_session() {
    // A tenth of the idle timeout (200 ms) of quiet lets a session go early
    // for a spare; its open GET stream keeps the idle timeout off it.
    let proxy = session_proxy("2", &["--min-idle", "1", "--session-idle-timeout", "2s"]);
    let quiet = Mcp::connect(&proxy).await;
    let quiet_pid = quiet.pid().await;
    let get = quiet
        .request(Method::GET)
        .header("accept", "text/event-stream")
        .open()
        .await;
    assert_eq!(get.status, StatusCode::OK);
    proxy
        .wait_metrics("a warm spare next to the quiet session", |m| {
            m.get("stdiopool_pool_idle") == 1.0 && m.get("stdiopool_pool_size") == 2.0
        })
        .await;
    // Quiet for longer than the 200 ms a spare may take.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    // The newcomer takes the spare; the pool is full with none left, so the
    // quiet session goes and a new spare is warmed.
    let newcomer = Mcp::connect(&proxy).await;
    let newcomer_pid = newcomer.pid().await;
    assert!(
        wait_gone(quiet_pid).await,
        "the quiet session's process lives on"
    );
    let m = proxy
        .wait_metrics("a spare warmed after the eviction", |m| {
            m.get("stdiopool_pool_idle") == 1.0 && ended(m, "pressure") == 1.0
        })
        .await;
    assert_eq!(m.get("stdiopool_sessions"), 1.0);
    let reply = quiet.call_tool_reply("pid", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // The next session is served from that spare: a process that was
    // already running, not one spawned for it.
    let warm: Vec<u32> = e2e_support::descendants(proxy.pid())
        .iter()
        .map(|p| p.pid)
        .filter(|pid| *pid != newcomer_pid)
        .collect();
    let next = Mcp::connect(&proxy).await;
    let next_pid = next.pid().await;
    assert!(
        warm.contains(&next_pid),
        "pid {next_pid} was spawned for the session, not warm before it ({warm:?})"
    );
}

/// Regression: right after start-up, `--min-idle` processes are spawned in
/// the background, and until they are the pool is at `--pool-size` with
/// nothing idle. A new session used to end a session that had just been
/// opened, as if every process had a session (`benches/run.sh`'s session-mode
/// run: 64 clients at once on `--pool-size 64 --min-idle 64` got 404 for
/// sessions they had just opened, about one run in two). A process being
/// spawned is one the new session can wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_arriving_while_the_pool_warms_up_end_no_session() {
    const SESSIONS: usize = 32;
    for round in 0..3 {
        let size = SESSIONS.to_string();
        let proxy = session_proxy(&size, &["--min-idle", &size]);
        let opened =
            futures_util::future::join_all((0..SESSIONS).map(|_| Mcp::connect(&proxy))).await;
        let replies = futures_util::future::join_all(
            opened
                .iter()
                .enumerate()
                .map(|(n, mcp)| mcp.call_tool_reply("echo", json!({"message": format!("s{n}")}))),
        )
        .await;
        for (n, reply) in replies.iter().enumerate() {
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "round {round}, session {n}: {}",
                reply.text()
            );
        }
        let m = proxy.metrics().await;
        assert_eq!(ended(&m, "pressure"), 0.0, "round {round}");
        assert_eq!(
            m.get("stdiopool_sessions"),
            SESSIONS as f64,
            "round {round}"
        );
    }
}
