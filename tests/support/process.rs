//! Helpers shared by the process tests: the fixture's path, a spec for it, and
//! a minimal newline-delimited JSON-RPC client over a child's stdin/stdout
//! (the framing module is tested on its own; these tests are about processes).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use stdiopool::upstream::process::{ChildProcess, ProcessSpec, StopTimeouts};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};

/// Upper bound for any single wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(20);

pub fn fixture() -> &'static str {
    env!("CARGO_BIN_EXE_stdiopool-fixture")
}

/// A spec for the fixture with `args` and the given stop graces.
pub fn fixture_spec(args: &[&str], stdin_grace_ms: u64, term_grace_ms: u64) -> ProcessSpec {
    ProcessSpec::new(fixture())
        .args(args.iter().copied())
        .name("fixture")
        .stop_timeouts(StopTimeouts {
            stdin_grace: Duration::from_millis(stdin_grace_ms),
            term_grace: Duration::from_millis(term_grace_ms),
        })
}

/// A bare JSON-RPC client on a child's pipes.
pub struct Rpc {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Rpc {
    pub fn attach(child: &mut ChildProcess) -> Self {
        Rpc {
            stdin: child.take_stdin().unwrap(),
            stdout: BufReader::new(child.take_stdout().unwrap()),
            next_id: 1,
        }
    }

    /// Sends a request and returns its response, skipping notifications.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&json!({
            "jsonrpc": "2.0", "id": id, "method": method, "params": params,
        }))
        .unwrap();
        line.push(b'\n');
        tokio::time::timeout(LIMIT, self.stdin.write_all(&line))
            .await
            .expect("write timed out")
            .unwrap();
        loop {
            let mut buf = String::new();
            let n = tokio::time::timeout(LIMIT, self.stdout.read_line(&mut buf))
                .await
                .expect("read timed out")
                .unwrap();
            assert!(n > 0, "stdout closed while waiting for response {id}");
            let msg: Value = serde_json::from_str(&buf).unwrap();
            if msg.get("id").and_then(Value::as_u64) == Some(id) && msg.get("method").is_none() {
                return msg;
            }
        }
    }

    /// Calls a tool and returns the text of its first content item.
    pub async fn tool_text(&mut self, name: &str, arguments: Value) -> String {
        let resp = self
            .call("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        resp["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text in {resp}"))
            .to_owned()
    }

    /// Sends a request without waiting for an answer.
    pub async fn send(&mut self, method: &str, params: Value) {
        let mut line = serde_json::to_vec(&json!({
            "jsonrpc": "2.0", "id": 999_999, "method": method, "params": params,
        }))
        .unwrap();
        line.push(b'\n');
        tokio::time::timeout(LIMIT, self.stdin.write_all(&line))
            .await
            .expect("write timed out")
            .unwrap();
    }
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
