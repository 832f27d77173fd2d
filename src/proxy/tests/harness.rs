//! The harness of the transport tests: a router built as the binary builds
//! it (the real check layers and extractors in front of handlers that only
//! count the requests reaching them), canned requests, and the reading of an
//! answer. A refused request must leave the count at zero, which is what
//! "nothing reached a child" means at this layer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(super) use std::path::PathBuf;
pub(super) use std::sync::Arc;
pub(super) use std::sync::atomic::{AtomicUsize, Ordering};

pub(super) use axum::Router;
pub(super) use axum::extract::State;
pub(super) use axum::http::HeaderMap;
pub(super) use axum::response::Response;
pub(super) use axum::routing::post;
pub(super) use serde_json::Value;
pub(super) use tower::ServiceExt;

pub(super) use crate::config::Config;
pub(super) use crate::metrics::Metrics;
pub(super) use crate::proxy::mcp::sse::{accepted, json_reply, sse_stream, with_session_id};
pub(super) use crate::proxy::ops::{OpsState, ops_router};
pub(super) use crate::proxy::transport::request::{
    ALLOW_WITH_GET, ALLOW_WITHOUT_GET, McpDelete, McpGet, McpPost, TransportChecks,
    with_method_fallback,
};
pub(super) use crate::proxy::transport::session_id::{SESSION_ID_HEADER, SessionId};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::stream;

pub(super) const TOKEN: &str = "test-token-123";
pub(super) const MAX_BODY: usize = 1024;

#[derive(Clone, Default)]
pub(super) struct Hits(Arc<AtomicUsize>);

impl Hits {
    pub(super) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub(super) fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub(super) async fn on_post(State(hits): State<Hits>, post: McpPost) -> Response {
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

pub(super) async fn on_get(State(hits): State<Hits>, _get: McpGet) -> Response {
    hits.bump();
    sse_stream(stream::empty(), None)
}

pub(super) async fn on_delete(State(hits): State<Hits>, _delete: McpDelete) -> Response {
    hits.bump();
    StatusCode::OK.into_response()
}

/// A file under the temp dir, removed on drop.
pub(super) struct TempFile(PathBuf);

impl TempFile {
    pub(super) fn new(name: &str, contents: &str) -> TempFile {
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
pub(super) fn app(extra_args: &[&str], with_get: bool) -> (Router, Hits) {
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

pub(super) fn good_post() -> axum::http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

pub(super) const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
pub(super) const PING: &str = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
pub(super) const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

pub(super) fn session_header() -> String {
    SessionId::generate().unwrap().to_string()
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Status, a JSON-RPC error body with a null id and the given code.
    pub(super) fn assert_refused(&self, status: StatusCode, code: i64) {
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

    pub(super) fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub(super) async fn send(app: &Router, req: Request<Body>) -> Answer {
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
