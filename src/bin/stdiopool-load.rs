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
//! Invariant: every response is checked (status, content type, JSON-RPC id,
//! echoed text, no `isError`); a wrong or missing one is counted as an error,
//! and any error makes the exit status non-zero. The run is bounded both in
//! requests (`--requests`) and in time (`--duration`, per-request `--timeout`).

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
use tokio::process::{Child, ChildStdin, Command};
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

/// What one worker measured.
#[derive(Default)]
struct WorkerResult {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl WorkerResult {
    fn record(&mut self, outcome: anyhow::Result<()>, started: Instant) {
        match outcome {
            Ok(()) => self
                .latencies_ns
                .push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
    }
}

/// The results of one run.
struct Report {
    target: &'static str,
    ok: u64,
    errors: u64,
    first_error: String,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
    replies_json: usize,
    replies_sse: usize,
    sessions_opened: usize,
}

impl Report {
    fn new(target: &'static str, results: Vec<WorkerResult>, elapsed: Duration) -> Self {
        let mut latencies_ns = Vec::new();
        let mut errors = 0;
        let mut first_error = String::new();
        for r in results {
            latencies_ns.extend(r.latencies_ns);
            errors += r.errors;
            if first_error.is_empty() {
                first_error = r.first_error.unwrap_or_default();
            }
        }
        latencies_ns.sort_unstable();
        Report {
            target,
            ok: latencies_ns.len() as u64,
            errors,
            first_error,
            elapsed,
            latencies_ns,
            replies_json: 0,
            replies_sse: 0,
            sessions_opened: 0,
        }
    }

    /// Nearest-rank percentile, in microseconds.
    fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        let rank = (p / 100.0 * self.latencies_ns.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.latencies_ns.len()) - 1;
        self.latencies_ns[idx] as f64 / 1000.0
    }

    fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    fn mean_us(&self) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        self.latencies_ns.iter().map(|&n| n as f64).sum::<f64>()
            / self.latencies_ns.len() as f64
            / 1000.0
    }

    fn summary(&self, common: &Common) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{label}{target} c={c}: {ok} ok, {err} errors in {secs:.2}s = {rps:.1} req/s; \
             latency p50 {p50:.0} us, p99 {p99:.0} us, p999 {p999:.0} us, max {max:.0} us",
            label = if common.label.is_empty() {
                String::new()
            } else {
                format!("[{}] ", common.label)
            },
            target = self.target,
            c = common.concurrency,
            ok = self.ok,
            err = self.errors,
            secs = self.elapsed.as_secs_f64(),
            rps = self.rps(),
            p50 = self.percentile_us(50.0),
            p99 = self.percentile_us(99.0),
            p999 = self.percentile_us(99.9),
            max = self.percentile_us(100.0),
        );
        if self.target == "http" {
            let _ = write!(
                s,
                "; replies {} json / {} sse; {} sessions opened",
                self.replies_json, self.replies_sse, self.sessions_opened
            );
        }
        if self.errors > 0 {
            let _ = write!(s, "; first error: {}", self.first_error);
        }
        s
    }

    fn to_json(&self, common: &Common) -> Value {
        json!({
            "label": common.label,
            "target": self.target,
            "concurrency": common.concurrency,
            "requests_asked": common.requests,
            "warmup": common.warmup,
            "payload_bytes": common.payload_bytes,
            "ok": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rps": self.rps(),
            "mean_us": self.mean_us(),
            "p50_us": self.percentile_us(50.0),
            "p99_us": self.percentile_us(99.0),
            "p999_us": self.percentile_us(99.9),
            "max_us": self.percentile_us(100.0),
            "replies_json": self.replies_json,
            "replies_sse": self.replies_sse,
            "sessions_opened": self.sessions_opened,
        })
    }
}

// ---------------------------------------------------------------- http

/// A JSON-RPC reply body, as the proxy sent it.
enum Reply {
    Json(Value),
    /// The `data` of every `message` event, in order.
    Sse(Vec<Value>),
}

/// One virtual client's keep-alive connection to the endpoint.
struct HttpClient {
    authority: String,
    path: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    counts: Arc<ReplyCounts>,
}

#[derive(Default)]
struct ReplyCounts {
    json: AtomicUsize,
    sse: AtomicUsize,
}

/// An MCP session as the client sees it.
#[derive(Clone)]
struct SessionInfo {
    id: Option<String>,
    protocol_version: String,
}

impl SessionInfo {
    /// What a modern client holds instead of a session: only its version.
    fn modern() -> SessionInfo {
        SessionInfo {
            id: None,
            protocol_version: MODERN_VERSION.to_owned(),
        }
    }

    fn is_modern(&self) -> bool {
        self.protocol_version == MODERN_VERSION
    }
}

impl HttpClient {
    fn new(url: &Uri, counts: Arc<ReplyCounts>) -> anyhow::Result<Self> {
        ensure!(
            url.scheme_str() == Some("http"),
            "only http:// URLs are supported: {url}"
        );
        let authority = url
            .authority()
            .ok_or_else(|| anyhow!("URL without host: {url}"))?
            .to_string();
        Ok(HttpClient {
            authority,
            path: url.path().to_owned(),
            sender: None,
            counts,
        })
    }

    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let alive = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        if !alive {
            let tcp = TcpStream::connect(&self.authority)
                .await
                .with_context(|| format!("connecting to {}", self.authority))?;
            tcp.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                // The connection ends when the sender is dropped or the peer closes.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// POSTs one message; returns the status, the session id header and the reply.
    async fn post(
        &mut self,
        session: Option<&SessionInfo>,
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Option<String>, Option<Reply>)> {
        let mut req = Request::post(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json");
        if let Some(s) = session {
            if let Some(id) = &s.id {
                req = req.header("mcp-session-id", id.as_str());
            }
            req = req.header("mcp-protocol-version", s.protocol_version.as_str());
            if s.is_modern() {
                // The routing headers mirror the body (2026-07-28).
                if let Some(method) = body.get("method").and_then(Value::as_str) {
                    req = req.header("mcp-method", method);
                }
                if let Some(name) = body.pointer("/params/name").and_then(Value::as_str) {
                    req = req.header("mcp-name", name);
                }
            }
        }
        let req = req.body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let sender = self.sender().await?;
        sender.ready().await?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = resp.status();
        let session_id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status == StatusCode::ACCEPTED || bytes.is_empty() {
            return Ok((status, session_id, None));
        }
        let reply = if content_type.starts_with("application/json") {
            self.counts.json.fetch_add(1, Ordering::Relaxed);
            Reply::Json(serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "HTTP {status}: body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?)
        } else if content_type.starts_with("text/event-stream") {
            self.counts.sse.fetch_add(1, Ordering::Relaxed);
            Reply::Sse(parse_sse(&bytes)?)
        } else {
            bail!("HTTP {status}: unexpected content type {content_type:?}");
        };
        Ok((status, session_id, Some(reply)))
    }

    /// Sends request `id` and returns its response's `result`, whether the
    /// reply was JSON or an SSE stream (where it must be the last message).
    async fn call(
        &mut self,
        session: Option<&SessionInfo>,
        body: &Value,
        id: u64,
    ) -> anyhow::Result<(Option<String>, Value)> {
        let (status, session_id, reply) = self.post(session, body).await?;
        let msg = match reply {
            Some(Reply::Json(v)) => v,
            Some(Reply::Sse(mut events)) => {
                // Events before the response may only be requests or
                // notifications (no id-carrying responses to anyone else).
                let last = events
                    .pop()
                    .ok_or_else(|| anyhow!("SSE reply to {id} without events"))?;
                for ev in &events {
                    ensure!(
                        ev.get("method").is_some(),
                        "SSE reply to {id} carried a foreign response: {ev}"
                    );
                }
                last
            }
            None => bail!("HTTP {status} without a body for request {id}"),
        };
        ensure!(
            status == StatusCode::OK,
            "HTTP {status} for request {id}: {msg}"
        );
        let result = check_response(&msg, id)?.clone();
        Ok((session_id, result))
    }

    async fn open_session(&mut self, ids: &IdSource, era: Era) -> anyhow::Result<SessionInfo> {
        if era == Era::Modern {
            return Ok(SessionInfo::modern());
        }
        let id = ids.next();
        let (session_id, result) = self.call(None, &initialize_request(id), id).await?;
        let protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("InitializeResult without protocolVersion: {result}"))?
            .to_owned();
        let session = SessionInfo {
            id: session_id,
            protocol_version,
        };
        let (status, _, _) = self
            .post(Some(&session), &initialized_notification())
            .await?;
        ensure!(
            status == StatusCode::ACCEPTED,
            "notifications/initialized answered with HTTP {status}"
        );
        Ok(session)
    }

    async fn close_session(&mut self, session: &SessionInfo) -> anyhow::Result<()> {
        let Some(id) = &session.id else {
            return Ok(());
        };
        let req = Request::delete(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header("mcp-session-id", id.as_str())
            .header("mcp-protocol-version", session.protocol_version.as_str())
            .body(Full::new(Bytes::new()))?;
        let sender = self.sender().await?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let _ = resp.into_body().collect().await?;
        ensure!(status.is_success(), "DELETE answered with HTTP {status}");
        Ok(())
    }
}

/// The `data` of each event of a complete SSE body, parsed as JSON. Comments
/// (keep-alives) and other fields are skipped; multi-line data is joined.
fn parse_sse(bytes: &[u8]) -> anyhow::Result<Vec<Value>> {
    let text = std::str::from_utf8(bytes).context("SSE body is not UTF-8")?;
    let mut events = Vec::new();
    let mut data = String::new();
    let mut has_data = false;
    let mut flush = |data: &mut String, has_data: &mut bool| -> anyhow::Result<()> {
        if *has_data {
            events.push(
                serde_json::from_str(data)
                    .with_context(|| format!("SSE data is not JSON: {data}"))?,
            );
        }
        data.clear();
        *has_data = false;
        Ok(())
    };
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            flush(&mut data, &mut has_data)?;
        } else if let Some(rest) = line.strip_prefix("data:") {
            if has_data {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            has_data = true;
        }
    }
    flush(&mut data, &mut has_data)?;
    Ok(events)
}

async fn run_http(args: HttpArgs) -> anyhow::Result<Report> {
    let common = &args.common;
    let counts = Arc::new(ReplyCounts::default());
    let ids = Arc::new(IdSource(AtomicU64::new(1)));
    let mut clients = Vec::new();
    for _ in 0..common.concurrency {
        clients.push(HttpClient::new(&args.url, Arc::clone(&counts))?);
    }
    let mut opened = 0;
    let era = args.era;

    // Idle sessions first, spread over the clients' connections.
    let mut idle_sessions = Vec::new();
    if args.open_sessions > 0 {
        let per = args.open_sessions.div_ceil(common.concurrency);
        let mut tasks = Vec::new();
        for (i, mut client) in clients.into_iter().enumerate() {
            let ids = Arc::clone(&ids);
            let n = per.min(args.open_sessions.saturating_sub(i as u64 * per));
            tasks.push(tokio::spawn(async move {
                let mut sessions = Vec::new();
                for _ in 0..n {
                    sessions.push(client.open_session(&ids, era).await?);
                }
                anyhow::Ok((client, sessions))
            }));
        }
        clients = Vec::new();
        for t in tasks {
            let (client, sessions) = t.await??;
            clients.push(client);
            idle_sessions.extend(sessions);
        }
        opened += idle_sessions.len();
    }

    // The sessions that carry the load.
    let shared = match args.sessions {
        SessionPolicy::Shared => {
            let first = clients.first_mut().ok_or_else(|| anyhow!("no client"))?;
            opened += usize::from(era == Era::Legacy);
            Some(first.open_session(&ids, args.era).await?)
        }
        SessionPolicy::PerClient => None,
    };
    let mut sessions = Vec::new();
    {
        let mut tasks = Vec::new();
        for mut client in clients {
            let ids = Arc::clone(&ids);
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                let session = match shared {
                    Some(s) => s,
                    None => client.open_session(&ids, era).await?,
                };
                anyhow::Ok((client, session))
            }));
        }
        for t in tasks {
            sessions.push(t.await??);
        }
        if shared.is_none() && era == Era::Legacy {
            opened += sessions.len();
        }
    }

    let payload_bytes = common.payload_bytes;
    let timeout = common.timeout;
    let drive = |sessions: Vec<(HttpClient, SessionInfo)>, schedule: Arc<Schedule>| {
        let ids = Arc::clone(&ids);
        async move {
            let mut tasks = Vec::new();
            for (worker, (mut client, session)) in sessions.into_iter().enumerate() {
                let schedule = Arc::clone(&schedule);
                let ids = Arc::clone(&ids);
                tasks.push(tokio::spawn(async move {
                    let mut result = WorkerResult::default();
                    while let Some(n) = schedule.take() {
                        let id = ids.next();
                        let message = payload(worker as u64, n, payload_bytes);
                        let body = echo_request(id, &message, &session);
                        let started = Instant::now();
                        let outcome =
                            tokio::time::timeout(timeout, client.call(Some(&session), &body, id))
                                .await
                                .map_err(|_| anyhow!("request {id} timed out after {timeout:?}"))
                                .and_then(|r| r)
                                .and_then(|(_, res)| check_echo(&res, &message));
                        if outcome.is_err() {
                            // The connection's state is unknown: start afresh.
                            client.sender = None;
                        }
                        result.record(outcome, started);
                    }
                    (client, session, result)
                }));
            }
            let mut back = Vec::new();
            let mut results = Vec::new();
            for t in tasks {
                let (client, session, result) = t.await?;
                back.push((client, session));
                results.push(result);
            }
            anyhow::Ok((back, results))
        }
    };

    let mut warm_errors = 0;
    if common.warmup > 0 {
        let (back, results) = drive(
            sessions,
            Arc::new(Schedule::new(common.warmup, common.duration)),
        )
        .await?;
        sessions = back;
        warm_errors = results.iter().map(|r| r.errors).sum::<u64>();
    }
    counts.json.store(0, Ordering::Relaxed);
    counts.sse.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let (mut sessions, results) = drive(
        sessions,
        Arc::new(Schedule::new(common.requests, common.duration)),
    )
    .await?;
    let elapsed = started.elapsed();
    let mut report = Report::new("http", results, elapsed);
    report.errors += warm_errors;
    report.replies_json = counts.json.load(Ordering::Relaxed);
    report.replies_sse = counts.sse.load(Ordering::Relaxed);
    report.sessions_opened = opened;

    if !args.keep_sessions {
        let mut ended = std::collections::HashSet::new();
        let mut to_end: Vec<SessionInfo> = idle_sessions;
        to_end.extend(sessions.iter().map(|(_, s)| s.clone()));
        if let Some((client, _)) = sessions.first_mut() {
            for s in to_end {
                if s.id.as_ref().is_some_and(|id| ended.insert(id.clone())) {
                    client.close_session(&s).await?;
                }
            }
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------- stdio

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A server process driven directly over its stdin/stdout.
struct StdioServer {
    child: Child,
    stdin: tokio::sync::Mutex<ChildStdin>,
    waiters: Waiters,
}

impl StdioServer {
    async fn spawn(command: &[String], timeout: Duration) -> anyhow::Result<Self> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| anyhow!("no command given"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {program}"))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let waiters: Waiters = Arc::default();
        let reader_waiters = Arc::clone(&waiters);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if msg.get("method").is_some() {
                    continue; // server notifications and requests: not ours to wait on
                }
                let Some(id) = msg.get("id").and_then(Value::as_u64) else {
                    continue;
                };
                let waiter = reader_waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if let Some(tx) = waiter {
                    let _ = tx.send(msg);
                }
            }
            // EOF: dropping the senders fails every waiter at once.
            reader_waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        });
        let server = StdioServer {
            child,
            stdin: tokio::sync::Mutex::new(stdin),
            waiters,
        };
        let init = tokio::time::timeout(timeout, server.call(0, &initialize_request(0)))
            .await
            .map_err(|_| anyhow!("initialize not answered within {timeout:?}"))??;
        check_response(&init, 0)?;
        server.send(&initialized_notification()).await?;
        Ok(server)
    }

    async fn send(&self, msg: &Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        Ok(())
    }

    async fn call(&self, id: u64, msg: &Value) -> anyhow::Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        if let Err(e) = self.send(msg).await {
            self.waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            return Err(e);
        }
        rx.await
            .map_err(|_| anyhow!("server closed stdout before answering {id}"))
    }

    /// Closes stdin (the MCP stdio shutdown), waits a little, then kills.
    async fn stop(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

async fn run_stdio(args: StdioArgs) -> anyhow::Result<Report> {
    let common = args.common;
    let server = Arc::new(StdioServer::spawn(&args.command, common.timeout).await?);
    let ids = Arc::new(IdSource(AtomicU64::new(1)));
    let legacy = SessionInfo {
        id: None,
        protocol_version: PROTOCOL_VERSION.to_owned(),
    };
    let drive = |limit: u64| {
        let schedule = Arc::new(Schedule::new(limit, common.duration));
        let mut tasks = Vec::new();
        for worker in 0..common.concurrency {
            let schedule = Arc::clone(&schedule);
            let server = Arc::clone(&server);
            let ids = Arc::clone(&ids);
            let (payload_bytes, timeout) = (common.payload_bytes, common.timeout);
            let legacy = legacy.clone();
            tasks.push(tokio::spawn(async move {
                let mut result = WorkerResult::default();
                while let Some(n) = schedule.take() {
                    let id = ids.next();
                    let message = payload(worker, n, payload_bytes);
                    // Straight to the server: its own (legacy) shape.
                    let body = echo_request(id, &message, &legacy);
                    let started = Instant::now();
                    let outcome = tokio::time::timeout(timeout, server.call(id, &body))
                        .await
                        .map_err(|_| anyhow!("request {id} timed out after {timeout:?}"))
                        .and_then(|r| r)
                        .and_then(|msg| {
                            let result = check_response(&msg, id)?;
                            check_echo(result, &message)
                        });
                    result.record(outcome, started);
                }
                result
            }));
        }
        async move {
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await?);
            }
            anyhow::Ok(results)
        }
    };
    let mut warm_errors = 0;
    if common.warmup > 0 {
        warm_errors = drive(common.warmup)
            .await?
            .iter()
            .map(|r| r.errors)
            .sum::<u64>();
    }
    let started = Instant::now();
    let results = drive(common.requests).await?;
    let mut report = Report::new("stdio", results, started.elapsed());
    report.errors += warm_errors;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
    Ok(report)
}
