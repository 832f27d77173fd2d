//! End to end, both modes: a server command that cannot start stops the
//! binary at start-up with a non-zero exit and a message naming the command
//! and what it said on stderr (docs/ARCHITECTURE.md, "Start-up and shutdown").
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use e2e_support::{MODES, ProxyProcess, fixture_args};

#[test]
fn a_command_that_does_not_exist_stops_the_proxy_at_start_naming_it() {
    for mode in MODES {
        let args: Vec<String> = [
            "--mode",
            mode,
            "--",
            "/nonexistent/stdiopool-e2e-server",
            "--flag",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let failure = ProxyProcess::launch(&args).expect_err("the proxy must not start");
        assert!(!failure.status.success(), "{mode}: {}", failure.status);
        assert!(
            failure.stderr.contains("/nonexistent/stdiopool-e2e-server")
                && failure.stderr.contains("not found"),
            "{mode}: {}",
            failure.stderr
        );
        assert!(!failure.stdout.contains("connect an MCP client"), "{mode}");
    }
}

#[test]
fn a_server_that_exits_at_start_stops_the_proxy_with_its_stderr_tail() {
    for mode in MODES {
        let args = fixture_args(&["--mode", mode], &["--exit-at-start", "3"]);
        let failure = ProxyProcess::launch(&args).expect_err("the proxy must not start");
        assert!(!failure.status.success(), "{mode}: {}", failure.status);
        let err = &failure.stderr;
        assert!(
            err.contains("stdiopool-fixture"),
            "{mode}: names the command: {err}"
        );
        assert!(err.contains("exited at start"), "{mode}: {err}");
        assert!(
            err.contains("exiting at start with code 3 (--exit-at-start)"),
            "{mode}: carries the stderr tail: {err}"
        );
    }
}

#[tokio::test]
async fn a_slow_starting_server_is_waited_for_within_the_create_timeout() {
    let proxy = ProxyProcess::start(&["--pool-size", "1"], &["--slow-start", "300"]);
    proxy.wait_for_log("stdiopool-fixture: started, pid").await;
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_pool_create_failures_total"), 0.0);
    assert_eq!(m.get("stdiopool_pool_created_total"), 1.0);
}

/// Regression: the banner was written with `println!`, which panics on EPIPE,
/// so a proxy whose starter had stopped reading its stdout died at start-up
/// (seen as "connection reset" in the load-generator tests, whose reader went
/// away after the URL line while the banner was still being written).
#[tokio::test]
async fn the_proxy_serves_even_when_its_stdout_is_closed() {
    use std::process::{Command, Stdio};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(e2e_support::BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // nobody will ever read the banner
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let reply = loop {
        let attempt = e2e_support::Req::new(addr, hyper::http::Method::POST, "/mcp")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(e2e_support::initialize_body(1, serde_json::json!({})).to_string())
            .try_send()
            .await;
        match attempt {
            Ok(reply) => break reply,
            Err(e) => {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the proxy died before serving ({e})"
                );
                assert!(std::time::Instant::now() < deadline, "never came up: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        reply.status,
        hyper::http::StatusCode::OK,
        "{}",
        reply.text()
    );
    assert!(child.try_wait().unwrap().is_none(), "the proxy died");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
