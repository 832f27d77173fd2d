//! The upstream process lifecycle against real processes (the fixture server):
//! each rung of the stop sequence, process groups and the subreaper, start-up
//! failures, stderr capture, and the background stop of a dropped handle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/process.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{LIMIT, Rpc, fixture_spec, wait_gone};
use serde_json::json;
use stdiopool::accounting::{Accounting, proc_stat};
use stdiopool::upstream::process::{
    ChildProcess, ExitCause, ProcessSpec, SpawnError, StopReason, StopStage, become_subreaper,
};

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

fn accounting() -> Arc<Accounting> {
    Arc::new(Accounting::new())
}

/// Spawns `spec` and waits until it answers a ping (so its signal handlers
/// are set); returns it and its pid.
async fn spawn_answering(spec: &ProcessSpec, acc: &Arc<Accounting>) -> (ChildProcess, u32) {
    let mut child = ChildProcess::spawn(spec, acc).unwrap();
    let pid = child.pid();
    let mut rpc = Rpc::attach(&mut child);
    assert_eq!(rpc.call("ping", json!({})).await["result"], json!({}));
    drop(rpc);
    (child, pid)
}

async fn stop(child: ChildProcess) -> stdiopool::upstream::process::StopOutcome {
    tokio::time::timeout(LIMIT, child.stop(StopReason::Retired))
        .await
        .expect("stop sequence did not finish")
}

/// A process whose stdin the test closed (by dropping its `Rpc`) exits on
/// that EOF with no signal: within the stop's stdin grace, or already before
/// the stop looked (the EOF was the test's, not the stop's, so either stage
/// is that same outcome; asserting one of them alone was a race).
fn assert_exited_on_eof(out: &stdiopool::upstream::process::StopOutcome) {
    assert!(
        matches!(out.stage, StopStage::StdinClosed | StopStage::AlreadyExited),
        "no signal may be needed: {out:?}"
    );
    assert_eq!(out.cause, ExitCause::Code(0), "{out:?}");
}

#[tokio::test]
async fn server_that_exits_on_stdin_eof_stops_without_a_signal() {
    let acc = accounting();
    // Generous graces: a server that honours EOF must never reach a signal.
    let mut child = ChildProcess::spawn(&fixture_spec(&[], 10_000, 10_000), &acc).unwrap();
    let pid = child.pid();
    let mut rpc = Rpc::attach(&mut child);
    let init = rpc
        .call("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}))
        .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "stdiopool-fixture");
    drop(rpc);
    let out = stop(child).await;
    assert_exited_on_eof(&out);
    assert!(wait_gone(pid).await);
    assert!(acc.live_pids().is_empty());
    assert_eq!(acc.snapshot().exited_clean, 1);
}

#[tokio::test]
async fn server_ignoring_stdin_eof_is_terminated_by_sigterm() {
    let acc = accounting();
    let mut child =
        ChildProcess::spawn(&fixture_spec(&["--ignore-stdin-eof"], 100, 10_000), &acc).unwrap();
    let mut rpc = Rpc::attach(&mut child);
    assert_eq!(rpc.call("ping", json!({})).await["result"], json!({}));
    drop(rpc);
    let out = stop(child).await;
    assert_eq!(out.stage, StopStage::Terminated);
    assert_eq!(out.cause, ExitCause::Signal(SIGTERM));
    assert_eq!(acc.snapshot().terminated_by_stop, 1);
    assert!(acc.live_pids().is_empty());
}

#[tokio::test]
async fn server_ignoring_sigterm_and_eof_is_killed() {
    let acc = accounting();
    let spec = fixture_spec(&["--ignore-stdin-eof", "--ignore-sigterm"], 100, 100);
    // The answer proves SIGTERM is already ignored (it is set before serving).
    let (child, pid) = spawn_answering(&spec, &acc).await;
    let out = stop(child).await;
    assert_eq!(out.stage, StopStage::Killed);
    assert_eq!(out.cause, ExitCause::Signal(SIGKILL));
    assert!(wait_gone(pid).await);
    assert_eq!(acc.snapshot().killed_by_stop, 1);
}

#[tokio::test]
async fn wrapper_grandchild_is_killed_and_reaped_with_the_group() {
    become_subreaper().unwrap();
    let acc = accounting();
    let spec = fixture_spec(
        &["--wrapper", "--ignore-stdin-eof", "--ignore-sigterm"],
        100,
        100,
    );
    let mut child = ChildProcess::spawn(&spec, &acc).unwrap();
    let wrapper = child.pid();
    let mut rpc = Rpc::attach(&mut child);
    let grandchild: u32 = rpc.tool_text("pid", json!({})).await.parse().unwrap();
    assert_ne!(grandchild, wrapper, "the server must run one level down");
    let stat = proc_stat(grandchild).unwrap();
    assert_eq!(
        stat.pgrp, wrapper,
        "the grandchild shares the wrapper's group"
    );
    assert_eq!(stat.ppid, wrapper);
    drop(rpc);
    let out = stop(child).await;
    // The wrapper dies of SIGTERM; the grandchild ignores it and needs SIGKILL,
    // after which it is ours (subreaper) to reap.
    assert_eq!(out.cause, ExitCause::Signal(SIGTERM));
    assert_eq!(out.stage, StopStage::Terminated);
    assert_eq!(out.group_reaped, 1);
    assert_eq!(proc_stat(grandchild), None, "grandchild left behind");
    assert!(wait_gone(wrapper).await);
}

#[tokio::test]
async fn wrapper_passes_stdin_eof_through_to_the_grandchild() {
    become_subreaper().unwrap();
    let acc = accounting();
    let mut child =
        ChildProcess::spawn(&fixture_spec(&["--wrapper"], 10_000, 10_000), &acc).unwrap();
    let mut rpc = Rpc::attach(&mut child);
    let grandchild: u32 = rpc.tool_text("pid", json!({})).await.parse().unwrap();
    drop(rpc);
    let out = stop(child).await;
    assert_exited_on_eof(&out);
    assert!(wait_gone(grandchild).await);
}

#[tokio::test]
async fn exit_at_start_reports_the_code_and_the_stderr_tail() {
    let acc = accounting();
    let mut child =
        ChildProcess::spawn(&fixture_spec(&["--exit-at-start", "3"], 100, 100), &acc).unwrap();
    let cause = tokio::time::timeout(LIMIT, child.wait_exit())
        .await
        .unwrap();
    assert_eq!(cause, ExitCause::Code(3));
    assert_eq!(child.try_exited(), Some(ExitCause::Code(3)));
    let out = stop(child).await;
    assert_eq!(out.stage, StopStage::AlreadyExited);
    assert_eq!(out.cause, ExitCause::Code(3));
    assert!(
        out.stderr_tail
            .iter()
            .any(|l| l.contains("exiting at start with code 3")),
        "tail: {:?}",
        out.stderr_tail
    );
    assert_eq!(acc.snapshot().exited_nonzero, 1);
}

#[tokio::test]
async fn crash_mid_request_is_seen_as_an_exit_with_its_code() {
    let acc = accounting();
    let mut child = ChildProcess::spawn(&fixture_spec(&[], 100, 100), &acc).unwrap();
    assert_eq!(child.try_exited(), None);
    let mut rpc = Rpc::attach(&mut child);
    rpc.send(
        "tools/call",
        json!({"name": "crash", "arguments": {"code": 7}}),
    )
    .await;
    let cause = tokio::time::timeout(LIMIT, child.wait_exit())
        .await
        .unwrap();
    assert_eq!(cause, ExitCause::Code(7));
    drop(rpc);
    let out = stop(child).await;
    assert_eq!(out.stage, StopStage::AlreadyExited);
    assert!(
        out.stderr_tail
            .iter()
            .any(|l| l.contains("crashing on request"))
    );
}

#[tokio::test]
async fn missing_command_is_a_spawn_error_naming_it() {
    let acc = accounting();
    for program in [
        "stdiopool-no-such-command-xyz",
        "/nonexistent/dir/stdiopool-nope",
    ] {
        let err = ChildProcess::spawn(&ProcessSpec::new(program), &acc).unwrap_err();
        assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("command not found: {program}"));
    }
    let spec = ProcessSpec {
        cwd: Some("/nonexistent/cwd".into()),
        ..ProcessSpec::new(common::fixture())
    };
    let err = ChildProcess::spawn(&spec, &acc).unwrap_err();
    assert!(matches!(err, SpawnError::BadCwd { .. }), "{err:?}");
    assert_eq!(acc.snapshot().spawn_failures, 3);
    assert_eq!(acc.snapshot().spawned, 0);
}

#[tokio::test]
async fn stderr_lines_become_the_tail() {
    let acc = accounting();
    let mut child =
        ChildProcess::spawn(&fixture_spec(&["--name", "tailtest"], 5_000, 100), &acc).unwrap();
    let mut rpc = Rpc::attach(&mut child);
    let text = rpc
        .tool_text("log", json!({"message": "hello from stderr", "lines": 3}))
        .await;
    assert_eq!(text, "logged 3 lines");
    drop(rpc);
    let out = stop(child).await;
    let hellos = out
        .stderr_tail
        .iter()
        .filter(|l| *l == "hello from stderr")
        .count();
    assert_eq!(hellos, 3, "tail: {:?}", out.stderr_tail);
    assert!(
        out.stderr_tail
            .iter()
            .any(|l| l.starts_with("tailtest: started"))
    );
}

#[tokio::test]
async fn environment_and_working_directory_are_applied() {
    let acc = accounting();
    // A variable this test process has (cargo sets several), which the shell
    // does not re-create by itself the way it does PATH or PWD.
    let inherited = std::env::vars()
        .map(|(k, _)| k)
        .find(|k| k.starts_with("CARGO") && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .expect("cargo sets CARGO* variables for tests");
    let script =
        format!("echo \"var=$STDIOPOOL_TEST_VAR unset=${{{inherited}-gone}}\" >&2; pwd >&2");
    let spec = ProcessSpec {
        env_set: vec![("STDIOPOOL_TEST_VAR".into(), "set-by-spec".into())],
        env_unset: vec![inherited.clone().into()],
        cwd: Some("/tmp".into()),
        ..ProcessSpec::new("/bin/sh").args(["-c", script.as_str()])
    };
    let child = ChildProcess::spawn(&spec, &acc).unwrap();
    let out = stop(child).await;
    assert_eq!(out.cause, ExitCause::Code(0));
    assert_eq!(out.stderr_tail, vec!["var=set-by-spec unset=gone", "/tmp"]);
}

#[tokio::test]
async fn dropped_handle_is_stopped_in_the_background() {
    let acc = accounting();
    let spec = fixture_spec(&["--ignore-stdin-eof", "--ignore-sigterm"], 50, 50);
    let (child, pid) = spawn_answering(&spec, &acc).await;
    drop(child);
    // The count is this test's own accounting: other tests' stops are not in it.
    assert_eq!(acc.wait_for_stops(LIMIT).await, 0);
    assert!(wait_gone(pid).await);
    assert!(acc.live_pids().is_empty());
    assert_eq!(acc.snapshot().killed_by_stop, 1);
}

#[tokio::test]
async fn concurrent_requests_do_not_wait_for_a_slow_one() {
    let acc = accounting();
    let mut child = ChildProcess::spawn(&fixture_spec(&[], 5_000, 100), &acc).unwrap();
    let mut rpc = Rpc::attach(&mut child);
    // A sleep far longer than LIMIT: if it blocked the echo, `call` would time out.
    rpc.send(
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 60_000}}),
    )
    .await;
    assert_eq!(
        rpc.tool_text("echo", json!({"message": "quick"})).await,
        "quick"
    );
    drop(rpc);
    // It exits on EOF although the sleep is pending.
    let out = stop(child).await;
    assert_exited_on_eof(&out);
}

#[test]
fn handle_dropped_outside_a_runtime_is_killed_and_reaped() {
    let acc = accounting();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let spec = fixture_spec(&["--ignore-stdin-eof", "--ignore-sigterm"], 10_000, 10_000);
    let (child, pid) = rt.block_on(async {
        let mut child = ChildProcess::spawn(&spec, &acc).unwrap();
        let pid = child.pid();
        let mut rpc = Rpc::attach(&mut child);
        assert_eq!(rpc.call("ping", json!({})).await["result"], json!({}));
        (child, pid)
    });
    drop(rt);
    // No runtime now: the drop must fall back to a thread that kills and reaps.
    drop(child);
    let deadline = std::time::Instant::now() + LIMIT;
    while !acc.live_pids().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(acc.live_pids().is_empty(), "never reaped");
    assert_eq!(proc_stat(pid), None, "process {pid} left behind");
    assert_eq!(acc.snapshot().killed_by_stop, 1, "{:?}", acc.snapshot());
}

#[tokio::test]
async fn a_stop_cut_short_kills_the_group_and_stops_counting() {
    let acc = accounting();
    let spec = fixture_spec(&["--ignore-stdin-eof", "--ignore-sigterm"], 10_000, 10_000);
    let (child, pid) = spawn_answering(&spec, &acc).await;
    // Cancelled inside the 10 s stdin grace: only the ticket's drop can kill it.
    let cut = tokio::time::timeout(Duration::from_millis(300), child.stop(StopReason::Shutdown));
    assert!(cut.await.is_err(), "the stop should still be in its grace");
    assert_eq!(acc.stops_in_progress(), 0);
    let deadline = tokio::time::Instant::now() + LIMIT;
    let dead = loop {
        // Killed: gone, or a zombie waiting for tokio's orphan reaper.
        match proc_stat(pid) {
            None => break true,
            Some(stat) if stat.is_zombie() => break true,
            Some(_) if tokio::time::Instant::now() >= deadline => break false,
            Some(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    assert!(dead, "process {pid} survived a stop cut short");
}

#[tokio::test]
async fn a_server_writing_megabytes_to_stderr_is_drained_while_the_log_is_over_budget() {
    let acc = accounting();
    // 2.8 MB, far more than a pipe holds: a reader that stopped draining when
    // it stopped logging would leave the writer blocked forever.
    let spec = ProcessSpec::new("sh")
        .args([
            "-c",
            "yes 'line of noise' | head -n 200000 >&2; echo done >&2",
        ])
        .name("megabytes");
    let mut child = ChildProcess::spawn(&spec, &acc).unwrap();
    let exited = tokio::time::timeout(LIMIT, child.wait_exit()).await;
    assert_eq!(exited, Ok(ExitCause::Code(0)), "the writer was blocked");
    let out = stop(child).await;
    assert_eq!(out.stderr_tail.last().map(String::as_str), Some("done"));
    let (server, counts) = acc.stderr_snapshot().pop().unwrap();
    assert_eq!(server, "megabytes");
    assert_eq!(counts.forwarded_lines + counts.suppressed_lines, 200_001);
    assert!(counts.forwarded_lines <= 500 + 100 * (LIMIT.as_secs() + 1));
}
