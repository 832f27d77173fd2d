//! Helpers shared by the upstream connection and pool tests: a manager and a
//! pool over the real fixture server, and small accessors for tool results.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stdiopool::accounting::Accounting;
use stdiopool::jsonrpc::Id;
use stdiopool::pool::{Backoff, Pool, PoolConfig};
use stdiopool::upstream::process::{ProcessSpec, StopTimeouts};
use stdiopool::upstream::{Connection, OutgoingRequest, UpstreamConfig, UpstreamManager};

/// Upper bound for any single wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(20);

/// The bound for "fails at once" assertions (a hang would exceed it).
pub const QUICK: Duration = Duration::from_secs(5);

pub fn fixture_spec(args: &[&str]) -> ProcessSpec {
    ProcessSpec::new(env!("CARGO_BIN_EXE_stdiopool-fixture"))
        .args(args.iter().copied())
        .name("fixture")
        .stop_timeouts(StopTimeouts {
            stdin_grace: Duration::from_secs(2),
            term_grace: Duration::from_secs(1),
        })
}

pub fn config(acc: &Arc<Accounting>, args: &[&str]) -> UpstreamConfig {
    UpstreamConfig::new(fixture_spec(args), Arc::clone(acc))
}

pub fn manager(acc: &Arc<Accounting>) -> UpstreamManager {
    UpstreamManager::new(config(acc, &[]))
}

pub fn pool(mgr: UpstreamManager, size: usize, max_uses: Option<u64>) -> Pool<UpstreamManager> {
    let mut cfg = PoolConfig::new(size);
    cfg.max_uses = max_uses;
    cfg.wait_timeout = Some(LIMIT);
    cfg.create_backoff = Backoff::NONE;
    Pool::new(mgr, cfg)
}

/// A `tools/call` request.
pub fn tool(id: impl Into<Id>, name: &str, arguments: Value) -> OutgoingRequest {
    OutgoingRequest::new(
        id,
        "tools/call",
        Some(json!({"name": name, "arguments": arguments})),
    )
}

/// The text of a tool result's first content item.
pub fn text(resp: &Value) -> &str {
    resp["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {resp}"))
}

/// The fixture's pid, asked through the connection.
pub async fn pid_via_tool(conn: &Connection) -> u32 {
    let resp = tokio::time::timeout(LIMIT, conn.call(tool("pid", "pid", json!({})), None))
        .await
        .unwrap()
        .unwrap();
    resp["result"]["structuredContent"]["pid"]
        .as_u64()
        .unwrap()
        .try_into()
        .unwrap()
}

/// Parses a JSON text (for ids such as 123456789012345678901234567890).
pub fn id_from_json(text: &str) -> Id {
    serde_json::from_str(text).unwrap()
}

/// Waits (bounded) until `pid` is gone from /proc: not running, not a zombie.
pub async fn wait_gone(pid: u32) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if stdiopool::accounting::proc_stat(pid).is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Waits (bounded) until the accounting's live table is empty.
pub async fn wait_no_live(acc: &Accounting) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if acc.live_pids().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
