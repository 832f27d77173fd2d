//! End to end, both modes: a server command that cannot start stops the
//! binary at start-up with a non-zero exit and a message naming the command
//! and what it said on stderr (DESIGN §7, last row).
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
