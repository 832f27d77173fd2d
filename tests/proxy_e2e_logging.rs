//! What the operator sees of the real `stdiopool` binary: its logs on a pipe
//! (a log file, journald) carry no ANSI colour escapes.
//!
//! The no-authentication warning and the banner's addresses need a
//! non-loopback listener, which tests do not open; they are unit tests of
//! `app::operator` (pure functions of the configuration).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use e2e_support::{Mcp, ProxyProcess};

/// The papercut of issue 17: logs written to a pipe (a file, journald) carry
/// no ANSI escapes, even without `NO_COLOR`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_carry_no_colour_escapes() {
    let args = e2e_support::fixture_args(&["--pool-size", "1", "--log-filter", "debug"], &[]);
    let Ok(proxy) = ProxyProcess::launch_env(&args, &[("NO_COLOR", None)]) else {
        panic!("stdiopool did not start");
    };
    let mcp = Mcp::connect(&proxy).await;
    assert!(mcp.pid().await > 0);
    let log = proxy.stderr();
    assert!(log.contains("INFO"), "no log lines to check: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape in a piped log: {log:?}"
    );
}
