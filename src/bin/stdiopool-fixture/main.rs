//! `stdiopool-fixture`: a small but real stdio MCP server used by the tests, the
//! benches and the proxy's `--demo` mode.
//!
//! It speaks newline-delimited JSON-RPC 2.0 on stdin/stdout exactly as the MCP
//! stdio transport asks, and offers tools whose behaviour exercises the proxy's
//! hard paths (slow calls, crashes, garbage on stdout, huge results, stderr
//! logging, server-to-client requests, progress). Command-line flags change how
//! the *process* behaves (ignoring stdin EOF or SIGTERM, slow start, exit at
//! start, a wrapper level like `npx` → `node`).
//!
//! Invariant: every line written to stdout is one whole JSON-RPC message (all
//! writes go through one mutex-guarded writer, one line per lock), except the
//! deliberate non-JSON line of the `garbage` tool. It depends only on
//! `serde_json` and `nix`, never on the library, so it builds on its own.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

mod header_tools;
mod process;
mod structured;
use process::{ignore_sigterm, run_wrapper};

/// Protocol versions the fixture accepts; the first is its latest.
const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Largest result the `huge` tool agrees to build, so a typo cannot exhaust memory.
const HUGE_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// How long `ask_roots` waits for the client's answer.
const ASK_ROOTS_TIMEOUT: Duration = Duration::from_secs(30);

const USAGE: &str = "usage: stdiopool-fixture [--name <s>] [--ignore-stdin-eof] [--ignore-sigterm] \
[--slow-start <ms>] [--exit-at-start <code>] [--wrapper]";

#[derive(Debug, Default)]
struct Options {
    name: Option<String>,
    ignore_stdin_eof: bool,
    ignore_sigterm: bool,
    slow_start_ms: Option<u64>,
    exit_at_start: Option<i32>,
    wrapper: bool,
}

fn parse_options(args: &[OsString]) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format!("argument is not UTF-8: {arg:?}"))?;
        let mut value = |flag: &str| -> Result<String, String> {
            it.next()
                .and_then(|v| v.to_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg {
            "--name" => opts.name = Some(value(arg)?),
            "--ignore-stdin-eof" => opts.ignore_stdin_eof = true,
            "--ignore-sigterm" => opts.ignore_sigterm = true,
            "--slow-start" => {
                let v = value(arg)?;
                opts.slow_start_ms = Some(v.parse().map_err(|_| format!("bad --slow-start: {v}"))?);
            }
            "--exit-at-start" => {
                let v = value(arg)?;
                opts.exit_at_start =
                    Some(v.parse().map_err(|_| format!("bad --exit-at-start: {v}"))?);
            }
            "--wrapper" => opts.wrapper = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument: {other}\n{USAGE}")),
        }
    }
    Ok(opts)
}

pub fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let opts = match parse_options(&args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("stdiopool-fixture: {msg}");
            std::process::exit(2);
        }
    };
    if opts.wrapper {
        run_wrapper(&args);
    }
    if let Some(code) = opts.exit_at_start {
        eprintln!("stdiopool-fixture: exiting at start with code {code} (--exit-at-start)");
        std::process::exit(code);
    }
    if opts.ignore_sigterm {
        ignore_sigterm();
    }
    if let Some(ms) = opts.slow_start_ms {
        std::thread::sleep(Duration::from_millis(ms));
    }
    let server = Arc::new(Server::new(opts.name.clone()));
    server.log(&format!("started, pid {}", std::process::id()));
    serve(&server);
    if opts.ignore_stdin_eof {
        server.log("stdin closed; ignoring it (--ignore-stdin-eof)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    server.log("stdin closed; exiting");
    // Hold the writer so no other thread is half-way through a line.
    let _out = server.out();
    std::process::exit(0);
}

/// Shared state of the running server: the stdout writer, and the
/// server-to-client requests waiting for their response.
struct Server {
    name: Option<String>,
    stdout: Mutex<std::io::Stdout>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    /// `requestId`s of the `notifications/cancelled` received, in order.
    cancelled: Mutex<Vec<Value>>,
}

impl Server {
    fn new(name: Option<String>) -> Self {
        Server {
            name,
            stdout: Mutex::new(std::io::stdout()),
            next_id: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(Vec::new()),
        }
    }

    fn out(&self) -> MutexGuard<'_, std::io::Stdout> {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Value>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one line to stdout. A closed stdout means the client is gone, so
    /// the server ends.
    fn write_line(&self, line: &[u8]) {
        let mut out = self.out();
        let res = out
            .write_all(line)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if res.is_err() {
            std::process::exit(0);
        }
    }

    fn send(&self, msg: &Value) {
        match serde_json::to_vec(msg) {
            Ok(bytes) => self.write_line(&bytes),
            Err(e) => self.log(&format!("cannot serialize a message: {e}")),
        }
    }

    fn log(&self, msg: &str) {
        let who = self.name.as_deref().unwrap_or("stdiopool-fixture");
        // Not `eprintln!`: it panics when stderr is closed, and a client that
        // stopped reading stderr must not change how the server behaves.
        let _ = writeln!(std::io::stderr(), "{who}: {msg}");
    }

    fn reply(&self, id: &Value, result: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    fn reply_error(&self, id: &Value, code: i64, message: &str) {
        self.send(
            &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
        );
    }

    /// Sends a server-to-client request; the answer arrives on the receiver.
    /// Registering before sending (on the reading thread) means the answer can
    /// never arrive before its waiter exists.
    fn request_client(&self, method: &str, params: Option<Value>) -> (u64, mpsc::Receiver<Value>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.pending().insert(id.to_string(), tx);
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(p) = params {
            msg["params"] = p;
        }
        self.send(&msg);
        (id, rx)
    }

    fn await_client(&self, id: u64, rx: &mpsc::Receiver<Value>) -> Result<Value, String> {
        let answer = rx.recv_timeout(ASK_ROOTS_TIMEOUT);
        self.pending().remove(&id.to_string());
        answer.map_err(|_| format!("no answer to request {id} within {ASK_ROOTS_TIMEOUT:?}"))
    }
}

fn serve(server: &Arc<Server>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                server.log(&format!("stdin read error: {e}"));
                return;
            }
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        handle_line(server, text);
    }
}

fn handle_line(server: &Arc<Server>, line: &[u8]) {
    let msg: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            server.reply_error(&Value::Null, -32700, &format!("Parse error: {e}"));
            return;
        }
    };
    let Some(obj) = msg.as_object() else {
        server.reply_error(&Value::Null, -32600, "Invalid Request: not a JSON object");
        return;
    };
    match (obj.get("method"), obj.get("id")) {
        (Some(Value::String(method)), Some(id)) if !id.is_null() => {
            let params = obj.get("params").cloned().unwrap_or(Value::Null);
            handle_request(server, id.clone(), method, params);
        }
        (Some(Value::String(method)), None) if method == "notifications/cancelled" => {
            let request_id = obj
                .get("params")
                .and_then(|p| p.get("requestId"))
                .cloned()
                .unwrap_or(Value::Null);
            server.log(&format!("cancelled request {request_id}"));
            server
                .cancelled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request_id);
        }
        // Other notifications (initialized, roots/list_changed...) need no answer.
        (Some(Value::String(_)), None) => {}
        (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
            let key = match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Some(tx) = server.pending().remove(&key) {
                // The waiter may have timed out; then the answer is simply dropped.
                let _ = tx.send(msg.clone());
            }
        }
        _ => server.reply_error(
            obj.get("id").unwrap_or(&Value::Null),
            -32600,
            "Invalid Request",
        ),
    }
}

fn handle_request(server: &Arc<Server>, id: Value, method: &str, params: Value) {
    match method {
        "initialize" => {
            let requested = params.get("protocolVersion").and_then(Value::as_str);
            let version = requested
                .filter(|v| SUPPORTED_VERSIONS.contains(v))
                .unwrap_or(SUPPORTED_VERSIONS[0]);
            let mut info =
                json!({"name": "stdiopool-fixture", "version": env!("CARGO_PKG_VERSION")});
            if let Some(name) = &server.name {
                info["title"] = json!(name);
            }
            server.reply(
                &id,
                json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {"listChanged": false}, "logging": {}},
                    "serverInfo": info,
                }),
            );
        }
        "ping" | "logging/setLevel" => server.reply(&id, json!({})),
        "tools/list" => server.reply(&id, json!({"tools": header_tools::with(tool_list())})),
        "tools/call" => call_tool(server, id, params),
        _ => server.reply_error(&id, -32601, &format!("Method not found: {method}")),
    }
}

fn tool_list() -> Value {
    let tool = |name: &str, description: &str, properties: Value, required: &[&str]| {
        json!({
            "name": name,
            "description": description,
            "inputSchema": {"type": "object", "properties": properties, "required": required},
        })
    };
    json!([
        tool(
            "echo",
            "Returns its message as text.",
            json!({"message": {"type": "string"}}),
            &["message"]
        ),
        tool(
            "sleep",
            "Answers after the given number of milliseconds.",
            json!({"ms": {"type": "integer", "minimum": 0}}),
            &["ms"]
        ),
        tool(
            "crash",
            "Exits the process without answering.",
            json!({"code": {"type": "integer"}}),
            &[]
        ),
        tool(
            "garbage",
            "Writes a non-JSON line on stdout, then answers.",
            json!({"text": {"type": "string"}}),
            &[]
        ),
        tool(
            "huge",
            "Returns a text result of the given size in bytes.",
            json!({"bytes": {"type": "integer", "minimum": 0}}),
            &["bytes"]
        ),
        tool(
            "structured",
            "Returns a result of about the given size in bytes whose bulk is structuredContent.",
            json!({"bytes": {"type": "integer", "minimum": 0}}),
            &["bytes"]
        ),
        tool(
            "verbatim",
            "Answers with the given JSON text as its result, written as it is in an envelope with odd member order and spacing.",
            json!({"result": {"type": "string"}}),
            &["result"]
        ),
        tool(
            "log",
            "Writes lines to stderr, then answers.",
            json!({"message": {"type": "string"}, "lines": {"type": "integer", "minimum": 0}}),
            &["message"]
        ),
        tool("pid", "Returns the server's process id.", json!({}), &[]),
        tool(
            "cancellations",
            "Returns the requestIds of the notifications/cancelled received so far.",
            json!({}),
            &[]
        ),
        tool(
            "ping_client",
            "Sends a ping request to the client and returns the answer.",
            json!({}),
            &[]
        ),
        tool(
            "notify",
            "Sends a notifications/message before the result.",
            json!({}),
            &[]
        ),
        tool(
            "ask_roots",
            "Asks the client for roots/list and returns the answer.",
            json!({}),
            &[]
        ),
        tool(
            "progress",
            "Sends notifications/progress steps, then answers.",
            json!({"steps": {"type": "integer", "minimum": 0}}),
            &["steps"]
        ),
        tool(
            "fail",
            "Returns a tool error (isError: true).",
            json!({"message": {"type": "string"}}),
            &[]
        ),
    ])
}

fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": false})
}

fn call_tool(server: &Arc<Server>, id: Value, params: Value) {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        server.reply_error(
            &id,
            -32602,
            "Invalid params: tools/call needs a string `name`",
        );
        return;
    };
    let args = params
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let str_arg = |key: &str| args.get(key).and_then(Value::as_str);
    let int_arg = |key: &str| args.get(key).and_then(Value::as_u64);
    match name {
        "echo" => match str_arg("message") {
            Some(m) => server.reply(&id, text_result(m)),
            None => {
                server.reply_error(&id, -32602, "Invalid params: echo needs a string `message`")
            }
        },
        "sleep" => match int_arg("ms") {
            Some(ms) => {
                server.log(&format!("sleep {ms} ms for request {id}"));
                let server = Arc::clone(server);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    server.reply(&id, text_result(format!("slept {ms} ms")));
                });
            }
            None => server.reply_error(&id, -32602, "Invalid params: sleep needs an integer `ms`"),
        },
        "crash" => {
            let code = args.get("code").and_then(Value::as_i64).unwrap_or(1);
            server.log(&format!("crashing on request with code {code}"));
            // Hold the writer so the exit never cuts a line in half.
            let _out = server.out();
            std::process::exit(i32::try_from(code).unwrap_or(1));
        }
        "garbage" => {
            let text = str_arg("text").unwrap_or("this line is not JSON");
            let one_line = text.replace(['\n', '\r'], " ");
            server.write_line(one_line.as_bytes());
            server.reply(&id, text_result("wrote a garbage line"));
        }
        "huge" => match int_arg("bytes") {
            Some(n) if n <= HUGE_MAX_BYTES => {
                let len = usize::try_from(n).unwrap_or(0);
                server.reply(&id, text_result("x".repeat(len)));
            }
            Some(n) => server.reply_error(
                &id,
                -32602,
                &format!("Invalid params: huge is capped at {HUGE_MAX_BYTES} bytes, got {n}"),
            ),
            None => {
                server.reply_error(&id, -32602, "Invalid params: huge needs an integer `bytes`")
            }
        },
        "structured" => match int_arg("bytes") {
            Some(n) if n <= structured::STRUCTURED_MAX_BYTES => {
                let len = usize::try_from(n).unwrap_or(0);
                server.write_line(structured::structured_reply(&id, len).as_bytes());
            }
            _ => server.reply_error(
                &id,
                -32602,
                "Invalid params: structured needs `bytes` ≤ 512 MiB",
            ),
        },
        // For the proxy's pass-through tests: the line is built as text, so
        // nothing here normalises the result (only newlines, which would
        // end the line early, become spaces).
        "verbatim" => match str_arg("result") {
            Some(text) => {
                let id = serde_json::to_string(&id).unwrap_or_else(|_| "null".to_owned());
                let text = text.replace(['\n', '\r'], " ");
                let line = format!(r#"{{ "result" : {text} ,"id": {id}, "jsonrpc":"2.0"}}"#);
                server.write_line(line.as_bytes());
            }
            None => server.reply_error(
                &id,
                -32602,
                "Invalid params: verbatim needs a string `result`",
            ),
        },
        "log" => match str_arg("message") {
            Some(m) => {
                let lines = int_arg("lines").unwrap_or(1);
                let stderr = std::io::stderr();
                let mut err = stderr.lock();
                for _ in 0..lines {
                    // A closed stderr is not the client's problem.
                    let _ = writeln!(err, "{m}");
                }
                drop(err);
                server.reply(&id, text_result(format!("logged {lines} lines")));
            }
            None => server.reply_error(&id, -32602, "Invalid params: log needs a string `message`"),
        },
        "pid" => {
            let pid = std::process::id();
            let mut result = text_result(pid.to_string());
            result["structuredContent"] = json!({"pid": pid});
            server.reply(&id, result);
        }
        "notify" => {
            server.send(&json!({
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": {"level": "info", "logger": "stdiopool-fixture", "data": "notify tool called"},
            }));
            server.reply(&id, text_result("notified"));
        }
        "cancellations" => {
            let ids = server
                .cancelled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut result = text_result(Value::Array(ids.clone()).to_string());
            result["structuredContent"] = json!({"cancelled": ids});
            server.reply(&id, result);
        }
        "ask_roots" | "ping_client" => {
            let method = if name == "ask_roots" {
                "roots/list"
            } else {
                "ping"
            };
            let (req_id, rx) = server.request_client(method, None);
            let server = Arc::clone(server);
            std::thread::spawn(move || match server.await_client(req_id, &rx) {
                Ok(answer) => {
                    let body = answer
                        .get("result")
                        .or_else(|| answer.get("error"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let is_error = answer.get("error").is_some();
                    let mut result = text_result(body.to_string());
                    result["isError"] = json!(is_error);
                    server.reply(&id, result);
                }
                Err(e) => {
                    let mut result = text_result(e);
                    result["isError"] = json!(true);
                    server.reply(&id, result);
                }
            });
        }
        "progress" => match int_arg("steps") {
            Some(steps) => {
                let token = params
                    .get("_meta")
                    .and_then(|m| m.get("progressToken"))
                    .cloned();
                if let Some(token) = token {
                    for step in 1..=steps {
                        server.send(&json!({
                            "jsonrpc": "2.0",
                            "method": "notifications/progress",
                            "params": {"progressToken": token, "progress": step, "total": steps},
                        }));
                    }
                }
                server.reply(&id, text_result(format!("done {steps} steps")));
            }
            None => server.reply_error(
                &id,
                -32602,
                "Invalid params: progress needs an integer `steps`",
            ),
        },
        "fail" => {
            let mut result =
                text_result(str_arg("message").unwrap_or("the fail tool always fails"));
            result["isError"] = json!(true);
            server.reply(&id, result);
        }
        other => header_tools::call(server, &id, other, &args),
    }
}
