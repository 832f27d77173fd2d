//! The transport checks (docs/PROXY.md, "Checks, in order") driven through a real axum `Router`
//! built from the real check layers and extractors. The handlers count every
//! request that reaches them: a refused request must leave the count at zero,
//! which is what "nothing reached a child" means at this layer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::stream;
use serde_json::Value;
use stdiopool::config::Config;
use stdiopool::metrics::Metrics;
use stdiopool::proxy::mcp::sse::{accepted, json_reply, sse_stream, with_session_id};
use stdiopool::proxy::transport::request::{
    ALLOW_WITH_GET, ALLOW_WITHOUT_GET, with_method_fallback,
};
use stdiopool::proxy::transport::session_id::SESSION_ID_HEADER;
use stdiopool::proxy::{
    McpDelete, McpGet, McpPost, OpsState, SessionId, TransportChecks, ops_router,
};
use tower::ServiceExt;

const TOKEN: &str = "test-token-123";
const MAX_BODY: usize = 1024;

#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

async fn on_post(State(hits): State<Hits>, post: McpPost) -> Response {
    hits.bump();
    if post.message.is_initialize() {
        let reply = serde_json::value::to_raw_value(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-11-25"}
        }))
        .unwrap();
        return with_session_id(json_reply(reply), &SessionId::generate().unwrap());
    }
    if post.message.expects_response() {
        let reply = serde_json::value::to_raw_value(&serde_json::json!({
            "jsonrpc": "2.0", "id": 2, "result": {"version": post.protocol_version.as_str()}
        }))
        .unwrap();
        json_reply(reply)
    } else {
        accepted()
    }
}

async fn on_get(State(hits): State<Hits>, _get: McpGet) -> Response {
    hits.bump();
    sse_stream(stream::empty(), None)
}

async fn on_delete(State(hits): State<Hits>, _delete: McpDelete) -> Response {
    hits.bump();
    StatusCode::OK.into_response()
}

/// A file under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("stdiopool-http-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The app as the binary will build it: MCP routes behind the checks, ops
/// routes merged after (so they need no token).
fn app(extra_args: &[&str], with_get: bool) -> (Router, Hits) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let token = TempFile::new(&format!("token-{n}"), &format!("{TOKEN}\n"));
    let mut args = vec![
        "stdiopool",
        "--auth-token-file",
        token.0.to_str().unwrap(),
        "--max-body",
        "1KiB",
    ];
    args.extend_from_slice(extra_args);
    args.extend_from_slice(&["--", "srv"]);
    let config = Config::load_from(args).unwrap();
    assert_eq!(config.max_body, MAX_BODY);
    let checks = TransportChecks::from_config(&config);

    let hits = Hits::default();
    let methods = if with_get {
        with_method_fallback(post(on_post).get(on_get).delete(on_delete), ALLOW_WITH_GET)
    } else {
        with_method_fallback(post(on_post).delete(on_delete), ALLOW_WITHOUT_GET)
    };
    let mcp = checks.apply(Router::new().route(&config.path, methods));
    let ops = ops_router(OpsState {
        metrics: Arc::new(Metrics::new()),
        readiness: Arc::new(|| Ok(())),
    });
    let app = mcp.with_state(hits.clone()).merge(ops);
    (app, hits)
}

fn good_post() -> axum::http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn session_header() -> String {
    SessionId::generate().unwrap().to_string()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Status, a JSON-RPC error body with a null id and the given code.
    fn assert_refused(&self, status: StatusCode, code: i64) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/json");
        let v = self.json();
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(v["id"].is_null());
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn body_that_is_not_json_is_400_parse_error() {
    let (app, hits) = app(&[], true);
    for body in ["not json", "{", ""] {
        let a = send(&app, good_post().body(Body::from(body)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32700);
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn json_that_is_not_json_rpc_is_400_invalid_request() {
    let (app, hits) = app(&[], true);
    for body in [
        r#"{"hello":"world"}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"initialize"}"#,
        "17",
    ] {
        let a = send(&app, good_post().body(Body::from(body)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32600);
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn post_without_both_accept_types_is_406_naming_the_header() {
    let (app, hits) = app(&[], true);
    for accept in [
        None,
        Some("application/json"),
        Some("text/event-stream"),
        Some("text/html"),
    ] {
        let mut req = good_post();
        req.headers_mut().unwrap().remove(header::ACCEPT);
        if let Some(v) = accept {
            req = req.header(header::ACCEPT, v);
        }
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::NOT_ACCEPTABLE, -32000);
        assert!(a.message().contains("Accept"), "{}", a.message());
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn post_with_wrong_content_type_is_415_naming_the_header() {
    let (app, hits) = app(&[], true);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = good_post();
        req.headers_mut().unwrap().remove(header::CONTENT_TYPE);
        if let Some(v) = ct {
            req = req.header(header::CONTENT_TYPE, v);
        }
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, -32000);
        assert!(a.message().contains("Content-Type"), "{}", a.message());
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413_whether_declared_or_streamed() {
    let (app, hits) = app(&[], true);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"pad":"{}"}}}}"#,
        "x".repeat(MAX_BODY)
    );
    // Declared length.
    let a = send(
        &app,
        good_post()
            .header(header::CONTENT_LENGTH, big.len())
            .body(Body::from(big.clone()))
            .unwrap(),
    )
    .await;
    a.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, -32000);
    // Chunked: no length, the limit is found while reading.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let a = send(
        &app,
        good_post()
            .body(Body::from_stream(stream::iter(chunks)))
            .unwrap(),
    )
    .await;
    a.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, -32000);
    assert_eq!(hits.get(), 0);
    // Exactly at the limit is fine.
    let pad = MAX_BODY - INIT.len() + r#"{}"#.len() - r#"{"pad":""}"#.len();
    let at_limit = INIT.replace(
        r#""capabilities":{}"#,
        &format!(r#""capabilities":{{"pad":"{}"}}"#, "y".repeat(pad)),
    );
    assert_eq!(at_limit.len(), MAX_BODY);
    let a = send(
        &app,
        good_post().body(Body::from(at_limit.clone())).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_bearer_challenge() {
    let (app, hits) = app(&[], true);
    let mut req = good_post();
    req.headers_mut().unwrap().remove(header::AUTHORIZATION);
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    a.assert_refused(StatusCode::UNAUTHORIZED, -32000);
    assert!(
        a.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    for bad in [
        "Bearer wrong",
        "Bearer test-token-12",
        "Basic dGVzdA==",
        TOKEN,
    ] {
        let mut req = good_post();
        req.headers_mut()
            .unwrap()
            .insert(header::AUTHORIZATION, bad.parse().unwrap());
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::UNAUTHORIZED, -32000);
        assert!(
            a.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    // Every method of the endpoint is protected, not only POST.
    let get = Request::get("/mcp")
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, "text/event-stream")
        .header(SESSION_ID_HEADER, session_header())
        .body(Body::empty())
        .unwrap();
    send(&app, get)
        .await
        .assert_refused(StatusCode::UNAUTHORIZED, -32000);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn ops_endpoints_need_no_token() {
    let (app, hits) = app(&[], true);
    let a = send(
        &app,
        Request::get("/healthz")
            .header(header::HOST, "localhost")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn foreign_origin_is_403() {
    let (app, hits) = app(&[], true);
    for origin in [
        "http://evil.example.com",
        "null",
        "https://localhost.evil.com",
    ] {
        let req = good_post().header(header::ORIGIN, origin);
        let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
        a.assert_refused(StatusCode::FORBIDDEN, -32000);
    }
    // Origin is checked before the token: a rebinding page learns nothing about auth.
    let mut req = good_post().header(header::ORIGIN, "http://evil.example.com");
    req.headers_mut().unwrap().remove(header::AUTHORIZATION);
    send(&app, req.body(Body::from(INIT)).unwrap())
        .await
        .assert_refused(StatusCode::FORBIDDEN, -32000);
    assert_eq!(hits.get(), 0);
    // A loopback origin passes.
    let req = good_post().header(header::ORIGIN, "http://localhost:6274");
    assert_eq!(
        send(&app, req.body(Body::from(INIT)).unwrap()).await.status,
        StatusCode::OK
    );
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn dns_rebinding_scenario_of_the_conformance_suite() {
    // POST initialize with Host and Origin of a rebound name must be 4xx;
    // with the real loopback host it must be 2xx.
    let (app, hits) = app(&[], true);
    let mut req = good_post();
    req.headers_mut()
        .unwrap()
        .insert(header::HOST, "evil.example.com".parse().unwrap());
    let req = req.header(header::ORIGIN, "http://evil.example.com");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    a.assert_refused(StatusCode::FORBIDDEN, -32000);
    assert_eq!(hits.get(), 0);
    let a = send(&app, good_post().body(Body::from(INIT)).unwrap()).await;
    assert!(a.status.is_success());
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn configured_origin_is_allowed() {
    let (app, hits) = app(&["--allowed-origin", "https://app.example.com"], true);
    let req = good_post().header(header::ORIGIN, "https://app.example.com");
    assert_eq!(
        send(&app, req.body(Body::from(INIT)).unwrap()).await.status,
        StatusCode::OK
    );
    let req = good_post().header(header::ORIGIN, "https://other.example.com");
    send(&app, req.body(Body::from(INIT)).unwrap())
        .await
        .assert_refused(StatusCode::FORBIDDEN, -32000);
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let (app, hits) = app(&[], true);
    for method in [Method::PUT, Method::PATCH, Method::OPTIONS] {
        let req = Request::builder()
            .method(method.clone())
            .uri("/mcp")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let a = send(&app, req).await;
        a.assert_refused(StatusCode::METHOD_NOT_ALLOWED, -32000);
        assert_eq!(a.headers[header::ALLOW], "GET, POST, DELETE", "{method}");
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn a_mode_without_get_stream_answers_get_with_405() {
    let (app, hits) = app(&[], false);
    let req = Request::get("/mcp")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::ACCEPT, "text/event-stream")
        .header(SESSION_ID_HEADER, session_header())
        .body(Body::empty())
        .unwrap();
    let a = send(&app, req).await;
    a.assert_refused(StatusCode::METHOD_NOT_ALLOWED, -32000);
    assert_eq!(a.headers[header::ALLOW], "POST, DELETE");
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn unsupported_protocol_version_is_400() {
    let (app, hits) = app(&[], true);
    for version in ["2024-11-05", "2026-07-28", "garbage"] {
        let req = good_post()
            .header(SESSION_ID_HEADER, session_header())
            .header("mcp-protocol-version", version);
        let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32000);
        assert!(a.message().contains("protocol version"), "{}", a.message());
        // GET and DELETE validate it too.
        let get = Request::get("/mcp")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::ACCEPT, "text/event-stream")
            .header(SESSION_ID_HEADER, session_header())
            .header("mcp-protocol-version", version)
            .body(Body::empty())
            .unwrap();
        send(&app, get)
            .await
            .assert_refused(StatusCode::BAD_REQUEST, -32000);
    }
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn absent_protocol_version_is_taken_as_2025_03_26() {
    let (app, hits) = app(&[], true);
    let req = good_post().header(SESSION_ID_HEADER, session_header());
    let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["result"]["version"], "2025-03-26");
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn session_less_non_initialize_post_is_400_without_reaching_a_handler() {
    let (app, hits) = app(&[], true);
    for body in [
        PING,
        INITIALIZED,
        r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#,
    ] {
        let req = good_post().header("mcp-protocol-version", "2025-11-25");
        let a = send(&app, req.body(Body::from(body)).unwrap()).await;
        a.assert_refused(StatusCode::BAD_REQUEST, -32000);
        assert!(a.message().contains("Mcp-Session-Id"), "{}", a.message());
    }
    // Python's server/discover probe carries an unknown version: still a 4xx.
    let req = good_post().header("mcp-protocol-version", "2026-07-28");
    send(&app, req.body(Body::from(PING)).unwrap())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, -32000);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn malformed_session_id_is_404_session_not_found() {
    let (app, hits) = app(&[], true);
    for bad in [
        "nope",
        "../../etc/passwd",
        "0123456789abcdef0123456789abcdeg",
    ] {
        let req = good_post().header(SESSION_ID_HEADER, bad);
        let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
        a.assert_refused(StatusCode::NOT_FOUND, -32005);
    }
    let del = Request::delete("/mcp")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(SESSION_ID_HEADER, "nope")
        .body(Body::empty())
        .unwrap();
    send(&app, del)
        .await
        .assert_refused(StatusCode::NOT_FOUND, -32005);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn get_and_delete_need_a_session_and_get_needs_event_stream() {
    let (app, hits) = app(&[], true);
    let base = || {
        Request::builder()
            .uri("/mcp")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
    };
    let get_no_session = base()
        .method(Method::GET)
        .header(header::ACCEPT, "text/event-stream");
    send(&app, get_no_session.body(Body::empty()).unwrap())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, -32000);
    let get_json_only = base()
        .method(Method::GET)
        .header(header::ACCEPT, "application/json")
        .header(SESSION_ID_HEADER, session_header());
    let a = send(&app, get_json_only.body(Body::empty()).unwrap()).await;
    a.assert_refused(StatusCode::NOT_ACCEPTABLE, -32000);
    assert!(a.message().contains("text/event-stream"));
    let delete_no_session = base().method(Method::DELETE);
    send(&app, delete_no_session.body(Body::empty()).unwrap())
        .await
        .assert_refused(StatusCode::BAD_REQUEST, -32000);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn well_formed_requests_reach_the_handlers() {
    let (app, hits) = app(&[], true);
    // initialize: no session needed; the reply carries a fresh one.
    let a = send(&app, good_post().body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    let sid = a.headers[SESSION_ID_HEADER].to_str().unwrap().to_owned();
    assert!(SessionId::parse(&sid).is_ok());
    // notification with the session: 202, no body.
    let req = good_post()
        .header(SESSION_ID_HEADER, &sid)
        .header("mcp-protocol-version", "2025-11-25");
    let a = send(&app, req.body(Body::from(INITIALIZED)).unwrap()).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert!(a.body.is_empty());
    // request with the session and a supported version.
    let req = good_post()
        .header(SESSION_ID_HEADER, &sid)
        .header("mcp-protocol-version", "2025-06-18");
    let a = send(&app, req.body(Body::from(PING)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["result"]["version"], "2025-06-18");
    // GET stream and DELETE.
    let get = Request::get("/mcp")
        .header(header::HOST, "localhost:8080")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::ACCEPT, "text/event-stream")
        .header(SESSION_ID_HEADER, &sid)
        .body(Body::empty())
        .unwrap();
    let a = send(&app, get).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/event-stream");
    let del = Request::delete("/mcp")
        .header(header::HOST, "[::1]:8080")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(SESSION_ID_HEADER, &sid)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, del).await.status, StatusCode::OK);
    assert_eq!(hits.get(), 5);
}

#[tokio::test]
async fn pool_exhaustion_helper_is_503_with_retry_after() {
    let resp = stdiopool::proxy::ProxyError::PoolExhausted {
        waited: std::time::Duration::from_secs(5),
        retry_after: std::time::Duration::from_secs(2),
    }
    .into_response();
    let a = Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap()
            .to_vec(),
    };
    a.assert_refused(StatusCode::SERVICE_UNAVAILABLE, -32000);
    assert_eq!(a.headers[header::RETRY_AFTER], "2");
}

#[tokio::test]
async fn listed_origins_get_cors_and_preflights_need_no_token() {
    let (app, hits) = app(&["--allowed-origin", "https://app.example.com"], true);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::HOST, "localhost:8080")
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type, authorization, mcp-session-id, mcp-protocol-version",
        )
        .body(Body::empty())
        .unwrap();
    let a = send(&app, preflight).await;
    assert!(a.status.is_success(), "{}", a.status);
    assert_eq!(
        a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let allowed = a.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allowed.contains("mcp-session-id") && allowed.contains("authorization"),
        "{allowed}"
    );

    let req = good_post().header(header::ORIGIN, "https://app.example.com");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    assert!(
        a.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .contains("mcp-session-id")
    );
    // A loopback origin passes the guard but gets no CORS grant.
    let req = good_post().header(header::ORIGIN, "http://localhost:3000");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn preflight_from_a_foreign_origin_is_403() {
    let (app, hits) = app(&["--allowed-origin", "https://app.example.com"], true);
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::HOST, "localhost:8080")
        .header(header::ORIGIN, "https://evil.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let a = send(&app, preflight).await;
    a.assert_refused(StatusCode::FORBIDDEN, -32000);
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn without_listed_origins_there_is_no_cors() {
    let (app, _hits) = app(&[], true);
    let req = good_post().header(header::ORIGIN, "http://localhost:3000");
    let a = send(&app, req.body(Body::from(INIT)).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}
