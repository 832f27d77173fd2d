//! End to end, both modes: SIGTERM with requests in flight, in front of a
//! wrapped server (`--wrapper`: a parent that forwards no signal, like
//! `npx` → `node`), so every server process has a grandchild.
//!
//! In-flight requests finish (or, past the grace period, fail cleanly), the
//! proxy exits 0, and afterwards nothing it started remains: every pid seen
//! while it ran (the fixture's own `pid` answers, a `/proc` scan of the
//! proxy's descendants and of their process groups) is gone. This test binary
//! makes itself a child subreaper, so anything the proxy leaked would be
//! re-parented here and show up, running or as a zombie, instead of vanishing
//! into init.
//!
//! Alone in its binary because it changes how the test process adopts orphans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use e2e_support::{MODES, Mcp, ProxyProcess, Reply, SseReader, descendants, exists};
use hyper::http::{Method, StatusCode};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use serde_json::json;
use stdiopool::accounting::process_group_members;
use stdiopool::upstream::process::become_subreaper;
use tokio::task::JoinHandle;

/// Every process the proxy started that is alive now: its descendants and
/// the members of their process groups.
fn proxy_processes(proxy: &ProxyProcess) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for p in descendants(proxy.pid()) {
        pids.insert(p.pid);
        for member in process_group_members(p.pgrp).unwrap() {
            if member.pgrp != 0 && member.pgrp != proxy.pid() {
                pids.insert(member.pid);
            }
        }
    }
    pids
}

/// Pids from `seen` still present, after reaping any that were adopted by
/// this (subreaper) process so the test leaves nothing behind either way.
fn leftovers(seen: &BTreeSet<u32>) -> Vec<String> {
    let left: Vec<String> = seen
        .iter()
        .filter(|pid| exists(**pid))
        .map(|pid| {
            let stat = stdiopool::accounting::proc_stat(*pid);
            format!("{pid} {stat:?}")
        })
        .collect();
    for pid in seen.iter().filter(|pid| exists(**pid)) {
        let pid = Pid::from_raw(*pid as i32);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, Some(WaitPidFlag::empty()));
    }
    left
}

/// Starts two slow calls on two different processes; returns the tasks and
/// the server pids that answer them.
/// Session mode also opens a GET stream (which must not hold up shutdown).
async fn two_calls_in_flight(
    proxy: &ProxyProcess,
    mode: &str,
    ms: u64,
) -> (
    Vec<JoinHandle<Result<Reply, String>>>,
    Vec<u32>,
    Option<SseReader>,
) {
    // Pooled: one session, two concurrent calls need two processes.
    // Session: two sessions, each with its own process.
    let a = Arc::new(Mcp::connect(proxy).await);
    let b = if mode == "session" {
        Arc::new(Mcp::connect(proxy).await)
    } else {
        a.clone()
    };
    let mut pids = vec![a.pid().await];
    let mut get_stream = None;
    if mode == "session" {
        pids.push(b.pid().await);
        let open = a
            .request(Method::GET)
            .header("accept", "text/event-stream")
            .open()
            .await;
        assert_eq!(open.status, StatusCode::OK);
        get_stream = Some(open.sse());
    }
    let mut calls = Vec::new();
    for (i, mcp) in [a, b].into_iter().enumerate() {
        let id = 900 + i as u64;
        calls.push(tokio::spawn(async move {
            mcp.tool_req(id, "sleep", json!({"ms": ms}))
                .try_send()
                .await
        }));
    }
    let needle = format!("sleep {ms} ms for request");
    let both = e2e_support::wait_until(e2e_support::LIMIT, || {
        proxy.stderr().matches(&needle).count() >= 2
    })
    .await;
    assert!(both, "{mode}: the two calls never both reached a server");
    (calls, pids, get_stream)
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_leaves_no_process_behind() {
    become_subreaper().unwrap();
    for mode in MODES {
        let mut proxy = ProxyProcess::start(
            &[
                "--mode",
                mode,
                "--pool-size",
                "3",
                "--min-idle",
                "1",
                "--stop-timeout",
                "1s",
            ],
            &["--wrapper"],
        );
        let (calls, answered, get_stream) = two_calls_in_flight(&proxy, mode, 1500).await;
        let seen = proxy_processes(&proxy);
        for pid in &answered {
            assert!(
                seen.contains(pid),
                "{mode}: server pid {pid} not among {seen:?}"
            );
        }
        // Two server processes in flight, each a wrapper and its grandchild.
        assert!(seen.len() >= 4, "{mode}: {seen:?}");

        proxy.signal(Signal::SIGTERM);
        for (i, call) in calls.into_iter().enumerate() {
            let reply = call
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{mode}: in-flight call {i} was cut off: {e}"));
            let response = reply.response();
            assert_eq!(response["id"], 900 + i, "{mode}: {response}");
            assert_eq!(
                response["result"]["content"][0]["text"], "slept 1500 ms",
                "{mode}: drained calls finish: {response}"
            );
        }
        if let Some(mut stream) = get_stream {
            assert!(stream.next().await.is_none(), "{mode}: the GET stream ends");
        }
        let status = proxy.wait_exit().await;
        assert_eq!(
            status.code(),
            Some(0),
            "{mode}: {status}\n{}",
            proxy.stderr()
        );
        let left = leftovers(&seen);
        assert!(left.is_empty(), "{mode}: left behind: {left:?}");
        assert!(
            proxy.stderr().contains("shutdown complete drained=true"),
            "{mode}: {}",
            proxy.stderr()
        );
    }
}

#[tokio::test]
async fn requests_past_the_shutdown_grace_fail_cleanly_and_nothing_is_left() {
    become_subreaper().unwrap();
    for mode in MODES {
        let mut proxy = ProxyProcess::start(
            &[
                "--mode",
                mode,
                "--pool-size",
                "3",
                "--min-idle",
                "1",
                "--stop-timeout",
                "500ms",
                "--shutdown-grace",
                "300ms",
            ],
            &["--wrapper", "--ignore-sigterm", "--ignore-stdin-eof"],
        );
        let (calls, _, _) = two_calls_in_flight(&proxy, mode, 10_000).await;
        let seen = proxy_processes(&proxy);
        assert!(seen.len() >= 4, "{mode}: {seen:?}");

        proxy.signal(Signal::SIGTERM);
        for call in calls {
            // Cut off: either a JSON-RPC error for the call or a closed
            // connection, never a hang or a success.
            match call.await.unwrap() {
                Ok(reply) => {
                    let messages = reply.messages();
                    assert!(
                        messages.last().is_none_or(|m| m.get("error").is_some()),
                        "{mode}: {messages:?}"
                    );
                }
                Err(e) => assert!(!e.is_empty()),
            }
        }
        let status = proxy.wait_exit().await;
        assert_eq!(
            status.code(),
            Some(0),
            "{mode}: {status}\n{}",
            proxy.stderr()
        );
        let left = leftovers(&seen);
        assert!(left.is_empty(), "{mode}: left behind: {left:?}");
    }
}

/// `/readyz`'s status now.
async fn readyz(proxy: &ProxyProcess) -> StatusCode {
    e2e_support::Req::new(proxy.addr, Method::GET, "/readyz")
        .send()
        .await
        .status
}

#[tokio::test]
async fn sigterm_turns_readyz_to_503_for_the_drain_delay_while_requests_are_still_served() {
    become_subreaper().unwrap();
    for mode in MODES {
        // Longer than the support's exit bound (20 s): the proxy exits in
        // time only because the second SIGTERM cuts the delay short.
        let mut proxy = ProxyProcess::start(
            &["--mode", mode, "--pool-size", "2", "--drain-delay", "60s"],
            &[],
        );
        let before = Mcp::connect(&proxy).await;
        assert_eq!(readyz(&proxy).await, StatusCode::OK, "{mode}");
        let seen = proxy_processes(&proxy);

        proxy.signal(Signal::SIGTERM);
        let mut status = StatusCode::OK;
        for _ in 0..500 {
            status = readyz(&proxy).await;
            if status != StatusCode::OK {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{mode}");
        let health = e2e_support::Req::new(proxy.addr, Method::GET, "/healthz")
            .send()
            .await;
        assert_eq!(health.status, StatusCode::OK, "{mode}: still alive");
        // Still serving: an existing session, and a new one.
        let response = before.call_tool("echo", json!({"message": "old"})).await;
        assert_eq!(response["result"]["content"][0]["text"], "old", "{mode}");
        let after = Mcp::connect(&proxy).await;
        let response = after.call_tool("echo", json!({"message": "new"})).await;
        assert_eq!(response["result"]["content"][0]["text"], "new", "{mode}");
        assert_eq!(readyz(&proxy).await, StatusCode::SERVICE_UNAVAILABLE);

        proxy.signal(Signal::SIGTERM);
        let exit = proxy.wait_exit().await;
        assert_eq!(exit.code(), Some(0), "{mode}: {exit}\n{}", proxy.stderr());
        assert!(
            proxy.stderr().contains("/readyz answers 503"),
            "{mode}: {}",
            proxy.stderr()
        );
        let left = leftovers(&seen);
        assert!(left.is_empty(), "{mode}: left behind: {left:?}");
    }
}

#[tokio::test]
async fn after_the_drain_delay_the_proxy_drains_and_exits_by_itself() {
    become_subreaper().unwrap();
    let mut proxy = ProxyProcess::start(&["--drain-delay", "1s"], &[]);
    let seen = proxy_processes(&proxy);
    proxy.signal(Signal::SIGTERM);
    let exit = proxy.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "{exit}\n{}", proxy.stderr());
    let stderr = proxy.stderr();
    let marked = stderr.find("/readyz answers 503");
    let drained = stderr.find("shutting down: draining");
    assert!(
        matches!((marked, drained), (Some(m), Some(d)) if m < d),
        "the 503 phase comes before the drain: {stderr}"
    );
    assert!(leftovers(&seen).is_empty());
}

/// Regression: SIGTERM was listened for only once the proxy served, so one
/// that came while it started its servers (or just after the banner, as a
/// test's stop did: `after_the_drain_delay_…` failed once with "signal: 15")
/// killed it by the default action, without its stop sequence. Now the
/// signal waits for the start to finish, then the proxy stops cleanly.
#[tokio::test]
async fn sigterm_during_start_up_stops_the_proxy_cleanly_once_it_is_up() {
    become_subreaper().unwrap();
    let mut child = tokio::process::Command::new(e2e_support::BIN)
        .args(["--listen", "127.0.0.1:0", "--drain-delay", "0", "--"])
        .args([e2e_support::FIXTURE, "--slow-start", "1500"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    // The server process exists: the proxy is inside its start-up.
    let mut seen = BTreeSet::new();
    for _ in 0..500 {
        seen.extend(descendants(pid).iter().map(|p| p.pid));
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!seen.is_empty(), "the proxy started no server process");
    nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let exit = tokio::time::timeout(e2e_support::LIMIT, child.wait())
        .await
        .expect("the proxy did not exit")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{exit}");
    let left = leftovers(&seen);
    assert!(left.is_empty(), "left behind: {left:?}");
}
