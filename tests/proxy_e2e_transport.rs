//! End to end, both modes: the transport and method rows of docs/PROXY.md
//! ("Status and error codes"). Each refusal must carry the documented status,
//! JSON-RPC code and message, and must not touch a server process: the pool's
//! creations and checkouts, the spawn count and every request counted with an
//! outcome other than `rejected` are the same before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/e2e/mod.rs"]
mod e2e_support;

use e2e_support::{Mcp, ProxyProcess, Req, TempFile, initialize_body};
use hyper::http::{Method, StatusCode};
use serde_json::json;

const TOKEN: &str = "e2e-secret-token";

/// One bad request and the answer it must get.
struct Case {
    name: &'static str,
    req: Req,
    status: StatusCode,
    code: i64,
    /// Text the error message must contain.
    message: &'static str,
    /// A header the reply must carry, with its value.
    header: Option<(&'static str, &'static str)>,
}

fn token_file(mode: &str) -> TempFile {
    let file = TempFile::new(&format!("token-{mode}"));
    std::fs::write(&file.0, format!("{TOKEN}\n")).unwrap();
    file
}

/// The answer a refusal must get: status, JSON-RPC code, message text.
#[derive(Clone, Copy)]
struct Expect(StatusCode, i64, &'static str);

const PARSE: Expect = Expect(StatusCode::BAD_REQUEST, -32700, "Parse error");
const INVALID: Expect = Expect(StatusCode::BAD_REQUEST, -32600, "Invalid Request");
const ACCEPT: Expect = Expect(StatusCode::NOT_ACCEPTABLE, -32000, "Accept");
const MEDIA: Expect = Expect(StatusCode::UNSUPPORTED_MEDIA_TYPE, -32000, "Content-Type");
const NO_SESSION: Expect = Expect(StatusCode::NOT_FOUND, -32005, "Session not found");
const FORBIDDEN_HOST: Expect = Expect(StatusCode::FORBIDDEN, -32000, "Host");
const FORBIDDEN_ORIGIN: Expect = Expect(StatusCode::FORBIDDEN, -32000, "Origin");
const UNAUTHORIZED: Expect = Expect(StatusCode::UNAUTHORIZED, -32000, "Unauthorized");
const NOT_ALLOWED: Expect = Expect(StatusCode::METHOD_NOT_ALLOWED, -32000, "Method Not Allowed");

fn case(name: &'static str, req: Req, Expect(status, code, message): Expect) -> Case {
    Case {
        name,
        req,
        status,
        code,
        message,
        header: None,
    }
}

fn with_header(case: Case, name: &'static str, value: &'static str) -> Case {
    Case {
        header: Some((name, value)),
        ..case
    }
}

fn cases(proxy: &ProxyProcess, mcp: &Mcp, ended: &Mcp, mode: &str) -> Vec<Case> {
    let call =
        || json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "pid"}});
    let post = || mcp.post(call());
    let id_null = json!({"jsonrpc": "2.0", "id": null, "method": "tools/call"});
    let params_string = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "pid"});
    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"m": "x".repeat(8192)}});
    let initialize = || proxy.post(initialize_body(1, json!({})).to_string());
    let bearer = format!("Bearer {TOKEN}");
    let (allow, get_refusal) = if mode == "session" {
        ("GET, POST, DELETE", ACCEPT)
    } else {
        ("POST, DELETE", NOT_ALLOWED)
    };
    let too_large = Expect(StatusCode::PAYLOAD_TOO_LARGE, -32000, "exceeds 4096 bytes");
    let bad_version = Expect(StatusCode::BAD_REQUEST, -32000, "protocol version");
    let sessionless = Expect(StatusCode::BAD_REQUEST, -32000, "Mcp-Session-Id");
    let token_missing = Expect(StatusCode::UNAUTHORIZED, -32000, "bearer token is required");
    let token_wrong = Expect(StatusCode::UNAUTHORIZED, -32000, "invalid bearer token");
    vec![
        case("not JSON", post().body("{\"jsonrpc\": \"2.0\", "), PARSE),
        case("binary body", post().body(vec![0xff, 0xfe, 0x00]), PARSE),
        case(
            "no jsonrpc member",
            mcp.post(json!({"id": 1, "method": "x"})),
            INVALID,
        ),
        case(
            "jsonrpc 1.0",
            mcp.post(json!({"jsonrpc": "1.0", "id": 1, "method": "x"})),
            INVALID,
        ),
        case("a batch array", mcp.post(json!([call(), call()])), INVALID),
        case("id null", mcp.post(id_null), INVALID),
        case("params a string", mcp.post(params_string), INVALID),
        case("a JSON number", mcp.post(json!(42)), INVALID),
        case("missing Accept", post().without("accept"), ACCEPT),
        case(
            "Accept without SSE",
            post().header("accept", "application/json"),
            ACCEPT,
        ),
        case(
            "Accept SSE q=0",
            post().header("accept", "application/json, text/event-stream;q=0"),
            ACCEPT,
        ),
        case(
            "Content-Type text/plain",
            post().header("content-type", "text/plain"),
            MEDIA,
        ),
        case(
            "missing Content-Type",
            post().without("content-type"),
            MEDIA,
        ),
        case(
            "unknown session",
            post().header("mcp-session-id", &"0a".repeat(16)),
            NO_SESSION,
        ),
        case(
            "malformed session id",
            post().header("mcp-session-id", "not-a-session"),
            NO_SESSION,
        ),
        case("ended session", ended.post(call()), NO_SESSION),
        case(
            "DELETE of an ended session",
            ended.request(Method::DELETE),
            NO_SESSION,
        ),
        case("no session", post().without("mcp-session-id"), sessionless),
        case(
            "bad protocol version",
            post().header("mcp-protocol-version", "1999-01-01"),
            bad_version,
        ),
        case("body over --max-body", mcp.post(big), too_large),
        case(
            "foreign Host",
            post().header("host", "evil.example.com"),
            FORBIDDEN_HOST,
        ),
        case(
            "Origin null",
            post().header("origin", "null"),
            FORBIDDEN_ORIGIN,
        ),
        case(
            "foreign Origin",
            post().header("origin", "http://evil.example.com"),
            FORBIDDEN_ORIGIN,
        ),
        case(
            "foreign Origin on initialize",
            initialize()
                .header("origin", "https://evil.example.com")
                .header("authorization", &bearer),
            FORBIDDEN_ORIGIN,
        ),
        with_header(
            case(
                "missing token",
                post().without("authorization"),
                token_missing,
            ),
            "www-authenticate",
            "Bearer realm=\"stdiopool\"",
        ),
        with_header(
            case(
                "wrong token",
                post().header("authorization", "Bearer e2e-secret-tokem"),
                token_wrong,
            ),
            "www-authenticate",
            "Bearer realm=\"stdiopool\", error=\"invalid_token\"",
        ),
        case(
            "another scheme",
            post().header("authorization", &format!("Basic {TOKEN}")),
            UNAUTHORIZED,
        ),
        case("initialize without a token", initialize(), UNAUTHORIZED),
        with_header(
            case("PUT", mcp.request(Method::PUT), NOT_ALLOWED),
            "allow",
            allow,
        ),
        with_header(
            case("PATCH", post().method(Method::PATCH), NOT_ALLOWED),
            "allow",
            allow,
        ),
        case(
            "GET without an SSE Accept",
            mcp.request(Method::GET)
                .header("accept", "application/json"),
            get_refusal,
        ),
    ]
}

async fn refusals_touch_no_process(mode: &str) {
    let token = token_file(mode);
    let proxy = ProxyProcess::start(
        &[
            "--mode",
            mode,
            "--pool-size",
            "2",
            "--min-idle",
            "1",
            "--max-body",
            "4KiB",
            "--auth-token-file",
            token.path(),
        ],
        &[],
    );
    let mcp = Mcp::connect_with(&proxy, json!({}), Some(TOKEN)).await;
    let pid = mcp.pid().await;
    let ended = Mcp::connect_with(&proxy, json!({}), Some(TOKEN)).await;
    assert_eq!(ended.delete().await.status, StatusCode::OK);
    // Session mode: the ended session's process is destroyed and a spare
    // warmed in its place; wait for that to settle before counting.
    let settled = proxy
        .wait_metrics("the pool settled", |m| {
            m.get("stdiopool_pool_in_use") == if mode == "session" { 1.0 } else { 0.0 }
                && m.get("stdiopool_pool_idle") >= 1.0
                && m.get("stdiopool_process_live") == m.get("stdiopool_pool_size")
        })
        .await;
    let before = settled.touch_counts();

    let cases = cases(&proxy, &mcp, &ended, mode);
    let refused = cases.len() as f64;
    for case in cases {
        let reply = case.req.send().await;
        let what = format!("{mode}: {}: {} {}", case.name, reply.status, reply.text());
        assert_eq!(reply.status, case.status, "{what}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        let body = reply.json();
        assert_eq!(body["jsonrpc"], "2.0", "{what}");
        assert_eq!(body["id"], json!(null), "{what}");
        assert_eq!(reply.error_code(), case.code, "{what}");
        assert!(reply.error_message().contains(case.message), "{what}");
        if let Some((name, value)) = case.header {
            assert_eq!(reply.header(name), Some(value), "{what}");
        }
    }

    // Every refused connection is closed again: no fd is left behind.
    let fds = settled.get("stdiopool_open_fds");
    let after = proxy
        .wait_metrics("the proxy's fds back to where they were", |m| {
            m.get("stdiopool_open_fds") <= fds
        })
        .await;
    assert_eq!(after.get("stdiopool_zombies"), 0.0, "{mode}");
    // Each refusal is counted once as rejected, whether a handler or the
    // transport checks (before any handler) refused it.
    assert_eq!(
        after.requests_rejected() - settled.requests_rejected(),
        refused,
        "{mode}: rejected requests counted"
    );
    assert_eq!(
        before,
        after.touch_counts(),
        "{mode}: a refusal reached the pool"
    );
    // The session and its process are unharmed.
    assert_eq!(mcp.pid().await, pid, "{mode}");
}

#[tokio::test]
async fn pooled_mode_refuses_bad_input_before_any_process() {
    refusals_touch_no_process("pooled").await;
}

#[tokio::test]
async fn session_mode_refuses_bad_input_before_any_process() {
    refusals_touch_no_process("session").await;
}

#[tokio::test]
async fn ops_endpoints_need_no_token_and_count_nothing() {
    let token = token_file("ops");
    let proxy = ProxyProcess::start(
        &["--pool-size", "1", "--auth-token-file", token.path()],
        &[],
    );
    let health = Req::new(proxy.addr, Method::GET, "/healthz").send().await;
    assert_eq!(
        (health.status, health.text().trim()),
        (StatusCode::OK, "ok")
    );
    let ready = Req::new(proxy.addr, Method::GET, "/readyz").send().await;
    assert_eq!(
        (ready.status, ready.text().trim()),
        (StatusCode::OK, "ready")
    );
    let m = proxy.metrics().await;
    assert_eq!(m.get("stdiopool_pool_max"), 1.0);
}
