//! End to end, the legacy HTTP+SSE transport (MCP 2024-11-05) at `/sse` and
//! `/messages`, in both modes, against the real binary and fixture: the
//! `endpoint` event, the handshake and tool calls answered on the stream,
//! server messages on the stream, the stream's end ending the session, and
//! the refusals (unknown session, Origin, token, the stream cap).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use std::net::SocketAddr;

use e2e_support::{
    LIMIT, MODES, Mcp, Open, ProxyProcess, Reply, Req, TempFile, result_text, wait_gone,
};
use http_body_util::BodyExt;
use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "legacy-sse-e2e-token-0123456789";

/// The protocol version of the legacy transport.
const LEGACY_VERSION: &str = "2024-11-05";

fn proxy(mode: &str, extra: &[&str]) -> ProxyProcess {
    let mut opts = vec!["--mode", mode, "--pool-size", "2", "--min-idle", "1"];
    opts.extend_from_slice(extra);
    ProxyProcess::start(&opts, &[])
}

/// One SSE event: its name and data.
#[derive(Debug)]
struct Event {
    name: String,
    data: String,
}

/// A legacy client: the open stream and the endpoint it was given.
struct Legacy {
    addr: SocketAddr,
    token: Option<String>,
    endpoint: String,
    /// The stream's response; it holds the connection open.
    stream: Open,
    buf: String,
    next_id: u64,
}

/// `GET /sse` as the SDK clients send it.
fn sse_get(addr: SocketAddr) -> Req {
    Req::new(addr, Method::GET, "/sse").header("accept", "text/event-stream")
}

impl Legacy {
    /// Opens the stream and reads the `endpoint` event.
    async fn open(proxy: &ProxyProcess, token: Option<&str>) -> Legacy {
        let mut req = sse_get(proxy.addr);
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let open = req.open().await;
        assert_eq!(open.status, StatusCode::OK);
        assert!(open.is_sse(), "{:?}", open.headers);
        let mut legacy = Legacy {
            addr: proxy.addr,
            token: token.map(str::to_owned),
            endpoint: String::new(),
            stream: open,
            buf: String::new(),
            next_id: 1,
        };
        let first = legacy.event().await.expect("the stream ended at once");
        assert_eq!(first.name, "endpoint", "{first:?}");
        legacy.endpoint = first.data;
        legacy
    }

    /// The next event, or `None` when the stream ends; panics after [`LIMIT`].
    async fn event(&mut self) -> Option<Event> {
        tokio::time::timeout(LIMIT, self.event_unbounded())
            .await
            .expect("no SSE event within the limit")
    }

    async fn event_unbounded(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(Event {
                    name,
                    data: data.join("\n"),
                });
            }
            match self.stream.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(bytes) = frame.into_data() {
                        self.buf
                            .push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n"));
                    }
                }
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next `message` event's JSON.
    async fn message(&mut self) -> Value {
        let event = self.event().await.expect("the stream ended");
        assert_eq!(event.name, "message", "{event:?}");
        serde_json::from_str(&event.data).unwrap()
    }

    /// A POST of `message` to the endpoint.
    fn post_req(&self, message: &Value) -> Req {
        let mut req = Req::new(self.addr, Method::POST, &self.endpoint)
            .header("content-type", "application/json")
            .body(message.to_string());
        if let Some(t) = &self.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        req
    }

    async fn post(&self, message: &Value) -> Reply {
        self.post_req(message).send().await
    }

    /// Sends a request; returns what came on the stream before its
    /// response, and the response.
    async fn request(&mut self, method: &str, params: Value) -> (Vec<Value>, Value) {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = self.post(&body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        let mut before = Vec::new();
        loop {
            let message = self.message().await;
            if message["id"] == json!(id) && message.get("method").is_none() {
                return (before, message);
            }
            before.push(message);
        }
    }

    /// The handshake, with `capabilities`; returns the initialize result.
    async fn initialize(&mut self, capabilities: Value) -> Value {
        let params = json!({
            "protocolVersion": LEGACY_VERSION,
            "capabilities": capabilities,
            "clientInfo": {"name": "stdiopool-e2e-legacy", "version": "0"},
        });
        let (_, response) = self.request("initialize", params).await;
        let reply = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        response["result"].clone()
    }

    async fn call_tool(&mut self, name: &str, arguments: Value) -> (Vec<Value>, Value) {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }

    async fn pid(&mut self) -> u32 {
        let (_, response) = self.call_tool("pid", json!({})).await;
        result_text(&response).parse().unwrap()
    }
}

#[tokio::test]
async fn the_handshake_and_a_tool_call_in_both_modes() {
    for mode in MODES {
        let proxy = proxy(mode, &[]);
        let mut legacy = Legacy::open(&proxy, None).await;
        assert!(
            legacy.endpoint.starts_with("/messages?session_id="),
            "{mode}: {}",
            legacy.endpoint
        );
        let result = legacy.initialize(json!({})).await;
        assert_eq!(
            result["protocolVersion"], LEGACY_VERSION,
            "{mode}: {result}"
        );
        assert_eq!(result["serverInfo"]["name"], "stdiopool-fixture", "{mode}");
        let (_, response) = legacy
            .call_tool("echo", json!({"message": "over the legacy transport"}))
            .await;
        assert_eq!(
            result_text(&response),
            "over the legacy transport",
            "{mode}"
        );
        // The client's ids come back as sent, and a ping is answered too.
        let (_, pong) = legacy.request("ping", json!({})).await;
        assert_eq!(pong["result"], json!({}), "{mode}");
        let m = proxy.metrics().await;
        assert_eq!(m.get("stdiopool_sessions"), 1.0, "{mode}");
        assert_eq!(m.requests("tools/call", "ok"), 1.0, "{mode}");
        if mode == "session" {
            // The session owns its process: every call lands on it.
            let pid = legacy.pid().await;
            assert_eq!(legacy.pid().await, pid);
        }
    }
}

#[tokio::test]
async fn a_server_notification_is_delivered_on_the_stream() {
    for mode in MODES {
        let proxy = proxy(mode, &[]);
        let mut legacy = Legacy::open(&proxy, None).await;
        legacy.initialize(json!({})).await;
        let (before, response) = legacy.call_tool("notify", json!({})).await;
        assert_eq!(result_text(&response), "notified", "{mode}");
        assert_eq!(before.len(), 1, "{mode}: {before:?}");
        assert_eq!(before[0]["method"], "notifications/message", "{mode}");
        assert_eq!(before[0]["params"]["data"], "notify tool called", "{mode}");
    }
}

#[tokio::test]
async fn a_server_request_is_relayed_on_the_stream_and_answered_by_post() {
    for mode in MODES {
        let proxy = proxy(mode, &[]);
        let mut legacy = Legacy::open(&proxy, None).await;
        legacy.initialize(json!({"roots": {}})).await;
        let call = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
            "params": {"name": "ask_roots", "arguments": {}}});
        assert_eq!(legacy.post(&call).await.status, StatusCode::ACCEPTED);
        let asked = legacy.message().await;
        assert_eq!(asked["method"], "roots/list", "{mode}: {asked}");
        let roots = json!({"roots": [{"uri": "file:///legacy", "name": "legacy"}]});
        let answer = json!({"jsonrpc": "2.0", "id": asked["id"], "result": roots});
        assert_eq!(legacy.post(&answer).await.status, StatusCode::ACCEPTED);
        let response = legacy.message().await;
        assert_eq!(response["id"], 99, "{mode}: {response}");
        assert!(
            result_text(&response).contains("file:///legacy"),
            "{mode}: {response}"
        );
    }
}

#[tokio::test]
async fn closing_the_stream_in_session_mode_ends_the_session_and_its_process() {
    let proxy = proxy("session", &[]);
    let mut legacy = Legacy::open(&proxy, None).await;
    legacy.initialize(json!({})).await;
    let pid = legacy.pid().await;
    let stale = legacy.post_req(&json!({"jsonrpc": "2.0", "id": 50, "method": "ping"}));
    assert_eq!(proxy.metrics().await.get("stdiopool_sessions"), 1.0);
    drop(legacy);
    proxy
        .wait_metrics("the session ended", |m| {
            m.get("stdiopool_sessions") == 0.0
                && m.get("stdiopool_sessions_ended_total{reason=\"delete\"}") == 1.0
        })
        .await;
    assert!(
        wait_gone(pid).await,
        "the session's process {pid} is still alive"
    );
    let reply = stale.send().await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
}

#[tokio::test]
async fn closing_the_stream_in_pooled_mode_cancels_what_is_in_flight() {
    let proxy = proxy("pooled", &["--request-timeout", "5m"]);
    let mut legacy = Legacy::open(&proxy, None).await;
    legacy.initialize(json!({})).await;
    let slow = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 600_000}}});
    assert_eq!(legacy.post(&slow).await.status, StatusCode::ACCEPTED);
    proxy
        .wait_metrics("the slow call holds a process", |m| {
            m.get("stdiopool_pool_in_use") == 1.0
        })
        .await;
    drop(legacy);
    // The call is cancelled and its process goes back to the pool, long
    // before the tool would have finished.
    // (The call is recorded a moment after its process is back.)
    proxy
        .wait_metrics(
            "the session ended, the process came back, the call was cancelled",
            |m| {
                m.get("stdiopool_sessions") == 0.0
                    && m.get("stdiopool_pool_in_use") == 0.0
                    && m.requests("tools/call", "cancelled") == 1.0
            },
        )
        .await;
    // The server was told: the next client finds the cancellation there.
    let mcp = Mcp::connect(&proxy).await;
    let mut seen = false;
    for _ in 0..4 {
        if !mcp.cancellations().await.is_empty() {
            seen = true;
            break;
        }
    }
    assert!(seen, "no process saw notifications/cancelled");
}

#[tokio::test]
async fn an_unknown_or_missing_session_is_refused() {
    for mode in MODES {
        let proxy = proxy(mode, &[]);
        let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
        let post = |path: &str| {
            Req::new(proxy.addr, Method::POST, path)
                .header("content-type", "application/json")
                .body(ping.clone())
        };
        let unknown = post("/messages?session_id=0123456789abcdef0123456789abcdef")
            .send()
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{mode}");
        assert_eq!(unknown.error_code(), -32005, "{mode}");
        let malformed = post("/messages?session_id=nope").send().await;
        assert_eq!(malformed.status, StatusCode::NOT_FOUND, "{mode}");
        let missing = post("/messages").send().await;
        assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{mode}");
        // A Streamable HTTP session is not a legacy one.
        let modern = Mcp::connect(&proxy).await;
        let other = post(&format!("/messages?session_id={}", modern.session))
            .send()
            .await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{mode}");
        // A live legacy session still takes its POSTs.
        let legacy = Legacy::open(&proxy, None).await;
        let live = post(&legacy.endpoint).send().await;
        assert_eq!(live.status, StatusCode::ACCEPTED, "{mode}");
        // Each route takes its one method.
        let get_messages = Req::new(proxy.addr, Method::GET, &legacy.endpoint)
            .send()
            .await;
        assert_eq!(
            get_messages.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{mode}"
        );
        assert_eq!(get_messages.header("allow"), Some("POST"), "{mode}");
        let post_sse = post("/sse").send().await;
        assert_eq!(post_sse.status, StatusCode::METHOD_NOT_ALLOWED, "{mode}");
        assert_eq!(post_sse.header("allow"), Some("GET"), "{mode}");
    }
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_both_routes() {
    let proxy = proxy("pooled", &[]);
    let evil = "http://evil.example.com";
    let refused = sse_get(proxy.addr).header("origin", evil).send().await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert_eq!(proxy.metrics().await.get("stdiopool_sessions"), 0.0);
    let legacy = Legacy::open(&proxy, None).await;
    let post = legacy
        .post_req(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .header("origin", evil)
        .send()
        .await;
    assert_eq!(post.status, StatusCode::FORBIDDEN, "{}", post.text());
    // Host is checked as on /mcp (DNS rebinding).
    let host = sse_get(proxy.addr)
        .header("host", "evil.example.com")
        .send()
        .await;
    assert_eq!(host.status, StatusCode::FORBIDDEN, "{}", host.text());
}

#[tokio::test]
async fn the_token_is_required_on_both_routes() {
    let token = TempFile::new("legacy-sse-token");
    std::fs::write(&token.0, format!("{TOKEN}\n")).unwrap();
    let proxy = proxy("session", &["--auth-token-file", token.path()]);
    // The warm spare is made (a process being made counts as in use).
    proxy
        .wait_metrics("the pool settled", |m| {
            m.get("stdiopool_pool_idle") >= 1.0 && m.get("stdiopool_pool_in_use") == 0.0
        })
        .await;
    let none = sse_get(proxy.addr).send().await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{}", none.text());
    let wrong = sse_get(proxy.addr)
        .header("authorization", "Bearer not-the-token")
        .send()
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text());
    assert_eq!(wrong.header("connection"), Some("close"));
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_sessions"), 0.0);
    assert_eq!(
        m.get("stdiopool_pool_in_use"),
        0.0,
        "a refusal took a process"
    );
    let mut legacy = Legacy::open(&proxy, Some(TOKEN)).await;
    legacy.initialize(json!({})).await;
    let unsigned = Req::new(proxy.addr, Method::POST, &legacy.endpoint)
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}).to_string())
        .send()
        .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn legacy_streams_count_against_the_stream_cap() {
    let proxy = proxy("pooled", &["--max-get-streams", "1"]);
    let first = Legacy::open(&proxy, None).await;
    let second = sse_get(proxy.addr).send().await;
    assert_eq!(
        second.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        second.text()
    );
    drop(first);
    proxy
        .wait_metrics("the first session ended", |m| {
            m.get("stdiopool_sessions") == 0.0
        })
        .await;
    // Its slot is free again.
    let mut third = Legacy::open(&proxy, None).await;
    third.initialize(json!({})).await;
}

#[tokio::test]
async fn an_idle_stream_ends_its_session_but_a_long_call_is_not_idleness() {
    for mode in MODES {
        let proxy = proxy(mode, &["--session-idle-timeout", "1s"]);
        let mut legacy = Legacy::open(&proxy, None).await;
        legacy.initialize(json!({})).await;
        // Longer than the idle timeout, with nothing on the stream meanwhile.
        let (_, response) = legacy.call_tool("sleep", json!({"ms": 2500})).await;
        assert_eq!(result_text(&response), "slept 2500 ms", "{mode}");
        // Now nothing runs: the stream ends, and its session with it.
        assert!(legacy.event().await.is_none(), "{mode}: the stream went on");
        proxy
            .wait_metrics("the idle session ended", |m| {
                m.get("stdiopool_sessions") == 0.0
            })
            .await;
    }
}

#[tokio::test]
async fn shutdown_lets_a_running_call_answer_on_the_stream_then_ends_it() {
    for mode in MODES {
        let mut proxy = proxy(mode, &["--shutdown-grace", "20s"]);
        let mut legacy = Legacy::open(&proxy, None).await;
        legacy.initialize(json!({})).await;
        let slow = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": 1500}}});
        assert_eq!(legacy.post(&slow).await.status, StatusCode::ACCEPTED);
        // The fixture logs it when the call reaches it (its stderr is in the proxy's log).
        proxy.wait_for_log("sleep 1500 ms for request").await;
        proxy.signal(nix::sys::signal::Signal::SIGTERM);
        let response = legacy.message().await;
        assert_eq!(response["id"], 3, "{mode}: {response}");
        assert_eq!(result_text(&response), "slept 1500 ms", "{mode}");
        assert!(legacy.event().await.is_none(), "{mode}: the stream went on");
        let status = proxy.wait_exit().await;
        assert!(status.success(), "{mode}: {status:?}");
    }
}

/// The proxy's routes nested under a prefix, as a multi-server proxy mounts
/// a server's (`/servers/<name>/`), driven in-process: the `endpoint` event
/// must name the messages URL under that prefix, and POSTing there works.
#[tokio::test]
async fn nested_under_a_prefix_the_endpoint_names_the_prefixed_messages_url() {
    use axum::body::Body;
    use tower::ServiceExt as _;

    for mode in MODES {
        let config = stdiopool::config::Config::load_from([
            "stdiopool",
            "--mode",
            mode,
            "--pool-size",
            "1",
            "--",
            e2e_support::FIXTURE,
        ])
        .unwrap();
        let proxy = stdiopool::app::Proxy::start(config).await.unwrap();
        let app = axum::Router::new().nest("/servers/fx", proxy.router());
        let get = hyper::Request::get("/servers/fx/sse")
            .header("host", "localhost")
            .header("accept", "text/event-stream")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(get).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{mode}");
        let mut body = response.into_body();
        let mut text = String::new();
        let mut next_event = async || loop {
            if let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if event.contains("data:") {
                    return event;
                }
                continue;
            }
            let frame = tokio::time::timeout(LIMIT, body.frame())
                .await
                .expect("no event within the limit")
                .expect("the stream ended")
                .unwrap();
            if let Ok(bytes) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        };
        let endpoint_event = next_event().await;
        let endpoint = endpoint_event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap()
            .to_owned();
        assert!(
            endpoint_event.starts_with("event: endpoint"),
            "{endpoint_event}"
        );
        assert!(
            endpoint.starts_with("/servers/fx/messages?session_id="),
            "{mode}: {endpoint}"
        );
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LEGACY_VERSION, "capabilities": {},
            "clientInfo": {"name": "nested", "version": "0"}}});
        let post = hyper::Request::post(endpoint.as_str())
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Body::from(initialize.to_string()))
            .unwrap();
        let accepted = app.clone().oneshot(post).await.unwrap();
        assert_eq!(accepted.status(), StatusCode::ACCEPTED, "{mode}");
        let answer = next_event().await;
        assert!(answer.contains("\"serverInfo\""), "{mode}: {answer}");
        drop(body);
        drop(app);
        // A clean stop: every child reaped.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let report = proxy.serve(listener, async {}).await.unwrap();
        assert_eq!(report.stops_left, 0, "{mode}");
    }
}

/// Session mode, every process taken: a `GET /sse` waits for one; a client
/// that gives up while it waits leaves no queue place, stream slot or
/// session behind, and the next stream gets the freed process.
#[tokio::test]
async fn a_stream_abandoned_while_waiting_for_a_process_leaves_nothing() {
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            "session",
            "--pool-size",
            "1",
            "--session-eviction",
            "off",
            "--wait-timeout",
            "60s",
        ],
        &[],
    );
    let mut first = Legacy::open(&proxy, None).await;
    first.initialize(json!({})).await;
    let waiting = tokio::spawn(sse_get(proxy.addr).try_open());
    proxy
        .wait_metrics("the second stream waits for a process", |m| {
            m.get("stdiopool_pool_waiting") == 1.0 && m.get("stdiopool_get_streams_open") == 2.0
        })
        .await;
    waiting.abort();
    let _ = waiting.await;
    proxy
        .wait_metrics("the abandoned wait left nothing", |m| {
            m.get("stdiopool_pool_waiting") == 0.0
                && m.get("stdiopool_get_streams_open") == 1.0
                && m.get("stdiopool_sessions") == 1.0
        })
        .await;
    drop(first);
    let mut next = Legacy::open(&proxy, None).await;
    let result = next.initialize(json!({})).await;
    assert_eq!(result["serverInfo"]["name"], "stdiopool-fixture");
}

/// A POST is answered 202 before its request has a process; when none
/// frees up within `--wait-timeout`, the refusal `/mcp` would answer with
/// 503 comes on the stream as the request's JSON-RPC error.
#[tokio::test]
async fn no_free_process_is_answered_on_the_stream() {
    let proxy = ProxyProcess::start(
        &[
            "--pool-size",
            "1",
            "--min-idle",
            "1",
            "--wait-timeout",
            "1s",
        ],
        &[],
    );
    let mut busy = Legacy::open(&proxy, None).await;
    busy.initialize(json!({})).await;
    let slow = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 8000}}});
    assert_eq!(busy.post(&slow).await.status, StatusCode::ACCEPTED);
    proxy.wait_for_log("sleep 8000 ms for request").await;
    let mut late = Legacy::open(&proxy, None).await;
    late.initialize(json!({})).await;
    let (_, response) = late.call_tool("echo", json!({"message": "m"})).await;
    assert_eq!(response["error"]["code"], -32000, "{response}");
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no server process became free"),
        "{response}"
    );
    let m = proxy.metrics().await;
    assert_eq!(m.requests("tools/call", "unavailable"), 1.0);
    // Closing the busy stream cancels its call and frees the process (and
    // spares the proxy's stop below from draining the call).
    drop(busy);
    proxy
        .wait_metrics("the slow call was cancelled", |m| {
            m.get("stdiopool_pool_in_use") == 0.0
        })
        .await;
}

/// `--path` at one of the legacy routes: the endpoint is served there and
/// the legacy transport steps aside (two routes at one path would not start).
#[tokio::test]
async fn an_mcp_path_on_a_legacy_route_serves_the_endpoint_there_instead() {
    for path in ["/sse", "/messages"] {
        let proxy = proxy("pooled", &["--path", path]);
        assert_eq!(proxy.path, path);
        let mcp = Mcp::connect(&proxy).await;
        assert!(mcp.pid().await > 0, "{path}");
        proxy
            .wait_for_log("the legacy transport is not served")
            .await;
        let other = if path == "/sse" { "/messages" } else { "/sse" };
        let gone = sse_get(proxy.addr).send().await;
        let elsewhere = Req::new(proxy.addr, Method::GET, other).send().await;
        assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "{path}: {other}");
        // At `/sse`, a GET is the endpoint's (pooled mode has no GET stream).
        let want = if path == "/sse" {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(gone.status, want, "{path}");
    }
}
