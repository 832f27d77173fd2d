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
//! Invariant: every process a test starts is reaped before the test returns
//! (the guard's `Drop` kills what is left), and no wait is unbounded.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use stdiopool::accounting::{ProcStat, all_processes, proc_stat};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

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

// ---------------------------------------------------------------------------
// The proxy process
// ---------------------------------------------------------------------------

/// A running `stdiopool`; dropping it stops and reaps it.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub path: String,
    stderr: Arc<Mutex<String>>,
}

/// A proxy that did not come up: its exit status and what it said.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub stderr: String,
    pub stdout: String,
}

/// Arguments for `stdiopool`: `opts` before `--`, then the fixture with
/// `fixture_args`.
pub fn fixture_args(opts: &[&str], fixture_args: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = opts.iter().map(|s| (*s).to_owned()).collect();
    args.push("--".into());
    args.push(FIXTURE.into());
    args.extend(fixture_args.iter().map(|s| (*s).to_owned()));
    args
}

fn drain_into(
    mut reader: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}

impl ProxyProcess {
    /// Starts the proxy in front of the fixture (`opts`, then `-- fixture
    /// fixture_args`) on a free loopback port; panics if it does not come up.
    pub fn start(opts: &[&str], fixture: &[&str]) -> ProxyProcess {
        match Self::launch(&fixture_args(opts, fixture)) {
            Ok(p) => p,
            Err(f) => panic!(
                "stdiopool did not start ({}):\n{}{}",
                f.status, f.stdout, f.stderr
            ),
        }
    }

    /// Starts `stdiopool --listen 127.0.0.1:0 <args>` and waits for its
    /// banner; if it exits first, returns how it exited and what it said.
    pub fn launch(args: &[String]) -> Result<ProxyProcess, StartFailure> {
        let mut child = Command::new(BIN)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stdiopool");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_done = drain_into(child.stderr.take().unwrap(), stderr.clone());
        let stdout_text = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let seen = stdout_text.clone();
        let stdout_done = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                seen.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("connect an MCP client to: ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(LIMIT) {
            Ok(url) => {
                let rest = url.strip_prefix("http://").expect("http URL in the banner");
                let slash = rest.find('/').expect("a path in the banner URL");
                Ok(ProxyProcess {
                    child: Some(child),
                    addr: rest[..slash].parse().expect("an address in the banner"),
                    path: rest[slash..].to_owned(),
                    stderr,
                })
            }
            Err(_) => {
                // No banner: it exited (or hung, which the bound turns into a kill).
                let status = wait_bounded(&mut child, LIMIT).unwrap_or_else(|| {
                    let _ = child.kill();
                    child.wait().unwrap()
                });
                // Let the drain threads reach EOF (bounded, in case something
                // that inherited the pipes outlives the proxy).
                let (done, drained) = mpsc::channel();
                std::thread::spawn(move || {
                    let _ = stderr_done.join();
                    let _ = stdout_done.join();
                    let _ = done.send(());
                });
                let _ = drained.recv_timeout(Duration::from_secs(5));
                let stderr = stderr.lock().unwrap().clone();
                let stdout = stdout_text.lock().unwrap().clone();
                Err(StartFailure {
                    status,
                    stderr,
                    stdout,
                })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// What the proxy has logged so far (its logs and the fixture's stderr).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the proxy's stderr contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        let found = wait_until(LIMIT, || self.stderr().contains(needle)).await;
        assert!(
            found,
            "the proxy never logged {needle:?}; it logged:\n{}",
            self.stderr()
        );
    }

    /// Sends `signal` to the proxy.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits (bounded) for the proxy to exit and reaps it.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the proxy was already reaped");
        tokio::task::spawn_blocking(move || {
            wait_bounded(&mut child, LIMIT).unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the proxy did not exit within {LIMIT:?}");
            })
        })
        .await
        .unwrap()
    }

    /// `http://addr/path` for the MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// A POST to the MCP endpoint with a conforming client's headers.
    pub fn post(&self, body: impl Into<Vec<u8>>) -> Req {
        Req::new(self.addr, Method::POST, &self.path)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(body)
    }

    /// A request with `method` to the MCP endpoint and no other header than Host.
    pub fn request(&self, method: Method) -> Req {
        Req::new(self.addr, method, &self.path)
    }

    /// The current `/metrics`.
    pub async fn metrics(&self) -> Metrics {
        let reply = Req::new(self.addr, Method::GET, "/metrics").send().await;
        assert_eq!(reply.status, StatusCode::OK);
        Metrics::parse(&reply.text())
    }

    /// Waits until `/metrics` satisfies `cond`; returns the last scrape.
    pub async fn wait_metrics(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + LIMIT;
        loop {
            let m = self.metrics().await;
            if cond(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "metrics never showed {what}: {m:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            if wait_bounded(&mut child, LIMIT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("---- stdiopool stderr ----\n{}", self.stderr());
        }
    }
}

/// Polls `child` until it exits or `limit` passes.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms for at most `limit`; whether it became true.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// One HTTP request, sent on its own connection.
#[derive(Debug, Clone)]
pub struct Req {
    addr: SocketAddr,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    pub fn new(addr: SocketAddr, method: Method, path: &str) -> Req {
        Req {
            addr,
            method,
            path: path.to_owned(),
            headers: vec![("host".into(), addr.to_string())],
            body: Vec::new(),
        }
    }

    /// Sets `name` (replacing an earlier value).
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self = self.without(name);
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Removes `name`.
    pub fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// The same request with another method.
    pub fn method(mut self, method: Method) -> Req {
        self.method = method;
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }

    /// Sends the request and returns the response head with its body still
    /// streaming; the connection lives as long as the returned value (or,
    /// before the head, as long as this future).
    pub async fn open(self) -> Open {
        self.try_open()
            .await
            .unwrap_or_else(|e| panic!("HTTP exchange failed: {e}"))
    }

    /// [`Req::open`], with a failed exchange (refused, reset, closed before
    /// the head) as an error instead of a panic.
    pub async fn try_open(self) -> Result<Open, String> {
        tokio::time::timeout(LIMIT, async move {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            // Dropping this future before the head arrives closes the socket.
            let conn = AbortOnDrop(tokio::spawn(async move {
                let _ = conn.await;
            }));
            let mut builder = Request::builder().method(self.method).uri(self.path);
            for (name, value) in &self.headers {
                builder = builder.header(name, value);
            }
            let request = builder.body(Full::new(Bytes::from(self.body))).unwrap();
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let (parts, body) = response.into_parts();
            Ok(Open {
                status: parts.status,
                headers: parts.headers,
                body,
                conn,
            })
        })
        .await
        .expect("no response head within the limit")
    }

    /// Sends the request and reads the whole response.
    pub async fn send(self) -> Reply {
        let open = self.open().await;
        open.collect().await
    }

    /// [`Req::send`] without panicking on a failed exchange.
    pub async fn try_send(self) -> Result<Reply, String> {
        let open = self.try_open().await?;
        let body = tokio::time::timeout(LIMIT, open.body.collect())
            .await
            .expect("body not complete within the limit")
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: open.status,
            headers: open.headers,
            body,
        })
    }
}

/// Aborts the connection task (closing the socket) when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Open {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
    conn: AbortOnDrop,
}

impl Open {
    pub async fn collect(self) -> Reply {
        let body = tokio::time::timeout(LIMIT, self.body.collect())
            .await
            .expect("body not complete within the limit")
            .unwrap()
            .to_bytes();
        Reply {
            status: self.status,
            headers: self.headers,
            body,
        }
    }

    pub fn is_sse(&self) -> bool {
        content_type(&self.headers).starts_with("text/event-stream")
    }

    /// Reads the body as an SSE stream.
    pub fn sse(self) -> SseReader {
        SseReader {
            body: self.body,
            buf: Vec::new(),
            _conn: self.conn,
        }
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    }

    /// The body as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The JSON-RPC messages of the body, whether JSON or SSE.
    pub fn messages(&self) -> Vec<Value> {
        if content_type(&self.headers).starts_with("text/event-stream") {
            parse_sse(&self.text())
        } else if self.body.is_empty() {
            Vec::new()
        } else {
            vec![self.json()]
        }
    }

    /// The last message of the reply: the response to the request.
    pub fn response(&self) -> Value {
        self.messages()
            .pop()
            .unwrap_or_else(|| panic!("no message in the reply ({}): {}", self.status, self.text()))
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> i64 {
        self.json()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error code in {}", self.text()))
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The `data:` payloads of complete SSE events, as JSON.
pub fn parse_sse(text: &str) -> Vec<Value> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(event_data)
        .map(|d| {
            serde_json::from_str(&d).unwrap_or_else(|e| panic!("SSE data not JSON ({e}): {d}"))
        })
        .collect()
}

fn event_data(event: &str) -> Option<String> {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    (!data.is_empty()).then(|| data.join("\n"))
}

/// Reads SSE events one at a time from a streaming body.
#[derive(Debug)]
pub struct SseReader {
    body: Incoming,
    buf: Vec<u8>,
    _conn: AbortOnDrop,
}

impl SseReader {
    /// The next message, or `None` when the stream ends; panics after [`LIMIT`].
    pub async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(LIMIT, self.next_unbounded())
            .await
            .expect("no SSE event within the limit")
    }

    async fn next_unbounded(&mut self) -> Option<Value> {
        loop {
            let text = String::from_utf8_lossy(&self.buf).replace("\r\n", "\n");
            if let Some(end) = text.find("\n\n") {
                let event = text[..end].to_owned();
                self.buf = text.as_bytes()[end + 2..].to_vec();
                if let Some(data) = event_data(&event) {
                    return Some(serde_json::from_str(&data).unwrap());
                }
                continue; // a comment (keep-alive) or an event without data
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => return None,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// MCP
// ---------------------------------------------------------------------------

/// The protocol version the tests speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// A minimal MCP client session over the proxy.
#[derive(Debug)]
pub struct Mcp {
    addr: SocketAddr,
    path: String,
    pub session: String,
    pub token: Option<String>,
    next_id: AtomicU64,
}

/// An `initialize` request body with `capabilities`.
pub fn initialize_body(id: u64, capabilities: Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": capabilities,
            "clientInfo": {"name": "stdiopool-e2e", "version": "0"},
        },
    })
}

impl Mcp {
    /// Initializes a session (no client capabilities) and sends `initialized`.
    pub async fn connect(proxy: &ProxyProcess) -> Mcp {
        Self::connect_with(proxy, json!({}), None).await
    }

    /// Initializes a session with `capabilities` and an optional bearer token.
    pub async fn connect_with(
        proxy: &ProxyProcess,
        capabilities: Value,
        token: Option<&str>,
    ) -> Mcp {
        let mut req = proxy.post(initialize_body(0, capabilities).to_string());
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let reply = req.send().await;
        assert_eq!(reply.status, StatusCode::OK, "initialize: {}", reply.text());
        let response = reply.response();
        assert!(
            response.get("result").is_some(),
            "initialize failed: {response}"
        );
        let session = reply
            .header("mcp-session-id")
            .expect("initialize reply without Mcp-Session-Id")
            .to_owned();
        let mcp = Mcp {
            addr: proxy.addr,
            path: proxy.path.clone(),
            session,
            token: token.map(str::to_owned),
            next_id: AtomicU64::new(1),
        };
        let reply = mcp
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "initialized: {}",
            reply.text()
        );
        mcp
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A POST of `message` with this session's headers.
    pub fn post(&self, message: Value) -> Req {
        let mut req = Req::new(self.addr, Method::POST, &self.path)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(message.to_string());
        if let Some(t) = &self.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        req
    }

    /// A request with this session's headers and `method`, no body.
    pub fn request(&self, method: Method) -> Req {
        let mut req = Req::new(self.addr, method, &self.path)
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", PROTOCOL_VERSION);
        if let Some(t) = &self.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        req
    }

    /// The POST of a `tools/call` with id `id`.
    pub fn tool_req(&self, id: u64, name: &str, arguments: Value) -> Req {
        self.post(json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }))
    }

    /// Calls a tool; returns the whole HTTP reply.
    pub async fn call_tool_reply(&self, name: &str, arguments: Value) -> Reply {
        self.tool_req(self.next_id(), name, arguments).send().await
    }

    /// Calls a tool and returns the JSON-RPC response (checking its id).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Value {
        let id = self.next_id();
        let reply = self.tool_req(id, name, arguments).send().await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "tools/call {name}: {}",
            reply.text()
        );
        let response = reply.response();
        assert_eq!(
            response["id"],
            json!(id),
            "response for another id: {response}"
        );
        response
    }

    /// The pid of the server process that answered.
    pub async fn pid(&self) -> u32 {
        let response = self.call_tool("pid", json!({})).await;
        response["result"]["structuredContent"]["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("pid tool: {response}")) as u32
    }

    /// The `requestId`s of `notifications/cancelled` the answering process got.
    pub async fn cancellations(&self) -> Vec<Value> {
        let response = self.call_tool("cancellations", json!({})).await;
        response["result"]["structuredContent"]["cancelled"]
            .as_array()
            .unwrap_or_else(|| panic!("cancellations tool: {response}"))
            .clone()
    }

    /// DELETE of this session.
    pub async fn delete(&self) -> Reply {
        self.request(Method::DELETE).send().await
    }
}

/// The text of a tool result's first content item.
pub fn result_text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result in {response}"))
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// One scrape of `/metrics`: series (name with labels, as printed) → value.
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub HashMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut map = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((series, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse::<f64>() {
                    map.insert(series.to_owned(), v);
                }
            }
        }
        Metrics(map)
    }

    /// A series' value; 0 when absent (families never used are left out).
    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// `stdiopool_requests_total{method,outcome}`.
    pub fn requests(&self, method: &str, outcome: &str) -> f64 {
        self.get(&format!(
            "stdiopool_requests_total{{method=\"{method}\",outcome=\"{outcome}\"}}"
        ))
    }

    /// Requests counted with any outcome but `rejected`.
    pub fn requests_not_rejected(&self) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.starts_with("stdiopool_requests_total{") && !k.contains("outcome=\"rejected\"")
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// What shows whether a request touched a server process: creations,
    /// checkouts, spawns and every request not refused at the transport.
    pub fn touch_counts(&self) -> [(&'static str, f64); 4] {
        [
            ("created", self.get("stdiopool_pool_created_total")),
            ("recycled", self.get("stdiopool_pool_recycled_total")),
            ("spawned", self.get("stdiopool_process_spawned_total")),
            ("not rejected", self.requests_not_rejected()),
        ]
    }
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// Every descendant of `root` (children, grandchildren, ...), zombies included.
pub fn descendants(root: u32) -> Vec<ProcStat> {
    let all = all_processes().unwrap();
    let mut out: Vec<ProcStat> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if !out.iter().any(|o| o.pid == p.pid) {
                out.push(*p);
                frontier.push(p.pid);
            }
        }
    }
    out
}

/// Whether `pid` exists at all (running or zombie).
pub fn exists(pid: u32) -> bool {
    proc_stat(pid).is_some()
}

/// Waits until `pid` is gone from `/proc`.
pub async fn wait_gone(pid: u32) -> bool {
    wait_until(LIMIT, || !exists(pid)).await
}
