//! Shared helpers of the end-to-end tests: the real `stdiopool` binary run in
//! front of the real fixture server, driven over real HTTP/1.1 on 127.0.0.1.
//!
//! - [`ProxyProcess`] starts the binary on `127.0.0.1:0` (the kernel picks a
//!   free port; the address is read from the binary's start-up banner), keeps
//!   its stderr (the proxy's logs, including the fixture's stderr lines) and,
//!   on drop, stops it with SIGTERM, then SIGKILL, and always reaps it.
//! - [`Req`] / [`Reply`] / [`SseReader`]: one HTTP exchange per TCP connection
//!   (hyper's client connection), with every wait bounded by [`LIMIT`].
//! - [`Mcp`]: a small MCP client (initialize, requests, tool calls) that reads
//!   both JSON and SSE replies.
//! - [`Metrics`]: the Prometheus text of `/metrics`, by series.
//! - `/proc` helpers to follow the proxy's children and grandchildren.
//!
//! One file per part (`process`, `http`, `mcp`, `metrics`, `procfs`).
//!
//! Invariant: every process a test starts is reaped before the test returns
//! (the guard's `Drop` kills what is left), and no wait is unbounded.

// Each test binary uses a part of this module.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

mod http;
mod mcp;
mod metrics;
mod process;
mod procfs;

use std::time::Duration;

pub use http::*;
pub use mcp::*;
pub use metrics::*;
pub use process::*;
pub use procfs::*;

/// Upper bound for any single wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(20);

/// The proxy binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stdiopool");

/// The fixture server run behind it.
pub const FIXTURE: &str = env!("CARGO_BIN_EXE_stdiopool-fixture");

/// The `Accept` every conforming MCP client sends on POST.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The MCP modes, for tests that run in both.
pub const MODES: [&str; 2] = ["pooled", "session"];
