//! `stdiopool-load`: the load generator behind `benches/run.sh`.
//!
//! Two targets, one workload (`tools/call echo` with a unique payload per
//! request, against the fixture or any server with an `echo{message}` tool):
//!
//! - `http`: MCP Streamable HTTP, as a real client speaks it. Each virtual
//!   client owns one keep-alive HTTP/1.1 connection. Sessions are opened with
//!   `initialize` + `notifications/initialized` (one per client with
//!   `--sessions per-client`, one shared by all with `--sessions shared`),
//!   every later request carries `MCP-Session-Id` and `MCP-Protocol-Version`,
//!   and replies are accepted as `application/json` or `text/event-stream`.
//! - `stdio`: the same requests written straight to a spawned server's stdin
//!   and matched by id on its stdout (pipelined, `--concurrency` in flight):
//!   the physical limit the proxy is measured against.
//!
//! - `floor`: not a load but a server: the HTTP floor (`floor.rs`), a
//!   minimal endpoint on the proxy's HTTP stack answering the same workload
//!   from memory, so a run can say what HTTP alone costs.
//!
//! Invariant: every response is checked (status, content type, JSON-RPC id,
//! echoed text, no `isError`); a wrong or missing one is counted as an error,
//! and any error makes the exit status non-zero. The run is bounded both in
//! requests (`--requests`) and in time (`--duration`, per-request `--timeout`).

mod floor;
mod forward;
mod http;
mod report;
mod stdio;

use http::*;
use report::*;
use stdio::*;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

/// Protocol version the client asks for.
const PROTOCOL_VERSION: &str = "2025-11-25";
/// The version `--era modern` speaks (no initialize, no session).
const MODERN_VERSION: &str = "2026-07-28";

#[derive(Debug, Parser)]
#[command(
    name = "stdiopool-load",
    version,
    about = "Load generator for stdio MCP servers, over MCP Streamable HTTP or straight over stdio"
)]
struct Cli {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// Load an MCP Streamable HTTP endpoint (e.g. the stdiopool proxy).
    Http(HttpArgs),
    /// Spawn a stdio MCP server and load it directly, with no HTTP in between.
    Stdio(StdioArgs),
    /// Serve the HTTP floor: the same workload answered from memory on the
    /// proxy's HTTP stack (no processes), until stopped.
    Floor(floor::FloorArgs),
}

#[derive(Debug, Clone, Args)]
struct Common {
    /// Measured requests (after the warm-up); the run stops at this count.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Longest measured phase; the run stops issuing requests after it.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Requests in flight at once (virtual clients).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// Requests run before measuring, not counted.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Longest wait for one response; a slower one counts as an error.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Size of each echoed message in bytes (a unique prefix, padded).
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// A name for this run, copied into the JSON.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SessionPolicy {
    /// Every virtual client initializes its own session (session mode).
    PerClient,
    /// One session shared by all virtual clients (pooled mode).
    Shared,
}

/// Which era of MCP the HTTP clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Era {
    /// 2025-11-25: `initialize`, then requests in a session.
    Legacy,
    /// 2026-07-28: no `initialize`, no session; every request carries its
    /// `_meta` (version, client capabilities) and `Mcp-Method`/`Mcp-Name`.
    Modern,
}

#[derive(Debug, Args)]
struct HttpArgs {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp
    #[arg(long)]
    url: Uri,
    #[arg(long, value_enum, default_value_t = SessionPolicy::Shared)]
    sessions: SessionPolicy,
    /// The protocol era; `modern` opens no sessions (`--sessions` and
    /// `--open-sessions` then have no effect).
    #[arg(long, value_enum, default_value_t = Era::Legacy)]
    era: Era,
    /// Before the run, also open this many idle sessions (initialize +
    /// initialized) that carry no load, e.g. to measure what sessions cost.
    #[arg(long, default_value_t = 0)]
    open_sessions: u64,
    /// Leave every session open at the end instead of ending it with DELETE.
    #[arg(long)]
    keep_sessions: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct StdioArgs {
    #[command(flatten)]
    common: Common,
    /// The server command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stdiopool-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Target::Floor(args) = cli.target {
        return match runtime.block_on(floor::serve_floor(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stdiopool-load floor: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(cli)) {
        Ok(report) if report.errors == 0 && report.ok > 0 => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!(
                "stdiopool-load: {} wrong or failed responses, {} good ({})",
                report.errors, report.ok, report.first_error
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("stdiopool-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let (common, report) = match cli.target {
        Target::Http(args) => {
            let common = args.common.clone();
            let report = run_http(args).await?;
            (common, report)
        }
        Target::Stdio(args) => {
            let common = args.common.clone();
            let report = run_stdio(args).await?;
            (common, report)
        }
        Target::Floor(_) => bail!("`floor` is a server, not a load: run it on its own"),
    };
    println!("{}", report.summary(&common));
    if let Some(path) = &common.json_out {
        let text = serde_json::to_string_pretty(&report.to_json(&common))?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

// ---------------------------------------------------------------- workload

/// Hands out request numbers and decides when the run is over.
struct Schedule {
    next: AtomicU64,
    limit: u64,
    deadline: Instant,
}

impl Schedule {
    fn new(limit: u64, duration: Duration) -> Self {
        Schedule {
            next: AtomicU64::new(0),
            limit,
            deadline: Instant::now() + duration,
        }
    }

    /// The next request number, or `None` when the run is over.
    fn take(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < self.limit).then_some(n)
    }
}

/// JSON-RPC ids unique across the whole run (so also within a shared session).
struct IdSource(AtomicU64);

impl IdSource {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

fn payload(worker: u64, n: u64, size: usize) -> String {
    let mut s = format!("w{worker}-n{n}-");
    while s.len() < size {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s
}

fn echo_request(id: u64, message: &str, session: &SessionInfo) -> Value {
    let mut params = json!({"name": "echo", "arguments": {"message": message}});
    if session.is_modern() {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
            "io.modelcontextprotocol/clientCapabilities": {},
        });
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

fn initialize_request(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "stdiopool-load", "version": env!("CARGO_PKG_VERSION")},
        },
    })
}

fn initialized_notification() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

/// Checks that `msg` is the successful response to request `id`; returns its `result`.
fn check_response(msg: &Value, id: u64) -> anyhow::Result<&Value> {
    ensure!(
        msg.get("jsonrpc").and_then(Value::as_str) == Some("2.0"),
        "not a JSON-RPC 2.0 message: {msg}"
    );
    let got = msg
        .get("id")
        .ok_or_else(|| anyhow!("response without id: {msg}"))?;
    ensure!(
        got.as_u64() == Some(id),
        "response id {got} for request {id}"
    );
    if let Some(err) = msg.get("error") {
        bail!("request {id} failed: {err}");
    }
    msg.get("result")
        .ok_or_else(|| anyhow!("response {id} without result: {msg}"))
}

/// Checks an echo result carries exactly `message` and is not a tool error.
fn check_echo(result: &Value, message: &str) -> anyhow::Result<()> {
    ensure!(
        result.get("isError").and_then(Value::as_bool) != Some(true),
        "tool error: {result}"
    );
    let text = result
        .pointer("/content/0/text")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("echo result without text content: {result}"))?;
    ensure!(text == message, "echo returned {text:?}, sent {message:?}");
    Ok(())
}
